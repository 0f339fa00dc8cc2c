"""`PostgresLeaseStore` and `AsyncPostgresLeaseStore`: one store for several replicas.

Needs the optional extra `pip install 'databricks-access[postgres]'` (psycopg 3 and
psycopg-pool; without it this module still imports, and building a store raises a
`ConfigError` that names the extra) and PostgreSQL 10 or later (tested on 15), with a
UTF8 database.

Layout (schema version 2, in a PostgreSQL schema of its own, `databricks_access` by
default; the version is the `schema_version` row of its `meta` table):

- `leases`: one row per lease, with `due_at` maintained on every write (the value of
  `Lease.due_at()`), indexed on `(state, due_at, rid)` for the rows that have one, and on
  `(principal_id, group_id)` and `group_id` for lookups.
- `claims`: per-pair claims, keyed by `(principal_id, group_id)`.
- `events`: the audit outbox, `seq` in write order; a partial index holds the pending.
- `requests`: access requests, indexed on `(state, created_at)` and the pair.

Times are integer microseconds since the epoch, UTC, as in the SQLite store. Text is
stored as given, except that PostgreSQL text cannot hold NUL: NUL is written as ESC `0`
(and ESC as ESC ESC), and read back exactly.

The store creates its schema, and migrates it, under `pg_advisory_xact_lock`, so replicas
that start at once do it once; a schema written by a newer version is refused.

Transactions: every protocol method is one short transaction on a pooled connection (a
read is one statement), and nothing is ever held open across an HTTP request: the rows a
tracker works on are not locked while it talks to Databricks. What serialises replicas
is the per-pair claim, a committed row with an owner and an expiry computed from the
tracker's clock (the `now` and `until` it passes), never the database's `now()`:

- `claim_pairs` inserts the free pairs (`ON CONFLICT DO NOTHING`) and takes over the
  pairs whose claim is the caller's own or expired by `now`, selected
  `FOR UPDATE SKIP LOCKED`: it never waits for a pair another replica is claiming or
  releasing at that moment, it skips it. A replica that dies holding claims leaves them
  to expire; another replica's sweep then finishes its work.
- `due_leases` scans each state's index `FOR NO KEY UPDATE SKIP LOCKED` below its
  `LIMIT` (the locks end with the statement), so replicas asking at the same moment are
  handed different leases, a lease another replica is updating right now is left to it,
  and the limit is still filled from the leases nobody holds.
- `update_leases` is one `UPDATE ... FROM unnest(...)` statement for the batch (each row
  its own compare-and-set), and one `INSERT` for the events of the rows it changed.

Wake-ups: every transaction that changes something runs
`pg_notify('databricks_access_changes', '<schema> <writer>')` before it commits, and
`wait_for_change` waits on a dedicated connection that `LISTEN`s to that channel, so a new
grant in any replica wakes every sleeping one. A `NOTIFY databricks_access_changes`
without a payload (say, after an administrator edits the tables) wakes them too.

Reconnects and retries: connections come from a `psycopg_pool` pool. When a statement
fails because the connection is gone (a server restart, a failover, a network cut), the
pool's idle connections are checked, and the transaction is run once more on a fresh
connection if that is known to be safe:

- the failure came before `COMMIT` was sent: PostgreSQL rolls the transaction back, so
  running it again is exact (reads always fall here);
- the failure came during `COMMIT`: the transaction's id, read before committing, is
  looked up with `txid_status()` on a new connection: `committed` means done (the result
  is returned), `aborted` means it is run again; if the server cannot say, the method
  raises `LeaseError` saying the outcome is unknown. The tracker's intent-first design
  makes that recoverable: a lease left `GRANTING` or `REVOKING` is finished by a sweep
  once its claim expires.

Deadlocks and serialisation failures (SQLSTATE 40P01, 40001) are rolled back by the
server and retried a few times. Every other failure is a `LeaseError` that says what went
wrong, never a raw driver exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import hashlib
import json
import math
import os
import re
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import attrs
from typing_extensions import Self

# psycopg is the optional extra: this module imports without it (so does
# `from databricks_access import *`), and building a store says what to install.
try:
    import psycopg
    import psycopg_pool
    from psycopg import errors as pg_errors
    from psycopg import pq, sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import TupleRow
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

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
from databricks_access._sansio import Effect, run_async, run_sync
from databricks_access._stores.rows import (
    INT64 as _INT64,
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

if TYPE_CHECKING:
    from psycopg.abc import AdaptContext

    AnyConnection = psycopg.Connection[TupleRow] | psycopg.AsyncConnection[TupleRow]

__all__ = [
    "CHANNEL",
    "SCHEMA_VERSION",
    "AsyncPostgresLeaseStore",
    "PostgresLeaseStore",
]

T = TypeVar("T")

SCHEMA_VERSION = 2
"""The schema version this release writes; older schemas are migrated when opened."""

CHANNEL = "databricks_access_changes"
"""The `LISTEN`/`NOTIFY` channel every write announces itself on."""

_MIN_SERVER_VERSION = 100000  # txid_status() and identity columns: PostgreSQL 10
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


# SQLSTATEs after which the server has rolled the whole transaction back, so running it
# again is exact: serialization_failure, deadlock_detected.
_CONFLICTS = frozenset({"40001", "40P01"})
_CONFLICT_RETRIES = 5

# How often a waiter whose listening connection is lost tries to open a new one.
_RELISTEN_SECONDS = 1.0

Row = tuple[Any, ...]

# -- the schema ----------------------------------------------------------------------------
#
# `{s}` is the store's schema, quoted as an identifier when a store renders a statement.

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE {s}.leases (
    rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    principal_kind text NOT NULL,
    principal_id text NOT NULL,
    group_id text NOT NULL,
    state text NOT NULL,
    granted_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    requester text NOT NULL,
    reason text NOT NULL,
    approver text,
    standing boolean NOT NULL,
    extensions bigint NOT NULL,
    attempts bigint NOT NULL,
    retry_at bigint,
    last_error text,
    updated_at bigint NOT NULL,
    ended_at bigint,
    request_id text,
    group_name text,
    principal_name text,
    due_at bigint,
    version bigint NOT NULL DEFAULT 0
)""",
    "CREATE INDEX leases_due ON {s}.leases (state, due_at, rid) WHERE due_at IS NOT NULL",
    "CREATE INDEX leases_pair ON {s}.leases (principal_id, group_id)",
    "CREATE INDEX leases_group ON {s}.leases (group_id)",
    """CREATE TABLE {s}.claims (
    principal_id text NOT NULL,
    group_id text NOT NULL,
    owner text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (principal_id, group_id)
)""",
    """CREATE TABLE {s}.events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload text NOT NULL,
    delivered_at bigint
)""",
    "CREATE INDEX events_pending ON {s}.events (seq) WHERE delivered_at IS NULL",
    """CREATE TABLE {s}.requests (
    rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    principal_kind text NOT NULL,
    principal_id text NOT NULL,
    group_id text NOT NULL,
    ttl_seconds double precision NOT NULL,
    reason text NOT NULL,
    requester text NOT NULL,
    state text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    approvers text NOT NULL,
    approver_source text,
    decided_by text,
    decision_reason text,
    lease_id text,
    access_details text,
    group_name text,
    principal_name text,
    attempts bigint NOT NULL DEFAULT 0,
    retry_at bigint,
    last_error text
)""",
    "CREATE INDEX requests_state ON {s}.requests (state, created_at)",
    "CREATE INDEX requests_pair ON {s}.requests (principal_id, group_id)",
)

