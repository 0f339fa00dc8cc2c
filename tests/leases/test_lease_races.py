"""The lease promises under concurrency and partial failure, one scenario at a time.

Each test drives one interleaving deterministically (an interceptor or a store hook runs
the competing operation at the worst moment) and checks the emulator's membership and the
store's rows, never the tracker's own report. The invariant, at rest:

    a principal is a member of a group  iff  a standing membership or an ACTIVE lease
    covers the pair (an expired ACTIVE lease counts until the next sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import threading

import attrs
import httpx
import pytest

import databricks_access as da
from databricks_access import EventKind, LeaseState, MemoryLeaseStore
from databricks_access.testing import (
    Behaviour,
    FakeAccount,
    FakeResponse,
    Fault,
    FaultPlan,
    StaleReads,
)
from helpers.clocks import WallClock

HOUR = dt.timedelta(hours=1)
WINDOW = dt.timedelta(minutes=5)


@pytest.fixture
def clock():
    return WallClock()


def grant(tracker, principal, group, ttl=HOUR, **kw):
    return tracker.grant(principal, group, ttl=ttl, requester="alice", reason="INC-1", **kw)


def patch_ops(request) -> list[str]:
    """The `op` of each operation of a PATCH (empty for other requests)."""
    if request.method != "PATCH" or not request.body:
        return []
    return [op["op"] for op in json.loads(request.body).get("Operations", [])]


def is_add(request) -> bool:
    return "add" in patch_ops(request)


def is_remove(request) -> bool:
    return "remove" in patch_ops(request)


def removed_ids(request) -> list[str]:
    return [
        op["path"].split('"')[1]
        for op in json.loads(request.body).get("Operations", [])
        if op["op"] == "remove"
    ]


TRACKED = (LeaseState.ACTIVE, LeaseState.GRANTING, LeaseState.REVOKING, LeaseState.REVOKE_FAILED)


def covered(store, fake, pair_principal: str, group: str, now: dt.datetime) -> None:
    """Assert the invariant for one pair (no standing membership in these tests).

    A member is covered by a lease the tracker still works on (active, or being granted
    or revoked, retried until done); an unexpired active lease has its member.
    """
    leases = store.find_leases(principal_id=pair_principal, group_id=group)
    member = pair_principal in fake.group_members(group)
    shown = [(x.id, x.state.value) for x in leases]
    if member:
        assert any(x.state in TRACKED for x in leases), f"a member no lease covers: {shown}"
    if any(x.state is LeaseState.ACTIVE and x.expires_at > now for x in leases):
        assert member, f"an active lease without its member: {shown}"


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """Start `target` in a thread; its result or exception lands in the dict."""
    box: dict = {}

    def run():
        try:
            box["result"] = target(*args, **kwargs)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def once(condition, action):
    """An interceptor that runs `action(request)` the first time `condition` holds."""
    fired = {"done": False}

    def interceptor(request):
        if not fired["done"] and condition(request):
            fired["done"] = True
            return action(request)
        return None

    return interceptor


# 1. One tracker shared by threads or tasks is serialised per pair -------------------------


def test_a_grant_in_another_thread_waits_for_the_sweeps_removal(
    fake, tracker, store, clock, alice, ops
):
    grant(tracker, alice, ops)
    clock.advance(HOUR)
    competing: dict = {}

    def grant_meanwhile(request):
        thread, box = in_thread(grant, tracker, alice, ops)
        thread.join(timeout=0.5)
        competing.update(thread=thread, box=box, finished_first=not thread.is_alive())

    fake.interceptor = once(is_remove, grant_meanwhile)
    tracker.sweep()
    competing["thread"].join(timeout=30)
    assert not competing["finished_first"], "the grant ran while the sweep held the pair"
    assert "error" not in competing["box"], competing["box"].get("error")
    covered(store, fake, alice.id, ops, clock.now())
    assert alice.id in fake.group_members(ops)


def test_a_sweep_leaves_a_pair_whose_grant_is_still_being_retried(
    fake, tracker, store, clock, alice, ops
):
    first = grant(tracker, alice, ops)
    clock.advance(HOUR)  # `first` is due
    results: dict = {}

    def sweep_meanwhile(request):
        # The second grant's add is on the wire (being retried): the sweep runs now.
        thread, box = in_thread(tracker.sweep)
        thread.join(timeout=30)
        results["sweep"] = box
        # Then the add fails for good, and was not applied.
        return FakeResponse(
            400,
            (("Content-Type", "application/json"),),
            b'{"error_code":"INVALID_PARAMETER_VALUE","message":"no"}',
        )

    fake.interceptor = once(is_add, sweep_meanwhile)
    with pytest.raises(da.ApiError):
        grant(tracker, alice, ops)
    fake.interceptor = None
    assert "error" not in results["sweep"], results["sweep"].get("error")
    tracker.sweep()  # whatever the first sweep skipped is due now
    assert store.get_lease(first.id).state is LeaseState.REVOKED
    assert alice.id not in fake.group_members(ops)
    covered(store, fake, alice.id, ops, clock.now())
    # The next lease is not mistaken for a standing membership.
    clock.advance(WINDOW)
    assert not grant(tracker, alice, ops).standing


@pytest.mark.parametrize("same_owner", [True, False])
def test_two_trackers_with_one_owner_name_exclude_each_other(
    fake, manager, store, clock, alice, ops, same_owner
):
    one = da.LeaseTracker(manager, store=store, clock=clock, owner="replica")
    two = da.LeaseTracker(
        manager, store=store, clock=clock, owner="replica" if same_owner else "other"
    )
    grant(one, alice, ops)
    clock.advance(HOUR)
    competing: dict = {}

    def grant_meanwhile(request):
        thread, box = in_thread(grant, two, alice, ops)
        thread.join(timeout=0.5)
        competing.update(thread=thread, finished_first=not thread.is_alive(), box=box)

    fake.interceptor = once(is_remove, grant_meanwhile)
    one.sweep()
    competing["thread"].join(timeout=30)
    assert not competing["finished_first"]
    assert "error" not in competing["box"]
    covered(store, fake, alice.id, ops, clock.now())


class GateTransport(httpx.AsyncBaseTransport):
    """Holds the first request matching `condition` until `release` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport, condition) -> None:
        self.inner = inner
        self.condition = condition
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.used = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.used and self.condition(request):
            self.used = True
            self.held.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _httpx_is_remove(request: httpx.Request) -> bool:
    if request.method != "PATCH":
        return False
    return any(op["op"] == "remove" for op in json.loads(request.content)["Operations"])


