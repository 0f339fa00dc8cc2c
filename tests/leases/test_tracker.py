"""LeaseTracker against the emulator: one test (at least) per promise of the design."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading

import pytest

import databricks_access as da
from databricks_access import EventKind, LeaseState, MemoryLeaseStore
from databricks_access.testing import Behaviour, FakeAccount, FakeResponse, StaleReads

HOUR = dt.timedelta(hours=1)


def grant(tracker, principal, group, ttl=HOUR, **kw):
    return tracker.grant(
        principal,
        group,
        ttl=ttl,
        requester=kw.pop("requester", "alice"),
        reason=kw.pop("reason", "INC-1"),
        **kw,
    )


# 1. Intent before side effect -----------------------------------------------------------


def test_intent_is_stored_before_each_patch(fake, tracker, store, clock, alice, ops):
    seen = []

    def watch(request):
        if request.method == "PATCH":
            leases = store.find_leases(principal_id=alice.id, group_id=ops)
            seen.append(sorted(lease.state.value for lease in leases))

    fake.interceptor = watch
    lease = grant(tracker, alice, ops)
    assert lease.state is LeaseState.ACTIVE
    clock.advance(HOUR)
    tracker.sweep()
    assert seen == [["granting"], ["revoking"]]
    assert store.get_lease(lease.id).state is LeaseState.REVOKED


def test_grant_adds_and_expiry_removes(fake, tracker, sink, clock, alice, ops):
    lease = grant(tracker, alice, ops, requester="bob", reason="INC-1234", approver="carol")
    assert fake.group_members(ops) == {alice.id}
    assert lease.expires_at == clock.now() + HOUR
    assert tracker.sweep().revoked == ()  # not due yet
    clock.advance(HOUR - dt.timedelta(seconds=1))
    assert tracker.sweep().ended == 0
    clock.advance(dt.timedelta(seconds=1))
    report = tracker.sweep()
    assert report.revoked == (lease.id,)
    assert report.patches == 1
    assert fake.group_members(ops) == set()
    assert sink.kinds() == ["granted", "expired", "revoked"]
    granted = sink.events[0]
    assert (granted.requester, granted.reason, granted.approver) == ("bob", "INC-1234", "carol")
    assert granted.principal == alice


# 2. Standing membership is never revoked by a lease -----------------------------------


def test_standing_member_is_left_alone(fake, tracker, clock, alice):
    group = fake.add_group("standing", members=[alice.id])
    lease = grant(tracker, alice, group)
    assert lease.standing
    clock.advance(HOUR)
    report = tracker.sweep()
    assert report.kept == (lease.id,)
    assert fake.group_members(group) == {alice.id}


def test_a_stale_read_after_our_own_removal_is_not_mistaken_for_standing(clock, config, store):
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
        tracker.revoke(first.id)
        assert fake.group_members(group) == set()
        # Reads still show the first grant's membership; the window says it was ours.
        second = grant(tracker, alice, group, ttl=dt.timedelta(minutes=2))
        assert not second.standing
        clock.advance(dt.timedelta(minutes=2))
        tracker.sweep()
        assert fake.group_members(group) == set()


def test_a_lease_on_a_standing_pair_stays_standing(fake, tracker, clock, alice):
    group = fake.add_group("standing", members=[alice.id])
    first = grant(tracker, alice, group)
    clock.advance(HOUR)
    tracker.sweep()
    second = grant(tracker, alice, group)  # within the window, after a standing lease
    assert first.standing
    assert second.standing
    clock.advance(HOUR)
    tracker.sweep()
    assert fake.group_members(group) == {alice.id}


# 3. Overlapping leases --------------------------------------------------------------------


def test_a_later_shorter_grant_never_shortens_access(fake, tracker, clock, alice, ops):
    long_lease = grant(tracker, alice, ops, ttl=2 * HOUR)
    short_lease = grant(tracker, alice, ops, ttl=HOUR)
    assert not short_lease.standing
    clock.advance(HOUR)
    report = tracker.sweep()
    assert report.kept == (short_lease.id,)
    assert fake.group_members(ops) == {alice.id}
    clock.advance(HOUR)
    report = tracker.sweep()
    assert report.revoked == (long_lease.id,)
    assert fake.group_members(ops) == set()


def test_early_revoke_of_one_overlapping_lease_keeps_access(fake, tracker, alice, ops):
    first = grant(tracker, alice, ops)
    second = grant(tracker, alice, ops)
    assert tracker.revoke(first.id).state is LeaseState.REVOKED
    assert fake.group_members(ops) == {alice.id}
    tracker.revoke(second.id)
    assert fake.group_members(ops) == set()
    assert tracker.revoke(second.id).state is LeaseState.REVOKED  # idempotent


# 4. Extensions are clamped ------------------------------------------------------------------


def test_extension_is_clamped_to_max_ttl_from_the_grant(client, store, clock, alice, ops):
    tracker = da.LeaseTracker(
        da.MembershipManager(client), store=store, clock=clock, max_ttl=3 * HOUR, max_extensions=2
    )
    lease = grant(tracker, alice, ops)
    clock.advance(dt.timedelta(minutes=50))
    first = tracker.extend(lease.id, by=HOUR)
    assert not first.clamped
    assert first.lease.expires_at == lease.expires_at + HOUR
    second = tracker.extend(lease.id, by=5 * HOUR)
    assert second.clamped
    assert second.lease.expires_at == lease.granted_at + 3 * HOUR
    with pytest.raises(da.LeaseError, match="2 times"):
        tracker.extend(lease.id, by=HOUR)


def test_expired_or_ended_leases_cannot_be_extended(tracker, clock, alice, ops):
    lease = grant(tracker, alice, ops)
    clock.advance(HOUR)
    with pytest.raises(da.LeaseError, match="expired"):
        tracker.extend(lease.id, by=HOUR)
    tracker.sweep()
    with pytest.raises(da.LeaseError, match="revoked"):
        tracker.extend(lease.id, by=HOUR)


# 5. Revocation happens at least once ----------------------------------------------------------


def test_failed_revocation_is_reported_and_retried_until_it_succeeds(
    fake, tracker, sink, store, clock, alice, ops
):
    lease = grant(tracker, alice, ops)
    failing = {"on": True}

    def outage(request):
        if request.method == "PATCH" and failing["on"]:
            return FakeResponse(
                503,
                (("Content-Type", "application/json"),),
                b'{"error_code":"TEMPORARILY_UNAVAILABLE","message":"down"}',
            )
        return None

    fake.interceptor = outage
    clock.advance(HOUR)
    report = tracker.sweep()
    assert report.failed == (lease.id,)
    stored = store.get_lease(lease.id)
    assert stored.state is LeaseState.REVOKE_FAILED
    assert "TEMPORARILY_UNAVAILABLE" in stored.last_error
    assert [x.id for x in tracker.leases(state=LeaseState.REVOKE_FAILED)] == [lease.id]
    assert "revoke_failed" in sink.kinds()
    assert fake.group_members(ops) == {alice.id}
    # Not retried before the slow cadence.
    clock.advance(dt.timedelta(minutes=4))
    assert tracker.sweep().ended == 0
    failing["on"] = False
    clock.advance(dt.timedelta(minutes=1))
    assert tracker.sweep().revoked == (lease.id,)
    assert fake.group_members(ops) == set()


def test_an_out_of_band_removal_counts_as_revoked(fake, tracker, clock, alice, ops):
    lease = grant(tracker, alice, ops)
    fake.remove_member(ops, alice.id)
    clock.advance(HOUR)
    assert tracker.sweep().revoked == (lease.id,)


# 6. Expiry is timely: run() sleeps until the next due lease and wakes on grants -----------


def test_run_sleeps_until_the_next_due_lease(tracker, clock, alice, ops):
    assert tracker._run(tracker.flows.seconds_until_due(30.0)) == 30.0
    grant(tracker, alice, ops, ttl=dt.timedelta(minutes=2))
    assert tracker._run(tracker.flows.seconds_until_due(600.0)) == 120.0


def test_run_wakes_on_a_new_grant_and_revokes_on_time(fake, tracker, store, clock, alice, ops):
    stop = threading.Event()
    worker = threading.Thread(target=tracker.run, kwargs={"stop": stop, "idle": 3600})
    worker.start()
    try:
        lease = grant(tracker, alice, ops, ttl=dt.timedelta(minutes=1))
        clock.advance(dt.timedelta(minutes=1))
        store.add_event(da.AuditEvent(kind=EventKind.DRIFT, at=clock.now()))  # a change: wake up
        for _ in range(200):
            if store.get_lease(lease.id).state is LeaseState.REVOKED:
                break
            stop.wait(0.05)
        assert store.get_lease(lease.id).state is LeaseState.REVOKED
        assert fake.group_members(ops) == set()
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


# 7. Many replicas, one store ---------------------------------------------------------------------


def test_a_pair_claimed_by_another_tracker_is_skipped_until_the_claim_expires(
    fake, client, store, clock, alice, ops
):
    manager = da.MembershipManager(client)
    one = da.LeaseTracker(manager, store=store, clock=clock, owner="one")
    two = da.LeaseTracker(manager, store=store, clock=clock, owner="two")
    lease = grant(one, alice, ops)
    clock.advance(HOUR)
    pair = da.Pair(alice.id, ops)
    assert store.claim_pairs(
        [pair], owner="one", now=clock.now(), until=clock.now() + dt.timedelta(minutes=2)
    )
    report = two.sweep()
    assert report.skipped == (lease.id,)
    assert fake.group_members(ops) == {alice.id}
    clock.advance(dt.timedelta(minutes=2))  # the first tracker died holding the claim
    assert two.sweep().revoked == (lease.id,)


def test_sweep_coalesces_due_leases_per_group(fake, tracker, clock):
    users = [fake.add_user(f"u{i}@example.com") for i in range(150)]
    groups = [fake.add_group("a"), fake.add_group("b")]
    for i, user in enumerate(users):
        grant(tracker, da.PrincipalRef("user", user), groups[i % 2])
    clock.advance(HOUR)
    fake.reset_log()
    report = tracker.sweep()
    assert len(report.revoked) == 150
    assert report.patches == 2
    assert fake.counts["patch"] == 2
    assert fake.group_members(groups[0]) == fake.group_members(groups[1]) == set()


# 8. Drift is reported --------------------------------------------------------------------------------


def test_reconcile_reports_and_repairs_drift(fake, tracker, sink, clock, alice, ops):
    bob = fake.add_user("bob@example.com")
    fake.add_member(ops, bob)  # standing privilege: a member without a lease
    lease = grant(tracker, alice, ops, ttl=2 * HOUR)
    clock.advance(dt.timedelta(minutes=10))
    fake.remove_member(ops, alice.id)  # vanished out of band
    report = tracker.reconcile([ops])
    assert [i.principal_id for i in report.standing] == [bob]
    assert [i.lease_id for i in report.vanished] == [lease.id]
    assert fake.group_members(ops) == {bob}  # apply=False changes nothing
    assert sink.kinds().count("drift") == 2
    repaired = tracker.reconcile([ops], apply=True)
    assert [i.lease_id for i in repaired.readded] == [lease.id]
    assert fake.group_members(ops) == {alice.id, bob}
    cleaned = tracker.reconcile([ops], apply=True, remove_standing=True)
    assert [i.principal_id for i in cleaned.removed] == [bob]
    assert fake.group_members(ops) == {alice.id}
    assert tracker.reconcile([ops]).clean


# 9. Everything is audited, durably ---------------------------------------------------------------------


def test_events_wait_in_the_outbox_while_the_sink_fails(client, store, clock, fake, alice, ops):
    delivered = []
    broken = {"on": True}

    def emit(event):
        if broken["on"]:
            raise OSError("disk full")
        delivered.append(event.kind.value)

    tracker = da.LeaseTracker(
        da.MembershipManager(client), store=store, clock=clock, events=da.CallableSink(emit)
    )
    grant(tracker, alice, ops)
    assert delivered == []
    assert [e.event.kind.value for e in store.pending_events()] == ["granted"]
    broken["on"] = False
    clock.advance(HOUR)
    tracker.sweep()
    assert delivered == ["granted", "expired", "revoked"]
    assert store.pending_events() == []


def test_json_lines_sink_writes_one_event_per_line(tmp_path, client, store, clock, alice, ops):
    path = tmp_path / "audit.jsonl"
    tracker = da.LeaseTracker(
        da.MembershipManager(client), store=store, clock=clock, events=da.JsonLinesSink(path)
    )
    grant(tracker, alice, ops)
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["kind"] == "granted"
    assert record["principal"] == {"kind": "user", "id": alice.id}
    assert da.AuditEvent.from_json(record).kind is EventKind.GRANTED


# 10. Time is injected; bad input changes nothing -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": dt.timedelta(seconds=59)}, "ttl"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": -5}, "ttl"),
        ({"ttl": float("inf")}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"ttl": dt.timedelta(days=365)}, "ttl"),
        ({"ttl": "an hour"}, "ttl"),
        ({"requester": ""}, "requester"),
        ({"requester": "x\n"}, "requester"),
        ({"reason": "r" * 1001}, "reason"),
        ({"approver": ""}, "approver"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(fake, tracker, store, alice, ops, kwargs, field):
    args = {"ttl": HOUR, "requester": "alice", "reason": "INC-1"} | kwargs
    fake.reset_log()
    with pytest.raises(da.ConfigError) as info:
        tracker.grant(alice, ops, **args)
    assert field in info.value.fields
    assert store.find_leases() == []
    assert store.pending_events() == []
    assert fake.group_members(ops) == set()
    assert [r for r in fake.log if r.op_class.value != "token"] == []


def test_a_failed_grant_is_recorded_and_raised(fake, tracker, store, sink, alice):
    with pytest.raises(da.NotFoundError):
        grant(tracker, alice, "77777777")
    (lease,) = store.find_leases()
    assert lease.state is LeaseState.GRANT_FAILED
    assert sink.kinds() == ["grant_failed"]


def test_async_tracker_grants_and_sweeps(fake, async_client_factory, clock, sink):
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    ops = fake.add_group("ops")
    store = MemoryLeaseStore()

    async def main():
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, events=sink, clock=clock
            )
            lease = await tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
            assert fake.group_members(ops) == {alice.id}
            clock.advance(HOUR)
            report = await tracker.sweep()
            return lease, report

    lease, report = asyncio.run(main())
    assert report.revoked == (lease.id,)
    assert fake.group_members(ops) == set()
    assert sink.kinds() == ["granted", "expired", "revoked"]
