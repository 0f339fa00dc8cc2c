"""The command line's output: tables, CSV, JSON, lease and request records, event lines.

Everything printed passes through here, escaped for the terminal; a CSV cell that a
spreadsheet would run as a formula is quoted.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

import databricks_access as da
from databricks_access._durations import human
from databricks_access._util.terminal import terminal_safe

__all__: list[str] = []


_BULLET = re.compile(r"^\s*-\s+")
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_MAX_CELL = 80
_MAX_MESSAGE = 2000


def _shown(text: str) -> str:
    """User input quoted for a message: control characters escaped, long text cut."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _one_line(text: str) -> str:
    """A message on one line: newlines joined with `; `, other controls escaped."""
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    joined = terminal_safe("; ".join(lines).replace(":;", ":"))
    return joined if len(joined) <= _MAX_MESSAGE else joined[: _MAX_MESSAGE - 3] + "..."


def _utc(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.timezone.utc).isoformat()


def _cell(value: object) -> str:
    """Text for a table cell, on one line, its terminal controls escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return _utc(value)
    text = terminal_safe(str(value))
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    """Rows as aligned columns under an upper-case header; `(none)` for no row."""
    if not rows:
        return "(none)\n"
    names = list(columns or rows[0].keys())
    cells = [[_cell(row.get(name)) for name in names] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [[name.upper() for name in names], *cells]
    ]
    return "\n".join(lines) + "\n"


def _csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run: text starting with `=+-@` gets a `'`."""
    if value is None:
        return ""
    if isinstance(value, str):
        # The csv module leaves a lone CR unquoted (rows end in LF here), and readers
        # take it for a line break: a name could start a new row with a formula.
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        if value.startswith(_CSV_TRIGGERS):
            return "'" + value
    return value


def _csv(rows: Sequence[Mapping[str, object]], kind: str) -> str:
    buffer = io.StringIO()
    names = list(rows[0].keys()) if rows else list(_EMPTY_COLUMNS.get(kind, ()))
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([_csv_cell(row.get(name)) for name in names] for row in rows)
    return buffer.getvalue()


# The header of an empty CSV table, so a script reading it still finds its columns.
_EMPTY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "memberships": ("group_id", "group_name", "member_id", "member_kind", "member_name"),
    "groups": ("group_id", "group_name", "members", "managers", "roles"),
    "users": ("user_id", "user_name", "display_name", "active", "roles"),
    "service_principals": (
        "service_principal_id",
        "application_id",
        "display_name",
        "active",
        "roles",
    ),
    "workspaces": ("workspace_id", "workspace_name", "deployment_name", "status", "assignments"),
    "assignments": (
        "workspace_id",
        "workspace_name",
        "principal_id",
        "principal_kind",
        "principal_name",
        "permission",
    ),
    "managers": ("group_id", "group_name", "manager"),
    "roles": ("principal_id", "principal_kind", "principal_name", "role"),
    "errors": ("stage", "item", "message", "status_code", "error_code"),
}


def _write(text: str, stream: TextIO | None = None) -> None:
    """Print text: every output path of the command line ends here, escaped for a terminal.

    JSON stays valid: the escapes are JSON's own (a backslash, `u` and four hex digits),
    and JSON strings already hold no raw newline.
    """
    safe = terminal_safe(text, keep_newlines=True)
    (stream or sys.stdout).write(safe if safe.endswith("\n") else safe + "\n")


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# -- records ---------------------------------------------------------------------------------


def _who(lease: da.Lease | da.AccessRequest) -> str:
    return terminal_safe(lease.principal_name or lease.principal.id)


def _group_shown(lease: da.Lease | da.AccessRequest) -> str:
    return terminal_safe(lease.group_name or lease.group_id)


def _lease_record(lease: da.Lease) -> dict[str, object]:
    return {
        "id": lease.id,
        "state": lease.state.value,
        "principal_id": lease.principal.id,
        "principal_kind": lease.principal.kind.value,
        "principal_name": lease.principal_name,
        "group_id": lease.group_id,
        "group_name": lease.group_name,
        "granted_at": _iso(lease.granted_at),
        "expires_at": _iso(lease.expires_at),
        "requester": lease.requester,
        "reason": lease.reason,
        "approver": lease.approver,
        "standing": lease.standing,
        "extensions": lease.extensions,
        "request_id": lease.request_id,
        "ended_at": _iso(lease.ended_at),
        "last_error": lease.last_error,
    }


def _lease_row(lease: da.Lease) -> dict[str, object]:
    # An ended lease shows when it ended, not when it would have expired.
    return {
        "id": lease.id,
        "state": lease.state.value,
        "principal": _who(lease),
        "group": _group_shown(lease),
        "standing": lease.standing,
        "expires": lease.expires_at if lease.ended_at is None else None,
        "ended": lease.ended_at,
        "requester": lease.requester,
        "reason": lease.reason,
    }


def _request_record(req: da.AccessRequest) -> dict[str, object]:
    return {
        "id": req.id,
        "state": req.state.value,
        "principal_id": req.principal.id,
        "principal_kind": req.principal.kind.value,
        "principal_name": req.principal_name,
        "group_id": req.group_id,
        "group_name": req.group_name,
        "ttl_seconds": req.ttl_seconds,
        "reason": req.reason,
        "requester": req.requester,
        "created_at": _iso(req.created_at),
        "expires_at": _iso(req.expires_at),
        "approvers": list(req.approvers),
        "approver_source": req.approver_source,
        "decided_by": req.decided_by,
        "decision_reason": req.decision_reason,
        "lease_id": req.lease_id,
        "access_details": req.access_details,
    }


def _request_row(req: da.AccessRequest) -> dict[str, object]:
    return {
        "id": req.id,
        "state": req.state.value,
        "principal": _who(req),
        "group": _group_shown(req),
        "ttl": human(req.ttl_seconds),
        "requester": req.requester,
        "reason": req.reason,
        "decided_by": req.decided_by,
    }


def _event_line(event: da.AuditEvent) -> str:
    """One readable line: when, what, which lease, who in which group, and why."""
    who = event.principal_name or (event.principal.id if event.principal else None)
    group = event.group_name or event.group_id
    parts = [
        _utc(event.at),
        f"{event.kind.value:<17}",
        event.lease_id or event.request_id or "-",
        f"{who or '?'} in {group}" if group else (who or ""),
    ]
    notes = [
        f"requested by {event.requester}" if event.requester else "",
        f"approved by {event.approver}" if event.approver else "",
        f"reason: {event.reason}" if event.reason else "",
        *(_detail_note(key, value) for key, value in event.detail.items()),
    ]
    line = "  ".join(part for part in parts if part)
    notes = [note for note in notes if note]
    if notes:
        line += " (" + "; ".join(notes) + ")"
    return terminal_safe(line)


def _detail_note(key: str, value: object) -> str:
    if value is True:
        return key.replace("_", " ")
    if value is False:
        return ""
    return f"{key.replace('_', ' ')}: {value}"


def _error(message: str) -> None:
    _write(f"error: {_one_line(message)}", sys.stderr)
