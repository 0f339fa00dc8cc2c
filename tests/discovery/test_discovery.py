"""Discovery against the emulator: an account of realistic size, nested groups, paging."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import json
import math
import re
import subprocess
import sys
import threading
import time
import types
from collections import Counter
from pathlib import Path
from typing import ClassVar

import attrs
import httpx
import pytest
import respx

import databricks_access as da
from databricks_access import (
    Access,
    DiscoveryFailure,
    Inventory,
    adiscover,
    discover,
    tqdm_progress,
)
from databricks_access._discovery import progress as _progress
from databricks_access._discovery.discovery import DiscoveryOptions
from databricks_access._discovery.progress import TqdmProgress
from databricks_access._util import html as _html
from databricks_access._util.html import render_html, render_table
from databricks_access.testing import (
    EmptyPage,
    FakeAccount,
    Fault,
    FaultPlan,
    OperationClass,
    RequestRecord,
)
from helpers.doctests import run_doctests

PAGE = 50  # the emulator's page cap in these tests: paging is exercised everywhere
USERS, GROUPS, MEMBERSHIPS, SPS, WORKSPACES, ASSIGNED = 3000, 300, 20000, 20, 5, 50
API_CLASSES = (OperationClass.GET, OperationClass.LIST)


@attrs.frozen
class Account:
    """What a seeded account holds, for the assertions."""

    users: tuple[str, ...]
    groups: tuple[str, ...]  # every group, the nested ones included
    workspaces: tuple[int, ...]
    service_principals: int
    memberships: int
    a: str
    b: str
    c: str
    alice: str  # a direct member of C only
    robot: str  # a service principal, a direct member of B only
    bob: str  # assigned directly to the nested workspace
    nested_ws: int


def build(fake, *, users, groups, memberships, sps, workspaces, assigned, page=PAGE) -> Account:
    """Seed `fake` (whose connector exists already) and add nested groups A ∋ B ∋ C ∋ A."""
    seeded = fake.seed(
        users=users,
        groups=groups,
        memberships=memberships,
        service_principals=sps,
        workspaces=workspaces,
        assignments_per_workspace=assigned,
    )
    alice = fake.add_user("alice@example.com", "Alice")
    bob = fake.add_user("bob@example.com", "Bob")
    robot = fake.add_service_principal("robot", admin=False).id
    c = fake.add_group("nested-c", members=[alice])
    b = fake.add_group("nested-b", members=[c, robot])
    a = fake.add_group("nested-a", members=[b])
    fake.add_member(c, a)
    nested_ws = fake.add_workspace("nested")
    fake.assign(nested_ws, a, ["ADMIN"])
    fake.assign(nested_ws, bob, ["USER"])
    fake.set_group_managers(a, ["users/alice@example.com"])
    fake.set_group_managers(seeded.group_ids[0], ["users/bob@example.com", "groups/nested-b"])
    fake.behaviour = attrs.evolve(fake.behaviour, page_cap=page)
    fake.reset_log()
    return Account(
        users=(*seeded.user_ids, alice, bob),
        groups=(*seeded.group_ids, c, b, a),
        workspaces=(*seeded.workspace_ids, nested_ws),
        service_principals=sps + 2,  # the seeded ones, the connector and the robot
        memberships=memberships + 5,
        a=a,
        b=b,
        c=c,
        alice=alice,
        robot=robot,
        bob=bob,
        nested_ws=nested_ws,
    )


@attrs.frozen
class Discovered:
    """The large account, discovered once for every test that only reads the result."""

    fake: FakeAccount
    account: Account
    inventory: Inventory
    log: tuple[RequestRecord, ...]
    counts: dict[OperationClass, int]
    progress: list[tuple[str, int, int | None]]
    config: da.AccountConfig
    credentials: da.StaticSecretStore
    clock: da.ManualClock


@pytest.fixture(scope="module")
def big() -> Discovered:
    clock = da.ManualClock()
    fake = FakeAccount(clock=lambda: clock.now().timestamp())
    connector = fake.add_service_principal("connector")
    credentials = da.StaticSecretStore(connector.client_id, connector.client_secret)
    account = build(
        fake,
        users=USERS,
        groups=GROUPS,
        memberships=MEMBERSHIPS,
        sps=SPS,
        workspaces=WORKSPACES,
        assigned=ASSIGNED,
    )
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    calls: list[tuple[str, int, int | None]] = []
    lock = threading.Lock()

    def progress(stage, done, total):
        with lock:
            calls.append((stage, done, total))

    started = clock.now()
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as client:
        inventory = discover(client, progress=progress)
    assert inventory.generated_at == started  # the client's throttle moved the clock since
    return Discovered(
        fake, account, inventory, fake.log, api_counts(fake), calls, config, credentials, clock
    )


@pytest.fixture
def account(fake, credentials) -> Account:
    """A smaller account for tests that change it or discover it their own way."""
    # `credentials` first: its service principal is one of the account's too.
    return build(
        fake, users=300, groups=40, memberships=1200, sps=3, workspaces=3, assigned=10, page=20
    )


def pages(n: int, size: int) -> int:
    """SCIM list requests for n resources: totalResults ends the listing, no empty page."""
    return max(1, math.ceil(n / size))


def expected_requests(fake, account: Account, *, groups=True, workspaces=True, managers=True):
    page = fake.behaviour.page_cap
    n_groups = len(account.groups)
    listed = pages(n_groups, page) + pages(len(account.users), page)
    listed += pages(account.service_principals, page)
    gets = n_groups * (int(groups) + int(managers))
    if workspaces:
        size = fake.behaviour.assignments_page_size
        listed += 1 + sum(pages(len(fake.assignments(w)), size) for w in account.workspaces)
    return {k: v for k, v in {OperationClass.LIST: listed, OperationClass.GET: gets}.items() if v}


def api_requests(log):
    return [r for r in log if r.op_class in API_CLASSES]


def api_counts(fake):
    return {k: v for k, v in fake.counts.items() if k in API_CLASSES and v}


class Rewriting(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Wraps the emulator's transport: counts requests in flight, may rewrite replies."""

    def __init__(self, inner, rewrite=None, pause: float = 0.0) -> None:
        self.inner = inner
        self.rewrite = rewrite
        self.pause = pause
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def _enter(self, request) -> bool:
        api = "/oidc/" not in request.url.path and "/.well-known/" not in request.url.path
        if api:
            with self.lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
        return api

    def _exit(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def _rewritten(self, request, response: httpx.Response) -> httpx.Response:
        if self.rewrite is None or not response.is_success or "/scim/" not in request.url.path:
            return response
        data = self.rewrite(request, json.loads(response.content))
        return httpx.Response(response.status_code, json=data)

    def handle_request(self, request):
        api = self._enter(request)
        try:
            if api and self.pause:
                time.sleep(self.pause)
            response = self.inner.handle_request(request)
            response.read()
        finally:
            if api:
                self._exit()
        return self._rewritten(request, response)

    async def handle_async_request(self, request):
        api = self._enter(request)
        try:
            if api and self.pause:
                await asyncio.sleep(self.pause)
            response = await self.inner.handle_async_request(request)
            await response.aread()
        finally:
            if api:
                self._exit()
        return self._rewritten(request, response)


def client_on(transport, config, credentials, clock):
    return da.AccountClient(config, secrets=credentials, transport=transport, clock=clock)


# -- what it finds ---------------------------------------------------------------------------


def test_inventory_is_the_account(big):
    fake, account, inventory = big.fake, big.account, big.inventory

    assert not inventory.errors
    assert set(inventory.groups) == set(account.groups)
    assert set(inventory.users) == set(account.users)
    assert len(inventory.service_principals) == account.service_principals
    for group_id in account.groups:
        members = inventory.members[group_id]
        assert {m.id for m in members} == fake.group_members(group_id)
        assert inventory.groups[group_id].members == members
        assert all(m.kind is not None for m in members)
    assert sum(len(m) for m in inventory.members.values()) == account.memberships
    assert set(inventory.workspaces) == set(account.workspaces)
    for workspace_id in account.workspaces:
        found = {
            str(a.principal.principal_id): a.permissions
            for a in inventory.assignments[workspace_id]
        }
        assert found == dict(fake.assignments(workspace_id))
    assert set(inventory.managers) == set(account.groups)
    assert inventory.managers[account.a] == ("users/alice@example.com",)
    assert inventory.managers[account.groups[0]] == ("users/bob@example.com", "groups/nested-b")
    assert inventory.managers[account.groups[1]] == ()
    assert inventory.generated_at <= big.clock.now()


def test_no_request_is_sent_twice_and_counts_are_exact(big):
    # 3000 users, 300 groups, 20 service principals, 5 workspaces, pages of 50.
    assert big.counts == expected_requests(big.fake, big.account)
    assert big.counts == {OperationClass.LIST: 61 + 7 + 1 + 1 + 6, OperationClass.GET: 2 * 303}
    seen = Counter((r.method, r.path, r.query) for r in api_requests(big.log))
    assert [k for k, n in seen.items() if n > 1] == []
    assert all(r.status == 200 for r in api_requests(big.log))
    assert [r.op_class for r in big.log].count(OperationClass.TOKEN) == 1


def test_lists_are_projected_and_groups_fetched_projected(big):
    requests = api_requests(big.log)
    queries = {r.path.rsplit("/", 1)[1]: r.query for r in requests if "startIndex" in r.query}
    assert "attributes=id,displayName,roles" in queries["Groups"]
    assert "attributes=id,userName,displayName,active,roles" in queries["Users"]
    assert "attributes=id,applicationId,displayName,active,roles" in queries["ServicePrincipals"]
    group_gets = [r for r in requests if "/Groups/" in r.path]
    assert len(group_gets) == len(big.account.groups)
    assert {r.query for r in group_gets} == {"attributes=id,members"}


@pytest.mark.parametrize(
    ("groups", "workspaces", "managers"),
    [(True, True, True), (False, False, False), (True, False, False), (False, True, True)],
)
def test_options_decide_what_is_read(fake, client, account, groups, workspaces, managers):
    inventory = discover(client, groups=groups, workspaces=workspaces, managers=managers)

    assert api_counts(fake) == expected_requests(
        fake, account, groups=groups, workspaces=workspaces, managers=managers
    )
    seen = Counter((r.method, r.path, r.query) for r in api_requests(fake.log))
    assert max(seen.values()) == 1
    assert set(inventory.groups) == set(account.groups)  # always listed
    assert bool(inventory.members) is groups
    assert bool(inventory.workspaces) is workspaces
    assert bool(inventory.managers) is managers
    if not workspaces:
        with pytest.raises(KeyError, match=r"assignments of workspace .* not discovered"):
            inventory.who_can_access(account.nested_ws)
    elif not groups:
        with pytest.raises(KeyError, match=f"members of group {account.a} were not discovered"):
            inventory.who_can_access(account.nested_ws)


@pytest.mark.parametrize(
    "behaviour",
    [
        {"projection_keeps_id": False},
        {"group_list_members": True, "empty_page": EmptyPage.EMPTY_OBJECT},
        {"empty_page": EmptyPage.EMPTY_RESOURCES, "assignments_page_size": 3},
    ],
)
def test_server_variants_change_nothing(fake, client, account, behaviour):
    fake.behaviour = attrs.evolve(fake.behaviour, **behaviour)
    inventory = discover(client)

    assert not inventory.errors
    assert api_counts(fake) == expected_requests(fake, account)
    for group_id in account.groups:
        assert {m.id for m in inventory.members[group_id]} == fake.group_members(group_id)
    assert sum(len(a) for a in inventory.assignments.values()) == 3 * 10 + 2


def test_scim_2_1_pages_of_100(fake, credentials, clock, account):
    fake.behaviour = attrs.evolve(fake.behaviour, page_cap=1000)
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id, scim_version="2.1")
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as client:
        inventory = discover(client)
    assert len(inventory.users) == len(account.users)
    lists = [r for r in fake.log if r.op_class is OperationClass.LIST and "/scim/" in r.path]
    assert all("count=100" in r.query for r in lists)
    assert len(lists) == pages(len(account.groups), 100) + pages(len(account.users), 100) + 1


