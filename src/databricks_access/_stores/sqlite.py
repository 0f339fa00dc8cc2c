"""`SqliteLeaseStore`: the embedded, durable `LeaseStore` in one SQLite file.

Layout (schema version 2, kept in `PRAGMA user_version`; `PRAGMA application_id` marks
the file as a databricks_access lease store):

- `leases`: one row per lease, with `due_at` maintained on every write (the value of
  `Lease.due_at()`) and `version` counted up by every update (the compare-and-set
  checks it), indexed on `(state, due_at)` so due queries read only what is due,
  and on `(principal_id, group_id, state)` and `(group_id, state)` for lookups.
- `claims`: per-pair claims, keyed by `(principal_id, group_id)`.
- `events`: the audit outbox, `seq` in write order; a partial index holds the pending.
- `requests`: access requests, indexed on `(state, created_at)` and the pair.

Times are integer microseconds since the epoch, UTC: sortable, exact, and read back as
aware UTC datetimes.

Concurrency: the file is in WAL mode, so readers never block the writer. Each thread
gets its own connection; every write is one `BEGIN IMMEDIATE` transaction, so writers in
any thread or process queue for the write lock up front (waiting up to `timeout`) instead
of deadlocking on a lock upgrade. `synchronous=FULL` by default: a lease's intent, and its
audit event, are on disk before the tracker sends the request they announce, even across
a power cut.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import attrs
from typing_extensions import Self

from databricks_access._account.models import PrincipalKind, PrincipalRef
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
from databricks_access._stores.rows import (
    MAX_US as _MAX_US,
)
from databricks_access._stores.rows import (
    MIN_US as _MIN_US,
)
from databricks_access._stores.rows import (
    US as _US,
)
from databricks_access._stores.rows import (
    UTC as _UTC,
)
from databricks_access._stores.rows import (
    from_micros as _from_micros,
)
from databricks_access._stores.rows import (
    integer as _integer,
)
from databricks_access._stores.rows import (
    maybe_datetime as _maybe_datetime,
)
from databricks_access._stores.rows import (
    maybe_micros as _maybe_micros,
)
from databricks_access._stores.rows import (
    micros as _micros,
)
from databricks_access._stores.rows import storable
from databricks_access._util.files import create_private, shared

__all__ = ["SCHEMA_VERSION", "SqliteLeaseStore"]

T = TypeVar("T")

SCHEMA_VERSION = 2
"""The schema version this release writes; older files are migrated when opened."""

# "DALS": marks the file as ours, so a foreign SQLite file is refused, not "migrated".
_APPLICATION_ID = 0x44414C53

# How often `wait_for_change` looks for commits made by other processes.
_POLL_SECONDS = 0.05


# Primary SQLite result codes (`sqlite_errorcode & 0xFF`, Python 3.11+).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14
_SQLITE_NOTADB = 26

# Pairs per statement when reading claims back (2 parameters each; stays under the old
# 999-parameter limit of SQLite builds before 3.32).
_CHUNK = 400

# -- schema --------------------------------------------------------------------------------

# Access requests keep their grant retries (version 2).
_REQUEST_RETRIES = (
    "ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE requests ADD COLUMN retry_at INTEGER",
    "ALTER TABLE requests ADD COLUMN last_error TEXT",
)

# The current schema, for a new file. A change here needs a new version and a migration.
_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE leases (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    state TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    requester TEXT NOT NULL,
    reason TEXT NOT NULL,
    approver TEXT,
    standing INTEGER NOT NULL,
    extensions INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    retry_at INTEGER,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    ended_at INTEGER,
    request_id TEXT,
    group_name TEXT,
    principal_name TEXT,
    due_at INTEGER,
    version INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE INDEX leases_due ON leases (state, due_at)",
    "CREATE INDEX leases_pair ON leases (principal_id, group_id, state)",
    "CREATE INDEX leases_group ON leases (group_id, state)",
    """CREATE TABLE claims (
    principal_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (principal_id, group_id)
) WITHOUT ROWID""",
    """CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    delivered_at INTEGER
)""",
    "CREATE INDEX events_pending ON events (seq) WHERE delivered_at IS NULL",
    """CREATE TABLE requests (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    ttl_seconds REAL NOT NULL,
    reason TEXT NOT NULL,
    requester TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    approvers TEXT NOT NULL,
    approver_source TEXT,
    decided_by TEXT,
    decision_reason TEXT,
    lease_id TEXT,
    access_details TEXT,
    group_name TEXT,
    principal_name TEXT
)""",
    "CREATE INDEX requests_state ON requests (state, created_at)",
    "CREATE INDEX requests_pair ON requests (principal_id, group_id)",
    # Version 2's columns, added as the migration adds them: a new file and a migrated
    # one have exactly the same schema.
    *_REQUEST_RETRIES,
)

# Migrations: _MIGRATIONS[v] takes a file from version v to v + 1, in the transaction
# that opens it. They are frozen history: never edit one, add the next.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 0 -> 1: leases get a maintained `due_at` (and an explicit row id, so ties keep the
    # insertion order even after VACUUM); the outbox gets its pending index; access
    # requests get their table. The leases table is rebuilt, SQLite's way.
    0: (
        "ALTER TABLE leases RENAME TO leases_v0",
        """CREATE TABLE leases (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    state TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    requester TEXT NOT NULL,
    reason TEXT NOT NULL,
    approver TEXT,
    standing INTEGER NOT NULL,
    extensions INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    retry_at INTEGER,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    ended_at INTEGER,
    request_id TEXT,
    group_name TEXT,
    principal_name TEXT,
    due_at INTEGER
)""",
        """INSERT INTO leases (
    id, principal_kind, principal_id, group_id, state, granted_at, expires_at,
    requester, reason, approver, standing, extensions, attempts, retry_at, last_error,
    updated_at, ended_at, request_id, group_name, principal_name, due_at
)
SELECT
    id, principal_kind, principal_id, group_id, state, granted_at, expires_at,
    requester, reason, approver, standing, extensions, attempts, retry_at, last_error,
    updated_at, ended_at, request_id, group_name, principal_name,
    CASE state
        WHEN 'active' THEN expires_at
        WHEN 'revoke_failed' THEN COALESCE(retry_at, updated_at)
        WHEN 'granting' THEN updated_at
        WHEN 'revoking' THEN updated_at
    END
