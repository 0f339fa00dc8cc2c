"""Seeding an emulated account's Unity Catalog at scale, deterministically."""

from __future__ import annotations

import random
from collections.abc import Mapping

import attrs

from databricks_access.testing._state import AccountState
from databricks_access.testing._unity_state import Metastore, ObjectDetails, SecurableType

__all__ = ["CatalogSeedSummary", "seed_unity_catalog"]

_REGIONS = {
    "aws": ("us-east-1", "us-west-2", "eu-west-1"),
    "azure": ("eastus", "westeurope", "westus2"),
    "gcp": ("us-central1", "europe-west1", "us-east4"),
}
DEFAULT_OWNER = "admins"


@attrs.frozen
class CatalogSeedSummary:
    """What `FakeAccount.seed_unity_catalog` created.

    Attributes:
        workspace_ids: The workspaces created (`{prefix}uc-workspace-00`, ...), each
            assigned to metastore `index % metastores`.
        metastore_ids: The metastores created (`{prefix}metastore-0`, ...).
        catalogs: The catalog names of each metastore (`{prefix}catalog_000`, ...;
            catalog `i` lives in metastore `i % metastores`).
        group_ids: The groups created (`{prefix}uc-group-000`, ...), each assigned with
            `USER` to every workspace created.
        group_names: Their display names (what grants name).
        schemas: How many schemas (`schema_000`, ... in each catalog).
        tables: How many tables (`table_0000`, ... in each schema).
        grants: How many (securable, principal) grants.
    """

    workspace_ids: tuple[int, ...]
    metastore_ids: tuple[str, ...]
    catalogs: Mapping[str, tuple[str, ...]] = attrs.field(repr=False)
    group_ids: tuple[str, ...] = attrs.field(repr=False)
    group_names: tuple[str, ...] = attrs.field(repr=False)
    schemas: int
    tables: int
    grants: int

    @property
    def catalog_count(self) -> int:
        """How many catalogs in all."""
        return sum(len(names) for names in self.catalogs.values())


def seed_unity_catalog(
    state: AccountState,
    *,
    workspaces: int,
    metastores: int,
    catalogs: int,
    schemas_per_catalog: int,
    tables_per_catalog_schema: int,
    groups: int,
    seed: int,
    prefix: str,
) -> CatalogSeedSummary:
    """Create workspaces, metastores, catalogs, schemas, tables and grants; see the builder."""
    counts = {
        "workspaces": workspaces,
        "metastores": metastores,
        "catalogs": catalogs,
        "schemas_per_catalog": schemas_per_catalog,
        "tables_per_catalog_schema": tables_per_catalog_schema,
        "groups": groups,
    }
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    if metastores == 0 and (workspaces or catalogs):
        raise ValueError("workspaces and catalogs need at least one metastore")
    unity = state.unity
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    saved, state.rng = state.rng, rng
    created_at = int(state.clock() * 1000)
    regions = _REGIONS.get(state.cloud, _REGIONS["aws"])
    low = prefix.lower()
    try:
        metastore_ids = []
        for i in range(metastores):
            metastore = Metastore(
                state.new_uuid(),
                f"{prefix}metastore-{i}",
                regions[i % 3],
                DEFAULT_OWNER,
                created_at,
            )
            unity.add_metastore(metastore)
            metastore_ids.append(metastore.metastore_id)
        group_ids = tuple(state.add_group(f"{prefix}uc-group-{i:03d}").id for i in range(groups))
        group_names = tuple(state.groups[g].display_name for g in group_ids)
        workspace_ids = []
        for i in range(workspaces):
            workspace = state.add_workspace(f"{prefix}uc-workspace-{i:02d}")
            workspace_ids.append(workspace.workspace_id)
            unity.assigned[workspace.workspace_id] = (metastore_ids[i % metastores], None)
            assigned = state.assignments[workspace.workspace_id]
            for group_id in group_ids:
                assigned[group_id] = ("USER",)
        # One shared record per kind of object: 50,000 tables cost their names only.
        container = ObjectDetails(DEFAULT_OWNER, created_at)
        table = ObjectDetails(DEFAULT_OWNER, created_at, None, "MANAGED", "DELTA")
        schema_names = [f"schema_{j:03d}" for j in range(schemas_per_catalog)]
        table_names = [f"table_{k:04d}" for k in range(tables_per_catalog_schema)]
        by_metastore: dict[str, list[str]] = {m: [] for m in metastore_ids}
        grants = 0
        for i in range(catalogs):
            metastore_id = metastore_ids[i % metastores]
            catalog = unity.add_catalog(metastore_id, f"{low}catalog_{i:03d}", container)
            by_metastore[metastore_id].append(catalog)
            if group_names:
                key = (metastore_id, SecurableType.CATALOG, catalog)
                unity.set_grants(key, rng.choice(group_names), ["USE_CATALOG"], replace=False)
                grants += 1
            schemas = unity.schemas[(metastore_id, catalog)]
            for schema in schema_names:
                schemas[schema] = container
                unity.tables[(metastore_id, catalog, schema)] = dict.fromkeys(table_names, table)
                unity.volumes[(metastore_id, catalog, schema)] = {}
                if group_names:
                    key = (metastore_id, SecurableType.SCHEMA, f"{catalog}.{schema}")
                    privileges = ["USE_SCHEMA", "SELECT"]
                    unity.set_grants(key, rng.choice(group_names), privileges, replace=False)
                    grants += 1
    finally:
        state.rng = saved
    return CatalogSeedSummary(
        workspace_ids=tuple(workspace_ids),
        metastore_ids=tuple(metastore_ids),
        catalogs={m: tuple(names) for m, names in by_metastore.items()},
        group_ids=group_ids,
        group_names=group_names,
        schemas=catalogs * schemas_per_catalog,
        tables=catalogs * schemas_per_catalog * tables_per_catalog_schema,
        grants=grants,
    )