def test_invalid_options_fail_before_any_request(fake, client):
    for bad in (0, -1, 1000, 2.5, True):
        with pytest.raises(da.ConfigError, match="concurrency"):
            discover(client, concurrency=bad)
    with pytest.raises(da.ConfigError, match="groups"):
        DiscoveryOptions(groups="yes")
    assert api_counts(fake) == {}


# -- questions -------------------------------------------------------------------------------


def test_effective_groups_follow_nesting_and_survive_a_cycle(big):
    fake, account, inventory = big.fake, big.account, big.inventory
    cycle = {account.a, account.b, account.c}

    assert inventory.effective_groups(account.alice) == cycle
    assert (
        inventory.effective_groups(da.PrincipalRef(da.PrincipalKind.USER, account.alice)) == cycle
    )
    assert inventory.effective_groups(inventory.service_principals[account.robot]) == cycle
    # A group belongs to itself only through the cycle.
    assert inventory.effective_groups(account.a) == cycle
    assert inventory.effective_groups(inventory.groups[account.b]) == cycle
    assert inventory.effective_groups("no-such-principal") == frozenset()
    # Seeded groups are flat: effective groups are the direct ones.
    for user_id in account.users[:100]:
        assert inventory.effective_groups(user_id) == fake.groups_of(user_id)


