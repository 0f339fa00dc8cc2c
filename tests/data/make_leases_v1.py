"""Write `leases-v1.db`: a lease store in the schema version 1 layout, for migration tests.

Version 1 is the layout before access requests kept their grant retries: its `requests`
table has no `attempts`, `retry_at` or `last_error`. The file holds a pending request,
an approved one whose grant is waiting, a granted one and its lease. Run once from this
directory and commit the result::

    python make_leases_v1.py

Only the standard library is used, so the file does not depend on the code it tests.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import sqlite3

HERE = pathlib.Path(__file__).parent
TARGET = HERE / "leases-v1.db"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
APPLICATION_ID = 0x44414C53

V1_SCHEMA = (
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
)


def us(text: str) -> int:
    """Microseconds since the epoch of an ISO time (UTC)."""
    return (dt.datetime.fromisoformat(text) - EPOCH) // dt.timedelta(microseconds=1)


def request(request_id: str, state: str, *, decided_by: str | None, lease_id: str | None):
    return (
        request_id, "user", "u-1", "g-1", 3600.0, "INC-7", "helpdesk@example.com", state,
        us("2026-01-01T09:00:00+00:00"), us("2026-01-02T09:00:00+00:00"),
        us("2026-01-01T09:05:00.000001+00:00"), json.dumps(["user:ann@example.com"]),
        "integration_owner", decided_by, None, lease_id, "Access is logged.", "readers",
        "alice@example.com",
    )  # fmt: skip


REQUESTS = (
    request("req_pending", "pending", decided_by=None, lease_id=None),
    request("req_approved", "approved", decided_by="ann@example.com", lease_id=None),
    request("req_granted", "approved", decided_by="ann@example.com", lease_id="lease_1"),
)

LEASE = (
    "lease_1", "user", "u-1", "g-1", "active", us("2026-01-01T09:05:00+00:00"),
    us("2026-01-01T10:05:00+00:00"), "helpdesk@example.com", "INC-7", "ann@example.com",
    0, 0, 0, None, None, us("2026-01-01T09:05:00+00:00"), None, "req_granted", "readers",
    "alice@example.com", us("2026-01-01T10:05:00+00:00"),
)  # fmt: skip


def main() -> None:
    TARGET.unlink(missing_ok=True)
    conn = sqlite3.connect(TARGET, isolation_level=None)
    try:
        conn.execute("PRAGMA page_size = 512")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("BEGIN")
        for statement in V1_SCHEMA:
            conn.execute(statement)
        columns = (
            "id, principal_kind, principal_id, group_id, state, granted_at, expires_at, "
            "requester, reason, approver, standing, extensions, attempts, retry_at, "
            "last_error, updated_at, ended_at, request_id, group_name, principal_name, due_at"
        )
        conn.execute(f"INSERT INTO leases ({columns}) VALUES ({', '.join(['?'] * 21)})", LEASE)  # noqa: S608 - fixed
        columns = (
            "id, principal_kind, principal_id, group_id, ttl_seconds, reason, requester, "
            "state, created_at, expires_at, updated_at, approvers, approver_source, "
            "decided_by, decision_reason, lease_id, access_details, group_name, principal_name"
        )
        conn.executemany(
            f"INSERT INTO requests ({columns}) VALUES ({', '.join(['?'] * 19)})",  # noqa: S608 - fixed
            REQUESTS,
        )
        conn.execute("PRAGMA user_version = 1")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
        conn.execute("VACUUM")
    finally:
        conn.close()


if __name__ == "__main__":
    main()
