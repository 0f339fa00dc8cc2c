"""The command line: `databricks-access` or `python -m databricks_access`.

Every command works through the public API (`import databricks_access as da`), on the
integration's configuration (`--config PATH`, TOML or JSON, or `DATABRICKS_ACCESS_CONFIG`,
or the `DATABRICKS_ACCESS_*` variables), which names the account, the secret store and
the lease store, so every command and every connector sharing that file see the same
leases. Only `demo` reaches inside the package, for its self-contained emulator flow.

Errors are one line on stderr (`error: ...`), with the traceback only under `--debug`;
the exit code says what kind of failure it was (see `EXIT_CODES`). Nothing printed ever
holds a secret: the configuration holds none, and the library's errors never carry one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import functools
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

import attrs
from typing_extensions import Self

import databricks_access as da
from databricks_access._durations import human
from databricks_access._util.terminal import terminal_safe

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "build_parser",
    "load_config",
    "main",
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
_CONFIG_VAR = "DATABRICKS_ACCESS_CONFIG"
_ENV_PREFIX = "DATABRICKS_ACCESS_"
_REQUIRED_FIELDS = ("NAME", "ACCOUNTS_URL", "ACCOUNT_ID")
_RECORD_KINDS = (
    "memberships",
    "groups",
    "users",
    "service_principals",
    "workspaces",
    "assignments",
    "managers",
    "roles",
    "errors",
)
_LEASE_STATES = tuple(state.value for state in da.LeaseState)
_REQUEST_STATES = tuple(state.value for state in da.RequestState)
_BULLET = re.compile(r"^\s*-\s+")
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_MAX_CELL = 80
_MAX_MESSAGE = 2000

_EPILOG = "exit codes:\n" + "\n".join(
    f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()
)
_LEASE_ID_HELP = "the lease's id, as 'grant' and 'leases' print it (lease_...)"
_REQUEST_ID_HELP = "the request's id, as 'request' and 'requests' print it (req_...)"
_APPROVER_HELP = (
    "who decides: an approver's user name (one of the approvers 'request' printed); "
    "never the principal or the requester"
)
_CONFIG_HELP = (
    "the integration's configuration, a TOML or JSON file (default: $"
    f"{_CONFIG_VAR}, else the {_ENV_PREFIX}* variables)"
)


# -- durations ------------------------------------------------------------------------------


def _duration_arg(text: str) -> dt.timedelta:
    """A `--ttl`/`--by` value: `da.parse_duration`'s forms, and never zero."""
    try:
        duration = da.parse_duration(text)
    except da.ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].message) from None
    if not duration:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is zero; a duration must be positive")
    return duration


# -- text output ----------------------------------------------------------------------------


def _shown(text: str) -> str:
    """User input quoted for a message: control characters escaped, long text cut."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _one_line(text: str) -> str:
    """A message on one line: newlines joined with `; `, other controls escaped."""
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    joined = terminal_safe("; ".join(lines).replace(":;", ":"))
    return joined if len(joined) <= _MAX_MESSAGE else joined[: _MAX_MESSAGE - 3] + "..."


def _utc(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.timezone.utc).isoformat()


def _cell(value: object) -> str:
    """Text for a table cell, on one line, its terminal controls escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return _utc(value)
    text = terminal_safe(str(value))
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    """Rows as aligned columns under an upper-case header; `(none)` for no row."""
    if not rows:
        return "(none)\n"
    names = list(columns or rows[0].keys())
    cells = [[_cell(row.get(name)) for name in names] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [[name.upper() for name in names], *cells]
    ]
    return "\n".join(lines) + "\n"


