"""Lease and request rows: how the SQL stores write values to columns and read them back.

One mapping, `RowMapping`, turns a `Lease` or an `AccessRequest` into its column values
and a row back into the value; the SQLite and the PostgreSQL stores each make one with
their own text and flag rules, and use nothing else.

Times are stored as integer microseconds since the epoch, UTC, which sort and compare
in SQL and read back to exactly the datetime written. Text is stored as given, except a
lone surrogate (a server can send one as a JSON escape), which no UTF-8 column can hold
(`storable`), and, for PostgreSQL, NUL, which its text cannot hold (`escape_nul`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from typing import Any

import attrs

from databricks_access._account.models import PrincipalKind, PrincipalRef
from databricks_access._errors import LeaseError
from databricks_access._leases.values import (
    AccessRequest,
    AuditEvent,
    Lease,
    LeaseState,
    RequestState,
)

__all__ = [
    "EPOCH",
    "INT64",
    "MAX_US",
    "MIN_US",
    "US",
    "UTC",
    "Row",
    "RowMapping",
    "escape_nul",
    "from_micros",
    "integer",
    "maybe_datetime",
    "maybe_micros",
    "micros",
    "next_version",
    "storable",
    "storable_text",
    "unescape_nul",
]

Row = tuple[Any, ...]

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
US = dt.timedelta(microseconds=1)
MIN_US = (dt.datetime.min.replace(tzinfo=UTC) - EPOCH) // US
MAX_US = (dt.datetime.max.replace(tzinfo=UTC) - EPOCH) // US
INT64 = 2**63


def micros(value: dt.datetime, what: str) -> int:
    """Microseconds since the epoch of an aware datetime; LeaseError for a naive one."""
    if value.utcoffset() is None:
        raise LeaseError(f"{what} must be a timezone-aware UTC datetime, not {value!r}")
    result = (value - EPOCH) // US
    if not MIN_US <= result <= MAX_US:
        raise LeaseError(f"{what} is out of range once converted to UTC: {value!r}")
    return result


def maybe_micros(value: dt.datetime | None, what: str) -> int | None:
    """`micros` of an optional datetime."""
    return None if value is None else micros(value, what)


def from_micros(value: int) -> dt.datetime:
    """The UTC datetime of a number of microseconds since the epoch."""
    return EPOCH + dt.timedelta(microseconds=value)


def maybe_datetime(value: int | None) -> dt.datetime | None:
    """`from_micros` of an optional value."""
    return None if value is None else from_micros(value)


def integer(value: int, what: str) -> int:
    """`value` if it fits a signed 64-bit column; LeaseError otherwise."""
    if not -INT64 <= value < INT64:
        raise LeaseError(f"{what} does not fit in a 64-bit integer: {value}")
    return value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: object) -> object:
    r"""`value`, with each lone surrogate of a string replaced by U+FFFD.

    Names come from the server, and JSON can carry a lone surrogate (`"\ud800"`) that
    UTF-8 cannot encode; the rest of the text is kept.
    """
    if isinstance(value, str) and not value.isascii():
        return _LONE_SURROGATE.sub("\ufffd", value)
    return value


def storable_text(value: str) -> str:
    """`storable` of a string: lone surrogates replaced by U+FFFD."""
    if value.isascii():
        return value
    return _LONE_SURROGATE.sub("\ufffd", value)


_ESC = "\x1b"
_ESCAPED = re.compile("\x1b(.)", re.DOTALL)


def escape_nul(value: str) -> str:
    """Text as PostgreSQL can hold it: NUL becomes ESC '0', ESC becomes ESC ESC."""
    if "\x00" not in value and _ESC not in value:
        return value
    return value.replace(_ESC, _ESC + _ESC).replace("\x00", _ESC + "0")


def unescape_nul(value: str) -> str:
    """The text `escape_nul` was given."""
    if _ESC not in value:
        return value
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "0" else m.group(1), value)


def _same(value: str) -> str:
    return value


def next_version(lease: Lease) -> Lease:
    """The lease as an update stores it: its version counted one up."""
    return attrs.evolve(lease, version=lease.version + 1)


# Compact JSON encoders for events (by `ascii_json`), made once: `json.dumps` with
# arguments builds one per call.
_EVENT_JSON = {
    ascii_json: json.JSONEncoder(ensure_ascii=ascii_json, separators=(",", ":"))
    for ascii_json in (False, True)
}
# `micros` and `integer` of a lease's field, naming the field only when it is refused:
# a store writes thousands of leases in a sweep, and refuses almost none.


def _lease_micros(value: dt.datetime, lease: Lease, field: str) -> int:
    if value.utcoffset() is not None:
        result = (value - EPOCH) // US
        if MIN_US <= result <= MAX_US:
            return result
    return micros(value, f"lease {lease.id!r}: {field}")


def _lease_integer(value: int, lease: Lease, field: str) -> int:
    if -INT64 <= value < INT64:
        return value
    return integer(value, f"lease {lease.id!r}: {field}")


_KINDS = {kind.value: kind for kind in PrincipalKind}
_LEASE_STATES = {state.value: state for state in LeaseState}
_REQUEST_STATES = {state.value: state for state in RequestState}


@attrs.frozen
class RowMapping:
    """The columns of a lease and of an access request, for one database.

    Columns come in one order in every store: `id`, then the values `lease_values` and
    `request_values` give, in order (a lease's end with its `due_at`, which is only
    written). A row read back holds `id` and the same columns, without `due_at`.
    Enum values and numbers are written as they are; the database's rules are:

    Attributes:
        write_text: Each text value (names, ids, reasons) as written.
        read_text: Each text value as read back: the inverse of `write_text`.
        flag: A boolean as written (`int` where the column is an integer).
        ascii_json: Whether the JSON of approvers and events is ASCII (non-ASCII
            characters, and any lone surrogate, kept as their escapes).
    """

    write_text: Callable[[str], str]
    read_text: Callable[[str], str] = _same
    flag: Callable[[bool], object] = bool
    ascii_json: bool = False

    def _maybe(self, value: str | None) -> str | None:
        return None if value is None else self.write_text(value)

    def _read_maybe(self, value: str | None) -> str | None:
        return None if value is None else self.read_text(value)

    def lease_values(self, lease: Lease, *, next_version: bool = False) -> list[object]:
        """The lease's columns after `id`, ending with `due_at`.

        With `next_version`, the columns of `next_version(lease)` (as an update stores
        it), without making that copy.
        """
        due, retry, ended = lease.due_at(), lease.retry_at, lease.ended_at
        version = lease.version + 1 if next_version else lease.version
        text, maybe = self.write_text, self._maybe
        return [
            lease.principal.kind.value,
            text(lease.principal.id),
            text(lease.group_id),
            lease.state.value,
            _lease_micros(lease.granted_at, lease, "granted_at"),
            _lease_micros(lease.expires_at, lease, "expires_at"),
            text(lease.requester),
            text(lease.reason),
            maybe(lease.approver),
            self.flag(bool(lease.standing)),
            _lease_integer(lease.extensions, lease, "extensions"),
            _lease_integer(lease.attempts, lease, "attempts"),
            None if retry is None else _lease_micros(retry, lease, "retry_at"),
            maybe(lease.last_error),
            _lease_micros(lease.updated_at, lease, "updated_at"),
            None if ended is None else _lease_micros(ended, lease, "ended_at"),
            maybe(lease.request_id),
            maybe(lease.group_name),
            maybe(lease.principal_name),
            _lease_integer(version, lease, "version"),
            None if due is None else _lease_micros(due, lease, "due time"),
        ]

    def lease(self, row: Row) -> Lease:
        """The lease of a row (`id` first)."""
        text, maybe = self.read_text, self._read_maybe
        return Lease(
            id=text(row[0]),
            principal=PrincipalRef(_KINDS[row[1]], text(row[2])),
            group_id=text(row[3]),
            state=_LEASE_STATES[row[4]],
            granted_at=from_micros(row[5]),
            expires_at=from_micros(row[6]),
            requester=text(row[7]),
            reason=text(row[8]),
            approver=maybe(row[9]),
            standing=bool(row[10]),
            extensions=row[11],
            attempts=row[12],
            retry_at=maybe_datetime(row[13]),
            last_error=maybe(row[14]),
            updated_at=from_micros(row[15]),
            ended_at=maybe_datetime(row[16]),
            request_id=maybe(row[17]),
            group_name=maybe(row[18]),
            principal_name=maybe(row[19]),
            version=row[20],
        )

    def request_values(self, request: AccessRequest) -> list[object]:
        """The request's columns after `id`."""
        what = f"request {request.id!r}"
        ttl = float(request.ttl_seconds)
        if not math.isfinite(ttl):
            raise LeaseError(f"{what}: ttl_seconds must be a finite number, not {ttl}")
        text, maybe = self.write_text, self._maybe
        return [
            request.principal.kind.value,
            text(request.principal.id),
            text(request.group_id),
            ttl,
            text(request.reason),
            text(request.requester),
            request.state.value,
            micros(request.created_at, f"{what}: created_at"),
            micros(request.expires_at, f"{what}: expires_at"),
            micros(request.updated_at, f"{what}: updated_at"),
            # JSON escapes NUL and every other control character.
            json.dumps(list(request.approvers), ensure_ascii=self.ascii_json),
            maybe(request.approver_source),
            maybe(request.decided_by),
            maybe(request.decision_reason),
            maybe(request.lease_id),
            maybe(request.access_details),
            maybe(request.group_name),
            maybe(request.principal_name),
            integer(request.attempts, f"{what}: attempts"),
            maybe_micros(request.retry_at, f"{what}: retry_at"),
            maybe(request.last_error),
        ]

    def request(self, row: Row) -> AccessRequest:
        """The access request of a row (`id` first)."""
        text, maybe = self.read_text, self._read_maybe
        return AccessRequest(
            id=text(row[0]),
            principal=PrincipalRef(_KINDS[row[1]], text(row[2])),
            group_id=text(row[3]),
            ttl_seconds=row[4],
            reason=text(row[5]),
            requester=text(row[6]),
            state=_REQUEST_STATES[row[7]],
            created_at=from_micros(row[8]),
            expires_at=from_micros(row[9]),
            updated_at=from_micros(row[10]),
            approvers=tuple(json.loads(row[11])),
            approver_source=maybe(row[12]),
            decided_by=maybe(row[13]),
            decision_reason=maybe(row[14]),
            lease_id=maybe(row[15]),
            access_details=maybe(row[16]),
            group_name=maybe(row[17]),
            principal_name=maybe(row[18]),
            attempts=row[19],
            retry_at=maybe_datetime(row[20]),
            last_error=maybe(row[21]),
        )

    def event_payload(self, event: AuditEvent) -> str:
        """The event as stored in the outbox: compact JSON (it escapes NUL)."""
        try:
            return _EVENT_JSON[self.ascii_json].encode(event.to_json())
        except (TypeError, ValueError) as exc:
            raise LeaseError(
                f"the {event.kind.value} event cannot be stored as JSON: {exc}"
            ) from exc
