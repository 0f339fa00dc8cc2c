"""The SQLite lease store's schema: its version, the DDL of a new file, and the migrations.

A new file gets `_SCHEMA`; an older one runs `_MIGRATIONS[v]` for each version `v` it
is behind, in the transaction that opens it (`file._SqliteFile._open_schema`).
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "_APPLICATION_ID", "_MIGRATIONS", "_SCHEMA"]

SCHEMA_VERSION = 2
"""The schema version this release writes; older files are migrated when opened."""

# "DALS": marks the file as ours, so a foreign SQLite file is refused, not "migrated".
_APPLICATION_ID = 0x44414C53

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