FROM leases_v0 ORDER BY rowid""",
        "DROP TABLE leases_v0",
        "CREATE INDEX leases_due ON leases (state, due_at)",
        "CREATE INDEX leases_pair ON leases (principal_id, group_id, state)",
        "CREATE INDEX leases_group ON leases (group_id, state)",
        "CREATE INDEX events_pending ON events (seq) WHERE delivered_at IS NULL",
        """CREATE TABLE requests (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    principal_kind TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    ttl_seconds REAL NOT NULL,
    reason TEXT NOT NULL,
    requester TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    approvers TEXT NOT NULL,
    approver_source TEXT,
    decided_by TEXT,
    decision_reason TEXT,
    lease_id TEXT,
    access_details TEXT,
    group_name TEXT,
    principal_name TEXT
)""",
        "CREATE INDEX requests_state ON requests (state, created_at)",
        "CREATE INDEX requests_pair ON requests (principal_id, group_id)",
    ),
    # 1 -> 2: leases get a version, so a compare-and-set sees any change, not just a
    # change of state; access requests keep their grant retries (an approved request
    # whose grant failed transiently is tried again later).
    1: (
        "ALTER TABLE leases ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE requests ADD COLUMN retry_at INTEGER",
        "ALTER TABLE requests ADD COLUMN last_error TEXT",
    ),
}

# -- statements ----------------------------------------------------------------------------

_LEASE_FIELDS = (
    "id, principal_kind, principal_id, group_id, state, granted_at, expires_at, requester, "
    "reason, approver, standing, extensions, attempts, retry_at, last_error, updated_at, "
    "ended_at, request_id, group_name, principal_name, version"
)
_INSERT_LEASE = f"INSERT INTO leases ({_LEASE_FIELDS}, due_at) VALUES ({', '.join(['?'] * 22)})"  # noqa: S608 - fixed fragments
# Pairs per `leases_on_pairs` query: two bound values each, well under SQLite's limit.
_PAIRS_PER_QUERY = 400
_UPDATE_LEASE = (
    "UPDATE leases SET principal_kind = ?, principal_id = ?, group_id = ?, state = ?, "
    "granted_at = ?, expires_at = ?, requester = ?, reason = ?, approver = ?, standing = ?, "
    "extensions = ?, attempts = ?, retry_at = ?, last_error = ?, updated_at = ?, "
    "ended_at = ?, request_id = ?, group_name = ?, principal_name = ?, version = ?, "
    "due_at = ? WHERE id = ? AND version = ? AND state IN "
)
_SELECT_LEASES = f"SELECT {_LEASE_FIELDS} FROM leases"  # noqa: S608 - fixed fragments


def _due_branch(state: LeaseState, bound: str, shift: str) -> str:
    # One index range scan of (state, due_at), at most :limit rows, already in order.
    return (
        f"SELECT * FROM (SELECT {_LEASE_FIELDS}, rid, due_at{shift} AS k FROM leases "  # noqa: S608 - fixed fragments
        f"WHERE state = '{state.value}' AND due_at <= {bound} "
        "ORDER BY due_at, rid LIMIT :limit)"
    )


# Earliest due first, across the four states, merged from four bounded index scans.
_DUE_LEASES = (
    f"SELECT {_LEASE_FIELDS} FROM ("  # noqa: S608 - fixed fragments
    + " UNION ALL ".join(
        (
            _due_branch(LeaseState.ACTIVE, ":now", ""),
            _due_branch(LeaseState.REVOKE_FAILED, ":now", ""),
            _due_branch(LeaseState.GRANTING, ":stuck", " + :shift"),
            _due_branch(LeaseState.REVOKING, ":stuck", " + :shift"),
        )
    )
    + ") ORDER BY k, rid LIMIT :limit"
)


def _first_due(state: LeaseState) -> str:
    # The first entry of one state in the (state, due_at) index: no scan.
    return (
        f"(SELECT due_at FROM leases WHERE state = '{state.value}' "  # noqa: S608 - fixed fragments
        "AND due_at IS NOT NULL ORDER BY due_at LIMIT 1)"
    )


_NEXT_DUE = "SELECT " + ", ".join(
    _first_due(state)
    for state in (
        LeaseState.ACTIVE,
        LeaseState.REVOKE_FAILED,
        LeaseState.GRANTING,
        LeaseState.REVOKING,
    )
)

_CLAIM = (
    "INSERT INTO claims (principal_id, group_id, owner, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (principal_id, group_id) DO UPDATE "
    "SET owner = excluded.owner, expires_at = excluded.expires_at "
    "WHERE claims.owner = excluded.owner OR claims.expires_at <= ?"
)

_REQUEST_FIELDS = (
    "id, principal_kind, principal_id, group_id, ttl_seconds, reason, requester, state, "
    "created_at, expires_at, updated_at, approvers, approver_source, decided_by, "
    "decision_reason, lease_id, access_details, group_name, principal_name, attempts, "
    "retry_at, last_error"
)
_INSERT_REQUEST = f"INSERT INTO requests ({_REQUEST_FIELDS}) VALUES ({', '.join(['?'] * 22)})"  # noqa: S608 - fixed fragments
_UPDATE_REQUEST = (
    "UPDATE requests SET principal_kind = ?, principal_id = ?, group_id = ?, "
    "ttl_seconds = ?, reason = ?, requester = ?, state = ?, created_at = ?, expires_at = ?, "
    "updated_at = ?, approvers = ?, approver_source = ?, decided_by = ?, "
    "decision_reason = ?, lease_id = ?, access_details = ?, group_name = ?, "
    "principal_name = ?, attempts = ?, retry_at = ?, last_error = ? WHERE id = ? AND state IN "
)
_SELECT_REQUESTS = f"SELECT {_REQUEST_FIELDS} FROM requests"  # noqa: S608 - fixed fragments

_KINDS = {kind.value: kind for kind in PrincipalKind}
_LEASE_STATES = {state.value: state for state in LeaseState}
_REQUEST_STATES = {state.value: state for state in RequestState}

Row = tuple[Any, ...]

# -- values --------------------------------------------------------------------------------


def _lease_values(lease: Lease) -> list[object]:
    """The lease's columns after `id`, in `_UPDATE_LEASE` order, ending with `due_at`."""
    what = f"lease {lease.id!r}"
    due = lease.due_at()
    values = [
        lease.principal.kind.value,
        lease.principal.id,
        lease.group_id,
        lease.state.value,
        _micros(lease.granted_at, f"{what}: granted_at"),
        _micros(lease.expires_at, f"{what}: expires_at"),
        lease.requester,
        lease.reason,
        lease.approver,
        int(lease.standing),
        _integer(lease.extensions, f"{what}: extensions"),
        _integer(lease.attempts, f"{what}: attempts"),
        _maybe_micros(lease.retry_at, f"{what}: retry_at"),
        lease.last_error,
        _micros(lease.updated_at, f"{what}: updated_at"),
        _maybe_micros(lease.ended_at, f"{what}: ended_at"),
        lease.request_id,
        lease.group_name,
        lease.principal_name,
        _integer(lease.version, f"{what}: version"),
        None if due is None else _micros(due, f"{what}: due time"),
    ]
    return [storable(value) for value in values]