# Migrations: _MIGRATIONS[v] takes a schema from version v to v + 1, in the transaction
# that holds the advisory lock. They are frozen history: never edit one, add the next.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: leases get a version, so a compare-and-set sees any change, not just a
    # change of state; access requests keep their grant retries (an approved request
    # whose grant failed transiently is tried again later).
    1: (
        "ALTER TABLE {s}.leases ADD COLUMN version bigint NOT NULL DEFAULT 0",
        "ALTER TABLE {s}.requests ADD COLUMN attempts bigint NOT NULL DEFAULT 0",
        "ALTER TABLE {s}.requests ADD COLUMN retry_at bigint",
        "ALTER TABLE {s}.requests ADD COLUMN last_error text",
    ),
}

# -- statements ----------------------------------------------------------------------------

_LEASE_FIELDS = (
    "id, principal_kind, principal_id, group_id, state, granted_at, expires_at, requester, "
    "reason, approver, standing, extensions, attempts, retry_at, last_error, updated_at, "
    "ended_at, request_id, group_name, principal_name, version"
)
_LEASE_SET = (
    "principal_kind = %s, principal_id = %s, group_id = %s, state = %s, granted_at = %s, "
    "expires_at = %s, requester = %s, reason = %s, approver = %s, standing = %s, "
    "extensions = %s, attempts = %s, retry_at = %s, last_error = %s, updated_at = %s, "
    "ended_at = %s, request_id = %s, group_name = %s, principal_name = %s, version = %s, "
    "due_at = %s"
)
# The columns after `id` (in `_lease_values` order) and their types, for batch updates.
_LEASE_COLUMNS = (
    ("principal_kind", "text"),
    ("principal_id", "text"),
    ("group_id", "text"),
    ("state", "text"),
    ("granted_at", "bigint"),
    ("expires_at", "bigint"),
    ("requester", "text"),
    ("reason", "text"),
    ("approver", "text"),
    ("standing", "boolean"),
    ("extensions", "bigint"),
    ("attempts", "bigint"),
    ("retry_at", "bigint"),
    ("last_error", "text"),
    ("updated_at", "bigint"),
    ("ended_at", "bigint"),
    ("request_id", "text"),
    ("group_name", "text"),
    ("principal_name", "text"),
    ("version", "bigint"),
    ("due_at", "bigint"),
)
_BATCH_SET = ", ".join(f"{name} = v.{name}" for name, _ in _LEASE_COLUMNS)
_BATCH_COLUMNS = ", ".join(
    ["id", "expect", "expect_version", *(name for name, _ in _LEASE_COLUMNS)]
)
# Binary parameters (%b): psycopg escapes no text to send an array that way.
_BATCH_ARRAYS = ", ".join(
    f"%b::{kind}[]" for kind in ["text", "text", "bigint", *(kind for _, kind in _LEASE_COLUMNS)]
)
_REQUEST_FIELDS = (
    "id, principal_kind, principal_id, group_id, ttl_seconds, reason, requester, state, "
    "created_at, expires_at, updated_at, approvers, approver_source, decided_by, "
    "decision_reason, lease_id, access_details, group_name, principal_name, attempts, "
    "retry_at, last_error"
)
_REQUEST_SET = (
    "principal_kind = %s, principal_id = %s, group_id = %s, ttl_seconds = %s, reason = %s, "
    "requester = %s, state = %s, created_at = %s, expires_at = %s, updated_at = %s, "
    "approvers = %s, approver_source = %s, decided_by = %s, decision_reason = %s, "
    "lease_id = %s, access_details = %s, group_name = %s, principal_name = %s, "
    "attempts = %s, retry_at = %s, last_error = %s"
)


def _due_branch(name: str, state: LeaseState, bound: str, shift: str) -> str:
    # One range scan of the (state, due_at, rid) index, in order. Rows another transaction
    # holds locked are skipped below the LIMIT, so the scan goes on to fill it; a row
    # changed since the statement began is checked again, on its newest version.
    return (
        f"{name} AS (SELECT {_LEASE_FIELDS}, rid, due_at{shift} AS k FROM {{s}}.leases "  # noqa: S608 - fixed fragments
        f"WHERE state = '{state.value}' AND due_at <= {bound} ORDER BY due_at, rid "
        "LIMIT %(limit)s FOR NO KEY UPDATE SKIP LOCKED)"
    )


