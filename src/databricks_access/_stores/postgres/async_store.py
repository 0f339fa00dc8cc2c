"""`AsyncPostgresLeaseStore`: the asyncio store, running the shared plans on psycopg's async API.

It opens on first use, in one event loop, and owns its pool, each method's transaction
and its retries, and the wake-ups (a listening connection watched by the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
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
from databricks_access._sansio import run_async
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

__all__ = ["AsyncPostgresLeaseStore"]

T = TypeVar("T")


class AsyncPostgresLeaseStore:
    """`PostgresLeaseStore` on asyncio: the same methods, awaited, on psycopg's async API.

    The store opens (pool, schema, listener) on first use, or explicitly with
    `await store.open()` or `async with`; from then on it belongs to that event loop::

        async with da.AsyncPostgresLeaseStore("postgresql://jit@db.internal/jit") as store:
            tracker = da.AsyncLeaseTracker(manager, store=store)
            await tracker.run(stop)

    Args:
        conninfo: A `postgresql://` URL or a libpq `key=value` string.
        schema: The PostgreSQL schema that holds the store's tables, created if missing.
        min_size: Connections the pool keeps open.
        max_size: Connections the pool opens at most (tasks beyond it wait).
        timeout: Seconds to wait for a connection and for a row lock.
        application_name: How the connections appear in `pg_stat_activity`.

    Raises:
        ConfigError: An argument is malformed (at once; the server is reached on open).
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
        self._closed = False
        self._writes = 0
        self._seen = 0
        self._own = _new_own(schema)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[None] | None = None
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] | None
        self._pool = None
        self._sql: _Sql | None = None
        self._listener: psycopg.AsyncConnection[TupleRow] | None = None
        self._relisten_at = 0.0
        # Made in the store's event loop when it opens.
        self._listen_lock: asyncio.Lock | None = None
        self._kick: asyncio.Event | None = None

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    @property
    def schema(self) -> str:
        """The PostgreSQL schema that holds the store's tables."""
        return self._settings.schema

    def __repr__(self) -> str:
        s = self._settings
        return f"AsyncPostgresLeaseStore({s.url!r}, schema={s.schema!r})"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- connections ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or migrate the schema, and start listening (idempotent).

        Raises:
            LeaseError: The server cannot be reached, the schema belongs to something
                else or to a newer databricks_access, or the store is closed.
        """
        await self._ready()

    async def _ready(self) -> _Sql:
        if self._closed:
            raise LeaseError(f"{self._settings.where} is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise LeaseError(
                f"{self._settings.where} was opened in another event loop; use one "
                "AsyncPostgresLeaseStore per event loop"
            )
        if self._sql is not None:
            return self._sql
        if self._opening is None:
            self._loop = loop
            self._opening = loop.create_task(self._open())
        opening = self._opening
        try:
            await asyncio.shield(opening)
        except BaseException:
            if opening.done() and self._opening is opening:
                # Let a later call try again: the server may be up by then.
                self._opening = None
                self._loop = None
            raise
        return self._opened()

    def _opened(self) -> _Sql:
        if self._sql is None or self._closed:
            raise LeaseError(f"{self._settings.where} is closed")
        return self._sql

    async def _connect(self, **overrides: Any) -> psycopg.AsyncConnection[TupleRow]:
        s = self._settings
        return await psycopg.AsyncConnection.connect(s.conninfo, **{**s.kwargs, **overrides})

    async def _configure(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        await conn.execute(_SET_LOCK_TIMEOUT, (self._settings.lock_timeout,))

    async def _open(self) -> None:
        s = self._settings
        try:
            conn = await self._connect()
        except psycopg.Error as exc:
            raise LeaseError(f"cannot connect to {s.where}: {_first_line(exc)}") from exc
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] | None = None
        try:
            _check_server(conn, s.where)
            st = _Sql(s.schema, s.where, conn)
            if not _is_current((await self._drive(conn, _version(st)))[0]):
                async with conn.transaction():
                    await self._drive(conn, _upgrade(st))
            await conn.execute(_LISTEN)
            pool = psycopg_pool.AsyncConnectionPool(
                s.conninfo,
                kwargs=s.kwargs,
                min_size=s.min_size,
                max_size=s.max_size,
                timeout=s.timeout,
                configure=self._configure,
                open=False,
                name=f"databricks_access:{s.schema}",
            )
            await pool.open(wait=True, timeout=s.timeout)
        except BaseException as exc:
            if pool is not None:
                await pool.close()
            await conn.close()
            if isinstance(exc, psycopg.Error):
                raise _error(exc, s, f"open it (schema version {SCHEMA_VERSION})") from exc
            raise
        if self._closed:  # closed while opening
            await pool.close()
            await conn.close()
            return
        self._listen_lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._listener = conn
        self._pool = pool
        self._sql = st

    async def close(self) -> None:
        """Close the pool and the listening connection; later calls raise `LeaseError`.

        Tasks waiting in `wait_for_change` return False. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if self._kick is not None:
            self._kick.set()
        opening = self._opening
        if opening is not None and not opening.done():
            with contextlib.suppress(Exception):
                await opening
        if self._pool is not None:
            await self._pool.close()
        if self._listen_lock is not None:
            async with self._listen_lock:
                await self._close_listener()
        else:
            await self._close_listener()

    async def _close_listener(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()

    # -- transactions --------------------------------------------------------------------

    @staticmethod
    async def _execute(conn: psycopg.AsyncConnection[TupleRow], step: _Exec) -> _Result:
        async with conn.cursor() as cur:
            if step.many is None:
                await cur.execute(step.sql, step.params)
                rows = await cur.fetchall() if cur.description is not None else []
                return _Result(rows, cur.rowcount, [rows])
            if not step.many:
                return _Result([], 0, [])
            await cur.executemany(step.sql, step.many, returning=True)
            sets: list[list[Row]] = []
            count = 0
            while True:
                sets.append(await cur.fetchall() if cur.description is not None else [])
                count += max(cur.rowcount, 0)
                if not cur.nextset():
                    break
            return _Result([row for rows in sets for row in rows], count, sets)

    async def _drive(self, conn: psycopg.AsyncConnection[TupleRow], work: Work[T]) -> tuple[T, int]:
        """Run a plan's statements on `conn`: its value, and how many rows it changed."""
        changed = 0

        async def handle(step: _Exec) -> _Result:
            nonlocal changed
            result = await self._execute(conn, step)
            if step.write:
                changed += max(result.rowcount, 0)
            return result

        return await run_async(work, handle), changed

    async def _run(self, call: _Call[T]) -> T:
        """Run one method: one transaction, retried when safe (as `PostgresLeaseStore`)."""
        if call.work is None:
            if self._closed:
                raise LeaseError(f"{self._settings.where} is closed")
            return cast("T", call.value)
        s = self._settings
        st = await self._ready()
        tries = {"reconnects": 1, "conflicts": 0}
        while True:
            pool = self._pool
            if self._closed or pool is None:
                raise LeaseError(f"{s.where} is closed")
            attempt = _Attempt()
            try:
                async with pool.connection(timeout=s.timeout) as conn:
                    attempt.conn = conn
                    if not call.write:
                        return (await self._drive(conn, call.work(st)))[0]
                    async with conn.transaction():
                        value, changed = await self._drive(conn, call.work(st))
                        if changed:
                            cur = await conn.execute(_ANNOUNCE, (CHANNEL, self._own))
                            row = await cur.fetchone()
                            attempt.xid = None if row is None else int(row[1])
                        attempt.value = value
                        attempt.committing = True
            except psycopg.Error as exc:
                try:
                    retry = _after(exc, attempt, tries, self._closed)
                except psycopg.Error:
                    raise _error(exc, s, call.doing) from exc
                if attempt.lost:
                    await pool.check()
                if retry is _Retry.ASK:
                    status = await self._txid_status(pool, attempt.xid)
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

    async def _txid_status(
        self,
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]],
        xid: int | None,
    ) -> str | None:
        try:
            async with pool.connection(timeout=self._settings.timeout) as conn:
                cur = await conn.execute(_TXID_STATUS, (xid,))
                row = await cur.fetchone()
        except psycopg.Error:
            return None
        return None if row is None else str(row[0])

    # -- the protocol --------------------------------------------------------------------

    async def add_lease(self, lease: Lease, event: AuditEvent | None = None) -> None:
        """See `PostgresLeaseStore.add_lease`."""
        await self._run(plans.add_lease(lease, event))

    async def update_lease(
        self,
        lease: Lease,
        *,
        expect: Iterable[LeaseState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `PostgresLeaseStore.update_lease`."""
        await self._run(plans.update_lease(lease, expect, event))

    async def update_leases(
        self, updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> list[bool]:
        """See `PostgresLeaseStore.update_leases`."""
        return await self._run(plans.update_leases(updates))

    async def get_lease(self, lease_id: str) -> Lease | None:
        """See `PostgresLeaseStore.get_lease`."""
        return await self._run(plans.get_lease(lease_id))

    async def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """See `PostgresLeaseStore.leases_on_pairs`."""
        return await self._run(plans.leases_on_pairs(pairs, states))

    async def find_leases(
        self,
        *,
        principal_id: str | None = None,
        group_id: str | None = None,
        states: Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """See `PostgresLeaseStore.find_leases`."""
        return await self._run(plans.find_leases(principal_id, group_id, states, limit))

    async def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """See `PostgresLeaseStore.due_leases`."""
        return await self._run(plans.due_leases(now, stuck_before, limit))

    async def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """See `PostgresLeaseStore.next_due`."""
        return await self._run(plans.next_due(stuck_after))

    async def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """See `PostgresLeaseStore.claim_pairs`."""
        return await self._run(plans.claim_pairs(pairs, owner, now, until))

    async def renew_pairs(
        self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime
    ) -> list[Pair]:
        """See `PostgresLeaseStore.renew_pairs`."""
        return await self._run(plans.renew_pairs(pairs, owner, until))

    async def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """See `PostgresLeaseStore.release_pairs`."""
        await self._run(plans.release_pairs(pairs, owner))

    async def add_event(self, event: AuditEvent) -> None:
        """See `PostgresLeaseStore.add_event`."""
        await self._run(plans.add_event(event))

    async def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """See `PostgresLeaseStore.pending_events`."""
        return await self._run(plans.pending_events(limit))

    async def mark_delivered(self, seqs: Sequence[int]) -> None:
        """See `PostgresLeaseStore.mark_delivered`."""
        await self._run(plans.mark_delivered(seqs))

    async def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """See `PostgresLeaseStore.add_request`."""
        await self._run(plans.add_request(request, event))

    async def update_request(
        self,
        request: AccessRequest,
        *,
        expect: Iterable[RequestState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `PostgresLeaseStore.update_request`."""
        await self._run(plans.update_request(request, expect, event))

    async def get_request(self, request_id: str) -> AccessRequest | None:
        """See `PostgresLeaseStore.get_request`."""
        return await self._run(plans.get_request(request_id))

    async def find_requests(
        self,
        *,
        states: Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """See `PostgresLeaseStore.find_requests`."""
        return await self._run(plans.find_requests(states, principal_id, group_id, limit))

    # -- wake-ups ------------------------------------------------------------------------

    def _changed(self) -> None:
        self._writes += 1
        if self._kick is not None:
            self._kick.set()

    async def wait_for_change(self, timeout: float) -> bool:
        """See `PostgresLeaseStore.wait_for_change`."""
        await self._ready()
        lock, kick = self._listen_lock, self._kick
        if lock is None or kick is None:  # pragma: no cover - both are set by _ready()
            raise LeaseError(f"{self._settings.where} is closed")
        timeout = max(float(timeout), 0.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not lock.locked():
            await lock.acquire()  # free: taken at once, without suspending
        elif timeout <= 0:
            return False
        else:
            try:
                await asyncio.wait_for(lock.acquire(), timeout)
            except asyncio.TimeoutError:
                return False
        try:
            while True:
                kick.clear()
                if self._closed:
                    return False
                if self._writes != self._seen:
                    self._seen = self._writes
                    return True
                if await self._poll():
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                await self._block(kick, remaining)
        finally:
            lock.release()

    async def _poll(self) -> bool:
        if self._listener is None:
            return time.monotonic() >= self._relisten_at and await self._relisten()
        try:
            return _drain_notifies(self._listener, self._settings.schema, self._own)
        except psycopg.Error:
            await self._close_listener()
            await self._relisten()
            return True  # changes may have been missed while the connection was down

    async def _relisten(self) -> bool:
        self._relisten_at = time.monotonic() + _RELISTEN_SECONDS
        try:
            conn = await self._connect(connect_timeout=2)
        except psycopg.Error:
            return False
        try:
            await conn.execute(_LISTEN)
        except psycopg.Error:
            await conn.close()
            return False
        if self._closed:
            await conn.close()
            return False
        self._listener = conn
        return True

    async def _block(self, kick: asyncio.Event, remaining: float) -> None:
        """Wait for the listener's socket, a write through this object, or `remaining` s."""
        loop = asyncio.get_running_loop()
        fd: int | None = None
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error):
                fd = self._listener.pgconn.socket
        else:
            remaining = min(remaining, max(self._relisten_at - time.monotonic(), 0.0))
        if fd is not None:
            loop.add_reader(fd, kick.set)
        try:
            await asyncio.wait_for(kick.wait(), remaining)
        except asyncio.TimeoutError:
            pass
        finally:
            if fd is not None:
                loop.remove_reader(fd)
