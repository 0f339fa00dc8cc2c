"""`AccountClient` and `AsyncAccountClient`: the account API, sync and async.

Both run the same flows from `api`; each service (`services`, `principals`) is a set of
one-line methods over them. The sync client sits on `httpx.Client` (never on
`asyncio.run`), so it works inside a running Jupyter kernel; the async client sits on
`httpx.AsyncClient`.
"""

from __future__ import annotations

import enum
import logging
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import Self

from databricks_access._about import __version__
from databricks_access._account.throttle import RateLimits, shared_throttle
from databricks_access._errors import ConfigError

if TYPE_CHECKING:
    # Touching the class loads none of these: httpx, asyncio (the clock), the drivers,
    # the models and the services load when a client is built, so
    # `import databricks_access; databricks_access.AccountClient` stays cheap
    # (tests/project/test_packaging.py checks what it loads).
    import httpx

    from databricks_access._account.api import Principal
    from databricks_access._account.config import AccountConfig
    from databricks_access._account.drivers import AsyncDriver, SyncDriver
    from databricks_access._account.models import PrincipalRef
    from databricks_access._account.retry import RetryPolicy
    from databricks_access._clock import Clock
    from databricks_access._secrets.base import SecretStore

__all__ = ["AccountClient", "AsyncAccountClient"]


class _Default(enum.Enum):
    FROM_CONFIG = "from config"


FROM_CONFIG = _Default.FROM_CONFIG
"""The default of `rate_limits`: the config's `rate_limits` (the published figures)."""
LimitsArg = RateLimits | None | Literal[_Default.FROM_CONFIG]

logger = logging.getLogger("databricks_access")

_USER_AGENT = (
    f"databricks-access/{__version__} python/{sys.version_info.major}.{sys.version_info.minor}"
)


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
        # Imported here, not above: see the TYPE_CHECKING block.
        import httpx  # noqa: PLC0415

        from databricks_access._account.api import AccountApi  # noqa: PLC0415
        from databricks_access._account.auth import OAuthM2M  # noqa: PLC0415
        from databricks_access._account.config import AccountConfig  # noqa: PLC0415
        from databricks_access._account.retry import RetryPolicy  # noqa: PLC0415
        from databricks_access._clock import SystemClock  # noqa: PLC0415
        from databricks_access._secrets.base import EnvSecretStore  # noqa: PLC0415

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
        from databricks_access._account.drivers import SyncDriver, new_sync_http  # noqa: PLC0415
        from databricks_access._account.principals import (  # noqa: PLC0415
            ServicePrincipalAccess,
            ServicePrincipals,
            ServicePrincipalSecrets,
            Users,
        )
        from databricks_access._account.services import (  # noqa: PLC0415
            GroupManagers,
            Groups,
            WorkspaceAssignments,
            Workspaces,
        )

        http = http_client or new_sync_http(transport, setup.timeout, verify=setup.verify)
        self._driver: SyncDriver = SyncDriver(http, **setup.driver_args())
        self._api = setup.api
        self.rate_limits: RateLimits | None = (
            None if setup.throttle is None else setup.throttle.limits
        )
        """The limits this client throttles its requests at; None when it does not."""
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
        from databricks_access._account.drivers import AsyncDriver  # noqa: PLC0415
        from databricks_access._account.principals import (  # noqa: PLC0415
            AsyncServicePrincipalAccess,
            AsyncServicePrincipals,
            AsyncServicePrincipalSecrets,
            AsyncUsers,
        )
        from databricks_access._account.services import (  # noqa: PLC0415
            AsyncGroupManagers,
            AsyncGroups,
            AsyncWorkspaceAssignments,
            AsyncWorkspaces,
        )

        self._driver: AsyncDriver = AsyncDriver(
            http_client or self._new_http, **setup.driver_args()
        )
        self._api = setup.api
        self.rate_limits: RateLimits | None = (
            None if setup.throttle is None else setup.throttle.limits
        )
        """The limits this client throttles its requests at; None when it does not."""
        self.groups = AsyncGroups(self)
        self.users = AsyncUsers(self)
        self.service_principals = AsyncServicePrincipals(self)
        self.group_managers = AsyncGroupManagers(self)
        self.service_principal_access = AsyncServicePrincipalAccess(self)
        self.service_principal_secrets = AsyncServicePrincipalSecrets(self)
        self.workspaces = AsyncWorkspaces(self)
        self.workspace_assignments = AsyncWorkspaceAssignments(self)

    def _new_http(self) -> httpx.AsyncClient:
        from databricks_access._account.drivers import new_async_http  # noqa: PLC0415

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