def test_two_tasks_of_one_async_tracker_are_serialised(fake, config, credentials, clock):
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    ops = fake.add_group("ops")
    store = MemoryLeaseStore()

    async def main():
        gate = GateTransport(fake.transport(), _httpx_is_remove)
        async with da.AsyncAccountClient(
            config, secrets=credentials, transport=gate, clock=clock
        ) as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            await tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
            clock.advance(HOUR)
            sweep = asyncio.create_task(tracker.sweep())
            await gate.held.wait()  # the sweep's removal is about to be sent
            second = asyncio.create_task(
                tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
            )
            await asyncio.sleep(0.2)
            finished_first = second.done()
            gate.release.set()
            await sweep
            await second
            return finished_first

    finished_first = asyncio.run(main())
    assert not finished_first, "the second task's grant ran inside the sweep's claim"
    covered(store, fake, alice.id, ops, clock.now())
    assert alice.id in fake.group_members(ops)


# 2. A throttled grant never outlives its claim ----------------------------------------------


@pytest.mark.parametrize("sweep_at", ["third read", "add"])
def test_a_grant_whose_read_outlives_its_claim_never_acts_on_a_lost_claim(
    fake, config, credentials, store, alice, ops, sweep_at
):
    clock = da.ManualClock()  # sleeps move time: the throttled read outlives the claim

    def make(owner):
        client = da.AccountClient(
            config, secrets=credentials, transport=fake.transport(), clock=clock
        )
        tracker = da.LeaseTracker(
            da.MembershipManager(client), store=store, clock=clock, owner=owner
        )
        return client, tracker

    client1, one = make("one")
    client2, two = make("two")
    with client1, client2:
        earlier = grant(one, alice, ops, ttl=dt.timedelta(minutes=1))
        reads = {"seen": 0}
        swept: dict = {}

        def throttle_then_sweep(request):
            if request.method == "GET" and "/Users/" in request.path:
                reads["seen"] += 1
                if reads["seen"] <= 2:  # two 429s: the read takes two minutes
                    return FakeResponse(
                        429,
                        (("Content-Type", "application/json"), ("Retry-After", "60")),
                        b'{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}',
                    )
                if sweep_at == "third read" and reads["seen"] == 3:
                    swept["report"] = two.sweep()  # the claim of `one` has expired
            if sweep_at == "add" and is_add(request) and not swept:
                swept["report"] = two.sweep()
                return FakeResponse(  # and the add fails for good, not applied
                    400,
                    (("Content-Type", "application/json"),),
                    b'{"error_code":"INVALID_PARAMETER_VALUE","message":"no"}',
                )
            return None

        fake.interceptor = throttle_then_sweep
        with contextlib.suppress(da.DatabricksAccessError):
            grant(one, alice, ops)
        fake.interceptor = None
        if not swept:
            # The read is bounded well inside the claim: it gave up before the claim
            # could expire, and nothing was written.
            assert [x.id for x in store.find_leases(principal_id=alice.id)] == [earlier.id]
        leases = store.find_leases(principal_id=alice.id, group_id=ops)
        live = [x for x in leases if x.state in (LeaseState.ACTIVE, LeaseState.GRANTING)]
        if alice.id in fake.group_members(ops):
            assert live, [(x.id, x.state.value) for x in leases]
        clock.advance(2 * HOUR)
        one.sweep()
        two.sweep()
        assert alice.id not in fake.group_members(ops)
        assert not store.find_leases(
            principal_id=alice.id, group_id=ops, states=(LeaseState.ACTIVE,)
        )


