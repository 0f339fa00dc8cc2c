"""`WorkspaceClient` and `AsyncWorkspaceClient`: one workspace's Unity Catalog read API.

A workspace has its own host and its own token endpoint (`{host}/oidc/v1/token`), where
the account's service principal authenticates with the same client credentials (OAuth
M2M). Everything else is the account client's: the secret store, `OAuthM2M` (one token
request per token lifetime), the retry policy, the drivers and their error mapping, and
client-side rate limits (one set of buckets per workspace host). Built from an account
client (`WorkspaceClient.for_workspace(account, workspace)`), it also shares the
account client's HTTP connections (and so its transport: the emulator's, in tests).
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import attrs
import httpx
from typing_extensions import Self

from databricks_access._about import __version__
from databricks_access._account.auth import OAuthM2M
from databricks_access._account.client import FROM_CONFIG, LimitsArg
from databricks_access._account.config import AccountConfig
from databricks_access._account.drivers import (
    AsyncDriver,
    AsyncPager,
    Pager,
    SyncDriver,
    new_async_http,
    new_sync_http,
)
from databricks_access._account.flows import Flow
from databricks_access._account.models import Workspace
from databricks_access._account.retry import RetryPolicy
from databricks_access._account.throttle import RateLimits, shared_throttle
from databricks_access._catalog.api import UnityCatalogApi
from databricks_access._catalog.errors import WorkspaceNotAssignedError, not_assigned
from databricks_access._catalog.hosts import HostMap, WorkspaceHosts, check_workspace_host
from databricks_access._catalog.models import (
    CatalogInfo,
    MetastoreAssignment,
    MetastoreSummary,
    PrivilegeAssignment,
    SchemaInfo,
    SecurableType,
    TableInfo,
)
from databricks_access._clock import Clock, SystemClock
from databricks_access._errors import ApiError, ConfigError, DatabricksAccessError
from databricks_access._secrets.base import EnvSecretStore, SecretStore

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = ["AsyncWorkspaceClient", "WorkspaceClient", "workspace_token_url"]

logger = logging.getLogger("databricks_access")

T = TypeVar("T")

_USER_AGENT = (
    f"databricks-access/{__version__} python/{sys.version_info.major}.{sys.version_info.minor}"
)


def workspace_token_url(host: str) -> str:
    """The workspace's OAuth token endpoint: `{host}/oidc/v1/token`."""
    return f"{host}/oidc/v1/token"


class _Setup:
    """What both workspace clients build the same way (no I/O)."""

    def __init__(
        self,
        config: AccountConfig,
        host: str,
        *,
        workspace_id: int | None,
        secrets: SecretStore | None,
        auth: httpx.Auth | None,
        rate_limits: LimitsArg,
        retry: RetryPolicy | None,
        clock: Clock | None,
        page_size: int,
    ) -> None:
        if not isinstance(config, AccountConfig):
            raise ConfigError("must be a databricks_access.AccountConfig", "config")
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise ConfigError("must be an integer", "page_size")
        # The workspace host under the account's host rules (and allow flags); its token
        # endpoint is explicit, so no discovery document is read from it.
        base, problems = check_workspace_host(host, config)
        if base is None:
            raise ConfigError(problems)
        origin = urlsplit(base)
        self.config = attrs.evolve(
            config,
            host=f"{origin.scheme}://{origin.netloc}",
            token_endpoint=workspace_token_url(base),
        )
        self.host = base
        self.workspace_id = workspace_id
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy(
            max_attempts=config.max_attempts, deadline=config.deadline
        )
        if auth is None:
            auth = OAuthM2M(
                self.config, secrets or EnvSecretStore(), clock=self.clock, retry=self.retry
            )
        self.auth = auth
        limits = config.rate_limits if rate_limits is FROM_CONFIG else rate_limits
        if limits is not None and not isinstance(limits, RateLimits):
            raise ConfigError("must be a databricks_access.RateLimits or None", "rate_limits")
        # Limits count per workspace: one set of buckets per workspace host.
        self.throttle = shared_throttle(
            limits, host=self.host, account_id=config.account_id, clock=self.clock
        )
        self.api = UnityCatalogApi(page_size=page_size)
        self.timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        self.verify = not config.insecure_skip_tls_verify

    def driver_args(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "auth": self.auth,
            "retry": self.retry,
            "throttle": self.throttle,
            "clock": self.clock,
            "user_agent": _USER_AGENT,
        }

    def translate(self, error: DatabricksAccessError) -> DatabricksAccessError:
        """A refusal of the workspace itself becomes `WorkspaceNotAssignedError`."""
        if (
            isinstance(error, ApiError)
            and not isinstance(error, WorkspaceNotAssignedError)
            and not_assigned(error)
        ):
            return WorkspaceNotAssignedError.from_error(
                error, host=self.host, workspace_id=self.workspace_id
            )
        return error


