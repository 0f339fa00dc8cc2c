"""What the reader sends: each metastore once, every page, no table unless asked, 403s named."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from tests.catalog.conftest import ACCOUNT_ID, World, build_world

import databricks_access as da
from databricks_access.testing import Behaviour, FakeAccount

_UC = "/api/2.1/unity-catalog"


def _uc_requests(fake: FakeAccount) -> list[tuple[int | None, str, str]]:
    return [(r.workspace_id, r.path, r.query) for r in fake.log if r.path.startswith(_UC)]


def test_a_shared_metastore_is_read_once(account: da.AccountClient, world: World):
    da.CatalogReader(account, include_tables=True).read()
    sent = _uc_requests(world.fake)
    listings = Counter((wid, path) for wid, path, _ in sent if path == f"{_UC}/catalogs")
    # Two metastores, two catalog listings: analytics and reporting share `primary`.
    assert sum(listings.values()) == 2
    assert {wid for wid, _ in listings} == {world.analytics, world.lab}
    # Every workspace is asked for its metastore, once.
    assignments = Counter(
        wid for wid, path, _ in sent if path == f"{_UC}/current-metastore-assignment"
    )
    assert assignments == Counter({world.analytics: 1, world.reporting: 1, world.lab: 1})
    # No securable's grants are read twice, and none through the sharing workspace.
    grants = [path for _, path, _ in sent if path.startswith(f"{_UC}/permissions/")]
    assert len(grants) == len(set(grants))
    assert not any(wid == world.reporting for wid, path, _ in sent if "/permissions/" in path)
    # metastore x2, catalogs 3, schemas 4, tables 5
    assert len(grants) == 2 + 3 + 4 + 5
    # Every request answered 200.
    assert {r.status for r in world.fake.log if r.path.startswith(_UC)} == {200}


def test_tables_are_read_only_when_asked(account: da.AccountClient, world: World):
    snapshot = da.CatalogReader(account).read().snapshot
    assert not any(path == f"{_UC}/tables" for _, path, _ in _uc_requests(world.fake))
    assert da.SecurableType.TABLE not in {s.securable_type for s in snapshot.securables}
    assert not snapshot.include_tables


def test_a_read_is_reused_within_max_age(account: da.AccountClient, world: World, clock):
    reader = da.CatalogReader(account, max_age=60)
    reader.unlocks("analysts")
    sent = len(world.fake.log)
    reader.explain_access("alice@example.com")
    assert len(world.fake.log) == sent
    clock.advance(61)
    reader.unlocks("analysts")
    assert len(world.fake.log) > sent


@pytest.fixture
def paged(clock) -> tuple[FakeAccount, da.AccountClient, World]:
    fake = FakeAccount(
        account_id=ACCOUNT_ID,
        clock=lambda: clock.now().timestamp(),
        behaviour=Behaviour(uc_page_cap=1),
    )
    sp = fake.add_service_principal("connector")
    world = build_world(fake, sp.id)
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id, rate_limits=None)
    client = da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
    )
    return fake, client, world


def test_every_page_is_followed(paged):
    fake, client, _ = paged
    with client:
        snapshot = da.CatalogReader(client, include_tables=True).read().snapshot
    names = {s.full_name for s in snapshot.securables}
    assert {"sales", "hr", "lab", "sales.raw", "sales.curated", "hr.people"} <= names
    assert "sales.curated.customers" in names
    tokens = [
        q for _, path, q in _uc_requests(fake) if path == f"{_UC}/catalogs" and "page_token" in q
    ]
    assert tokens  # one catalog per page: the second and later pages were asked for
    assert not snapshot.errors


def test_an_unassigned_workspace_is_a_typed_error_and_reported(
    account: da.AccountClient, world: World
):
    locked = world.fake.add_workspace("locked", deployment_name="dbc-locked")
    world.fake.assign_metastore(locked, world.primary)
    ws = da.WorkspaceClient.for_workspace(account, locked)
    with pytest.raises(da.WorkspaceNotAssignedError) as caught:
        ws.metastore_assignment()
    error = caught.value
    assert isinstance(error, da.PermissionDeniedError)
    assert error.status_code == 403
    assert error.workspace_id == locked
    assert "not assigned" in str(error)
    assert f"workspace_assignments.set({locked}" in str(error)
    # The reader goes on with the others and says which one it could not read.
    view = da.CatalogReader(account).read()
    failed = [e for e in view.snapshot.errors if e.item == str(locked)]
    assert [e.stage for e in failed] == ["workspace_access"]
    assert failed[0].status_code == 403
    assert {m.name for m in view.snapshot.metastores} == {"primary", "secondary"}


def test_a_workspace_without_a_metastore_is_reported(account: da.AccountClient, world: World):
    bare = world.fake.add_workspace("bare", deployment_name="dbc-bare")
    world.fake.assign(bare, world.connector, ["USER"])
    view = da.CatalogReader(account).read()
    assert [(e.stage, e.status_code) for e in view.snapshot.errors if e.item == str(bare)] == [
        ("metastore_assignment", 404)
    ]


def test_hosts_are_derived_on_aws_and_configured_elsewhere(world: World, config: da.AccountConfig):
    hosts = da.WorkspaceHosts(config, {world.lab: "https://adb-1.2.azuredatabricks.net/"})
    workspace = da.Workspace(workspace_id=world.analytics, deployment_name="dbc-analytics")
    assert hosts.host_for(workspace) == world.fake.workspace_host(world.analytics)
    assert (
        hosts.host_for(da.Workspace(workspace_id=world.lab))
        == "https://adb-1.2.azuredatabricks.net"
    )
    assert hosts.host_for(da.Workspace(workspace_id=7)) is None
    with pytest.raises(da.ConfigError) as caught:
        da.WorkspaceHosts(config, {"seven": "https://example.com", 8: "http://example.com"})
    assert len(caught.value.problems) >= 2


def test_async_reads_the_same_requests(async_account: da.AsyncAccountClient, world: World):
    async def main() -> da.CatalogView:
        reader = da.AsyncCatalogReader(async_account, include_tables=True)
        try:
            return await reader.read()
        finally:
            await reader.close()
            await async_account.close()

    view = asyncio.run(main())
    sent = _uc_requests(world.fake)
    grants = [path for _, path, _ in sent if "/permissions/" in path]
    assert len(grants) == len(set(grants)) == 2 + 3 + 4 + 5
    assert len(view.snapshot.metastores) == 2


def test_no_secret_or_token_in_reprs_or_errors(
    account: da.AccountClient, world: World, credentials
):
    secret = credentials[1].get_credentials().client_secret
    reader = da.CatalogReader(account, include_tables=True)
    ws = reader.workspace_client(world.analytics)
    ws.metastore_assignment()
    texts = [
        repr(reader),
        repr(ws),
        repr(ws.auth),
        repr(reader.read()),
        repr(reader.unlocks("analysts")),
    ]
    texts.append(reader.unlocks("analysts").to_json())
    assert not any(secret in text for text in texts)
    assert not any("Bearer" in text for text in texts)