def test_who_can_access_through_nested_groups(big):
    account, inventory = big.account, big.inventory

    found = inventory.who_can_access(account.nested_ws)
    by_principal = {a.principal.id: a for a in found}
    assert set(by_principal) == {account.alice, account.robot, account.bob}
    alice, robot, bob = (by_principal[p] for p in (account.alice, account.robot, account.bob))
    assert alice.via == (account.a, account.b, account.c)
    assert alice.permissions == ("ADMIN",)
    assert alice.group_id == account.a
    assert alice.display == "Alice"
    assert not alice.direct
    assert robot.via == (account.a, account.b)
    assert robot.principal.kind is da.PrincipalKind.SERVICE_PRINCIPAL
    assert bob.direct
    assert bob.group_id is None
    assert bob.permissions == ("USER",)
    assert bob.to_dict() == {
        "workspace_id": account.nested_ws,
        "principal_id": account.bob,
        "principal_kind": "user",
        "principal_name": "Bob",
        "permissions": "USER",
        "via": "",
    }
    assert found == inventory.who_can_access(inventory.workspaces[account.nested_ws])


def test_who_can_access_matches_the_account(big):
    fake, inventory = big.fake, big.inventory
    for workspace_id in big.account.workspaces[:-1]:
        expected = set()
        for group_id in fake.assignments(workspace_id):
            expected |= {(m, group_id) for m in fake.group_members(group_id)}
        found = inventory.who_can_access(workspace_id)
        assert {(a.principal.id, a.group_id) for a in found} == expected
        assert all(isinstance(a, Access) and a.permissions == ("USER",) for a in found)


