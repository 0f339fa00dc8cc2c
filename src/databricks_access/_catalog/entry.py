"""One-call answers: build a reader on an account client, read once, answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from databricks_access._account.models import Group
from databricks_access._catalog.access import PrincipalLike
from databricks_access._catalog.hosts import HostMap
from databricks_access._catalog.reader import AsyncCatalogReader, CatalogReader
from databricks_access._catalog.reports import AccessExplanation, UnlocksReport

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = ["aexplain_access", "aunlocks", "explain_access", "unlocks"]


def unlocks(
    account: AccountClient,
    group: Group | str,
    *,
    workspace_hosts: HostMap | None = None,
    include_tables: bool = False,
    concurrency: int = 8,
) -> UnlocksReport:
    """What membership of `group` unlocks in Unity Catalog, across the account's metastores.

    Reads the account directory and every metastore once (see `CatalogReader`; keep a
    reader to ask several questions of one read).

    Example::

        report = da.unlocks(account, "data-readers")
        print(report.summary())
    """
    reader = CatalogReader(
        account,
        workspace_hosts=workspace_hosts,
        include_tables=include_tables,
        concurrency=concurrency,
    )
    return reader.unlocks(group)


def explain_access(
    account: AccountClient,
    principal: PrincipalLike,
    *,
    workspace_hosts: HostMap | None = None,
    include_tables: bool = False,
    concurrency: int = 8,
) -> AccessExplanation:
    """Every Unity Catalog privilege `principal` holds, and the group chain behind each."""
    reader = CatalogReader(
        account,
        workspace_hosts=workspace_hosts,
        include_tables=include_tables,
        concurrency=concurrency,
    )
    return reader.explain_access(principal)


async def aunlocks(
    account: AsyncAccountClient,
    group: Group | str,
    *,
    workspace_hosts: HostMap | None = None,
    include_tables: bool = False,
    concurrency: int = 8,
) -> UnlocksReport:
    """The async twin of `unlocks`."""
    reader = AsyncCatalogReader(
        account,
        workspace_hosts=workspace_hosts,
        include_tables=include_tables,
        concurrency=concurrency,
    )
    try:
        return await reader.unlocks(group)
    finally:
        await reader.close()


async def aexplain_access(
    account: AsyncAccountClient,
    principal: PrincipalLike,
    *,
    workspace_hosts: HostMap | None = None,
    include_tables: bool = False,
    concurrency: int = 8,
) -> AccessExplanation:
    """The async twin of `explain_access`."""
    reader = AsyncCatalogReader(
        account,
        workspace_hosts=workspace_hosts,
        include_tables=include_tables,
        concurrency=concurrency,
    )
    try:
        return await reader.explain_access(principal)
    finally:
        await reader.close()
