"""Discovery's opt-in: an `Inventory` that carries the Unity Catalog snapshot too.

`da.discover(client, unity_catalog=True)` (or a configured `CatalogReader`) reads Unity
Catalog through the workspaces the discovery just listed, reusing its directory (no
group, user or workspace is read twice), and returns the inventory with
`unity_catalog` set; `CatalogView(inventory=..., snapshot=inventory.unity_catalog)`
then answers `unlocks` and `explain_access` from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from databricks_access._catalog._reader import AsyncCatalogReader, CatalogReader
from databricks_access._errors import ConfigError

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._discovery.discovery import Inventory

__all__ = ["UnityCatalogArg", "awith_catalog", "with_catalog"]

UnityCatalogArg = bool | CatalogReader | AsyncCatalogReader
"""False: no catalog read; True: one with default options; or the reader to use."""


def with_catalog(client: AccountClient, inventory: Inventory, which: UnityCatalogArg) -> Inventory:
    """The inventory with its Unity Catalog snapshot (unchanged when `which` is False)."""
    if which is False:
        return inventory
    if isinstance(which, AsyncCatalogReader):
        raise ConfigError("an AsyncCatalogReader belongs with adiscover", "unity_catalog")
    reader = CatalogReader(client) if which is True else which
    return attrs.evolve(inventory, unity_catalog=reader.snapshot(inventory))


async def awith_catalog(
    client: AsyncAccountClient, inventory: Inventory, which: UnityCatalogArg
) -> Inventory:
    """The async twin of `with_catalog`."""
    if which is False:
        return inventory
    if isinstance(which, CatalogReader):
        raise ConfigError("a CatalogReader belongs with discover", "unity_catalog")
    reader = AsyncCatalogReader(client) if which is True else which
    try:
        return attrs.evolve(inventory, unity_catalog=await reader.snapshot(inventory))
    finally:
        if which is True:
            await reader.close()
