"""The integration's policy settings: lease limits, the audit sink, the owner tag source.

They live in `IntegrationConfig` (its `[lease_policy]` and `[owner_tags]` tables and its
`audit_sink`), so that the command line and every connector reading the same
configuration enforce the same rules. This module holds their values and the checks that
turn plain data (TOML, JSON, environment variables) into them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._integration.owners import (
    DisplayNamePatternTagSource,
    MappingTagSource,
    TagSource,
)
from databricks_access._leases.events import EventSink, JsonLinesSink

__all__ = ["LeasePolicy", "OwnerTags", "check_audit_sink", "check_lease_policy", "check_owner_tags"]

_POLICY_FIELDS = ("min_ttl", "max_ttl", "max_extensions")
_OWNER_TAGS_FIELDS = ("pattern", "groups")
_AUDIT_KINDS = "jsonl:/path/audit.jsonl"
_MAX_SHOWN = 60


def _kind_of(value: object) -> str:
    return type(value).__name__


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "...")


_DEFAULT_MIN_TTL = dt.timedelta(seconds=60)
_DEFAULT_MAX_TTL = dt.timedelta(hours=12)


def _seconds(value: object) -> tuple[dt.timedelta | None, str | None]:
    """A duration from a timedelta or a number of seconds; else None and the problem."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        return None, (
            f"must be a number of seconds (like 28800 for 8 hours), not {_kind_of(value)}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        return None, f"must be a positive number of seconds, not {seconds:g}"
    return dt.timedelta(seconds=seconds), None


@attrs.frozen(kw_only=True)
class LeasePolicy:
    """The limits every lease of an integration obeys, wherever it is granted.

    `IntegrationConfig.lease_policy` holds it (the `[lease_policy]` table of
    `integration.toml`); `IntegrationConfig.lease_tracker()` builds a tracker that
    enforces it, and so does the command line.

    Attributes:
        min_ttl: The shortest lease (default 60 seconds).
        max_ttl: The longest lease, extensions included, from its grant (default 12 hours).
        max_extensions: How many times a lease may be extended; None: no limit.

    Example:
        >>> policy = LeasePolicy.from_dict({"max_ttl": 28800, "max_extensions": 2})
        >>> policy.max_ttl, policy.min_ttl.total_seconds()
        (datetime.timedelta(seconds=28800), 60.0)
    """

    min_ttl: dt.timedelta = _DEFAULT_MIN_TTL
    max_ttl: dt.timedelta = _DEFAULT_MAX_TTL
    max_extensions: int | None = None

    def __attrs_post_init__(self) -> None:
        policy, problems = check_lease_policy(
            {
                "min_ttl": self.min_ttl,
                "max_ttl": self.max_ttl,
                "max_extensions": self.max_extensions,
            }
        )
        if policy is None:
            raise ConfigError(problems)
        object.__setattr__(self, "min_ttl", policy.min_ttl)
        object.__setattr__(self, "max_ttl", policy.max_ttl)

    @classmethod
    def from_dict(cls, data: object) -> LeasePolicy:
        """A policy from plain data: `min_ttl` and `max_ttl` in seconds, `max_extensions`.

        Raises:
            ConfigError: Naming every unknown key and bad value (`lease_policy.<key>`).
        """
        policy, problems = check_lease_policy(data)
        if policy is None:
            raise ConfigError(problems)
        return policy

    def to_dict(self) -> dict[str, float | int]:
        """The policy as plain data (seconds), as `from_dict` reads it."""
        data: dict[str, float | int] = {
            "min_ttl": _plain(self.min_ttl),
            "max_ttl": _plain(self.max_ttl),
        }
        if self.max_extensions is not None:
            data["max_extensions"] = self.max_extensions
        return data


def _plain(duration: dt.timedelta) -> float | int:
    seconds = duration.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def check_lease_policy(data: object) -> tuple[LeasePolicy | None, list[ConfigProblem]]:
    """Validate plain data as a `LeasePolicy`; the policy, or None and every problem."""
    if data is None:
        return LeasePolicy(), []
    if not isinstance(data, Mapping):
        return None, [
            ConfigProblem(
                "lease_policy",
                "must be a table with min_ttl, max_ttl (seconds) and max_extensions, "
                f"not {_kind_of(data)}",
            )
        ]
    problems = [
        ConfigProblem(
            f"lease_policy.{key}",
            f"is not a known key; the keys are: {', '.join(_POLICY_FIELDS)}",
        )
        for key in data
        if key not in _POLICY_FIELDS
    ]
    limits: dict[str, dt.timedelta] = {}
    for name, default in (("min_ttl", _DEFAULT_MIN_TTL), ("max_ttl", _DEFAULT_MAX_TTL)):
        raw = data.get(name)
        if raw is None:
            limits[name] = default
            continue
        value, problem = _seconds(raw)
        if value is None:
            problems.append(ConfigProblem(f"lease_policy.{name}", str(problem)))
        else:
            limits[name] = value
    extensions = data.get("max_extensions")
    if extensions is not None and (
        isinstance(extensions, bool) or not isinstance(extensions, int) or extensions < 0
    ):
        problems.append(
            ConfigProblem(
                "lease_policy.max_extensions", f"must be a whole number >= 0, not {extensions!r}"
            )
        )
    if "min_ttl" in limits and "max_ttl" in limits and limits["min_ttl"] > limits["max_ttl"]:
        problems.append(
            ConfigProblem(
                "lease_policy.max_ttl",
                f"is {_plain(limits['max_ttl'])} s, shorter than min_ttl "
                f"({_plain(limits['min_ttl'])} s)",
            )
        )
    if problems:
        return None, problems
    policy = object.__new__(LeasePolicy)
    object.__setattr__(policy, "min_ttl", limits["min_ttl"])
    object.__setattr__(policy, "max_ttl", limits["max_ttl"])
    object.__setattr__(policy, "max_extensions", extensions)
    return policy, []


