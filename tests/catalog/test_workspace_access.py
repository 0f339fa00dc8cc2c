"""A workspace the service principal is not assigned to: a typed error, and diagnose says so."""

from __future__ import annotations

import asyncio

import pytest
from tests.catalog.conftest import ACCOUNT_ID, World

import databricks_access as da
from databricks_access.testing import Behaviour, FakeAccount


def test_diagnose_names_the_unassigned_workspace_and_the_fix(
    account: da.AccountClient, world: World
):
    locked = world.fake.add_workspace("locked", deployment_name="dbc-locked")
    world.fake.assign_metastore(locked, world.primary)
    report = da.diagnose(account, workspaces=True)
    check = report[f"workspace:{locked}"]
    assert check.ok is False
    assert "not assigned" in check.verdict
    assert check.fix is not None
    assert "Permissions" in check.fix
    assert f"workspace_assignments.set({locked}" in check.fix
    assert report[f"workspace:{world.analytics}"].ok is True
    assert f"workspace:{locked}" in str(report)


def test_diagnose_checks_only_the_workspaces_named(account: da.AccountClient, world: World):
    report = da.diagnose(account, workspaces=[world.lab])
    names = [c.name for c in report.checks if c.name.startswith("workspace:")]
    assert names == [f"workspace:{world.lab}"]
    assert not [c for c in da.diagnose(account).checks if c.name.startswith("workspace:")]


def test_async_diagnose_checks_workspaces(async_account: da.AsyncAccountClient, world: World):
    locked = world.fake.add_workspace("locked", deployment_name="dbc-locked")

    async def main() -> da.Diagnosis:
        try:
            return await da.adiagnose(async_account, workspaces=True)
        finally:
            await async_account.close()

    report = asyncio.run(main())
    assert report[f"workspace:{locked}"].ok is False
    assert report[f"workspace:{world.lab}"].ok is True


def test_a_token_endpoint_that_refuses_is_the_same_typed_error(clock):
    fake = FakeAccount(
        account_id=ACCOUNT_ID,
        clock=lambda: clock.now().timestamp(),
        behaviour=Behaviour(workspace_token_for_unassigned=False),
    )
    sp = fake.add_service_principal("connector")
    locked = fake.add_workspace("locked", deployment_name="dbc-locked")
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id, rate_limits=None)
    secrets = da.StaticSecretStore(sp.client_id, sp.client_secret)
    with da.AccountClient(
        config, secrets=secrets, transport=fake.transport(), clock=clock
    ) as account:
        ws = da.WorkspaceClient.for_workspace(account, locked)
        with pytest.raises(da.WorkspaceNotAssignedError) as caught:
            ws.metastore_assignment()
        assert caught.value.workspace_id == locked
        assert sp.client_secret not in str(caught.value)
        assert da.diagnose(account, workspaces=True)[f"workspace:{locked}"].ok is False


def test_a_workspace_token_is_its_own(account: da.AccountClient, world: World):
    """Each workspace host gets a token from its own endpoint, once per lifetime."""
    reader = da.CatalogReader(account)
    reader.read()
    tokens = [r for r in world.fake.log if r.path.endswith("/oidc/v1/token")]
    assert sorted(r.workspace_id for r in tokens) == sorted(
        [world.analytics, world.reporting, world.lab]
    )
    reader.read(refresh=True)
    assert len([r for r in world.fake.log if r.path.endswith("/oidc/v1/token")]) == 3
