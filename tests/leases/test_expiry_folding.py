"""Promise 6 under the rate limits: leases that fall due while their group's PATCH waits
for the client's PATCH slot are removed in that same PATCH.

The client's default throttle (PATCH 2/s) runs on the test's `ManualClock`: waiting for
a slot advances the clock, so leases fall due during the wait without any wall-clock
time passing. What counts is the emulator's log and membership and the store's rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import databricks_access as da
from databricks_access import EventKind, LeaseState, MemoryLeaseStore
from databricks_access.testing import FakeResponse

TTL = dt.timedelta(minutes=1)


def _patches_to(fake, gid):
    return [r for r in fake.log if r.method == "PATCH" and r.path.endswith(f"/Groups/{gid}")]


def _setup(fake):
    users = [da.PrincipalRef("user", fake.add_user(f"u{i}@example.com")) for i in range(4)]
    ops = fake.add_group("ops")
    other = fake.add_group("other")
    filler = fake.add_user("filler@example.com")
    return users, ops, other, filler


def test_leases_due_while_a_patch_waits_for_its_slot_join_it(
    fake, client, tracker, store, clock, sink
):
    users, ops, other, filler = _setup(fake)
    first = tracker.grant(users[0], ops, ttl=TTL, requester="a", reason="r")
    # Due 0.2 s and 0.4 s after the first: within the 0.5 s the PATCH waits for its slot.
    second = tracker.grant(
        users[1], ops, ttl=TTL + dt.timedelta(seconds=0.2), requester="a", reason="r"
    )
    third = tracker.grant(
        users[2], ops, ttl=TTL + dt.timedelta(seconds=0.4), requester="a", reason="r"
    )
    # Due well after the wait: not folded, ends in a later PATCH.
    later = tracker.grant(
        users[3], ops, ttl=TTL + dt.timedelta(seconds=30), requester="a", reason="r"
    )
    clock.advance(first.expires_at - clock.now())
    # Two PATCHes elsewhere take the burst: the sweep's PATCH waits 0.5 s for its slot.
    client.groups.add_members(other, [filler])
    client.groups.remove_members(other, [filler])
    fake.reset_log()
    report = tracker.sweep()
    assert len(_patches_to(fake, ops)) == 1
    assert fake.group_members(ops) == {users[3].id}
    for lease in (first, second, third):
        stored = store.get_lease(lease.id)
        assert stored.state is LeaseState.REVOKED
        assert stored.ended_at is not None and stored.ended_at >= stored.expires_at
    assert store.get_lease(later.id).state is LeaseState.ACTIVE
    assert sorted(report.revoked) == sorted(x.id for x in (first, second, third))
    for lease in (first, second, third):
        kinds = [e.kind for e in sink.events if e.lease_id == lease.id]
        assert kinds == [EventKind.GRANTED, EventKind.EXPIRED, EventKind.REVOKED]
    # No claim is left behind: another operation takes the pairs at once.
    assert store.claim_pairs(
        [da.Pair(u.id, ops) for u in users],
        owner="other",
        now=clock.now(),
        until=clock.now() + dt.timedelta(minutes=1),
    )


def test_folded_removal_async(fake, async_client_factory, clock, sink):
    users, ops, other, filler = _setup(fake)
    store = MemoryLeaseStore()

    async def main():
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, events=sink, clock=clock
            )
            leases = [
                await tracker.grant(
                    u, ops, ttl=TTL + dt.timedelta(seconds=0.2 * i), requester="a", reason="r"
                )
                for i, u in enumerate(users[:3])
            ]
            clock.advance(leases[0].expires_at - clock.now())
            await client.groups.add_members(other, [filler])
            await client.groups.remove_members(other, [filler])
            fake.reset_log()
            report = await tracker.sweep()
            return leases, report

    leases, report = asyncio.run(main())
    assert len(_patches_to(fake, ops)) == 1
    assert fake.group_members(ops) == set()
    for lease in leases:
        assert store.get_lease(lease.id).state is LeaseState.REVOKED
    assert sorted(report.revoked) == sorted(x.id for x in leases)


def test_folding_never_takes_a_pair_another_operation_holds(
    fake, client, tracker, store, clock, sink
):
    users, ops, other, filler = _setup(fake)
    leases = [
        tracker.grant(u, ops, ttl=TTL + dt.timedelta(seconds=0.2 * i), requester="a", reason="r")
        for i, u in enumerate(users[:3])
    ]
    clock.advance(leases[0].expires_at - clock.now())
    # Another replica holds the second pair: the waiting PATCH must not remove it.
    held = da.Pair(users[1].id, ops)
    assert store.claim_pairs(
        [held], owner="replica-2", now=clock.now(), until=clock.now() + dt.timedelta(minutes=1)
    ) == [held]
    client.groups.add_members(other, [filler])
    client.groups.remove_members(other, [filler])
    fake.reset_log()
    tracker.sweep()
    patches = _patches_to(fake, ops)
    assert len(patches) == 1
    assert fake.group_members(ops) == {users[1].id}
    assert store.get_lease(leases[1].id).state is LeaseState.ACTIVE
    assert store.get_lease(leases[0].id).state is LeaseState.REVOKED
    assert store.get_lease(leases[2].id).state is LeaseState.REVOKED


def test_a_failed_folded_removal_ends_no_lease(fake, client, tracker, store, clock):
    users, ops, other, filler = _setup(fake)
    leases = [
        tracker.grant(u, ops, ttl=TTL + dt.timedelta(seconds=0.2 * i), requester="a", reason="r")
        for i, u in enumerate(users[:3])
    ]
    clock.advance(leases[0].expires_at - clock.now())
    client.groups.add_members(other, [filler])
    client.groups.remove_members(other, [filler])

    def outage(request):
        if request.method == "PATCH" and request.path.endswith(f"/Groups/{ops}"):
            return FakeResponse(
                400,
                (("Content-Type", "application/json"),),
                b'{"error_code":"INVALID_PARAMETER_VALUE","message":"refused"}',
            )
        return None

    fake.interceptor = outage
    fake.reset_log()
    report = tracker.sweep()
    # The folded leases were sent with the first one, and failed with it: none ended.
    assert sorted(report.failed) == sorted(x.id for x in leases)
    assert fake.group_members(ops) == {u.id for u in users[:3]}
    for lease in leases:
        stored = store.get_lease(lease.id)
        assert stored.state is LeaseState.REVOKE_FAILED
        assert stored.ended_at is None
