"""`CatalogReader` and `AsyncCatalogReader`: read Unity Catalog across the account, then answer.

A read is three steps, each bounded:

1. the account directory (`discover_flow` without managers: groups with members, users,
   service principals, workspaces) on the account client;
2. each workspace's metastore assignment, one request per workspace, all at once;
3. each metastore's walk (`metastore_flow`), once per metastore, through the first
   workspace attached to it, at most `concurrency` requests in flight per workspace.

Workspaces that cannot be read (no host, not assigned: 403, no metastore: 404) are
recorded in the snapshot's errors; the other workspaces are read. The answer of a read
is kept for `max_age` seconds, so an approver's screen and a CLI run ask once.
Only the orchestration of those steps exists twice (threads here, tasks there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import attrs

from databricks_access._account.client import FROM_CONFIG, LimitsArg
from databricks_access._account.models import Group, Workspace
from databricks_access._catalog.access import AccessIndex, PrincipalLike
from databricks_access._catalog.errors import WorkspaceNotAssignedError
from databricks_access._catalog.hosts import HostMap, WorkspaceHosts
from databricks_access._catalog.models import MetastoreAssignment
from databricks_access._catalog.reports import AccessExplanation, UnlocksReport
from databricks_access._catalog.snapshot import (
    CatalogGrant,
    CatalogSnapshot,
    Metastore,
    MetastorePart,
    Securable,
    metastore_flow,
)
from databricks_access._catalog.workspace import AsyncWorkspaceClient, WorkspaceClient
from databricks_access._discovery.discovery import DiscoveryOptions, discover_flow
from databricks_access._discovery.inventory import DiscoveryFailure, Inventory
from databricks_access._errors import ConfigError, DatabricksAccessError, NotFoundError

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._secrets.base import SecretStore

__all__ = ["AsyncCatalogReader", "CatalogOptions", "CatalogReader", "CatalogView"]

T = TypeVar("T")
_MAX_CONCURRENCY = 64
_READABLE = {None, "", "RUNNING"}


def _concurrency(_instance: object, _attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, not {type(value).__name__}", "concurrency")
    if not 1 <= value <= _MAX_CONCURRENCY:
        raise ConfigError(f"must be from 1 to {_MAX_CONCURRENCY}, got {value}", "concurrency")


def _flag(_instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"must be True or False, not {value!r}", attribute.name)


def _max_age(_instance: object, _attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError("must be a number of seconds, 0 or more", "max_age")


@attrs.frozen(kw_only=True)
class CatalogOptions:
    """What a catalog read covers and how hard it pushes.

    Attributes:
        include_tables: Read tables and their grants too (one listing per schema, one
            grants read per table): off by default, as tables outnumber schemas.
        concurrency: The most requests in flight per workspace (1 to 64).
        max_age: Seconds a read answers questions before the next question reads again.
        page_size: `max_results` of listings; 0 lets the server choose.
    """

    include_tables: bool = attrs.field(default=False, validator=_flag)
    concurrency: int = attrs.field(default=8, validator=_concurrency)
    max_age: float = attrs.field(default=300.0, validator=_max_age)
    page_size: int = 0


@attrs.frozen(kw_only=True, repr=False)
class CatalogView:
    """A read: the account directory and the catalog snapshot, and the questions on them.

    Attributes:
        inventory: The account's groups (with members), users, service principals and
            workspaces.
        snapshot: Unity Catalog's securables and grants.
    """

    inventory: Inventory
    snapshot: CatalogSnapshot
    _index: AccessIndex | None = attrs.field(init=False, default=None, eq=False)

    @property
    def index(self) -> AccessIndex:
        """The names and grants indexed for questions, built on the first one."""
        if self._index is None:
            object.__setattr__(self, "_index", AccessIndex(self.inventory, self.snapshot))
        assert self._index is not None  # noqa: S101 - set just above
        return self._index

    def unlocks(self, group: Group | str) -> UnlocksReport:
        """What membership of `group` (a `Group`, an id or a display name) unlocks."""
        return self.index.unlocks(group)

    def explain_access(self, principal: PrincipalLike) -> AccessExplanation:
        """Every privilege `principal` holds and the group chain behind each."""
        return self.index.explain_access(principal)

    def __repr__(self) -> str:
        return f"CatalogView({self.inventory!r}, {self.snapshot!r})"


@attrs.frozen
class _Plan:
    """Which workspaces to ask for their metastore, and what failed before asking."""

    hosts: dict[int, str]
    failures: list[DiscoveryFailure]


def _plan(workspaces: Sequence[Workspace], hosts: WorkspaceHosts) -> _Plan:
    found: dict[int, str] = {}
    failures: list[DiscoveryFailure] = []
    for workspace in workspaces:
        wid = workspace.workspace_id
        if workspace.workspace_status not in _READABLE:
            failures.append(
                DiscoveryFailure(
                    stage="workspace",
                    item=str(wid),
                    message=f"workspace status is {workspace.workspace_status}",
                )
            )
            continue
        host = hosts.host_for(workspace)
        if host is None:
            failures.append(
                DiscoveryFailure(
                    stage="workspace_host",
                    item=str(wid),
                    message=(
                        "the workspace host cannot be derived here: configure it "
                        f"(workspace_hosts={{{wid}: 'https://...'}})"
                    ),
                )
            )
            continue
        found[wid] = host
    return _Plan(found, failures)


def _metastores(
    outcomes: Mapping[int, MetastoreAssignment | DatabricksAccessError],
    failures: list[DiscoveryFailure],
) -> dict[str, list[int]]:
    """Metastore id to its workspaces, in workspace order; failures recorded."""
    by_metastore: dict[str, list[int]] = {}
    for wid, outcome in outcomes.items():
        if isinstance(outcome, NotFoundError):
            failures.append(DiscoveryFailure.from_error("metastore_assignment", str(wid), outcome))
        elif isinstance(outcome, DatabricksAccessError):
            stage = (
                "workspace_access"
                if isinstance(outcome, WorkspaceNotAssignedError)
                else "metastore_assignment"
            )
            failures.append(DiscoveryFailure.from_error(stage, str(wid), outcome))
        else:
            by_metastore.setdefault(outcome.metastore_id, []).append(wid)
    return by_metastore


def _snapshot(
    generated_at: dt.datetime,
    parts: Sequence[MetastorePart | DatabricksAccessError],
    metastore_ids: Sequence[str],
    failures: list[DiscoveryFailure],
    include_tables: bool,
) -> CatalogSnapshot:
    metastores: list[Metastore] = []
    securables: list[Securable] = []
    grants: list[CatalogGrant] = []
    for metastore_id, part in zip(metastore_ids, parts, strict=True):
        if isinstance(part, DatabricksAccessError):
            failures.append(DiscoveryFailure.from_error("metastore", metastore_id, part))
            continue
        metastores.append(part.metastore)
        securables += part.securables
        grants += part.grants
        failures += part.errors
    return CatalogSnapshot(
        generated_at=generated_at,
        metastores=tuple(metastores),
        securables=tuple(securables),
        grants=tuple(grants),
        include_tables=include_tables,
        errors=tuple(failures),
    )


_DIRECTORY = DiscoveryOptions(managers=False)


class _Cache:
    def __init__(self) -> None:
        self.view: CatalogView | None = None
        self.read_at = 0.0


class CatalogReader:
    """Unity Catalog across the account's workspaces, read once, for `unlocks` and `explain_access`.

    Example::

        with da.AccountClient(cfg, secrets=secrets) as account:
            reader = da.CatalogReader(account, workspace_hosts={1234: "https://adb-1234.5.azuredatabricks.net"})
            print(reader.unlocks("data-readers").summary())
            reader.explain_access("alice@example.com")   # a table in a notebook

    Args:
        account: The account client; its credentials, retry policy and clock are shared
            by one `WorkspaceClient` per workspace host.
        workspace_hosts: Workspace id to host, where the host cannot be derived from the
            workspace list (Azure, a proxy, the emulator).
        options: A `CatalogOptions`; or the keyword arguments below.
        include_tables: Read tables and their grants too.
        concurrency: The most requests in flight per workspace.
        max_age: Seconds a read is reused.
        rate_limits: Client-side limits per workspace host (default: the account config's).
        secrets: The secret store, when the account client does not use OAuth M2M.
    """

    def __init__(
        self,
        account: AccountClient,
        *,
        workspace_hosts: WorkspaceHosts | HostMap | None = None,
        options: CatalogOptions | None = None,
        include_tables: bool = False,
        concurrency: int = 8,
        max_age: float = 300.0,
        rate_limits: LimitsArg = FROM_CONFIG,
        secrets: SecretStore | None = None,
    ) -> None:
        self._account = account
        self.options = options or CatalogOptions(
            include_tables=include_tables, concurrency=concurrency, max_age=max_age
        )
        self.hosts = (
            workspace_hosts
            if isinstance(workspace_hosts, WorkspaceHosts)
            else WorkspaceHosts(account.config, workspace_hosts)
        )
        self._rate_limits = rate_limits
        self._secrets = secrets
        self._clients: dict[str, WorkspaceClient] = {}
        self._lock = threading.Lock()
        self._cache = _Cache()

    def workspace_client(self, workspace: Workspace | int) -> WorkspaceClient:
        """The (cached) client of one workspace, on the account client's credentials."""
        if not isinstance(workspace, Workspace):
            workspace = Workspace(workspace_id=workspace)
        host = self.hosts.host_for(workspace)
        return self._client(workspace.workspace_id, host)

    def _client(self, workspace_id: int, host: str | None) -> WorkspaceClient:
        with self._lock:
            key = host or str(workspace_id)
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = WorkspaceClient.for_workspace(
                    self._account,
                    workspace_id,
                    host=host,
                    hosts=self.hosts,
                    secrets=self._secrets,
                    rate_limits=self._rate_limits,
                    page_size=self.options.page_size,
                )
            return client

    @property
    def requests_sent(self) -> int:
        """Workspace API requests sent so far by this reader (token requests excluded)."""
        return sum(c.requests_sent for c in self._clients.values())

    def read(self, *, refresh: bool = False) -> CatalogView:
        """The directory and the catalog snapshot: a fresh read, or the last within `max_age`."""
        now = self._account.clock.monotonic()
        cache = self._cache
        if not refresh and cache.view is not None and now - cache.read_at <= self.options.max_age:
            return cache.view
        started = self._account.clock.now()
        flow = discover_flow(self._account._api, _DIRECTORY, generated_at=started)
        inventory = self._account._driver.run(flow)
        view = CatalogView(inventory=inventory, snapshot=self.snapshot(inventory))
        cache.view, cache.read_at = view, now
        return view

    def snapshot(self, inventory: Inventory) -> CatalogSnapshot:
        """Read Unity Catalog through the workspaces of an inventory already read."""
        started = self._account.clock.now()
        plan = _plan(list(inventory.workspaces.values()), self.hosts)
        clients = {wid: self._client(wid, host) for wid, host in plan.hosts.items()}

        def assignment(wid: int) -> MetastoreAssignment | DatabricksAccessError:
            try:
                return clients[wid].metastore_assignment()
            except DatabricksAccessError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(clients)))) as pool:
            outcomes = dict(zip(clients, pool.map(assignment, clients), strict=True))
        by_metastore = _metastores(outcomes, plan.failures)

        def walk(metastore_id: str) -> MetastorePart | DatabricksAccessError:
            wids = by_metastore[metastore_id]
            assigned = outcomes[wids[0]]
            assert isinstance(assigned, MetastoreAssignment)  # noqa: S101 - grouped from successes
            try:
                return clients[wids[0]].run(
                    metastore_flow(
                        clients[wids[0]]._api,
                        attrs.evolve(assigned, workspace_id=wids[0]),
                        workspace_ids=tuple(wids),
                        include_tables=self.options.include_tables,
                        concurrency=self.options.concurrency,
                    )
                )
            except DatabricksAccessError as exc:
                return exc

        ids = list(by_metastore)
        with ThreadPoolExecutor(max_workers=max(1, len(ids))) as pool:
            parts = list(pool.map(walk, ids))
        return _snapshot(started, parts, ids, plan.failures, self.options.include_tables)

    def unlocks(self, group: Group | str) -> UnlocksReport:
        """What membership of `group` unlocks: every privilege, per metastore and securable."""
        return self.read().unlocks(group)

    def explain_access(self, principal: PrincipalLike) -> AccessExplanation:
        """Every privilege `principal` holds in Unity Catalog, and the group chain behind each."""
        return self.read().explain_access(principal)

    def close(self) -> None:
        """Forget the workspace clients (their connections are the account client's)."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __repr__(self) -> str:
        return f"CatalogReader({self._account!r}, options={self.options!r})"


class AsyncCatalogReader:
    """The async twin of `CatalogReader`: `await reader.unlocks(group)`."""

    def __init__(
        self,
        account: AsyncAccountClient,
        *,
        workspace_hosts: WorkspaceHosts | HostMap | None = None,
        options: CatalogOptions | None = None,
        include_tables: bool = False,
        concurrency: int = 8,
        max_age: float = 300.0,
        rate_limits: LimitsArg = FROM_CONFIG,
        secrets: SecretStore | None = None,
    ) -> None:
        self._account = account
        self.options = options or CatalogOptions(
            include_tables=include_tables, concurrency=concurrency, max_age=max_age
        )
        self.hosts = (
            workspace_hosts
            if isinstance(workspace_hosts, WorkspaceHosts)
            else WorkspaceHosts(account.config, workspace_hosts)
        )
        self._rate_limits = rate_limits
        self._secrets = secrets
        self._clients: dict[str, AsyncWorkspaceClient] = {}
        self._cache = _Cache()

    async def workspace_client(self, workspace: Workspace | int) -> AsyncWorkspaceClient:
        """The (cached) client of one workspace, on the account client's credentials."""
        if not isinstance(workspace, Workspace):
            workspace = Workspace(workspace_id=workspace)
        return await self._client(workspace.workspace_id, self.hosts.host_for(workspace))

    async def _client(self, workspace_id: int, host: str | None) -> AsyncWorkspaceClient:
        key = host or str(workspace_id)
        client = self._clients.get(key)
        if client is None:
            client = await AsyncWorkspaceClient.for_workspace(
                self._account,
                workspace_id,
                host=host,
                hosts=self.hosts,
                secrets=self._secrets,
                rate_limits=self._rate_limits,
                page_size=self.options.page_size,
            )
            client = self._clients.setdefault(key, client)
        return client

    @property
    def requests_sent(self) -> int:
        """Workspace API requests sent so far by this reader (token requests excluded)."""
        return sum(c.requests_sent for c in self._clients.values())

    async def read(self, *, refresh: bool = False) -> CatalogView:
        """The async twin of `CatalogReader.read`."""
        now = self._account.clock.monotonic()
        cache = self._cache
        if not refresh and cache.view is not None and now - cache.read_at <= self.options.max_age:
            return cache.view
        started = self._account.clock.now()
        flow = discover_flow(self._account._api, _DIRECTORY, generated_at=started)
        inventory = await self._account._driver.run(flow)
        view = CatalogView(inventory=inventory, snapshot=await self.snapshot(inventory))
        cache.view, cache.read_at = view, now
        return view

    async def snapshot(self, inventory: Inventory) -> CatalogSnapshot:
        """Read Unity Catalog through the workspaces of an inventory already read."""
        started = self._account.clock.now()
        plan = _plan(list(inventory.workspaces.values()), self.hosts)
        clients = {wid: await self._client(wid, host) for wid, host in plan.hosts.items()}

        async def assignment(wid: int) -> MetastoreAssignment | DatabricksAccessError:
            try:
                return await clients[wid].metastore_assignment()
            except DatabricksAccessError as exc:
                return exc

        found = await asyncio.gather(*(assignment(wid) for wid in clients))
        outcomes = dict(zip(clients, found, strict=True))
        by_metastore = _metastores(outcomes, plan.failures)

        async def walk(metastore_id: str) -> MetastorePart | DatabricksAccessError:
            wids = by_metastore[metastore_id]
            assigned = outcomes[wids[0]]
            assert isinstance(assigned, MetastoreAssignment)  # noqa: S101 - grouped from successes
            try:
                return await clients[wids[0]].run(
                    metastore_flow(
                        clients[wids[0]]._api,
                        attrs.evolve(assigned, workspace_id=wids[0]),
                        workspace_ids=tuple(wids),
                        include_tables=self.options.include_tables,
                        concurrency=self.options.concurrency,
                    )
                )
            except DatabricksAccessError as exc:
                return exc

        ids = list(by_metastore)
        parts = list(await asyncio.gather(*(walk(m) for m in ids)))
        return _snapshot(started, parts, ids, plan.failures, self.options.include_tables)

    async def unlocks(self, group: Group | str) -> UnlocksReport:
        """What membership of `group` unlocks: every privilege, per metastore and securable."""
        return (await self.read()).unlocks(group)

    async def explain_access(self, principal: PrincipalLike) -> AccessExplanation:
        """Every privilege `principal` holds in Unity Catalog, and the group chain behind each."""
        return (await self.read()).explain_access(principal)

    async def close(self) -> None:
        """Close the workspace clients' connections."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def __repr__(self) -> str:
        return f"AsyncCatalogReader({self._account!r}, options={self.options!r})"