@attrs.frozen(kw_only=True)
class OwnerTags:
    """Where an integration reads the resource-owner tag of a group.

    Databricks account groups carry no tags, so the value of `resource_owner.tag_key`
    comes from here: a regular expression read from the display name (`pattern`, see
    `DisplayNamePatternTagSource`), or a table of groups (`groups`: display name or id ->
    {tag key: value}, see `MappingTagSource`). Exactly one of the two.

    In `integration.toml`:

    ```toml
    [owner_tags]
    pattern = "^team-(?P<owner>[a-z0-9-]+)-readers$"
    ```

    Attributes:
        pattern: The regular expression, or None.
        groups: The tags of each group, as sorted pairs, or empty.

    Example:
        >>> tags = OwnerTags.from_dict({"groups": {"prod-data-readers": {"owner": "ann@x.com"}}})
        >>> tags.source()
        MappingTagSource(1 groups)
    """

    pattern: str | None = None
    groups: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    @classmethod
    def from_dict(cls, data: object) -> OwnerTags:
        """Owner tags from plain data: `{"pattern": ...}` or `{"groups": {...}}`.

        Raises:
            ConfigError: Naming every problem (`owner_tags.<key>`).
        """
        tags, problems = check_owner_tags(data)
        if tags is None:
            raise ConfigError(problems or [ConfigProblem("owner_tags", "is empty")])
        return tags

    def to_dict(self) -> dict[str, object]:
        """The setting as plain data, as `from_dict` reads it."""
        if self.pattern is not None:
            return {"pattern": self.pattern}
        return {"groups": {name: dict(tags) for name, tags in self.groups}}

    def source(self) -> TagSource:
        """The `TagSource` this setting describes."""
        if self.pattern is not None:
            return DisplayNamePatternTagSource(self.pattern)
        return MappingTagSource({name: dict(tags) for name, tags in self.groups})


def check_owner_tags(data: object) -> tuple[OwnerTags | None, list[ConfigProblem]]:
    """Validate plain data as `OwnerTags`; None without problems when `data` is None."""
    if data is None or isinstance(data, OwnerTags):
        return data, []
    if not isinstance(data, Mapping):
        return None, [
            ConfigProblem(
                "owner_tags",
                f"must be a table with pattern or groups, not {_kind_of(data)}",
            )
        ]
    problems = [
        ConfigProblem(
            f"owner_tags.{key}",
            f"is not a known key; the keys are: {', '.join(_OWNER_TAGS_FIELDS)}",
        )
        for key in data
        if key not in _OWNER_TAGS_FIELDS
    ]
    pattern, groups = data.get("pattern"), data.get("groups")
    if (pattern is None) == (groups is None):
        problems.append(ConfigProblem("owner_tags", "needs exactly one of pattern and groups"))
        return None, problems
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern.strip():
            problems.append(ConfigProblem("owner_tags.pattern", "must be a regular expression"))
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(
                    ConfigProblem(
                        "owner_tags.pattern", f"{_shown(pattern)} does not compile: {exc}"
                    )
                )
        if problems:
            return None, problems
        return OwnerTags(pattern=pattern), []
    if not isinstance(groups, Mapping):
        problems.append(
            ConfigProblem(
                "owner_tags.groups",
                f"must be a table: group display name or id -> {{tag: value}}, "
                f"not {_kind_of(groups)}",
            )
        )
        return None, problems
    entries: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for name, tags in groups.items():
        if not isinstance(tags, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in tags.items()
        ):
            problems.append(
                ConfigProblem(
                    f"owner_tags.groups.{name}",
                    'must be a table of tag names to text values, like { owner = "ann@x.com" }',
                )
            )
            continue
        entries.append((str(name), tuple(sorted(tags.items()))))
    if problems:
        return None, problems
    return OwnerTags(groups=tuple(sorted(entries))), []


def check_audit_sink(value: object) -> tuple[str | None, str | None]:
    """Validate an `audit_sink` reference; the normalised text, or None and the problem.

    `jsonl:/path/audit.jsonl` appends each event to a JSON Lines file (`JsonLinesSink`);
    a relative path is relative to the working directory.
    """
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, f"must be a string like {_AUDIT_KINDS}, not {_kind_of(value)}"
    text = value.strip()
    kind, _, rest = text.partition(":")
    if kind != "jsonl" or not rest.strip():
        return None, f"{_shown(text)} is not an audit sink; use {_AUDIT_KINDS}"
    if "\x00" in rest:
        return None, "the path holds a NUL character"
    return f"jsonl:{rest.strip()}", None


def open_audit_sink(reference: str) -> EventSink:
    """The sink a checked `audit_sink` reference names."""
    _, _, path = reference.partition(":")
    return JsonLinesSink(Path(path).expanduser())