def lease(principal, group_id, state, *, ended=None, at=None):
    at = at or dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return da.Lease(
        id=f"lease-{principal.id}-{group_id}-{state.value}",
        principal=principal,
        group_id=group_id,
        state=state,
        granted_at=at,
        expires_at=at + dt.timedelta(hours=1),
        requester="alice",
        reason="INC-1",
        updated_at=at,
        ended_at=ended,
    )


def test_standing_members_are_members_without_a_lease(fake, client, clock):
    user = da.PrincipalKind.USER
    ids = [fake.add_user(f"m{i}@example.com", f"M{i}") for i in range(6)]
    ops = fake.add_group("ops", members=ids)
    other = fake.add_group("other", members=ids[:1])
    inventory = discover(client)
    now = inventory.generated_at
    refs = [da.PrincipalRef(user, i) for i in ids]
    leases = [
        lease(refs[0], ops, da.LeaseState.ACTIVE),
        lease(refs[1], ops, da.LeaseState.REVOKED, ended=now - dt.timedelta(minutes=1)),
        lease(refs[2], ops, da.LeaseState.REVOKED, ended=now - dt.timedelta(hours=2)),
        lease(refs[3], ops, da.LeaseState.REVOKE_FAILED),
        lease(refs[4], other, da.LeaseState.ACTIVE),  # another group: does not count
        lease(refs[5], ops, da.LeaseState.GRANT_FAILED),
    ]

    standing = inventory.standing_members([ops, inventory.groups[other]], leases)

    assert [(s.group_id, s.principal_id) for s in standing] == [
        (ops, ids[2]),
        (ops, ids[4]),
        (ops, ids[5]),
        (other, ids[0]),
    ]
    assert all(
        s.kind == "standing" and s.principal == da.PrincipalRef(user, s.principal_id)
        for s in standing
    )
    assert standing[0].display == "M2"
    # A shorter window lets the recently revoked member count as standing too.
    tight = inventory.standing_members([ops], leases, consistency_window=dt.timedelta(0))
    assert ids[1] in {s.principal_id for s in tight}
    with pytest.raises(KeyError, match="no-such-group"):
        inventory.standing_members(["no-such-group"], leases)


