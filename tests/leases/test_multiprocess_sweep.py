"""Two processes sweep one SQLite store with 1,000 due leases: each due pair is removed
exactly once (at most twice, idempotently, after a crash), and never by two PATCHes in
flight at the same time."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import databricks_access as da
from databricks_access import Lease, LeaseState, SqliteLeaseStore
from databricks_access.testing import FakeAccount
from helpers.internals import CRASH_ENV, CRASH_EXIT_CODE

CHILD = Path(__file__).parents[1] / "helpers" / "tracker_child.py"
START = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)
MEMBER = re.compile(r'members\[value eq "(\d+)"\]')

pytestmark = pytest.mark.slow


def seed(tmp_path, leases=1000, groups=20):
    fake = FakeAccount(log_size=None)
    sp = fake.add_service_principal("connector")
    group_ids = [fake.add_group(f"team-{g}") for g in range(groups)]
    db = str(tmp_path / "leases.db")
    pairs = []
    with SqliteLeaseStore(db) as store:
        for i in range(leases):
            user = fake.add_user(f"user{i}@example.com")
            group = group_ids[i % groups]
            fake.add_member(group, user)
            pairs.append((user, group))
            store.add_lease(
                Lease(
                    id=f"lease_{i:05d}",
                    principal=da.PrincipalRef("user", user),
                    group_id=group,
                    state=LeaseState.ACTIVE,
                    granted_at=START,
                    expires_at=START + HOUR,
                    requester="seed",
                    reason="seed",
                    updated_at=START,
                )
            )
    return fake, sp, db, group_ids, pairs


def spawn(url, fake, sp, db, now, owner, crash=None):
    spec = {
        "url": url,
        "account_id": fake.account_id,
        "client_id": sp.client_id,
        "client_secret": sp.client_secret,
        "db": db,
        "now": now.isoformat(),
        "owner": owner,
        "action": "sweep",
        "batch": 50,
    }
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def removals(fake):
    """Per pair, the (start, end) of every PATCH that removed it."""
    seen = defaultdict(list)
    for record in fake.log:
        if record.method != "PATCH" or record.status >= 300:
            continue
        group = record.path.rstrip("/").rsplit("/", 1)[-1]
        for op in json.loads(record.body)["Operations"]:
            if op["op"].lower() == "remove":
                (user,) = MEMBER.findall(op["path"])
                seen[(user, group)].append((record.perf_started, record.perf_finished))
    return seen


def assert_never_concurrent(intervals):
    ordered = sorted(intervals)
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert end <= start, "two PATCHes for one pair were in flight at once"


def finish(proc):
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_two_processes_remove_every_due_pair_exactly_once(tmp_path):
    fake, sp, db, groups, pairs = seed(tmp_path)
    due = START + HOUR + dt.timedelta(seconds=1)
    with fake.serve() as url:
        procs = [spawn(url, fake, sp, db, due, owner) for owner in ("one", "two")]
        for proc in procs:
            code, err = finish(proc)
            assert code == 0, err
    seen = removals(fake)
    assert set(seen) == set(pairs)
    assert all(len(v) == 1 for v in seen.values())
    for group in groups:
        assert fake.group_members(group) == set()
    with SqliteLeaseStore(db) as store:
        states = {lease.state for lease in store.find_leases()}
        assert states == {LeaseState.REVOKED}
        kinds = [e.event.kind.value for e in store.pending_events(limit=5000)]
    assert kinds.count("expired") == 1000
    assert kinds.count("revoked") == 1000


def test_a_crashed_sweeper_is_finished_by_another_after_its_claims_expire(tmp_path):
    fake, sp, db, groups, pairs = seed(tmp_path)
    due = START + HOUR + dt.timedelta(seconds=1)
    with fake.serve() as url:
        victim = spawn(url, fake, sp, db, due, "victim", crash="after_revoke_patch:3")
        survivor = spawn(url, fake, sp, db, due, "survivor")
        code, err = finish(victim)
        assert code == CRASH_EXIT_CODE, err
        code, err = finish(survivor)
        assert code == 0, err
        # The victim's claims expire by the injected clock; a restart finishes its work.
        restart = spawn(url, fake, sp, db, due + dt.timedelta(minutes=3), "restart")
        code, err = finish(restart)
        assert code == 0, err
    seen = removals(fake)
    assert set(seen) == set(pairs)
    assert all(1 <= len(v) <= 2 for v in seen.values())
    assert any(len(v) == 2 for v in seen.values())  # the crashed batch was sent again
    for intervals in seen.values():
        assert_never_concurrent(intervals)
    for group in groups:
        assert fake.group_members(group) == set()
    with SqliteLeaseStore(db) as store:
        assert {lease.state for lease in store.find_leases()} == {LeaseState.REVOKED}
        kinds = [e.event.kind.value for e in store.pending_events(limit=5000)]
    assert kinds.count("expired") == 1000
    assert kinds.count("revoked") == 1000
