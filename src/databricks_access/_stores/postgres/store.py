"""`PostgresLeaseStore`: the sync store, running the shared plans on a connection pool.

It owns the connections (opened in `__init__`), each method's transaction and its
retries, and the wake-ups (a listening connection and a socket pair, under `select`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from typing_extensions import Self

from databricks_access._errors import LeaseError
from databricks_access._leases.values import (
    AccessRequest,
    AuditEvent,
    Lease,
    LeaseState,
    Pair,
    RequestState,
    StoredEvent,
)
from databricks_access._sansio import run_sync
from databricks_access._stores.postgres import plans
from databricks_access._stores.postgres.notify import _RELISTEN_SECONDS, _drain_notifies, _new_own
from databricks_access._stores.postgres.plans import (
    Work,
    _Call,
    _Exec,
    _Result,
)
from databricks_access._stores.postgres.recovery import (
    _after,
    _Attempt,
    _error,
    _first_line,
    _Retry,
    _unknown,
)
from databricks_access._stores.postgres.schema import (
    SCHEMA_VERSION,
    _check_server,
    _is_current,
    _upgrade,
    _version,
)
from databricks_access._stores.postgres.settings import _Settings
from databricks_access._stores.postgres.sql import (
    _ANNOUNCE,
    _LISTEN,
    _SET_LOCK_TIMEOUT,
    _TXID_STATUS,
    CHANNEL,
    _Sql,
)
from databricks_access._stores.rows import Row

# psycopg is the optional extra: without it this module still imports, and building a
# store raises the `ConfigError` of `settings._MISSING`.
with contextlib.suppress(ImportError):
    import psycopg
    import psycopg_pool

if TYPE_CHECKING:
    from psycopg.rows import TupleRow

__all__ = ["PostgresLeaseStore"]

T = TypeVar("T")


class PostgresLeaseStore:
    """A `LeaseStore` on PostgreSQL, shared by any number of replicas.

    The store creates its schema (or migrates it) when opened, keeps a pool of
    connections (`min_size` to `max_size`), runs each method as one short transaction,
    and listens for the other replicas' writes on one more connection::

        with da.PostgresLeaseStore("postgresql://jit@db.internal:5432/jit") as store:
            tracker = da.LeaseTracker(manager, store=store)
            tracker.run(stop=stop)

    Passwords belong in `PGPASSWORD`, a `~/.pgpass` file or a client certificate rather
    than in the URL; every libpq setting and `PG*` environment variable applies. Use one
    store per process (after a `fork()`, open a new one).

    Args:
        conninfo: A `postgresql://` URL or a libpq `key=value` string.
        schema: The PostgreSQL schema that holds the store's tables, created if missing.
            Several stores can share one database under different schemas.
        min_size: Connections the pool keeps open.
        max_size: Connections the pool opens at most (threads beyond it wait).
        timeout: Seconds to wait for a connection (from the pool, or to the server) and
            for a row lock, before failing with `LeaseError`.
        application_name: How the connections appear in `pg_stat_activity` (unless the
            conninfo names one).

    Raises:
        ConfigError: An argument is malformed.
        LeaseError: The server cannot be reached, the schema belongs to something else or
            to a newer databricks_access, or the user may not create it.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "databricks_access",
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 30.0,
        application_name: str = "databricks_access",
    ) -> None:
        self._settings = _Settings.build(
            conninfo,
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            application_name=application_name,
        )
        self._pid = os.getpid()
        self._closed = False
        self._state = threading.Lock()
        # Every write through this object counts in `_writes`; `_seen` is the count the
        # last wait returned at. Its NOTIFY carries `_own`, which its listener ignores.
        self._writes = 0
        self._seen = 0
        self._own = _new_own(schema)
        # One waiter at a time reads the listening connection; a byte on `_wake_w` wakes
        # it (a write through this object, or close()).
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection[TupleRow] | None = None
        self._relisten_at = 0.0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.settimeout(0.0)
        self._wake_w.settimeout(0.0)
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[TupleRow]] | None = None
        try:
            self._sql = self._open()
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    @property
    def schema(self) -> str:
        """The PostgreSQL schema that holds the store's tables."""
        return self._settings.schema

    def __repr__(self) -> str:
        return f"PostgresLeaseStore({self._settings.url!r}, schema={self._settings.schema!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------

    def _connect(self, **overrides: Any) -> psycopg.Connection[TupleRow]:
        s = self._settings
        return psycopg.connect(s.conninfo, **{**s.kwargs, **overrides})

    def _configure(self, conn: psycopg.Connection[TupleRow]) -> None:
        conn.execute(_SET_LOCK_TIMEOUT, (self._settings.lock_timeout,))

    def _open(self) -> _Sql:
        s = self._settings
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise LeaseError(f"cannot connect to {s.where}: {_first_line(exc)}") from exc
        try:
            _check_server(conn, s.where)
            st = _Sql(s.schema, s.where, conn)
            if not _is_current(self._drive(conn, _version(st))[0]):
                with conn.transaction():
                    self._drive(conn, _upgrade(st))
            conn.execute(_LISTEN)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise _error(exc, s, f"create or upgrade its schema to {SCHEMA_VERSION}") from exc
            raise
        self._listener = conn
        self._pool = psycopg_pool.ConnectionPool(
            s.conninfo,
            kwargs=s.kwargs,
            min_size=s.min_size,
            max_size=s.max_size,
            timeout=s.timeout,
            configure=self._configure,
            open=False,
            name=f"databricks_access:{s.schema}",
        )
        try:
            self._pool.open(wait=True, timeout=s.timeout)
        except psycopg.Error as exc:
            raise _error(exc, s, "open its connection pool") from exc
        return st

    def _usable(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[TupleRow]]:
        if self._closed or self._pool is None:
            raise LeaseError(f"{self._settings.where} is closed")
        if self._pid != os.getpid():
            raise LeaseError(
                f"{self._settings.where} was opened in process {self._pid}, before a fork(): "
                "open a new PostgresLeaseStore in this process"
            )
        return self._pool

    def close(self) -> None:
        """Close the pool and the listening connection; later calls raise `LeaseError`.

        Threads waiting in `wait_for_change` return False. Idempotent.
        """
        with self._state:
            if self._closed:
                return
            self._closed = True
        self._wake()
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._wake_r.close()
            self._wake_w.close()

    # -- transactions --------------------------------------------------------------------

    @staticmethod
    def _execute(conn: psycopg.Connection[TupleRow], step: _Exec) -> _Result:
        with conn.cursor() as cur:
            if step.many is None:
                cur.execute(step.sql, step.params)
                rows = cur.fetchall() if cur.description is not None else []
                return _Result(rows, cur.rowcount, [rows])
            if not step.many:
                return _Result([], 0, [])
            cur.executemany(step.sql, step.many, returning=True)
            sets: list[list[Row]] = []
            count = 0
            while True:
                sets.append(cur.fetchall() if cur.description is not None else [])
                count += max(cur.rowcount, 0)
                if not cur.nextset():
                    break
            return _Result([row for rows in sets for row in rows], count, sets)

    def _drive(self, conn: psycopg.Connection[TupleRow], work: Work[T]) -> tuple[T, int]:
        """Run a plan's statements on `conn`: its value, and how many rows it changed."""
        changed = 0

        def handle(step: _Exec) -> _Result:
            nonlocal changed
            result = self._execute(conn, step)
            if step.write:
                changed += max(result.rowcount, 0)
            return result

        return run_sync(work, handle), changed

    def _run(self, call: _Call[T]) -> T:
        """Run one method: one transaction (a read: one statement), retried when safe.

        See the module docstring for when a failed transaction runs again.
        """
        if call.work is None:
            self._usable()
            return cast("T", call.value)
        s = self._settings
        tries = {"reconnects": 1, "conflicts": 0}
        while True:
            pool = self._usable()
            attempt = _Attempt()
            try:
                with pool.connection(timeout=s.timeout) as conn:
                    attempt.conn = conn
                    if not call.write:
                        return self._drive(conn, call.work(self._sql))[0]
                    with conn.transaction():
                        value, changed = self._drive(conn, call.work(self._sql))
                        if changed:
                            row = conn.execute(_ANNOUNCE, (CHANNEL, self._own)).fetchone()
                            attempt.xid = None if row is None else int(row[1])
                        attempt.value = value
                        attempt.committing = True
            except psycopg.Error as exc:
                try:
                    retry = _after(exc, attempt, tries, self._closed)
                except psycopg.Error:
                    raise _error(exc, s, call.doing) from exc
                if attempt.lost:
                    pool.check()  # after a server restart, every idle connection is dead
                if retry is _Retry.ASK:
                    status = self._txid_status(pool, attempt.xid)
                    if status == "committed":
                        self._changed()
                        return cast("T", attempt.value)
                    if status != "aborted" or not tries["reconnects"]:
                        raise _unknown(exc, s, call.doing) from exc
                    tries["reconnects"] -= 1
                continue
            except UnicodeError as exc:
                raise _error(exc, s, call.doing) from exc
            if changed:
                self._changed()
            return value

    def _txid_status(
        self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[TupleRow]], xid: int | None
    ) -> str | None:
        try:
            with pool.connection(timeout=self._settings.timeout) as conn:
                row = conn.execute(_TXID_STATUS, (xid,)).fetchone()
        except psycopg.Error:
            return None
        return None if row is None else str(row[0])

    # -- leases --------------------------------------------------------------------------

    def add_lease(self, lease: Lease, event: AuditEvent | None = None) -> None:
        """Insert a new lease, and its event in the same transaction.

        Raises:
            LeaseError: a lease with this id exists, a time is naive, or the database
                cannot be written.
        """
        self._run(plans.add_lease(lease, event))

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
            LeaseError: the database cannot be written.
        """
        self._run(plans.update_lease(lease, expect, event))

    def update_leases(
        self, updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> list[bool]:
        """Apply many compare-and-set updates in one transaction; False for each stale one.

        The updates run in order (pipelined: one round trip), so each sees the ones before
        it; events are written for the applied ones only, in the same order.
        """
        return self._run(plans.update_leases(updates))

    def get_lease(self, lease_id: str) -> Lease | None:
        """One lease, or None."""
        return self._run(plans.get_lease(lease_id))

    def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """Every lease on any of `pairs` (in `states`, when given), oldest first.

        One query for the whole batch, an index lookup per pair; ties keep the order in
        which the leases were added.
        """
        return self._run(plans.leases_on_pairs(pairs, states))

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
        return self._run(plans.find_leases(principal_id, group_id, states, limit))

    def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """Leases the tracker must act on now, earliest due first.

        `ACTIVE` leases with `expires_at <= now`; `REVOKE_FAILED` leases whose `retry_at`
        (or, without one, `updated_at`) is `<= now`; `GRANTING` and `REVOKING` leases whose
        `updated_at <= stuck_before`. A stuck lease is due `now - stuck_before` after its
        `updated_at` (as `next_due` counts it); ties keep the order the leases were added.

        Reads at most `limit` rows per state through the `(state, due_at)` index, and
        skips rows another transaction holds locked at that moment (another replica
        reading or updating them), so replicas that ask at once get different leases.
        """
        return self._run(plans.due_leases(now, stuck_before, limit))

    def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """The earliest time at which `due_leases` would return something, or None.

        For `GRANTING`/`REVOKING` leases that time is `updated_at + stuck_after`.
        """
        return self._run(plans.next_due(stuck_after))

    # -- claims --------------------------------------------------------------------------

    def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """Claim every pair that is free, expired (`expires_at <= now`) or already `owner`'s.

        Never waits for a pair held by another owner, or being claimed or released by
        another transaction at this moment: it is skipped. `now` is the caller's clock
        (never the database's). Returns the pairs claimed, in the order given; the claims
        expire at `until`. One transaction for the whole batch.
        """
        return self._run(plans.claim_pairs(pairs, owner, now, until))

    def renew_pairs(self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime) -> list[Pair]:
        """Extend `owner`'s claims on `pairs` to `until`; returns those still `owner`'s."""
        return self._run(plans.renew_pairs(pairs, owner, until))

    def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """Release `owner`'s claims on `pairs` (others' claims are left alone)."""
        self._run(plans.release_pairs(pairs, owner))

    # -- outbox --------------------------------------------------------------------------

    def add_event(self, event: AuditEvent) -> None:
        """Append an event that comes with no state change (drift, say)."""
        self._run(plans.add_event(event))

    def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """Events not yet delivered, in the order written (at most `limit`).

        Each replica delivers what it finds pending, so with several replicas an event
        may reach the sink more than once (delivery is at least once, as after a crash).
        """
        return self._run(plans.pending_events(limit))

    def mark_delivered(self, seqs: Sequence[int]) -> None:
        """Mark events delivered; unknown or already delivered sequence numbers are ignored.

        Delivered events stay in the table with their delivery time (the system clock's:
        a record for people, not a decision).
        """
        self._run(plans.mark_delivered(seqs))

    # -- access requests -----------------------------------------------------------------

    def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """Insert a new access request and its event.

        Raises:
            LeaseError: a request with this id exists, a time is naive, or the database
                cannot be written.
        """
        self._run(plans.add_request(request, event))

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
            LeaseError: the database cannot be written.
        """
        self._run(plans.update_request(request, expect, event))

    def get_request(self, request_id: str) -> AccessRequest | None:
        """One access request, or None."""
        return self._run(plans.get_request(request_id))

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
        return self._run(plans.find_requests(states, principal_id, group_id, limit))

    # -- wake-ups ------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._wake_w.send(b"\0")

    def _changed(self) -> None:
        with self._state:
            self._writes += 1
        self._wake()

    def wait_for_change(self, timeout: float) -> bool:
        """Block until the store changes, or `timeout` seconds pass.

        Any committed change counts: through this object from any thread (seen at once),
        or by another store object, process or replica (announced with `NOTIFY`, received
        on a dedicated `LISTEN`ing connection). A change made since the previous
        `wait_for_change` returned counts too, so a write that lands between a caller's
        last read and its wait is never missed; the price is an early return after the
        caller's own writes, which callers handle by re-checking.

        When the listening connection is lost (a server restart) it is opened again, and
        the wait returns True then: changes may have been missed meanwhile. While the
        server is unreachable, waits time out (False) rather than raise.

        Returns:
            True when a change was seen, False when the timeout passed without one
            (or the store was closed while waiting).
        """
        self._usable()
        timeout = max(float(timeout), 0.0)
        deadline = time.monotonic() + timeout
        if not self._listen_lock.acquire(timeout=timeout):
            return False
        try:
            while True:
                if self._closed:
                    return False
                with self._state:
                    if self._writes != self._seen:
                        self._seen = self._writes
                        return True
                if self._poll():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._block(remaining)
        finally:
            self._listen_lock.release()

    def _poll(self) -> bool:
        """Consume what the listener received: True for a relevant change or a reconnect."""
        if self._listener is None:
            return time.monotonic() >= self._relisten_at and self._relisten()
        try:
            return _drain_notifies(self._listener, self._settings.schema, self._own)
        except psycopg.Error:
            self._listener.close()
            self._listener = None
            self._relisten()
            return True  # changes may have been missed while the connection was down

    def _relisten(self) -> bool:
        self._relisten_at = time.monotonic() + _RELISTEN_SECONDS
        try:
            conn = self._connect(connect_timeout=2)
        except psycopg.Error:
            return False
        try:
            conn.execute(_LISTEN)
        except psycopg.Error:
            conn.close()
            return False
        self._listener = conn
        return True

    def _block(self, remaining: float) -> None:
        """Wait for the listener's socket, a wake-up byte, or `remaining` seconds."""
        readers: list[Any] = [self._wake_r]
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error):
                readers.append(self._listener.pgconn.socket)
        else:
            remaining = min(remaining, max(self._relisten_at - time.monotonic(), 0.0))
        try:
            ready, _, _ = select.select(readers, [], [], remaining)
        except (OSError, ValueError):  # a descriptor closed under us: look again
            return
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