# 3. reconcile(apply=True) takes the pair's claim ----------------------------------------------


def test_reconcile_does_not_re_add_a_lease_revoked_meanwhile(
    fake, tracker, store, clock, alice, ops
):
    lease = grant(tracker, alice, ops, ttl=2 * HOUR)
    clock.advance(WINDOW + dt.timedelta(seconds=1))
    fake.remove_member(ops, alice.id)  # vanished out of band
    competing: dict = {}

    def revoke_meanwhile(request):
        thread, box = in_thread(tracker.revoke, lease.id)
        thread.join(timeout=0.5)
        competing.update(thread=thread, box=box)

    fake.interceptor = once(is_add, revoke_meanwhile)
    tracker.reconcile([ops], apply=True)
    fake.interceptor = None
    competing["thread"].join(timeout=30)
    assert "error" not in competing["box"], competing["box"].get("error")
    assert store.get_lease(lease.id).state is LeaseState.REVOKED
    assert alice.id not in fake.group_members(ops)


def test_reconcile_does_not_re_add_an_expired_lease(fake, tracker, store, clock, alice, ops):
    lease = grant(tracker, alice, ops)
    clock.advance(HOUR)
    fake.remove_member(ops, alice.id)
    report = tracker.reconcile([ops], apply=True)
    assert report.readded == ()
    assert alice.id not in fake.group_members(ops)
    tracker.sweep()
    assert store.get_lease(lease.id).state is LeaseState.REVOKED


# 4. Standing is re-judged from fresh evidence ---------------------------------------------------


def test_a_standing_flag_does_not_survive_the_standing_membership(
    fake, tracker, store, clock, alice
):
    group = fake.add_group("moving-to-jit", members=[alice.id])
    first = grant(tracker, alice, group)
    assert first.standing
    fake.remove_member(group, alice.id)  # an admin ends the standing membership
    clock.advance(WINDOW + dt.timedelta(seconds=1))
    second = grant(tracker, alice, group)
    assert not second.standing
    assert alice.id in fake.group_members(group)
    clock.advance(HOUR)
    tracker.sweep()
    assert alice.id not in fake.group_members(group)
    assert not store.find_leases(principal_id=alice.id, states=(LeaseState.ACTIVE,))


def test_reconcile_re_adding_a_standing_lease_ends_its_standing(fake, tracker, store, clock, alice):
    group = fake.add_group("moving-to-jit", members=[alice.id])
    lease = grant(tracker, alice, group)
    assert lease.standing
    clock.advance(WINDOW + dt.timedelta(seconds=1))
    fake.remove_member(group, alice.id)
    report = tracker.reconcile([group], apply=True)
    assert [x.lease_id for x in report.readded] == [lease.id]
    assert alice.id in fake.group_members(group)
    clock.advance(HOUR)
    tracker.sweep()
    assert alice.id not in fake.group_members(group)