def test_roles_come_from_the_projected_lists(fake, config, credentials, clock):
    admin = fake.add_user("admin@example.com")
    fake.add_user("plain@example.com")
    robot = fake.add_service_principal("robot")  # an account admin, as the emulator renders
    fake.add_service_principal("intern", admin=False)
    connector = fake.find_service_principal(credentials.get_credentials().client_id)

    def add_roles(request, data):
        # A role listed twice, as a server may send it.
        for resource in data.get("Resources", []):
            if resource["id"] == admin:
                resource["roles"] = [{"value": "account_admin"}, {"value": "account_admin"}]
        return data

    transport = Rewriting(fake.transport(), add_roles)
    with client_on(transport, config, credentials, clock) as client:
        inventory = discover(client)

    assert inventory.roles == {
        admin: ("account_admin",),
        robot.id: ("account_admin",),
        connector: ("account_admin",),
    }
    rows = inventory.records("roles")
    assert {(r["principal_id"], r["principal_kind"], r["role"]) for r in rows} == {
        (admin, "user", "account_admin"),
        (robot.id, "service_principal", "account_admin"),
        (connector, "service_principal", "account_admin"),
    }


def test_roles_given_through_the_client_show_per_principal(fake, client, async_client_factory):
    """Roles on users, service principals and groups, set through the API, as read back."""
    user = client.users.create("ops@example.com", roles=["account_admin"])
    bot = client.service_principals.create("bot")
    group = client.groups.create("billing")
    client.service_principals.add_roles(bot, ["account_admin"])
    client.groups.add_roles(group, ["billing_admin"])
    client.users.remove_roles(user, ["account_admin"])
    client.users.add_roles(user, ["marketplace_admin"])
    connector = fake.find_service_principal(client.auth.secrets.get_credentials().client_id)
    expected = {
        user.id: ("marketplace_admin",),
        bot.id: ("account_admin",),
        group.id: ("billing_admin",),
        connector: ("account_admin",),
    }
    assert discover(client).roles == expected

    async def main():
        async with async_client_factory() as async_client:
            return await adiscover(async_client)

    inventory = asyncio.run(main())
    assert inventory.roles == expected
    kinds = {(r["principal_id"], r["principal_kind"]) for r in inventory.records("roles")}
    assert (group.id, "group") in kinds


def test_member_kind_is_inferred_when_the_server_sends_no_ref(fake, config, credentials, clock):
    user = fake.add_user("u@example.com")
    inner = fake.add_group("inner")
    outer = fake.add_group("outer", members=[user, inner])

    def strip_refs(request, data):
        for member in data.get("members", []):
            member.pop("$ref", None)
        return data

    with client_on(Rewriting(fake.transport(), strip_refs), config, credentials, clock) as client:
        inventory = discover(client)

    kinds = {m.id: m.kind for m in inventory.members[outer]}
    assert kinds == {user: da.PrincipalKind.USER, inner: da.PrincipalKind.GROUP}


# -- failures --------------------------------------------------------------------------------


