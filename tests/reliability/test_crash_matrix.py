"""Fifty crashes drawn by a seed: named crash points and their counts (`point:N`), across
grant, sweep, extend, early revoke, approval and a sequence of all of them, each in a
child process against the emulator served on 127.0.0.1.

After each crash a restarted tracker (once its claims have expired) runs the request
sweep and the lease sweep, and the state must be exact:

- no lease lost: exactly the leases the work had written by the crash — known from a
  traced run of the same work, which prints where each crash point is reached —, and
  every approved request has exactly one lease, linked to it;
- nothing half done: every lease `ACTIVE` (and not yet due), `REVOKED` or
  `GRANT_FAILED`; no `GRANTING`, `REVOKING` or `REVOKE_FAILED` left;
- membership exact: each group holds its standing members plus the principals of its
  active leases, nothing else;
- audit complete: each lease's events, in the store's outbox, tell its story in order.

`tests/test_crash_recovery.py` checks each named point once with hand-written
expectations; this matrix covers the counts and the combinations.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import attrs
import pytest

import databricks_access as da
from databricks_access import AccessRequests, LeaseState, RequestState, SqliteLeaseStore
from databricks_access.testing import FakeAccount
from helpers.internals import CRASH_ENV, CRASH_EXIT_CODE, CRASH_POINTS

pytestmark = pytest.mark.slow

CHILD = Path(__file__).parents[1] / "helpers" / "tracker_child.py"
START = dt.datetime(2026, 8, 3, 9, 0, tzinfo=dt.timezone.utc)
CLAIM = dt.timedelta(minutes=2)
SEED = 20260803
CASES = 50
OWNERS = ["user:bob@example.com"]
GRANTING_POINTS = ("after_intent_write", "after_patch", "after_activate")


@attrs.define
class World:
    """A served emulator (users u0-u3; groups g0, g1; u3 a standing member of g0)."""

    fake: FakeAccount
    url: str
    sp: object
    db: str
    users: list[str]
    groups: list[str]
    standing: set[tuple[str, str]]

    def config(self) -> da.AccountConfig:
        return da.AccountConfig(
            host=self.url,
            account_id=self.fake.account_id,
            allow_custom_host=True,
            allow_insecure_http=True,
        )

    def open(self, now: dt.datetime, store: SqliteLeaseStore, owner: str):
        """An in-process tracker and access requests on the same store and account."""
        clock = da.ManualClock(now)
        client = da.AccountClient(
            self.config(),
            secrets=da.StaticSecretStore(self.sp.client_id, self.sp.client_secret),
            transport=self.fake.transport(),
            clock=clock,
        )
        tracker = da.LeaseTracker(
            da.MembershipManager(client), store=store, clock=clock, owner=owner
        )
        integration = da.IntegrationConfig(
            name="crash-matrix",
            accounts_url=self.url,
            account_id=self.fake.account_id,
            integration_owners=OWNERS,
            allow_custom_host=True,
            allow_insecure_http=True,
        )
        requests = AccessRequests(tracker, da.Integration(integration, client=client))
        return client, tracker, requests

    def child(self, spec: dict, crash: str | None) -> subprocess.CompletedProcess[str]:
        full = {
            "url": self.url,
            "account_id": self.fake.account_id,
            "client_id": self.sp.client_id,
            "client_secret": self.sp.client_secret,
            "db": self.db,
            "owner": "child",
            "owners": OWNERS,
            "ttl": 3600,
            **spec,
        }
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash:
            env[CRASH_ENV] = crash
        return subprocess.run(
            [sys.executable, str(CHILD), json.dumps(full)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def make_world(tmp_path):
    """A fresh served account and store file per case (one at a time)."""
    served = []

    def make(name: str) -> World:
        fake = FakeAccount(log_size=None)
        sp = fake.add_service_principal("connector")
        users = [fake.add_user(f"u{i}@example.com") for i in range(4)]
        groups = [fake.add_group(f"g{i}") for i in range(2)]
        fake.add_member(groups[0], users[3])
        server = fake.serve()
        url = server.__enter__()
        served.append(server)
        return World(
            fake,
            url,
            sp,
            str(tmp_path / f"{name}.db"),
            users,
            groups,
            {(users[3], groups[0])},
        )

    yield make
    for server in served:
        server.__exit__(None, None, None)


# -- the work each child does, and what the parent prepares for it ---------------------------


@attrs.frozen
class Work:
    """When one kind of work runs, on the child's clock (`prepare` sets it up)."""

    action: str
    ran_at: dt.timedelta  # the child's clock at its start, from START
    ends_at: dt.timedelta  # the child's clock at its end, from START