def _csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run: text starting with `=+-@` gets a `'`."""
    if value is None:
        return ""
    if isinstance(value, str):
        # The csv module leaves a lone CR unquoted (rows end in LF here), and readers
        # take it for a line break: a name could start a new row with a formula.
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        if value.startswith(_CSV_TRIGGERS):
            return "'" + value
    return value


def _csv(rows: Sequence[Mapping[str, object]], kind: str) -> str:
    buffer = io.StringIO()
    names = list(rows[0].keys()) if rows else list(_EMPTY_COLUMNS.get(kind, ()))
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([_csv_cell(row.get(name)) for name in names] for row in rows)
    return buffer.getvalue()


# The header of an empty CSV table, so a script reading it still finds its columns.
_EMPTY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "memberships": ("group_id", "group_name", "member_id", "member_kind", "member_name"),
    "groups": ("group_id", "group_name", "members", "managers", "roles"),
    "users": ("user_id", "user_name", "display_name", "active", "roles"),
    "service_principals": (
        "service_principal_id",
        "application_id",
        "display_name",
        "active",
        "roles",
    ),
    "workspaces": ("workspace_id", "workspace_name", "deployment_name", "status", "assignments"),
    "assignments": (
        "workspace_id",
        "workspace_name",
        "principal_id",
        "principal_kind",
        "principal_name",
        "permission",
    ),
    "managers": ("group_id", "group_name", "manager"),
    "roles": ("principal_id", "principal_kind", "principal_name", "role"),
    "errors": ("stage", "item", "message", "status_code", "error_code"),
}


def _write(text: str, stream: TextIO | None = None) -> None:
    """Print text: every output path of the command line ends here, escaped for a terminal.

    JSON stays valid: the escapes are JSON's own (a backslash, `u` and four hex digits),
    and JSON strings already hold no raw newline.
    """
    safe = terminal_safe(text, keep_newlines=True)
    (stream or sys.stdout).write(safe if safe.endswith("\n") else safe + "\n")


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# -- records ---------------------------------------------------------------------------------


def _who(lease: da.Lease | da.AccessRequest) -> str:
    return terminal_safe(lease.principal_name or lease.principal.id)


def _group_shown(lease: da.Lease | da.AccessRequest) -> str:
    return terminal_safe(lease.group_name or lease.group_id)


def _lease_record(lease: da.Lease) -> dict[str, object]:
    return {
        "id": lease.id,
        "state": lease.state.value,
        "principal_id": lease.principal.id,
        "principal_kind": lease.principal.kind.value,
        "principal_name": lease.principal_name,
        "group_id": lease.group_id,
        "group_name": lease.group_name,
        "granted_at": _iso(lease.granted_at),
        "expires_at": _iso(lease.expires_at),
        "requester": lease.requester,
        "reason": lease.reason,
        "approver": lease.approver,
        "standing": lease.standing,
        "extensions": lease.extensions,
        "request_id": lease.request_id,
        "ended_at": _iso(lease.ended_at),
        "last_error": lease.last_error,
    }


def _lease_row(lease: da.Lease) -> dict[str, object]:
    # An ended lease shows when it ended, not when it would have expired.
    return {
        "id": lease.id,
        "state": lease.state.value,
        "principal": _who(lease),
        "group": _group_shown(lease),
        "standing": lease.standing,
        "expires": lease.expires_at if lease.ended_at is None else None,
        "ended": lease.ended_at,
        "requester": lease.requester,
        "reason": lease.reason,
    }


def _request_record(req: da.AccessRequest) -> dict[str, object]:
    return {
        "id": req.id,
        "state": req.state.value,
        "principal_id": req.principal.id,
        "principal_kind": req.principal.kind.value,
        "principal_name": req.principal_name,
        "group_id": req.group_id,
        "group_name": req.group_name,
        "ttl_seconds": req.ttl_seconds,
        "reason": req.reason,
        "requester": req.requester,
        "created_at": _iso(req.created_at),
        "expires_at": _iso(req.expires_at),
        "approvers": list(req.approvers),
        "approver_source": req.approver_source,
        "decided_by": req.decided_by,
        "decision_reason": req.decision_reason,
        "lease_id": req.lease_id,
        "access_details": req.access_details,
    }


def _request_row(req: da.AccessRequest) -> dict[str, object]:
    return {
        "id": req.id,
        "state": req.state.value,
        "principal": _who(req),
        "group": _group_shown(req),
        "ttl": human(req.ttl_seconds),
        "requester": req.requester,
        "reason": req.reason,
        "decided_by": req.decided_by,
    }


def _event_line(event: da.AuditEvent) -> str:
    """One readable line: when, what, which lease, who in which group, and why."""
    who = event.principal_name or (event.principal.id if event.principal else None)
    group = event.group_name or event.group_id
    parts = [
        _utc(event.at),
        f"{event.kind.value:<17}",
        event.lease_id or event.request_id or "-",
        f"{who or '?'} in {group}" if group else (who or ""),
    ]
    notes = [
        f"requested by {event.requester}" if event.requester else "",
        f"approved by {event.approver}" if event.approver else "",
        f"reason: {event.reason}" if event.reason else "",
        *(_detail_note(key, value) for key, value in event.detail.items()),
    ]
    line = "  ".join(part for part in parts if part)
    notes = [note for note in notes if note]
    if notes:
        line += " (" + "; ".join(notes) + ")"
    return terminal_safe(line)


def _detail_note(key: str, value: object) -> str:
    if value is True:
        return key.replace("_", " ")
    if value is False:
        return ""
    return f"{key.replace('_', ' ')}: {value}"


# -- errors -----------------------------------------------------------------------------------


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


def _error(message: str) -> None:
    _write(f"error: {_one_line(message)}", sys.stderr)


# -- configuration and the objects every command shares --------------------------------------


def load_config(path: str | None, environ: Mapping[str, str]) -> da.IntegrationConfig:
    """The integration's configuration: `--config`, `$DATABRICKS_ACCESS_CONFIG`, or the env.

    A `.json` file is JSON; a `pyproject.toml` is read from its `[tool.databricks_access]`
    table; any other file is TOML unless it starts with `{`. Without a file, the
    `DATABRICKS_ACCESS_*` variables are read when one of the required ones is set.

    Raises:
        _UsageError: There is no configuration, it cannot be read, or it is invalid (the
            message names the source and every problem; exit code 2).
    """
    source = path or environ.get(_CONFIG_VAR, "").strip() or None
    if source is None:
        if any(environ.get(f"{_ENV_PREFIX}{field}") for field in _REQUIRED_FIELDS):
            return _checked("the environment", lambda: da.IntegrationConfig.from_env(environ))
        raise _UsageError(
            "no configuration: pass --config PATH (a TOML or JSON file, see "
            f"'{_PROG} --help'), or set {_CONFIG_VAR} or the {_ENV_PREFIX}* variables"
        )
    file = Path(source)
    try:
        head = file.read_text(encoding="utf-8-sig", errors="replace")[:4096].lstrip()
    except OSError as exc:
        raise _UsageError(
            f"cannot read the configuration {source}: {exc.strerror or type(exc).__name__}"
        ) from None
    if file.suffix.lower() == ".json" or head.startswith("{"):
        return _checked(source, lambda: da.IntegrationConfig.from_json(file))
    table = "tool.databricks_access" if file.name == "pyproject.toml" else None
    return _checked(source, lambda: da.IntegrationConfig.from_toml(file, table=table))


def _checked(source: str, load: Callable[[], da.IntegrationConfig]) -> da.IntegrationConfig:
    try:
        return load()
    except da.ConfigError as exc:
        raise _UsageError(
            f"the configuration in {source} is invalid: {_problems(exc, {})}"
        ) from exc


class _Session:
    """The configuration, client, store, tracker and integration of one command, lazily.

    Everything opened is closed when the session ends, in reverse order.
    """

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
        self.args = args
        self.environ = environ
        self.events: da.EventSink | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    @functools.cached_property
    def config(self) -> da.IntegrationConfig:
        return load_config(self.args.config, self.environ)

    @functools.cached_property
    def client(self) -> da.AccountClient:
        config = self.config
        client = da.AccountClient(
            config.account_config(), secrets=config.secret_store_instance(environ=self.environ)
        )
        self._stack.callback(client.close)
        return client

    @functools.cached_property
    def store(self) -> da.LeaseStore:
        store = self.config.lease_store_ref.open()
        self._stack.callback(store.close)
        return store

    @functools.cached_property
    def reader(self) -> da.LeaseStore | None:
        """The lease store for commands that only read; None while its file does not exist.

        A SQLite file is opened read-only and never created: listing leases or checking
        the set-up writes nothing.
        """
        ref = self.config.lease_store_ref
        if ref.kind == "sqlite" and ref.path is not None and not Path(ref.path).exists():
            return None
        store = ref.open(read_only=True)
        self._stack.callback(store.close)
        return store

    @functools.cached_property
    def tracker(self) -> da.LeaseTracker:
        # The integration's policy and audit sink, as every connector on this config has.
        return self.config.lease_tracker(
            da.MembershipManager(self.client), store=self.store, events=self._sink()
        )

    def _sink(self) -> da.EventSink | None:
        """The configured audit sink, and this command's own (`run` prints events)."""
        sinks = [
            sink for sink in (self.config.audit_sink_instance(), self.events) if sink is not None
        ]
        if len(sinks) < 2:
            return sinks[0] if sinks else None

        def emit(event: da.AuditEvent) -> None:
            for sink in sinks:
                sink.emit(event)

        return da.CallableSink(emit)

    @functools.cached_property
    def integration(self) -> da.Integration:
        return da.Integration(self.config, client=self.client)

    @functools.cached_property
    def requests(self) -> da.AccessRequests:
        return da.AccessRequests(self.tracker, self.integration)

    def default_requester(self) -> str:
        return self.environ.get("USER", "").strip() or self.config.name

    def group(self, text: str) -> da.Group:
        """The group with this display name, else with this id."""
        client = self.client
        found = client.groups.find(text)
        if found is not None:
            return found
        try:
            return client.groups.get(text)
        except (da.NotFoundError, da.BadRequestError, da.ConfigError):
            raise _FailureError(f"no group is named {_shown(text)} or has that id") from None

    def named(self, lease: da.Lease, store: da.LeaseStore | None = None) -> da.Lease:
        """The lease with the names of its request filled in, when it has none itself."""
        if (lease.principal_name and lease.group_name) or lease.request_id is None:
            return lease
        req = (store or self.store).get_request(lease.request_id)
        if req is None:
            return lease
        return attrs.evolve(
            lease,
            principal_name=lease.principal_name or req.principal_name,
            group_name=lease.group_name or req.group_name,
        )

    def lease(self, lease_id: str) -> da.Lease:
        lease = self.store.get_lease(lease_id)
        if lease is None:
            raise _FailureError(f"no lease {_shown(lease_id)} in {self.config.lease_store}")
        return lease


