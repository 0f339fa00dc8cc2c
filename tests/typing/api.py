"""Checked by mypy, never run: what the public API's calls return, as a user sees them.

`tests/project/test_typing.py` runs `mypy --strict` on this folder. Every public entry
point a connector calls is checked with `assert_type`, sync and async side by side, so a
return type that drifts (a `Group | None` where a `Group` was promised, an `Any` leaking
through a seam) fails CI. Misuses that must not type-check are marked with the error they
must raise: under `--strict` an ignore that is no longer needed is itself an error.
"""

from __future__ import annotations

import datetime as dt

from typing_extensions import assert_type

import databricks_access as da


def account(client: da.AccountClient) -> None:
    assert_type(client.groups, da.Groups)
    assert_type(client.users, da.Users)
    assert_type(client.service_principals, da.ServicePrincipals)
    assert_type(client.workspaces, da.Workspaces)
    assert_type(client.workspace_assignments, da.WorkspaceAssignments)
    assert_type(client.group_managers, da.GroupManagers)

    assert_type(client.groups.get("123"), da.Group)
    assert_type(client.groups.find("readers"), da.Group | None)
    assert_type(client.groups.get_by_name("readers"), da.Group)
    assert_type(client.groups.ensure("readers"), da.Group)
    assert_type(client.groups.members("123"), da.Pager[da.MemberRef])
    assert_type(client.groups.add_members("123", ["456"]), None)
    assert_type(client.users.get("456"), da.User)
    assert_type(client.users.find("alice@example.com"), da.User | None)
    assert_type(client.service_principals.get("789"), da.ServicePrincipal)
    assert_type(client.workspaces.list(), da.Pager[da.Workspace])
    assert_type(client.resolve_principal("alice@example.com"), da.PrincipalRef)
    for group in client.groups.list():
        assert_type(group, da.Group)
    # A group's display name is not an id: `get` takes a group or its id, not a number.
    client.groups.get(123)  # type: ignore[arg-type]


async def async_account(client: da.AsyncAccountClient) -> None:
    assert_type(client.groups, da.AsyncGroups)
    assert_type(client.users, da.AsyncUsers)
    assert_type(client.service_principals, da.AsyncServicePrincipals)
    assert_type(client.workspaces, da.AsyncWorkspaces)
    assert_type(client.workspace_assignments, da.AsyncWorkspaceAssignments)
    assert_type(client.group_managers, da.AsyncGroupManagers)

    assert_type(await client.groups.get("123"), da.Group)
    assert_type(await client.groups.find("readers"), da.Group | None)
    assert_type(await client.groups.get_by_name("readers"), da.Group)
    assert_type(client.groups.members("123"), da.AsyncPager[da.MemberRef])
    assert_type(await client.resolve_principal("alice@example.com"), da.PrincipalRef)
    async for group in client.groups.list():
        assert_type(group, da.Group)


def membership(manager: da.MembershipManager, group: da.Group) -> None:
    assert_type(manager.grant("alice@example.com", group), da.GrantResult)
    assert_type(manager.revoke("alice@example.com", group), da.RevokeResult)
    batch = manager.grant_many([("alice@example.com", group)])
    assert_type(batch, da.MembershipBatch[da.GrantResult])
    assert_type(batch.results, tuple[da.GrantResult, ...])


async def async_membership(manager: da.AsyncMembershipManager, group: da.Group) -> None:
    assert_type(await manager.grant("alice@example.com", group), da.GrantResult)
    assert_type(await manager.revoke("alice@example.com", group), da.RevokeResult)


def leases(tracker: da.LeaseTracker, group: da.Group) -> None:
    lease = tracker.grant(
        "alice@example.com", group, ttl="1h", requester="alice@example.com", reason="INC-1"
    )
    assert_type(lease, da.Lease)
    assert_type(lease.expires_at, dt.datetime)
    assert_type(tracker.extend(lease.id, dt.timedelta(minutes=30)), da.ExtendResult)
    assert_type(tracker.revoke(lease.id), da.Lease)
    assert_type(tracker.sweep(), da.SweepReport)
    assert_type(tracker.leases(state=da.LeaseState.ACTIVE), list[da.Lease])
    assert_type(tracker.reconcile([group], apply=False, remove_standing=False), da.DriftReport)
    # A ttl is a duration, not a date.
    tracker.grant(
        "alice@example.com",
        group,
        ttl=dt.datetime.now(dt.timezone.utc),  # type: ignore[arg-type]
        requester="a",
        reason="b",
    )


async def async_leases(tracker: da.AsyncLeaseTracker, group: da.Group) -> None:
    lease = await tracker.grant(
        "alice@example.com", group, ttl=3600, requester="alice@example.com", reason="INC-1"
    )
    assert_type(lease, da.Lease)
    assert_type(await tracker.sweep(), da.SweepReport)
    assert_type(await tracker.leases(), list[da.Lease])


def stores(store: da.LeaseStore, path: str) -> None:
    assert_type(store.get_lease("lease-1"), da.Lease | None)
    sqlite: da.LeaseStore = da.SqliteLeaseStore(path)
    memory: da.LeaseStore = da.MemoryLeaseStore()
    assert_type(sqlite.find_leases(), list[da.Lease])
    assert_type(memory.find_leases(), list[da.Lease])


async def async_stores(store: da.AsyncLeaseStore) -> None:
    assert_type(await store.get_lease("lease-1"), da.Lease | None)


def tools(client: da.AccountClient) -> None:
    assert_type(da.discover(client), da.Inventory)
    assert_type(da.diagnose(client), da.Diagnosis)
    assert_type(da.parse_duration("1h30m"), dt.timedelta)


async def async_tools(client: da.AsyncAccountClient) -> None:
    assert_type(await da.adiscover(client), da.Inventory)
    assert_type(await da.adiagnose(client), da.Diagnosis)
    # The sync tools refuse an async client.
    da.discover(client)  # type: ignore[arg-type]
