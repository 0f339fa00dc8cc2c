"""The SQLite lease store's file: connections, transactions, errors in words, its schema.

`_SqliteFile` is what `SqliteLeaseStore` is built on: it opens the file (WAL mode, one
connection per thread, none across `fork()`), creates or migrates its schema, runs each
write as one `BEGIN IMMEDIATE` transaction, says in words what went wrong with the file
(or that it holds a row this version cannot read), and waits for commits of other
connections by watching `PRAGMA data_version`.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from databricks_access._errors import LeaseError
from databricks_access._leases.values import AccessRequest, Lease
from databricks_access._stores.rows import Row
from databricks_access._stores.sqlite.schema import (
    _APPLICATION_ID,
    _MIGRATIONS,
    _SCHEMA,
    SCHEMA_VERSION,
)
from databricks_access._stores.sqlite.sql import _lease, _request

__all__ = ["_SqliteFile"]

T = TypeVar("T")

# How often `wait_for_change` looks for commits made by other processes.
_POLL_SECONDS = 0.05
# A wait for this process's write lock longer than this shortens SQLite's busy timeout
# for the transaction, so that a write waits no longer than `timeout` in all.
_LOCK_SLACK = 0.05

# Primary SQLite result codes (`sqlite_errorcode & 0xFF`, Python 3.11+).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14
_SQLITE_NOTADB = 26


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in {_SQLITE_BUSY, _SQLITE_LOCKED}
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _SqliteFile:
    """The lease store's file; `SqliteLeaseStore` opens it and adds the `LeaseStore` methods.

    The attributes are set by `SqliteLeaseStore.__init__`.
    """

    _path: str
    _timeout: float
    _read_only: bool
    _synchronous: str
    _local: threading.local
    _registry: threading.Lock
    _connections: list[tuple[threading.Thread, sqlite3.Connection]]
    _closed: bool
    _pid: int
    _changed: threading.Condition
    _writes: int
    _watch_lock: threading.Lock
    _write_lock: threading.RLock
    _watch: sqlite3.Connection | None
    _seen: int

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            target, uri = pathlib.Path(self._path).as_uri() + "?mode=ro", True
        else:
            target, uri = self._path, False
        try:
            conn = sqlite3.connect(
                target,
                timeout=self._timeout,
                isolation_level=None,  # explicit BEGIN IMMEDIATE / COMMIT, nothing implicit
                check_same_thread=False,  # used by its own thread; closed by close()
                uri=uri,
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "open it") from exc
        try:
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open it") from exc
        return conn

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._closed and self._pid == os.getpid():
            return conn
        with self._registry:
            self._check_usable()
            # Threads come and go (thread pools); close the connections of dead ones.
            alive = []
            for thread, old in self._connections:
                if thread.is_alive():
                    alive.append((thread, old))
                else:
                    old.close()
            conn = self._connect()
            alive.append((threading.current_thread(), conn))
            self._connections = alive
        self._local.conn = conn
        return conn

    def _check_usable(self) -> None:
        if self._closed:
            raise LeaseError(f"the lease store at {self._path} is closed")
        if self._pid != os.getpid():
            raise LeaseError(
                f"the lease store at {self._path} was opened in process {self._pid}, before a "
                "fork(): open a new SqliteLeaseStore in this process"
            )

    # -- errors and transactions ---------------------------------------------------------

    def _error(self, exc: sqlite3.Error, doing: str) -> LeaseError:
        """A `LeaseError` that says what went wrong with the file, in words."""
        where = f"the lease store at {self._path}"
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc)
        low = text.lower()
        if primary == _SQLITE_READONLY or "readonly" in low:
            message = f"{where} is read-only: cannot {doing} ({text})"
        elif primary == _SQLITE_FULL or " is full" in low:
            message = (
                f"{where} is full (no space left on the disk, or the database's page "
                f"limit reached): cannot {doing} ({text})"
            )
        elif primary in {_SQLITE_CORRUPT, _SQLITE_NOTADB} or (
            "malformed" in low or "not a database" in low
        ):
            message = f"{where} is corrupt or not a SQLite database: cannot {doing} ({text})"
        elif primary in {_SQLITE_BUSY, _SQLITE_LOCKED} or "locked" in low:
            message = (
                f"{where} stayed locked by another writer for more than {self._timeout:g} s: "
                f"cannot {doing} ({text})"
            )
        elif primary == _SQLITE_CANTOPEN or "unable to open" in low:
            message = (
                f"{where} cannot be opened (does its directory exist, and may this process "
                f"read and write there?): cannot {doing} ({text})"
            )
        elif primary == _SQLITE_IOERR or "disk i/o" in low:
            message = f"{where} could not be read or written (I/O error): cannot {doing} ({text})"
        else:
            message = f"{where} failed: cannot {doing} ({text})"
        return LeaseError(message)

    def _transaction(
        self, work: Callable[[sqlite3.Connection], T], doing: str, *, synced: bool = True
    ) -> T:
        """Run `work` in one `BEGIN IMMEDIATE` transaction: all of it, or none of it.

        Waits for the write lock up to `timeout` (SQLite's busy handler, plus retries
        for the cases it does not cover); any failure rolls the whole transaction back.
        The threads of this store queue for it in the process first: each is handed it
        as soon as the previous one commits, where SQLite's busy handler would poll for
        it with growing sleeps (it still waits for writers of other processes).

        `synced=False` commits without waiting for the disk (`synchronous=NORMAL` for
        this transaction): the commit survives the process, not a power cut. For claims
        only, whose holders a power cut ends with them (every writer of a SQLite file
        is on its machine); the next synced commit makes them durable too.
        """
        if not synced and self._synchronous == "FULL":
            conn = self._connection()
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise self._error(exc, doing) from exc
            try:
                return self._transaction(work, doing)
            finally:
                with contextlib.suppress(sqlite3.Error):  # closed meanwhile: nothing to keep
                    conn.execute("PRAGMA synchronous = FULL")
        conn = self._connection()
        deadline = time.monotonic() + self._timeout
        if not self._write_lock.acquire(timeout=self._timeout):
            raise LeaseError(
                f"the lease store at {self._path} stayed locked by another writer for more "
                f"than {self._timeout:g} s: cannot {doing} (waiting for this process's writers)"
            )
        try:
            remaining = deadline - time.monotonic()
            if remaining < self._timeout - _LOCK_SLACK:
                # A long wait in the queue: SQLite's own wait gets only what is left.
                try:
                    conn.execute(f"PRAGMA busy_timeout = {max(int(remaining * 1000), 1)}")
                except sqlite3.Error as exc:
                    raise self._error(exc, doing) from exc
                try:
                    return self._write(conn, work, doing, deadline)
                finally:
                    with contextlib.suppress(sqlite3.Error):  # closed meanwhile: nothing to keep
                        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            return self._write(conn, work, doing, deadline)
        finally:
            self._write_lock.release()

    def _write(
        self,
        conn: sqlite3.Connection,
        work: Callable[[sqlite3.Connection], T],
        doing: str,
        deadline: float,
    ) -> T:
        """`_transaction`'s body, under this process's write lock."""
        pause = 0.001
        while True:
            before = conn.total_changes
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):  # already ended by the failure
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if _is_busy(exc) and remaining > 0:
                    time.sleep(min(pause, remaining))
                    pause = min(pause * 2, 0.05)
                    continue
                raise self._error(exc, doing) from exc
            except sqlite3.Error as exc:
                raise self._error(exc, doing) from exc
            if conn.total_changes != before:
                with self._changed:
                    self._writes += 1
                    self._changed.notify_all()
            return result

    def _read(
        self, sql: str, params: Sequence[object] | Mapping[str, object], doing: str
    ) -> list[Row]:
        conn = self._connection()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from exc

    # -- schema --------------------------------------------------------------------------

    def _inspect(self, conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        return version, app, tables

    def _check_schema(self, version: int, app: int, tables: set[str]) -> None:
        where = f"the lease store at {self._path}"
        if app not in {0, _APPLICATION_ID} or (version > 0 and app != _APPLICATION_ID):
            raise LeaseError(f"{where} is a SQLite file of another application, not a lease store")
        if version == 0 and tables and "leases" not in tables:
            raise LeaseError(f"{where} is a SQLite file of another application, not a lease store")
        if version > SCHEMA_VERSION:
            raise LeaseError(
                f"{where} was written by a newer databricks_access (schema version {version}; "
                f"this version reads up to {SCHEMA_VERSION}): upgrade databricks_access"
            )

    def _open_schema(self, conn: sqlite3.Connection) -> None:
        """Check the file is a lease store this version reads; create or migrate it."""
        try:
            version, app, tables = self._inspect(conn)
        except sqlite3.Error as exc:
            raise self._error(exc, "read its schema") from exc
        self._check_schema(version, app, tables)
        if self._read_only:
            if version != SCHEMA_VERSION:
                state = "is empty" if not tables else f"has schema version {version}"
                raise LeaseError(
                    f"the lease store at {self._path} {state} and needs an upgrade to "
                    f"version {SCHEMA_VERSION}, which a read-only store cannot write"
                )
            return
        self._enable_wal(conn)
        if version == SCHEMA_VERSION:
            return

        def upgrade(conn: sqlite3.Connection) -> None:
            # Again under the write lock: another process may have done it meanwhile.
            version, app, tables = self._inspect(conn)
            self._check_schema(version, app, tables)
            if version == SCHEMA_VERSION:
                return
            if not tables:
                statements: list[str] = list(_SCHEMA)
            else:
                statements = [s for v in range(version, SCHEMA_VERSION) for s in _MIGRATIONS[v]]
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")

        self._transaction(upgrade, f"upgrade its schema to version {SCHEMA_VERSION}")

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                raise self._error(exc, "switch it to WAL journal mode") from exc
            except sqlite3.Error as exc:
                raise self._error(exc, "switch it to WAL journal mode") from exc
        if str(mode).lower() != "wal":
            raise LeaseError(
                f"the lease store at {self._path} cannot use WAL journal mode (it stays in "
                f"{mode!r} mode); put it on a local file system"
            )

    def _data_version(self) -> int | None:
        """The watcher's `PRAGMA data_version`; None once the store is closed."""
        with self._watch_lock:
            if self._watch is None or self._closed:
                return None
            self._check_usable()
            try:
                return int(self._watch.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise self._error(exc, "watch it for changes") from exc

    def _wait_for_commit(self, timeout: float) -> bool:
        """`SqliteLeaseStore.wait_for_change`: whether a commit came within `timeout` s."""
        self._check_usable()
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._watch_lock:
            seen = self._seen
        while True:
            with self._changed:
                ticket = self._writes
            version = self._data_version()
            if version is None:  # closed meanwhile
                return False
            if version != seen:
                with self._watch_lock:
                    self._seen = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False

            def written(ticket: int = ticket) -> bool:
                return self._writes != ticket or self._closed

            with self._changed:
                self._changed.wait_for(written, min(_POLL_SECONDS, remaining))

    # -- reading rows back ---------------------------------------------------------------

    def _leases(self, rows: list[Row]) -> list[Lease]:
        try:
            return [_lease(row) for row in rows]
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise LeaseError(
                f"the lease store at {self._path} holds a lease this version cannot read: {exc!r}"
            ) from exc

    def _requests(self, rows: list[Row]) -> list[AccessRequest]:
        try:
            return [_request(row) for row in rows]
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise LeaseError(
                f"the lease store at {self._path} holds an access request this version "
                f"cannot read: {exc!r}"
            ) from exc