WORKS = {
    "grant": Work("grant", dt.timedelta(0), dt.timedelta(0)),
    "sweep": Work("sweep", dt.timedelta(hours=1), dt.timedelta(hours=1)),
    "extend": Work("extend", dt.timedelta(minutes=10), dt.timedelta(minutes=10)),
    "revoke": Work("revoke", dt.timedelta(minutes=5), dt.timedelta(minutes=5)),
    "approve": Work("approve", dt.timedelta(minutes=1), dt.timedelta(minutes=1)),
    "sequence": Work("sequence", dt.timedelta(0), dt.timedelta(seconds=3100)),
}


def sequence_steps(world: World, request_id: str) -> list[dict]:
    u, g = world.users, world.groups
    return [
        {"do": "grant", "user": u[0], "group": g[0], "ttl": 3600},  # lease 0
        {"do": "grant", "user": u[1], "group": g[0], "ttl": 1800},  # lease 1
        {"do": "grant", "user": u[3], "group": g[0], "ttl": 600},  # lease 2, standing
        {"do": "grant", "user": u[0], "group": g[0], "ttl": 7200},  # lease 3, overlaps 0
        {"do": "extend", "lease": 1, "by": 1200},
        {"do": "revoke", "lease": 0},  # kept: lease 3 holds the pair
        {"do": "approve", "request_id": request_id, "approver": "bob@example.com"},  # 4
        {"do": "advance", "seconds": 1000},
        {"do": "sweep"},  # lease 2 ends (standing: kept), lease 4 ends (removed)
        {"do": "grant", "user": u[2], "group": g[1], "ttl": 600},  # lease 5
        {"do": "revoke", "lease": 5},
        {"do": "advance", "seconds": 2100},
        {"do": "sweep"},  # lease 1 ends
    ]


def prepare(world: World, action: str) -> tuple[dict, int]:
    """Set the store up for `action`; returns the child's spec and the leases written."""
    u, g = world.users, world.groups
    with SqliteLeaseStore(world.db) as store:
        client, tracker, requests = world.open(START, store, owner="setup")
        with client:

            def grant(user: str, group: str) -> str:
                return tracker.grant(
                    da.PrincipalRef("user", user), group, ttl=3600, requester="s", reason="s"
                ).id

            def submit(user: str, group: str, ttl: int) -> str:
                return requests.submit(
                    da.PrincipalRef("user", user),
                    group,
                    ttl=ttl,
                    reason="INC-7",
                    requester=f"{user}-requester",
                ).id

            spec: dict = {"action": action, "now": (START + WORKS[action].ran_at).isoformat()}
            written = 0
            if action == "grant":
                spec |= {"user": u[0], "group": g[0]}
            elif action == "sweep":
                for user, group in ((u[0], g[0]), (u[1], g[0]), (u[2], g[1]), (u[3], g[0])):
                    grant(user, group)
                spec |= {"batch": 1}
                written = 4
            elif action in {"extend", "revoke"}:
                spec |= {"lease_id": grant(u[0], g[0]), "by": 1800}
                written = 1
            elif action == "approve":
                spec |= {"request_id": submit(u[1], g[1], 3600), "approver": "bob@example.com"}
            else:
                spec |= {"steps": sequence_steps(world, submit(u[2], g[1], 900))}
    return spec, written


# -- where a crash lands, from a traced run ------------------------------------------------


def trace(make_world, action: str) -> list[tuple[int, str]]:
    """The crash points `action` reaches, in order, with the sequence step of each."""
    world = make_world(f"trace-{action}")
    spec, _ = prepare(world, action)
    result = world.child({**spec, "trace": True}, crash=None)
    assert result.returncode == 0, result.stderr
    return [
        (int(step), name)
        for step, name in re.findall(r"^point (-?\d+) (\w+)$", result.stdout, re.MULTILINE)
    ]


def catalogue(traces: dict[str, list[tuple[int, str]]]) -> list[tuple[str, str, int]]:
    """Every (action, point, N) that some work reaches, plus a few that it never does."""
    cases = []
    for action, points in traces.items():
        counts = Counter(name for _, name in points)
        for point in CRASH_POINTS:
            cases.extend((action, point, n) for n in range(1, counts[point] + 1))
        cases.append((action, "after_extend" if action != "extend" else "after_claim", 9))
    return cases


def expected_leases(
    action: str, written: int, steps: list[dict], crash_step: int | None, point: str
) -> int:
    """How many leases exist once the restarted tracker has swept.

    Every grant that stored its intent before the crash has a lease (finished or undone
    by the sweep); one that crashed right after its claim has none. An approved request
    always ends with exactly one lease: the request sweep grants it when the crash came
    before its lease was written.
    """
    if action == "grant":
        return int(crash_step is None or point in GRANTING_POINTS)
    if action == "approve":
        return 1
    if action != "sequence":
        return written
    count = 0
    for index, step in enumerate(steps):
        if crash_step is not None and index > crash_step:
            break
        crashed_here = index == crash_step
        if step["do"] == "approve" or (
            step["do"] == "grant" and (not crashed_here or point in GRANTING_POINTS)
        ):
            count += 1
    return count