class _Sql:
    """Every statement, with the store's schema quoted in.

    The class attributes are the templates; an instance renders each one for its schema
    (through `psycopg.sql`, so the schema name is always a quoted identifier).
    """

    insert_lease = (
        f"INSERT INTO {{s}}.leases ({_LEASE_FIELDS}, due_at) VALUES ({', '.join(['%s'] * 22)})"  # noqa: S608 - fixed fragments
    )
    update_lease = (
        f"UPDATE {{s}}.leases SET {_LEASE_SET} "  # noqa: S608 - fixed fragments
        "WHERE id = %s AND version = %s AND state = ANY(%s::text[])"
    )
    update_cas = (
        f"UPDATE {{s}}.leases SET {_LEASE_SET} "  # noqa: S608 - fixed fragments
        "WHERE id = %s AND version = %s AND state = %s RETURNING 1"
    )
    # Many compare-and-sets in one statement (for distinct ids), from one array a column.
    update_batch = (
        f"UPDATE {{s}}.leases AS l SET {_BATCH_SET} FROM unnest({_BATCH_ARRAYS}) "  # noqa: S608 - fixed fragments
        f"AS v({_BATCH_COLUMNS}) WHERE l.id = v.id AND l.state = v.expect "
        "AND l.version = v.expect_version RETURNING l.id"
    )
    insert_events = (
        "INSERT INTO {s}.events (payload) SELECT p FROM unnest(%b::text[]) "
        "WITH ORDINALITY AS e(p, n) ORDER BY n"
    )
    lease_state = "SELECT state, version FROM {s}.leases WHERE id = %s"
    select_leases = f"SELECT {_LEASE_FIELDS} FROM {{s}}.leases"  # noqa: S608 - fixed fragments
    get_lease = select_leases + " WHERE id = %s"
    # Driven from the pairs: an index lookup on (principal_id, group_id) for each.
    leases_on_pairs = (
        select_leases + " JOIN unnest(%(p)s::text[], %(g)s::text[]) AS w(p, g) "
        "ON principal_id = w.p AND group_id = w.g ORDER BY granted_at, rid"
    )
    leases_on_pairs_in = (
        select_leases + " JOIN unnest(%(p)s::text[], %(g)s::text[]) AS w(p, g) "
        "ON principal_id = w.p AND group_id = w.g WHERE state = ANY(%(states)s::text[]) "
        "ORDER BY granted_at, rid"
    )
    # Earliest due first, merged from four bounded index scans.
    due_leases = (
        "WITH "  # noqa: S608 - fixed fragments
        + ", ".join(
            (
                _due_branch("active", LeaseState.ACTIVE, "%(now)s", ""),
                _due_branch("failed", LeaseState.REVOKE_FAILED, "%(now)s", ""),
                _due_branch("granting", LeaseState.GRANTING, "%(stuck)s", " + %(shift)s"),
                _due_branch("revoking", LeaseState.REVOKING, "%(stuck)s", " + %(shift)s"),
            )
        )
        + f" SELECT {_LEASE_FIELDS} FROM (SELECT * FROM active UNION ALL SELECT * FROM failed "  # noqa: S608 - fixed fragments
        "UNION ALL SELECT * FROM granting UNION ALL SELECT * FROM revoking) AS due "
        "ORDER BY k, rid LIMIT %(limit)s"
    )
    next_due = "SELECT " + ", ".join(  # noqa: S608 - fixed fragments
        f"(SELECT min(due_at) FROM {{s}}.leases WHERE state = '{state.value}' "  # noqa: S608 - fixed fragments
        "AND due_at IS NOT NULL)"
        for state in (
            LeaseState.ACTIVE,
            LeaseState.REVOKE_FAILED,
            LeaseState.GRANTING,
            LeaseState.REVOKING,
        )
    )
    # Free pairs: inserted in key order (concurrent claimers wait on each other's new rows
    # in one order, never in a cycle).
    claim_free = (
        "INSERT INTO {s}.claims (principal_id, group_id, owner, expires_at) "
        "SELECT p, g, %(owner)s, %(until)s FROM unnest(%(p)s::text[], %(g)s::text[]) AS v(p, g) "
        "ORDER BY p, g ON CONFLICT DO NOTHING RETURNING principal_id, group_id"
    )
    # Held pairs: the caller's own, or expired by the caller's clock; a row another
    # transaction is claiming or releasing right now is skipped, never waited for.
    claim_held = (
        "UPDATE {s}.claims AS c SET owner = %(owner)s, expires_at = %(until)s FROM ("
        "SELECT x.principal_id, x.group_id FROM {s}.claims AS x "
        "JOIN unnest(%(p)s::text[], %(g)s::text[]) AS v(p, g) "
        "ON x.principal_id = v.p AND x.group_id = v.g "
        "WHERE x.owner = %(owner)s OR x.expires_at <= %(now)s "
        "FOR UPDATE OF x SKIP LOCKED) AS f "
        "WHERE c.principal_id = f.principal_id AND c.group_id = f.group_id "
        "RETURNING c.principal_id, c.group_id"
    )
    renew = (
        "UPDATE {s}.claims AS c SET expires_at = %(until)s "
        "FROM unnest(%(p)s::text[], %(g)s::text[]) AS v(p, g) "
        "WHERE c.principal_id = v.p AND c.group_id = v.g AND c.owner = %(owner)s "
        "RETURNING c.principal_id, c.group_id"
    )
    release = (
        "DELETE FROM {s}.claims AS c USING unnest(%(p)s::text[], %(g)s::text[]) AS v(p, g) "
        "WHERE c.principal_id = v.p AND c.group_id = v.g AND c.owner = %(owner)s"
    )
    insert_event = "INSERT INTO {s}.events (payload) VALUES (%s)"
    pending_events = (
        "SELECT seq, payload FROM {s}.events WHERE delivered_at IS NULL ORDER BY seq LIMIT %s"
    )
    mark_delivered = (
        "UPDATE {s}.events SET delivered_at = %s "
        "WHERE seq = ANY(%s::bigint[]) AND delivered_at IS NULL"
    )
    insert_request = (
        f"INSERT INTO {{s}}.requests ({_REQUEST_FIELDS}) VALUES ({', '.join(['%s'] * 22)})"  # noqa: S608 - fixed fragments
    )
    update_request = (
        f"UPDATE {{s}}.requests SET {_REQUEST_SET} WHERE id = %s AND state = ANY(%s::text[])"  # noqa: S608 - fixed fragments
    )
    request_state = "SELECT state FROM {s}.requests WHERE id = %s"
    select_requests = f"SELECT {_REQUEST_FIELDS} FROM {{s}}.requests"  # noqa: S608 - fixed fragments
    get_request = select_requests + " WHERE id = %s"
    version = "SELECT value FROM {s}.meta WHERE key = 'schema_version'"
    insert_version = "INSERT INTO {s}.meta (key, value) VALUES ('schema_version', %s)"
    update_version = "UPDATE {s}.meta SET value = %s WHERE key = 'schema_version'"
    create_schema = "CREATE SCHEMA {s}"

    def __init__(self, schema: str, where: str, context: AdaptContext) -> None:
        self.schema = schema
        self.where = where
        self._context = context
        for name, template in vars(_Sql).items():
            if not name.startswith("_") and isinstance(template, str):
                setattr(self, name, self.render(template))

    def render(self, template: str) -> str:
        """One template with the schema quoted in."""
        composed = sql.SQL(template).format(s=sql.Identifier(self.schema))
        return composed.as_string(self._context)


# Statements that do not name the schema.


_ANNOUNCE = "SELECT pg_notify(%s, %s), txid_current()"
_TXID_STATUS = "SELECT txid_status(%s)"
_INSPECT = (
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s), "
    "(SELECT count(*) FROM pg_tables WHERE schemaname = %(schema)s), "
    "EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = %(schema)s AND tablename = 'meta')"
)
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_LISTEN = f"LISTEN {CHANNEL}"
_SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, false)"


_KINDS = {kind.value: kind for kind in PrincipalKind}
_LEASE_STATES = {state.value: state for state in LeaseState}
_REQUEST_STATES = {state.value: state for state in RequestState}


# -- values --------------------------------------------------------------------------------

_ESC = "\x1b"
_ESCAPED = re.compile("\x1b(.)", re.DOTALL)


def _enc(value: str) -> str:
    """Text as PostgreSQL can hold it: NUL becomes ESC '0', ESC becomes ESC ESC."""
    if "\x00" not in value and _ESC not in value:
        return value
    return value.replace(_ESC, _ESC + _ESC).replace("\x00", _ESC + "0")


def _maybe_enc(value: str | None) -> str | None:
    return None if value is None else _enc(value)


def _dec(value: str) -> str:
    if _ESC not in value:
        return value
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "0" else m.group(1), value)


def _maybe_dec(value: str | None) -> str | None:
    return None if value is None else _dec(value)


