"""The command line's exit codes, and the exit code and one-line message for each failure."""

from __future__ import annotations

from collections.abc import Mapping

import databricks_access as da

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
]


EXIT_OK = 0
"""The command did what it was asked."""
EXIT_FAILED = 1
"""The operation failed: an API error, a lease or an approval refused, a failed revocation."""
EXIT_USAGE = 2
"""A usage or configuration error: a bad option or duration, a missing or invalid config."""
EXIT_UNREACHABLE = 3
"""The account cannot be reached or refuses the credentials (or they cannot be read)."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (SIGINT) outside `run`, which stops cleanly with 0 instead."""

EXIT_CODES: Mapping[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILED: "the operation failed (API error, lease or approval refused, revocation failed)",
    EXIT_USAGE: "usage or configuration error (bad option or duration, invalid configuration)",
    EXIT_UNREACHABLE: "cannot reach or authenticate to the account (network, credentials)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

_PROG = "databricks-access"


class _UsageError(Exception):
    """A usage or configuration problem found by the command line itself (exit 2)."""


class _FailureError(Exception):
    """An operation that could not be done, in the command line's words (exit 1)."""


def _problems(exc: da.ConfigError, fields: Mapping[str, str]) -> str:
    return "; ".join(
        f"{fields.get(problem.field, problem.field)}: {problem.message}" for problem in exc.problems
    )


def _describe(exc: BaseException, fields: Mapping[str, str]) -> tuple[int, str]:
    """The exit code and the one-line message for an exception."""
    if isinstance(exc, _UsageError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, _FailureError):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, da.ConfigError):
        return EXIT_USAGE, _problems(exc, fields)
    if isinstance(exc, da.SecretStoreError):
        return EXIT_UNREACHABLE, f"cannot read the service principal's credentials: {exc}"
    if isinstance(exc, da.AuthenticationError):
        return EXIT_UNREACHABLE, (
            f"the account refused the credentials: {exc} "
            f"(run '{_PROG} doctor' to check the whole chain)"
        )
    if isinstance(exc, da.TransportError):
        return EXIT_UNREACHABLE, f"cannot reach the account: {exc}"
    if isinstance(exc, da.PermissionDeniedError):
        return EXIT_FAILED, (
            f"permission denied: {exc} (run '{_PROG} doctor' to see which role is missing)"
        )
    if isinstance(exc, da.RateLimitedError):
        return EXIT_FAILED, f"the account is throttling requests, retry later: {exc}"
    if isinstance(exc, da.DatabricksAccessError):
        return EXIT_FAILED, str(exc)
    if isinstance(exc, OSError):
        return EXIT_FAILED, f"{exc.strerror or type(exc).__name__}: {exc.filename or exc}"
    return EXIT_FAILED, (
        f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback, "
        "and please report it)"
    )
