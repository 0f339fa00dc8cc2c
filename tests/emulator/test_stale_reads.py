"""Eventual consistency: membership reads that lag writes, and reads that go backwards."""

from __future__ import annotations

import itertools

import pytest

from databricks_access.testing import Behaviour, FakeAccount, StaleReads

from .conftest import Clock, add_members, remove_member


def stale(**settings) -> Behaviour:
    return Behaviour(stale_reads=StaleReads(**settings))


def members(api, scim, group: str) -> set[str]:
    return {m["value"] for m in api.get(f"{scim}/Groups/{group}").json().get("members", [])}


def groups(api, scim, principal: str, kind: str = "Users") -> set[str]:
    return {g["value"] for g in api.get(f"{scim}/{kind}/{principal}").json().get("groups", [])}


@pytest.fixture
def pair(fake: FakeAccount) -> tuple[str, str]:
    return fake.add_user("alice@example.com"), fake.add_group("readers")


def test_reads_are_consistent_by_default(fake, api, scim, pair):
    user, group = pair
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    assert members(api, scim, group) == {user}
    assert groups(api, scim, user) == {group}


def test_reads_lag_by_requests(fake, api, scim, pair):
    user, group = pair
    fake.behaviour = stale(lag_requests=3)
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))  # request n
    assert fake.group_members(group) == {user}  # the truth is immediate
    assert members(api, scim, group) == set()  # n + 1
    assert groups(api, scim, user) == set()  # n + 2
    assert members(api, scim, group) == {user}  # n + 3: visible
    assert groups(api, scim, user) == {group}


def test_removals_lag_too(fake, api, scim, pair):
    user, group = pair
    fake.add_member(group, user)
    fake.behaviour = stale(lag_requests=2)
    api.patch(f"{scim}/Groups/{group}", json=remove_member(user))
    assert members(api, scim, group) == {user}
    assert members(api, scim, group) == set()


def test_reads_lag_by_seconds_on_the_injected_clock(fake, api, scim, pair, clock: Clock):
    user, group = pair
    fake.behaviour = stale(lag_seconds=30)
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    for _ in range(5):
        assert members(api, scim, group) == set()  # requests alone do not help
    clock.advance(29.9)
    assert members(api, scim, group) == set()
    clock.advance(0.1)
    assert members(api, scim, group) == {user}


def test_requests_and_seconds_must_both_pass(fake, api, scim, pair, clock: Clock):
    user, group = pair
    fake.behaviour = stale(lag_requests=2, lag_seconds=10)
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    clock.advance(60)
    assert members(api, scim, group) == set()
    assert members(api, scim, group) == {user}


def test_a_stale_read_is_a_consistent_snapshot(fake, api, scim, pair):
    user, group = pair
    other = fake.add_user("bob@example.com")
    fake.behaviour = stale(lag_requests=2)
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))  # n
    api.patch(f"{scim}/Groups/{group}", json=add_members(other))  # n + 1
    assert members(api, scim, group) == {user}  # n + 2 sees n, not n + 1
    assert members(api, scim, group) == {user, other}


def test_group_list_members_and_user_list_groups_are_stale(fake, api, scim, pair):
    user, group = pair
    fake.behaviour = stale(lag_requests=5, history=100)
    fake.behaviour = Behaviour(group_list_members=True, stale_reads=fake.behaviour.stale_reads)
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    listed = api.get(f"{scim}/Groups").json()["Resources"][0]
    assert "members" not in listed
    users = api.get(f"{scim}/Users").json()["Resources"][0]
    assert "groups" not in users


def test_builders_are_visible_at_once(fake, api, scim, pair):
    user, group = pair
    fake.behaviour = stale(lag_requests=100)
    fake.add_member(group, user)
    assert members(api, scim, group) == {user}
    fake.remove_member(group, user)
    assert members(api, scim, group) == set()


def test_write_replies_show_the_write(fake, api, scim, pair):
    user, _ = pair
    fake.behaviour = stale(lag_requests=100)
    reply = api.post(f"{scim}/Groups", json={"displayName": "new", "members": [{"value": user}]})
    assert [m["value"] for m in reply.json()["members"]] == [user]
    assert members(api, scim, reply.json()["id"]) == set()


def test_stale_reads_skip_deleted_principals(fake, api, scim, pair):
    user, group = pair
    fake.behaviour = stale(lag_requests=10)
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    fake.behaviour = Behaviour()
    api.delete(f"{scim}/Users/{user}")
    fake.behaviour = stale(lag_requests=10)
    assert members(api, scim, group) == set()  # the snapshot has the user, but it is gone


def reads(seed: int, lag: int = 4, count: int = 40) -> list[bool]:
    fake = FakeAccount(
        require_auth=False, behaviour=stale(lag_requests=lag, monotonic=False, seed=seed)
    )
    user, group = fake.add_user("a@example.com"), fake.add_group("g")
    path = f"{fake.scim_path}/Groups/{group}"
    fake.dispatch(
        "PATCH",
        path,
        {},
        b'{"Operations":[{"op":"add","path":"members","value":[{"value":"%s"}]}]}' % user.encode(),
    )
    seen = []
    for _ in range(count):
        body = fake.dispatch("GET", path).json()
        seen.append("members" in body)
    return seen


def test_non_monotonic_reads_go_backwards_deterministically():
    first = reads(seed=7, lag=20)
    assert first == reads(seed=7, lag=20)
    went_backwards = any(before and not after for before, after in itertools.pairwise(first))
    assert went_backwards
    assert all(first[20:])
    assert reads(seed=8, lag=20) != first


def test_non_monotonic_reads_settle_once_the_lag_has_passed():
    seen = reads(seed=3, lag=4, count=30)
    assert all(seen[4:])  # after 4 requests every possible lag shows the write


def test_history_is_bounded(fake, api, scim):
    user = fake.add_user("a@example.com")
    group_ids = [fake.add_group(f"g{i}") for i in range(30)]
    fake.behaviour = stale(lag_requests=1_000, history=10)
    for group in group_ids:
        api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    # Only the last 10 changes can be rolled back: older ones are visible however stale.
    visible = [bool(members(api, scim, group)) for group in group_ids]
    assert visible == [True] * 20 + [False] * 10


def test_changing_the_history_size_keeps_recent_changes(fake, api, scim, pair):
    user, group = pair
    fake.behaviour = stale(lag_requests=5, history=50)
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    fake.behaviour = stale(lag_requests=5, history=5)
    assert members(api, scim, group) == set()


def test_stale_settings_are_validated():
    with pytest.raises(ValueError, match="lag_requests"):
        StaleReads(lag_requests=-1)
    with pytest.raises(ValueError, match="history"):
        StaleReads(history=0)
    assert not StaleReads().enabled