def _lease_values(lease: Lease) -> list[object]:
    """The lease's columns after `id`, in `_LEASE_SET` order, ending with `due_at`."""
    what = f"lease {lease.id!r}"
    due = lease.due_at()
    return [
        lease.principal.kind.value,
        _enc(lease.principal.id),
        _enc(lease.group_id),
        lease.state.value,
        _micros(lease.granted_at, f"{what}: granted_at"),
        _micros(lease.expires_at, f"{what}: expires_at"),
        _enc(lease.requester),
        _enc(lease.reason),
        _maybe_enc(lease.approver),
        bool(lease.standing),
        _integer(lease.extensions, f"{what}: extensions"),
        _integer(lease.attempts, f"{what}: attempts"),
        _maybe_micros(lease.retry_at, f"{what}: retry_at"),
        _maybe_enc(lease.last_error),
        _micros(lease.updated_at, f"{what}: updated_at"),
        _maybe_micros(lease.ended_at, f"{what}: ended_at"),
        _maybe_enc(lease.request_id),
        _maybe_enc(lease.group_name),
        _maybe_enc(lease.principal_name),
        _integer(lease.version, f"{what}: version"),
        None if due is None else _micros(due, f"{what}: due time"),
    ]


def _next_version(lease: Lease) -> Lease:
    """The lease as an update stores it: its version counted one up."""
    return attrs.evolve(lease, version=lease.version + 1)


def _lease(row: Row) -> Lease:
    return Lease(
        id=_dec(row[0]),
        principal=PrincipalRef(_KINDS[row[1]], _dec(row[2])),
        group_id=_dec(row[3]),
        state=_LEASE_STATES[row[4]],
        granted_at=_from_micros(row[5]),
        expires_at=_from_micros(row[6]),
        requester=_dec(row[7]),
        reason=_dec(row[8]),
        approver=_maybe_dec(row[9]),
        standing=bool(row[10]),
        extensions=row[11],
        attempts=row[12],
        retry_at=_maybe_datetime(row[13]),
        last_error=_maybe_dec(row[14]),
        updated_at=_from_micros(row[15]),
        ended_at=_maybe_datetime(row[16]),
        request_id=_maybe_dec(row[17]),
        group_name=_maybe_dec(row[18]),
        principal_name=_maybe_dec(row[19]),
        version=row[20],
    )


def _request_values(request: AccessRequest) -> list[object]:
    """The request's columns after `id`, in `_REQUEST_SET` order."""
    what = f"request {request.id!r}"
    ttl = float(request.ttl_seconds)
    if not math.isfinite(ttl):
        raise LeaseError(f"{what}: ttl_seconds must be a finite number, not {ttl}")
    return [
        request.principal.kind.value,
        _enc(request.principal.id),
        _enc(request.group_id),
        ttl,
        _enc(request.reason),
        _enc(request.requester),
        request.state.value,
        _micros(request.created_at, f"{what}: created_at"),
        _micros(request.expires_at, f"{what}: expires_at"),
        _micros(request.updated_at, f"{what}: updated_at"),
        json.dumps(list(request.approvers), ensure_ascii=False),
        _maybe_enc(request.approver_source),
        _maybe_enc(request.decided_by),
        _maybe_enc(request.decision_reason),
        _maybe_enc(request.lease_id),
        _maybe_enc(request.access_details),
        _maybe_enc(request.group_name),
        _maybe_enc(request.principal_name),
        _integer(request.attempts, f"{what}: attempts"),
        _maybe_micros(request.retry_at, f"{what}: retry_at"),
        _maybe_enc(request.last_error),
    ]


def _request(row: Row) -> AccessRequest:
    return AccessRequest(
        id=_dec(row[0]),
        principal=PrincipalRef(_KINDS[row[1]], _dec(row[2])),
        group_id=_dec(row[3]),
        ttl_seconds=row[4],
        reason=_dec(row[5]),
        requester=_dec(row[6]),
        state=_REQUEST_STATES[row[7]],
        created_at=_from_micros(row[8]),
        expires_at=_from_micros(row[9]),
        updated_at=_from_micros(row[10]),
        approvers=tuple(json.loads(row[11])),
        approver_source=_maybe_dec(row[12]),
        decided_by=_maybe_dec(row[13]),
        decision_reason=_maybe_dec(row[14]),
        lease_id=_maybe_dec(row[15]),
        access_details=_maybe_dec(row[16]),
        group_name=_maybe_dec(row[17]),
        principal_name=_maybe_dec(row[18]),
        attempts=row[19],
        retry_at=_maybe_datetime(row[20]),
        last_error=_maybe_dec(row[21]),
    )


def _event_payload(event: AuditEvent) -> str:
    # JSON escapes NUL and every other control character: the payload needs no _enc.
    try:
        return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise LeaseError(f"the {event.kind.value} event cannot be stored as JSON: {exc}") from exc


def _check_limit(limit: int | None) -> int | None:
    """The SQL LIMIT for a `limit` argument (None: no limit)."""
    if limit is not None and limit < 0:
        raise ConfigError(f"must be zero or more, not {limit}", field="limit")
    return limit


def _pair_arrays(pairs: Iterable[Pair]) -> tuple[list[str], list[str]]:
    principals: list[str] = []
    groups: list[str] = []
    for pair in pairs:
        principals.append(_enc(pair.principal_id))
        groups.append(_enc(pair.group_id))
    return principals, groups


