"""Audit events say what happened in words a reader can trust: the names known at the
time, a kind of their own for a lease whose membership stays, and typed details."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import databricks_access as da
from databricks_access import MemoryLeaseStore

HOUR = dt.timedelta(hours=1)


def test_a_standing_members_ended_lease_is_ended_not_revoked(fake, client, clock):
    bob = fake.add_user("bob@example.com", "Bob")
    readers = fake.add_group("prod-data-readers", members=[bob])
    sink = da.MemorySink()
    tracker = da.LeaseTracker(
        da.MembershipManager(client), store=MemoryLeaseStore(), events=sink, clock=clock
    )
    group = client.groups.get(readers)
    lease = tracker.grant("bob@example.com", group, ttl=HOUR, requester="bob", reason="INC-1")
    clock.advance(HOUR)
    report = tracker.sweep()
    assert report.kept == (lease.id,)
    assert fake.group_members(readers) == {bob}  # the standing membership stays
    assert sink.kinds() == ["granted", "expired", "ended"]
    granted, _, ended = sink.events
    assert granted.detail == {"standing": True}
    assert ended.detail["membership"].startswith("kept")
    for event in sink.events:
        assert (event.principal_name, event.group_name) == ("bob@example.com", "prod-data-readers")


def test_a_lease_whose_membership_another_lease_holds_ends_without_a_removal(fake, client, clock):
    alice = fake.add_user("alice@example.com", "Alice")
    ops = fake.add_group("ops")
    sink = da.MemorySink()
    tracker = da.LeaseTracker(
        da.MembershipManager(client), store=MemoryLeaseStore(), events=sink, clock=clock
    )
    who = da.PrincipalRef("user", alice)
    short = tracker.grant(who, ops, ttl=HOUR, requester="a", reason="r")
    tracker.grant(who, ops, ttl=2 * HOUR, requester="a", reason="r")
    tracker.revoke(short.id)
    assert fake.group_members(ops) == {alice}
    assert sink.kinds()[-1] == "ended"
    assert "revoked" not in sink.kinds()


def test_async_events_carry_names_and_typed_details(fake, async_client_factory, clock, tmp_path):
    bob = fake.add_user("bob@example.com", "Bob")
    readers = fake.add_group("prod-data-readers", members=[bob])
    sink = da.JsonLinesSink(tmp_path / "audit.jsonl")

    async def main() -> str:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client),
                store=MemoryLeaseStore(),
                events=sink,
                clock=clock,
            )
            group = await client.groups.get_by_name("prod-data-readers")
            lease = await tracker.grant(
                "bob@example.com", group, ttl=HOUR, requester="bob", reason="r"
            )
            await tracker.extend(lease.id, by=HOUR)
            clock.advance(3 * HOUR)
            await tracker.sweep()
            return lease.id

    asyncio.run(main())
    assert fake.group_members(readers) == {bob}
    events = [
        json.loads(line) for line in (tmp_path / "audit.jsonl").read_text("utf-8").splitlines()
    ]
    assert [e["kind"] for e in events] == ["granted", "extended", "expired", "ended"]
    assert events[0]["detail"] == {"standing": True}  # a JSON true, not the text "true"
    assert events[1]["detail"]["clamped"] is False
    assert {(e["principal_name"], e["group_name"]) for e in events} == {
        ("bob@example.com", "prod-data-readers")
    }