# -- the commands ---------------------------------------------------------------------------


def _cmd_demo(_args: argparse.Namespace, _session: _Session) -> int:
    from databricks_access._cli.demo import run_demo  # noqa: PLC0415 - the only private import

    return run_demo(_write)


def _progress(args: argparse.Namespace) -> tuple[da.Progress | None, Callable[[], None]]:
    """A progress callback for discovery, and how to close it."""
    wanted = args.progress if args.progress is not None else sys.stderr.isatty()
    if not wanted:
        return None, lambda: None
    try:
        bars = da.tqdm_progress(file=sys.stderr, leave=False)
    except ImportError:
        counter = _Counter(sys.stderr)
        return counter, counter.close
    return bars, bars.close


class _Counter:
    """A plain progress counter on stderr, one line per stage, when tqdm is missing."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._open: str | None = None
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        with self._lock:
            if self._open not in {None, stage}:
                self._stream.write("\n")
            self._open = stage
            self._stream.write(f"\r{stage}: {done}/{'?' if total is None else total}")
            if total is not None and done >= total:
                self._stream.write("\n")
                self._open = None
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._open is not None:
                self._stream.write("\n")
                self._open = None


def _cmd_discover(args: argparse.Namespace, session: _Session) -> int:
    output_format = args.format or ("table" if args.output is None and _isatty() else "json")
    progress, close = _progress(args)
    try:
        inventory = da.discover(
            session.client,
            groups=args.members,
            workspaces=args.workspaces,
            managers=args.managers,
            concurrency=args.concurrency,
            progress=progress,
        )
    finally:
        close()
    # One of the choices argparse checked; `Inventory.records` types it as a Literal.
    kind: Any = args.records or "memberships"
    if output_format == "json":
        text = (
            _json(inventory.records(kind))
            if args.records
            else inventory.to_json(indent=2, ensure_ascii=False) + "\n"
        )
    elif output_format == "csv":
        text = _csv(inventory.records(kind), kind)
    else:
        text = _table(inventory.records(kind))
    if output_format == "json":
        text = terminal_safe(text, keep_newlines=True)  # the same JSON, escaped
    if args.output is not None:
        # CSV is data: a file gets it as it is (a lone surrogate written as an escape).
        Path(args.output).write_text(text, encoding="utf-8", errors="backslashreplace", newline="")
        _write(f"wrote {output_format} to {args.output}", sys.stderr)
    elif output_format == "csv" and not _isatty():
        sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
    else:
        _write(text)
    if inventory.errors:
        _write(
            f"warning: {len(inventory.errors)} item(s) could not be read; see '--records errors'",
            sys.stderr,
        )
    return EXIT_OK


def _isatty() -> bool:
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False


def _cmd_grant(args: argparse.Namespace, session: _Session) -> int:
    group = session.group(args.group)
    lease = session.tracker.grant(
        args.principal,
        group,
        ttl=args.ttl,
        requester=args.requester or session.default_requester(),
        reason=args.reason,
    )
    if args.json:
        _write(_json(_lease_record(lease)))
        return EXIT_OK
    _write(
        f"granted {lease.id}: {_who(lease)} in {_group_shown(lease)} until {_utc(lease.expires_at)}"
    )
    if lease.standing:
        _write(
            f"note: {_who(lease)} was already a member; the membership stays when the lease ends"
        )
    return EXIT_OK


def _cmd_revoke(args: argparse.Namespace, session: _Session) -> int:
    by = args.by or session.default_requester()
    before = session.lease(args.lease_id)
    lease = session.tracker.revoke(args.lease_id, by=by)
    if args.json:
        _write(_json(_lease_record(lease)))
        return EXIT_OK
    if before.state is lease.state:
        _write(f"{lease.id} was already {lease.state.value}; nothing to do")
    else:
        _write(f"revoked {lease.id}: {_who(lease)} in {_group_shown(lease)}")
    return EXIT_OK


def _cmd_extend(args: argparse.Namespace, session: _Session) -> int:
    result = session.tracker.extend(args.lease_id, args.by)
    lease = result.lease
    if args.json:
        record = _lease_record(lease)
        record["clamped"] = result.clamped
        record["requested_expires_at"] = _iso(result.requested_expires_at)
        _write(_json(record))
        return EXIT_OK
    _write(
        f"extended {lease.id}: {_who(lease)} in {_group_shown(lease)} "
        f"until {_utc(lease.expires_at)}"
    )
    if result.clamped:
        _write(
            f"note: clamped to the longest lease allowed from its grant; "
            f"{_utc(result.requested_expires_at)} was asked"
        )
    return EXIT_OK


def _cmd_request(args: argparse.Namespace, session: _Session) -> int:
    group = session.group(args.group)
    req = session.requests.submit(
        args.principal,
        group,
        ttl=args.ttl,
        reason=args.reason,
        requester=args.requester or session.default_requester(),
    )
    if args.json:
        _write(_json(_request_record(req)))
        return EXIT_OK
    approvers = ", ".join(req.approvers) or "nobody (no integration owner is configured)"
    _write(
        f"requested {req.id}: {_who(req)} in {_group_shown(req)} for "
        f"{human(req.ttl_seconds)}, pending until {_utc(req.expires_at)}"
    )
    _write(f"approvers ({req.approver_source}): {approvers}")
    if session.config.resource_owner is not None and req.approver_source != "resource_owner":
        # Say why the resource owners were not used: the fallback is never silent.
        tag = session.config.resource_owner.tag_key
        why = session.integration.approvers_for(group).problems or (
            f"no resource owner is tagged on {_group_shown(req)} (tag {tag!r})",
        )
        _write(f"note: fell back to the integration owners: {'; '.join(why)}")
    if req.access_details:
        _write(f"access details: {_one_line(req.access_details)}")
    return EXIT_OK


def _cmd_approve(args: argparse.Namespace, session: _Session) -> int:
    req = session.requests.approve(args.request_id, approver=args.approver)
    stored = session.store.get_lease(req.lease_id) if req.lease_id else None
    lease = None if stored is None else session.named(stored)
    if args.json:
        record = _request_record(req)
        record["lease"] = None if lease is None else _lease_record(lease)
        _write(_json(record))
        return EXIT_OK
    _write(f"approved {req.id} as {args.approver}")
    if lease is not None:
        _write(
            f"granted {lease.id}: {_who(lease)} in {_group_shown(lease)} until "
            f"{_utc(lease.expires_at)}"
        )
    return EXIT_OK


def _cmd_deny(args: argparse.Namespace, session: _Session) -> int:
    req = session.requests.deny(args.request_id, approver=args.approver, reason=args.reason)
    if args.json:
        _write(_json(_request_record(req)))
        return EXIT_OK
    _write(f"denied {req.id} as {args.approver}: {_one_line(args.reason)}")
    return EXIT_OK


def _matches(value: str, *candidates: str | None) -> bool:
    wanted = value.strip().casefold()
    return any(c is not None and c.strip().casefold() == wanted for c in candidates)


def _note_no_store(session: _Session) -> None:
    """Say why a listing is empty when the store is not there yet (on stderr)."""
    sys.stderr.write(
        f"note: the lease store {session.config.lease_store} does not exist yet "
        "(the first grant or request creates it)\n"
    )


def _listing_format(args: argparse.Namespace) -> str:
    """`--format`, `--json`, else a table on a terminal and JSON when piped."""
    if args.json:
        return "json"
    return str(args.format or ("table" if _isatty() else "json"))


def _cmd_leases(args: argparse.Namespace, session: _Session) -> int:
    states = [da.LeaseState(state) for state in args.state] if args.state else None
    store = session.reader
    if store is None:
        _note_no_store(session)
    stored = [] if store is None else store.find_leases(states=states)
    leases = [
        lease
        for lease in (session.named(lease, store) for lease in stored)
        if (
            args.principal is None
            or _matches(args.principal, lease.principal.id, lease.principal_name)
        )
        and (args.group is None or _matches(args.group, lease.group_id, lease.group_name))
    ]
    if _listing_format(args) == "json":
        _write(_json([_lease_record(lease) for lease in leases]))
    else:
        _write(_table([_lease_row(lease) for lease in leases]))
    return EXIT_OK


def _cmd_requests(args: argparse.Namespace, session: _Session) -> int:
    states = [da.RequestState(state) for state in args.state] if args.state else None
    store = session.reader
    if store is None:
        _note_no_store(session)
    found = [
        req
        for req in ([] if store is None else store.find_requests(states=states))
        if (
            args.principal is None or _matches(args.principal, req.principal.id, req.principal_name)
        )
        and (args.group is None or _matches(args.group, req.group_id, req.group_name))
    ]
    if _listing_format(args) == "json":
        _write(_json([_request_record(req) for req in found]))
    else:
        rows = [_request_row(req) for req in found]
        from databricks_access._cli.catalog import with_unlocks  # noqa: PLC0415

        _write(_table(with_unlocks(rows, found)))  # -- Unity Catalog: what each unlocks --
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace, session: _Session) -> int:
    report = session.tracker.sweep()
    requests = session.requests.sweep()
    if args.json:
        _write(
            _json(
                {
                    "revoked": list(report.revoked),
                    "kept": list(report.kept),
                    "failed": list(report.failed),
                    "recovered": list(report.recovered),
                    "skipped": list(report.skipped),
                    "patches": report.patches,
                    "requests_expired": list(requests.expired),
                    "requests_granted": list(requests.granted),
                    "requests_failed": list(requests.failed),
                }
            )
        )
    else:
        _write(
            f"swept: {len(report.revoked)} revoked, {len(report.kept)} ended with the "
            f"membership kept, {len(report.failed)} failed, {len(report.recovered)} "
            f"recovered, {len(report.skipped)} left to another tracker; "
            f"{report.patches} PATCH request(s)"
        )
        _write(
            f"requests: {len(requests.expired)} expired, {len(requests.granted)} granted "
            f"after an interrupted approval, {len(requests.failed)} failed"
        )
    if report.failed or requests.failed:
        _write(
            "error: some revocations or grants failed; they are stored and retried "
            f"(see '{_PROG} leases --state revoke_failed')",
            sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


@contextlib.contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[list[str]]:
    """SIGINT and SIGTERM set `stop` (a second one interrupts); yields the names received."""
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal: stop now. Leases are stored before every change, so the
            # next sweep (here or in another replica) finishes what this one started.
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)
        stop.set()

    handled = [signal.SIGINT, signal.SIGTERM]
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cmd_run(args: argparse.Namespace, session: _Session) -> int:
    def show(event: da.AuditEvent) -> None:
        _write(_event_line(event))
        sys.stdout.flush()

    session.events = da.CallableSink(show)
    tracker = session.tracker
    stop = threading.Event()
    with _stopped_by_signals(stop) as received:
        tracker.deliver_events()  # the events queued by earlier commands, first
        _write(
            f"running: revoking leases in {session.config.lease_store} as they end "
            "(stop with Ctrl-C or SIGTERM)"
        )
        sys.stdout.flush()
        tracker.run(stop=stop, idle=args.idle)
    active = len(tracker.leases(state=da.LeaseState.ACTIVE))
    reason = f" on {received[0]}" if received else ""
    _write(f"stopped{reason}: {active} active lease(s) stay stored for the next run")
    return EXIT_OK


def _cmd_probe(args: argparse.Namespace, session: _Session) -> int:
    options: dict[str, Any] = {
        "spacing": args.spacing,
        "max_lag": args.max_lag,
        "rate_limits": args.rate_limits,
    }
    if args.plan or not args.yes:
        _write(str(da.probe(session.client, args.principal, plan=True, **options)))
        if args.plan:
            return EXIT_OK
        _error("nothing was sent: add --yes to run these requests on the account")
        return EXIT_USAGE
    report = da.probe(session.client, args.principal, **options)
    if args.output is not None:
        Path(args.output).write_text(report.to_json() + "\n", encoding="utf-8")
        sys.stderr.write(f"wrote the report to {args.output}\n")
    _write(report.to_json() if args.json else report.summary())
    return EXIT_OK if report.sandbox_deleted else EXIT_FAILED


def _probe_report(path: str | None) -> da.ProbeReport | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _FailureError(f"cannot read the probe report {_shown(path)}: {exc}") from None
    return da.ProbeReport.from_json(text)


def _cmd_emulator(args: argparse.Namespace, _session: _Session) -> int:
    from databricks_access._cli.emulator import serve_emulator  # noqa: PLC0415

    def say(line: str) -> None:
        _write(line)
        sys.stdout.flush()

    stop = threading.Event()
    with _stopped_by_signals(stop) as received:
        folder = serve_emulator(
            out=say,
            stop=stop,
            directory=None if args.dir is None else Path(args.dir),
            port=args.port,
        )
    reason = f" on {received[0]}" if received else ""
    _write(f"stopped{reason}; {folder} was {'kept' if args.dir else 'removed'}")
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace, session: _Session) -> int:
    config = session.config
    _write(f"integration: {config.name}")
    _write(f"accounts URL: {config.accounts_url}")
    _write(f"account ID: {config.account_id}")
    _write(f"secret store: {config.secret_store}")
    _write(f"lease store: {config.lease_store}")
    _write("")
    # A diagnosis answers in seconds: few retries, a short connect timeout.
    account = config.account_config(
        connect_timeout=_DOCTOR_CONNECT_TIMEOUT, max_attempts=2, deadline=_DOCTOR_DEADLINE
    )
    try:
        secrets = config.secret_store_instance(environ=session.environ)
    except da.DatabricksAccessError as exc:
        # A store that cannot even be built (a missing extra) is the secret check's FAIL.
        secrets = _UnavailableSecretStore(config.secret_store, _one_line(str(exc)))
    with da.AccountClient(account, secrets=secrets) as client:
        report = da.diagnose(client, probe_report=_probe_report(args.probe_report))
    _write(str(report))
    store_check = _lease_store_check(session)
    _write(str(store_check))
    failed = {check.name for check in report.failed}
    if failed & {"secret", "token", "scim"}:
        return EXIT_UNREACHABLE
    if failed or store_check.ok is False:
        return EXIT_FAILED
    return EXIT_OK


_DOCTOR_CONNECT_TIMEOUT = 5.0
_DOCTOR_DEADLINE = 10.0


@attrs.frozen(repr=False)
class _UnavailableSecretStore:
    """The secret store a configuration names, when it cannot be opened here."""

    source: str
    problem: str

    def get_credentials(self, *, refresh: bool = False) -> da.ClientCredentials:  # noqa: ARG002
        raise da.SecretStoreError(self.problem)

    def __repr__(self) -> str:
        return f"the secret store {self.source}"


def _lease_store_check(session: _Session) -> da.Check:
    """Whether the lease store can be read, without creating or changing anything."""
    name = "lease_store"
    ref = session.config.lease_store_ref
    try:
        store = session.reader
    except da.DatabricksAccessError as exc:
        return da.Check(
            name=name,
            ok=False,
            verdict=f"cannot be opened: {_one_line(str(exc))}",
            fix="Check the lease_store URL and that its directory exists and is writable.",
        )
    if store is None:
        path = Path(ref.path or "").absolute()
        directory = path.parent
        if directory.is_dir() and os.access(directory, os.W_OK):
            return da.Check(
                name=name,
                ok=True,
                verdict=f"{path} does not exist yet; the first grant creates it "
                "(its directory is writable)",
            )
        return da.Check(
            name=name,
            ok=False,
            verdict=f"{path} does not exist, and its directory is missing or not writable",
            fix=f"Create {directory} and let this user write there, or change lease_store.",
        )
    count = len(store.find_leases())
    return da.Check(name=name, ok=True, verdict=f"opens, and holds {count} lease(s)")


# -- the parser --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line naming the option, and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {_one_line(message)} (see '{self.prog} --help')\n")


def _add_common(parser: argparse.ArgumentParser, *, top: bool, config: bool = True) -> None:
    # On the main parser the defaults are set; on each command they are SUPPRESSed, so
    # `--config` and `--debug` work before or after the command name.
    default: Any = None if top else argparse.SUPPRESS
    if config:
        parser.add_argument("--config", metavar="PATH", default=default, help=_CONFIG_HELP)
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and the library's debug log on stderr",
    )


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _add_listing_format(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        help=f"how to print {what} (default: a table on a terminal, else JSON)",
    )
    _add_json(parser, f"{what} (same as --format json)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `databricks-access`, with every command."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=_PROG,
        description=(
            "Just-in-time access to Databricks through account group membership: grant "
            "time-bound leases, approve requests, revoke on expiry, discover who holds what."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {da.__version__}")
    _add_common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, summary: str, description: str, *, config: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=_EPILOG,
            formatter_class=formatter,
        )
        _add_common(sub, top=False, config=config)
        return sub

    demo = command(
        "demo",
        "run a full just-in-time flow against the built-in account emulator",
        "Grant, list, expire and revoke leases against an emulated account, in this "
        "process, with no configuration and no network.",
        config=False,
    )
    demo.set_defaults(handler=_cmd_demo)

    discover = command(
        "discover",
        "list who holds what: groups, members, roles, workspaces, managers",
        "Read the account once and print one table of the inventory (default: the "
        "memberships). On a terminal the default format is a table, else JSON (the "
        "whole inventory unless --records is given). CSV cells that a spreadsheet "
        "would run as a formula (starting with = + - @) get a leading '.",
    )
    discover.add_argument("--format", choices=("table", "json", "csv"), help="output format")
    discover.add_argument(
        "--records",
        choices=_RECORD_KINDS,
        help="which table to print (table and CSV default: memberships)",
    )
    discover.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    discover.add_argument(
        "--no-members",
        dest="members",
        action="store_false",
        help="skip each group's members (groups are still listed)",
    )
    discover.add_argument(
        "--no-workspaces",
        dest="workspaces",
        action="store_false",
        help="skip workspaces and their permission assignments",
    )
    discover.add_argument(
        "--no-managers", dest="managers", action="store_false", help="skip group managers"
    )
    discover.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="requests in flight at once (1 to 256, default 8)",
    )
    discover.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: when stderr is a terminal)",
    )
    discover.set_defaults(handler=_cmd_discover)

    ttl_help = "how long the access lasts, like 15m, 90m, 2h or 1h30m (from 1m to 12h by default)"
    grant = command(
        "grant",
        "add PRINCIPAL to GROUP for a while, behind a lease",
        "Grant a time-bound membership: the lease is stored before the member is "
        "added, and 'run' or 'sweep' removes the member when it ends. A standing member "
        "stays a member.",
    )
    grant.add_argument("principal", metavar="PRINCIPAL", help="a user name or an application id")
    grant.add_argument("group", metavar="GROUP", help="a group display name or id")
    grant.add_argument(
        "--ttl", type=_duration_arg, required=True, metavar="DURATION", help=ttl_help
    )
    grant.add_argument("--reason", required=True, help="why: a ticket, an incident")
    grant.add_argument(
        "--requester", metavar="NAME", help="who asks (default: $USER, else the config name)"
    )
    _add_json(grant, "the lease")
    grant.set_defaults(handler=_cmd_grant, fields={"approver": "--as"})

    revoke = command(
        "revoke",
        "end a lease now",
        "End a lease early. The member is removed unless the membership is standing or "
        "another lease still holds it. Revoking an ended lease does nothing.",
    )
    revoke.add_argument("lease_id", metavar="LEASE_ID", help=_LEASE_ID_HELP)
    revoke.add_argument(
        "--as", dest="by", metavar="NAME", help="who revokes (default: $USER, else the config name)"
    )
    _add_json(revoke, "the lease")
    revoke.set_defaults(handler=_cmd_revoke, fields={"by": "--as", "lease_id": "LEASE_ID"})

    extend = command(
        "extend",
        "push a lease's end out",
        "Extend an active lease. The total is clamped to the longest lease allowed "
        "from its grant time (12 hours by default); the output says so.",
    )
    extend.add_argument("lease_id", metavar="LEASE_ID", help=_LEASE_ID_HELP)
    extend.add_argument(
        "--by", type=_duration_arg, required=True, metavar="DURATION", help="how much longer"
    )
    _add_json(extend, "the lease")
    extend.set_defaults(handler=_cmd_extend, fields={"lease_id": "LEASE_ID"})

    request = command(
        "request",
        "ask for PRINCIPAL to join GROUP, pending an approver",
        "Submit an access request. Its approvers are resolved now (the resource owners, "
        "else the integration owners) and printed; 'approve' grants it as a lease.",
    )
    request.add_argument("principal", metavar="PRINCIPAL", help="a user name or an application id")
    request.add_argument("group", metavar="GROUP", help="a group display name or id")
    request.add_argument(
        "--ttl", type=_duration_arg, required=True, metavar="DURATION", help=ttl_help
    )
    request.add_argument("--reason", required=True, help="why: a ticket, an incident")
    request.add_argument(
        "--requester", metavar="NAME", help="who asks (default: $USER, else the config name)"
    )
    _add_json(request, "the request")
    request.set_defaults(handler=_cmd_request)

    approve = command(
        "approve",
        "approve a pending request, which grants its lease",
        "Approve an access request and grant it. Refused (exit 1) for the requester "
        "or the principal themselves, and for anyone who is not an approver.",
    )
    approve.add_argument("request_id", metavar="REQUEST_ID", help=_REQUEST_ID_HELP)
    approve.add_argument(
        "--as", dest="approver", required=True, metavar="APPROVER", help=_APPROVER_HELP
    )
    _add_json(approve, "the request and its lease")
    approve.set_defaults(handler=_cmd_approve, fields={"approver": "--as"})

    deny = command(
        "deny",
        "deny a pending request",
        "Deny an access request; only an approver may.",
    )
    deny.add_argument("request_id", metavar="REQUEST_ID", help=_REQUEST_ID_HELP)
    deny.add_argument(
        "--as", dest="approver", required=True, metavar="APPROVER", help=_APPROVER_HELP
    )
    deny.add_argument("--reason", required=True, help="why, shown to the requester")
    _add_json(deny, "the request")
    deny.set_defaults(handler=_cmd_deny, fields={"approver": "--as"})

    leases = command(
        "leases",
        "list stored leases",
        "List the leases in the lease store, oldest first. Reads the store only (it "
        "needs no credentials and creates no file). On a terminal the default format is "
        "a table (STANDING: the member was one before the lease, and stays one; ENDED "
        "instead of EXPIRES once a lease is over), else JSON.",
    )
    leases.add_argument("--principal", help="only this principal (user name, app id or SCIM id)")
    leases.add_argument("--group", help="only this group (display name or id)")
    leases.add_argument(
        "--state",
        action="append",
        choices=_LEASE_STATES,
        help="only leases in this state (repeatable)",
    )
    _add_listing_format(leases, "the leases")
    leases.set_defaults(handler=_cmd_leases)

    requests = command(
        "requests",
        "list access requests",
        "List the access requests in the lease store, oldest first. Reads the store "
        "only. On a terminal the default format is a table, else JSON.",
    )
    requests.add_argument("--principal", help="only this principal")
    requests.add_argument("--group", help="only this group (display name or id)")
    requests.add_argument(
        "--state",
        action="append",
        choices=_REQUEST_STATES,
        help="only requests in this state (repeatable)",
    )
    _add_listing_format(requests, "the requests")
    requests.set_defaults(handler=_cmd_requests)

    sweep = command(
        "sweep",
        "revoke what is due, once",
        "Revoke every lease that has ended, finish work a crash interrupted, retry "
        "failed revocations, expire stale requests. Exit 1 when a revocation failed (it "
        "stays stored and is retried).",
    )
    _add_json(sweep, "the report")
    sweep.set_defaults(handler=_cmd_sweep)

    run = command(
        "run",
        "revoke leases as they end, until stopped",
        "The expiry loop: sleep until the next lease ends, revoke it, repeat; wake at "
        "once when another process grants. Prints each audit event. SIGTERM or Ctrl-C "
        "stops it cleanly after the current sweep (exit 0); a second one stops at once.",
    )
    run.add_argument(
        "--idle",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="the longest sleep between checks (default 30)",
    )
    run.set_defaults(handler=_cmd_run)

    # -- Unity Catalog: `unlocks GROUP` and `explain PRINCIPAL` --
    from databricks_access._cli.catalog import add_commands  # noqa: PLC0415

    add_commands(command, _positive_int)

    doctor = command(
        "doctor",
        "check the configuration, credentials, token, API access and roles",
        "Check the whole chain and say what to fix: configuration, secret store, token, "
        "SCIM access, account admin and group manager rights, lease store. Exit 3 when "
        "the account cannot be reached or authenticated to, 1 for another failure.",
    )
    doctor.add_argument(
        "--probe-report",
        metavar="FILE",
        help="also check the library's defaults against a report of 'probe'",
    )
    doctor.set_defaults(handler=_cmd_doctor)

    probe = command(
        "probe",
        "measure what the account does where the API is undocumented",
        "Create a sandbox group (databricks-access-probe-<random>), add and remove only "
        "the principals named with --principal there, time how reads lag writes, find "
        "the most members one PATCH takes, then delete the group (also after an error "
        "or Ctrl-C). No other group is touched. --plan lists every request and sends "
        "nothing; nothing is sent without --yes. See docs/probe.md.",
    )
    probe.add_argument(
        "--principal",
        action="append",
        required=True,
        metavar="NAME",
        help="a user name or service principal application id to add and remove "
        "(repeatable; at least one)",
    )
    probe.add_argument("--plan", action="store_true", help="list the requests, send nothing")
    probe.add_argument("--yes", action="store_true", help="send the requests")
    probe.add_argument(
        "--rate-limits",
        action="store_true",
        help="also send requests at twice the published rates until the first 429",
    )
    probe.add_argument(
        "--spacing",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="the least time between two requests (0.5 to 60, default 1)",
    )
    probe.add_argument(
        "--max-lag",
        type=_positive_float,
        default=900.0,
        metavar="SECONDS",
        help="how long to wait for a write to show in reads (default 900)",
    )
    probe.add_argument("--output", metavar="FILE", help="also write the report (JSON) to FILE")
    _add_json(probe, "the report")
    probe.set_defaults(
        handler=_cmd_probe,
        fields={"principals": "--principal", "spacing": "--spacing", "max_lag": "--max-lag"},
    )
    emulator = command(
        "emulator",
        "serve an emulated account on 127.0.0.1, to try the other commands on",
        "Serve an emulated Databricks account (users, groups, a service principal) on "
        "127.0.0.1 until Ctrl-C or SIGTERM, write a configuration that reaches it (its "
        "service principal's secret in a file readable by you only), and print how to use "
        "it from another terminal. Nothing leaves this machine.",
        config=False,
    )
    emulator.add_argument(
        "--port", type=_port, default=0, help="the port on 127.0.0.1 (default: a free one)"
    )
    emulator.add_argument(
        "--dir",
        metavar="DIR",
        help="an existing, empty directory for the configuration and the lease store, kept "
        "afterwards (default: a temporary one, removed when the emulator stops)",
    )
    emulator.set_defaults(handler=_cmd_emulator)
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0 to 65535)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and below 86400")
    return value


# -- main ----------------------------------------------------------------------------------


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