def _lock_key(schema: str) -> int:
    """The advisory-lock key of one schema's creation and migrations (a signed 64-bit int)."""
    digest = hashlib.blake2b(f"databricks_access:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _unique(pairs: Sequence[Pair]) -> list[Pair]:
    return list(dict.fromkeys(pairs))


# -- plans: each protocol method's transaction, written once --------------------------------
#
# A method's transaction is a generator that yields `_Exec` steps and receives their
# `_Result`s; the sync and the async store each run it on the kernel (`_sansio.py`) with a
# small driver, which owns the connection, the transaction, the NOTIFY and the retries. A
# failed statement is thrown back into the generator: a constraint violation becomes a
# `LeaseError` there, anything else passes through to the driver's retries. Arguments are
# checked when the plan is made, before any connection is taken.


@attrs.frozen
class _Exec(Effect["_Result"]):
    """Run one statement (or one statement per parameter set, for `many`)."""

    sql: str
    params: Sequence[object] | Mapping[str, object] | None = None
    many: Sequence[Sequence[object]] | None = None
    write: bool = False


@attrs.frozen
class _Result:
    """What a statement answered: its rows (per statement, for `many`) and row count."""

    rows: list[Row]
    rowcount: int
    sets: list[list[Row]] = attrs.field(factory=list)


Work = Generator[_Exec, _Result, T]


@attrs.frozen
class _Call(Generic[T]):
    """One method's transaction: its work (None: nothing to do, the answer is `value`)."""

    work: Callable[[_Sql], Work[T]] | None
    doing: str
    write: bool = False
    value: Any = None


def _leases(st: _Sql, rows: list[Row]) -> list[Lease]:
    try:
        return [_lease(row) for row in rows]
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise LeaseError(f"{st.where} holds a lease this version cannot read: {exc!r}") from exc


def _requests(st: _Sql, rows: list[Row]) -> list[AccessRequest]:
    try:
        return [_request(row) for row in rows]
    except (KeyError, ValueError, TypeError, OverflowError, json.JSONDecodeError) as exc:
        raise LeaseError(
            f"{st.where} holds an access request this version cannot read: {exc!r}"
        ) from exc


def _stored_events(st: _Sql, rows: list[Row]) -> list[StoredEvent]:
    try:
        return [StoredEvent(int(seq), AuditEvent.from_json(json.loads(text))) for seq, text in rows]
    except (KeyError, ValueError, TypeError) as exc:
        raise LeaseError(f"{st.where} holds an event this version cannot read: {exc!r}") from exc


def _stale(
    what: str, found: list[Row], expected: Sequence[str], version: int | None = None
) -> StaleStateError:
    if not found:
        return StaleStateError(f"{what} does not exist")
    if version is not None and found[0][0] in expected:
        return StaleStateError(
            f"{what} changed meanwhile (version {found[0][1]}, read at {version})"
        )
    wanted = ", ".join(expected) or "nothing"
    return StaleStateError(f"{what} is {found[0][0]}, expected one of: {wanted}")


def _plan_add_lease(lease: Lease, event: AuditEvent | None) -> _Call[None]:
    values = [_enc(lease.id), *_lease_values(lease)]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        try:
            yield _Exec(st.insert_lease, values, write=True)
        except pg_errors.UniqueViolation as exc:
            raise LeaseError(f"a lease with id {lease.id!r} already exists") from exc
        if payload is not None:
            yield _Exec(st.insert_event, (payload,), write=True)

    return _Call(work, f"add lease {lease.id!r}", write=True)


def _plan_update_lease(
    lease: Lease, expect: Iterable[LeaseState], event: AuditEvent | None
) -> _Call[None]:
    expected = sorted({state.value for state in expect})
    values = [*_lease_values(_next_version(lease)), _enc(lease.id), lease.version, expected]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        if expected and (yield _Exec(st.update_lease, values, write=True)).rowcount:
            if payload is not None:
                yield _Exec(st.insert_event, (payload,), write=True)
            return
        found = (yield _Exec(st.lease_state, (_enc(lease.id),))).rows
        raise _stale(f"lease {lease.id!r}", found, expected, lease.version)

    return _Call(work, f"update lease {lease.id!r}", write=True)


def _plan_update_leases(
    updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]],
) -> _Call[list[bool]]:
    ids = [_enc(lease.id) for lease, _, _ in updates]
    rows = [
        [lease_id, expect.value, lease.version, *_lease_values(_next_version(lease))]
        for lease_id, (lease, expect, _) in zip(ids, updates, strict=True)
    ]
    payloads = [None if event is None else _event_payload(event) for _, _, event in updates]
    if not rows:
        return _Call(None, "update no leases", value=[])
    distinct = len(set(ids)) == len(ids)

    def work(st: _Sql) -> Work[list[bool]]:
        if distinct:
            # One statement for the whole batch: each row is its own compare-and-set.
            columns = [list(column) for column in zip(*rows, strict=True)]
            updated = {row[0] for row in (yield _Exec(st.update_batch, columns, write=True)).rows}
            applied = [lease_id in updated for lease_id in ids]
        else:
            # The same lease twice: one statement per update, in order (pipelined), so
            # each compare-and-set sees the ones before it.
            many = [[*row[3:], row[0], row[2], row[1]] for row in rows]
            result = yield _Exec(st.update_cas, many=many, write=True)
            applied = [bool(found) for found in result.sets]
        written = [p for ok, p in zip(applied, payloads, strict=True) if ok and p is not None]
        if written:
            yield _Exec(st.insert_events, (written,), write=True)
        return applied

    return _Call(work, f"update {len(rows)} leases", write=True)


def _plan_get_lease(lease_id: str) -> _Call[Lease | None]:
    def work(st: _Sql) -> Work[Lease | None]:
        rows = (yield _Exec(st.get_lease, (_enc(lease_id),))).rows
        return _leases(st, rows)[0] if rows else None

    return _Call(work, "read a lease")


def _plan_leases_on_pairs(
    pairs: Sequence[Pair], states: Iterable[LeaseState] | None
) -> _Call[list[Lease]]:
    wanted = None if states is None else sorted({state.value for state in states})
    if wanted == [] or not pairs:
        return _Call(None, "read the leases of pairs", value=[])
    principals, groups = _pair_arrays(_unique(pairs))
    params: dict[str, object] = {"p": principals, "g": groups, "states": wanted}

    def work(st: _Sql) -> Work[list[Lease]]:
        statement = st.leases_on_pairs if wanted is None else st.leases_on_pairs_in
        return _leases(st, (yield _Exec(statement, params)).rows)

    return _Call(work, f"read the leases of {len(principals)} pair(s)")


