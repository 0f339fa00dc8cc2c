"""What only `SqliteLeaseStore` promises: the file, its schema, its failures, its processes.

The protocol itself is tested for every store in `test_store_contract.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import attrs
import pytest

from databricks_access import (
    AccessRequest,
    AuditEvent,
    ConfigError,
    EventKind,
    Lease,
    LeaseError,
    LeaseState,
    Pair,
    PrincipalKind,
    PrincipalRef,
    RequestState,
    SqliteLeaseStore,
)
from databricks_access._stores.sqlite.schema import SCHEMA_VERSION
from databricks_access._stores.sqlite.sql import (
    _DUE_LEASES,
    _INSERT_LEASE,
    _NEXT_DUE,
    _lease_values,
)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
HOUR_US = 3_600_000_000
ALICE = PrincipalRef(PrincipalKind.USER, "u-alice")
DATA = pathlib.Path(__file__).parents[1] / "data"
ROOT = pathlib.Path(__file__).parents[2]


def lease(lease_id: str, **changes) -> Lease:
    values = {
        "id": lease_id,
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


def granted(lease_id: str, **detail: str) -> AuditEvent:
    return AuditEvent(kind=EventKind.GRANTED, at=T0, lease_id=lease_id, detail=detail)


@contextlib.contextmanager
def raw(path):
    """A plain sqlite3 connection to the file (any thread may use it), closed afterwards."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        yield conn
    finally:
        conn.close()


def pragma(path, name):
    with raw(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def schema(path) -> list[tuple[str, str, str]]:
    """Tables and indexes, their SQL with whitespace collapsed."""
    with raw(path) as conn:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    # Spacing is not schema: ALTER TABLE ... ADD COLUMN writes its own around the comma.
    return [
        (kind, name, re.sub(r"\s*([,()])\s*", r"\1 ", re.sub(r"\s+", " ", sql or "")))
        for kind, name, sql in rows
    ]


@pytest.fixture
def path(tmp_path):
    return tmp_path / "leases.db"


@pytest.fixture
def store(path):
    with SqliteLeaseStore(path) as opened:
        yield opened


# -- the file -------------------------------------------------------------------------------


def test_the_file_is_in_wal_mode_and_syncs_every_commit(store, path):
    assert pragma(path, "journal_mode") == "wal"
    conn = store._connection()
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_normal_sync_and_timeout_are_configurable(path):
    with SqliteLeaseStore(path, synchronous="NORMAL", timeout=1.5) as store:
        conn = store._connection()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1_500


@pytest.mark.parametrize("bad", [":memory:", "", "file::memory:?cache=shared", "file:x.db"])
def test_a_path_that_is_not_a_file_is_refused(bad):
    with pytest.raises(ConfigError, match="MemoryLeaseStore") as info:
        SqliteLeaseStore(bad)
    assert info.value.fields == ("path",)


def test_bad_arguments_are_refused(path):
    with pytest.raises(ConfigError, match="timeout"):
        SqliteLeaseStore(path, timeout=-1)
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteLeaseStore(path, synchronous="OFF")  # type: ignore[arg-type]
    assert not path.exists()


def test_repr_and_path_show_the_file(store, path):
    assert store.path == str(path.absolute())
    assert repr(store) == f"SqliteLeaseStore({str(path.absolute())!r})"
    assert not store.closed


def test_a_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SqliteLeaseStore("rel.db") as store:
        assert store.path == str(tmp_path / "rel.db")


def test_leases_and_events_survive_reopening(path):
    with SqliteLeaseStore(path) as store:
        store.add_lease(lease("lease_1"), granted("lease_1"))
        store.claim_pairs([Pair("u", "g")], owner="a", now=T0, until=T0 + HOUR)
    with SqliteLeaseStore(path) as store:
        assert store.get_lease("lease_1") == lease("lease_1")
        assert [p.event for p in store.pending_events()] == [granted("lease_1")]
        assert store.claim_pairs([Pair("u", "g")], owner="b", now=T0, until=T0 + HOUR) == []


def test_two_stores_on_one_file_share_it(path):
    with SqliteLeaseStore(path) as one, SqliteLeaseStore(path) as two:
        one.wait_for_change(0)
        two.add_lease(lease("lease_1"))
        assert one.get_lease("lease_1") == lease("lease_1")
        assert one.wait_for_change(5) is True


# -- schema and migrations ------------------------------------------------------------------


def test_a_new_file_gets_the_current_schema(store, path):
    assert SCHEMA_VERSION == 2
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "application_id") == 0x44414C53
    names = {name for _, name, _ in schema(path)}
    assert {"leases", "claims", "events", "requests"} <= names
    assert {"leases_due", "leases_pair", "leases_group", "events_pending"} <= names
    assert {"requests_state", "requests_pair"} <= names