def test_a_group_deleted_mid_run_is_recorded_not_raised(fake, client, account):
    victim = account.groups[7]

    def delete_on_get(request):
        if request.method == "GET" and request.path.endswith(f"/Groups/{victim}"):
            fake.delete_principal(victim)

    fake.interceptor = delete_on_get
    inventory = discover(client)

    assert victim not in inventory.groups
    assert victim not in inventory.members
    assert victim not in inventory.managers
    assert len(inventory.groups) == len(account.groups) - 1
    failures = [e for e in inventory.errors if e.stage == "members"]
    assert failures == [
        DiscoveryFailure(
            stage="members",
            item=victim,
            message=failures[0].message,
            status_code=404,
            error_code=failures[0].error_code,
        )
    ]
    assert {e.item for e in inventory.errors} == {victim}
    assert inventory.records("errors")[0]["status_code"] == 404


def test_a_workspace_whose_assignments_fail_is_recorded(fake, client, account):
    broken = account.workspaces[1]
    FaultPlan([Fault.error(403, path=f"/workspaces/{broken}/permissionassignments")]).install(fake)

    inventory = discover(client)

    assert broken not in inventory.assignments
    assert broken in inventory.workspaces
    assert [(e.stage, e.item, e.status_code) for e in inventory.errors] == [
        ("assignments", str(broken), 403)
    ]
    with pytest.raises(KeyError):
        inventory.who_can_access(broken)
    assert len(inventory.who_can_access(account.nested_ws)) == 3


def test_a_failed_account_listing_raises(fake, client, account):
    FaultPlan([Fault.error(403, path=r"/scim/v2/Users$")]).install(fake)
    with pytest.raises(da.PermissionDeniedError):
        discover(client)


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_requests_in_flight_stay_within_the_bound(fake, config, credentials, clock, limit):
    fake.seed(users=200, groups=60, memberships=600, workspaces=3, assignments_per_workspace=10)
    fake.behaviour = attrs.evolve(fake.behaviour, page_cap=20)
    transport = Rewriting(fake.transport(), pause=0.002)
    with client_on(transport, config, credentials, clock) as client:
        discover(client, concurrency=limit)

    assert transport.peak <= limit
    if limit > 1:
        assert transport.peak > 1  # and they did run concurrently


def test_async_requests_in_flight_stay_within_the_bound(fake, config, credentials, clock):
    fake.seed(users=200, groups=60, memberships=600, workspaces=3, assignments_per_workspace=10)
    transport = Rewriting(fake.transport(), pause=0.002)

    async def main():
        async with da.AsyncAccountClient(
            config, secrets=credentials, transport=transport, clock=clock
        ) as client:
            return await adiscover(client, concurrency=5)

    asyncio.run(main())
    assert 1 < transport.peak <= 5


def test_async_twin_gives_the_same_inventory(big):
    before = api_counts(big.fake)

    async def main():
        async with da.AsyncAccountClient(
            big.config, secrets=big.credentials, transport=big.fake.transport(), clock=big.clock
        ) as client:
            return await adiscover(client)

    found = asyncio.run(main())
    # The same inventory, taken later on the shared clock (the throttle moves it).
    assert found.generated_at > big.inventory.generated_at
    found = attrs.evolve(found, generated_at=big.inventory.generated_at)
    assert found == big.inventory
    assert found.to_dict() == big.inventory.to_dict()
    after = api_counts(big.fake)
    assert {k: after[k] - before[k] for k in after} == big.counts


def test_json_round_trip(fake, client, account):
    victim = account.groups[3]
    fake.interceptor = lambda r: (
        fake.delete_principal(victim) if r.path.endswith(f"/Groups/{victim}") else None
    )
    inventory = discover(client)
    assert inventory.errors

    text = inventory.to_json()
    again = Inventory.from_json(text)
    assert again == inventory
    assert again.effective_groups(account.alice) == inventory.effective_groups(account.alice)
    assert json.loads(text)["format"] == "databricks_access.inventory/1"
    with pytest.raises(ValueError, match="not an inventory"):
        Inventory.from_dict({"format": "something else"})
    with pytest.raises(ValueError, match="not a valid inventory"):
        Inventory.from_dict({**json.loads(text), "groups": [{"displayName": "no id"}]})


