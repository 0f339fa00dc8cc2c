"""The `LeaseStore` contract, run against every implementation in `STORE_FACTORIES`.

Each test states one promise of the protocol (see `databricks_access._leases.store`); a new
store passes this file unchanged or it is not a `LeaseStore`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import threading
import time

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from databricks_access import (
    AccessRequest,
    AuditEvent,
    ConfigError,
    EventKind,
    Lease,
    LeaseError,
    LeaseState,
    LeaseStore,
    Pair,
    PrincipalKind,
    PrincipalRef,
    RequestState,
)
from databricks_access._leases.store import StaleStateError
from databricks_access._leases.values import StoredEvent
from helpers.internals import threaded
from helpers.postgres_server import postgres_server_fixture  # noqa: F401 - used by the postgres factories
from helpers.store_factories import STORE_FACTORIES

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
ALICE = PrincipalRef(PrincipalKind.USER, "u-alice")
BOB = PrincipalRef(PrincipalKind.SERVICE_PRINCIPAL, "sp-bob")
# Generous bound for "promptly": the promise is "not after the timeout", not a latency.
PROMPT = 5.0

_ids = itertools.count()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request, tmp_path):
    made = STORE_FACTORIES[request.param](tmp_path, request)
    try:
        yield made
    finally:
        made.close()


def lease(**changes) -> Lease:
    values = {
        "id": f"lease_{next(_ids)}",
        "principal": ALICE,
        "group_id": "g-readers",
        "state": LeaseState.ACTIVE,
        "granted_at": T0,
        "expires_at": T0 + HOUR,
        "requester": "alice",
        "reason": "INC-1",
        "updated_at": T0,
    }
    values.update(changes)
    return Lease(**values)


def access_request(**changes) -> AccessRequest:
    values = {
        "id": f"req_{next(_ids)}",
        "principal": ALICE,
        "group_id": "g-readers",
        "ttl_seconds": 3600.0,
        "reason": "INC-1",
        "requester": "alice",
        "state": RequestState.PENDING,
        "created_at": T0,
        "expires_at": T0 + HOUR,
        "updated_at": T0,
    }
    values.update(changes)
    return AccessRequest(**values)


def event(kind: EventKind = EventKind.GRANTED, **changes) -> AuditEvent:
    return AuditEvent(kind=kind, at=changes.pop("at", T0), **changes)


def kinds(store: LeaseStore) -> list[EventKind]:
    return [stored.event.kind for stored in store.pending_events(limit=1000)]


def ids(leases) -> list[str]:
    return [item.id for item in leases]


def drain(store: LeaseStore) -> None:
    """Consume the changes made so far, so the next wait sees only new ones."""
    store.wait_for_change(0)


# -- basics ---------------------------------------------------------------------------------


def test_implements_the_protocol(store):
    assert isinstance(store, LeaseStore)
    assert type(store).__name__ in repr(store)


def test_close_is_idempotent_and_later_calls_raise(store):
    store.close()
    store.close()
    with pytest.raises(LeaseError, match="closed"):
        store.get_lease("x")
    with pytest.raises(LeaseError, match="closed"):
        store.add_lease(lease())
    with pytest.raises(LeaseError, match="closed"):
        store.wait_for_change(0)


def test_context_manager_closes(store):
    with store as entered:
        assert entered is store
        entered.add_lease(lease(id="lease_cm"))
    with pytest.raises(LeaseError):
        store.get_lease("lease_cm")


# -- leases ---------------------------------------------------------------------------------


def test_add_then_get_returns_an_equal_lease(store):
    full = lease(
        principal=BOB,
        state=LeaseState.REVOKE_FAILED,
        approver="carol",
        standing=True,
        extensions=2,
        attempts=5,
        retry_at=T0 + 5 * MIN,
        last_error="HTTP 503: unavailable",
        ended_at=T0 + 2 * HOUR,
        request_id="req_1",
        group_name="Readers",
        principal_name="bob-bot",
    )
    store.add_lease(full)
    assert store.get_lease(full.id) == full
    assert store.get_lease("lease_missing") is None


def test_add_writes_its_event_in_the_same_step(store):
    store.add_lease(lease(id="lease_a"), event(lease_id="lease_a"))
    store.add_lease(lease(id="lease_b"))
    pending = store.pending_events()
    assert [(p.event.kind, p.event.lease_id) for p in pending] == [(EventKind.GRANTED, "lease_a")]


def test_add_with_a_duplicate_id_fails_and_writes_nothing(store):
    first = lease(id="lease_dup")
    store.add_lease(first)
    with pytest.raises(LeaseError, match="lease_dup"):
        store.add_lease(lease(id="lease_dup", group_id="g-other"), event(lease_id="lease_dup"))
    assert store.get_lease("lease_dup") == first
    assert store.pending_events() == []


def test_naive_datetimes_are_refused(store):
    with pytest.raises(LeaseError, match="timezone-aware"):
        store.add_lease(lease(expires_at=dt.datetime(2026, 1, 1, 10, 0)))  # noqa: DTZ001
    with pytest.raises(LeaseError, match="timezone-aware"):
        store.due_leases(dt.datetime(2026, 1, 1), stuck_before=T0)  # noqa: DTZ001
    assert store.find_leases() == []


def test_values_a_durable_store_cannot_hold_are_refused_before_any_change(store):
    bad_event = event(detail={"not text": object()})
    with pytest.raises(LeaseError, match="JSON"):
        store.add_lease(lease(id="lease_bad_event"), bad_event)
    with pytest.raises(LeaseError, match="JSON"):
        store.add_event(bad_event)
    with pytest.raises(LeaseError, match="64-bit"):
        store.add_lease(lease(id="lease_big", attempts=2**64))
    with pytest.raises(LeaseError, match="finite"):
        store.add_request(access_request(id="req_nan", ttl_seconds=float("nan")))
    assert store.get_lease("lease_bad_event") is None
    assert store.get_lease("lease_big") is None
    assert store.get_request("req_nan") is None
    assert store.pending_events() == []


def test_datetimes_round_trip_exactly_in_utc(store):
    exact = T0.replace(microsecond=123456)
    tz = dt.timezone(dt.timedelta(hours=5, minutes=30))
    item = lease(
        granted_at=exact,
        expires_at=dt.datetime(2026, 1, 1, 15, 30, 0, 1, tzinfo=tz),  # 10:00:00.000001 UTC
        updated_at=exact + dt.timedelta(microseconds=1),
        retry_at=dt.datetime(1970, 1, 1, tzinfo=UTC) - dt.timedelta(microseconds=1),
        ended_at=dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    )
    store.add_lease(item)
    got = store.get_lease(item.id)
    assert got == item
    for name in ("granted_at", "expires_at", "updated_at", "retry_at", "ended_at"):
        value = getattr(got, name)
        assert value == getattr(item, name)
        assert value.utcoffset() == dt.timedelta(0)
    assert got.granted_at.microsecond == 123456
    assert got.expires_at.astimezone(UTC) == dt.datetime(2026, 1, 1, 10, 0, 0, 1, tzinfo=UTC)


def test_find_filters_by_each_criterion(store):
    a = lease(principal=ALICE, group_id="g-1", state=LeaseState.ACTIVE)
    b = lease(principal=ALICE, group_id="g-2", state=LeaseState.REVOKED)
    c = lease(principal=BOB, group_id="g-1", state=LeaseState.GRANTING)
    d = lease(principal=BOB, group_id="g-2", state=LeaseState.ACTIVE)
    for item in (a, b, c, d):
        store.add_lease(item)
    assert ids(store.find_leases()) == ids([a, b, c, d])
    assert ids(store.find_leases(principal_id=ALICE.id)) == ids([a, b])
    assert ids(store.find_leases(group_id="g-1")) == ids([a, c])
    assert ids(store.find_leases(principal_id=BOB.id, group_id="g-2")) == ids([d])
    assert ids(store.find_leases(states=[LeaseState.ACTIVE])) == ids([a, d])
    assert ids(store.find_leases(states={LeaseState.ACTIVE, LeaseState.GRANTING})) == ids([a, c, d])
    assert ids(store.find_leases(group_id="g-1", states=[LeaseState.GRANTING])) == ids([c])
    assert ids(store.find_leases(principal_id=ALICE.id, group_id="g-1", states=[])) == []
    assert store.find_leases(states=[]) == []
    assert store.find_leases(principal_id="nobody") == []
    assert store.find_leases(principal_id=ALICE.id, group_id="g-3") == []


def test_find_orders_by_granted_at_then_insertion_and_limits(store):
    late = lease(granted_at=T0 + HOUR)
    early = lease(granted_at=T0 - HOUR)
    tie_1 = lease(granted_at=T0)
    tie_2 = lease(granted_at=T0)
    for item in (late, tie_1, early, tie_2):
        store.add_lease(item)
    assert ids(store.find_leases()) == ids([early, tie_1, tie_2, late])
    assert ids(store.find_leases(limit=2)) == ids([early, tie_1])
    assert store.find_leases(limit=0) == []
    assert ids(store.find_leases(limit=None)) == ids([early, tie_1, tie_2, late])
    # An update keeps the lease's place among ties.
    store.update_lease(attrs.evolve(tie_1, state=LeaseState.REVOKING), expect=[LeaseState.ACTIVE])
    assert ids(store.find_leases()) == ids([early, tie_1, tie_2, late])
    with pytest.raises(ConfigError):
        store.find_leases(limit=-1)


def test_update_replaces_the_lease_and_writes_its_event(store):
    item = lease(state=LeaseState.GRANTING)
    store.add_lease(item)
    active = attrs.evolve(item, state=LeaseState.ACTIVE, updated_at=T0 + MIN, extensions=1)
    store.update_lease(active, expect=[LeaseState.GRANTING], event=event(lease_id=item.id))
    assert store.get_lease(item.id) == attrs.evolve(active, version=1)
    assert kinds(store) == [EventKind.GRANTED]
    # Several expected states, any iterable.
    revoking = attrs.evolve(active, state=LeaseState.REVOKING, version=1)
    store.update_lease(revoking, expect=(s for s in (LeaseState.ACTIVE, LeaseState.REVOKE_FAILED)))
    assert store.get_lease(item.id) == attrs.evolve(revoking, version=2)


def test_update_counts_the_version_up_and_refuses_a_stale_copy(store):
    item = lease(state=LeaseState.ACTIVE)
    store.add_lease(item)
    assert store.get_lease(item.id).version == 0
    read_by_one, read_by_two = store.get_lease(item.id), store.get_lease(item.id)
    extended = attrs.evolve(read_by_one, expires_at=item.expires_at + HOUR, extensions=1)
    store.update_lease(extended, expect=[LeaseState.ACTIVE], event=event(EventKind.EXTENDED))
    assert store.get_lease(item.id) == attrs.evolve(extended, version=1)
    # The other writer read version 0: same state, but its copy is stale.
    stale = attrs.evolve(read_by_two, state=LeaseState.REVOKING)
    with pytest.raises(StaleStateError, match="changed meanwhile"):
        store.update_lease(stale, expect=[LeaseState.ACTIVE], event=event(EventKind.EXPIRED))
    assert store.update_leases([(stale, LeaseState.ACTIVE, event(EventKind.EXPIRED))]) == [False]
    assert store.get_lease(item.id) == attrs.evolve(extended, version=1)
    assert kinds(store) == [EventKind.EXTENDED]
    # A copy read after the change goes through, and counts on.
    fresh = store.get_lease(item.id)
    assert store.update_leases(
        [(attrs.evolve(fresh, state=LeaseState.REVOKING), LeaseState.ACTIVE, None)]
    ) == [True]
    assert store.get_lease(item.id).version == 2


def test_update_in_an_unexpected_state_is_stale_and_writes_nothing(store):
    item = lease(state=LeaseState.ACTIVE)
    store.add_lease(item)
    changed = attrs.evolve(item, state=LeaseState.REVOKED)
    with pytest.raises(StaleStateError, match=item.id):
        store.update_lease(changed, expect=[LeaseState.GRANTING], event=event(EventKind.REVOKED))
    with pytest.raises(StaleStateError):
        store.update_lease(changed, expect=[], event=event(EventKind.REVOKED))
    assert store.get_lease(item.id) == item
    assert store.pending_events() == []


def test_update_of_a_missing_lease_is_stale(store):
    with pytest.raises(StaleStateError, match="lease_ghost"):
        store.update_lease(
            lease(id="lease_ghost"), expect=list(LeaseState), event=event(EventKind.REVOKED)
        )
    assert store.get_lease("lease_ghost") is None
    assert store.pending_events() == []
    assert issubclass(StaleStateError, LeaseError)


def test_leases_on_pairs_returns_every_lease_of_those_pairs_only(store):
    a1 = lease(principal=ALICE, group_id="g1", granted_at=T0)
    a2 = lease(principal=ALICE, group_id="g1", granted_at=T0 + MIN, state=LeaseState.REVOKED)
    a3 = lease(principal=ALICE, group_id="g2", granted_at=T0)
    b1 = lease(principal=BOB, group_id="g1", granted_at=T0 - MIN)
    for item in (a1, a2, a3, b1):
        store.add_lease(item)
    pairs = [Pair(ALICE.id, "g1"), Pair(BOB.id, "g1"), Pair("nobody", "g1"), Pair(ALICE.id, "g1")]
    assert ids(store.leases_on_pairs(pairs)) == ids([b1, a1, a2])
    live = [LeaseState.ACTIVE, LeaseState.GRANTING]
    assert ids(store.leases_on_pairs(pairs, states=live)) == ids([b1, a1])
    assert store.leases_on_pairs([]) == []
    assert store.leases_on_pairs(pairs, states=[]) == []
    many = [Pair(f"p{i}", "g1") for i in range(1000)] + [Pair(ALICE.id, "g2")]
    assert ids(store.leases_on_pairs(many)) == ids([a3])


def test_update_many_applies_each_compare_and_set_with_its_event(store):
    first, second, third = (lease(state=LeaseState.ACTIVE) for _ in range(3))
    for item in (first, second, third):
        store.add_lease(item)
    store.update_lease(attrs.evolve(second, state=LeaseState.REVOKING), expect=[LeaseState.ACTIVE])
    updates = [
        (
            attrs.evolve(first, state=LeaseState.REVOKING),
            LeaseState.ACTIVE,
            event(EventKind.EXPIRED, lease_id=first.id),
        ),
        (
            attrs.evolve(second, state=LeaseState.REVOKING),
            LeaseState.ACTIVE,
            event(EventKind.EXPIRED, lease_id=second.id),
        ),
        (attrs.evolve(third, state=LeaseState.REVOKING), LeaseState.ACTIVE, None),
        (
            lease(id="lease_ghost"),
            LeaseState.ACTIVE,
            event(EventKind.EXPIRED, lease_id="lease_ghost"),
        ),
    ]
    assert store.update_leases(updates) == [True, False, True, False]
    assert store.get_lease(first.id).state is LeaseState.REVOKING
    assert store.get_lease(third.id).state is LeaseState.REVOKING
    assert store.get_lease("lease_ghost") is None
    # Only the applied updates wrote their events.
    assert [e.event.lease_id for e in store.pending_events()] == [first.id]
    assert store.update_leases([]) == []


def _one_at_a_time(stored: dict[str, Lease], updates) -> tuple[list[bool], list[str]]:
    """The reference for `update_leases`: each compare-and-set in turn, in order.

    Returns the answers and the lease ids of the events written, in the order written.
    """
    answers: list[bool] = []
    written: list[str] = []
    for new, expect, ev in updates:
        old = stored.get(new.id)
        if old is None or old.state is not expect or old.version != new.version:
            answers.append(False)
            continue
        stored[new.id] = attrs.evolve(new, version=new.version + 1)
        if ev is not None:
            written.append(ev.lease_id)
        answers.append(True)
    return answers, written


@pytest.mark.parametrize("calling", ["sync", "threaded"])
def test_update_many_in_bulk_ends_as_one_update_at_a_time(store, calling):
    """A batch larger than one statement binds, with every kind of miss, and leases
    updated twice in it: the same answers, rows and events as one update at a time."""
    items = []
    for i in range(1030):
        state = LeaseState.REVOKE_FAILED if i % 9 == 4 else LeaseState.ACTIVE
        items.append(
            lease(
                id=f"lease_bulk_{i:04d}",
                principal=PrincipalRef(PrincipalKind.USER, f"u-{i}"),
                group_id=f"g-{i % 7}",
                state=state,
                expires_at=T0 + i * MIN,
                retry_at=T0 if state is LeaseState.REVOKE_FAILED else None,
            )
        )
    for item in items:
        store.add_lease(item)
    # Two leases changed since the batch read them: their version moved on.
    for item in items[5:7]:
        store.update_lease(attrs.evolve(item, reason="changed"), expect=[item.state])
    stored = {item.id: store.get_lease(item.id) for item in items}
    at = T0 + 2 * HOUR
    updates = []
    for i, item in enumerate(items):
        revoking = attrs.evolve(item, state=LeaseState.REVOKING, updated_at=at)
        kind = i % 10
        if kind == 1:  # expecting a state the lease is not in
            updates.append((revoking, LeaseState.GRANTING, event(lease_id=item.id)))
        elif kind == 2:  # no event
            updates.append((revoking, item.state, None))
        elif kind == 3:  # twice in the batch: the second sees the first; a stale third
            revoked = attrs.evolve(
                revoking, state=LeaseState.REVOKED, version=1, ended_at=at, last_error=None
            )
            updates.append((revoking, item.state, event(EventKind.EXPIRED, lease_id=item.id)))
            updates.append(
                (revoked, LeaseState.REVOKING, event(EventKind.REVOKED, lease_id=item.id))
            )
            updates.append((revoked, LeaseState.REVOKING, event(EventKind.DRIFT, lease_id=item.id)))
        elif kind == 8:  # a stale copy: read at another version
            updates.append((attrs.evolve(revoking, version=7), item.state, event(lease_id=item.id)))
        else:
            failed = attrs.evolve(
                revoking,
                attempts=i,
                last_error=f"error {i}" if i % 3 else None,
                retry_at=at + i * MIN if i % 2 else None,
            )
            updates.append((failed, item.state, event(EventKind.EXPIRED, lease_id=item.id, at=at)))
        if i % 250 == 0:  # a lease that does not exist
            ghost = lease(id=f"lease_ghost_{i}")
            updates.append((ghost, LeaseState.ACTIVE, event(lease_id=ghost.id)))
    expected, written = _one_at_a_time(stored, updates)
    if calling == "sync":
        got = store.update_leases(updates)
    else:
        got = asyncio.run(threaded(store).update_leases(updates))
    assert got == expected
    assert sum(expected) > 800
    assert store.get_lease("lease_ghost_0") is None
    assert {item.id: item for item in store.find_leases()} == stored
    pending = store.pending_events(limit=5000)
    assert [p.event.lease_id for p in pending] == written
    assert [p.seq for p in pending] == sorted(p.seq for p in pending)


def test_update_is_a_compare_and_set_between_racing_writers(store):
    item = lease(state=LeaseState.ACTIVE)
    store.add_lease(item)
    wins = []
    errors = []
    barrier = threading.Barrier(8)

    def race(n):
        barrier.wait()
        try:
            store.update_lease(
                attrs.evolve(item, state=LeaseState.REVOKING, last_error=f"writer {n}"),
                expect=[LeaseState.ACTIVE],
                event=event(EventKind.EXPIRED, detail={"writer": str(n)}),
            )
            wins.append(n)
        except StaleStateError:
            errors.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROMPT)
    assert len(wins) == 1
    assert len(errors) == 7
    assert store.get_lease(item.id).last_error == f"writer {wins[0]}"
    assert [p.event.detail for p in store.pending_events()] == [{"writer": str(wins[0])}]


# -- due leases -----------------------------------------------------------------------------


def test_due_leases_applies_each_state_rule(store):
    now = T0 + HOUR
    stuck_before = now - 2 * MIN
    due = {
        "active_past": lease(state=LeaseState.ACTIVE, expires_at=now - MIN),
        "active_now": lease(state=LeaseState.ACTIVE, expires_at=now),
        "failed_retry": lease(
            state=LeaseState.REVOKE_FAILED, retry_at=now - MIN, updated_at=now + HOUR
        ),
        "failed_no_retry": lease(state=LeaseState.REVOKE_FAILED, updated_at=now - 3 * MIN),
        "granting_stuck": lease(state=LeaseState.GRANTING, updated_at=stuck_before),
        "revoking_stuck": lease(state=LeaseState.REVOKING, updated_at=stuck_before - MIN),
    }
    not_due = {
        "active_future": lease(state=LeaseState.ACTIVE, expires_at=now + dt.timedelta(seconds=1)),
        "failed_later": lease(
            state=LeaseState.REVOKE_FAILED, retry_at=now + MIN, updated_at=now - HOUR
        ),
        "failed_no_retry_later": lease(state=LeaseState.REVOKE_FAILED, updated_at=now + MIN),
        "granting_fresh": lease(state=LeaseState.GRANTING, updated_at=stuck_before + MIN),
        "revoking_fresh": lease(state=LeaseState.REVOKING, updated_at=now),
        "revoked": lease(state=LeaseState.REVOKED, expires_at=now - HOUR, updated_at=T0),
        "grant_failed": lease(state=LeaseState.GRANT_FAILED, expires_at=now - HOUR, updated_at=T0),
    }
    for item in (*due.values(), *not_due.values()):
        store.add_lease(item)
    found = store.due_leases(now, stuck_before=stuck_before)
    assert set(ids(found)) == set(ids(due.values()))
    assert all(item == store.get_lease(item.id) for item in found)


def test_due_leases_come_earliest_due_first_with_limit(store):
    now = T0 + 10 * HOUR
    stuck_after = 10 * MIN
    stuck_before = now - stuck_after
    a = lease(state=LeaseState.ACTIVE, expires_at=now - 5 * HOUR)
    b = lease(state=LeaseState.REVOKE_FAILED, retry_at=now - 4 * HOUR)
    # Updated 5 h 5 min ago, stuck after 10 min: due 4 h 55 min ago, between a and b
    # (by `updated_at` alone it would come first).
    c = lease(state=LeaseState.GRANTING, updated_at=now - 5 * HOUR - 5 * MIN)
    d = lease(state=LeaseState.ACTIVE, expires_at=now - 3 * HOUR)
    e = lease(state=LeaseState.REVOKING, updated_at=now - 2 * HOUR)
    f1 = lease(state=LeaseState.ACTIVE, expires_at=now - HOUR)
    f2 = lease(state=LeaseState.REVOKE_FAILED, updated_at=now - HOUR)  # tie: insertion order
    for item in (f2, e, d, c, b, a, f1):
        store.add_lease(item)
    order = [a, c, b, d, e, f2, f1]
    assert ids(store.due_leases(now, stuck_before=stuck_before)) == ids(order)
    assert ids(store.due_leases(now, stuck_before=stuck_before, limit=3)) == ids(order[:3])
    assert store.due_leases(now, stuck_before=stuck_before, limit=0) == []
    with pytest.raises(ConfigError):
        store.due_leases(now, stuck_before=stuck_before, limit=-5)


def test_due_leases_limit_applies_across_states(store):
    now = T0 + HOUR
    for n in range(5):
        store.add_lease(lease(state=LeaseState.ACTIVE, expires_at=T0 + n * MIN))
        store.add_lease(lease(state=LeaseState.REVOKING, updated_at=T0 - HOUR + n * MIN))
    got = store.due_leases(now, stuck_before=now, limit=4)
    assert [item.state for item in got] == [LeaseState.REVOKING] * 4
    got = store.due_leases(now, stuck_before=now, limit=7)
    assert len(got) == 7
    assert got[-1].state is LeaseState.ACTIVE


def test_due_leases_follow_updates(store):
    item = lease(state=LeaseState.ACTIVE, expires_at=T0)
    store.add_lease(item)
    assert ids(store.due_leases(T0, stuck_before=T0 - MIN)) == [item.id]
    revoked = attrs.evolve(item, state=LeaseState.REVOKED, ended_at=T0)
    store.update_lease(revoked, expect=[LeaseState.ACTIVE])
    assert store.due_leases(T0 + HOUR, stuck_before=T0 + HOUR) == []
    assert store.next_due(stuck_after=MIN) is None


def test_next_due_is_the_earliest_time_due_leases_would_answer(store):
    stuck_after = 2 * MIN
    assert store.next_due(stuck_after=stuck_after) is None
    store.add_lease(lease(state=LeaseState.REVOKED, expires_at=T0 - HOUR))
    assert store.next_due(stuck_after=stuck_after) is None
    store.add_lease(lease(state=LeaseState.ACTIVE, expires_at=T0 + HOUR))
    assert store.next_due(stuck_after=stuck_after) == T0 + HOUR
    store.add_lease(lease(state=LeaseState.REVOKE_FAILED, updated_at=T0 + 50 * MIN))
    assert store.next_due(stuck_after=stuck_after) == T0 + 50 * MIN
    store.add_lease(
        lease(state=LeaseState.REVOKE_FAILED, retry_at=T0 + 40 * MIN, updated_at=T0 - HOUR)
    )
    assert store.next_due(stuck_after=stuck_after) == T0 + 40 * MIN
    store.add_lease(lease(state=LeaseState.GRANTING, updated_at=T0 + 30 * MIN))
    assert store.next_due(stuck_after=stuck_after) == T0 + 32 * MIN
    store.add_lease(lease(state=LeaseState.REVOKING, updated_at=T0 + 20 * MIN))
    when = store.next_due(stuck_after=stuck_after)
    assert when == T0 + 22 * MIN
    assert when.utcoffset() == dt.timedelta(0)
    # At exactly that time, due_leases answers; a microsecond before, it does not.
    assert store.due_leases(when, stuck_before=when - stuck_after) != []
    before = when - dt.timedelta(microseconds=1)
    assert store.due_leases(before, stuck_before=before - stuck_after) == []


# -- claims ---------------------------------------------------------------------------------

P1, P2, P3 = Pair("u-1", "g-1"), Pair("u-2", "g-1"), Pair("u-1", "g-2")


def test_claims_free_pairs_in_the_order_given(store):
    until = T0 + 2 * MIN
    assert store.claim_pairs([P3, P1, P2], owner="a", now=T0, until=until) == [P3, P1, P2]
    assert store.claim_pairs([], owner="a", now=T0, until=until) == []


def test_claims_skip_pairs_held_by_another_owner(store):
    until = T0 + 2 * MIN
    store.claim_pairs([P1], owner="a", now=T0, until=until)
    assert store.claim_pairs([P1, P2], owner="b", now=T0 + MIN, until=until + MIN) == [P2]
    # Just before expiry, still held.
    almost = until - dt.timedelta(microseconds=1)
    assert store.claim_pairs([P1], owner="b", now=almost, until=almost + MIN) == []


def test_claims_expire_by_the_clock_passed_in(store):
    until = T0 + 2 * MIN
    store.claim_pairs([P1, P2], owner="a", now=T0, until=until)
    # `now` is the caller's clock: at `until` exactly the claim has expired, though the
    # system clock is years away from it.
    assert store.claim_pairs([P1], owner="b", now=until, until=until + 2 * MIN) == [P1]
    assert store.claim_pairs([P1, P2], owner="a", now=until, until=until + 2 * MIN) == [P2]


def test_claims_by_the_same_owner_are_renewed(store):
    store.claim_pairs([P1], owner="a", now=T0, until=T0 + MIN)
    assert store.claim_pairs([P1], owner="a", now=T0 + MIN / 2, until=T0 + 10 * MIN) == [P1]
    # Renewed to T0 + 10 min: another owner cannot take it at T0 + 5 min.
    assert store.claim_pairs([P1], owner="b", now=T0 + 5 * MIN, until=T0 + 20 * MIN) == []
    assert store.claim_pairs([P1], owner="b", now=T0 + 10 * MIN, until=T0 + 20 * MIN) == [P1]


def test_renewal_keeps_only_claims_still_held_by_the_owner(store):
    store.claim_pairs([P1, P2, P3], owner="a", now=T0, until=T0 + MIN)
    # P2 expired and was taken over; P3 was released; P1 expired but nobody took it.
    store.claim_pairs([P2], owner="b", now=T0 + 2 * MIN, until=T0 + 4 * MIN)
    store.release_pairs([P3], owner="a")
    renewed = store.renew_pairs([P1, P2, P3], owner="a", until=T0 + 10 * MIN)
    assert renewed == [P1]
    # P1 is held to its new expiry; P3 was not claimed by the renewal.
    assert store.claim_pairs([P1], owner="c", now=T0 + 5 * MIN, until=T0 + 6 * MIN) == []
    assert store.claim_pairs([P3], owner="c", now=T0 + 5 * MIN, until=T0 + 6 * MIN) == [P3]
    assert store.claim_pairs([P2], owner="a", now=T0 + 3 * MIN, until=T0 + 6 * MIN) == []
    assert store.renew_pairs([], owner="a", until=T0) == []


def test_claims_with_repeated_pairs_return_each_occurrence(store):
    got = store.claim_pairs([P1, P2, P1], owner="a", now=T0, until=T0 + MIN)
    assert got == [P1, P2, P1]


def test_release_frees_only_the_owners_claims(store):
    until = T0 + 10 * MIN
    store.claim_pairs([P1], owner="a", now=T0, until=until)
    store.claim_pairs([P2], owner="b", now=T0, until=until)
    store.release_pairs([P1, P2, P3], owner="a")
    assert store.claim_pairs([P1, P2], owner="c", now=T0, until=until) == [P1]
    store.release_pairs([], owner="b")
    store.release_pairs([P2], owner="b")
    assert store.claim_pairs([P2], owner="c", now=T0, until=until) == [P2]


def test_claims_batch_of_a_thousand(store):
    pairs = [Pair(f"u-{n}", f"g-{n % 7}") for n in range(1000)]
    taken = pairs[::3]
    store.claim_pairs(taken, owner="other", now=T0, until=T0 + HOUR)
    start = time.perf_counter()
    got = store.claim_pairs(pairs, owner="me", now=T0, until=T0 + MIN)
    elapsed = time.perf_counter() - start
    taken_set = set(taken)
    assert got == [p for p in pairs if p not in taken_set]
    assert elapsed < PROMPT


def test_claims_are_exclusive_between_racing_threads(store):
    pairs = [Pair(f"u-{n}", "g") for n in range(20)]
    holders: dict[Pair, str] = {}
    guard = threading.Lock()
    violations = []
    claimed_total = []

    def worker(owner):
        count = 0
        for round_ in range(30):
            got = store.claim_pairs(pairs[round_ % 5 :], owner=owner, now=T0, until=T0 + HOUR)
            with guard:
                for pair in got:
                    if holders.get(pair, owner) != owner:
                        violations.append((pair, owner, holders[pair]))
                    holders[pair] = owner
            count += len(got)
            with guard:
                for pair in got:
                    del holders[pair]
            store.release_pairs(got, owner=owner)
        claimed_total.append(count)

    threads = [threading.Thread(target=worker, args=(f"owner-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROMPT * 4)
    assert violations == []
    assert len(claimed_total) == 4
    assert sum(claimed_total) > 0


# -- outbox ---------------------------------------------------------------------------------


def test_events_come_back_equal_in_the_order_written(store):
    first = AuditEvent(
        kind=EventKind.GRANTED,
        at=T0.replace(microsecond=7),
        lease_id="lease_1",
        request_id="req_1",
        principal=BOB,
        group_id="g-1",
        requester="alice",
        reason="INC-1 — ünïcode",
        approver="carol",
        expires_at=T0 + HOUR,
        detail={"clamped": True, "attempts": 3, "ratio": 0.5, "note": "a\nb"},
        principal_name="bob-app",
        group_name="prod-data-readers",
    )
    second = event(EventKind.DRIFT, detail={"member": "u-9"})
    store.add_event(first)
    store.add_event(second)
    pending = store.pending_events()
    assert [p.event for p in pending] == [first, second]
    assert all(isinstance(p, StoredEvent) for p in pending)
    assert pending[0].seq < pending[1].seq


def test_pending_events_limit_and_mark_delivered(store):
    for n in range(5):
        store.add_event(event(EventKind.DRIFT, detail={"n": str(n)}))
    first_two = store.pending_events(limit=2)
    assert [p.event.detail["n"] for p in first_two] == ["0", "1"]
    assert store.pending_events(limit=0) == []
    store.mark_delivered([p.seq for p in first_two])
    rest = store.pending_events()
    assert [p.event.detail["n"] for p in rest] == ["2", "3", "4"]
    # Out of order, repeated, unknown and empty: ignored where they mean nothing.
    store.mark_delivered([rest[2].seq, rest[0].seq, rest[0].seq, 999_999])
    store.mark_delivered([])
    assert [p.event.detail["n"] for p in store.pending_events()] == ["3"]
    store.add_event(event(EventKind.DRIFT, detail={"n": "5"}))
    later = store.pending_events()
    assert [p.event.detail["n"] for p in later] == ["3", "5"]
    assert later[1].seq > rest[2].seq
    with pytest.raises(ConfigError):
        store.pending_events(limit=-1)


# -- access requests ------------------------------------------------------------------------


def test_requests_round_trip_and_refuse_duplicates(store):
    full = access_request(
        principal=BOB,
        ttl_seconds=5400.25,
        approvers=("carol@example.com", "owners-group"),
        approver_source="resource_owner",
        decided_by="carol@example.com",
        decision_reason="ok",
        lease_id="lease_9",
        access_details="Use the VPN.",
        group_name="Readers",
        principal_name="bob-bot",
        created_at=T0.replace(microsecond=999999),
    )
    store.add_request(full, event(EventKind.REQUEST_SUBMITTED, request_id=full.id))
    assert store.get_request(full.id) == full
    assert store.get_request("req_missing") is None
    with pytest.raises(LeaseError, match=full.id):
        store.add_request(access_request(id=full.id), event(EventKind.REQUEST_SUBMITTED))
    assert store.get_request(full.id) == full
    assert kinds(store) == [EventKind.REQUEST_SUBMITTED]


def test_a_request_keeps_its_grant_retries(store):
    item = access_request()
    store.add_request(item)
    assert store.get_request(item.id).attempts == 0
    assert store.get_request(item.id).retry_at is None
    retrying = attrs.evolve(
        item,
        state=RequestState.APPROVED,
        decided_by="bob",
        attempts=3,
        retry_at=T0.replace(microsecond=123456) + HOUR,
        last_error="RateLimitedError: HTTP 429 \u00e9\x00",
        updated_at=T0 + MIN,
    )
    store.update_request(retrying, expect=[RequestState.PENDING], event=None)
    assert store.get_request(item.id) == retrying
    (found,) = store.find_requests(states=(RequestState.APPROVED,))
    assert (found.attempts, found.retry_at, found.last_error) == (
        3,
        retrying.retry_at,
        retrying.last_error,
    )
    granted = attrs.evolve(retrying, retry_at=None, lease_id="lease_1")
    store.update_request(granted, expect=[RequestState.APPROVED], event=None)
    assert store.get_request(item.id) == granted


def test_request_update_is_a_compare_and_set(store):
    item = access_request()
    store.add_request(item)
    approved = attrs.evolve(
        item, state=RequestState.APPROVED, decided_by="bob", updated_at=T0 + MIN
    )
    store.update_request(
        approved, expect=[RequestState.PENDING], event=event(EventKind.REQUEST_APPROVED)
    )
    assert store.get_request(item.id) == approved
    denied = attrs.evolve(item, state=RequestState.DENIED)
    with pytest.raises(StaleStateError, match=item.id):
        store.update_request(
            denied, expect=[RequestState.PENDING], event=event(EventKind.REQUEST_DENIED)
        )
    with pytest.raises(StaleStateError, match="req_ghost"):
        store.update_request(
            access_request(id="req_ghost"),
            expect=list(RequestState),
            event=event(EventKind.REQUEST_DENIED),
        )
    assert store.get_request(item.id) == approved
    assert store.get_request("req_ghost") is None
    assert kinds(store) == [EventKind.REQUEST_APPROVED]


def test_find_requests_filters_orders_and_limits(store):
    a = access_request(principal=ALICE, group_id="g-1", created_at=T0 + MIN)
    b = access_request(principal=BOB, group_id="g-1", state=RequestState.APPROVED)
    c = access_request(principal=ALICE, group_id="g-2", created_at=T0 - MIN)
    d = access_request(principal=BOB, group_id="g-2", state=RequestState.DENIED)
    for item in (a, b, c, d):
        store.add_request(item)
    assert ids(store.find_requests()) == ids([c, b, d, a])
    assert ids(store.find_requests(states=[RequestState.PENDING])) == ids([c, a])
    assert ids(store.find_requests(principal_id=BOB.id)) == ids([b, d])
    assert ids(store.find_requests(group_id="g-2")) == ids([c, d])
    assert ids(store.find_requests(principal_id=ALICE.id, group_id="g-1")) == ids([a])
    assert ids(
        store.find_requests(states={RequestState.APPROVED, RequestState.DENIED}, group_id="g-1")
    ) == ids([b])
    assert store.find_requests(states=[]) == []
    assert ids(store.find_requests(limit=2)) == ids([c, b])
    assert store.find_requests(limit=0) == []


# -- wake-ups -------------------------------------------------------------------------------


def test_wait_times_out_without_changes(store):
    drain(store)
    start = time.monotonic()
    assert store.wait_for_change(0.05) is False
    assert time.monotonic() - start < PROMPT
    assert store.wait_for_change(0) is False
    assert store.wait_for_change(-1) is False


def test_wait_wakes_on_a_write_from_another_thread(store):
    drain(store)
    result = []
    waiting = threading.Event()

    def waiter():
        waiting.set()
        result.append(store.wait_for_change(30))

    thread = threading.Thread(target=waiter)
    start = time.monotonic()
    thread.start()
    waiting.wait(PROMPT)
    store.add_lease(lease())
    thread.join(PROMPT)
    assert result == [True]
    assert time.monotonic() - start < PROMPT


def test_wait_counts_a_write_made_before_it_started(store):
    # The tracker reads next_due, then waits: a grant in between must not be missed.
    drain(store)
    thread = threading.Thread(target=store.add_lease, args=(lease(),))
    thread.start()
    thread.join(PROMPT)
    start = time.monotonic()
    assert store.wait_for_change(30) is True
    assert time.monotonic() - start < PROMPT
    assert store.wait_for_change(0.05) is False


def test_each_kind_of_write_wakes_a_waiter(store):
    item = lease()
    store.add_lease(item)
    store.add_request(req := access_request())
    store.add_event(event())
    writes = [
        lambda: store.update_lease(
            attrs.evolve(item, state=LeaseState.REVOKING), expect=[LeaseState.ACTIVE]
        ),
        lambda: store.claim_pairs([P1], owner="a", now=T0, until=T0 + MIN),
        lambda: store.release_pairs([P1], owner="a"),
        lambda: store.add_event(event()),
        lambda: store.mark_delivered([store.pending_events()[0].seq]),
        lambda: store.update_request(
            attrs.evolve(req, state=RequestState.CANCELLED), expect=[RequestState.PENDING]
        ),
    ]
    for write in writes:
        drain(store)
        write()
        assert store.wait_for_change(PROMPT) is True


def test_writes_that_change_nothing_do_not_wake(store):
    drain(store)
    store.release_pairs([P1], owner="nobody")
    store.mark_delivered([])
    store.mark_delivered([12345])
    store.claim_pairs([], owner="a", now=T0, until=T0)
    with pytest.raises(StaleStateError):
        store.update_lease(lease(), expect=[LeaseState.ACTIVE])
    assert store.wait_for_change(0.05) is False


def test_close_wakes_a_waiter(store):
    drain(store)
    result = []
    started = threading.Event()

    def waiter():
        started.set()
        try:
            result.append(store.wait_for_change(30))
        except LeaseError:  # closed before the wait began: as good
            result.append(False)

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait(PROMPT)
    time.sleep(0.02)
    start = time.monotonic()
    store.close()
    thread.join(PROMPT)
    assert result == [False]
    assert time.monotonic() - start < PROMPT


# -- concurrency and the async adapter ------------------------------------------------------


def test_threads_writing_at_once_lose_nothing(store):
    def writer(n):
        for k in range(50):
            store.add_lease(lease(id=f"lease_{n}_{k}"), event(lease_id=f"lease_{n}_{k}"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROMPT * 4)
    assert len(store.find_leases()) == 200
    assert len(store.pending_events(limit=1000)) == 200


def test_threaded_adapter_runs_the_store_off_the_event_loop(store):
    item = lease()

    async def main():
        async_store = threaded(store)
        await async_store.add_lease(item, event(lease_id=item.id))
        assert await async_store.get_lease(item.id) == item
        assert ids(await async_store.due_leases(T0 + HOUR, stuck_before=T0)) == [item.id]
        assert [p.event.lease_id for p in await async_store.pending_events()] == [item.id]

    asyncio.run(main())


# -- Hypothesis: anything a lease can hold comes back equal ---------------------------------

utc_times = st.datetimes(
    min_value=dt.datetime(1, 1, 2),  # noqa: DTZ001 - bounds of a naive strategy
    max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
)
texts = st.text(max_size=40)
maybe_texts = st.none() | texts
principals = st.builds(PrincipalRef, st.sampled_from(PrincipalKind), texts)
counts = st.integers(min_value=0, max_value=2**62)

leases = st.builds(
    Lease,
    id=texts,
    principal=principals,
    group_id=texts,
    state=st.sampled_from(LeaseState),
    granted_at=utc_times,
    expires_at=utc_times,
    requester=texts,
    reason=texts,
    approver=maybe_texts,
    standing=st.booleans(),
    extensions=counts,
    attempts=counts,
    retry_at=st.none() | utc_times,
    last_error=maybe_texts,
    updated_at=utc_times,
    ended_at=st.none() | utc_times,
    request_id=maybe_texts,
    group_name=maybe_texts,
    principal_name=maybe_texts,
)
requests_ = st.builds(
    AccessRequest,
    id=texts,
    principal=principals,
    group_id=texts,
    ttl_seconds=st.floats(allow_nan=False, allow_infinity=False),
    reason=texts,
    requester=texts,
    state=st.sampled_from(RequestState),
    created_at=utc_times,
    expires_at=utc_times,
    updated_at=utc_times,
    approvers=st.lists(texts, max_size=4).map(tuple),
    approver_source=maybe_texts,
    decided_by=maybe_texts,
    decision_reason=maybe_texts,
    lease_id=maybe_texts,
    access_details=maybe_texts,
    group_name=maybe_texts,
    principal_name=maybe_texts,
)
events = st.builds(
    AuditEvent,
    kind=st.sampled_from(EventKind),
    at=utc_times,
    lease_id=maybe_texts,
    request_id=maybe_texts,
    principal=st.none() | principals,
    group_id=maybe_texts,
    requester=maybe_texts,
    reason=maybe_texts,
    approver=maybe_texts,
    expires_at=st.none() | utc_times,
    detail=st.dictionaries(texts, texts, max_size=3),
)

# One store serves every example (a fresh id per example keeps them apart); the number
# of examples comes from the profile in conftest.py.
store_examples = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@store_examples
@given(item=leases, ev=events)
def test_any_lease_round_trips(store, item, ev):
    item = attrs.evolve(item, id=f"{next(_ids)}:{item.id}")
    store.add_lease(item, ev)
    assert store.get_lease(item.id) == item
    found = store.find_leases(principal_id=item.principal.id, group_id=item.group_id)
    assert item in found
    pending = store.pending_events(limit=1)
    assert [p.event for p in pending] == [ev]
    store.mark_delivered([pending[0].seq])
    due = item.due_at()
    if due is not None and item.state in {LeaseState.ACTIVE, LeaseState.REVOKE_FAILED}:
        assert item in store.due_leases(due, stuck_before=due, limit=10_000)


@store_examples
@given(item=requests_)
def test_any_request_round_trips(store, item):
    item = attrs.evolve(item, id=f"{next(_ids)}:{item.id}")
    store.add_request(item)
    assert store.get_request(item.id) == item


def test_event_details_keep_their_types_and_old_text_flags_read_typed():
    written = AuditEvent(
        kind=EventKind.ENDED,
        at=T0,
        detail={"standing": True, "attempts": 2, "membership": "kept: standing membership"},
    )
    assert AuditEvent.from_json(json.loads(json.dumps(written.to_json()))) == written
    # What earlier versions stored: every value as text.
    old = {
        "kind": "granted",
        "at": T0.isoformat(),
        "detail": {"standing": "true", "recovered": "false", "attempts": "3", "note": "7"},
    }
    assert AuditEvent.from_json(old).detail == {
        "standing": True,
        "recovered": False,
        "attempts": 3,
        "note": "7",
    }
