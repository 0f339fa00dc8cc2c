"""`SqliteLeaseStore`: the `LeaseStore` methods, each one transaction or one read."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pathlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Literal

from typing_extensions import Self

from databricks_access._durations import seconds
from databricks_access._errors import ConfigError, LeaseError
from databricks_access._leases.store import StaleStateError
from databricks_access._leases.values import (
    AccessRequest,
    AuditEvent,
    Lease,
    LeaseState,
    Pair,
    RequestState,
    StoredEvent,
)
from databricks_access._stores.rows import MAX_US, MIN_US, US, UTC, Row, from_micros, micros
from databricks_access._stores.sqlite.file import _SqliteFile
from databricks_access._stores.sqlite.sql import (
    _CHUNK,
    _CLAIM,
    _DUE_LEASES,
    _IDS_PER_QUERY,
    _INSERT_EVENT,
    _INSERT_LEASE,
    _INSERT_REQUEST,
    _LEASE_STATE,
    _MARK_DELIVERED,
    _NEXT_DUE,
    _PAIRS_PER_QUERY,
    _PENDING_EVENTS,
    _RELEASE,
    _RENEW,
    _REQUEST_STATE,
    _SELECT_LEASES,
    _SELECT_REQUESTS,
    _UPDATE_LEASE,
    _UPDATE_LEASE_ROW,
    _UPDATE_REQUEST,
    _check_limit,
    _event_payload,
    _held_claims,
    _lease_values,
    _lease_versions,
    _pair_leases,
    _placeholders,
    _request_values,
)
from databricks_access._util.files import create_private, shared

__all__ = ["SqliteLeaseStore"]


class SqliteLeaseStore(_SqliteFile):
    """A `LeaseStore` in one SQLite file: durable, safe for many threads and processes.

    The file is created when missing (its directory must exist), and its schema is
    migrated in place when an older databricks_access wrote it; a file written by a
    newer version is refused. Needs SQLite 3.24 (2018) or later.
    Use it as a context manager, or call `close()`::

        with da.SqliteLeaseStore("leases.db") as store:
            tracker = da.LeaseTracker(manager, store=store)
            tracker.run(stop=stop)

    Args:
        path: The database file. `":memory:"` is refused: the point of this store is a
            file that outlives the process (use `MemoryLeaseStore` for tests).
        timeout: Seconds a write waits for another writer (thread or process) to
            finish before it fails with `LeaseError`.
        read_only: Open the file read-only (it must exist and be current); every write
            raises `LeaseError`. For reports and inspection.
        synchronous: `"FULL"` (the default) syncs each commit to disk, so a lease's
            intent and its audit event survive a power cut before the tracker acts on
            them. `"NORMAL"` is faster and survives a crash of the process, not of the
            machine: the last commits may be lost. Claims (taken, renewed, released)
            commit as with `"NORMAL"` either way: their holders are on the file's
            machine and end with it.

    Raises:
        ConfigError: `path` is not a file path, or an argument is out of range.
        LeaseError: the file cannot be opened, is not a lease store, is corrupt, or was
            written by a newer databricks_access.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        read_only: bool = False,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        text = os.fspath(path)
        if text in {"", ":memory:"} or text.startswith("file:"):
            raise ConfigError(
                f"{text!r} is not a file path; SqliteLeaseStore keeps leases in a file "
                "(use MemoryLeaseStore for a store in memory)",
                field="path",
            )
        timeout = seconds(timeout, "timeout")
        if synchronous not in {"FULL", "NORMAL"}:
            raise ConfigError(f"must be 'FULL' or 'NORMAL', not {synchronous!r}", "synchronous")
        self._path = str(pathlib.Path(text).absolute())
        for suffix in ("", "-wal", "-shm"):
            problem = shared(self._path + suffix)
            if problem is not None:
                raise ConfigError(f"the lease store {problem}", field="path")
        if not read_only:
            # Created 0600 before SQLite opens it: its -wal and -shm files take this mode.
            with contextlib.suppress(OSError):  # a missing directory: SQLite says so below
                create_private(self._path)
        self._timeout = float(timeout)
        self._read_only = read_only
        self._synchronous = synchronous
        self._local = threading.local()
        self._registry = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._closed = False
        # SQLite connections must not cross fork(): remember whose they are.
        self._pid = os.getpid()
        # Writes through this object notify waiters at once; `_writes` counts them.
        self._changed = threading.Condition()
        self._writes = 0
        # A connection that only watches `PRAGMA data_version`: it changes whenever any
        # other connection (another thread's, another process's) commits.
        self._watch_lock = threading.Lock()
        # This store's writers, one at a time (see `_transaction`).
        self._write_lock = threading.RLock()
        self._watch: sqlite3.Connection | None = None
        self._seen = 0
        try:
            self._open_schema(self._connection())
            self._watch = self._connect()
            self._seen = self._data_version() or 0
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    @property
    def path(self) -> str:
        """The absolute path of the database file."""
        return self._path

    def __repr__(self) -> str:
        mode = ", read_only=True" if self._read_only else ""
        return f"SqliteLeaseStore({self._path!r}{mode})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection of this store; later calls raise `LeaseError`.

        Call it once the threads using the store are done. Idempotent.
        """
        with self._registry:
            if self._closed:
                return
            self._closed = True
            connections = [conn for _, conn in self._connections]
            self._connections = []
        with self._watch_lock:
            if self._watch is not None:
                connections.append(self._watch)
                self._watch = None
        for conn in connections:
            conn.close()
        with self._changed:
            self._changed.notify_all()

    # -- leases --------------------------------------------------------------------------

    def add_lease(self, lease: Lease, event: AuditEvent | None = None) -> None:
        """Insert a new lease, and its event in the same transaction.

        Raises:
            LeaseError: a lease with this id exists, a time is naive, or the file cannot
                be written (read-only, full, corrupt, locked past `timeout`).
        """
        values = [lease.id, *_lease_values(lease)]
        payload = None if event is None else _event_payload(event)

        def work(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_LEASE, values)
            except sqlite3.IntegrityError as exc:
                raise LeaseError(f"a lease with id {lease.id!r} already exists") from exc
            if payload is not None:
                conn.execute(_INSERT_EVENT, (payload,))

        self._transaction(work, f"add lease {lease.id!r}")

    def update_lease(
        self,
        lease: Lease,
        *,
        expect: Iterable[LeaseState],
        event: AuditEvent | None = None,
    ) -> None:
        """Replace the stored lease of `lease.id` if its state is in `expect`, with its event.

        Raises:
            StaleStateError: the stored state is not in `expect` (or the lease is gone);
                nothing is written.
            LeaseError: the file cannot be written.
        """
        expected = sorted({state.value for state in expect})
        values = [*_lease_values(lease, next_version=True), lease.id, lease.version, *expected]
        sql = _UPDATE_LEASE + _placeholders(len(expected))
        payload = None if event is None else _event_payload(event)

        def work(conn: sqlite3.Connection) -> None:
            if not expected or conn.execute(sql, values).rowcount == 0:
                row = conn.execute(_LEASE_STATE, (lease.id,)).fetchone()
                if row is None:
                    raise StaleStateError(f"lease {lease.id!r} does not exist")
                if row[0] in expected:
                    raise StaleStateError(
                        f"lease {lease.id!r} changed meanwhile (version {row[1]}, "
                        f"read at {lease.version})"
                    )
                wanted = ", ".join(expected) or "nothing"
                raise StaleStateError(f"lease {lease.id!r} is {row[0]}, expected one of: {wanted}")
            if payload is not None:
                conn.execute(_INSERT_EVENT, (payload,))

        self._transaction(work, f"update lease {lease.id!r}")

    def update_leases(
        self, updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> list[bool]:
        """Apply many compare-and-set updates in one transaction; False for each stale one.

        Under the write lock, one read of the stored states and versions decides every
        compare-and-set in order (an update sees the ones before it, on the same lease
        too); then one statement, run for each row, writes the changed leases, and one
        more their events.
        """
        if not updates:
            return []
        prepared = [
            (
                lease.id,
                expect.value,
                lease.version,
                _lease_values(lease, next_version=True),
                None if event is None else _event_payload(event),
            )
            for lease, expect, event in updates
        ]
        ids = list(dict.fromkeys(lease_id for lease_id, *_ in prepared))

        def work(conn: sqlite3.Connection) -> list[bool]:
            stored: dict[str, tuple[int, str, int]] = {}
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                for lease_id, rid, state, version in conn.execute(
                    _lease_versions(len(chunk)), chunk
                ):
                    stored[lease_id] = (rid, state, version)
            results: list[bool] = []
            rows: list[list[object]] = []
            payloads: list[tuple[str]] = []
            for lease_id, expect, version, values, payload in prepared:
                found = stored.get(lease_id)
                if found is None or found[1] != expect or found[2] != version:
                    results.append(False)
                    continue
                rid = found[0]
                stored[lease_id] = (rid, str(values[3]), version + 1)
                rows.append([*values, rid])
                if payload is not None:
                    payloads.append((payload,))
                results.append(True)
            if rows and conn.executemany(_UPDATE_LEASE_ROW, rows).rowcount != len(rows):
                raise LeaseError(
                    f"the lease store at {self._path} changed under its own write lock"
                )
            if payloads:
                conn.executemany(_INSERT_EVENT, payloads)
            return results

        return self._transaction(work, f"update {len(prepared)} leases")

    def get_lease(self, lease_id: str) -> Lease | None:
        """One lease, or None."""
        rows = self._read(f"{_SELECT_LEASES} WHERE id = ?", (lease_id,), "read a lease")
        return self._leases(rows)[0] if rows else None

    def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """Every lease on any of `pairs` (in `states`, when given), oldest first."""
        wanted = None if states is None else sorted({state.value for state in states})
        if wanted == [] or not pairs:
            return []
        state_sql = "" if wanted is None else " AND state IN " + _placeholders(len(wanted))
        unique = list(dict.fromkeys((pair.principal_id, pair.group_id) for pair in pairs))
        rows: list[Row] = []
        for start in range(0, len(unique), _PAIRS_PER_QUERY):
            chunk = unique[start : start + _PAIRS_PER_QUERY]
            sql = _pair_leases(len(chunk)) + state_sql
            params = [item for pair in chunk for item in pair]
            rows += self._read(sql, [*params, *(wanted or [])], "read the leases of pairs")
        found = self._leases(rows)
        found.sort(key=lambda lease: lease.granted_at)
        return found

    def find_leases(
        self,
        *,
        principal_id: str | None = None,
        group_id: str | None = None,
        states: Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """Leases matching every given criterion, oldest `granted_at` first.

        Ties keep the order in which the leases were added. `limit=None` means all.
        """
        sql_limit = _check_limit(limit)
        where: list[str] = []
        params: list[object] = []
        if principal_id is not None:
            where.append("principal_id = ?")
            params.append(principal_id)
        if group_id is not None:
            where.append("group_id = ?")
            params.append(group_id)
        if states is not None:
            wanted = sorted({state.value for state in states})
            if not wanted:
                return []
            where.append("state IN " + _placeholders(len(wanted)))
            params.extend(wanted)
        sql = _SELECT_LEASES
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY granted_at, rid LIMIT ?"
        return self._leases(self._read(sql, [*params, sql_limit], "find leases"))

    def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """Leases the tracker must act on now, earliest due first.

        `ACTIVE` leases with `expires_at <= now`; `REVOKE_FAILED` leases whose `retry_at`
        (or, without one, `updated_at`) is `<= now`; `GRANTING` and `REVOKING` leases whose
        `updated_at <= stuck_before`. A stuck lease is due `now - stuck_before` after its
        `updated_at` (as `next_due` counts it); ties keep the order the leases were added.
        Reads at most `limit` rows per state through the `(state, due_at)` index.
        """
        sql_limit = _check_limit(limit)
        now_us = micros(now, "now")
        stuck_us = micros(stuck_before, "stuck_before")
        params = {"now": now_us, "stuck": stuck_us, "shift": now_us - stuck_us, "limit": sql_limit}
        return self._leases(self._read(_DUE_LEASES, params, "find due leases"))

    def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """The earliest time at which `due_leases` would return something, or None.

        For `GRANTING`/`REVOKING` leases that time is `updated_at + stuck_after`.
        """
        (row,) = self._read(_NEXT_DUE, (), "find the next due lease")
        shift = stuck_after // US
        times = [
            value + (shift if index >= 2 else 0)
            for index, value in enumerate(row)
            if value is not None
        ]
        if not times:
            return None
        return from_micros(min(max(min(times), MIN_US), MAX_US))

    # -- claims --------------------------------------------------------------------------

    def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """Claim every pair that is free, expired (`expires_at <= now`) or already `owner`'s.

        Never waits for a pair held by another owner: it is skipped. `now` is the
        caller's clock (never the system's). Returns the pairs claimed, in the order
        given; the claims expire at `until`. One transaction for the whole batch.
        """
        if not pairs:
            return []
        now_us = micros(now, "now")
        until_us = micros(until, "until")
        rows = [(p.principal_id, p.group_id, owner, until_us, now_us) for p in pairs]
        unique = list(dict.fromkeys(pairs))

        def work(conn: sqlite3.Connection) -> set[Pair]:
            conn.executemany(_CLAIM, rows)
            # Every pair now held by `owner` was claimed by this call (the transaction
            # holds the write lock): read those back, a chunk of pairs at a time.
            held: set[Pair] = set()
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                sql = _held_claims(len(chunk))
                params: list[object] = []
                for pair in chunk:
                    params += (pair.principal_id, pair.group_id)
                params.append(owner)
                held.update(Pair(p, g) for p, g in conn.execute(sql, params))
            return held

        held = self._transaction(work, f"claim {len(unique)} pair(s)", synced=False)
        return [pair for pair in pairs if pair in held]

    def renew_pairs(self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime) -> list[Pair]:
        """Extend `owner`'s claims on `pairs` to `until`; returns those still `owner`'s."""
        if not pairs:
            return []
        until_us = micros(until, "until")
        unique = list(dict.fromkeys(pairs))

        def work(conn: sqlite3.Connection) -> set[Pair]:
            # Under the write lock: read which pairs `owner` holds, then renew those.
            held: set[Pair] = set()
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                params: list[object] = []
                for pair in chunk:
                    params += (pair.principal_id, pair.group_id)
                params.append(owner)
                held.update(Pair(p, g) for p, g in conn.execute(_held_claims(len(chunk)), params))
            renewals = [(until_us, pair.principal_id, pair.group_id, owner) for pair in held]
            if renewals:
                conn.executemany(_RENEW, renewals)
            return held

        renewed = self._transaction(work, f"renew {len(unique)} claim(s)", synced=False)
        return [pair for pair in pairs if pair in renewed]

    def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """Release `owner`'s claims on `pairs` (others' claims are left alone)."""
        if not pairs:
            return
        rows = [(p.principal_id, p.group_id, owner) for p in pairs]
        self._transaction(
            lambda conn: conn.executemany(_RELEASE, rows),
            f"release {len(rows)} pair(s)",
            synced=False,
        )

    # -- outbox --------------------------------------------------------------------------

    def add_event(self, event: AuditEvent) -> None:
        """Append an event that comes with no state change (drift, say)."""
        payload = _event_payload(event)
        self._transaction(
            lambda conn: conn.execute(_INSERT_EVENT, (payload,)),
            "add an event",
        )

    def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """Events not yet delivered, in the order written (at most `limit`)."""
        rows = self._read(
            _PENDING_EVENTS,
            (_check_limit(limit),),
            "read pending events",
        )
        try:
            return [
                StoredEvent(seq, AuditEvent.from_json(json.loads(payload))) for seq, payload in rows
            ]
        except (KeyError, ValueError, TypeError) as exc:
            raise LeaseError(
                f"the lease store at {self._path} holds an event this version cannot read: {exc!r}"
            ) from exc

    def mark_delivered(self, seqs: Sequence[int]) -> None:
        """Mark events delivered; unknown or already delivered sequence numbers are ignored.

        Delivered events stay in the file with their delivery time (the system clock's:
        a record for people, not a decision).
        """
        if not seqs:
            return
        at = micros(dt.datetime.now(UTC), "delivery time")
        rows = [(at, seq) for seq in seqs]
        self._transaction(
            lambda conn: conn.executemany(_MARK_DELIVERED, rows),
            f"mark {len(rows)} event(s) delivered",
        )

    # -- access requests -----------------------------------------------------------------

    def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """Insert a new access request and its event.

        Raises:
            LeaseError: a request with this id exists, a time is naive, or the file cannot
                be written.
        """
        values = [request.id, *_request_values(request)]
        payload = None if event is None else _event_payload(event)

        def work(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_REQUEST, values)
            except sqlite3.IntegrityError as exc:
                raise LeaseError(
                    f"an access request with id {request.id!r} already exists"
                ) from exc
            if payload is not None:
                conn.execute(_INSERT_EVENT, (payload,))

        self._transaction(work, f"add access request {request.id!r}")

    def update_request(
        self,
        request: AccessRequest,
        *,
        expect: Iterable[RequestState],
        event: AuditEvent | None = None,
    ) -> None:
        """Replace a request if its stored state is in `expect`, with its event.

        Raises:
            StaleStateError: the stored state is not in `expect`, or the request is gone.
            LeaseError: the file cannot be written.
        """
        expected = sorted({state.value for state in expect})
        values = [*_request_values(request), request.id, *expected]
        sql = _UPDATE_REQUEST + _placeholders(len(expected))
        payload = None if event is None else _event_payload(event)

        def work(conn: sqlite3.Connection) -> None:
            if not expected or conn.execute(sql, values).rowcount == 0:
                row = conn.execute(_REQUEST_STATE, (request.id,)).fetchone()
                if row is None:
                    raise StaleStateError(f"access request {request.id!r} does not exist")
                wanted = ", ".join(expected) or "nothing"
                raise StaleStateError(
                    f"access request {request.id!r} is {row[0]}, expected one of: {wanted}"
                )
            if payload is not None:
                conn.execute(_INSERT_EVENT, (payload,))

        self._transaction(work, f"update access request {request.id!r}")

    def get_request(self, request_id: str) -> AccessRequest | None:
        """One access request, or None."""
        rows = self._read(
            f"{_SELECT_REQUESTS} WHERE id = ?", (request_id,), "read an access request"
        )
        return self._requests(rows)[0] if rows else None

    def find_requests(
        self,
        *,
        states: Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """Requests matching every given criterion, oldest `created_at` first.

        Ties keep the order in which the requests were added. `limit=None` means all.
        """
        sql_limit = _check_limit(limit)
        where: list[str] = []
        params: list[object] = []
        if states is not None:
            wanted = sorted({state.value for state in states})
            if not wanted:
                return []
            where.append("state IN " + _placeholders(len(wanted)))
            params.extend(wanted)
        if principal_id is not None:
            where.append("principal_id = ?")
            params.append(principal_id)
        if group_id is not None:
            where.append("group_id = ?")
            params.append(group_id)
        sql = _SELECT_REQUESTS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rid LIMIT ?"
        return self._requests(self._read(sql, [*params, sql_limit], "find access requests"))

    # -- wake-ups ------------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Block until the file changes, or `timeout` seconds pass.

        Any commit counts: through this object from any thread (seen at once), or by
        another process or connection (seen within 50 ms, by polling
        `PRAGMA data_version`, which costs no disk read). A change made since the
        previous `wait_for_change` returned counts too, so a write that lands between a
        caller's last read and its wait is never missed; the price is an early return
        after the caller's own writes, which callers handle by re-checking.

        Returns:
            True when a change was seen, False when the timeout passed without one
            (or the store was closed while waiting).
        """
        return self._wait_for_commit(timeout)