def _account_secrets(auth: httpx.Auth, secrets: SecretStore | None) -> SecretStore:
    if secrets is not None:
        return secrets
    if isinstance(auth, OAuthM2M):
        return auth.secrets
    raise ConfigError(
        "the account client does not authenticate with OAuth M2M: pass the secret store",
        "secrets",
    )


def _workspace_of(workspaces: list[Workspace], workspace: Workspace | int) -> Workspace:
    if isinstance(workspace, Workspace):
        return workspace
    found = next((w for w in workspaces if w.workspace_id == workspace), None)
    if found is None:
        raise ConfigError(f"no workspace {workspace} in the account", "workspace")
    return found


def _host_of(
    config: AccountConfig,
    workspace: Workspace,
    host: str | None,
    hosts: WorkspaceHosts | HostMap | None,
) -> str:
    if host is not None:
        return host
    table = hosts if isinstance(hosts, WorkspaceHosts) else WorkspaceHosts(config, hosts)
    found = table.host_for(workspace)
    if found is None:
        raise ConfigError(
            f"the host of workspace {workspace.workspace_id} cannot be derived "
            f"(cloud {config.cloud.value}, deployment name {workspace.deployment_name!r}): "
            "configure it (workspace_hosts={id: 'https://...'})",
            "workspace_hosts",
        )
    return found


