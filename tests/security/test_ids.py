"""Every id is checked before any request is sent and before anything is stored.

The class, not the instance: each hostile id goes through each way an id enters the
library (a group id as text, a `Group` model, a `PrincipalRef`, a `User` model, a
workspace id), through the membership manager and the tracker, sync and async. Each
must raise `ConfigError` naming its field, with no request in the emulator's log, no
lease, no event, and no membership changed.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

import databricks_access as da
from databricks_access import MemoryLeaseStore
from helpers.internals import check_id

HOUR = dt.timedelta(hours=1)
BAD_IDS = {
    "dot-dot": "1/../2",
    "slash": "1/2",
    "query": "1?x=2",
    "fragment": "1#x",
    "percent": "1%2F2",
    "space": "1 2",
    "newline": "1\n",
    "dots": "..",
    "empty": "",
    "non-ascii-digit": "\u00b2",
    "arabic-digits": "\u0661\u0662",
    "fullwidth-digits": "\uff11\uff12",
    "lone-surrogate": "1\ud800",
    "too-long": "1" * 200,
}


@pytest.fixture
def world(fake, client, clock):
    store = MemoryLeaseStore()
    tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    return tracker, store, fake, alice, ops


def unchanged(store: MemoryLeaseStore, fake, ops: str) -> tuple[object, ...]:
    return (store.find_leases(), store.pending_events(limit=100), fake.group_members(ops))


def principal_forms(bad: str) -> list[object]:
    return [da.PrincipalRef("user", bad), da.User(id=bad, user_name="mallory@example.com")]


@pytest.mark.parametrize("name", sorted(BAD_IDS))
def test_a_bad_group_id_is_refused_before_any_request_or_write(world, name):
    tracker, store, fake, alice, ops = world
    bad = BAD_IDS[name]
    before, sent = unchanged(store, fake, ops), len(fake.log)
    for group in (bad, da.Group(id=bad, display_name="ops")):
        with pytest.raises(da.ConfigError) as info:
            tracker.grant(
                da.PrincipalRef("user", alice), group, ttl=HOUR, requester="a", reason="r"
            )
        assert info.value.fields == ("group",)
        with pytest.raises(da.ConfigError):
            tracker.manager.grant(da.PrincipalRef("user", alice), group)
    for principal in principal_forms(bad):
        with pytest.raises(da.ConfigError) as info:
            tracker.grant(principal, ops, ttl=HOUR, requester="a", reason="r")
        assert info.value.fields == ("principal",)
    assert unchanged(store, fake, ops) == before
    assert len(fake.log) == sent


@pytest.mark.parametrize("name", sorted(BAD_IDS))
def test_a_bad_id_is_refused_before_any_request_or_write_async(
    fake, async_client_factory, clock, name
):
    store = MemoryLeaseStore()
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    bad = BAD_IDS[name]

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            for group in (bad, da.Group(id=bad, display_name="ops")):
                with pytest.raises(da.ConfigError) as info:
                    await tracker.grant(
                        da.PrincipalRef("user", alice), group, ttl=HOUR, requester="a", reason="r"
                    )
                assert info.value.fields == ("group",)
            for principal in principal_forms(bad):
                with pytest.raises(da.ConfigError):
                    await tracker.grant(principal, ops, ttl=HOUR, requester="a", reason="r")
            with pytest.raises(da.ConfigError):
                client.workspace_assignments.list(bad)

    before, sent = unchanged(store, fake, ops), len(fake.log)
    asyncio.run(main())
    assert unchanged(store, fake, ops) == before
    assert len(fake.log) == sent


@pytest.mark.parametrize(
    "workspace_id",
    ["\u00b2", "\u0661\u0662", "\uff11\uff12", " 12", "12\n", "+12", "-12", "1_2", "", True],
)
def test_workspace_ids_are_ascii_digits_only(fake, client, workspace_id):
    sent = len(fake.log)
    with pytest.raises(da.ConfigError) as info:
        list(client.workspace_assignments.list(workspace_id))
    assert info.value.fields == ("workspace_id",)
    assert len(fake.log) == sent


def test_a_display_name_given_as_a_group_id_says_how_to_look_it_up(world):
    tracker, store, fake, alice, _ops = world
    sent = len(fake.log)
    for group in ("prod-data-readers", da.Group(id="Data Readers", display_name="x")):
        with pytest.raises(da.ConfigError, match=r"get_by_name") as info:
            tracker.grant(
                da.PrincipalRef("user", alice), group, ttl=HOUR, requester="a", reason="r"
            )
        assert info.value.fields == ("group",)
    with pytest.raises(da.ConfigError, match=r"get_by_name"):
        tracker.manager.client.groups.get("prod-data-readers")
    assert len(fake.log) == sent
    assert store.find_leases() == []


@pytest.mark.parametrize(
    "good", ["123", "9696133065399866", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]
)
def test_real_ids_still_pass(good):
    assert check_id(good, "group") == good


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1" * 128, True),  # the longest id
        ("1" * 129, False),
        ("\u0661\u0662\u0663", False),  # digits, but not ASCII
        ("\u00b2", False),
        ("", False),
    ],
)
def test_digit_ids_are_checked_like_any_other(value, ok):
    # Numeric ids take a short path; it must agree with the full check at its edges.
    if ok:
        assert check_id(value, "principal") == value
    else:
        with pytest.raises(da.ConfigError) as info:
            check_id(value, "principal")
        assert info.value.fields == ("principal",)
