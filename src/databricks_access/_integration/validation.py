"""What makes an integration's configuration valid: each field's rule, checked together.

`validate` checks every field present in plain data at once and returns the normalised
values with every problem, each naming its field; `IntegrationConfig` runs it when built
and when loaded from a dict, JSON, TOML or the environment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from databricks_access._account.throttle import RateLimits
from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._hosts import check_account_id, check_host
from databricks_access._integration.owners import Owner, OwnerKind, ResourceOwnerSetting
from databricks_access._integration.policy import (
    LeasePolicy,
    check_audit_sink,
    check_lease_policy,
    check_owner_tags,
)
from databricks_access._secrets.refs import check_secret_store
from databricks_access._stores.refs import check_lease_store
from databricks_access._util.describe import kind_of, shown
from databricks_access._util.terminal import first_unsafe

__all__ = [
    "DEFAULT_LEASE_STORE",
    "DEFAULT_SECRET_STORE",
    "FIELDS",
    "MAX_ACCESS_DETAILS",
    "REQUIRED",
    "RESOURCE_OWNER_FIELDS",
    "TABLE_FIELDS",
    "key_shown",
    "unknown_key",
    "validate",
]

MAX_ACCESS_DETAILS = 400
"""The most characters `custom_access_details` may hold (it is shown to end users)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_MAX_NAME = 64
_MAX_OWNERS = 100
DEFAULT_LEASE_STORE = "sqlite:///leases.db"
DEFAULT_SECRET_STORE = "env"  # noqa: S105 - a store kind, not a secret
_MAX_SHOWN = 60

REQUIRED = ("name", "accounts_url", "account_id")
FIELDS = (
    "name",
    "accounts_url",
    "account_id",
    "custom_access_details",
    "integration_owners",
    "resource_owner",
    "lease_store",
    "secret_store",
    "allow_custom_host",
    "allow_insecure_http",
    "lease_policy",
    "audit_sink",
    "owner_tags",
    "rate_limits",
    "workspace_hosts",
)
# Tables, read from several environment variables each.
TABLE_FIELDS = ("resource_owner", "lease_policy", "owner_tags")
RESOURCE_OWNER_FIELDS = ("tag_key", "idp_attribute")


def _check_name(value: object) -> tuple[str | None, list[str]]:
    if not isinstance(value, str):
        return None, [f"must be a string, not {kind_of(value)}"]
    text = value.strip()
    if not text:
        return None, ["is empty; give the integration a name like sales-analytics"]
    problems = []
    if len(text) > _MAX_NAME:
        problems.append(f"is {len(text)} characters long; at most {_MAX_NAME}")
    if not _NAME.fullmatch(text):
        problems.append(
            f"{shown(text)} must be letters, digits, '-' and '_' only, starting with a "
            "letter or digit (like sales-analytics)"
        )
    return (None if problems else text), problems


def _check_access_details(value: object) -> tuple[str | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, str):
        return None, [f"must be a string, not {kind_of(value)}"]
    text = value.strip()
    problems = []
    if len(text) > MAX_ACCESS_DETAILS:
        problems.append(
            f"is {len(text)} characters long; at most {MAX_ACCESS_DETAILS} "
            "(it is shown to end users)"
        )
    unsafe = first_unsafe(text, multiline=True)
    if unsafe is not None:
        problems.append(
            f"contains a control character or a bidirectional control ({unsafe}); only "
            "newlines and tabs are allowed"
        )
    return (text or None), problems


def _check_owner_entry(entry: object) -> Owner:
    if isinstance(entry, Mapping):
        unknown = sorted(str(key) for key in entry if key not in {"kind", "name"})
        if unknown or "kind" not in entry or "name" not in entry:
            raise ConfigError(
                "an owner table has exactly the keys kind ('user' or 'group') and name", "owner"
            )
        kind: object = entry["kind"]
        if not isinstance(kind, (str, OwnerKind)):
            raise ConfigError(f"kind must be 'user' or 'group', not {kind_of(kind)}", "owner")
        return Owner(kind, entry["name"])
    if isinstance(entry, (Owner, str)):
        return Owner.parse(entry)
    raise ConfigError(
        f"an owner is a string like 'user:a@example.com' or 'group:data-owners', "
        f"not {kind_of(entry)}",
        "owner",
    )


def _check_owners(value: object) -> tuple[tuple[Owner, ...], list[str]]:
    if value is None:
        return (), []
    entries: Sequence[object]
    if isinstance(value, str):
        entries = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        entries = value
    else:
        return (), [
            (
                "must be a list of owners like ['user:a@example.com', 'group:data-owners'], "
                f"not {kind_of(value)}"
            )
        ]
    if len(entries) > _MAX_OWNERS:
        return (), [f"lists {len(entries)} owners; at most {_MAX_OWNERS} (use an IdP group)"]
    owners: list[Owner] = []
    problems: list[str] = []
    for index, entry in enumerate(entries, start=1):
        try:
            owners.append(_check_owner_entry(entry))
        except ConfigError as exc:
            problems.extend(f"entry {index}: {problem.message}" for problem in exc.problems)
    return tuple(dict.fromkeys(owners)), problems