def plan(store, sql, params=()):
    rows = store._connection().execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(row[-1] for row in rows)


def test_due_queries_read_the_due_index_not_the_table(store):
    params = {"now": 0, "stuck": 0, "shift": 0, "limit": 1000}
    due = plan(store, _DUE_LEASES, params)
    assert due.count("USING INDEX leases_due") == 4
    assert "SCAN leases" not in due
    nxt = plan(store, _NEXT_DUE)
    assert nxt.count("INDEX leases_due") == 4
    assert "SCAN leases" not in nxt
    pending = plan(store, "SELECT seq FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT 5")
    assert "events_pending" in pending


def copy_v0(tmp_path) -> pathlib.Path:
    target = tmp_path / "old.db"
    shutil.copyfile(DATA / "leases-v0.db", target)
    return target


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_a_version_0_file_is_migrated_with_its_leases_intact(tmp_path):
    old = copy_v0(tmp_path)
    assert pragma(old, "user_version") == 0
    with SqliteLeaseStore(old) as store:
        assert pragma(old, "user_version") == SCHEMA_VERSION
        assert pragma(old, "journal_mode") == "wal"
        # Every lease, every field, in the order they were granted.
        leases = store.find_leases()
        assert [item.id for item in leases] == [
            "lease_revoked",
            "lease_revoke_failed",
            "lease_granting",
            "lease_active_due",
            "lease_active_later",
        ]
        due = store.get_lease("lease_active_due")
        assert due == Lease(
            id="lease_active_due",
            principal=PrincipalRef(PrincipalKind.USER, "u-1"),
            group_id="g-1",
            state=LeaseState.ACTIVE,
            granted_at=at("2026-01-01T09:00:00.000001+00:00"),
            expires_at=at("2026-01-01T10:00:00.123456+00:00"),
            requester="alice",
            reason="INC-1",
            updated_at=at("2026-01-01T09:00:00.000001+00:00"),
            group_name="readers",
            principal_name="alice@example.com",
        )
        failed = store.get_lease("lease_revoke_failed")
        assert failed.attempts == 5
        assert failed.retry_at == at("2026-01-01T09:45:00+00:00")
        assert failed.last_error == "HTTP 503"
        assert store.get_lease("lease_revoked").ended_at == at("2026-01-01T02:00:01+00:00")
        # Due-indexed: the due queries answer from the new index.
        now = at("2026-01-01T10:00:00.123456+00:00")
        found = store.due_leases(now, stuck_before=now - 2 * MIN)
        assert [item.id for item in found] == ["lease_granting", "lease_revoke_failed", due.id]
        assert store.next_due(stuck_after=2 * MIN) == at("2026-01-01T08:02:00+00:00")
        assert "USING INDEX leases_due" in plan(
            store, _DUE_LEASES, {"now": 0, "stuck": 0, "shift": 0, "limit": 9}
        )
        # The outbox keeps what was not delivered; the claim is still held.
        assert [p.event.kind for p in store.pending_events()] == [EventKind.GRANTED]
        pair = Pair("u-1", "g-1")
        assert (
            store.claim_pairs([pair], owner="b", now=at("2026-01-01T09:01:00+00:00"), until=now)
            == []
        )
        assert store.claim_pairs(
            [pair], owner="b", now=at("2026-01-01T09:02:00+00:00"), until=now
        ) == [pair]
        # And the tables that version 0 did not have work.
        request = AccessRequest(
            id="req_1",
            principal=ALICE,
            group_id="g-1",
            ttl_seconds=60.0,
            reason="r",
            requester="alice",
            state=RequestState.PENDING,
            created_at=T0,
            expires_at=T0 + HOUR,
            updated_at=T0,
        )
        store.add_request(request)
        assert store.get_request("req_1") == request
        store.add_lease(lease("lease_new", granted_at=at("2026-01-02T00:00:00+00:00")))
        assert store.find_leases()[-1].id == "lease_new"
    # The migrated file has exactly the schema of a new one.
    with SqliteLeaseStore(tmp_path / "fresh.db"):
        pass
    assert schema(old) == schema(tmp_path / "fresh.db")
    # The checked-in file is left alone.
    assert pragma(DATA / "leases-v0.db", "user_version") == 0


