"""When the API stays down: what a failed grant leaves behind, exactly.

A grant whose add surely did not land (every attempt answered 503, 429, or a refusal)
leaves a `GRANT_FAILED` lease and no membership. A grant whose add *may* have landed —
an attempt was sent and its connection dropped or timed out, or the server failed with a
500 — before the retries gave up, raises with `maybe_applied` set and is undone like an
early revoke, so no membership outlives a grant its caller saw fail: the removal is sent
at once and, while the API is still down, retried by the sweep until it succeeds.
Standing members and other leases on the pair keep their membership either way.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

import databricks_access as da
from databricks_access import LeaseState, MemoryLeaseStore
from databricks_access.testing import Fault, FaultPlan

HOUR = dt.timedelta(hours=1)
RETRY = dt.timedelta(minutes=5)


@pytest.fixture
def store():
    return MemoryLeaseStore()


@pytest.fixture
def sink():
    return da.MemorySink()


@pytest.fixture
def tracker(client, store, sink, clock):
    return da.LeaseTracker(da.MembershipManager(client), store=store, events=sink, clock=clock)


@pytest.fixture
def alice(fake):
    return da.PrincipalRef("user", fake.add_user("alice@example.com"))


@pytest.fixture
def ops(fake):
    return fake.add_group("ops")


def grant(tracker, principal, group, ttl=HOUR):
    return tracker.grant(principal, group, ttl=ttl, requester="alice", reason="INC-1")


def patches(fake):
    return [(r.status, r.fault, b'"op":"add"' in r.body) for r in fake.log if r.method == "PATCH"]


def test_a_landed_add_then_an_outage_is_undone_at_once_when_the_api_returns(
    fake, tracker, store, sink, alice, ops
):
    # The first add lands but its answer is lost; the next five attempts meet 503s.
    FaultPlan(
        [
            Fault.drop(method="PATCH", nth=1, applied=True),
            Fault.server_error(503, method="PATCH", nth=range(2, 7)),
        ]
    ).install(fake)
    with pytest.raises(da.ServerError) as info:
        grant(tracker, alice, ops)
    assert info.value.maybe_applied
    (lease,) = store.find_leases()
    assert lease.state is LeaseState.REVOKED
    assert fake.group_members(ops) == set()
    # Six attempts at the add, then one removal that succeeded.
    assert patches(fake) == [(0, "drop", True)] + [(503, "503", True)] * 5 + [(200, None, False)]
    assert sink.kinds() == ["grant_failed", "revoked"]
    assert sink.events[1].detail["revoked_by"] == "grant failed"


def test_a_landed_add_during_a_long_outage_is_removed_by_the_sweep(
    fake, tracker, store, sink, clock, alice, ops
):
    plan = FaultPlan(
        [
            Fault.timeout(method="PATCH", nth=1, applied=True),
            Fault.server_error(503, method="PATCH"),
        ]
    ).install(fake)
    with pytest.raises(da.ServerError) as info:
        grant(tracker, alice, ops)
    assert info.value.maybe_applied
    (lease,) = store.find_leases()
    assert lease.state is LeaseState.REVOKE_FAILED
    assert fake.group_members(ops) == {alice.id}  # still there: the API is down
    assert tracker.sweep().ended == 0  # not due before the retry interval
    clock.advance(RETRY)
    assert tracker.sweep().failed == (lease.id,)  # still down: retried later
    fake.interceptor = None
    del plan
    clock.advance(RETRY)
    assert tracker.sweep().revoked == (lease.id,)
    assert fake.group_members(ops) == set()
    assert store.get_lease(lease.id).state is LeaseState.REVOKED
    assert sink.kinds() == ["grant_failed", "revoke_failed", "revoke_failed", "revoked"]


def test_an_add_refused_as_it_stands_leaves_grant_failed_and_sends_no_removal(
    fake, tracker, store, sink, alice, ops
):
    FaultPlan([Fault.error(400, method="PATCH")]).install(fake)
    with pytest.raises(da.BadRequestError) as info:
        grant(tracker, alice, ops)
    assert not info.value.maybe_applied
    (lease,) = store.find_leases()
    assert lease.state is LeaseState.GRANT_FAILED
    assert fake.group_members(ops) == set()
    assert all(add for _, _, add in patches(fake))  # no removal was needed
    assert sink.kinds() == ["grant_failed"]


@pytest.mark.parametrize(
    "faults",
    [
        [Fault.server_error(503, method="PATCH", times=6)],
        [
            Fault.too_many_requests(retry_after=0.5, method="PATCH", nth=range(1, 4)),
            Fault.request_limit_exceeded(method="PATCH", times=3),
        ],
    ],
    ids=["503", "throttled"],
)
def test_an_add_answered_503_or_throttled_may_have_landed_and_is_undone(
    fake, tracker, store, sink, alice, ops, faults
):
    # A gateway can answer 503 or 429 after the account applied the change: such an
    # answer is no proof that nothing changed, so the grant is undone by a removal.
    FaultPlan(faults).install(fake)
    with pytest.raises(da.ApiError) as info:
        grant(tracker, alice, ops)
    assert info.value.maybe_applied
    (lease,) = store.find_leases()
    assert lease.state is LeaseState.REVOKED
    assert fake.group_members(ops) == set()
    assert [add for _, _, add in patches(fake)][-1] is False  # the undo was sent
    assert sink.kinds() == ["grant_failed", "revoked"]


def test_undoing_a_failed_grant_keeps_a_standing_membership(fake, tracker, store, sink, alice):
    team = fake.add_group("team", members=[alice.id])
    FaultPlan(
        [
            Fault.drop(method="PATCH", nth=1, applied=True),
            Fault.server_error(500, method="PATCH"),
        ]
    ).install(fake)
    with pytest.raises(da.ServerError):
        grant(tracker, alice, team)
    (lease,) = store.find_leases()
    assert lease.standing
    assert lease.state is LeaseState.REVOKED
    assert fake.group_members(team) == {alice.id}
    assert [r.method for r in fake.log if r.method == "PATCH"] == ["PATCH"] * 6  # no removal
    assert sink.events[-1].detail["membership"] == "kept: standing membership"


def test_undoing_a_failed_grant_keeps_another_leases_membership(fake, tracker, store, alice, ops):
    first = grant(tracker, alice, ops)
    FaultPlan(
        [
            Fault.drop(method="PATCH", nth=1, applied=True),
            Fault.timeout(method="PATCH"),
        ]
    ).install(fake)
    with pytest.raises(da.RequestTimeoutError) as info:
        grant(tracker, alice, ops, ttl=2 * HOUR)
    assert info.value.maybe_applied
    second = next(lease for lease in store.find_leases() if lease.id != first.id)
    assert second.state is LeaseState.REVOKED
    assert store.get_lease(first.id).state is LeaseState.ACTIVE
    assert fake.group_members(ops) == {alice.id}


def test_the_async_tracker_undoes_an_ambiguous_grant_too(
    fake, async_client_factory, clock, alice, ops
):
    FaultPlan(
        [
            Fault.drop(method="PATCH", nth=1, applied=True),
            Fault.server_error(502, method="PATCH", nth=range(2, 7)),
        ]
    ).install(fake)
    store, sink = MemoryLeaseStore(), da.MemorySink()

    async def main():
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, events=sink, clock=clock
            )
            with pytest.raises(da.ServerError) as info:
                await tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
            return info.value

    error = asyncio.run(main())
    assert error.maybe_applied
    assert store.find_leases()[0].state is LeaseState.REVOKED
    assert fake.group_members(ops) == set()
    assert sink.kinds() == ["grant_failed", "revoked"]


def test_an_access_request_whose_grant_is_undone_stays_approved_and_is_retried(
    fake, client, tracker, store, clock, alice, ops
):
    from databricks_access import AccessRequests  # noqa: PLC0415

    config = da.IntegrationConfig(
        name="outage",
        accounts_url=fake.host,
        account_id=fake.account_id,
        integration_owners=["user:bob@example.com"],
    )
    requests = AccessRequests(tracker, da.Integration(config, client=client))
    req = requests.submit(alice, ops, ttl=HOUR, reason="INC-9", requester="alice@example.com")
    FaultPlan(
        [
            Fault.drop(method="PATCH", nth=1, applied=True),
            Fault.server_error(504, method="PATCH", nth=range(2, 7)),
        ]
    ).install(fake)
    with pytest.raises(da.ServerError):
        requests.approve(req.id, approver="bob@example.com")
    assert requests.get(req.id).state.value == "approved"  # the approval is not lost
    assert store.find_leases()[0].state is LeaseState.REVOKED
    assert fake.group_members(ops) == set()
    clock.advance(dt.timedelta(minutes=1))  # past retry_at; the outage is over
    assert requests.sweep().granted == (req.id,)
    assert fake.group_members(ops) == {alice.id}


def test_an_add_that_landed_before_the_token_endpoint_failed_is_undone(
    fake, tracker, store, sink, clock, alice, ops
):
    # The add lands but its answer is lost; the retry's token is refused, and fetching a
    # new one fails: the error comes from the token endpoint, the add may have landed.
    FaultPlan(
        [
            Fault.drop(method="PATCH", nth=1, applied=True),
            Fault.error(401, method="PATCH", nth=2),
            Fault.server_error(503, op_class="token", nth=range(2, 100)),
        ]
    ).install(fake)
    with pytest.raises(da.ServerError) as info:
        grant(tracker, alice, ops)
    assert info.value.maybe_applied
    (lease,) = store.find_leases()
    assert lease.state is LeaseState.REVOKE_FAILED  # the removal needs a token too
    fake.interceptor = None
    clock.advance(RETRY)
    assert tracker.sweep().revoked == (lease.id,)
    assert fake.group_members(ops) == set()
    assert sink.kinds() == ["grant_failed", "revoke_failed", "revoked"]
