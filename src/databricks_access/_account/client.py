"""`AccountClient` and `AsyncAccountClient`: the account API, sync and async.

Both run the same flows from `_api.py`; each public method here is one line. The sync
client sits on `httpx.Client` (never on `asyncio.run`), so it works inside a running
Jupyter kernel; the async client sits on `httpx.AsyncClient`.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import sys
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal

import httpx
from typing_extensions import Self

from databricks_access._about import __version__
from databricks_access._account.api import AccountApi, Principal, rule_set_principal
from databricks_access._account.auth import OAuthM2M
from databricks_access._account.config import AccountConfig
from databricks_access._account.drivers import (
    AsyncDriver,
    AsyncPager,
    Pager,
    SyncDriver,
    new_async_http,
    new_sync_http,
)
from databricks_access._account.models import (
    Group,
    MemberRef,
    PermissionAssignment,
    PrincipalKind,
    PrincipalRef,
    RuleSet,
    ServicePrincipal,
    ServicePrincipalSecret,
    User,
    Workspace,
    WorkspacePermission,
)
from databricks_access._account.retry import RetryPolicy
from databricks_access._account.throttle import RateLimits, shared_throttle
from databricks_access._clock import Clock, SystemClock
from databricks_access._errors import ConfigError
from databricks_access._secrets.base import EnvSecretStore, SecretStore

__all__ = [
    "AccountClient",
    "AsyncAccountClient",
    "AsyncGroupManagers",
    "AsyncGroups",
    "AsyncServicePrincipals",
    "AsyncUsers",
    "AsyncWorkspaceAssignments",
    "AsyncWorkspaces",
    "GroupManagers",
    "Groups",
    "ServicePrincipals",
    "Users",
    "WorkspaceAssignments",
    "Workspaces",
]


class _Default(enum.Enum):
    FROM_CONFIG = "from config"


FROM_CONFIG = _Default.FROM_CONFIG
"""The default of `rate_limits`: the config's `rate_limits` (the published figures)."""
LimitsArg = RateLimits | None | Literal[_Default.FROM_CONFIG]

logger = logging.getLogger("databricks_access")

_USER_AGENT = (
    f"databricks-access/{__version__} python/{sys.version_info.major}.{sys.version_info.minor}"
)

GroupLike = Group | str
UserLike = User | str
ServicePrincipalLike = ServicePrincipal | str
MemberLike = str | PrincipalRef | User | ServicePrincipal | Group
ManagerLike = str | User | ServicePrincipal | Group


def _group_id(group: GroupLike) -> str:
    return group.id if isinstance(group, Group) else group


def _user_id(user: UserLike) -> str:
    return user.id if isinstance(user, User) else user


def _sp_id(sp: ServicePrincipalLike) -> str:
    return sp.id if isinstance(sp, ServicePrincipal) else sp


def _application_id(sp: ServicePrincipalLike) -> str:
    return sp.application_id if isinstance(sp, ServicePrincipal) else sp


def _principal_id(principal: MemberLike) -> str:
    return principal if isinstance(principal, str) else principal.id


_USER = PrincipalKind.USER
_SP = PrincipalKind.SERVICE_PRINCIPAL
_GROUP = PrincipalKind.GROUP


def _member_ids(members: Iterable[MemberLike]) -> list[str]:
    if isinstance(members, (str, bytes)):
        raise ConfigError("must be a list of ids, not a single string", "principal_ids")
    return list(dict.fromkeys(m if isinstance(m, str) else m.id for m in members))


class _Setup:
    """What both clients build the same way from their arguments (no I/O)."""

    def __init__(
        self,
        config: AccountConfig,
        *,
        secrets: SecretStore | None,
        auth: httpx.Auth | None,
        rate_limits: LimitsArg,
        retry: RetryPolicy | None,
        clock: Clock | None,
    ) -> None:
        if not isinstance(config, AccountConfig):
            raise ConfigError("must be a databricks_access.AccountConfig", "config")
        self.config = config
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy(
            max_attempts=config.max_attempts, deadline=config.deadline
        )
        if auth is None:
            auth = OAuthM2M(config, secrets or EnvSecretStore(), clock=self.clock, retry=self.retry)
        self.auth = auth
        limits = config.rate_limits if rate_limits is FROM_CONFIG else rate_limits
        if limits is not None and not isinstance(limits, RateLimits):
            raise ConfigError("must be a databricks_access.RateLimits or None", "rate_limits")
        # One throttle per account and clock in the process, whichever client asks.
        self.throttle = shared_throttle(
            limits, host=config.host, account_id=config.account_id, clock=self.clock
        )
        self.api = AccountApi(config)
        self.timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        self.verify = not config.insecure_skip_tls_verify
        if not self.verify:
            logger.warning(
                "TLS certificate verification is OFF for %s (insecure_skip_tls_verify=True)",
                config.host,
            )

    def driver_args(self) -> dict[str, Any]:
        return {
            "host": self.config.host,
            "auth": self.auth,
            "retry": self.retry,
            "throttle": self.throttle,
            "clock": self.clock,
            "user_agent": _USER_AGENT,
        }