def test_a_standing_membership_removed_before_its_lease_ends_is_not_re_judged_standing(
    fake, tracker, store, clock, alice
):
    group = fake.add_group("standing", members=[alice.id])
    lease = grant(tracker, alice, group)
    assert lease.standing
    clock.advance(HOUR)
    assert tracker.sweep().kept == (lease.id,)
    assert alice.id in fake.group_members(group)  # standing stays


# 5. One failing pair never holds a whole removal batch ------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        FakeResponse(
            400,
            (("Content-Type", "application/json"),),
            b'{"error_code":"INVALID_PARAMETER_VALUE","message":"cannot remove this one"}',
        ),
        FakeResponse(
            500,
            (("Content-Type", "application/json"),),
            b'{"error_code":"INTERNAL_ERROR","message":"boom"}',
        ),
    ],
    ids=["400", "500"],
)
def test_one_bad_pair_does_not_hold_the_others(fake, tracker, store, clock, ops, answer):
    users = [fake.add_user(f"u{i}@example.com") for i in range(100)]
    bad = users[37]
    leases = [grant(tracker, da.PrincipalRef("user", u), ops) for u in users]
    clock.advance(HOUR)

    def refuse_bad(request):
        if is_remove(request) and bad in removed_ids(request):
            return answer
        return None

    fake.interceptor = refuse_bad
    fake.reset_log()
    tracker.sweep()
    assert fake.group_members(ops) == {bad}
    states = {x.id: store.get_lease(x.id).state for x in leases}
    assert [i for i, x in states.items() if x is LeaseState.REVOKE_FAILED] == [leases[37].id]
    # A bisection (about two requests per halving, each 500 retried a few times), not
    # one request per member.
    bound = 2 * 8 + 2 if answer.status == 400 else 6 * (2 * 8 + 2)
    assert fake.counts["patch"] <= bound
    # The next retry bisects again: the innocent are never batched with the bad one.
    clock.advance(dt.timedelta(minutes=5))
    fake.interceptor = None
    tracker.sweep()
    assert fake.group_members(ops) == set()


# 6. extend() racing a sweep loses no update ----------------------------------------------------


class HookedStore(MemoryLeaseStore):
    """A memory store that runs `hook` once, just before the first batch of CAS updates."""

    def __init__(self) -> None:
        super().__init__()
        self.hook = None

    def update_leases(self, updates):
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return super().update_leases(updates)


@pytest.mark.parametrize("ending", ["sweep", "revoke"])
def test_extend_racing_the_end_of_a_lease_is_never_lost(
    fake, client, sink, clock, alice, ops, ending
):
    store = HookedStore()
    tracker = da.LeaseTracker(da.MembershipManager(client), store=store, events=sink, clock=clock)
    lease = grant(tracker, alice, ops)
    if ending == "sweep":
        clock.advance(HOUR)
    competing: dict = {}

    def extend_meanwhile():
        thread, box = in_thread(tracker.extend, lease.id, HOUR)
        thread.join(timeout=0.5)
        competing.update(thread=thread, box=box)

    store.hook = extend_meanwhile
    if ending == "sweep":
        tracker.sweep()
    else:
        tracker.revoke(lease.id)
    competing["thread"].join(timeout=30)
    final = store.get_lease(lease.id)
    kinds = [e.kind for e in sink.events if e.lease_id == lease.id]
    if "result" in competing["box"]:
        # The extension was answered: it must hold.
        promised = competing["box"]["result"].lease.expires_at
        assert final.state is LeaseState.ACTIVE
        assert final.expires_at == promised
        assert alice.id in fake.group_members(ops)
        assert EventKind.EXPIRED not in kinds
    else:
        assert isinstance(competing["box"]["error"], da.LeaseError)
        assert final.state is LeaseState.REVOKED
        assert EventKind.EXTENDED not in kinds
        assert alice.id not in fake.group_members(ops)