class WorkspaceClient:
    """One workspace's Unity Catalog read API, synchronous.

    Example::

        with da.AccountClient(cfg, secrets=secrets) as account:
            ws = da.WorkspaceClient.for_workspace(account, workspace_id)
            for catalog in ws.catalogs():
                print(catalog.name, ws.grants(da.SecurableType.CATALOG, catalog.name))

    Args:
        config: The account whose service principal authenticates (its host rules,
            timeouts, retry and rate-limit settings apply).
        host: The workspace host, e.g. `https://dbc-1a2b3c4d-5e6f.cloud.databricks.com`.
        workspace_id: The workspace's id, named in errors.
        secrets: The secret store (default `EnvSecretStore()`); ignored when `auth` is given.
        auth: Any `httpx.Auth` instead of OAuth M2M at `{host}/oidc/v1/token`.
        transport: An httpx transport (the emulator's).
        http_client: An `httpx.Client` to share; it is not closed by this client.
        rate_limits: Client-side limits for this workspace host (default: the config's).
        retry: The retry policy.
        clock: Time and sleep, injectable for tests.
        page_size: `max_results` for listings; 0 lets the server choose.
    """

    def __init__(
        self,
        config: AccountConfig,
        host: str,
        *,
        workspace_id: int | None = None,
        secrets: SecretStore | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        rate_limits: LimitsArg = FROM_CONFIG,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        page_size: int = 0,
    ) -> None:
        self._setup = setup = _Setup(
            config,
            host,
            workspace_id=workspace_id,
            secrets=secrets,
            auth=auth,
            rate_limits=rate_limits,
            retry=retry,
            clock=clock,
            page_size=page_size,
        )
        self.host = setup.host
        self.workspace_id = workspace_id
        self.auth = setup.auth
        self._owns_http = http_client is None
        http = http_client or new_sync_http(transport, setup.timeout, verify=setup.verify)
        self._driver = SyncDriver(http, **setup.driver_args())
        self._api = setup.api

    @classmethod
    def for_workspace(
        cls,
        account: AccountClient,
        workspace: Workspace | int,
        *,
        host: str | None = None,
        hosts: WorkspaceHosts | HostMap | None = None,
        secrets: SecretStore | None = None,
        rate_limits: LimitsArg = FROM_CONFIG,
        page_size: int = 0,
    ) -> WorkspaceClient:
        """A client for one of the account's workspaces, on the account client's credentials.

        The host is `host`, else from `hosts` (configured), else derived from the
        workspace's deployment name (the workspace list is read when only an id is given
        and no host). It shares the account client's secret store, retry policy, clock
        and HTTP connections.
        """
        if host is None and not isinstance(workspace, Workspace):
            table = (
                hosts
                if isinstance(hosts, WorkspaceHosts)
                else WorkspaceHosts(account.config, hosts)
            )
            host = table.configured.get(workspace)
            if host is None:
                workspace = _workspace_of(list(account.workspaces.list()), workspace)
        ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace_id=workspace)
        return cls(
            account.config,
            _host_of(account.config, ws, host, hosts),
            workspace_id=ws.workspace_id,
            secrets=_account_secrets(account.auth, secrets),
            http_client=account._driver.http,  # same process, same pool
            rate_limits=rate_limits,
            retry=account._driver._retry,
            clock=account.clock,
            page_size=page_size,
        )

    @property
    def requests_sent(self) -> int:
        """API requests sent so far, retries included, token requests excluded."""
        return self._driver.requests_sent

    def run(self, flow: Flow[T]) -> T:
        """Run a Unity Catalog flow on this workspace (a refusal becomes a typed error)."""
        try:
            return self._driver.run(flow)
        except DatabricksAccessError as exc:
            translated = self._setup.translate(exc)
            if translated is exc:
                raise
            raise translated from None

    def metastore_assignment(self) -> MetastoreAssignment:
        """The metastore assigned to this workspace."""
        return self.run(self._api.metastore_assignment())

    def metastore_summary(self) -> MetastoreSummary:
        """This workspace's metastore: id, name, cloud, region, owner."""
        return self.run(self._api.metastore_summary())

    def catalogs(self) -> Pager[CatalogInfo]:
        """The catalogs, paged by `page_token` as you iterate."""
        return Pager(self._driver, self._api.catalogs)

    def schemas(self, catalog_name: str) -> Pager[SchemaInfo]:
        """The schemas of a catalog, paged as you iterate."""
        return Pager(self._driver, lambda: self._api.schemas(catalog_name))

    def tables(self, catalog_name: str, schema_name: str) -> Pager[TableInfo]:
        """The tables of a schema, paged as you iterate."""
        return Pager(self._driver, lambda: self._api.tables(catalog_name, schema_name))

    def grants(self, securable_type: SecurableType, full_name: str) -> list[PrivilegeAssignment]:
        """The direct grants on one securable (`metastore` takes the metastore id)."""
        return self.run(self._api.grants(SecurableType(securable_type), full_name))

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
        return f"WorkspaceClient(host={self.host!r}, workspace_id={self.workspace_id!r})"