def _next_version(lease: Lease) -> Lease:
    """The lease as an update stores it: its version counted one up."""
    return attrs.evolve(lease, version=lease.version + 1)


def _lease(row: Row) -> Lease:
    return Lease(
        id=row[0],
        principal=PrincipalRef(_KINDS[row[1]], row[2]),
        group_id=row[3],
        state=_LEASE_STATES[row[4]],
        granted_at=_from_micros(row[5]),
        expires_at=_from_micros(row[6]),
        requester=row[7],
        reason=row[8],
        approver=row[9],
        standing=bool(row[10]),
        extensions=row[11],
        attempts=row[12],
        retry_at=_maybe_datetime(row[13]),
        last_error=row[14],
        updated_at=_from_micros(row[15]),
        ended_at=_maybe_datetime(row[16]),
        request_id=row[17],
        group_name=row[18],
        principal_name=row[19],
        version=row[20],
    )


def _request_values(request: AccessRequest) -> list[object]:
    """The request's columns after `id`, in `_UPDATE_REQUEST` order."""
    what = f"request {request.id!r}"
    ttl = float(request.ttl_seconds)
    if not math.isfinite(ttl):
        raise LeaseError(f"{what}: ttl_seconds must be a finite number, not {ttl}")
    values = [
        request.principal.kind.value,
        request.principal.id,
        request.group_id,
        ttl,
        request.reason,
        request.requester,
        request.state.value,
        _micros(request.created_at, f"{what}: created_at"),
        _micros(request.expires_at, f"{what}: expires_at"),
        _micros(request.updated_at, f"{what}: updated_at"),
        json.dumps(list(request.approvers)),
        request.approver_source,
        request.decided_by,
        request.decision_reason,
        request.lease_id,
        request.access_details,
        request.group_name,
        request.principal_name,
        _integer(request.attempts, f"{what}: attempts"),
        _maybe_micros(request.retry_at, f"{what}: retry_at"),
        request.last_error,
    ]
    return [storable(value) for value in values]


