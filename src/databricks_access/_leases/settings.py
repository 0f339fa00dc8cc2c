"""The tracker's settings and the checks of what callers hand it."""

from __future__ import annotations

import datetime as dt

import attrs

from databricks_access._account.models import Group
from databricks_access._account.scim import check_id
from databricks_access._errors import ConfigError

__all__ = [
    "GroupLike",
    "TrackerSettings",
    "after",
    "error_text",
    "group_id",
    "lease_id",
    "text",
]

GroupLike = Group | str

_MAX_TEXT = 1000


def text(value: object, field: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty string", field)
    if len(value) > _MAX_TEXT:
        raise ConfigError(f"must be at most {_MAX_TEXT} characters, not {len(value)}", field)
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise ConfigError("must not contain control characters", field)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("must be valid Unicode text (no lone surrogates)", field) from None
    return value


def group_id(group: GroupLike) -> str:
    if isinstance(group, Group):
        return check_id(group.id, "group")
    if not isinstance(group, str):
        raise ConfigError("must be a Group or a group id", "group")
    return check_id(group, "group")


def after(start: dt.datetime, seconds: float, field: str) -> dt.datetime:
    """`start` plus `seconds`, or a `ConfigError` naming `field` when that is no date."""
    try:
        return start + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ConfigError(f"is too long: {seconds:g}s from {start.isoformat()}", field) from None


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def lease_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 100:
        raise ConfigError("must be a lease id", "lease_id")
    return value


@attrs.frozen(kw_only=True)
class TrackerSettings:
    """The tracker's tunables, validated together."""

    min_ttl: float = 60.0
    max_ttl: float = 12 * 3600.0
    max_extensions: int | None = None
    consistency_window: float = 300.0
    claim_ttl: float = 120.0
    revoke_retry_interval: float = 300.0

    def check(self) -> None:
        """Raise one `ConfigError` for every setting that does not fit."""
        from databricks_access._errors import ConfigProblem  # noqa: PLC0415

        problems = []
        if not self.min_ttl > 0:
            problems.append(ConfigProblem("min_ttl", "must be positive"))
        if not self.max_ttl >= self.min_ttl:
            problems.append(ConfigProblem("max_ttl", "must be at least min_ttl"))
        if self.max_extensions is not None and self.max_extensions < 0:
            problems.append(ConfigProblem("max_extensions", "must be zero or more"))
        if not self.consistency_window >= 0:
            problems.append(ConfigProblem("consistency_window", "must be zero or more"))
        if not self.claim_ttl >= 10:
            problems.append(ConfigProblem("claim_ttl", "must be at least 10 seconds"))
        if not self.revoke_retry_interval > 0:
            problems.append(ConfigProblem("revoke_retry_interval", "must be positive"))
        if problems:
            raise ConfigError(problems)