class AsyncWorkspaceClient:
    """One workspace's Unity Catalog read API, on asyncio: `WorkspaceClient`'s methods, awaited.

    Listings return an `AsyncPager` (`async for catalog in ws.catalogs(): ...`).
    """

    def __init__(
        self,
        config: AccountConfig,
        host: str,
        *,
        workspace_id: int | None = None,
        secrets: SecretStore | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        rate_limits: LimitsArg = FROM_CONFIG,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        page_size: int = 0,
    ) -> None:
        self._setup = setup = _Setup(
            config,
            host,
            workspace_id=workspace_id,
            secrets=secrets,
            auth=auth,
            rate_limits=rate_limits,
            retry=retry,
            clock=clock,
            page_size=page_size,
        )
        self.host = setup.host
        self.workspace_id = workspace_id
        self.auth = setup.auth
        self._transport = transport
        self._driver = AsyncDriver(http_client or self._new_http, **setup.driver_args())
        self._api = setup.api

    def _new_http(self) -> httpx.AsyncClient:
        return new_async_http(self._transport, self._setup.timeout, verify=self._setup.verify)

    @classmethod
    async def for_workspace(
        cls,
        account: AsyncAccountClient,
        workspace: Workspace | int,
        *,
        host: str | None = None,
        hosts: WorkspaceHosts | HostMap | None = None,
        secrets: SecretStore | None = None,
        rate_limits: LimitsArg = FROM_CONFIG,
        page_size: int = 0,
    ) -> AsyncWorkspaceClient:
        """The async twin of `WorkspaceClient.for_workspace` (its transport is shared)."""
        if host is None and not isinstance(workspace, Workspace):
            table = (
                hosts
                if isinstance(hosts, WorkspaceHosts)
                else WorkspaceHosts(account.config, hosts)
            )
            host = table.configured.get(workspace)
            if host is None:
                listed = await account.workspaces.list().collect()
                workspace = _workspace_of(listed, workspace)
        ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace_id=workspace)
        return cls(
            account.config,
            _host_of(account.config, ws, host, hosts),
            workspace_id=ws.workspace_id,
            secrets=_account_secrets(account.auth, secrets),
            transport=account._transport,  # the same transport, its own pool
            http_client=account._driver._fixed,  # a client passed in: shared
            rate_limits=rate_limits,
            retry=account._driver._retry,
            clock=account.clock,
            page_size=page_size,
        )

    @property
    def requests_sent(self) -> int:
        """API requests sent so far, retries included, token requests excluded."""
        return self._driver.requests_sent

    async def run(self, flow: Flow[T]) -> T:
        """Run a Unity Catalog flow on this workspace (a refusal becomes a typed error)."""
        try:
            return await self._driver.run(flow)
        except DatabricksAccessError as exc:
            translated = self._setup.translate(exc)
            if translated is exc:
                raise
            raise translated from None

    async def metastore_assignment(self) -> MetastoreAssignment:
        """The metastore assigned to this workspace."""
        return await self.run(self._api.metastore_assignment())

    async def metastore_summary(self) -> MetastoreSummary:
        """This workspace's metastore: id, name, cloud, region, owner."""
        return await self.run(self._api.metastore_summary())

    def catalogs(self) -> AsyncPager[CatalogInfo]:
        """The catalogs, paged by `page_token` as you iterate."""
        return AsyncPager(self._driver, self._api.catalogs)

    def schemas(self, catalog_name: str) -> AsyncPager[SchemaInfo]:
        """The schemas of a catalog, paged as you iterate."""
        return AsyncPager(self._driver, lambda: self._api.schemas(catalog_name))

    def tables(self, catalog_name: str, schema_name: str) -> AsyncPager[TableInfo]:
        """The tables of a schema, paged as you iterate."""
        return AsyncPager(self._driver, lambda: self._api.tables(catalog_name, schema_name))

    async def grants(
        self, securable_type: SecurableType, full_name: str
    ) -> list[PrivilegeAssignment]:
        """The direct grants on one securable (`metastore` takes the metastore id)."""
        return await self.run(self._api.grants(SecurableType(securable_type), full_name))

    async def close(self) -> None:
        """Close the HTTP connections this client made."""
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
        return f"AsyncWorkspaceClient(host={self.host!r}, workspace_id={self.workspace_id!r})"
