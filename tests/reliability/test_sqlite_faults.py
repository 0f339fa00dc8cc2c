"""A lease store that cannot be written: read-only or full.

The tracker writes its intent before any PATCH, so when the store refuses the write the
work stops with a `LeaseError` that names the problem ("read-only", "is full") and the
emulator sees no PATCH for it: no membership is granted (or removed) without its lease
record. A store that fills up between a grant's intent and its activation leaves the
lease `GRANTING`, which the sweep finishes once the store can be written again.
"""

from __future__ import annotations

import datetime as dt

import pytest

import databricks_access as da
from databricks_access import AuditEvent, EventKind, LeaseState, SqliteLeaseStore

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def alice(fake):
    return da.PrincipalRef("user", fake.add_user("alice@example.com"))


@pytest.fixture
def ops(fake):
    return fake.add_group("ops")


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "leases.db"
    SqliteLeaseStore(path).close()  # a current, empty lease store
    return path


def tracker_on(client, store, clock):
    return da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)


def grant(tracker, principal, group):
    return tracker.grant(principal, group, ttl=HOUR, requester="alice", reason="INC-1")


def writes(fake) -> list[str]:
    return [r.method for r in fake.log if r.method in {"PATCH", "POST", "PUT", "DELETE"}]


def test_a_read_only_store_refuses_a_grant_before_any_request(fake, client, clock, db, alice, ops):
    with SqliteLeaseStore(db, read_only=True) as store:
        tracker = tracker_on(client, store, clock)
        fake.reset_log()
        with pytest.raises(da.LeaseError, match="read-only") as info:
            grant(tracker, alice, ops)
        assert str(db) in str(info.value)
        assert fake.log == ()  # refused at the claim: not even a read was sent
        assert store.find_leases() == []
    assert fake.group_members(ops) == set()


def test_a_read_only_store_reads_but_refuses_every_write(fake, client, clock, db, alice, ops):
    with SqliteLeaseStore(db) as store:
        lease = grant(tracker_on(client, store, clock), alice, ops)
    # read_only=True opens the file through SQLite's `mode=ro` URI.
    with SqliteLeaseStore(db, read_only=True) as store:
        tracker = tracker_on(client, store, clock)
        assert [x.id for x in tracker.leases()] == [lease.id]
        assert tracker.sweep().ended == 0  # nothing due: nothing to write
        clock.advance(HOUR)
        fake.reset_log()
        with pytest.raises(da.LeaseError, match="read-only"):
            tracker.sweep()
        with pytest.raises(da.LeaseError, match="read-only"):
            tracker.revoke(lease.id)
        assert writes(fake) == []
        assert fake.group_members(ops) == {alice.id}
    with SqliteLeaseStore(db) as store:
        assert store.get_lease(lease.id).state is LeaseState.ACTIVE
        assert tracker_on(client, store, clock).sweep().revoked == (lease.id,)
    assert fake.group_members(ops) == set()


def test_query_only_stops_extend_grant_and_revocation_before_any_patch(
    fake, client, clock, db, alice, ops
):
    with SqliteLeaseStore(db) as store:
        tracker = tracker_on(client, store, clock)
        lease = grant(tracker, alice, ops)
        conn = store._connection()  # this thread's connection, the one the tracker uses
        conn.execute("PRAGMA query_only = ON")
        fake.reset_log()
        with pytest.raises(da.LeaseError, match="read-only"):
            tracker.extend(lease.id, by=HOUR)
        with pytest.raises(da.LeaseError, match="read-only"):
            grant(tracker, alice, fake.add_group("other"))
        assert fake.log == ()  # refused at the claim: nothing sent
        clock.advance(HOUR)
        with pytest.raises(da.LeaseError, match="read-only"):
            tracker.sweep()
        assert writes(fake) == []  # REVOKING could not be stored: no removal sent
        assert store.get_lease(lease.id).state is LeaseState.ACTIVE
        assert store.get_lease(lease.id).expires_at == lease.expires_at
        assert fake.group_members(ops) == {alice.id}
        conn.execute("PRAGMA query_only = OFF")
        assert tracker.sweep().revoked == (lease.id,)
    assert fake.group_members(ops) == set()


def _fill(store: SqliteLeaseStore) -> None:
    conn = store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_store_stops_grants_and_no_membership_lacks_its_lease(
    fake, client, clock, db, alice
):
    groups = [fake.add_group(f"g{i}") for i in range(200)]
    with SqliteLeaseStore(db) as store:
        tracker = tracker_on(client, store, clock)
        _fill(store)
        fake.reset_log()
        # Grants until the file is full: whichever write first needs a new page fails.
        with pytest.raises(da.LeaseError, match="is full") as info:
            for group in groups:
                grant(tracker, alice, group)
        assert "page limit" in str(info.value)
        stored = store.find_leases()
        patched = [r.path.rpartition("/")[2] for r in fake.log if r.method == "PATCH"]
        # Every PATCH has its lease, written before it: the refused write came either
        # before the PATCH (no PATCH) or after it (the lease stays GRANTING).
        assert patched == [lease.group_id for lease in stored if lease.group_id in patched]
        assert set(patched) <= {lease.group_id for lease in stored}
        states = [lease.state for lease in stored]
        assert set(states) <= {LeaseState.ACTIVE, LeaseState.GRANTING}
        assert states.count(LeaseState.GRANTING) <= 1
        for group in groups:
            assert (alice.id in fake.group_members(group)) == (group in patched)
        # Room again: a sweep after the claim expiry finishes what the full file stopped.
        store._connection().execute("PRAGMA max_page_count = 1000000")
        clock.advance(dt.timedelta(minutes=3))
        tracker.sweep()
        stored = store.find_leases()
        assert {lease.state for lease in stored} == {LeaseState.ACTIVE}
        for group in groups:
            held = any(lease.group_id == group for lease in stored)
            assert (alice.id in fake.group_members(group)) == held


def test_a_store_that_fills_up_after_the_grant_holds_the_removal_back(
    fake, client, clock, db, alice, ops
):
    with SqliteLeaseStore(db) as store:
        tracker = tracker_on(client, store, clock)
        lease = grant(tracker, alice, ops)
        clock.advance(HOUR)
        _fill(store)
        # Fill the outbox to the last byte with events like the one the sweep will write.
        like = AuditEvent(
            kind=EventKind.EXPIRED,
            at=clock.now(),
            lease_id=lease.id,
            principal=alice,
            group_id=ops,
            requester=lease.requester,
            reason=lease.reason,
            expires_at=lease.expires_at,
        )
        with pytest.raises(da.LeaseError, match="is full"):
            for _ in range(10_000):
                store.add_event(like)
        fake.reset_log()
        with pytest.raises(da.LeaseError, match="is full"):
            tracker.sweep()
        assert writes(fake) == []  # REVOKING could not be stored: no removal sent
        assert store.get_lease(lease.id).state is LeaseState.ACTIVE
        assert fake.group_members(ops) == {alice.id}
        store._connection().execute("PRAGMA max_page_count = 1000000")
        assert tracker.sweep().revoked == (lease.id,)
    assert fake.group_members(ops) == set()