def test_records_are_flat_tables(big):
    account, inventory = big.account, big.inventory
    scalar = (str, int, bool, type(None))

    memberships = inventory.records("memberships")
    assert len(memberships) == account.memberships
    assert set(memberships[0]) == {
        "group_id",
        "group_name",
        "member_id",
        "member_kind",
        "member_name",
    }
    alice_rows = [r for r in memberships if r["member_id"] == account.alice]
    assert alice_rows == [
        {
            "group_id": account.c,
            "group_name": "nested-c",
            "member_id": account.alice,
            "member_kind": "user",
            "member_name": "Alice",
        }
    ]
    assignments = inventory.records("assignments")
    assert len(assignments) == WORKSPACES * ASSIGNED + 2
    assert {
        "workspace_id": account.nested_ws,
        "workspace_name": "nested",
        "principal_id": account.a,
        "principal_kind": "group",
        "principal_name": "nested-a",
        "permission": "ADMIN",
    } in assignments
    sizes = {
        "groups": len(account.groups),
        "users": len(account.users),
        "service_principals": account.service_principals,
        "workspaces": len(account.workspaces),
        "managers": 3,
        "roles": account.service_principals - 1,  # every one but the robot is an admin
        "errors": 0,
    }
    for kind, size in sizes.items():
        rows = inventory.records(kind)
        assert len(rows) == size, kind
        assert all(isinstance(v, scalar) for row in rows for v in row.values())
    with pytest.raises(da.ConfigError, match="kind"):
        inventory.records("nope")


def test_html_escapes_user_data(fake, client):
    evil = "<script>alert(1)</script>"
    user = fake.add_user("x@example.com", evil)
    fake.add_group(evil, members=[user])
    inventory = discover(client)

    page = inventory._repr_html_()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    group = next(g for g in inventory.groups.values() if g.display_name == evil)
    for obj in (group, inventory.users[user], *group.members):
        html = render_html(obj)
        assert "&lt;script&gt;" in html
        assert "<script>" not in html
    assert "<script>" not in render_table(inventory.records("memberships"))
    assert "<script>" not in render_html(inventory.records("users"))
    assert "<script>" not in render_html({"name": evil})
    assert render_html(evil) == "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"


def test_html_of_a_lease_and_long_lists():
    at = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    item = lease(da.PrincipalRef("user", "42"), "7", da.LeaseState.ACTIVE, at=at)
    html = render_html(item)
    assert "<strong>Lease</strong>" in html
    assert "Users/42" in html
    assert "2024-01-01T00:00:00+00:00" in html
    assert "active" in html
    members = tuple(da.MemberRef(id=str(i), display=f"m{i}") for i in range(25))
    html = render_html(da.Group(id="1", display_name="big", members=members))
    assert "m0 (0)" in html
    assert "and 15 more" in html
    assert "and 5 more" in render_table([{"a": 1}] * 8, limit=3)
    assert "none" in render_table([], caption="Nothing")


def test_repr_is_a_summary(big):
    text = repr(big.inventory)
    assert text.startswith(f"Inventory(groups=303, users=3002, service_principals={SPS + 2}")
    assert len(text) < 300


# -- progress --------------------------------------------------------------------------------


def test_progress_reports_every_stage_to_its_end(big):
    account = big.account
    last = {}
    for stage, done, total in big.progress:
        assert total is None or done <= total
        assert done >= last.get(stage, (0, None))[0]
        last[stage] = (done, total)
    n, w = len(account.groups), len(account.workspaces)
    assert last == {
        "groups": (n, n),
        "workspaces": (w, w),
        "users": (len(account.users), len(account.users)),
        "service_principals": (account.service_principals, account.service_principals),
        "members": (n, n),
        "managers": (n, n),
        "assignments": (w, w),
    }
    # Totals of the per-item stages are announced before their first item.
    firsts = {}
    for stage, done, total in big.progress:
        firsts.setdefault(stage, (done, total))
    assert firsts["members"] == (0, n)