def _plan_find_leases(
    principal_id: str | None,
    group_id: str | None,
    states: Iterable[LeaseState] | None,
    limit: int | None,
) -> _Call[list[Lease]]:
    _check_limit(limit)
    where: list[str] = []
    params: list[object] = []
    if principal_id is not None:
        where.append("principal_id = %s")
        params.append(_enc(principal_id))
    if group_id is not None:
        where.append("group_id = %s")
        params.append(_enc(group_id))
    if states is not None:
        wanted = sorted({state.value for state in states})
        if not wanted:
            return _Call(None, "find leases", value=[])
        where.append("state = ANY(%s::text[])")
        params.append(wanted)
    tail = (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY granted_at, rid LIMIT %s"
    params.append(limit)

    def work(st: _Sql) -> Work[list[Lease]]:
        return _leases(st, (yield _Exec(st.select_leases + tail, params)).rows)

    return _Call(work, "find leases")


def _plan_due_leases(now: dt.datetime, stuck_before: dt.datetime, limit: int) -> _Call[list[Lease]]:
    _check_limit(limit)
    now_us = _micros(now, "now")
    stuck_us = _micros(stuck_before, "stuck_before")
    params = {"now": now_us, "stuck": stuck_us, "shift": now_us - stuck_us, "limit": limit}

    def work(st: _Sql) -> Work[list[Lease]]:
        return _leases(st, (yield _Exec(st.due_leases, params)).rows)

    return _Call(work, "find due leases")


def _plan_next_due(stuck_after: dt.timedelta) -> _Call[dt.datetime | None]:
    shift = stuck_after // _US

    def work(st: _Sql) -> Work[dt.datetime | None]:
        ((*now_due, granting, revoking),) = (yield _Exec(st.next_due)).rows
        times = [t for t in now_due if t is not None]
        times += [t + shift for t in (granting, revoking) if t is not None]
        return _from_micros(min(max(min(times), _MIN_US), _MAX_US)) if times else None

    return _Call(work, "find the next due lease")


def _plan_claim_pairs(
    pairs: Sequence[Pair], owner: str, now: dt.datetime, until: dt.datetime
) -> _Call[list[Pair]]:
    if not pairs:
        return _Call(None, "claim no pairs", value=[])
    now_us = _micros(now, "now")
    until_us = _micros(until, "until")
    unique = _unique(pairs)

    def work(st: _Sql) -> Work[list[Pair]]:
        principals, groups = _pair_arrays(unique)
        params = {"owner": _enc(owner), "until": until_us, "now": now_us}
        inserted = yield _Exec(st.claim_free, {**params, "p": principals, "g": groups}, write=True)
        held = {Pair(_dec(p), _dec(g)) for p, g in inserted.rows}
        rest = [pair for pair in unique if pair not in held]
        if rest:
            principals, groups = _pair_arrays(rest)
            taken = yield _Exec(st.claim_held, {**params, "p": principals, "g": groups}, write=True)
            held.update(Pair(_dec(p), _dec(g)) for p, g in taken.rows)
        return [pair for pair in pairs if pair in held]

    return _Call(work, f"claim {len(unique)} pair(s)", write=True)


def _plan_renew_pairs(pairs: Sequence[Pair], owner: str, until: dt.datetime) -> _Call[list[Pair]]:
    if not pairs:
        return _Call(None, "renew no claims", value=[])
    until_us = _micros(until, "until")
    unique = _unique(pairs)
    principals, groups = _pair_arrays(unique)
    params = {"p": principals, "g": groups, "owner": _enc(owner), "until": until_us}

    def work(st: _Sql) -> Work[list[Pair]]:
        renewed = yield _Exec(st.renew, params, write=True)
        held = {Pair(_dec(p), _dec(g)) for p, g in renewed.rows}
        return [pair for pair in pairs if pair in held]

    return _Call(work, f"renew {len(unique)} claim(s)", write=True)


def _plan_release_pairs(pairs: Sequence[Pair], owner: str) -> _Call[None]:
    if not pairs:
        return _Call(None, "release no pairs")
    principals, groups = _pair_arrays(_unique(pairs))
    params = {"p": principals, "g": groups, "owner": _enc(owner)}

    def work(st: _Sql) -> Work[None]:
        yield _Exec(st.release, params, write=True)

    return _Call(work, f"release {len(principals)} pair(s)", write=True)


def _plan_add_event(event: AuditEvent) -> _Call[None]:
    payload = _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        yield _Exec(st.insert_event, (payload,), write=True)

    return _Call(work, "add an event", write=True)


def _plan_pending_events(limit: int) -> _Call[list[StoredEvent]]:
    _check_limit(limit)

    def work(st: _Sql) -> Work[list[StoredEvent]]:
        return _stored_events(st, (yield _Exec(st.pending_events, (limit,))).rows)

    return _Call(work, "read pending events")


def _plan_mark_delivered(seqs: Sequence[int]) -> _Call[None]:
    # Sequence numbers are positive 64-bit integers; anything else is unknown: ignored.
    wanted = [seq for seq in dict.fromkeys(seqs) if isinstance(seq, int) and 0 < seq < _INT64]
    if not wanted:
        return _Call(None, "mark no events delivered")
    # The delivery time is a record for people (the system clock's), not a decision.
    params = (_micros(dt.datetime.now(_UTC), "delivery time"), wanted)

    def work(st: _Sql) -> Work[None]:
        yield _Exec(st.mark_delivered, params, write=True)

    return _Call(work, f"mark {len(wanted)} event(s) delivered", write=True)


def _plan_add_request(request: AccessRequest, event: AuditEvent | None) -> _Call[None]:
    values = [_enc(request.id), *_request_values(request)]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        try:
            yield _Exec(st.insert_request, values, write=True)
        except pg_errors.UniqueViolation as exc:
            raise LeaseError(f"an access request with id {request.id!r} already exists") from exc
        if payload is not None:
            yield _Exec(st.insert_event, (payload,), write=True)

    return _Call(work, f"add access request {request.id!r}", write=True)


def _plan_update_request(
    request: AccessRequest, expect: Iterable[RequestState], event: AuditEvent | None
) -> _Call[None]:
    expected = sorted({state.value for state in expect})
    values = [*_request_values(request), _enc(request.id), expected]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        if expected and (yield _Exec(st.update_request, values, write=True)).rowcount:
            if payload is not None:
                yield _Exec(st.insert_event, (payload,), write=True)
            return
        found = (yield _Exec(st.request_state, (_enc(request.id),))).rows
        raise _stale(f"access request {request.id!r}", found, expected)

    return _Call(work, f"update access request {request.id!r}", write=True)


def _plan_get_request(request_id: str) -> _Call[AccessRequest | None]:
    def work(st: _Sql) -> Work[AccessRequest | None]:
        rows = (yield _Exec(st.get_request, (_enc(request_id),))).rows
        return _requests(st, rows)[0] if rows else None

    return _Call(work, "read an access request")


def _plan_find_requests(
    states: Iterable[RequestState] | None,
    principal_id: str | None,
    group_id: str | None,
    limit: int | None,
) -> _Call[list[AccessRequest]]:
    _check_limit(limit)
    where: list[str] = []
    params: list[object] = []
    if states is not None:
        wanted = sorted({state.value for state in states})
        if not wanted:
            return _Call(None, "find access requests", value=[])
        where.append("state = ANY(%s::text[])")
        params.append(wanted)
    if principal_id is not None:
        where.append("principal_id = %s")
        params.append(_enc(principal_id))
    if group_id is not None:
        where.append("group_id = %s")
        params.append(_enc(group_id))
    tail = (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at, rid LIMIT %s"
    params.append(limit)

    def work(st: _Sql) -> Work[list[AccessRequest]]:
        return _requests(st, (yield _Exec(st.select_requests + tail, params)).rows)

    return _Call(work, "find access requests")


# -- opening: the schema, created or migrated once ------------------------------------------


def _inspect(schema: str) -> Work[tuple[bool, int, bool]]:
    ((exists, tables, has_meta),) = (yield _Exec(_INSPECT, {"schema": schema})).rows
    return bool(exists), int(tables), bool(has_meta)


def _version(st: _Sql) -> Work[int | None]:
    """The schema's version; None for a schema that is missing or empty."""
    exists, tables, has_meta = yield from _inspect(st.schema)
    if not has_meta:
        if exists and tables:
            raise LeaseError(
                f"{st.where} holds tables that are not a databricks_access lease store; "
                "choose another schema"
            )
        return None
    rows = (yield _Exec(st.version)).rows
    try:
        version = int(rows[0][0])
    except (IndexError, TypeError, ValueError):
        raise LeaseError(f"{st.where} has a meta table without a schema version") from None
    if version > SCHEMA_VERSION:
        raise LeaseError(
            f"{st.where} was written by a newer databricks_access (schema version {version}; "
            f"this version reads up to {SCHEMA_VERSION}): upgrade databricks_access"
        )
    return version


def _upgrade(st: _Sql) -> Work[None]:
    """Create or migrate the schema, under the schema's advisory lock (one transaction)."""
    yield _Exec(_LOCK, (_lock_key(st.schema),))
    # Under the lock, look again: another replica may have done it meanwhile.
    version = yield from _version(st)
    if version == SCHEMA_VERSION:
        return
    if version is None:
        exists, _, _ = yield from _inspect(st.schema)
        if not exists:
            yield _Exec(st.create_schema)
        for statement in _SCHEMA:
            yield _Exec(st.render(statement))
        yield _Exec(st.insert_version, (str(SCHEMA_VERSION),))
        return
    for step in range(version, SCHEMA_VERSION):
        for statement in _MIGRATIONS[step]:
            yield _Exec(st.render(statement))
    yield _Exec(st.update_version, (str(SCHEMA_VERSION),))


def _check_server(conn: AnyConnection, where: str) -> None:
    version = conn.info.server_version
    if version < _MIN_SERVER_VERSION:
        raise LeaseError(f"{where} runs PostgreSQL {version // 10000}; it needs 10 or later")
    encoding = conn.info.parameter_status("server_encoding")
    if encoding is not None and encoding.upper() not in {"UTF8", "UTF-8"}:
        raise LeaseError(f"{where} is in a {encoding} database; it needs a UTF8 database")


# -- settings and errors ---------------------------------------------------------------------


@attrs.frozen
class _Settings:
    """What both stores are made of: where to connect, with what, and how long to wait."""

    conninfo: str
    kwargs: dict[str, Any]
    url: str
    schema: str
    min_size: int
    max_size: int
    timeout: float

    @classmethod
    def build(
        cls,
        conninfo: str,
        *,
        schema: str,
        min_size: int,
        max_size: int,
        timeout: float,
        application_name: str,
    ) -> _Settings:
        if _MISSING is not None:
            raise ConfigError(
                "the PostgreSQL lease store needs psycopg 3 and psycopg-pool, which are not "
                f"installed ({_MISSING}): pip install 'databricks-access[postgres]'",
                field="conninfo",
            )
        if not isinstance(conninfo, str):
            raise ConfigError("must be a PostgreSQL URL or conninfo string", field="conninfo")
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise ConfigError(
                f"is not a valid PostgreSQL URL or conninfo string: {_first_line(exc)}",
                field="conninfo",
            ) from None
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(
                "must be a schema name of letters, digits and underscores (not starting "
                f"with a digit, at most 63 characters), not {schema!r}",
                field="schema",
            )
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ConfigError(f"must be an integer >= 1, not {min_size!r}", field="min_size")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < min_size:
            raise ConfigError(
                f"must be an integer >= min_size ({min_size}), not {max_size!r}", field="max_size"
            )
        timeout = seconds(timeout, "timeout", positive=True)
        kwargs: dict[str, Any] = {"autocommit": True, "client_encoding": "UTF8"}
        if "application_name" not in params:
            kwargs["application_name"] = application_name
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = max(2, math.ceil(min(float(timeout), 30.0)))
        return cls(
            conninfo=conninfo,
            kwargs=kwargs,
            url=_describe(params),
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            timeout=float(timeout),
        )

    @property
    def where(self) -> str:
        """The store, in words, for messages (never with a password)."""
        return f"the PostgreSQL lease store at {self.url} (schema {self.schema!r})"

    @property
    def lock_timeout(self) -> str:
        """`lock_timeout` for the pooled connections: a row lock waits at most `timeout`."""
        return f"{max(1, round(self.timeout * 1000))}ms"


def _describe(params: Mapping[str, Any]) -> str:
    """A URL naming the server and database, without the password."""
    user = params.get("user")
    host = params.get("host") or params.get("hostaddr") or ""
    port = params.get("port")
    netloc = (f"{user}@" if user else "") + str(host) + (f":{port}" if port else "")
    return f"postgresql://{netloc}/{params.get('dbname') or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def _error(exc: BaseException, settings: _Settings, doing: str) -> LeaseError:
    """A `LeaseError` that says, in words, what went wrong with the database."""
    where = settings.where
    text = _first_line(exc)
    state = _sqlstate(exc) or ""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        message = (
            f"{where}: no connection became available within {settings.timeout:g} s (is the "
            f"server up and reachable, and max_size large enough?): cannot {doing} ({text})"
        )
    elif isinstance(exc, UnicodeError):
        message = f"{where} cannot store text that is not valid Unicode: cannot {doing} ({text})"
    elif state == "55P03":
        message = (
            f"{where}: a row stayed locked by another session for more than "
            f"{settings.timeout:g} s: cannot {doing} ({text})"
        )
    elif state == "42501":
        message = (
            f"{where}: the database user lacks a privilege (it must be able to create the "
            f"schema, or own its tables): cannot {doing} ({text})"
        )
    elif state == "25006":
        message = f"{where} is read-only (a standby server?): cannot {doing} ({text})"
    elif state.startswith("53"):
        message = (
            f"{where} is out of resources (disk, memory or connections): cannot {doing} ({text})"
        )
    elif state == "42P01":
        message = (
            f"{where} is missing its tables (was the schema dropped?): cannot {doing} ({text})"
        )
    elif isinstance(exc, psycopg.OperationalError):
        message = f"{where}: the connection to the server failed: cannot {doing} ({text})"
    else:
        message = f"{where} failed: cannot {doing} ({text})"
    return LeaseError(message)


@attrs.define
class _Attempt:
    """How far one try of a transaction got, to decide whether to run it again."""

    conn: AnyConnection | None = None
    value: Any = None
    xid: int | None = None
    committing: bool = False

    @property
    def lost(self) -> bool:
        """Whether the connection broke (rather than the statement failing on the server)."""
        return self.conn is not None and (self.conn.closed or self.conn.broken)


class _Retry(enum.Enum):
    """What to do after a failed try."""

    AGAIN = "again"
    ASK = "ask"  # the COMMIT's fate is unknown: ask the server with txid_status()


def _after(exc: psycopg.Error, attempt: _Attempt, tries: dict[str, int], closed: bool) -> _Retry:
    """Whether a failed try may run again; raises `exc` (to be mapped) when it may not."""
    if _sqlstate(exc) in _CONFLICTS and tries["conflicts"] < _CONFLICT_RETRIES:
        tries["conflicts"] += 1
        return _Retry.AGAIN
    if not attempt.lost or closed or isinstance(exc, psycopg_pool.PoolTimeout):
        raise exc
    if attempt.committing and attempt.xid is not None:
        return _Retry.ASK
    # Nothing was committed (or nothing was to be): run it again, once.
    if tries["reconnects"]:
        tries["reconnects"] -= 1
        return _Retry.AGAIN
    raise exc


def _unknown(exc: psycopg.Error, settings: _Settings, doing: str) -> LeaseError:
    return LeaseError(
        f"{settings.where}: the connection was lost while committing, and whether the change "
        f"was stored is unknown: cannot {doing} ({_first_line(exc)})"
    )


def _relevant(payload: str, schema: str, own: str) -> bool:
    """Whether a notification announces a change to this schema by another writer.

    A NOTIFY without a payload (an administrator's) concerns every schema.
    """
    if not payload:
        return True
    target, _, writer = payload.partition(" ")
    return target == schema and payload != own and bool(writer)


def _drain_notifies(conn: AnyConnection, schema: str, own: str) -> bool:
    """Read what the listening connection received; whether any of it is relevant.

    Raises `psycopg.OperationalError` when the connection is gone.
    """
    pgconn = conn.pgconn
    pgconn.consume_input()
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the listening connection is lost")
    relevant = False
    while (notify := pgconn.notifies()) is not None:
        if _relevant(notify.extra.decode("utf-8", "replace"), schema, own):
            relevant = True
    return relevant


def _new_own(schema: str) -> str:
    """The payload of this store object's notifications: its schema and a random tag."""
    return f"{schema} {secrets.token_hex(8)}"


# -- the sync store ----------------------------------------------------------------------


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
            if self._drive(conn, _version(st))[0] != SCHEMA_VERSION:
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
        self._run(_plan_add_lease(lease, event))

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
        self._run(_plan_update_lease(lease, expect, event))

    def update_leases(
        self, updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> list[bool]:
        """Apply many compare-and-set updates in one transaction; False for each stale one.

        The updates run in order (pipelined: one round trip), so each sees the ones before
        it; events are written for the applied ones only, in the same order.
        """
        return self._run(_plan_update_leases(updates))

    def get_lease(self, lease_id: str) -> Lease | None:
        """One lease, or None."""
        return self._run(_plan_get_lease(lease_id))

    def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """Every lease on any of `pairs` (in `states`, when given), oldest first.

        One query for the whole batch, an index lookup per pair; ties keep the order in
        which the leases were added.
        """
        return self._run(_plan_leases_on_pairs(pairs, states))

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
        return self._run(_plan_find_leases(principal_id, group_id, states, limit))

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
        return self._run(_plan_due_leases(now, stuck_before, limit))

    def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """The earliest time at which `due_leases` would return something, or None.

        For `GRANTING`/`REVOKING` leases that time is `updated_at + stuck_after`.
        """
        return self._run(_plan_next_due(stuck_after))

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
        return self._run(_plan_claim_pairs(pairs, owner, now, until))

    def renew_pairs(self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime) -> list[Pair]:
        """Extend `owner`'s claims on `pairs` to `until`; returns those still `owner`'s."""
        return self._run(_plan_renew_pairs(pairs, owner, until))

    def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """Release `owner`'s claims on `pairs` (others' claims are left alone)."""
        self._run(_plan_release_pairs(pairs, owner))

    # -- outbox --------------------------------------------------------------------------

    def add_event(self, event: AuditEvent) -> None:
        """Append an event that comes with no state change (drift, say)."""
        self._run(_plan_add_event(event))

    def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """Events not yet delivered, in the order written (at most `limit`).

        Each replica delivers what it finds pending, so with several replicas an event
        may reach the sink more than once (delivery is at least once, as after a crash).
        """
        return self._run(_plan_pending_events(limit))

    def mark_delivered(self, seqs: Sequence[int]) -> None:
        """Mark events delivered; unknown or already delivered sequence numbers are ignored.

        Delivered events stay in the table with their delivery time (the system clock's:
        a record for people, not a decision).
        """
        self._run(_plan_mark_delivered(seqs))

    # -- access requests -----------------------------------------------------------------

    def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """Insert a new access request and its event.

        Raises:
            LeaseError: a request with this id exists, a time is naive, or the database
                cannot be written.
        """
        self._run(_plan_add_request(request, event))

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
        self._run(_plan_update_request(request, expect, event))

    def get_request(self, request_id: str) -> AccessRequest | None:
        """One access request, or None."""
        return self._run(_plan_get_request(request_id))

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
        return self._run(_plan_find_requests(states, principal_id, group_id, limit))

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


# -- the async store -----------------------------------------------------------------------


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
            if (await self._drive(conn, _version(st)))[0] != SCHEMA_VERSION:
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
        await self._run(_plan_add_lease(lease, event))

    async def update_lease(
        self,
        lease: Lease,
        *,
        expect: Iterable[LeaseState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `PostgresLeaseStore.update_lease`."""
        await self._run(_plan_update_lease(lease, expect, event))

    async def update_leases(
        self, updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> list[bool]:
        """See `PostgresLeaseStore.update_leases`."""
        return await self._run(_plan_update_leases(updates))

    async def get_lease(self, lease_id: str) -> Lease | None:
        """See `PostgresLeaseStore.get_lease`."""
        return await self._run(_plan_get_lease(lease_id))

    async def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """See `PostgresLeaseStore.leases_on_pairs`."""
        return await self._run(_plan_leases_on_pairs(pairs, states))

    async def find_leases(
        self,
        *,
        principal_id: str | None = None,
        group_id: str | None = None,
        states: Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """See `PostgresLeaseStore.find_leases`."""
        return await self._run(_plan_find_leases(principal_id, group_id, states, limit))

    async def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """See `PostgresLeaseStore.due_leases`."""
        return await self._run(_plan_due_leases(now, stuck_before, limit))

    async def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """See `PostgresLeaseStore.next_due`."""
        return await self._run(_plan_next_due(stuck_after))

    async def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """See `PostgresLeaseStore.claim_pairs`."""
        return await self._run(_plan_claim_pairs(pairs, owner, now, until))

    async def renew_pairs(
        self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime
    ) -> list[Pair]:
        """See `PostgresLeaseStore.renew_pairs`."""
        return await self._run(_plan_renew_pairs(pairs, owner, until))

    async def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """See `PostgresLeaseStore.release_pairs`."""
        await self._run(_plan_release_pairs(pairs, owner))

    async def add_event(self, event: AuditEvent) -> None:
        """See `PostgresLeaseStore.add_event`."""
        await self._run(_plan_add_event(event))

    async def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """See `PostgresLeaseStore.pending_events`."""
        return await self._run(_plan_pending_events(limit))

    async def mark_delivered(self, seqs: Sequence[int]) -> None:
        """See `PostgresLeaseStore.mark_delivered`."""
        await self._run(_plan_mark_delivered(seqs))

    async def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """See `PostgresLeaseStore.add_request`."""
        await self._run(_plan_add_request(request, event))

    async def update_request(
        self,
        request: AccessRequest,
        *,
        expect: Iterable[RequestState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `PostgresLeaseStore.update_request`."""
        await self._run(_plan_update_request(request, expect, event))

    async def get_request(self, request_id: str) -> AccessRequest | None:
        """See `PostgresLeaseStore.get_request`."""
        return await self._run(_plan_get_request(request_id))

    async def find_requests(
        self,
        *,
        states: Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """See `PostgresLeaseStore.find_requests`."""
        return await self._run(_plan_find_requests(states, principal_id, group_id, limit))

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
