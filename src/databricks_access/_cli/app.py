"""The command line: `databricks-access` or `python -m databricks_access`; `main` runs it.

Every command works through the public API (`import databricks_access as da`), on the
integration's configuration (`--config PATH`, TOML or JSON, or `DATABRICKS_ACCESS_CONFIG`,
or the `DATABRICKS_ACCESS_*` variables), which names the account, the secret store and
the lease store, so every command and every connector sharing that file see the same
leases. Only `demo` reaches inside the package, for its self-contained emulator flow.

Errors are one line on stderr (`error: ...`), with the traceback only under `--debug`;
the exit code says what kind of failure it was (see `errors.EXIT_CODES`). Nothing printed ever
holds a secret: the configuration holds none, and the library's errors never carry one.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence

from databricks_access._cli.errors import EXIT_INTERRUPTED, EXIT_OK, _describe
from databricks_access._cli.parser import build_parser
from databricks_access._cli.render import _error
from databricks_access._cli.session import _Session
from databricks_access._util.terminal import terminal_safe

__all__ = ["main"]


class _SafeFormatter(logging.Formatter):
    """Log lines (a traceback included) escaped for the terminal, like all other output."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), keep_newlines=True)


@contextlib.contextmanager
def _logging(debug: bool) -> Iterator[None]:
    """The library's log on stderr (warnings; everything with --debug), for this call."""
    logger = logging.getLogger("databricks_access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("%(levelname)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: The arguments (default: `sys.argv[1:]`).
        environ: The environment to read the configuration and credentials from
            (default: `os.environ`).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    fields: Mapping[str, str] = {
        "ttl": "--ttl",
        "reason": "--reason",
        "requester": "--requester",
        "request_id": "REQUEST_ID",
        **getattr(args, "fields", {}),
    }
    handler: Callable[[argparse.Namespace, _Session], int] = args.handler
    with _logging(args.debug):
        try:
            with _Session(args, environ) as session:
                code = handler(args, session)
            sys.stdout.flush()
        except KeyboardInterrupt:
            if args.debug:
                traceback.print_exc()
            _error("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python's own final
            # flush from failing again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_OK
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line and a code
            code, message = _describe(exc, fields)
            if args.debug:
                traceback.print_exc()
            _error(message)
            return code
    return code
