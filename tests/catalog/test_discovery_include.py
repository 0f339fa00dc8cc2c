"""`discover(client, unity_catalog=True)`: the inventory carries the catalog snapshot."""

from __future__ import annotations

import asyncio

from tests.catalog.conftest import World

import databricks_access as da


def test_discover_can_include_unity_catalog(account: da.AccountClient, world: World):
    plain = da.discover(account)
    assert plain.unity_catalog is None
    sent = len(world.fake.log)
    inventory = da.discover(account, unity_catalog=da.CatalogReader(account, include_tables=True))
    snapshot = inventory.unity_catalog
    assert snapshot is not None
    assert {m.name for m in snapshot.metastores} == {"primary", "secondary"}
    # The account was read once by this discovery: one group listing, no second directory.
    group_lists = [
        r for r in world.fake.log[sent:] if r.path.endswith("/Groups") and r.method == "GET"
    ]
    assert len(group_lists) == 1
    view = da.CatalogView(inventory=inventory, snapshot=snapshot)
    assert any(p.granted_to == "analysts" for p in view.unlocks("juniors").privileges)
    assert inventory == plain or inventory.groups == plain.groups  # same account read


def test_adiscover_can_include_unity_catalog(async_account: da.AsyncAccountClient, world: World):
    async def main() -> da.Inventory:
        try:
            return await da.adiscover(async_account, unity_catalog=True)
        finally:
            await async_account.close()

    inventory = asyncio.run(main())
    assert inventory.unity_catalog is not None
    assert len(inventory.unity_catalog.metastores) == 2