def test_a_stale_copy_never_overwrites_a_newer_version(store, alice, ops, clock):
    now = clock.now()
    lease = da.Lease(
        id="lease-1",
        principal=alice,
        group_id=ops,
        state=LeaseState.ACTIVE,
        granted_at=now,
        expires_at=now + HOUR,
        requester="a",
        reason="r",
        updated_at=now,
    )
    store.add_lease(lease)
    read_by_sweep = store.get_lease(lease.id)
    read_by_extend = store.get_lease(lease.id)
    extended = attrs.evolve(read_by_extend, expires_at=now + 2 * HOUR)
    store.update_lease(extended, expect=(LeaseState.ACTIVE,))
    with pytest.raises(da.LeaseError):
        store.update_lease(
            attrs.evolve(read_by_sweep, state=LeaseState.REVOKING), expect=(LeaseState.ACTIVE,)
        )
    assert store.update_leases(
        [(attrs.evolve(read_by_sweep, state=LeaseState.REVOKING), LeaseState.ACTIVE, None)]
    ) == [False]
    assert store.get_lease(lease.id).expires_at == now + 2 * HOUR


# 7. A "not a member" answer to a removal is confirmed by a read ----------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        FakeResponse(
            404,
            (("Content-Type", "application/scim+json"),),
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],'
            b'"detail":"Member not found","status":"404"}',
        ),
        FakeResponse(
            400,
            (("Content-Type", "application/scim+json"),),
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],'
            b'"detail":"not a member","status":"400","scimType":"noTarget"}',
        ),
    ],
    ids=["404", "400-noTarget"],
)
def test_a_not_a_member_answer_is_not_proof(fake, tracker, store, clock, alice, ops, answer):
    lease = grant(tracker, alice, ops)
    clock.advance(HOUR)
    fake.interceptor = lambda request: answer if is_remove(request) else None
    tracker.sweep()
    fake.interceptor = None
    covered(store, fake, alice.id, ops, clock.now())
    stored = store.get_lease(lease.id)
    assert stored.state is LeaseState.REVOKE_FAILED
    clock.advance(dt.timedelta(minutes=5))
    tracker.sweep()
    assert store.get_lease(lease.id).state is LeaseState.REVOKED
    assert alice.id not in fake.group_members(ops)


def test_a_not_a_member_answer_confirmed_by_a_read_ends_the_lease(
    fake, tracker, store, clock, alice, ops
):
    lease = grant(tracker, alice, ops)
    clock.advance(HOUR)
    fake.remove_member(ops, alice.id)
    assert tracker.sweep().revoked == (lease.id,)
    assert store.get_lease(lease.id).state is LeaseState.REVOKED


# 8. The consistency window survives a forward wall-clock step ------------------------------------


def test_a_wall_clock_step_does_not_make_a_regrant_standing(config, credentials, store):
    clock = da.ManualClock()
    fake = FakeAccount(
        account_id=config.account_id,
        clock=lambda: clock.now().timestamp(),
        behaviour=Behaviour(stale_reads=StaleReads(lag_requests=1_000)),
    )
    sp = fake.add_service_principal("c")
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    group = fake.add_group("ops")
    with da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
    ) as client:
        tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
        first = grant(tracker, alice, group)
        clock.advance(HOUR)
        tracker.sweep()
        assert store.get_lease(first.id).state is LeaseState.REVOKED
        clock.jump(dt.timedelta(hours=2))  # NTP steps the wall clock; monotonic time does not
        second = grant(tracker, alice, group)  # the read still lags: it shows alice
        assert not second.standing
        clock.advance(HOUR)
        tracker.sweep()
    assert alice.id not in fake.group_members(group)


def test_the_clock_can_step_without_moving_monotonic_time():
    clock = da.ManualClock()
    wall, mono = clock.now(), clock.monotonic()
    clock.jump(dt.timedelta(hours=-1))
    assert clock.now() == wall - HOUR
    assert clock.monotonic() == mono
    clock.jump(90)
    assert clock.now() == wall - HOUR + dt.timedelta(seconds=90)


# 9. An add whose outcome is unknown is undone --------------------------------------------------


