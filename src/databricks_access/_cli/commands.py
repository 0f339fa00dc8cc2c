"""The commands: one `_cmd_*` function each, called with the parsed arguments and the session."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import attrs

import databricks_access as da
from databricks_access._cli.errors import (
    _PROG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    _FailureError,
)
from databricks_access._cli.render import (
    _csv,
    _error,
    _event_line,
    _group_shown,
    _iso,
    _json,
    _lease_record,
    _lease_row,
    _one_line,
    _request_record,
    _request_row,
    _shown,
    _table,
    _utc,
    _who,
    _write,
)
from databricks_access._cli.session import _Session
from databricks_access._durations import human
from databricks_access._util.terminal import terminal_safe

__all__: list[str] = []


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
