"""The SQLite lease store's statements, and the row mapping their parameters follow.

Columns are listed once (`_LEASE_FIELDS`, `_REQUEST_FIELDS`) in the order of
`rows.RowMapping`; `_lease_values` and the other functions here are that mapping with
SQLite's rules (text made storable, flags as integers, ASCII JSON).
"""

from __future__ import annotations

from databricks_access._errors import ConfigError
from databricks_access._leases.values import LeaseState
from databricks_access._stores.rows import RowMapping, next_version, storable_text

__all__ = [
    "_CHUNK",
    "_CLAIM",
    "_DUE_LEASES",
    "_IDS_PER_QUERY",
    "_INSERT_EVENT",
    "_INSERT_LEASE",
    "_INSERT_REQUEST",
    "_LEASE_FIELDS",
    "_LEASE_STATE",
    "_MARK_DELIVERED",
    "_NEXT_DUE",
    "_PAIRS_PER_QUERY",
    "_PENDING_EVENTS",
    "_RELEASE",
    "_RENEW",
    "_REQUEST_STATE",
    "_SELECT_LEASES",
    "_SELECT_REQUESTS",
    "_UPDATE_LEASE",
    "_UPDATE_LEASE_ROW",
    "_UPDATE_REQUEST",
    "_check_limit",
    "_event_payload",
    "_held_claims",
    "_lease",
    "_lease_values",
    "_lease_versions",
    "_next_version",
    "_pair_leases",
    "_placeholders",
    "_request",
    "_request_values",
]

# Pairs per statement when reading claims back (2 parameters each; stays under the old
# 999-parameter limit of SQLite builds before 3.32).
_CHUNK = 400

_LEASE_FIELDS = (
    "id, principal_kind, principal_id, group_id, state, granted_at, expires_at, requester, "
    "reason, approver, standing, extensions, attempts, retry_at, last_error, updated_at, "
    "ended_at, request_id, group_name, principal_name, version"
)
_INSERT_LEASE = f"INSERT INTO leases ({_LEASE_FIELDS}, due_at) VALUES ({', '.join(['?'] * 22)})"  # noqa: S608 - fixed fragments
# Pairs per `leases_on_pairs` query: two bound values each, well under SQLite's limit.
_PAIRS_PER_QUERY = 400
_SET_LEASE = (
    "UPDATE leases SET principal_kind = ?, principal_id = ?, group_id = ?, state = ?, "
    "granted_at = ?, expires_at = ?, requester = ?, reason = ?, approver = ?, standing = ?, "
    "extensions = ?, attempts = ?, retry_at = ?, last_error = ?, updated_at = ?, "
    "ended_at = ?, request_id = ?, group_name = ?, principal_name = ?, version = ?, "
    "due_at = ?"
)
_UPDATE_LEASE = _SET_LEASE + " WHERE id = ? AND version = ? AND state IN "
# A batch's rows, by row id, once their compare-and-set was checked under the write lock.
_UPDATE_LEASE_ROW = _SET_LEASE + " WHERE rid = ?"
# Ids per statement when reading a batch's stored states (under the old 999 limit).
_IDS_PER_QUERY = 900


def _lease_versions(count: int) -> str:
    """The row id, state and version of `count` leases, by id."""
    return "SELECT id, rid, state, version FROM leases WHERE id IN " + _placeholders(count)  # noqa: S608 - fixed fragments


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

_LEASE_STATE = "SELECT state, version FROM leases WHERE id = ?"


def _pair_leases(count: int) -> str:
    """The leases on `count` pairs (two parameters each); a state filter may follow."""
    # Driven from the pairs, so each one is an index lookup on leases_pair.
    values = ", ".join(["(?, ?)"] * count)
    return (
        f"WITH wanted(p, g) AS (VALUES {values}) "  # noqa: S608 - fixed fragments
        f"SELECT {_LEASE_FIELDS} FROM wanted CROSS JOIN leases "
        "ON principal_id = p AND group_id = g"
    )


def _held_claims(count: int) -> str:
    """Which of `count` pairs (two parameters each) one owner (the last parameter) holds."""
    # CROSS JOIN keeps the VALUES list outside: one primary-key probe per pair.
    return (
        "SELECT c.principal_id, c.group_id FROM (VALUES "  # noqa: S608 - fixed fragments
        + ", ".join(["(?, ?)"] * count)
        + ") AS v CROSS JOIN claims AS c ON c.principal_id = v.column1 "
        "AND c.group_id = v.column2 WHERE c.owner = ?"
    )


_RENEW = "UPDATE claims SET expires_at = ? WHERE principal_id = ? AND group_id = ? AND owner = ?"
_RELEASE = "DELETE FROM claims WHERE principal_id = ? AND group_id = ? AND owner = ?"
_INSERT_EVENT = "INSERT INTO events (payload) VALUES (?)"
_PENDING_EVENTS = "SELECT seq, payload FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT ?"
_MARK_DELIVERED = "UPDATE events SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL"

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
_REQUEST_STATE = "SELECT state FROM requests WHERE id = ?"
_SELECT_REQUESTS = f"SELECT {_REQUEST_FIELDS} FROM requests"  # noqa: S608 - fixed fragments

# -- values --------------------------------------------------------------------------------

# A lone surrogate cannot be encoded for SQLite: it is written as U+FFFD; JSON is ASCII,
# so a lone surrogate in an event or an approver is kept, as its escape.
_ROWS = RowMapping(write_text=storable_text, flag=int, ascii_json=True)
_lease_values = _ROWS.lease_values
_lease = _ROWS.lease
_request_values = _ROWS.request_values
_request = _ROWS.request
_event_payload = _ROWS.event_payload
_next_version = next_version


def _check_limit(limit: int | None) -> int:
    """The SQL LIMIT for a `limit` argument (-1: none)."""
    if limit is None:
        return -1
    if limit < 0:
        raise ConfigError(f"must be zero or more, not {limit}", field="limit")
    return limit


def _placeholders(count: int) -> str:
    return "(" + ", ".join(["?"] * count) + ")"