def test_a_version_1_file_gets_lease_versions(tmp_path):
    path = tmp_path / "v1.db"
    shutil.copyfile(DATA / "leases-v1.db", path)
    assert pragma(path, "user_version") == 1
    with SqliteLeaseStore(path) as store:
        for stored in store.find_leases():
            assert stored.version == 0
        store.add_lease(item := lease("lease_after_upgrade"))
        store.update_lease(attrs.evolve(item, state=LeaseState.REVOKING), expect=[item.state])
        assert store.get_lease(item.id).version == 1
    assert pragma(path, "user_version") == SCHEMA_VERSION == 2


def test_a_version_1_file_is_migrated_with_its_requests_intact(tmp_path):
    old = tmp_path / "v1.db"
    shutil.copyfile(DATA / "leases-v1.db", old)
    assert pragma(old, "user_version") == 1
    with SqliteLeaseStore(old) as store:
        assert pragma(old, "user_version") == SCHEMA_VERSION
        pending, approved, granted = store.find_requests()
        assert [r.id for r in (pending, approved, granted)] == [
            "req_pending",
            "req_approved",
            "req_granted",
        ]
        assert approved == AccessRequest(
            id="req_approved",
            principal=PrincipalRef(PrincipalKind.USER, "u-1"),
            group_id="g-1",
            ttl_seconds=3600.0,
            reason="INC-7",
            requester="helpdesk@example.com",
            state=RequestState.APPROVED,
            created_at=at("2026-01-01T09:00:00+00:00"),
            expires_at=at("2026-01-02T09:00:00+00:00"),
            updated_at=at("2026-01-01T09:05:00.000001+00:00"),
            approvers=("user:ann@example.com",),
            approver_source="integration_owner",
            decided_by="ann@example.com",
            access_details="Access is logged.",
            group_name="readers",
            principal_name="alice@example.com",
        )
        # The requests of the previous release have made no attempt yet.
        assert {(r.attempts, r.retry_at, r.last_error) for r in (pending, granted)} == {
            (0, None, None)
        }
        assert granted.lease_id == "lease_1"
        assert store.get_lease("lease_1").request_id == "req_granted"
        # The new columns take writes.
        retrying = attrs.evolve(
            approved, attempts=1, retry_at=at("2026-01-01T09:06:00+00:00"), last_error="HTTP 429"
        )
        store.update_request(retrying, expect=(RequestState.APPROVED,))
        assert store.get_request("req_approved") == retrying
    with SqliteLeaseStore(tmp_path / "fresh.db"):
        pass
    assert schema(old) == schema(tmp_path / "fresh.db")
    assert pragma(DATA / "leases-v1.db", "user_version") == 1


