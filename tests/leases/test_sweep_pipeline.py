"""A sweep sends its first removal before every group's intent is stored.

Each group's flow claims its pairs and stores their leases `REVOKING` just before its
own PATCH, so later groups' store work overlaps the wait for earlier groups' PATCH
slots. Promise 1 still holds per lease: at each PATCH, every member it removes has its
leases stored `REVOKING`. The client's default throttle runs on the test's
`ManualClock`; what counts is the store's rows at the moment the emulator sees a PATCH.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re

import pytest

import databricks_access as da
from databricks_access import LeaseState, MemoryLeaseStore

TTL = dt.timedelta(minutes=1)
GROUPS = 8
PER_GROUP = 3
CONCURRENCY = 4  # the default: groups patched at once


def _setup(fake):
    groups = [fake.add_group(f"g{g}") for g in range(GROUPS)]
    users = [da.PrincipalRef("user", fake.add_user(f"u{i}@example.com")) for i in range(PER_GROUP)]
    return groups, users


def _watch(fake, store, clock, pairs):
    """Record, at each PATCH, its group, its members and the groups with intent stored.

    At the first PATCH, also try to claim every pair of the batch for someone else: the
    sweep must hold them all already (claims taken group by group, late, could land on
    pairs another replica has finished meanwhile, which no sweep would look at again).
    """
    seen: list[tuple[str, set[str], dict[str, set[str]]]] = []
    taken_by_probe: list[list[da.Pair]] = []

    def interceptor(request):
        if request.method != "PATCH":
            return
        if not taken_by_probe:
            now = clock.now()
            taken_by_probe.append(store.claim_pairs(pairs, owner="probe", now=now, until=now + TTL))
        gid = request.path.rsplit("/", 1)[-1]
        body = json.loads(request.body)
        removed = {
            match
            for op in body["Operations"]
            if op["op"].lower() == "remove"
            for match in re.findall(r'value eq "([^"]+)"', op["path"])
        }
        revoking: dict[str, set[str]] = {}
        for lease in store.find_leases(states=[LeaseState.REVOKING]):
            revoking.setdefault(lease.pair.group_id, set()).add(lease.pair.principal_id)
        seen.append((gid, removed, revoking))

    fake.interceptor = interceptor
    return seen, taken_by_probe


def _pairs(groups, users):
    return [da.Pair(u.id, g) for u in users for g in groups]


def _check(watched, groups, users, store, fake, report, clock):
    seen, taken_by_probe = watched
    # Every pair was claimed before the first PATCH.
    assert taken_by_probe == [[]]
    # One PATCH per group, each removing exactly that group's members.
    assert sorted(gid for gid, _, _ in seen) == sorted(groups)
    everyone = {u.id for u in users}
    for gid, removed, revoking in seen:
        assert removed == everyone
        # Intent before side effect: every member removed has its lease REVOKING.
        assert revoking.get(gid) == everyone
    # The first PATCH went out before later groups' intents were written: at most the
    # groups running at once had stored theirs.
    _, _, at_first = seen[0]
    assert len(at_first) <= CONCURRENCY < GROUPS
    # And every lease ended, every membership went, no claim is left.
    assert len(report.revoked) == GROUPS * PER_GROUP
    assert not report.failed and not report.skipped
    for gid in groups:
        assert fake.group_members(gid) == set()
    assert all(lease.state is LeaseState.REVOKED for lease in store.find_leases())
    now = clock.now()
    pairs = _pairs(groups, users)
    assert (
        store.claim_pairs(pairs, owner="other", now=now, until=now + dt.timedelta(minutes=5))
        == pairs
    )


def test_first_patch_goes_before_later_groups_intents(fake, tracker, store, clock):
    groups, users = _setup(fake)
    leases = [
        tracker.grant(u, g, ttl=TTL, requester="a", reason="r") for g in groups for u in users
    ]
    clock.advance(max(lease.expires_at for lease in leases) - clock.now())
    fake.reset_log()
    seen = _watch(fake, store, clock, _pairs(groups, users))
    report = tracker.sweep()
    _check(seen, groups, users, store, fake, report, clock)


def test_first_patch_goes_before_later_groups_intents_async(
    fake, async_client_factory, clock, sink
):
    groups, users = _setup(fake)
    store = MemoryLeaseStore()

    async def main():
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, events=sink, clock=clock
            )
            leases = [
                await tracker.grant(u, g, ttl=TTL, requester="a", reason="r")
                for g in groups
                for u in users
            ]
            clock.advance(max(lease.expires_at for lease in leases) - clock.now())
            fake.reset_log()
            seen = _watch(fake, store, clock, _pairs(groups, users))
            return seen, await tracker.sweep()

    seen, report = asyncio.run(main())
    _check(seen, groups, users, store, fake, report, clock)


def _bounded_sweep_setup(fake):
    groups, users = _setup(fake)
    seen_revoked: list[int] = []
    return groups, users, seen_revoked


def _count_revoked_at_each_patch(fake, store, seen_revoked):
    def interceptor(request):
        if request.method == "PATCH":
            seen_revoked.append(len(store.find_leases(states=[LeaseState.REVOKED])))

    fake.interceptor = interceptor


def _check_bounded(seen_revoked, report, fake, groups, store):
    # Every removal was answered before any outcome was stored: a crash part-way leaves
    # every claimed pair due (REVOKING), for the replica that takes the claims over.
    assert seen_revoked == [0] * GROUPS
    assert len(report.revoked) == GROUPS * PER_GROUP
    for gid in groups:
        assert fake.group_members(gid) == set()
    assert all(lease.state is LeaseState.REVOKED for lease in store.find_leases())


# Without PATCH pacing there are no slots to wait for, and with a limit nothing is folded:
# either way the batch runs as one flow.
@pytest.mark.parametrize("limit", [1000, None])
def test_an_unpaced_or_bounded_sweep_stores_its_outcomes_after_every_removal(
    fake, config, credentials, store, sink, clock, limit
):
    groups, users, seen_revoked = _bounded_sweep_setup(fake)
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock, rate_limits=None
    ) as client:
        tracker = da.LeaseTracker(
            da.MembershipManager(client), store=store, events=sink, clock=clock
        )
        leases = [
            tracker.grant(u, g, ttl=TTL, requester="a", reason="r") for g in groups for u in users
        ]
        clock.advance(max(lease.expires_at for lease in leases) - clock.now())
        _count_revoked_at_each_patch(fake, store, seen_revoked)
        report = tracker.sweep(limit=limit)
    _check_bounded(seen_revoked, report, fake, groups, store)


@pytest.mark.parametrize("limit", [1000, None])
def test_an_unpaced_or_bounded_sweep_stores_its_outcomes_after_every_removal_async(
    fake, config, credentials, store, sink, clock, limit
):
    groups, users, seen_revoked = _bounded_sweep_setup(fake)

    async def main():
        async with da.AsyncAccountClient(
            config, secrets=credentials, transport=fake.transport(), clock=clock, rate_limits=None
        ) as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, events=sink, clock=clock
            )
            leases = [
                await tracker.grant(u, g, ttl=TTL, requester="a", reason="r")
                for g in groups
                for u in users
            ]
            clock.advance(max(lease.expires_at for lease in leases) - clock.now())
            _count_revoked_at_each_patch(fake, store, seen_revoked)
            return await tracker.sweep(limit=limit)

    report = asyncio.run(main())
    _check_bounded(seen_revoked, report, fake, groups, store)