@pytest.mark.parametrize("status", [429, 503, 504])
def test_an_add_applied_but_answered_with_an_error_is_undone(
    fake, tracker, store, clock, alice, ops, status
):
    def apply_then_fail(request):
        if is_add(request):
            fake.add_member(ops, alice.id)  # the account applied it...
            return FakeResponse(  # ...and answered with an error
                status,
                (("Content-Type", "application/json"),),
                b'{"error_code":"TEMPORARILY_UNAVAILABLE","message":"try later"}',
            )
        return None

    fake.interceptor = apply_then_fail
    with pytest.raises(da.ApiError):
        grant(tracker, alice, ops)
    fake.interceptor = None
    covered(store, fake, alice.id, ops, clock.now())
    clock.advance(dt.timedelta(minutes=5))
    tracker.sweep()
    assert alice.id not in fake.group_members(ops)
    assert not store.find_leases(principal_id=alice.id, states=(LeaseState.ACTIVE,))


def test_an_emulated_error_can_be_applied(fake, client, alice, ops):
    fake.interceptor = FaultPlan([Fault.error(503, applied=True, method="PATCH")])
    with pytest.raises(da.ServerError) as caught:
        client.groups.add_members(ops, [alice.id])
    assert caught.value.maybe_applied
    assert alice.id in fake.group_members(ops)


# 10. run() survives any error of one iteration ---------------------------------------------------


