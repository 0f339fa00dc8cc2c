"""How lease stores write times, integers and text: shared by the SQLite and PostgreSQL stores.

Times are stored as integer microseconds since the epoch, UTC, which sort and compare
in SQL and read back to exactly the datetime written. Text is stored as given, except a
lone surrogate (a server can send one as a JSON escape), which no UTF-8 column can hold.
"""

from __future__ import annotations

import datetime as dt
import re

from databricks_access._errors import LeaseError

__all__ = [
    "EPOCH",
    "INT64",
    "MAX_US",
    "MIN_US",
    "US",
    "UTC",
    "from_micros",
    "integer",
    "maybe_datetime",
    "maybe_micros",
    "micros",
    "storable",
]

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
