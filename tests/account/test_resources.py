"""The resource classes people call: exported, documented, and `groups.get_by_name`."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import databricks_access as da
from databricks_access.testing import FakeAccount

ACCOUNT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

RESOURCES = {
    "groups": ("Groups", "AsyncGroups"),
    "users": ("Users", "AsyncUsers"),
    "service_principals": ("ServicePrincipals", "AsyncServicePrincipals"),
    "group_managers": ("GroupManagers", "AsyncGroupManagers"),
    "workspaces": ("Workspaces", "AsyncWorkspaces"),
    "workspace_assignments": ("WorkspaceAssignments", "AsyncWorkspaceAssignments"),
}


@pytest.fixture
def fake():
    account = FakeAccount(account_id=ACCOUNT)
    account.add_group("prod-data-readers")
    account.add_group("prod-data-readers-eu")
    return account


def _config(fake: FakeAccount) -> da.AccountConfig:
    return da.AccountConfig(host=fake.host, account_id=fake.account_id)


def _secrets(fake: FakeAccount) -> da.StaticSecretStore:
    sp = fake.add_service_principal("connector")
    return da.StaticSecretStore(sp.client_id, sp.client_secret)


@pytest.mark.parametrize("attribute", sorted(RESOURCES))
def test_each_client_attribute_is_an_exported_class(fake, attribute):
    sync_name, async_name = RESOURCES[attribute]
    sync_cls, async_cls = getattr(da, sync_name), getattr(da, async_name)
    assert sync_cls.__module__ == async_cls.__module__ == "databricks_access"
    secrets = _secrets(fake)
    with da.AccountClient(_config(fake), secrets=secrets, transport=fake.transport()) as client:
        assert type(getattr(client, attribute)) is sync_cls
    async_client = da.AsyncAccountClient(_config(fake), secrets=secrets, transport=fake.transport())
    assert type(getattr(async_client, attribute)) is async_cls


def test_get_by_name_returns_the_exact_match(fake):
    wanted = fake.find_group("prod-data-readers")
    with da.AccountClient(
        _config(fake), secrets=_secrets(fake), transport=fake.transport()
    ) as client:
        group = client.groups.get_by_name("prod-data-readers")
    assert isinstance(group, da.Group)
    assert (group.id, group.display_name) == (wanted, "prod-data-readers")


def test_get_by_name_raises_not_found_naming_the_group(fake):
    with da.AccountClient(
        _config(fake), secrets=_secrets(fake), transport=fake.transport()
    ) as client:
        with pytest.raises(da.NotFoundError, match="'prod-data'") as caught:
            client.groups.get_by_name("prod-data")
    assert caught.value.status_code == 404


def test_async_get_by_name(fake):
    wanted = fake.find_group("prod-data-readers-eu")

    async def main() -> tuple[da.Group, da.NotFoundError]:
        async with da.AsyncAccountClient(
            _config(fake), secrets=_secrets(fake), transport=fake.transport()
        ) as client:
            group = await client.groups.get_by_name("prod-data-readers-eu")
            with pytest.raises(da.NotFoundError) as caught:
                await client.groups.get_by_name("no-such-group")
            return group, caught.value

    group, error = asyncio.run(main())
    assert group.id == wanted
    assert "'no-such-group'" in str(error)


def test_every_public_method_of_a_resource_is_documented():
    for sync_name, async_name in RESOURCES.values():
        for name in (sync_name, async_name):
            cls = getattr(da, name)
            methods = [m for m, _ in inspect.getmembers(cls) if not m.startswith("_")]
            assert methods, name
            for method in methods:
                assert inspect.getdoc(getattr(cls, method)), f"{name}.{method}"


def test_members_tell_not_fetched_from_empty(fake):
    empty = fake.add_group("nobody-here")
    with da.AccountClient(
        _config(fake), secrets=_secrets(fake), transport=fake.transport()
    ) as client:
        listed = {g.display_name: g for g in client.groups.list()}
        found = client.groups.get_by_name("nobody-here")
        read = client.groups.get(empty)
    assert listed["nobody-here"].members is None  # a listing carries no members
    assert found.members is None
    assert read.members == ()  # read with its members: there are none
    assert "not fetched" in listed["nobody-here"]._repr_html_()
    assert "not fetched" not in read._repr_html_()


def test_async_members_tell_not_fetched_from_empty(fake):
    empty = fake.add_group("nobody-here")
    alice = fake.add_user("alice@example.com")
    readers = fake.find_group("prod-data-readers")
    fake.add_member(readers, alice)

    async def main() -> tuple[da.Group, da.Group, da.Group]:
        async with da.AsyncAccountClient(
            _config(fake), secrets=_secrets(fake), transport=fake.transport()
        ) as client:
            listed = [g async for g in client.groups.list() if g.id == readers]
            return listed[0], await client.groups.get(empty), await client.groups.get(readers)

    listed, read_empty, read_full = asyncio.run(main())
    assert listed.members is None
    assert read_empty.members == ()
    assert read_full.members is not None
    assert [m.id for m in read_full.members] == [alice]