class FlakyStore(MemoryLeaseStore):
    """Raises a non-library error from `due_leases` the first `failures` times."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def due_leases(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("disk on fire")
        return super().due_leases(*args, **kwargs)


def test_run_survives_an_error_that_is_not_a_library_error(fake, client, clock, alice, ops, caplog):
    store = FlakyStore(failures=0)
    tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
    lease = grant(tracker, alice, ops, ttl=dt.timedelta(minutes=1))
    clock.advance(dt.timedelta(minutes=1))
    store.failures = 2
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger="databricks_access")
    worker = threading.Thread(target=tracker.run, kwargs={"stop": stop, "idle": 0.05})
    worker.start()
    try:
        for _ in range(400):
            if store.get_lease(lease.id).state is LeaseState.REVOKED or not worker.is_alive():
                break
            stop.wait(0.05)
        assert worker.is_alive(), "run() died"
        assert store.get_lease(lease.id).state is LeaseState.REVOKED
        assert alice.id not in fake.group_members(ops)
        assert any("disk on fire" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        worker.join(timeout=10)


def test_run_survives_a_hostile_error_body(fake, tracker, store, clock, alice, ops):
    lease = grant(tracker, alice, ops, ttl=dt.timedelta(minutes=1))
    clock.advance(dt.timedelta(minutes=1))
    nested = b'{"detail":' * 5000 + b"1" + b"}" * 5000
    hostile = {"on": True}

    def answer(request):
        if hostile["on"] and is_remove(request):
            return FakeResponse(500, (("Content-Type", "application/json"),), nested)
        return None

    fake.interceptor = answer
    stop = threading.Event()
    worker = threading.Thread(target=tracker.run, kwargs={"stop": stop, "idle": 0.05})
    worker.start()
    try:
        for _ in range(100):
            if store.get_lease(lease.id).state is LeaseState.REVOKE_FAILED:
                break
            if not worker.is_alive():
                break
            stop.wait(0.05)
        assert worker.is_alive(), "run() died on a hostile body"
        hostile["on"] = False
        clock.advance(dt.timedelta(minutes=5))
        store.add_event(da.AuditEvent(kind=EventKind.DRIFT, at=clock.now()))  # wake it
        for _ in range(200):
            if store.get_lease(lease.id).state is LeaseState.REVOKED:
                break
            stop.wait(0.05)
        assert store.get_lease(lease.id).state is LeaseState.REVOKED
        assert alice.id not in fake.group_members(ops)
    finally:
        stop.set()
        worker.join(timeout=10)


# The same promises on the async tracker ---------------------------------------------------------


def run_async(async_client_factory, clock, body):
    """Run `body(tracker, store)` on a fresh `AsyncLeaseTracker`; returns the store."""
    store = MemoryLeaseStore()

    async def main():
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            await body(tracker, store)

    asyncio.run(main())
    return store


def test_async_one_bad_pair_does_not_hold_the_others(fake, async_client_factory, clock, ops):
    users = [fake.add_user(f"u{i}@example.com") for i in range(20)]
    bad = users[5]
    answer = FakeResponse(
        400, (("Content-Type", "application/json"),), b'{"error_code":"INVALID","message":"no"}'
    )

    async def body(tracker, store):
        for user in users:
            await tracker.grant(
                da.PrincipalRef("user", user), ops, ttl=HOUR, requester="a", reason="r"
            )
        clock.advance(HOUR)
        fake.interceptor = lambda r: answer if is_remove(r) and bad in removed_ids(r) else None
        await tracker.sweep()
        fake.interceptor = None

    store = run_async(async_client_factory, clock, body)
    assert fake.group_members(ops) == {bad}
    assert [x.principal.id for x in store.find_leases(states=(LeaseState.REVOKE_FAILED,))] == [bad]


def test_async_not_a_member_answer_is_confirmed(fake, async_client_factory, clock, alice, ops):
    answer = FakeResponse(
        404, (("Content-Type", "application/scim+json"),), b'{"detail":"nope","status":"404"}'
    )

    async def body(tracker, store):
        await tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
        clock.advance(HOUR)
        fake.interceptor = lambda r: answer if is_remove(r) else None
        await tracker.sweep()
        fake.interceptor = None
        covered(store, fake, alice.id, ops, clock.now())

    store = run_async(async_client_factory, clock, body)
    assert [x.state for x in store.find_leases()] == [LeaseState.REVOKE_FAILED]


def test_async_standing_flag_ends_with_the_membership(fake, async_client_factory, clock, alice):
    group = fake.add_group("moving-to-jit", members=[alice.id])

    async def body(tracker, store):
        first = await tracker.grant(alice, group, ttl=HOUR, requester="a", reason="r")
        assert first.standing
        fake.remove_member(group, alice.id)
        clock.advance(WINDOW + dt.timedelta(seconds=1))
        second = await tracker.grant(alice, group, ttl=HOUR, requester="a", reason="r")
        assert not second.standing
        clock.advance(HOUR)
        await tracker.sweep()

    run_async(async_client_factory, clock, body)
    assert alice.id not in fake.group_members(group)


def test_async_applied_add_answered_503_is_undone(fake, async_client_factory, clock, alice, ops):
    fake.interceptor = FaultPlan([Fault.error(503, applied=True, method="PATCH", times=6)])

    async def body(tracker, store):
        with pytest.raises(da.ApiError) as caught:
            await tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
        assert caught.value.maybe_applied

    store = run_async(async_client_factory, clock, body)
    assert alice.id not in fake.group_members(ops)
    assert [x.state for x in store.find_leases()] == [LeaseState.REVOKED]


def test_async_run_survives_an_error_that_is_not_a_library_error(
    fake, async_client_factory, clock, alice, ops
):
    store = FlakyStore(failures=0)

    async def main():
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            lease = await tracker.grant(
                alice, ops, ttl=dt.timedelta(minutes=1), requester="a", reason="r"
            )
            clock.advance(dt.timedelta(minutes=1))
            store.failures = 2
            stop = asyncio.Event()
            loop = asyncio.create_task(tracker.run(stop, idle=0.05))
            for _ in range(400):
                if store.get_lease(lease.id).state is LeaseState.REVOKED or loop.done():
                    break
                await asyncio.sleep(0.05)
            assert not loop.done(), "run() died"
            stop.set()
            await asyncio.wait_for(loop, 10)
            return lease

    lease = asyncio.run(main())
    assert store.get_lease(lease.id).state is LeaseState.REVOKED
    assert alice.id not in fake.group_members(ops)


def test_two_replicas_finishing_one_approval_grant_it_once(fake, manager, store, clock, alice, ops):
    one = da.LeaseTracker(manager, store=store, clock=clock, owner="one")
    two = da.LeaseTracker(manager, store=store, clock=clock, owner="two")
    first = one._run(
        one.flows.grant(alice, ops, ttl=HOUR, requester="a", reason="r", request_id="req_1")
    )
    again = two._run(
        two.flows.grant(alice, ops, ttl=HOUR, requester="a", reason="r", request_id="req_1")
    )
    assert again.id == first.id
    assert [x.id for x in store.find_leases(principal_id=alice.id)] == [first.id]