# -- the test ---------------------------------------------------------------------------------

STORY = re.compile(
    r"^(grant_failed"
    r"|(granted( extended)*( expired)?( revoke_failed)* )?(revoked|ended)"
    r"|granted( extended)*)$"
)


def check_exact(world: World, restart: dt.datetime, expected: int, printed: list[str]) -> None:
    with SqliteLeaseStore(world.db) as store:
        client, tracker, requests = world.open(restart, store, owner="restarted")
        with client:
            requests.sweep()
            tracker.sweep()
            assert tracker.sweep().ended == 0
        leases = store.find_leases()
        ids = {lease.id for lease in leases}
        assert len(leases) == expected, [(x.state, x.reason) for x in leases]
        assert set(printed) <= ids, "a lease the work reported is gone"
        active: dict[str, set[str]] = defaultdict(set)
        for lease in leases:
            assert lease.state in {
                LeaseState.ACTIVE,
                LeaseState.REVOKED,
                LeaseState.GRANT_FAILED,
            }, lease
            if lease.state is LeaseState.ACTIVE:
                assert lease.expires_at > restart, lease
                active[lease.group_id].add(lease.principal.id)
        for group in world.groups:
            standing = {user for user, g in world.standing if g == group}
            assert world.fake.group_members(group) == standing | active[group], group
        stories: dict[str, list[str]] = defaultdict(list)
        for stored in store.pending_events(limit=10_000):
            if stored.event.lease_id is not None and not stored.event.kind.value.startswith(
                "request_"
            ):
                stories[stored.event.lease_id].append(stored.event.kind.value)
        for lease in leases:
            story = " ".join(stories[lease.id])
            assert STORY.match(story), (lease.id, lease.state, story)
            assert story.count("extended") == lease.extensions
        for req in store.find_requests():
            assert req.state in {RequestState.PENDING, RequestState.APPROVED}, req
            mine = [lease for lease in leases if lease.request_id == req.id]
            if req.state is RequestState.APPROVED:
                assert len(mine) == 1, (req, mine)
                assert req.lease_id == mine[0].id
            else:
                assert mine == []


@pytest.mark.timeout(400)  # ~56 child processes: about 35 s on two idle cores
def test_fifty_seeded_crashes_each_recover_exactly(make_world):
    traces = {action: trace(make_world, action) for action in WORKS}
    cases = catalogue(traces)
    rng = random.Random(SEED)
    # Half the draws from the sequence, where counts land in different operations.
    drawn = [
        rng.choice([c for c in cases if c[0] == "sequence"])
        if i % 2
        else rng.choice([c for c in cases if c[0] != "sequence"])
        for i in range(CASES)
    ]
    crashed: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    for number, (action, point, n) in enumerate(drawn):
        world = make_world(f"case-{number}")
        spec, written = prepare(world, action)
        hits = [step for step, name in traces[action] if name == point]
        crash_step = hits[n - 1] if n <= len(hits) else None
        result = world.child(spec, crash=f"{point}:{n}")
        label = f"{action} {point}:{n}"
        if crash_step is None:
            assert result.returncode == 0, (label, result.stderr)
            completed[label] += 1
        else:
            assert result.returncode == CRASH_EXIT_CODE, (label, result.stderr)
            crashed[f"{point}:{n}"] += 1
        printed = re.findall(r"^lease \d+ (\S+)$", result.stdout, re.MULTILINE)
        if action == "grant" and result.returncode == 0:
            printed = [result.stdout.strip()]
        expected = expected_leases(action, written, spec.get("steps", []), crash_step, point)
        restart = START + WORKS[action].ends_at + CLAIM + dt.timedelta(seconds=1)
        try:
            check_exact(world, restart, expected, printed)
        except AssertionError as exc:
            raise AssertionError(f"case {number}: {label}: {exc}") from exc
    print(
        f"\ncrash matrix (seed {SEED}): {sum(crashed.values())} crashed, "
        f"{sum(completed.values())} ran to completion"
    )
    for point in CRASH_POINTS:
        by_count = {
            k: v
            for k, v in sorted(crashed.items(), key=lambda kv: int(kv[0].rpartition(":")[2]))
            if k.startswith(f"{point}:")
        }
        print(f"  {point:<22} {sum(by_count.values()):>2}  {by_count}")
    print(f"  ran to completion: {dict(completed)}")
    assert sum(crashed.values()) + sum(completed.values()) == CASES
    assert len({key.partition(":")[0] for key in crashed}) == len(CRASH_POINTS)
