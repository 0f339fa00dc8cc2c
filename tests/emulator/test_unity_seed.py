"""Unity Catalog builders and the scale seeder: what they leave in the emulator."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from databricks_access.testing import FakeAccount, SecurableType


def test_builders_make_a_hierarchy_with_grants():
    fake = FakeAccount()
    workspace = fake.add_workspace("analytics")
    metastore = fake.add_metastore("primary", region="eu-west-1")
    fake.assign_metastore(workspace, metastore.metastore_id, default_catalog_name="main")
    ms = metastore.metastore_id
    assert fake.metastore_of(workspace) == ms
    assert fake.add_catalog(ms, "Main") == "main"
    assert fake.add_schema(ms, "main", "Raw") == "main.raw"
    assert fake.add_table(ms, "main", "raw", "Orders") == "main.raw.orders"
    assert fake.add_volume(ms, "main", "raw", "files") == "main.raw.files"
    fake.add_group("Readers")
    sp = fake.add_service_principal("connector")
    assert fake.grant("SCHEMA", "main.raw", "readers", ["use_schema", "SELECT"]) == (
        "USE_SCHEMA",
        "SELECT",
    )
    fake.grant("table", "main.raw.orders", sp.client_id, ["MODIFY"])
    fake.grant("table", "main.raw.orders", sp.client_id, ["SELECT", "MODIFY"])
    fake.grant("metastore", ms, "account users", ["CREATE_CATALOG"])
    assert fake.grants("schema", "main.raw") == {"Readers": ("USE_SCHEMA", "SELECT")}
    assert fake.grants("table", "MAIN.raw.orders") == {sp.client_id: ("MODIFY", "SELECT")}
    fake.revoke("table", "main.raw.orders", sp.client_id, ["MODIFY"])
    assert fake.grants("table", "main.raw.orders") == {sp.client_id: ("SELECT",)}
    fake.revoke("table", "main.raw.orders", sp.client_id)
    assert fake.grants("table", "main.raw.orders") == {}
    assert fake.grants(SecurableType.METASTORE, ms) == {"account users": ("CREATE_CATALOG",)}
    assert fake.unity_catalog_counts()["volumes"] == 1


def test_builders_refuse_what_does_not_exist():
    fake = FakeAccount()
    ms = fake.add_metastore("m").metastore_id
    fake.add_catalog(ms, "c")
    with pytest.raises(ValueError, match="already exists"):
        fake.add_catalog(ms, "C")
    with pytest.raises(ValueError, match="does not exist"):
        fake.add_schema(ms, "missing", "s")
    with pytest.raises(ValueError, match="Invalid name"):
        fake.add_schema(ms, "c", "a.b")
    with pytest.raises(ValueError, match="No principal"):
        fake.grant("catalog", "c", "nobody", ["USE_CATALOG"])
    with pytest.raises(ValueError, match="No SCHEMA"):
        fake.grant("schema", "c.s", "account users", ["USE_SCHEMA"])
    with pytest.raises(ValueError, match="Unsupported securable type"):
        fake.grant("function", "c.s.f", "account users", ["EXECUTE"])
    with pytest.raises(ValueError, match="No workspace"):
        fake.assign_metastore(123, ms)
    with pytest.raises(ValueError, match="No metastore"):
        fake.assign_metastore(fake.add_workspace("w"), "nope")


def test_same_catalog_name_in_two_metastores_needs_the_metastore():
    fake = FakeAccount()
    first, second = fake.add_metastore("a").metastore_id, fake.add_metastore("b").metastore_id
    fake.add_catalog(first, "shared")
    fake.add_catalog(second, "shared")
    with pytest.raises(ValueError, match="Several metastores"):
        fake.grant("catalog", "shared", "account users", ["USE_CATALOG"])
    fake.grant("catalog", "shared", "account users", ["BROWSE"], metastore_id=second)
    assert fake.grants("catalog", "shared", metastore_id=first) == {}
    assert fake.grants("catalog", "shared", metastore_id=second) == {"account users": ("BROWSE",)}


def test_scale_seeder_is_fast_small_and_deterministic():
    fake = FakeAccount()
    tracemalloc.start()
    try:
        started = time.perf_counter()
        summary = fake.seed_unity_catalog(
            workspaces=3,
            metastores=2,
            catalogs=50,
            schemas_per_catalog=20,
            tables_per_catalog_schema=50,
            groups=10,
            seed=7,
        )
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 5.0
    assert peak < 50_000_000
    counts = fake.unity_catalog_counts()
    assert counts["metastores"] == 2
    assert counts["catalogs"] == 50
    assert counts["schemas"] == 1_000
    assert counts["tables"] == 50_000
    assert counts["grants"] == 1_050
    first, second = summary.metastore_ids
    assert len(fake.catalog_names(first)) == len(fake.catalog_names(second)) == 25
    # Workspace i is on metastore i % 2: workspaces 0 and 2 share the first.
    assert [fake.metastore_of(w) for w in summary.workspace_ids] == [first, second, first]
    for workspace_id in summary.workspace_ids:
        assert set(fake.assignments(workspace_id)) == set(summary.group_ids)
    grant = fake.grants("schema", "catalog_000.schema_019")
    assert list(grant.values()) == [("USE_SCHEMA", "SELECT")]
    assert set(grant) <= set(summary.group_names)

    again = FakeAccount().seed_unity_catalog(
        workspaces=3,
        metastores=2,
        catalogs=50,
        schemas_per_catalog=20,
        tables_per_catalog_schema=50,
        groups=10,
        seed=7,
    )
    assert again == summary


def test_seeder_refuses_bad_counts():
    with pytest.raises(ValueError, match="must not be negative"):
        FakeAccount().seed_unity_catalog(catalogs=-1)
    with pytest.raises(ValueError, match="at least one metastore"):
        FakeAccount().seed_unity_catalog(metastores=0)