def test_a_migrated_file_opens_again_without_migrating(tmp_path):
    old = copy_v0(tmp_path)
    with SqliteLeaseStore(old):
        pass
    before = schema(old)
    with SqliteLeaseStore(old) as store:
        assert len(store.find_leases()) == 5
    assert schema(old) == before


def test_a_read_only_store_does_not_migrate(tmp_path):
    old = copy_v0(tmp_path)
    with pytest.raises(LeaseError, match=r"version 0 .*upgrade.*read-only"):
        SqliteLeaseStore(old, read_only=True)
    assert pragma(old, "user_version") == 0


def test_a_file_from_a_newer_version_is_refused(path):
    with SqliteLeaseStore(path) as store:
        store.add_lease(lease("lease_1"))
    with raw(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(
        LeaseError, match=rf"newer databricks_access \(schema version {SCHEMA_VERSION + 1}"
    ):
        SqliteLeaseStore(path)
    with pytest.raises(LeaseError, match="newer"):
        SqliteLeaseStore(path, read_only=True)
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1


def test_a_foreign_sqlite_file_is_refused(path):
    with raw(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(LeaseError, match="another application"):
        SqliteLeaseStore(path)
    with raw(path) as conn:
        conn.execute("PRAGMA application_id = 1234")
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(LeaseError, match="another application"):
        SqliteLeaseStore(path)


def test_a_corrupt_file_is_a_lease_error(path):
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    with pytest.raises(LeaseError, match=r"leases\.db is corrupt or not a SQLite database"):
        SqliteLeaseStore(path)


def test_a_missing_directory_is_a_lease_error(tmp_path):
    with pytest.raises(LeaseError, match="cannot be opened"):
        SqliteLeaseStore(tmp_path / "nowhere" / "leases.db")


def test_read_only_on_a_missing_file_is_a_lease_error(path):
    with pytest.raises(LeaseError, match="cannot be opened"):
        SqliteLeaseStore(path, read_only=True)
    assert not path.exists()


# -- failures leave nothing half-written ----------------------------------------------------


def counts(path) -> tuple[int, int]:
    with raw(path) as conn:
        leases = conn.execute("SELECT count(*) FROM leases").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return leases, events


def test_a_read_only_store_reads_and_refuses_every_write(path):
    with SqliteLeaseStore(path) as store:
        store.add_lease(lease("lease_1"), granted("lease_1"))
    with SqliteLeaseStore(path, read_only=True) as store:
        assert repr(store).endswith("read_only=True)")
        assert store.get_lease("lease_1") == lease("lease_1")
        assert len(store.pending_events()) == 1
        writes = [
            lambda: store.add_lease(lease("lease_2"), granted("lease_2")),
            lambda: store.update_lease(
                lease("lease_1", state=LeaseState.REVOKING), expect=[LeaseState.ACTIVE]
            ),
            lambda: store.claim_pairs([Pair("u", "g")], owner="a", now=T0, until=T0 + MIN),
            lambda: store.add_event(granted("x")),
            lambda: store.mark_delivered([1]),
        ]
        for write in writes:
            with pytest.raises(LeaseError, match=r"leases\.db is read-only: cannot"):
                write()
        assert store.wait_for_change(0.01) is False
    assert counts(path) == (1, 1)


def test_query_only_fails_the_whole_transaction(store, path):
    store.add_lease(lease("lease_1"))
    store._connection().execute("PRAGMA query_only = ON")
    with pytest.raises(LeaseError, match="is read-only: cannot add lease 'lease_2'"):
        store.add_lease(lease("lease_2"), granted("lease_2"))
    with pytest.raises(LeaseError, match="read-only"):
        store.update_lease(
            lease("lease_1", state=LeaseState.REVOKED),
            expect=[LeaseState.ACTIVE],
            event=granted("lease_1"),
        )
    assert store.get_lease("lease_2") is None
    assert store.get_lease("lease_1") == lease("lease_1")
    assert store.pending_events() == []
    assert counts(path) == (1, 0)


def test_a_full_disk_fails_cleanly_lease_and_event_together(store, path):
    store.add_lease(lease("lease_1"), granted("lease_1"))
    conn = store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    # The lease fits; its event (100 kB of detail) does not: neither may remain.
    with pytest.raises(LeaseError, match=r"leases\.db is full") as info:
        store.add_lease(lease("lease_2"), granted("lease_2", note="x" * 100_000))
    assert not isinstance(info.value, sqlite3.Error)
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert store.get_lease("lease_2") is None
    assert [p.event.lease_id for p in store.pending_events()] == ["lease_1"]
    # The store stays usable for what still fits.
    conn.execute("PRAGMA max_page_count = 1000000")
    store.add_lease(lease("lease_2"), granted("lease_2"))
    assert counts(path) == (2, 2)


def test_a_writer_holding_the_lock_past_the_timeout_is_a_lease_error(path):
    with SqliteLeaseStore(path, timeout=0.2) as store, raw(path) as other:
        other.execute("BEGIN IMMEDIATE")
        start = time.monotonic()
        with pytest.raises(LeaseError, match=r"locked by another writer for more than 0\.2 s"):
            store.add_lease(lease("lease_1"), granted("lease_1"))
        assert time.monotonic() - start < 5
        other.execute("ROLLBACK")
        assert store.get_lease("lease_1") is None
        store.add_lease(lease("lease_1"))


def test_a_write_queued_behind_this_process_writers_keeps_the_timeout(path):
    """Threads of one store queue for the write lock in the process; that wait counts
    toward `timeout` as SQLite's own does, and another thread's commit hands it on."""
    with SqliteLeaseStore(path, timeout=0.2) as store:
        held, done = threading.Event(), threading.Event()

        def long_writer():
            with store._write_lock:  # as a long transaction of another thread would
                held.set()
                done.wait(5)

        other = threading.Thread(target=long_writer)
        other.start()
        try:
            held.wait(5)
            start = time.monotonic()
            with pytest.raises(LeaseError, match=r"locked by another writer for more than 0\.2 s"):
                store.add_lease(lease("lease_1"), granted("lease_1"))
            assert time.monotonic() - start < 5
        finally:
            done.set()
            other.join(5)
        store.add_lease(lease("lease_1"), granted("lease_1"))
        assert [p.event.lease_id for p in store.pending_events()] == ["lease_1"]


def test_a_writer_waits_for_a_lock_released_within_the_timeout(path):
    with SqliteLeaseStore(path, timeout=10) as store, raw(path) as other:
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            'INSERT INTO events (payload) VALUES (\'{"kind":"drift","at":"2026-01-01T00:00:00+00:00"}\')'
        )
        timer = threading.Timer(0.2, lambda: other.execute("COMMIT"))
        timer.start()
        try:
            store.add_lease(lease("lease_1"), granted("lease_1"))
        finally:
            timer.join()
        assert [p.event.kind for p in store.pending_events()] == [
            EventKind.DRIFT,
            EventKind.GRANTED,
        ]


# -- threads and processes ------------------------------------------------------------------


def test_eight_threads_writing_at_once_lose_nothing(store):
    def writer(n):
        for k in range(200):
            lease_id = f"lease_{n}_{k}"
            store.add_lease(lease(lease_id, group_id=f"g-{n}"), granted(lease_id))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(store.find_leases()) == 1600
    assert len(store.find_leases(group_id="g-3")) == 200
    assert len(store.pending_events(limit=2000)) == 1600


def test_a_store_is_not_used_across_fork(store):
    store._pid = -1  # as if this were a child process forked after the store was opened
    try:
        with pytest.raises(LeaseError, match="fork"):
            store.get_lease("x")
        with pytest.raises(LeaseError, match="fork"):
            store.wait_for_change(0)
    finally:
        store._pid = os.getpid()


def test_connections_of_finished_threads_are_closed(store):
    def touch():
        store.get_lease("x")

    for _ in range(5):
        thread = threading.Thread(target=touch)
        thread.start()
        thread.join()
    store.get_lease("x")
    # This thread's connection, and at most the last finished thread's.
    assert len(store._connections) <= 2


CLAIMER = textwrap.dedent(
    """
    import datetime as dt, json, os, sys, time
    from databricks_access import Pair, SqliteLeaseStore

    path, owner, locks, go = sys.argv[1:]
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    pairs = [Pair(f"u-{n}", "g") for n in range(30)]
    wanted = pairs[:20] if owner == "a" else pairs[10:]
    stats = {"claimed": 0, "skipped": 0, "violations": 0, "rounds": 0}
    with SqliteLeaseStore(path, timeout=10) as store:
        while not os.path.exists(go):
            time.sleep(0.005)
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            got = store.claim_pairs(wanted, owner=owner, now=t0, until=t0 + dt.timedelta(hours=1))
            held = []
            for pair in got:
                lock = os.path.join(locks, pair.principal_id)
                try:
                    os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    held.append(lock)
                except FileExistsError:
                    stats["violations"] += 1
            time.sleep(0.002)
            for lock in held:
                os.unlink(lock)
            store.release_pairs(got, owner=owner)
            stats["claimed"] += len(got)
            stats["skipped"] += len(wanted) - len(got)
            stats["rounds"] += 1
    print(json.dumps(stats))
    """
)


def test_two_processes_never_hold_one_pair_at_once(path, tmp_path):
    SqliteLeaseStore(path).close()
    locks = tmp_path / "locks"
    locks.mkdir()
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(path), owner, str(locks), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for owner in ("a", "b")
    ]
    time.sleep(0.05)
    go.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    a, b = results
    assert a["violations"] == b["violations"] == 0
    assert a["claimed"] > 0
    assert b["claimed"] > 0
    # The overlapping pairs were contended: someone was turned away at least once.
    assert a["skipped"] + b["skipped"] > 0
    # Every claim was released.
    with raw(path) as conn:
        assert conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