class FakeBar:
    """Enough of tqdm's bar for the adapter."""

    made: ClassVar[list[FakeBar]] = []

    def __init__(self, *, desc, total, **options):
        self.desc, self.total, self.options = desc, total, options
        self.n = 0
        self.closed = False
        FakeBar.made.append(self)

    def update(self, by):
        self.n += by

    def refresh(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch):
    installed = importlib.util.find_spec("tqdm") is not None
    if not installed:
        module = types.ModuleType("tqdm.auto")
        module.tqdm = FakeBar
        package = types.ModuleType("tqdm")
        package.auto = module
        monkeypatch.setitem(sys.modules, "tqdm", package)
        monkeypatch.setitem(sys.modules, "tqdm.auto", module)
    FakeBar.made = []
    return installed


def test_tqdm_progress_draws_a_bar_per_stage(fake, client, fake_tqdm):
    with tqdm_progress(leave=False, disable=True) as progress:
        assert isinstance(progress, TqdmProgress)
        discover(client, progress=progress)
    if not fake_tqdm:
        stages = {bar.desc: bar for bar in FakeBar.made}
        assert set(stages) == {
            "groups",
            "workspaces",
            "users",
            "service_principals",
            "members",
            "managers",
            "assignments",
        }
        assert all(bar.closed and bar.n == bar.total for bar in stages.values())
        assert stages["members"].options == {"leave": False, "disable": True}


def test_tqdm_progress_closes_bars_left_open(fake_tqdm):
    if fake_tqdm:
        pytest.skip("checks the adapter's bookkeeping with a fake tqdm")
    with tqdm_progress() as progress:
        progress("users", 10, None)
        progress("users", 20, None)
        progress("members", 3, 3)
        progress("members", 3, 3)  # a finished stage stays closed
    users, members = FakeBar.made
    assert (users.n, users.closed) == (20, True)
    assert (members.n, members.total, members.closed) == (3, 3, True)
    assert len(FakeBar.made) == 2


def test_tqdm_progress_without_tqdm_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        tqdm_progress()


def test_discovery_imports_no_tqdm():
    code = (
        "import sys, databricks_access._discovery.discovery as d, databricks_access._util.html;"
        "print('tqdm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the docs page ---------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "discovery.md"


def test_docs_examples_run(monkeypatch, capsys):
    # ```python blocks run; ```py blocks need tqdm or pandas and are only compiled.
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 5
    for block in re.findall(r"```py\n(.*?)```", text, re.DOTALL):
        compile(block, str(DOCS), "exec")
    account = re.search(r'account_id="([0-9a-f-]{36})"', text).group(1)
    fake = FakeAccount(account_id=account)
    sp = fake.add_service_principal("connector")
    alice = fake.add_user("alice@example.com", "Alice")
    bob = fake.add_user("bob@example.com", "Bob")
    team = fake.add_group("data-team", members=[alice])
    fake.add_group("jit-admins", members=[bob])
    everyone = fake.add_group("everyone", members=[team])
    fake.assign(fake.add_workspace("analytics"), everyone, ["USER"])
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", sp.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", sp.client_secret)
    # Until the package exports them (the lead's part), give the page its public names.
    for name, value in {
        "discover": discover,
        "adiscover": adiscover,
        "Inventory": Inventory,
    }.items():
        monkeypatch.setattr(da, name, value, raising=False)
    transport = fake.transport()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="accounts.cloud.databricks.com").mock(
            side_effect=transport.handle_request
        )
        namespace: dict[str, object] = {"__name__": "__docs__"}
        for block in blocks:
            exec(compile(block, str(DOCS), "exec"), namespace)  # noqa: S102 - the page's code
    printed = capsys.readouterr().out
    assert "Inventory(groups=3" in printed
    assert "data-team" in printed
    assert "everyone" in printed
    assert "analytics Alice ('USER',) everyone > data-team" in printed
    assert "Bob holds standing membership" in printed


def test_doctests():
    for module in (_html, _progress):
        assert run_doctests(module).failed == 0


def test_render_html_is_a_repr_html_when_attached_to_a_model():
    # What the models do: `_repr_html_ = render_html` in the class body.
    @attrs.frozen
    class Probe:
        name: str
        tags: tuple[str, ...] = ()
        _repr_html_ = render_html

    html = Probe("<b>bold</b>", ("<i>",))._repr_html_()
    assert "<strong>Probe</strong>" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;i&gt;" in html
    assert "<b>" not in html
