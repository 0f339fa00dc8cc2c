"""The PostgreSQL lease store's statements, and the row mapping their parameters follow.

`_Sql` renders every statement with the store's schema quoted in (`{s}` in a template).
Columns are listed in the order of `rows.RowMapping`; `_lease_values` and the other
functions here are that mapping with PostgreSQL's rule for text (NUL escaped, `_enc`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from databricks_access._leases.values import LeaseState
from databricks_access._stores.rows import (
    RowMapping,
    escape_nul,
    next_version,
    unescape_nul,
)

# psycopg is the optional extra: without it this module still imports, and building a
# store raises the `ConfigError` of `settings._MISSING`.
with contextlib.suppress(ImportError):
    from psycopg import sql

if TYPE_CHECKING:
    from psycopg.abc import AdaptContext

CHANNEL = "databricks_access_changes"
"""The `LISTEN`/`NOTIFY` channel every write announces itself on."""


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


# -- values --------------------------------------------------------------------------------

# PostgreSQL text cannot hold NUL: every text value is escaped (`_enc`), and read back
# exactly (`_dec`); JSON escapes NUL itself, so approvers and events need no escaping.
_ROWS = RowMapping(write_text=escape_nul, read_text=unescape_nul)
_enc = escape_nul
_dec = unescape_nul
_lease_values = _ROWS.lease_values
_lease = _ROWS.lease
_request_values = _ROWS.request_values
_request = _ROWS.request
_event_payload = _ROWS.event_payload
_next_version = next_version
