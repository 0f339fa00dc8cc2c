"""Crash recovery at every named crash point: the process dies, a restart sweeps, the
end state is exact — no lease lost, no event lost, no standing membership touched."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import databricks_access as da
from databricks_access import LeaseState, SqliteLeaseStore
from databricks_access.testing import FakeAccount
from helpers.internals import CRASH_ENV, CRASH_EXIT_CODE

CHILD = Path(__file__).parents[1] / "helpers" / "tracker_child.py"
START = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)
CLAIM = dt.timedelta(minutes=2)


class World:
    """A served emulator with one user and one group, and a SQLite store file."""

    def __init__(self, tmp_path: Path, url: str, fake: FakeAccount, sp) -> None:
        self.url = url
        self.fake = fake
        self.sp = sp
        self.db = str(tmp_path / "leases.db")
        self.user = fake.add_user("alice@example.com")
        self.group = fake.add_group("ops")

    def child(
        self, action: str, now: dt.datetime, crash: str | None = None, **extra
    ) -> subprocess.CompletedProcess[str]:
        spec = {
            "url": self.url,
            "account_id": self.fake.account_id,
            "client_id": self.sp.client_id,
            "client_secret": self.sp.client_secret,
            "db": self.db,
            "now": now.isoformat(),
            "owner": f"child-{action}",
            "action": action,
            "user": self.user,
            "group": self.group,
            "ttl": HOUR.total_seconds(),
            **extra,
        }
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash:
            env[CRASH_ENV] = crash
        return subprocess.run(
            [sys.executable, str(CHILD), json.dumps(spec)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def tracker(self, now: dt.datetime, store):
        clock = da.ManualClock(now)
        cfg = da.AccountConfig(
            host=self.url,
            account_id=self.fake.account_id,
            allow_custom_host=True,
            allow_insecure_http=True,
        )
        client = da.AccountClient(
            cfg, secrets=da.StaticSecretStore(self.sp.client_id, self.sp.client_secret), clock=clock
        )
        return da.LeaseTracker(
            da.MembershipManager(client), store=store, clock=clock, owner="restarted"
        ), client

    def member(self) -> bool:
        return self.user in self.fake.group_members(self.group)


@pytest.fixture
def world(tmp_path):
    fake = FakeAccount()
    sp = fake.add_service_principal("connector")
    with fake.serve() as url:
        yield World(tmp_path, url, fake, sp)


def events(store) -> list[str]:
    return [e.event.kind.value for e in store.pending_events(limit=1000)]


def crashed(result) -> None:
    assert result.returncode == CRASH_EXIT_CODE, result.stderr


@pytest.mark.parametrize(
    ("point", "recovered"),
    [
        ("after_claim", False),
        ("after_intent_write", True),
        ("after_patch", True),
        ("after_activate", True),
    ],
)
def test_crash_during_grant(world, point, recovered):
    crashed(world.child("grant", START, crash=point))
    later = START + CLAIM + dt.timedelta(seconds=1)
    with SqliteLeaseStore(world.db) as store:
        tracker, client = world.tracker(later, store)
        with client:
            report = tracker.sweep()
            leases = store.find_leases()
            if not recovered:
                assert leases == []
                assert not world.member()
                assert events(store) == []
                return
            (lease,) = leases
            assert lease.state is LeaseState.ACTIVE
            assert world.member()
            assert events(store) == ["granted"]
            assert report.recovered == ((lease.id,) if point != "after_activate" else ())
            # And it still ends on time.
            tracker.clock.set(lease.expires_at)
            assert tracker.sweep().revoked == (lease.id,)
            assert not world.member()
            assert events(store) == ["granted", "expired", "revoked"]


@pytest.mark.parametrize("point", ["after_claim", "after_revoking_write", "after_revoke_patch"])
def test_crash_during_sweep(world, point):
    assert world.child("grant", START).returncode == 0
    due = START + HOUR
    crashed(world.child("sweep", due, crash=point))
    with SqliteLeaseStore(world.db) as store:
        tracker, client = world.tracker(due + CLAIM, store)
        with client:
            tracker.sweep()
            (lease,) = store.find_leases()
            assert lease.state is LeaseState.REVOKED
            assert not world.member()
            assert events(store) == ["granted", "expired", "revoked"]


@pytest.mark.parametrize("point", ["after_claim", "after_revoking_write", "after_revoke_patch"])
def test_crash_during_early_revoke(world, point):
    granted = world.child("grant", START)
    lease_id = granted.stdout.strip()
    crashed(world.child("revoke", START + dt.timedelta(minutes=5), crash=point, lease_id=lease_id))
    with SqliteLeaseStore(world.db) as store:
        tracker, client = world.tracker(START + dt.timedelta(minutes=5) + CLAIM, store)
        with client:
            tracker.sweep()
            lease = store.get_lease(lease_id)
            if point == "after_claim":
                # Nothing was written: the lease is still active and ends on time.
                assert lease.state is LeaseState.ACTIVE
                assert world.member()
                tracker.revoke(lease_id)
            assert store.get_lease(lease_id).state is LeaseState.REVOKED
            assert not world.member()
            assert events(store) == ["granted", "revoked"]


def test_crash_after_extend_keeps_the_extension(world):
    lease_id = world.child("grant", START).stdout.strip()
    crashed(
        world.child(
            "extend",
            START + dt.timedelta(minutes=10),
            crash="after_extend",
            lease_id=lease_id,
            by=1800,
        )
    )
    with SqliteLeaseStore(world.db) as store:
        lease = store.get_lease(lease_id)
        assert lease.expires_at == START + HOUR + dt.timedelta(minutes=30)
        assert events(store) == ["granted", "extended"]
        tracker, client = world.tracker(START + HOUR + dt.timedelta(minutes=1), store)
        with client:
            assert tracker.sweep().ended == 0
            assert world.member()


def test_a_standing_member_survives_a_crash_anywhere(world):
    world.fake.add_member(world.group, world.user)
    crashed(world.child("grant", START, crash="after_patch"))
    with SqliteLeaseStore(world.db) as store:
        tracker, client = world.tracker(START + CLAIM + dt.timedelta(seconds=1), store)
        with client:
            tracker.sweep()
            (lease,) = store.find_leases()
            assert lease.standing
            tracker.clock.set(lease.expires_at)
            tracker.sweep()
            assert store.get_lease(lease.id).state is LeaseState.REVOKED
            assert world.member()
