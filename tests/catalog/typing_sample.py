"""The catalog API as a user types it: checked by `mypy --strict` (test_typing_sample.py)."""

from __future__ import annotations

import asyncio

from typing_extensions import assert_type

import databricks_access as da


def sync_side(account: da.AccountClient) -> None:
    reader = da.CatalogReader(account, workspace_hosts={1: "https://adb-1.2.azuredatabricks.net"})
    report = reader.unlocks("data-readers")
    assert_type(report, da.UnlocksReport)
    assert_type(report.privileges, tuple[da.GrantedPrivilege, ...])
    assert_type(report.summary(), str)
    assert_type(report.to_csv(), str)
    explained = reader.explain_access("alice@example.com")
    assert_type(explained, da.AccessExplanation)
    assert_type(explained.groups, tuple[str, ...])
    view = reader.read()
    assert_type(view.snapshot, da.CatalogSnapshot)
    ws = da.WorkspaceClient.for_workspace(account, 1)
    assert_type(ws.metastore_assignment(), da.MetastoreAssignment)
    assert_type(ws.grants(da.SecurableType.CATALOG, "main"), list[da.PrivilegeAssignment])
    for catalog in ws.catalogs():
        assert_type(catalog, da.CatalogInfo)
    assert_type(da.unlocks(account, "g"), da.UnlocksReport)
    inventory = da.discover(account, unity_catalog=reader)
    assert_type(inventory.unity_catalog, da.CatalogSnapshot | None)


async def async_side(account: da.AsyncAccountClient) -> None:
    reader = da.AsyncCatalogReader(account)
    assert_type(await reader.unlocks("g"), da.UnlocksReport)
    assert_type(await reader.explain_access("a@example.com"), da.AccessExplanation)
    ws = await da.AsyncWorkspaceClient.for_workspace(account, 1)
    assert_type(await ws.metastore_summary(), da.MetastoreSummary)
    async for schema in ws.schemas("main"):
        assert_type(schema, da.SchemaInfo)
    assert_type(await da.aexplain_access(account, "a"), da.AccessExplanation)
    await reader.close()


def run(account: da.AsyncAccountClient) -> None:
    asyncio.run(async_side(account))