OPENER = textwrap.dedent(
    """
    import os, sys, time
    from databricks_access import SqliteLeaseStore

    path, go = sys.argv[1:]
    while not os.path.exists(go):
        time.sleep(0.001)
    with SqliteLeaseStore(path) as store:
        print(len(store.find_leases()))
    """
)


def test_processes_creating_one_file_at_once_all_succeed(path, tmp_path):
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    time.sleep(0.3)
    go.touch()
    for child in children:
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        assert out.strip() == "0"
    assert pragma(path, "user_version") == SCHEMA_VERSION


WRITER = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from databricks_access import (
        AuditEvent,
        EventKind,
        Lease,
        LeaseState,
        PrincipalKind,
        PrincipalRef,
        SqliteLeaseStore,
    )

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with SqliteLeaseStore(sys.argv[1]) as store:
        time.sleep(0.2)
        store.add_lease(
            Lease(
                id="lease_from_afar", principal=PrincipalRef(PrincipalKind.USER, "u"),
                group_id="g", state=LeaseState.ACTIVE, granted_at=t0,
                expires_at=t0 + dt.timedelta(hours=1), requester="r", reason="x", updated_at=t0,
            ),
            AuditEvent(kind=EventKind.GRANTED, at=t0, lease_id="lease_from_afar"),
        )
    """
)


def test_wait_wakes_on_a_write_from_another_process(store, path):
    store.wait_for_change(0)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        start = time.monotonic()
        assert store.wait_for_change(20) is True
        assert time.monotonic() - start < 20
    finally:
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert store.get_lease("lease_from_afar") is not None
    assert [p.event.lease_id for p in store.pending_events()] == ["lease_from_afar"]


# -- size: index-driven queries over 100,000 leases -----------------------------------------


def test_due_queries_stay_fast_with_100k_leases(store):
    now = T0 + 10 * HOUR
    second = 1_000_000  # microseconds
    template = _lease_values(lease("template"))
    state, expires, ended = 3, 5, 15  # column positions after the id
    due = len(template) - 1  # `due_at` comes last
    now_us = (now - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)
    rows = []
    for n in range(100_000):
        row = [f"lease_{n}", *template]
        # Every tenth lease is due; the rest expire later or are long revoked.
        if n % 10 == 0:
            row[1 + expires] = row[1 + due] = now_us - n * second
        elif n % 10 == 1:
            row[1 + state], row[1 + due], row[1 + ended] = "revoked", None, now_us - HOUR_US
        else:
            row[1 + expires] = row[1 + due] = now_us + HOUR_US + n * second
        rows.append(row)
    conn = store._connection()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_INSERT_LEASE, rows)
    conn.execute("COMMIT")

    start = time.perf_counter()
    due = store.due_leases(now, stuck_before=now - 2 * MIN, limit=1000)
    first_batch = time.perf_counter() - start
    assert len(due) == 1000
    assert due[0].id == "lease_99990"  # the earliest expiry comes first
    assert all(a.expires_at <= b.expires_at for a, b in itertools.pairwise(due))

    start = time.perf_counter()
    assert store.next_due(stuck_after=2 * MIN) == now - dt.timedelta(seconds=99_990)
    nxt = time.perf_counter() - start
    # Generous bounds (a slow CI machine); measured: a few ms and well under 1 ms.
    assert first_batch < 2.0
    assert nxt < 0.5
    pairs = [Pair(ALICE.id, f"g-{n}") for n in range(1000)]
    start = time.perf_counter()
    assert len(store.claim_pairs(pairs, owner="me", now=now, until=now + MIN)) == 1000
    assert time.perf_counter() - start < 2.0


def test_an_updated_lease_leaves_the_due_index(store):
    item = lease("lease_1", expires_at=T0)
    store.add_lease(item)
    with raw(store.path) as conn:
        assert conn.execute("SELECT due_at FROM leases").fetchone()[0] is not None
    store.update_lease(
        attrs.evolve(item, state=LeaseState.REVOKED, ended_at=T0), expect=[LeaseState.ACTIVE]
    )
    with raw(store.path) as conn:
        assert conn.execute("SELECT due_at FROM leases").fetchone()[0] is None


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_claims_commit_without_waiting_for_the_disk_and_leases_with_it(
    path, monkeypatch, synchronous
):
    # Claims need not survive a power cut: their holders, on the same machine as the file,
    # end with it. Leases and their events must (with the default FULL): the tracker acts
    # on them. A store opened NORMAL stays NORMAL throughout.
    seen: list[tuple[str, int]] = []
    original = SqliteLeaseStore._write

    def watched(self, conn, work, doing, deadline):
        seen.append((doing.split()[0], conn.execute("PRAGMA synchronous").fetchone()[0]))
        return original(self, conn, work, doing, deadline)

    monkeypatch.setattr(SqliteLeaseStore, "_write", watched)
    full, normal = 2, 1
    pair = Pair("u", "g")
    with SqliteLeaseStore(path, synchronous=synchronous) as store:
        store.add_lease(lease("l1"))
        store.claim_pairs([pair], owner="o", now=T0, until=T0 + MIN)
        store.renew_pairs([pair], owner="o", until=T0 + 2 * MIN)
        stored = store.get_lease("l1")
        assert stored is not None
        store.update_leases([(stored, LeaseState.ACTIVE, None)])
        store.release_pairs([pair], owner="o")
        store.add_lease(lease("l2"))
    expected = full if synchronous == "FULL" else normal
    assert [entry for entry in seen if entry[0] != "upgrade"] == [
        ("add", expected),
        ("claim", normal),
        ("renew", normal),
        ("update", expected),
        ("release", normal),
        ("add", expected),  # back to the store's setting after the claims
    ]
