"""Durations: the one place that reads, bounds and writes them.

Everywhere the library takes a duration (a lease's `ttl`, an extension's `by`, the
tracker's settings, `AccountConfig(timeout=...)`, a request's `pending_ttl`, a cache's
lifetime) it accepts a `datetime.timedelta`, a number of seconds (int or float), or
text like ``"90m"`` or ``"1h30m"``, and checks it here: finite, not negative (or
positive where zero makes no sense), and at most `MAX_SECONDS` (ten years), so that no
later arithmetic on datetimes or floats can overflow. A bad value is a `ConfigError`
naming the field, never an `OverflowError`. Messages show durations the way people
write them (``12h``, not ``43200s``).
"""

from __future__ import annotations

import datetime as dt
import math
import re

from databricks_access._errors import ConfigError

__all__ = [
    "MAX_SECONDS",
    "Duration",
    "from_server",
    "human",
    "lenient",
    "parse_duration",
    "problem",
    "seconds",
]

Duration = dt.timedelta | float | int | str
"""What a duration argument accepts: a timedelta, seconds, or text like `"1h30m"`."""

MAX_SECONDS = 10 * 365 * 86400.0
"""The longest duration accepted anywhere: ten years."""

_TEXT = re.compile(
    r"(?:(?P<d>\d{1,12})d)?(?:(?P<h>\d{1,12})h)?(?:(?P<m>\d{1,12})m)?"
    r"(?:(?P<s>\d{1,12}(?:\.\d{1,6})?)s)?"
)
FORMS = "like 45s, 90m, 2h, 1h30m or 1d"
"""The text forms, for messages."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def parse_duration(text: str) -> dt.timedelta:
    """Read a duration written as days, hours, minutes and seconds, in that order.

    Each part is optional, but at least one is needed: ``"45s"``, ``"90m"``, ``"2h"``,
    ``"1h30m"``, ``"1d12h"``, ``"0.5s"``. The result is at most ten years.

    Example:
        >>> parse_duration("1h30m")
        datetime.timedelta(seconds=5400)
        >>> parse_duration("1d")
        datetime.timedelta(days=1)

    Raises:
        ConfigError: The text is not such a duration, or longer than ten years (a
            `ValueError` too).
    """
    if not isinstance(text, str):
        raise ConfigError(f"must be text {FORMS}, not {type(text).__name__}", "duration")
    stripped = text.strip()
    match = _TEXT.fullmatch(stripped)
    if match is None or not stripped:
        if stripped.isdecimal() and stripped.isascii():
            raise ConfigError(
                f"{_shown(text)} has no unit; write {stripped}s, {stripped}m or {stripped}h",
                "duration",
            )
        raise ConfigError(f"{_shown(text)} is not a duration; use one {FORMS}", "duration")
    parts = {key: float(value) if value else 0.0 for key, value in match.groupdict().items()}
    total = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    if total > MAX_SECONDS:
        raise ConfigError(f"{_shown(text)} is too long; at most {human(MAX_SECONDS)}", "duration")
    return dt.timedelta(seconds=total)


def seconds(
    value: object,
    field: str,
    *,
    positive: bool = False,
    minimum: float = 0.0,
    maximum: float = MAX_SECONDS,
) -> float:
    """`value` as a number of seconds, checked; a `ConfigError` naming `field` if not.

    Args:
        value: A timedelta, an int or float of seconds, or text like ``"1h30m"``.
        field: The name the error gives the value.
        positive: Refuse zero as well as negative durations.
        minimum: The shortest duration allowed (0 by default).
        maximum: The longest duration allowed (`MAX_SECONDS` by default).

    Example:
        >>> seconds("1h30m", "ttl"), seconds(dt.timedelta(minutes=2), "ttl"), seconds(5, "ttl")
        (5400.0, 120.0, 5.0)
        >>> try:
        ...     seconds(1e20, "by")
        ... except ConfigError as exc:
        ...     print(exc)
        by: must be at most 3650d (ten years), not 1e+20 seconds
    """
    if isinstance(value, dt.timedelta):
        # A timedelta is at most ~2.7 million years: total_seconds() never overflows.
        result = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(
            f"must be a timedelta, a number of seconds or text {FORMS}, not {type(value).__name__}",
            field,
        )
    elif isinstance(value, str):
        try:
            result = parse_duration(value).total_seconds()
        except ConfigError as exc:
            raise ConfigError(exc.problems[0].message, field) from None
    elif isinstance(value, int):
        # A huge int cannot become a float (OverflowError): compare it as an int.
        if value > maximum:
            raise ConfigError(_too_long(maximum, _int_shown(value)), field)
        if value < -maximum:
            raise ConfigError(f"must not be negative, not {_int_shown(value)}", field)
        result = float(value)
    else:
        result = value
    if math.isnan(result):
        raise ConfigError("must be a number of seconds, not NaN", field)
    if result > maximum:
        raise ConfigError(_too_long(maximum, _value_shown(result)), field)
    if positive and result <= 0:
        raise ConfigError(f"must be positive, not {_value_shown(result)}", field)
    if result < minimum:
        raise ConfigError(
            f"must be at least {human(minimum)}, not {_value_shown(result)}"
            if minimum
            else f"must not be negative, not {_value_shown(result)}",
            field,
        )
    return float(result)


def _int_shown(value: int) -> str:
    # str() of an int past 4300 digits raises: show its size instead.
    if abs(value) < 10**15:
        return f"{value} seconds"
    if value.bit_length() >= 14000:
        return "a number of thousands of digits"
    return f"a {len(str(abs(value)))}-digit number"


def _too_long(maximum: float, shown: str) -> str:
    limit = human(maximum)
    return f"must be at most {limit}{' (ten years)' if maximum == MAX_SECONDS else ''}, not {shown}"


def _value_shown(value: float) -> str:
    if not math.isfinite(value) or abs(value) >= MAX_SECONDS * 10:
        return f"{value:.3g} seconds"
    return human(value)


def human(value: float | dt.timedelta) -> str:
    """A duration as people write it, in the form `parse_duration` reads: `1h30m`, `12h`.

    Fractions of a second are kept to the millisecond; a negative duration has a `-`.

    Example:
        >>> human(43200), human(dt.timedelta(minutes=90)), human(0.25), human(0)
        ('12h', '1h30m', '0.25s', '0s')
    """
    total = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if not math.isfinite(total):
        return f"{total} seconds"
    sign = "-" if total < 0 else ""
    millis = round(abs(total) * 1000)
    whole, fraction = divmod(millis, 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount}{unit}")
    if whole or fraction:
        text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") if fraction else str(whole)
        parts.append(f"{text}s")
    return sign + ("".join(parts) or "0s")


class _Invalid(float):
    """A duration that failed its check: NaN, carrying the problem for a later report."""

    message: str


def lenient(value: Duration) -> float:
    """`value` in seconds, or a NaN that remembers why it is not a duration.

    For attrs converters of classes that report every problem at once: the check runs
    here, and `problem` reads its outcome back when the whole object is validated.
    """
    try:
        return seconds(value, "value", positive=True)
    except ConfigError as exc:
        invalid = _Invalid(math.nan)
        invalid.message = exc.problems[0].message
        return invalid


def problem(value: float) -> str | None:
    """Why `lenient` refused a value; None for a valid one."""
    return value.message if isinstance(value, _Invalid) else None


def from_server(value: object, *, default: float, maximum: float) -> float:
    """A lifetime a server sent (`expires_in`, a lease's duration), never trusted.

    A number of seconds, or numeric text. Anything else (absent, a boolean, garbage,
    NaN, infinite, zero or negative) is `default`; a longer one is cut to `maximum`.

    Example:
        >>> from_server("3600", default=60, maximum=86400)
        3600.0
        >>> from_server(1e308, default=60, maximum=86400)
        86400.0
        >>> from_server("inf", default=60, maximum=86400)
        60.0
    """
    if isinstance(value, bool):
        return float(default)
    if isinstance(value, int):
        return float(default) if value <= 0 else float(min(value, maximum))
    if isinstance(value, str):
        try:
            value = float(value.strip()[:40])
        except ValueError:
            return float(default)
    if not isinstance(value, float) or not math.isfinite(value) or value <= 0:
        return float(default)
    return min(value, float(maximum))
