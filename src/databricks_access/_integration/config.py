"""The integration's configuration: what the product's setup screen collects.

`IntegrationConfig` holds the integration's name, the account (through the one host
normaliser of `_account.config`), the text shown to end users, the fallback approvers,
the resource-owner rule, and references to the lease store and the secret store, so a
CLI and a connector share them. It is validated as a whole (`_integration.validation`):
every problem is reported at once, each naming its field. It loads from plain data,
JSON, TOML and the environment.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import attrs

from databricks_access._account.config import AccountConfig
from databricks_access._account.throttle import RateLimits
from databricks_access._clock import Clock
from databricks_access._durations import Duration
from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._hosts import Cloud, cloud_for_host
from databricks_access._integration.owners import Owner, OwnerLike, ResourceOwnerSetting, TagSource
from databricks_access._integration.policy import LeasePolicy, OwnerTags, open_audit_sink
from databricks_access._integration.validation import (
    DEFAULT_LEASE_STORE,
    DEFAULT_SECRET_STORE,
    FIELDS,
    REQUIRED,
    RESOURCE_OWNER_FIELDS,
    TABLE_FIELDS,
    key_shown,
    unknown_key,
    validate,
)
from databricks_access._secrets.base import SecretStore
from databricks_access._secrets.refs import SecretStoreRef
from databricks_access._stores.refs import LeaseStoreRef
from databricks_access._util.describe import kind_of, shown
from databricks_access._util.json import loads

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from databricks_access._leases.events import EventSink
    from databricks_access._leases.membership import AsyncMembershipManager, MembershipManager
    from databricks_access._leases.store import AsyncLeaseStore, LeaseStore
    from databricks_access._leases.tracker import AsyncLeaseTracker, LeaseTracker

__all__ = ["IntegrationConfig"]


def _owners_in(value: Iterable[OwnerLike] | str | None) -> tuple[Owner, ...]:
    """Take what the caller gave; `__attrs_post_init__` validates and parses it."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value  # type: ignore[return-value] # checked (and refused) in validation


def _setting_in(
    value: ResourceOwnerSetting | Mapping[str, str] | None,
) -> ResourceOwnerSetting | None:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # a mapping is converted in validation


def _policy_in(value: LeasePolicy | Mapping[str, object] | None) -> LeasePolicy:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # a mapping (or None) is converted in validation


def _tags_in(value: OwnerTags | Mapping[str, object] | None) -> OwnerTags | None:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # a mapping is converted in validation


def _limits_in(
    value: RateLimits | Mapping[str, float] | str | None,
) -> RateLimits | None:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # text and mappings are converted in validation


def _limits_out(limits: RateLimits | None) -> str | dict[str, float | str]:
    if limits is None:
        return "off"
    figures: dict[str, float | str] = {
        name: "off" if getattr(limits, name) is None else getattr(limits, name)
        for name in ("get", "list", "patch", "write")
    }
    return {**figures, "burst": limits.burst}


_PUBLISHED = RateLimits.published()


class _AccountOptions(TypedDict, total=False):
    """The `AccountConfig` fields `IntegrationConfig.account_config` passes through."""

    scim_version: Literal["2.0", "2.1"]
    timeout: Duration
    connect_timeout: Duration
    deadline: Duration
    max_attempts: int
    token_endpoint: str | None
    insecure_skip_tls_verify: bool
    rate_limits: RateLimits | None


