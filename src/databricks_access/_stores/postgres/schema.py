"""The PostgreSQL lease store's schema: its version, its DDL, the migrations, and opening.

A missing or empty schema gets `_SCHEMA`; an older one runs `_MIGRATIONS[v]` for each
version `v` it is behind. Both happen in `_upgrade`, one transaction under the schema's
advisory lock, so replicas that start at once do it once.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from databricks_access._errors import LeaseError
from databricks_access._stores.postgres.plans import Work, _Exec
from databricks_access._stores.postgres.sql import _INSPECT, _LOCK, _Sql

if TYPE_CHECKING:
    from databricks_access._stores.postgres.recovery import AnyConnection

SCHEMA_VERSION = 2
"""The schema version this release writes; older schemas are migrated when opened."""

_MIN_SERVER_VERSION = 100000  # txid_status() and identity columns: PostgreSQL 10

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


def _lock_key(schema: str) -> int:
    """The advisory-lock key of one schema's creation and migrations (a signed 64-bit int)."""
    digest = hashlib.blake2b(f"databricks_access:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _is_current(version: int | None) -> bool:
    """Whether a schema at `version` (None: none yet) needs no creation or migration."""
    return version == SCHEMA_VERSION


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