class AccountClient:
    """The Databricks account API, synchronous.

    Example::

        cfg = da.AccountConfig(host="https://accounts.cloud.databricks.com", account_id=ACCOUNT)
        with da.AccountClient(cfg, secrets=da.EnvSecretStore()) as client:
            for group in client.groups.list(attributes=["id", "displayName"]):
                print(group.display_name)

    Args:
        config: The account to talk to.
        secrets: Where the service principal's client id and secret are read
            (default: `EnvSecretStore()`). Ignored when `auth` is given.
        auth: Any `httpx.Auth` instead of OAuth M2M.
        transport: An httpx transport (the emulator's `fake.transport()`, say).
        http_client: An `httpx.Client` to use; it is not closed by this client. Its
            default headers and timeout apply; its cookie jar does not (the account API
            authenticates with a bearer token).
        rate_limits: Client-side limits per operation class (default: the config's,
            which are the published figures); None for no throttle. Clients of one
            account in one process share one set of buckets.
        retry: The retry policy (default from `config.max_attempts`/`config.deadline`).
        clock: Time and sleep, injectable for tests.

    Attributes:
        groups: Account groups and their members (`Groups`).
        users: Account users (`Users`).
        service_principals: Account service principals (`ServicePrincipals`).
        group_managers: Who manages each group, through rule sets (`GroupManagers`).
        workspaces: The account's workspaces (`Workspaces`).
        workspace_assignments: Workspace permission assignments (`WorkspaceAssignments`).
    """

    def __init__(
        self,
        config: AccountConfig,
        *,
        secrets: SecretStore | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        rate_limits: LimitsArg = FROM_CONFIG,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        setup = _Setup(
            config, secrets=secrets, auth=auth, rate_limits=rate_limits, retry=retry, clock=clock
        )
        self.config = config
        self.clock = setup.clock
        self.auth = setup.auth
        self._owns_http = http_client is None
        http = http_client or new_sync_http(transport, setup.timeout, verify=setup.verify)
        self._driver = SyncDriver(http, **setup.driver_args())
        self._api = setup.api
        self.groups = Groups(self)
        self.users = Users(self)
        self.service_principals = ServicePrincipals(self)
        self.group_managers = GroupManagers(self)
        self.service_principal_access = ServicePrincipalAccess(self)
        self.service_principal_secrets = ServicePrincipalSecrets(self)
        self.workspaces = Workspaces(self)
        self.workspace_assignments = WorkspaceAssignments(self)

    @property
    def requests_sent(self) -> int:
        """API requests sent so far, retries included, token requests excluded."""
        return self._driver.requests_sent

    def resolve_principal(self, principal: Principal) -> PrincipalRef:
        """A `PrincipalRef` for a user name, an application id, a model or a reference."""
        return self._driver.run(self._api.resolve_principal(principal))

    def close(self) -> None:
        """Close the HTTP connections (unless the httpx client was passed in)."""
        if self._owns_http:
            self._driver.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AccountClient(host={self.config.host!r}, account_id={self.config.account_id!r})"


class AsyncAccountClient:
    """The Databricks account API, on asyncio. Same methods as `AccountClient`, awaited.

    Lists return an `AsyncPager`: `async for group in client.groups.list(): ...`.
    One client may be used across repeated `asyncio.run` calls.

    Attributes:
        groups: Account groups and their members (`AsyncGroups`).
        users: Account users (`AsyncUsers`).
        service_principals: Account service principals (`AsyncServicePrincipals`).
        group_managers: Who manages each group, through rule sets (`AsyncGroupManagers`).
        workspaces: The account's workspaces (`AsyncWorkspaces`).
        workspace_assignments: Workspace permission assignments
            (`AsyncWorkspaceAssignments`).
    """

    def __init__(
        self,
        config: AccountConfig,
        *,
        secrets: SecretStore | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        rate_limits: LimitsArg = FROM_CONFIG,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        setup = _Setup(
            config, secrets=secrets, auth=auth, rate_limits=rate_limits, retry=retry, clock=clock
        )
        self.config = config
        self.clock = setup.clock
        self.auth = setup.auth
        self._transport = transport
        self._timeout = setup.timeout
        self._verify = setup.verify
        self._driver = AsyncDriver(http_client or self._new_http, **setup.driver_args())
        self._api = setup.api
        self.groups = AsyncGroups(self)
        self.users = AsyncUsers(self)
        self.service_principals = AsyncServicePrincipals(self)
        self.group_managers = AsyncGroupManagers(self)
        self.service_principal_access = AsyncServicePrincipalAccess(self)
        self.service_principal_secrets = AsyncServicePrincipalSecrets(self)
        self.workspaces = AsyncWorkspaces(self)
        self.workspace_assignments = AsyncWorkspaceAssignments(self)

    def _new_http(self) -> httpx.AsyncClient:
        return new_async_http(self._transport, self._timeout, verify=self._verify)

    @property
    def requests_sent(self) -> int:
        """API requests sent so far, retries included, token requests excluded."""
        return self._driver.requests_sent

    async def resolve_principal(self, principal: Principal) -> PrincipalRef:
        """A `PrincipalRef` for a user name, an application id, a model or a reference."""
        return await self._driver.run(self._api.resolve_principal(principal))

    async def close(self) -> None:
        """Close the HTTP connections (unless the httpx client was passed in)."""
        await self._driver.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"AsyncAccountClient(host={self.config.host!r}, account_id={self.config.account_id!r})"
        )


# -- services: one-line methods over the shared flows ----------------------------------------


class Groups:
    """Account groups (`client.groups`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001 - the client owns its services
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(
        self,
        filter: str | None = None,  # noqa: A002 - the SCIM parameter's name
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Pager[Group]:
        """Every group, fetched page by page as you iterate (members are not listed)."""
        return Pager(
            self._driver,
            self._api.list_groups(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    def get(self, group_id: GroupLike) -> Group:
        """One group with its direct members."""
        return self._run(self._api.get_group(_group_id(group_id)))

    def find(self, display_name: str) -> Group | None:
        """The group with exactly this display name, or None."""
        return self._run(self._api.find_group(display_name))

    def get_by_name(self, display_name: str) -> Group:
        """The group with exactly this display name; raises `NotFoundError` if there is none.

        Use it where the group is passed on (to `grant`, `submit`, ...): unlike `find`,
        it never hands `None` to the next call.

        Example::

            readers = client.groups.get_by_name("prod-data-readers")
            tracker.grant("alice@example.com", readers, ttl=timedelta(hours=1))
        """
        return self._run(self._api.get_group_by_name(display_name))

    def create(self, display_name: str) -> Group:
        """Create a group; raises `ConflictError` if the name is taken."""
        return self._run(self._api.create_group(display_name))

    def ensure(self, display_name: str) -> Group:
        """The group with this name, created if it does not exist."""
        return self._run(self._api.ensure_group(display_name))

    def delete(self, group_id: GroupLike) -> None:
        """Delete a group."""
        self._run(self._api.delete_group(_group_id(group_id)))

    def members(self, group_id: GroupLike) -> Pager[MemberRef]:
        """The group's direct members, each with its kind."""
        return Pager(self._driver, self._api.group_members(_group_id(group_id)))

    def add_members(self, group_id: GroupLike, principal_ids: Iterable[MemberLike]) -> None:
        """Add principals (ids or models) in one PATCH."""
        self._run(self._api.patch_members(_group_id(group_id), add=_member_ids(principal_ids)))

    def remove_members(self, group_id: GroupLike, principal_ids: Iterable[MemberLike]) -> None:
        """Remove principals (ids or models) in one PATCH."""
        self._run(self._api.patch_members(_group_id(group_id), remove=_member_ids(principal_ids)))

    def roles(self, group_id: GroupLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return self._run(self._api.roles(_GROUP, _group_id(group_id)))

    def add_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        self._run(self._api.add_roles(_GROUP, _group_id(group_id), roles))

    def remove_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        self._run(self._api.remove_roles(_GROUP, _group_id(group_id), roles))


class AsyncGroups:
    """Account groups (`client.groups`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncPager[Group]:
        """Every group, fetched page by page as you iterate (members are not listed)."""
        return AsyncPager(
            self._driver,
            self._api.list_groups(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    async def get(self, group_id: GroupLike) -> Group:
        """One group with its direct members."""
        return await self._run(self._api.get_group(_group_id(group_id)))

    async def find(self, display_name: str) -> Group | None:
        """The group with exactly this display name, or None."""
        return await self._run(self._api.find_group(display_name))

    async def get_by_name(self, display_name: str) -> Group:
        """The group with exactly this display name; raises `NotFoundError` if there is none."""
        return await self._run(self._api.get_group_by_name(display_name))

    async def create(self, display_name: str) -> Group:
        """Create a group; raises `ConflictError` if the name is taken."""
        return await self._run(self._api.create_group(display_name))

    async def ensure(self, display_name: str) -> Group:
        """The group with this name, created if it does not exist."""
        return await self._run(self._api.ensure_group(display_name))

    async def delete(self, group_id: GroupLike) -> None:
        """Delete a group."""
        await self._run(self._api.delete_group(_group_id(group_id)))

    def members(self, group_id: GroupLike) -> AsyncPager[MemberRef]:
        """The group's direct members, each with its kind."""
        return AsyncPager(self._driver, self._api.group_members(_group_id(group_id)))

    async def add_members(self, group_id: GroupLike, principal_ids: Iterable[MemberLike]) -> None:
        """Add principals (ids or models) in one PATCH."""
        await self._run(
            self._api.patch_members(_group_id(group_id), add=_member_ids(principal_ids))
        )

    async def remove_members(
        self, group_id: GroupLike, principal_ids: Iterable[MemberLike]
    ) -> None:
        """Remove principals (ids or models) in one PATCH."""
        await self._run(
            self._api.patch_members(_group_id(group_id), remove=_member_ids(principal_ids))
        )

    async def roles(self, group_id: GroupLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return await self._run(self._api.roles(_GROUP, _group_id(group_id)))

    async def add_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        await self._run(self._api.add_roles(_GROUP, _group_id(group_id), roles))

    async def remove_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        await self._run(self._api.remove_roles(_GROUP, _group_id(group_id), roles))


class Users:
    """Account users (`client.users`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Pager[User]:
        """Every user, fetched page by page."""
        return Pager(
            self._driver,
            self._api.list_users(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    def get(self, user_id: str) -> User:
        """One user by SCIM id."""
        return self._run(self._api.get_user(user_id))

    def find(self, user_name: str) -> User | None:
        """The user with this user name (case-insensitive), or None."""
        return self._run(self._api.find_user(user_name))

    def create(
        self,
        user_name: str,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> User:
        """Create a user; raises `ConflictError` if the user name or an email is taken."""
        return self._run(
            self._api.create_user(
                user_name,
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    def update(
        self,
        user_id: UserLike,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        self._run(
            self._api.update_user(
                _user_id(user_id),
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
            )
        )

    def deactivate(self, user_id: UserLike) -> None:
        """Deactivate a user (`active: false`): it keeps its memberships but cannot sign in."""
        self._run(self._api.deactivate(_USER, _user_id(user_id)))

    def delete(self, user_id: UserLike) -> None:
        """Delete a user."""
        self._run(self._api.delete_user(_user_id(user_id)))

    def roles(self, user_id: UserLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return self._run(self._api.roles(_USER, _user_id(user_id)))

    def add_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        self._run(self._api.add_roles(_USER, _user_id(user_id), roles))

    def remove_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        self._run(self._api.remove_roles(_USER, _user_id(user_id), roles))


class AsyncUsers:
    """Account users (`client.users`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncPager[User]:
        """Every user, fetched page by page."""
        return AsyncPager(
            self._driver,
            self._api.list_users(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    async def get(self, user_id: str) -> User:
        """One user by SCIM id."""
        return await self._run(self._api.get_user(user_id))

    async def find(self, user_name: str) -> User | None:
        """The user with this user name (case-insensitive), or None."""
        return await self._run(self._api.find_user(user_name))

    async def create(
        self,
        user_name: str,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> User:
        """Create a user; raises `ConflictError` if the user name or an email is taken."""
        return await self._run(
            self._api.create_user(
                user_name,
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    async def update(
        self,
        user_id: UserLike,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        await self._run(
            self._api.update_user(
                _user_id(user_id),
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
            )
        )

    async def deactivate(self, user_id: UserLike) -> None:
        """Deactivate a user (`active: false`): it keeps its memberships but cannot sign in."""
        await self._run(self._api.deactivate(_USER, _user_id(user_id)))

    async def delete(self, user_id: UserLike) -> None:
        """Delete a user."""
        await self._run(self._api.delete_user(_user_id(user_id)))

    async def roles(self, user_id: UserLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return await self._run(self._api.roles(_USER, _user_id(user_id)))

    async def add_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        await self._run(self._api.add_roles(_USER, _user_id(user_id), roles))

    async def remove_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        await self._run(self._api.remove_roles(_USER, _user_id(user_id), roles))


class ServicePrincipals:
    """Account service principals (`client.service_principals`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Pager[ServicePrincipal]:
        """Every service principal, fetched page by page."""
        return Pager(
            self._driver,
            self._api.list_service_principals(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    def get(self, service_principal_id: str) -> ServicePrincipal:
        """One service principal by SCIM id."""
        return self._run(self._api.get_service_principal(service_principal_id))

    def find(self, application_id: str) -> ServicePrincipal | None:
        """The service principal with this application id, or None."""
        return self._run(self._api.find_service_principal(application_id))

    def create(
        self,
        display_name: str,
        *,
        application_id: str | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> ServicePrincipal:
        """Create a service principal (Databricks draws the application id unless given).

        Its OAuth secrets are made separately, in the account console or the API.
        """
        return self._run(
            self._api.create_service_principal(
                display_name,
                application_id=application_id,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    def update(
        self,
        service_principal_id: ServicePrincipalLike,
        *,
        display_name: str | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        self._run(
            self._api.update_service_principal(
                _sp_id(service_principal_id),
                display_name=display_name,
                active=active,
                external_id=external_id,
            )
        )

    def deactivate(self, service_principal_id: ServicePrincipalLike) -> None:
        """Deactivate a service principal (`active: false`): it can get no more tokens."""
        self._run(self._api.deactivate(_SP, _sp_id(service_principal_id)))

    def delete(self, service_principal_id: ServicePrincipalLike) -> None:
        """Delete a service principal."""
        self._run(self._api.delete_service_principal(_sp_id(service_principal_id)))

    def roles(self, service_principal_id: ServicePrincipalLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return self._run(self._api.roles(_SP, _sp_id(service_principal_id)))

    def add_roles(self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        self._run(self._api.add_roles(_SP, _sp_id(service_principal_id), roles))

    def remove_roles(
        self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]
    ) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        self._run(self._api.remove_roles(_SP, _sp_id(service_principal_id), roles))


class AsyncServicePrincipals:
    """Account service principals (`client.service_principals`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncPager[ServicePrincipal]:
        """Every service principal, fetched page by page."""
        return AsyncPager(
            self._driver,
            self._api.list_service_principals(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    async def get(self, service_principal_id: str) -> ServicePrincipal:
        """One service principal by SCIM id."""
        return await self._run(self._api.get_service_principal(service_principal_id))

    async def find(self, application_id: str) -> ServicePrincipal | None:
        """The service principal with this application id, or None."""
        return await self._run(self._api.find_service_principal(application_id))

    async def create(
        self,
        display_name: str,
        *,
        application_id: str | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> ServicePrincipal:
        """Create a service principal (Databricks draws the application id unless given).

        Its OAuth secrets are made separately, in the account console or the API.
        """
        return await self._run(
            self._api.create_service_principal(
                display_name,
                application_id=application_id,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    async def update(
        self,
        service_principal_id: ServicePrincipalLike,
        *,
        display_name: str | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        await self._run(
            self._api.update_service_principal(
                _sp_id(service_principal_id),
                display_name=display_name,
                active=active,
                external_id=external_id,
            )
        )

    async def deactivate(self, service_principal_id: ServicePrincipalLike) -> None:
        """Deactivate a service principal (`active: false`): it can get no more tokens."""
        await self._run(self._api.deactivate(_SP, _sp_id(service_principal_id)))

    async def delete(self, service_principal_id: ServicePrincipalLike) -> None:
        """Delete a service principal."""
        await self._run(self._api.delete_service_principal(_sp_id(service_principal_id)))

    async def roles(self, service_principal_id: ServicePrincipalLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return await self._run(self._api.roles(_SP, _sp_id(service_principal_id)))

    async def add_roles(
        self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]
    ) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        await self._run(self._api.add_roles(_SP, _sp_id(service_principal_id), roles))

    async def remove_roles(
        self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]
    ) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        await self._run(self._api.remove_roles(_SP, _sp_id(service_principal_id), roles))


class GroupManagers:
    """Who manages each group, through account rule sets (`client.group_managers`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def get(self, group_id: GroupLike) -> RuleSet:
        """The group's rule set; managers hold `roles/group.manager`."""
        return self._run(self._api.get_rule_set(_group_id(group_id)))

    def set(self, group_id: GroupLike, principals: Iterable[ManagerLike]) -> RuleSet:
        """Make exactly `principals` the managers (etag-safe; other roles kept)."""
        names = [rule_set_principal(p) for p in principals]
        return self._run(self._api.set_group_managers(_group_id(group_id), names))


class AsyncGroupManagers:
    """Who manages each group, through account rule sets, async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    async def get(self, group_id: GroupLike) -> RuleSet:
        """The group's rule set; managers hold `roles/group.manager`."""
        return await self._run(self._api.get_rule_set(_group_id(group_id)))

    async def set(self, group_id: GroupLike, principals: Iterable[ManagerLike]) -> RuleSet:
        """Make exactly `principals` the managers (etag-safe; other roles kept)."""
        names = [rule_set_principal(p) for p in principals]
        return await self._run(self._api.set_group_managers(_group_id(group_id), names))


class ServicePrincipalAccess:
    """Who may use or manage each service principal, through its rule set.

    `roles/servicePrincipal.user` lets a principal act as the service principal;
    `roles/servicePrincipal.manager` lets it manage it (`client.service_principal_access`).
    """

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def get(self, service_principal: ServicePrincipalLike) -> RuleSet:
        """The rule set of a service principal (a model, or its application id)."""
        return self._run(
            self._api.get_service_principal_rule_set(_application_id(service_principal))
        )

    def set(
        self,
        service_principal: ServicePrincipalLike,
        *,
        users: Iterable[ManagerLike] | None = None,
        managers: Iterable[ManagerLike] | None = None,
    ) -> RuleSet:
        """Make exactly these its users and/or managers; etag-safe.

        A role left None keeps its holders, and every other role is kept.
        """
        return self._run(
            self._api.set_service_principal_access(
                _application_id(service_principal),
                users=None if users is None else [rule_set_principal(p) for p in users],
                managers=None if managers is None else [rule_set_principal(p) for p in managers],
            )
        )


class AsyncServicePrincipalAccess:
    """Who may use or manage each service principal, through its rule set, async.

    `roles/servicePrincipal.user` lets a principal act as the service principal;
    `roles/servicePrincipal.manager` lets it manage it (`client.service_principal_access`).
    """

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    async def get(self, service_principal: ServicePrincipalLike) -> RuleSet:
        """The rule set of a service principal (a model, or its application id)."""
        return await self._run(
            self._api.get_service_principal_rule_set(_application_id(service_principal))
        )

    async def set(
        self,
        service_principal: ServicePrincipalLike,
        *,
        users: Iterable[ManagerLike] | None = None,
        managers: Iterable[ManagerLike] | None = None,
    ) -> RuleSet:
        """Make exactly these its users and/or managers; etag-safe.

        A role left None keeps its holders, and every other role is kept.
        """
        return await self._run(
            self._api.set_service_principal_access(
                _application_id(service_principal),
                users=None if users is None else [rule_set_principal(p) for p in users],
                managers=None if managers is None else [rule_set_principal(p) for p in managers],
            )
        )


class ServicePrincipalSecrets:
    """The OAuth secrets of service principals (`client.service_principal_secrets`).

    A service principal holds at most five; rotate by creating the new one, moving the
    connector to it, then deleting the old one.
    """

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def create(
        self,
        service_principal: ServicePrincipalLike,
        lifetime: dt.timedelta | float | None = None,
    ) -> ServicePrincipalSecret:
        """A new secret (default lifetime: 730 days); its `secret` value is shown only here.

        Never retried blindly: a retried create could leave a second secret behind.
        """
        return self._run(self._api.create_secret(_sp_id(service_principal), lifetime))

    def list(self, service_principal: ServicePrincipalLike) -> Pager[ServicePrincipalSecret]:
        """Its secrets, without their values, following every page token."""
        return Pager(self._driver, self._api.list_secrets(_sp_id(service_principal)))

    def delete(self, service_principal: ServicePrincipalLike, secret_id: str) -> None:
        """Delete one secret (tokens already issued with it live on until they expire)."""
        self._run(self._api.delete_secret(_sp_id(service_principal), secret_id))


class AsyncServicePrincipalSecrets:
    """The OAuth secrets of service principals (`client.service_principal_secrets`), async.

    A service principal holds at most five; rotate by creating the new one, moving the
    connector to it, then deleting the old one.
    """

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    async def create(
        self,
        service_principal: ServicePrincipalLike,
        lifetime: dt.timedelta | float | None = None,
    ) -> ServicePrincipalSecret:
        """A new secret (default lifetime: 730 days); its `secret` value is shown only here.

        Never retried blindly: a retried create could leave a second secret behind.
        """
        return await self._run(self._api.create_secret(_sp_id(service_principal), lifetime))

    def list(self, service_principal: ServicePrincipalLike) -> AsyncPager[ServicePrincipalSecret]:
        """Its secrets, without their values, following every page token."""
        return AsyncPager(self._driver, self._api.list_secrets(_sp_id(service_principal)))

    async def delete(self, service_principal: ServicePrincipalLike, secret_id: str) -> None:
        """Delete one secret (tokens already issued with it live on until they expire)."""
        await self._run(self._api.delete_secret(_sp_id(service_principal), secret_id))


class Workspaces:
    """The account's workspaces (`client.workspaces`)."""

    def __init__(self, client: AccountClient) -> None:
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(self) -> Pager[Workspace]:
        """Every workspace."""
        return Pager(self._driver, self._api.list_workspaces())


class AsyncWorkspaces:
    """The account's workspaces (`client.workspaces`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(self) -> AsyncPager[Workspace]:
        """Every workspace."""
        return AsyncPager(self._driver, self._api.list_workspaces())


class WorkspaceAssignments:
    """Workspace permission assignments (`client.workspace_assignments`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(self, workspace_id: int | str) -> Pager[PermissionAssignment]:
        """Every assignment of a workspace, following every page token."""
        return Pager(self._driver, self._api.list_assignments(workspace_id))

    def get(self, workspace_id: int | str) -> tuple[WorkspacePermission, ...]:
        """The permissions the workspace offers (`USER`, `ADMIN`), described."""
        return self._run(self._api.workspace_permissions(workspace_id))

    def set(
        self,
        workspace_id: int | str,
        principal: MemberLike,
        permissions: Sequence[str] = ("USER",),
    ) -> PermissionAssignment:
        """Assign a principal (id or model) to the workspace with exactly `permissions`."""
        return self._run(
            self._api.set_assignment(workspace_id, _principal_id(principal), permissions)
        )

    def remove(self, workspace_id: int | str, principal: MemberLike) -> None:
        """Take a principal's workspace assignment away."""
        self._run(self._api.remove_assignment(workspace_id, _principal_id(principal)))


class AsyncWorkspaceAssignments:
    """Workspace permission assignments (`client.workspace_assignments`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run  # noqa: SLF001
        self._driver = client._driver  # noqa: SLF001
        self._api = client._api  # noqa: SLF001

    def list(self, workspace_id: int | str) -> AsyncPager[PermissionAssignment]:
        """Every assignment of a workspace, following every page token."""
        return AsyncPager(self._driver, self._api.list_assignments(workspace_id))

    async def get(self, workspace_id: int | str) -> tuple[WorkspacePermission, ...]:
        """The permissions the workspace offers (`USER`, `ADMIN`), described."""
        return await self._run(self._api.workspace_permissions(workspace_id))

    async def set(
        self,
        workspace_id: int | str,
        principal: MemberLike,
        permissions: Sequence[str] = ("USER",),
    ) -> PermissionAssignment:
        """Assign a principal (id or model) to the workspace with exactly `permissions`."""
        return await self._run(
            self._api.set_assignment(workspace_id, _principal_id(principal), permissions)
        )

    async def remove(self, workspace_id: int | str, principal: MemberLike) -> None:
        """Take a principal's workspace assignment away."""
        await self._run(self._api.remove_assignment(workspace_id, _principal_id(principal)))
