"""An approval survives transient failures of its grant; a request for nothing is refused.

A grant that meets throttling, server errors or a dropped connection leaves the request
`APPROVED` without a lease, and `sweep()` tries again with backoff until the grant
succeeds, the request expires, or a definitive error makes it `FAILED`. Every check reads
the emulator's membership and the store's rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest

import databricks_access as da
from databricks_access.testing import Fault, FaultPlan

HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def ids(fake):
    return {
        "alice": fake.add_user("alice@example.com"),
        "bob": fake.add_user("bob@example.com"),
        "readers": fake.add_group("prod-readers"),
    }


@pytest.fixture
def icfg(fake):
    return da.IntegrationConfig(
        name="jit",
        accounts_url=fake.host,
        account_id=fake.account_id,
        integration_owners=["bob@example.com"],
    )


@pytest.fixture
def requests(tracker, icfg, client):
    return da.AccessRequests(
        tracker, da.Integration(icfg, client=client), pending_ttl=dt.timedelta(hours=2)
    )


def patches(fake) -> int:
    return sum(1 for record in fake.log if record.method == "PATCH")


def submit(requests, group):
    return requests.submit(
        "alice@example.com", group, ttl=HOUR, reason="INC-9", requester="alice@example.com"
    )


def test_a_throttled_grant_stays_approved_and_sweep_retries_it_with_backoff(
    fake, requests, store, clock, ids
):
    req = submit(requests, ids["readers"])
    FaultPlan([Fault.too_many_requests(retry_after=1, method="PATCH")]).install(fake)
    with pytest.raises(da.RateLimitedError):
        requests.approve(req.id, approver="bob@example.com")
    stored = store.get_request(req.id)
    assert stored.state is da.RequestState.APPROVED
    assert (stored.lease_id, stored.decided_by, stored.attempts) == (None, "bob@example.com", 1)
    assert stored.retry_at == clock.now() + 30 * SECOND
    assert stored.last_error.startswith("RateLimitedError: HTTP 429")
    assert fake.group_members(ids["readers"]) == frozenset()

    # Before retry_at, a sweep leaves it alone: no request is sent for it.
    sent = patches(fake)
    assert requests.sweep() == da.RequestSweep()
    assert patches(fake) == sent

    # Still throttled: tried again, and the wait doubles.
    clock.advance(30 * SECOND)
    assert requests.sweep().retrying == (req.id,)
    assert patches(fake) > sent
    stored = store.get_request(req.id)
    assert (stored.state, stored.attempts) == (da.RequestState.APPROVED, 2)
    assert stored.retry_at == clock.now() + 60 * SECOND

    # The API recovers: the next due sweep grants it, with the approver on the lease.
    fake.interceptor = None
    clock.advance(60 * SECOND)
    assert requests.sweep().granted == (req.id,)
    assert fake.group_members(ids["readers"]) == {ids["alice"]}
    stored = store.get_request(req.id)
    assert (stored.state, stored.retry_at) == (da.RequestState.APPROVED, None)
    lease = store.get_lease(stored.lease_id)
    assert (lease.state, lease.approver, lease.request_id) == (
        da.LeaseState.ACTIVE,
        "bob@example.com",
        req.id,
    )
    assert requests.sweep() == da.RequestSweep()  # nothing left to do


def test_a_grant_that_may_have_landed_is_undone_then_retried_once(
    fake, requests, tracker, store, clock, ids
):
    req = submit(requests, ids["readers"])
    FaultPlan([Fault.server_error(500, method="PATCH")]).install(fake)
    with pytest.raises(da.ServerError):
        requests.approve(req.id, approver="bob@example.com")
    assert store.get_request(req.id).state is da.RequestState.APPROVED
    (failed,) = store.find_leases()
    assert failed.request_id == req.id
    assert failed.state is not da.LeaseState.ACTIVE  # its grant failed: never linked

    fake.interceptor = None
    clock.advance(30 * SECOND)
    assert requests.sweep().granted == (req.id,)
    stored = store.get_request(req.id)
    linked = store.get_lease(stored.lease_id)
    assert linked.id != failed.id
    assert linked.state is da.LeaseState.ACTIVE
    # The failed attempt's own cleanup ends without taking the new access away.
    clock.advance(10 * 60 * SECOND)
    tracker.sweep()
    assert fake.group_members(ids["readers"]) == {ids["alice"]}
    assert store.get_lease(failed.id).state is da.LeaseState.REVOKED
    assert requests.sweep() == da.RequestSweep()


def test_after_a_failed_attempt_a_crash_before_the_link_is_linked_not_granted_again(
    fake, requests, tracker, store, clock, ids
):
    req = submit(requests, ids["readers"])
    FaultPlan([Fault.server_error(500, method="PATCH")]).install(fake)
    with pytest.raises(da.ServerError):
        requests.approve(req.id, approver="bob@example.com")
    fake.interceptor = None
    clock.advance(6 * 60 * SECOND)
    tracker.sweep()  # the failed attempt's cleanup finishes: its lease is REVOKED
    (failed,) = store.find_leases()
    assert failed.state is da.LeaseState.REVOKED
    # What a crash right after a successful retry leaves: the lease, unlinked.
    retried = tracker._run(
        tracker.flows.grant(
            req.principal,
            ids["readers"],
            ttl=HOUR,
            requester=req.requester,
            reason=req.reason,
            approver="bob@example.com",
            request_id=req.id,
        )
    )
    sent = patches(fake)
    assert requests.sweep().granted == (req.id,)
    assert patches(fake) == sent  # linked, not granted a second time
    assert store.get_request(req.id).lease_id == retried.id
    assert len(store.find_leases()) == 2
    assert fake.group_members(ids["readers"]) == {ids["alice"]}


def test_a_definitive_error_fails_the_request_and_sweep_leaves_it(
    fake, requests, store, sink, clock, ids
):
    req = submit(requests, ids["readers"])
    FaultPlan([Fault.error(403, method="PATCH")]).install(fake)
    with pytest.raises(da.PermissionDeniedError):
        requests.approve(req.id, approver="bob@example.com")
    stored = store.get_request(req.id)
    assert stored.state is da.RequestState.FAILED
    assert "PermissionDeniedError" in stored.decision_reason
    assert (stored.attempts, stored.retry_at) == (1, None)
    assert "request_failed" in sink.kinds()
    sent = patches(fake)
    fake.interceptor = None
    clock.advance(HOUR)
    assert requests.sweep() == da.RequestSweep()
    assert patches(fake) == sent
    assert fake.group_members(ids["readers"]) == frozenset()


def test_retries_end_when_the_request_expires(fake, requests, store, sink, clock, ids):
    req = submit(requests, ids["readers"])
    FaultPlan([Fault.too_many_requests(retry_after=1, method="PATCH")]).install(fake)
    with pytest.raises(da.RateLimitedError):
        requests.approve(req.id, approver="bob@example.com")
    approved_at = clock.now()
    expires_at = store.get_request(req.id).expires_at
    assert expires_at >= approved_at + 2 * HOUR - 2 * 60 * SECOND  # pending_ttl from approval
    retried = 0
    while clock.now() < expires_at:
        clock.advance(10 * 60 * SECOND)
        retried += len(requests.sweep().retrying)
    assert retried >= 5
    stored = store.get_request(req.id)
    assert stored.state is da.RequestState.EXPIRED
    assert "did not succeed before the request expired" in stored.decision_reason
    assert "RateLimitedError" in stored.decision_reason
    assert sink.kinds()[-1] == "request_expired"
    sent = patches(fake)
    fake.interceptor = None
    assert requests.sweep() == da.RequestSweep()
    assert patches(fake) == sent
    assert fake.group_members(ids["readers"]) == frozenset()


def test_the_approver_finishing_a_pending_grant_does_not_wait_for_retry_at(
    fake, requests, store, ids
):
    req = submit(requests, ids["readers"])
    FaultPlan([Fault.too_many_requests(retry_after=1, method="PATCH")]).install(fake)
    with pytest.raises(da.RateLimitedError):
        requests.approve(req.id, approver="bob@example.com")
    fake.interceptor = None
    with pytest.raises(da.ApprovalError, match="approved"):
        requests.approve(req.id, approver="mal@example.com")  # someone else: no
    done = requests.approve(req.id, approver="Bob@example.com")
    assert done.lease_id is not None
    assert fake.group_members(ids["readers"]) == {ids["alice"]}


def test_the_async_requests_retry_the_same_way(fake, async_client_factory, icfg, clock, ids):
    store = da.MemoryLeaseStore()

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            requests = da.AsyncAccessRequests(tracker, da.AsyncIntegration(icfg, client=client))
            req = await requests.submit(
                "alice@example.com",
                ids["readers"],
                ttl=HOUR,
                reason="r",
                requester="alice@example.com",
            )
            FaultPlan([Fault.drop(method="PATCH")]).install(fake)
            with pytest.raises(da.TransportError):
                await requests.approve(req.id, approver="bob@example.com")
            stored = store.get_request(req.id)
            assert (stored.state, stored.lease_id) == (da.RequestState.APPROVED, None)
            assert stored.last_error.startswith("TransportError")
            assert fake.group_members(ids["readers"]) == frozenset()
            assert await requests.sweep() == da.RequestSweep()  # not due yet
            fake.interceptor = None
            clock.advance(30 * SECOND)
            assert (await requests.sweep()).granted == (req.id,)

    asyncio.run(main())
    assert fake.group_members(ids["readers"]) == {ids["alice"]}
    (req,) = store.find_requests()
    assert store.get_lease(req.lease_id).state is da.LeaseState.ACTIVE


# -- the loop -----------------------------------------------------------------------------------


def test_run_sleeps_until_the_next_request_is_due(fake, requests, clock, ids):
    assert requests._run(requests.flows.seconds_until_due(600.0)) == 600.0
    req = submit(requests, ids["readers"])
    assert requests._run(requests.flows.seconds_until_due(10 * HOUR.total_seconds())) == 7200.0
    FaultPlan([Fault.too_many_requests(retry_after=1, method="PATCH")]).install(fake)
    with pytest.raises(da.RateLimitedError):
        requests.approve(req.id, approver="bob@example.com")
    assert requests._run(requests.flows.seconds_until_due(600.0)) == 30.0


def test_run_retries_a_pending_grant_when_it_is_due(fake, requests, store, clock, ids):
    req = submit(requests, ids["readers"])
    FaultPlan([Fault.too_many_requests(retry_after=1, method="PATCH")]).install(fake)
    with pytest.raises(da.RateLimitedError):
        requests.approve(req.id, approver="bob@example.com")
    fake.interceptor = None
    clock.advance(30 * SECOND)
    stop = threading.Event()
    worker = threading.Thread(target=requests.run, kwargs={"stop": stop, "idle": 3600})
    worker.start()
    try:
        for _ in range(200):
            if store.get_request(req.id).lease_id is not None:
                break
            stop.wait(0.05)
        assert fake.group_members(ids["readers"]) == {ids["alice"]}
        assert store.get_request(req.id).lease_id is not None
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


def test_the_async_run_retries_a_pending_grant(fake, async_client_factory, icfg, clock, ids):
    store = da.MemoryLeaseStore()

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            requests = da.AsyncAccessRequests(tracker, da.AsyncIntegration(icfg, client=client))
            req = await requests.submit(
                "alice@example.com", ids["readers"], ttl=HOUR, reason="r", requester="a"
            )
            FaultPlan([Fault.server_error(503, method="PATCH")]).install(fake)
            with pytest.raises(da.ServerError):
                await requests.approve(req.id, approver="bob@example.com")
            fake.interceptor = None
            clock.advance(30 * SECOND)
            stop = asyncio.Event()
            loop = asyncio.create_task(requests.run(stop, idle=3600))
            for _ in range(200):
                if store.get_request(req.id).lease_id is not None:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(loop, 10)

    asyncio.run(main())
    assert fake.group_members(ids["readers"]) == {ids["alice"]}


# -- what is validated at submit ----------------------------------------------------------------


def test_a_request_for_a_group_that_does_not_exist_is_refused_with_nothing_stored(
    fake, requests, store, sink, ids
):
    fake.reset_log()
    with pytest.raises(da.NotFoundError, match="no group with id 12345") as caught:
        submit(requests, "12345")
    assert caught.value.status_code == 404
    assert store.find_requests() == []
    assert sink.kinds() == []
    # One lookup of the principal, one GET of the group; the integration was not asked.
    assert [(r.method, r.status) for r in fake.log if r.op_class.value != "token"] == [
        ("GET", 200),
        ("GET", 404),
    ]


def test_a_request_for_a_principal_that_does_not_exist_is_refused_with_nothing_stored(
    fake, requests, store, sink, ids
):
    ghost = da.PrincipalRef(da.PrincipalKind.USER, "424242")
    with pytest.raises(da.NotFoundError, match="no user with id 424242"):
        requests.submit(ghost, ids["readers"], ttl=HOUR, reason="r", requester="a")
    bob = requests.tracker.manager.client.users.get(ids["bob"])
    fake.delete_principal(ids["bob"])
    with pytest.raises(da.NotFoundError, match="nothing was requested"):
        requests.submit(bob, ids["readers"], ttl=HOUR, reason="r", requester="a")
    assert store.find_requests() == []
    assert sink.kinds() == []


def test_a_group_given_by_id_is_stored_with_its_name(requests, ids):
    req = submit(requests, ids["readers"])
    assert (req.group_id, req.group_name) == (ids["readers"], "prod-readers")


def test_the_async_submit_validates_the_same_way(fake, async_client_factory, icfg, clock, ids):
    store = da.MemoryLeaseStore()

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            requests = da.AsyncAccessRequests(tracker, da.AsyncIntegration(icfg, client=client))
            with pytest.raises(da.NotFoundError, match="no group with id 12345"):
                await requests.submit(
                    "alice@example.com", "12345", ttl=HOUR, reason="r", requester="a"
                )
            ghost = da.PrincipalRef(da.PrincipalKind.SERVICE_PRINCIPAL, "77")
            with pytest.raises(da.NotFoundError, match="no service principal with id 77"):
                await requests.submit(ghost, ids["readers"], ttl=HOUR, reason="r", requester="a")

    asyncio.run(main())
    assert store.find_requests() == []


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"retry_delay": 0}, "retry_delay"),
        ({"max_retry_delay": -1}, "max_retry_delay"),
        ({"retry_delay": 60, "max_retry_delay": 30}, "max_retry_delay"),
        ({"pending_ttl": "soon"}, "pending_ttl"),
    ],
)
def test_retry_settings_are_checked(tracker, icfg, client, settings, field):
    with pytest.raises(da.ConfigError) as caught:
        da.AccessRequests(tracker, da.Integration(icfg, client=client), **settings)
    assert caught.value.fields == (field,)