@attrs.frozen(kw_only=True)
class IntegrationConfig:
    """The configuration of one integration, as the product's setup screen collects it.

    Validated when built: every problem is reported at once in one `ConfigError`, each
    naming its field. Stored values are normalised (the accounts URL to `https://host`,
    the account ID to lower case, owners parsed, store references in canonical form).
    It holds no secret: only references to where secrets live.

    Attributes:
        name: A unique, user-friendly name: 1-64 letters, digits, `-` and `_`, starting
            with a letter or digit (`sales-analytics`).
        accounts_url: The accounts console URL; the rules of `normalize_host` apply.
        account_id: The account ID, a UUID.
        custom_access_details: Optional text shown to end users when they request access
            (at most 400 characters after trimming; newlines allowed).
        integration_owners: The fallback approvers: IdP users and groups (`Owner`s, or
            their text forms `user:a@x.com`, `group:data-owners`, a bare e-mail).
            Required when `resource_owner` is set.
        resource_owner: Which group tag names the resource owner, and which IdP
            attribute its value is (`ResourceOwnerSetting`, or a mapping with `tag_key`
            and `idp_attribute`).
        lease_store: Where leases are kept: `sqlite:///relative/path.db` (default
            `sqlite:///leases.db`), `sqlite:////absolute/path.db` or `postgresql://...`.
        secret_store: Where the service principal's credentials are: `env` (default),
            `env:ID_VAR,SECRET_VAR`, `file:/path`, or a cloud store reference (see
            `SecretStoreRef`).
        allow_custom_host: Accept an accounts URL that is not a Databricks host (a proxy,
            the emulator).
        allow_insecure_http: Accept plain http for a loopback host (the emulator).
        lease_policy: The limits of every lease (`LeasePolicy`, or a mapping with
            `min_ttl` and `max_ttl` in seconds and `max_extensions`): the shortest and
            the longest lease, and how often one may be extended. The command line and
            `lease_tracker()` enforce it.
        audit_sink: Where audit events are delivered besides the store's outbox:
            `jsonl:/path/audit.jsonl` (a JSON Lines file); None: nowhere else.
        owner_tags: Where the resource-owner tag of a group is read (`OwnerTags`, or a
            mapping with `pattern` or `groups`); needs `resource_owner`. `Integration`
            uses it when it is given no `tags=`.
        rate_limits: The client-side rate limits: the published figures by default;
            `"off"` (or None) for none; a table (or text `"patch=1.5,get=10"`) of
            per-class figures, the classes not named keeping the published figure.
        workspace_hosts: Workspace id to host, for the workspaces whose host cannot be
            derived from the account's workspace list (Azure, a proxy, the emulator):
            where `unlocks` and `explain_access` read Unity Catalog.

    Example:
        >>> cfg = IntegrationConfig(
        ...     name="sales-analytics",
        ...     accounts_url="https://accounts.cloud.databricks.com/login",
        ...     account_id="0A1B2C3D-0000-4000-8000-00000000ABCD",
        ...     integration_owners=["group:data-platform", "ann@example.com"],
        ...     resource_owner={"tag_key": "owner", "idp_attribute": "email"},
        ... )
        >>> cfg.accounts_url, [str(o) for o in cfg.integration_owners]
        ('https://accounts.cloud.databricks.com', ['group:data-platform', 'user:ann@example.com'])
        >>> try:
        ...     IntegrationConfig(
        ...         name="sales analytics", accounts_url="http://example.com", account_id="1",
        ...         resource_owner={"tag_key": "owner", "idp_attribute": "email"},
        ...     )
        ... except ConfigError as exc:
        ...     print(exc.fields)
        ('name', 'accounts_url', 'accounts_url', 'account_id', 'integration_owners')
    """

    name: str
    accounts_url: str
    account_id: str
    custom_access_details: str | None = None
    integration_owners: tuple[Owner, ...] = attrs.field(default=(), converter=_owners_in)
    resource_owner: ResourceOwnerSetting | None = attrs.field(default=None, converter=_setting_in)
    lease_store: str = DEFAULT_LEASE_STORE
    secret_store: str = DEFAULT_SECRET_STORE
    allow_custom_host: bool = False
    allow_insecure_http: bool = False
    lease_policy: LeasePolicy = attrs.field(factory=LeasePolicy, converter=_policy_in)
    audit_sink: str | None = None
    owner_tags: OwnerTags | None = attrs.field(default=None, converter=_tags_in)
    rate_limits: RateLimits | None = attrs.field(default=_PUBLISHED, converter=_limits_in)
    workspace_hosts: Mapping[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        raw = {field: getattr(self, field) for field in FIELDS}
        values, problems = validate(raw)
        if problems:
            raise ConfigError(problems)
        for field, value in values.items():
            object.__setattr__(self, field, value)

    # -- derived values -------------------------------------------------------------------

    @property
    def cloud(self) -> Cloud:
        """The cloud of `accounts_url`; `Cloud.CUSTOM` for a proxy or the emulator."""
        return cloud_for_host(self.accounts_url)

    @property
    def secret_store_ref(self) -> SecretStoreRef:
        """`secret_store`, parsed."""
        return SecretStoreRef.parse(self.secret_store)

    @property
    def lease_store_ref(self) -> LeaseStoreRef:
        """`lease_store`, parsed."""
        return LeaseStoreRef.parse(self.lease_store)

    def account_config(self, **options: Unpack[_AccountOptions]) -> AccountConfig:
        """The `AccountConfig` of this integration's account (same host rules).

        Args:
            **options: Other `AccountConfig` fields (`timeout`, `scim_version`, ...).

        Example:
            >>> cfg = IntegrationConfig(
            ...     name="x", accounts_url="accounts.azuredatabricks.net",
            ...     account_id="0a1b2c3d-0000-4000-8000-00000000abcd",
            ... )
            >>> cfg.account_config(timeout=5).host
            'https://accounts.azuredatabricks.net'
        """
        options.setdefault("rate_limits", self.rate_limits)
        return AccountConfig(
            host=self.accounts_url,
            account_id=self.account_id,
            allow_custom_host=self.allow_custom_host,
            allow_insecure_http=self.allow_insecure_http,
            **options,
        )

    def secret_store_instance(self, *, environ: Mapping[str, str] | None = None) -> SecretStore:
        """The secret store `secret_store` names (see `open_secret_store`).

        Raises:
            ConfigError: For a cloud store whose optional extra is not available.
        """
        return self.secret_store_ref.open(
            environ=environ, allow_insecure_http=self.allow_insecure_http
        )

    def audit_sink_instance(self) -> EventSink | None:
        """The event sink `audit_sink` names, or None when there is none."""
        return None if self.audit_sink is None else open_audit_sink(self.audit_sink)

    def tag_source(self) -> TagSource | None:
        """The owner tag source `owner_tags` describes, or None."""
        return None if self.owner_tags is None else self.owner_tags.source()

    def lease_tracker(
        self,
        manager: MembershipManager,
        *,
        store: LeaseStore | None = None,
        events: EventSink | None = None,
        clock: Clock | None = None,
    ) -> LeaseTracker:
        """A `LeaseTracker` under this integration's policy, store and audit sink.

        What the command line uses, so a connector built on it enforces the same limits
        (`lease_policy`) and audits to the same place (`audit_sink`).

        Example::

            config = da.IntegrationConfig.from_toml("integration.toml")
            client = da.AccountClient(config.account_config(),
                                      secrets=config.secret_store_instance())
            tracker = config.lease_tracker(da.MembershipManager(client))

        Args:
            manager: The membership manager of the account's client.
            store: The lease store; default `lease_store` opened (closing it is yours:
                `tracker.store.close()`).
            events: Where events go; default the `audit_sink` (None: kept in the store).
            clock: Time, injectable for tests.
        """
        from databricks_access._leases.tracker import LeaseTracker  # noqa: PLC0415

        policy = self.lease_policy
        return LeaseTracker(
            manager,
            store=self.lease_store_ref.open() if store is None else store,
            events=self.audit_sink_instance() if events is None else events,
            clock=clock,
            min_ttl=policy.min_ttl,
            max_ttl=policy.max_ttl,
            max_extensions=policy.max_extensions,
        )

    def async_lease_tracker(
        self,
        manager: AsyncMembershipManager,
        *,
        store: LeaseStore | AsyncLeaseStore | None = None,
        events: EventSink | None = None,
        clock: Clock | None = None,
    ) -> AsyncLeaseTracker:
        """The async twin of `lease_tracker`: an `AsyncLeaseTracker` under this policy."""
        from databricks_access._leases.tracker import AsyncLeaseTracker  # noqa: PLC0415

        policy = self.lease_policy
        return AsyncLeaseTracker(
            manager,
            store=self.lease_store_ref.open() if store is None else store,
            events=self.audit_sink_instance() if events is None else events,
            clock=clock,
            min_ttl=policy.min_ttl,
            max_ttl=policy.max_ttl,
            max_extensions=policy.max_extensions,
        )

    # -- loading and saving ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data (JSON and TOML ready); `from_dict` reads it back.

        Fields that are unset (None), and a default `lease_policy`, are left out. It holds
        no secret.

        Example:
            >>> cfg = IntegrationConfig(
            ...     name="x", accounts_url="https://accounts.cloud.databricks.com",
            ...     account_id="0a1b2c3d-0000-4000-8000-00000000abcd",
            ... )
            >>> IntegrationConfig.from_dict(cfg.to_dict()) == cfg
            True
        """
        data: dict[str, Any] = {
            "name": self.name,
            "accounts_url": self.accounts_url,
            "account_id": self.account_id,
        }
        if self.custom_access_details is not None:
            data["custom_access_details"] = self.custom_access_details
        data["integration_owners"] = [str(owner) for owner in self.integration_owners]
        setting = self.resource_owner
        if setting is not None:
            data["resource_owner"] = {
                "tag_key": setting.tag_key,
                "idp_attribute": setting.idp_attribute,
            }
        data["lease_store"] = self.lease_store
        data["secret_store"] = self.secret_store
        data["allow_custom_host"] = self.allow_custom_host
        data["allow_insecure_http"] = self.allow_insecure_http
        if self.lease_policy != LeasePolicy():
            data["lease_policy"] = self.lease_policy.to_dict()
        if self.audit_sink is not None:
            data["audit_sink"] = self.audit_sink
        if self.owner_tags is not None:
            data["owner_tags"] = self.owner_tags.to_dict()
        if self.rate_limits != _PUBLISHED:
            data["rate_limits"] = _limits_out(self.rate_limits)
        if self.workspace_hosts:
            data["workspace_hosts"] = dict(self.workspace_hosts)
        return data

    @classmethod
    def from_dict(cls, data: object) -> IntegrationConfig:
        """Build a configuration from plain data (a parsed JSON object or TOML table).

        Unknown keys, missing required keys (`name`, `accounts_url`, `account_id`) and
        values of the wrong type are problems, all reported together; nothing but
        `ConfigError` is ever raised, whatever the input.

        Example:
            >>> IntegrationConfig.from_dict({
            ...     "name": "x", "accounts_url": "accounts.cloud.databricks.com",
            ...     "account_id": "0a1b2c3d-0000-4000-8000-00000000abcd",
            ...     "integration_owners": ["group:data-platform"],
            ... }).integration_owners
            (Owner(kind=<OwnerKind.GROUP: 'group'>, name='data-platform'),)
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"must be a table of settings (a JSON object), not {kind_of(data)}", "config"
            )
        problems: list[ConfigProblem] = []
        known: dict[str, object] = {}
        for key, value in data.items():
            if key in FIELDS:
                known[key] = value
            else:
                problems.append(ConfigProblem(key_shown(key), unknown_key(key, FIELDS)))
        problems.extend(
            ConfigProblem(field, "is required") for field in REQUIRED if field not in known
        )
        values, found = validate(known)
        problems.extend(found)
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> IntegrationConfig:
        """Build a configuration from JSON text or a JSON file.

        A `str` whose first non-blank character is `{` is JSON text; any other `str` or
        path is a file to read (UTF-8). Duplicate keys are problems.

        Raises:
            ConfigError: The file cannot be read, the JSON is malformed, or the settings
                are invalid (every problem at once).
        """
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text = source
        else:
            text = _read_text(source)
        duplicates: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for key, value in items:
                if key in seen:
                    duplicates.append(key)
                seen[key] = value
            return seen

        try:
            data = loads(text, max_bytes=1024 * 1024, object_pairs_hook=pairs)
            error = None
        except json.JSONDecodeError as exc:
            data, error = (
                None,
                f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            )
        except (RecursionError, ValueError):
            data, error = None, "is not valid JSON (or is nested too deeply)"
        if error is not None:
            raise ConfigError(error, "config")
        problems = [
            ConfigProblem(key_shown(key), "appears more than once")
            for key in dict.fromkeys(duplicates)
        ]
        try:
            config = cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError([*problems, *exc.problems]) from None
        if problems:
            raise ConfigError(problems)
        return config

    @classmethod
    def from_toml(
        cls, path: str | os.PathLike[str], *, table: str | None = None
    ) -> IntegrationConfig:
        """Build a configuration from a TOML file.

        Args:
            path: The file (UTF-8).
            table: A dotted table holding the settings, such as `tool.databricks_access`
                in a `pyproject.toml`; None for the top level.

        Raises:
            ConfigError: The file cannot be read, the TOML is malformed, the table is
                missing, or the settings are invalid (every problem at once).
        """
        if sys.version_info >= (3, 11):
            import tomllib  # noqa: PLC0415 - imported when used
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]  # noqa: PLC0415

        text = _read_text(path)
        try:
            data: object = tomllib.loads(text)
            error = None
        except tomllib.TOMLDecodeError as exc:
            data, error = None, f"is not valid TOML: {exc}"
        except RecursionError:
            data, error = None, "is not valid TOML (nested too deeply)"
        if error is not None:
            raise ConfigError(error, "config")
        if table:
            for part in table.split("."):
                inner = data.get(part) if isinstance(data, Mapping) else None
                if not isinstance(inner, Mapping):
                    raise ConfigError(f"has no table [{table}]", "config")
                data = inner
        return cls.from_dict(data)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, prefix: str = "DATABRICKS_ACCESS_"
    ) -> IntegrationConfig:
        """Build a configuration from environment variables.

        Each field is `<prefix><FIELD>` in upper case: `DATABRICKS_ACCESS_NAME`,
        `..._ACCOUNTS_URL`, `..._ACCOUNT_ID`, `..._CUSTOM_ACCESS_DETAILS`,
        `..._INTEGRATION_OWNERS` (comma-separated), `..._RESOURCE_OWNER_TAG_KEY` and
        `..._RESOURCE_OWNER_IDP_ATTRIBUTE` (both or neither), `..._LEASE_STORE`,
        `..._SECRET_STORE`, `..._RATE_LIMITS` (`published`, `off`, `patch=1.5,get=10`),
        `..._ALLOW_CUSTOM_HOST` and `..._ALLOW_INSECURE_HTTP` (`true`/`false`, `1`/`0`,
        `yes`/`no`, `on`/`off`), `..._AUDIT_SINK`, `..._LEASE_POLICY_MIN_TTL`,
        `..._LEASE_POLICY_MAX_TTL` (seconds) and `..._LEASE_POLICY_MAX_EXTENSIONS`,
        `..._OWNER_TAGS_PATTERN`. An empty variable counts as unset; other variables with
        the prefix are ignored. Problems name the variable.

        Example:
            >>> IntegrationConfig.from_env({
            ...     "DATABRICKS_ACCESS_NAME": "sales",
            ...     "DATABRICKS_ACCESS_ACCOUNTS_URL": "accounts.cloud.databricks.com",
            ...     "DATABRICKS_ACCESS_ACCOUNT_ID": "0a1b2c3d-0000-4000-8000-00000000abcd",
            ...     "DATABRICKS_ACCESS_INTEGRATION_OWNERS": "group:owners, ann@example.com",
            ... }).integration_owners[1]
            Owner(kind=<OwnerKind.USER: 'user'>, name='ann@example.com')

        Raises:
            ConfigError: Listing every missing or invalid variable.
        """
        if environ is None:
            environ = os.environ
        if not isinstance(prefix, str):
            raise ConfigError("must be a string", "prefix")
        names = {field: f"{prefix}{field.upper()}" for field in FIELDS if field not in TABLE_FIELDS}
        for table in TABLE_FIELDS:
            for key in _TABLE_KEYS[table]:
                names[f"{table}.{key}"] = f"{prefix}{table.upper()}_{key.upper()}"

        def read(field: str) -> str | None:
            value = environ.get(names[field], "")
            return value.strip() or None

        raw: dict[str, object] = {}
        problems: list[ConfigProblem] = []
        for field in FIELDS:
            if field in TABLE_FIELDS:
                continue
            value = read(field)
            if value is None:
                if field in REQUIRED:
                    problems.append(ConfigProblem(names[field], "is not set"))
                continue
            if field.startswith("allow_"):
                flag = _env_flag(value)
                if flag is None:
                    problems.append(
                        ConfigProblem(names[field], "must be true or false (or 1/0, yes/no)")
                    )
                    continue
                raw[field] = flag
            else:
                raw[field] = value
        tag_key, attribute = read("resource_owner.tag_key"), read("resource_owner.idp_attribute")
        if tag_key is not None or attribute is not None:
            # Only the variables that are set: a missing one is reported as required.
            raw["resource_owner"] = {
                part: value
                for part, value in (("tag_key", tag_key), ("idp_attribute", attribute))
                if value is not None
            }
        policy: dict[str, object] = {}
        for key in _TABLE_KEYS["lease_policy"]:
            value = read(f"lease_policy.{key}")
            if value is None:
                continue
            number = _env_number(value, whole=key == "max_extensions")
            if number is None:
                problems.append(
                    ConfigProblem(names[f"lease_policy.{key}"], f"{shown(value)} is not a number")
                )
            else:
                policy[key] = number
        if policy:
            raw["lease_policy"] = policy
        pattern = read("owner_tags.pattern")
        if pattern is not None:
            raw["owner_tags"] = {"pattern": pattern}
        _, found = validate(raw)
        problems.extend(
            ConfigProblem(
                names.get(problem.field)
                or names.get(problem.field.partition(".")[0], problem.field),
                problem.message,
            )
            for problem in found
        )
        if problems:
            raise ConfigError(problems)
        return cls.from_dict(raw)


_TABLE_KEYS: Mapping[str, tuple[str, ...]] = {
    "resource_owner": RESOURCE_OWNER_FIELDS,
    "lease_policy": ("min_ttl", "max_ttl", "max_extensions"),
    "owner_tags": ("pattern",),
}


def _env_number(value: str, *, whole: bool) -> float | int | None:
    try:
        return int(value) if whole else float(value)
    except ValueError:
        return None


def _env_flag(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    return None


def _read_text(path: object) -> str:
    try:
        target = Path(os.fspath(path))  # type: ignore[call-overload]
    except TypeError:
        raise ConfigError(f"must be a path or text, not {kind_of(path)}", "path") from None
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {str(target)!r}: {exc.strerror or type(exc).__name__}", "path"
        ) from None
    except ValueError:  # an embedded NUL character
        raise ConfigError("is not a valid path", "path") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{str(target)!r} is not UTF-8 text", "path") from None
