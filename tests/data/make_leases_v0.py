"""Write `leases-v0.db`: a lease store in the schema version 0 layout, for migration tests.

Version 0 is the layout before access requests: no `requests` table, no `due_at` column
(due leases were found through an index on `expires_at`), no pending-events index, no
`application_id`. Run once from this directory and commit the result::

    python make_leases_v0.py

Only the standard library is used, so the file does not depend on the code it tests.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import sqlite3

HERE = pathlib.Path(__file__).parent
TARGET = HERE / "leases-v0.db"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

V0_SCHEMA = (
    """CREATE TABLE leases (
    id TEXT PRIMARY KEY,
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
    principal_name TEXT
)""",
    "CREATE INDEX leases_expiry ON leases (state, expires_at)",
    "CREATE INDEX leases_pair ON leases (principal_id, group_id)",
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
)


def us(text: str) -> int:
    """Microseconds since the epoch of an ISO time (UTC)."""
    return (dt.datetime.fromisoformat(text) - EPOCH) // dt.timedelta(microseconds=1)


def lease(
    lease_id: str,
    state: str,
    granted: str,
    expires: str,
    updated: str,
    retry: str | None = None,
    ended: str | None = None,
    attempts: int = 0,
) -> tuple[object, ...]:
    return (
        lease_id, "user", "u-1", "g-1", state, us(granted), us(expires), "alice", "INC-1",
        None, 0, 0, attempts, None if retry is None else us(retry),
        "HTTP 503" if attempts else None, us(updated), None if ended is None else us(ended),
        None, "readers", "alice@example.com",
    )  # fmt: skip


LEASES = (
    lease("lease_active_due", "active", "2026-01-01T09:00:00.000001+00:00",
          "2026-01-01T10:00:00.123456+00:00", "2026-01-01T09:00:00.000001+00:00"),
    lease("lease_active_later", "active", "2026-01-01T09:30:00+00:00",
          "2026-01-02T00:00:00+00:00", "2026-01-01T09:30:00+00:00"),
    lease("lease_revoke_failed", "revoke_failed", "2026-01-01T06:00:00+00:00",
          "2026-01-01T07:00:00+00:00", "2026-01-01T07:05:00+00:00",
          retry="2026-01-01T09:45:00+00:00", attempts=5),
    lease("lease_granting", "granting", "2026-01-01T08:00:00+00:00",
          "2026-01-01T12:00:00+00:00", "2026-01-01T08:00:00+00:00"),
    lease("lease_revoked", "revoked", "2026-01-01T01:00:00+00:00",
          "2026-01-01T02:00:00+00:00", "2026-01-01T02:00:01+00:00",
          ended="2026-01-01T02:00:01+00:00"),
)  # fmt: skip

EVENTS = (
    ({"kind": "granted", "at": "2026-01-01T01:00:00+00:00", "lease_id": "lease_revoked"}, 1),
    ({"kind": "revoked", "at": "2026-01-01T02:00:01+00:00", "lease_id": "lease_revoked"}, 1),
    ({"kind": "granted", "at": "2026-01-01T09:00:00.000001+00:00", "lease_id": "lease_active_due"}, None),
)  # fmt: skip


def main() -> None:
    TARGET.unlink(missing_ok=True)
    conn = sqlite3.connect(TARGET, isolation_level=None)
    try:
        conn.execute("PRAGMA page_size = 512")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("BEGIN")
        for statement in V0_SCHEMA:
            conn.execute(statement)
        values = ", ".join(["?"] * 20)
        conn.executemany(f"INSERT INTO leases VALUES ({values})", LEASES)  # noqa: S608 - fixed
        conn.execute(
            "INSERT INTO claims VALUES ('u-1', 'g-1', 'replica-a', ?)",
            (us("2026-01-01T09:02:00+00:00"),),
        )
        for payload, delivered in EVENTS:
            conn.execute(
                "INSERT INTO events (payload, delivered_at) VALUES (?, ?)",
                (json.dumps(payload, separators=(",", ":")), delivered),
            )
        conn.execute("COMMIT")
        conn.execute("VACUUM")
    finally:
        conn.close()


if __name__ == "__main__":
    main()
