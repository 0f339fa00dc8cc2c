"""The official SDK's `WorkspaceClient` runs unchanged against served workspace hosts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from databricks_access.testing import (
    Behaviour,
    FakeAccount,
    Fault,
    FaultPlan,
    OperationClass,
    ServicePrincipalCredentials,
)

sdk = pytest.importorskip("databricks.sdk")
errors = pytest.importorskip("databricks.sdk.errors")
UC = "/api/2.1/unity-catalog"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No DATABRICKS_* variable and no ~/.databrickscfg can reach the SDK."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))


class Catalog:
    """Two workspaces sharing one metastore, a third on another, a small hierarchy."""

    def __init__(self) -> None:
        self.fake = FakeAccount(behaviour=Behaviour(uc_page_cap=4))
        self.creds = self.fake.add_service_principal("uc-reader")
        fake = self.fake
        self.ws_a = fake.add_workspace("a")
        self.ws_b = fake.add_workspace("b")
        self.ws_c = fake.add_workspace("c")
        self.shared = fake.add_metastore("shared", region="us-west-2").metastore_id
        self.other = fake.add_metastore("other").metastore_id
        fake.assign_metastore(self.ws_a, self.shared, default_catalog_name="main")
        fake.assign_metastore(self.ws_b, self.shared)
        fake.assign_metastore(self.ws_c, self.other)
        self.catalogs = [fake.add_catalog(self.shared, f"cat_{i:02d}") for i in range(9)]
        fake.add_catalog(self.other, "elsewhere")
        self.schemas = [fake.add_schema(self.shared, "cat_03", f"s{i}") for i in range(6)]
        self.tables = [fake.add_table(self.shared, "cat_03", "s1", f"t{i:02d}") for i in range(11)]
        fake.add_volume(self.shared, "cat_03", "s1", "landing")
        readers = fake.add_group("readers", members=[self.creds.id])
        self.alice = fake.add_user("alice@example.com")
        fake.add_member(readers, self.alice)
        # Assigned through a group: that counts.
        fake.assign(self.ws_a, readers)
        fake.assign(self.ws_b, readers)
        fake.grant("catalog", "cat_03", "readers", ["USE_CATALOG"])
        fake.grant("schema", "cat_03.s1", "readers", ["USE_SCHEMA", "SELECT"])
        fake.grant("schema", "cat_03.s1", "alice@example.com", ["MODIFY"])
        fake.grant("table", "cat_03.s1.t05", self.creds.client_id, ["MODIFY"])
        fake.grant("metastore", self.shared, "readers", ["CREATE_CATALOG"])


@pytest.fixture
def uc(isolated) -> Catalog:
    return Catalog()


def client(host: str, creds: ServicePrincipalCredentials) -> object:
    return sdk.WorkspaceClient(
        host=host,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        auth_type="oauth-m2m",
    )


@pytest.fixture
def served(uc: Catalog) -> Iterator[object]:
    server = uc.fake.serve()
    with server:
        yield server


def uc_lists(fake: FakeAccount, suffix: str) -> int:
    return sum(1 for r in fake.log if r.path.endswith(f"{UC}/{suffix}") and r.status == 200)


def test_workspace_client_reads_what_was_seeded_with_paging(uc: Catalog, served):
    w = client(served.workspace_host(uc.ws_a), uc.creds)
    assignment = w.metastores.current()
    assert (assignment.workspace_id, assignment.metastore_id) == (uc.ws_a, uc.shared)
    assert assignment.default_catalog_name == "main"
    summary = w.metastores.summary()
    assert (summary.metastore_id, summary.name, summary.region) == (
        uc.shared,
        "shared",
        "us-west-2",
    )

    uc.fake.reset_log()
    assert [c.name for c in w.catalogs.list()] == uc.catalogs
    assert uc_lists(uc.fake, "catalogs") == 3  # 9 catalogs, 4 a page
    assert [s.full_name for s in w.schemas.list(catalog_name="cat_03", max_results=2)] == (
        uc.schemas
    )
    assert uc_lists(uc.fake, "schemas") == 3
    tables = list(w.tables.list(catalog_name="cat_03", schema_name="s1"))
    assert [t.full_name for t in tables] == uc.tables
    assert {t.table_type.value for t in tables} == {"MANAGED"}
    assert uc_lists(uc.fake, "tables") == 3
    volumes = list(w.volumes.list(catalog_name="cat_03", schema_name="s1"))
    assert [v.full_name for v in volumes] == ["cat_03.s1.landing"]
    assert w.tables.get("cat_03.s1.t05").owner == "admins"
    # Every request went to the workspace's host, none to the accounts host.
    assert {r.workspace_id for r in uc.fake.log} == {uc.ws_a}


def test_grants_and_effective_grants(uc: Catalog, served):
    w = client(served.workspace_host(uc.ws_a), uc.creds)
    direct = w.grants.get("schema", "cat_03.s1")
    assert {a.principal: [p.value for p in a.privileges] for a in direct.privilege_assignments} == {
        "alice@example.com": ["MODIFY"],
        "readers": ["USE_SCHEMA", "SELECT"],
    }
    only = w.grants.get("schema", "cat_03.s1", principal="readers")
    assert [a.principal for a in only.privilege_assignments] == ["readers"]
    assert w.grants.get("metastore", uc.shared).privilege_assignments[0].principal == "readers"

    effective = w.grants.get_effective("table", "cat_03.s1.t05")
    found = {
        (a.principal, p.privilege.value, p.inherited_from_type, p.inherited_from_name)
        for a in effective.privilege_assignments
        for p in a.privileges
    }
    schema_type = sdk.service.catalog.SecurableType.SCHEMA
    catalog_type = sdk.service.catalog.SecurableType.CATALOG
    assert found == {
        (uc.creds.client_id, "MODIFY", None, None),
        ("readers", "USE_SCHEMA", schema_type, "cat_03.s1"),
        ("readers", "SELECT", schema_type, "cat_03.s1"),
        ("alice@example.com", "MODIFY", schema_type, "cat_03.s1"),
        ("readers", "USE_CATALOG", catalog_type, "cat_03"),
    }
    # Metastore grants are not inherited.
    assert "CREATE_CATALOG" not in {f[1] for f in found}


def test_a_shared_metastore_is_seen_from_both_workspaces(uc: Catalog, served):
    a = client(served.workspace_host(uc.ws_a), uc.creds)
    b = client(served.workspace_host(uc.ws_b), uc.creds)
    assert b.metastores.current().metastore_id == uc.shared
    assert [c.name for c in b.catalogs.list()] == [c.name for c in a.catalogs.list()]
    uc.fake.add_catalog(uc.shared, "added_later")
    assert "added_later" in {c.name for c in b.catalogs.list()}
    assert "added_later" in {c.name for c in a.catalogs.list()}


def test_not_found_shapes_through_the_sdk(uc: Catalog, served):
    w = client(served.workspace_host(uc.ws_a), uc.creds)
    cases = [
        (lambda: w.catalogs.get("nope"), "CATALOG_DOES_NOT_EXIST", "Catalog 'nope'"),
        (lambda: w.schemas.get("cat_03.nope"), "SCHEMA_DOES_NOT_EXIST", "Schema 'cat_03.nope'"),
        (lambda: w.tables.get("cat_03.s1.nope"), "TABLE_DOES_NOT_EXIST", "Table 'cat_03.s1.nope'"),
        (lambda: w.tables.get("nope.s1.t00"), "CATALOG_DOES_NOT_EXIST", "Catalog 'nope'"),
        (lambda: list(w.schemas.list(catalog_name="nope")), "CATALOG_DOES_NOT_EXIST", "nope"),
        (
            lambda: list(w.tables.list(catalog_name="cat_03", schema_name="nope")),
            "SCHEMA_DOES_NOT_EXIST",
            "cat_03.nope",
        ),
        (lambda: w.grants.get("table", "cat_03.s1.gone"), "TABLE_DOES_NOT_EXIST", "gone"),
        (lambda: w.grants.get("catalog", "elsewhere"), "CATALOG_DOES_NOT_EXIST", "elsewhere"),
    ]
    for call, code, text in cases:
        with pytest.raises(errors.NotFound) as caught:
            call()
        assert caught.value.error_code == code
        assert text in str(caught.value)


def test_unassigned_principal_gets_permission_denied(uc: Catalog, served):
    outsider = uc.fake.add_service_principal("outsider")
    w = client(served.workspace_host(uc.ws_a), outsider)
    with pytest.raises(errors.PermissionDenied) as caught:
        list(w.catalogs.list())
    assert caught.value.error_code == "PERMISSION_DENIED"
    # The reader is not assigned to workspace c either (its group is assigned to a and b).
    with pytest.raises(errors.PermissionDenied):
        client(served.workspace_host(uc.ws_c), uc.creds).metastores.current()
    # Assigned directly, it gets in.
    served.call("assign", uc.ws_c, uc.creds.id)
    assert client(served.workspace_host(uc.ws_c), uc.creds).metastores.current().metastore_id == (
        uc.other
    )


def test_faults_apply_to_workspace_routes(uc: Catalog, isolated):
    plan = FaultPlan(
        [Fault.server_error(503, path=r"/unity-catalog/catalogs$", nth=2)],
    ).install(uc.fake)
    with uc.fake.serve():
        # While served, the account's own workspace_host gives the loopback form.
        w = client(uc.fake.workspace_host(uc.ws_a), uc.creds)
        # The SDK retries the 503 and still reads every page.
        assert [c.name for c in w.catalogs.list()] == uc.catalogs
    assert plan.injected["503"] == 1
    faulted = [r for r in uc.fake.log if r.fault == "503"]
    assert len(faulted) == 1
    assert faulted[0].workspace_id == uc.ws_a
    assert faulted[0].op_class is OperationClass.LIST


def test_served_in_a_process(uc: Catalog, isolated):
    server = uc.fake.serve(process=True)
    with server:
        w = client(server.workspace_host(uc.ws_b), uc.creds)
        assert len(list(w.tables.list(catalog_name="cat_03", schema_name="s1"))) == 11
        assert {r.workspace_id for r in server.log if r.path.endswith("/tables")} == {uc.ws_b}