def _check_resource_owner(
    value: object,
) -> tuple[ResourceOwnerSetting | None, list[ConfigProblem]]:
    if value is None or isinstance(value, ResourceOwnerSetting):
        return value, []
    if not isinstance(value, Mapping):
        return None, [
            ConfigProblem(
                "resource_owner",
                f"must be a table with tag_key and idp_attribute, not {kind_of(value)}",
            )
        ]
    problems = [
        ConfigProblem(f"resource_owner.{key_shown(key)}", unknown_key(key, RESOURCE_OWNER_FIELDS))
        for key in value
        if key not in RESOURCE_OWNER_FIELDS
    ]
    problems.extend(
        ConfigProblem(f"resource_owner.{name}", "is required")
        for name in RESOURCE_OWNER_FIELDS
        if name not in value
    )
    if problems:
        return None, problems
    try:
        return ResourceOwnerSetting(value["tag_key"], value["idp_attribute"]), []
    except ConfigError as exc:
        return None, list(exc.problems)


def key_shown(key: object) -> str:
    """A key as a problem names it: as is when short and printable, else quoted."""
    if isinstance(key, str) and key.isprintable() and len(key) <= _MAX_SHOWN:
        return key
    return shown(key) if isinstance(key, str) else f"<{kind_of(key)} key>"


def unknown_key(key: object, known: Sequence[str]) -> str:
    """The problem of an unknown key: the closest known one, else all of them."""
    message = "is not a known key"
    if isinstance(key, str):
        close = difflib.get_close_matches(key.lower(), known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
            return message
    return f"{message}; the keys are: {', '.join(known)}"


def validate(raw: Mapping[str, object]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Check every field present in `raw`, in field order; normalised values and problems."""
    values: dict[str, Any] = {}
    problems: list[ConfigProblem] = []

    def note(field: str, messages: Iterable[str]) -> None:
        problems.extend(ConfigProblem(field, message) for message in messages)

    flags: dict[str, bool] = {}
    for flag in ("allow_custom_host", "allow_insecure_http"):
        value = raw.get(flag, False)
        if isinstance(value, bool):
            flags[flag] = values[flag] = value
        else:
            flags[flag] = False
            note(flag, [f"must be true or false, not {kind_of(value)}"])

    if "name" in raw:
        values["name"], found = _check_name(raw["name"])
        note("name", found)
    if "accounts_url" in raw:
        values["accounts_url"], host_problems = check_host(
            raw["accounts_url"],
            allow_custom_host=flags["allow_custom_host"],
            allow_insecure_http=flags["allow_insecure_http"],
            field="accounts_url",
        )
        problems.extend(host_problems)
    if "account_id" in raw:
        values["account_id"], id_problems = check_account_id(raw["account_id"])
        problems.extend(id_problems)
    values["custom_access_details"], found = _check_access_details(raw.get("custom_access_details"))
    note("custom_access_details", found)
    values["integration_owners"], found = _check_owners(raw.get("integration_owners"))
    note("integration_owners", found)
    resource_owner = raw.get("resource_owner")
    values["resource_owner"], setting_problems = _check_resource_owner(resource_owner)
    problems.extend(setting_problems)
    if resource_owner is not None and not values["integration_owners"] and not found:
        note(
            "integration_owners",
            [
                (
                    "is required when resource_owner is set: the integration owners approve "
                    "when a group has no resource owner"
                )
            ],
        )

    lease_ref, lease_problem = check_lease_store(raw.get("lease_store", DEFAULT_LEASE_STORE))
    values["lease_store"] = None if lease_ref is None else lease_ref.url
    note("lease_store", [lease_problem] if lease_problem else [])
    secret_ref, secret_problem = check_secret_store(raw.get("secret_store", DEFAULT_SECRET_STORE))
    values["secret_store"] = None if secret_ref is None else str(secret_ref)
    note("secret_store", [secret_problem] if secret_problem else [])

    policy = raw.get("lease_policy")
    values["lease_policy"], policy_problems = (
        (policy, []) if isinstance(policy, LeasePolicy) else check_lease_policy(policy)
    )
    problems.extend(policy_problems)
    values["audit_sink"], sink_problem = check_audit_sink(raw.get("audit_sink"))
    note("audit_sink", [sink_problem] if sink_problem else [])
    tags = raw.get("owner_tags")
    values["owner_tags"], tags_problems = check_owner_tags(tags)
    problems.extend(tags_problems)
    if tags is not None and resource_owner is None:
        note(
            "owner_tags",
            ["needs resource_owner: its tag_key names the tag to read from these tags"],
        )
    if "rate_limits" in raw:
        try:
            values["rate_limits"] = RateLimits.from_setting(raw["rate_limits"])
        except ConfigError as exc:
            problems.extend(exc.problems)
    if "workspace_hosts" in raw:  # -- Unity Catalog: workspace hosts --
        from databricks_access._catalog.hosts import check_workspace_hosts  # noqa: PLC0415

        values["workspace_hosts"], host_found = check_workspace_hosts(
            raw["workspace_hosts"],
            allow_custom_host=flags["allow_custom_host"],
            allow_insecure_http=flags["allow_insecure_http"],
        )
        problems.extend(host_found)
    return values, problems