def _request(row: Row) -> AccessRequest:
    return AccessRequest(
        id=row[0],
        principal=PrincipalRef(_KINDS[row[1]], row[2]),
        group_id=row[3],
        ttl_seconds=row[4],
        reason=row[5],
        requester=row[6],
        state=_REQUEST_STATES[row[7]],
        created_at=_from_micros(row[8]),
        expires_at=_from_micros(row[9]),
        updated_at=_from_micros(row[10]),
        approvers=tuple(json.loads(row[11])),
        approver_source=row[12],
        decided_by=row[13],
        decision_reason=row[14],
        lease_id=row[15],
        access_details=row[16],
        group_name=row[17],
        principal_name=row[18],
        attempts=row[19],
        retry_at=_maybe_datetime(row[20]),
        last_error=row[21],
    )


def _event_payload(event: AuditEvent) -> str:
    try:
        # ASCII JSON: a lone surrogate in a name is kept, as its escape.
        return json.dumps(event.to_json(), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise LeaseError(f"the {event.kind.value} event cannot be stored as JSON: {exc}") from exc


def _check_limit(limit: int | None) -> int:
    """The SQL LIMIT for a `limit` argument (-1: none)."""
    if limit is None:
        return -1
    if limit < 0:
        raise ConfigError(f"must be zero or more, not {limit}", field="limit")
    return limit


def _placeholders(count: int) -> str:
    return "(" + ", ".join(["?"] * count) + ")"


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in {_SQLITE_BUSY, _SQLITE_LOCKED}
    text = str(exc).lower()
    return "locked" in text or "busy" in text


# -- the store -----------------------------------------------------------------------------


class SqliteLeaseStore:
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
            machine: the last commits may be lost.

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

    def _transaction(self, work: Callable[[sqlite3.Connection], T], doing: str) -> T:
        """Run `work` in one `BEGIN IMMEDIATE` transaction: all of it, or none of it.

        Waits for the write lock up to `timeout` (SQLite's busy handler, plus retries
        for the cases it does not cover); any failure rolls the whole transaction back.
        """
        conn = self._connection()
        deadline = time.monotonic() + self._timeout
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
                conn.execute("INSERT INTO events (payload) VALUES (?)", (payload,))

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
        values = [*_lease_values(_next_version(lease)), lease.id, lease.version, *expected]
        sql = _UPDATE_LEASE + _placeholders(len(expected))
        payload = None if event is None else _event_payload(event)

        def work(conn: sqlite3.Connection) -> None:
            if not expected or conn.execute(sql, values).rowcount == 0:
                row = conn.execute(
                    "SELECT state, version FROM leases WHERE id = ?", (lease.id,)
                ).fetchone()
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
                conn.execute("INSERT INTO events (payload) VALUES (?)", (payload,))

        self._transaction(work, f"update lease {lease.id!r}")

    def update_leases(
        self, updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> list[bool]:
        """Apply many compare-and-set updates in one transaction; False for each stale one."""
        prepared = [
            (
                [*_lease_values(_next_version(lease)), lease.id, lease.version, expect.value],
                None if event is None else _event_payload(event),
            )
            for lease, expect, event in updates
        ]
        sql = _UPDATE_LEASE + _placeholders(1)

        def work(conn: sqlite3.Connection) -> list[bool]:
            results: list[bool] = []
            for values, payload in prepared:
                if conn.execute(sql, values).rowcount == 0:
                    results.append(False)
                    continue
                if payload is not None:
                    conn.execute("INSERT INTO events (payload) VALUES (?)", (payload,))
                results.append(True)
            return results

        if not prepared:
            return []
        return self._transaction(work, f"update {len(prepared)} leases")

    def get_lease(self, lease_id: str) -> Lease | None:
        """One lease, or None."""
        rows = self._read(f"{_SELECT_LEASES} WHERE id = ?", (lease_id,), "read a lease")
        return self._leases(rows)[0] if rows else None

    def _leases(self, rows: list[Row]) -> list[Lease]:
        try:
            return [_lease(row) for row in rows]
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise LeaseError(
                f"the lease store at {self._path} holds a lease this version cannot read: {exc!r}"
            ) from exc

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
            values = ", ".join(["(?, ?)"] * len(chunk))
            # Driven from the pairs, so each one is an index lookup on leases_pair.
            sql = (
                f"WITH wanted(p, g) AS (VALUES {values}) "  # noqa: S608 - fixed fragments
                f"SELECT {_LEASE_FIELDS} FROM wanted CROSS JOIN leases "
                f"ON principal_id = p AND group_id = g{state_sql}"
            )
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
        now_us = _micros(now, "now")
        stuck_us = _micros(stuck_before, "stuck_before")
        params = {"now": now_us, "stuck": stuck_us, "shift": now_us - stuck_us, "limit": sql_limit}
        return self._leases(self._read(_DUE_LEASES, params, "find due leases"))

    def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """The earliest time at which `due_leases` would return something, or None.

        For `GRANTING`/`REVOKING` leases that time is `updated_at + stuck_after`.
        """
        (row,) = self._read(_NEXT_DUE, (), "find the next due lease")
        shift = stuck_after // _US
        times = [
            value + (shift if index >= 2 else 0)
            for index, value in enumerate(row)
            if value is not None
        ]
        if not times:
            return None
        return _from_micros(min(max(min(times), _MIN_US), _MAX_US))

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
        now_us = _micros(now, "now")
        until_us = _micros(until, "until")
        rows = [(p.principal_id, p.group_id, owner, until_us, now_us) for p in pairs]
        unique = list(dict.fromkeys(pairs))

        def work(conn: sqlite3.Connection) -> set[Pair]:
            conn.executemany(_CLAIM, rows)
            # Every pair now held by `owner` was claimed by this call (the transaction
            # holds the write lock): read those back, a chunk of pairs at a time.
            held: set[Pair] = set()
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                # CROSS JOIN keeps the VALUES list outside: one primary-key probe per pair.
                sql = (
                    "SELECT c.principal_id, c.group_id FROM (VALUES "  # noqa: S608 - fixed fragments
                    + ", ".join(["(?, ?)"] * len(chunk))
                    + ") AS v CROSS JOIN claims AS c ON c.principal_id = v.column1 "
                    "AND c.group_id = v.column2 WHERE c.owner = ?"
                )
                params: list[object] = []
                for pair in chunk:
                    params += (pair.principal_id, pair.group_id)
                params.append(owner)
                held.update(Pair(p, g) for p, g in conn.execute(sql, params))
            return held

        held = self._transaction(work, f"claim {len(unique)} pair(s)")
        return [pair for pair in pairs if pair in held]

    def renew_pairs(self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime) -> list[Pair]:
        """Extend `owner`'s claims on `pairs` to `until`; returns those still `owner`'s."""
        if not pairs:
            return []
        until_us = _micros(until, "until")
        unique = list(dict.fromkeys(pairs))

        def work(conn: sqlite3.Connection) -> set[Pair]:
            renewed: set[Pair] = set()
            for pair in unique:
                cursor = conn.execute(
                    "UPDATE claims SET expires_at = ? "
                    "WHERE principal_id = ? AND group_id = ? AND owner = ?",
                    (until_us, pair.principal_id, pair.group_id, owner),
                )
                if cursor.rowcount:
                    renewed.add(pair)
            return renewed

        renewed = self._transaction(work, f"renew {len(unique)} claim(s)")
        return [pair for pair in pairs if pair in renewed]

    def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """Release `owner`'s claims on `pairs` (others' claims are left alone)."""
        if not pairs:
            return
        rows = [(p.principal_id, p.group_id, owner) for p in pairs]
        self._transaction(
            lambda conn: conn.executemany(
                "DELETE FROM claims WHERE principal_id = ? AND group_id = ? AND owner = ?", rows
            ),
            f"release {len(rows)} pair(s)",
        )

    # -- outbox --------------------------------------------------------------------------

    def add_event(self, event: AuditEvent) -> None:
        """Append an event that comes with no state change (drift, say)."""
        payload = _event_payload(event)
        self._transaction(
            lambda conn: conn.execute("INSERT INTO events (payload) VALUES (?)", (payload,)),
            "add an event",
        )

    def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """Events not yet delivered, in the order written (at most `limit`)."""
        rows = self._read(
            "SELECT seq, payload FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT ?",
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
        at = _micros(dt.datetime.now(_UTC), "delivery time")
        rows = [(at, seq) for seq in seqs]
        self._transaction(
            lambda conn: conn.executemany(
                "UPDATE events SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL", rows
            ),
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
                conn.execute("INSERT INTO events (payload) VALUES (?)", (payload,))

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
                row = conn.execute(
                    "SELECT state FROM requests WHERE id = ?", (request.id,)
                ).fetchone()
                if row is None:
                    raise StaleStateError(f"access request {request.id!r} does not exist")
                wanted = ", ".join(expected) or "nothing"
                raise StaleStateError(
                    f"access request {request.id!r} is {row[0]}, expected one of: {wanted}"
                )
            if payload is not None:
                conn.execute("INSERT INTO events (payload) VALUES (?)", (payload,))

        self._transaction(work, f"update access request {request.id!r}")

    def get_request(self, request_id: str) -> AccessRequest | None:
        """One access request, or None."""
        rows = self._read(
            f"{_SELECT_REQUESTS} WHERE id = ?", (request_id,), "read an access request"
        )
        return self._requests(rows)[0] if rows else None

    def _requests(self, rows: list[Row]) -> list[AccessRequest]:
        try:
            return [_request(row) for row in rows]
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise LeaseError(
                f"the lease store at {self._path} holds an access request this version "
                f"cannot read: {exc!r}"
            ) from exc

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
