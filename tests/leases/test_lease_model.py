"""A concurrency model of the lease tracker, checked against the emulator's real state.

Several threads share one `LeaseTracker` (the documented deployment: `run()` in one
thread, grants in others), a second tracker on the same store plays another replica, and
asyncio tasks share one `AsyncLeaseTracker`. They grant, extend, revoke, sweep and
reconcile random pairs at once, under injected throttling, server errors (some applied
before they were answered), and lagging reads. After every round, at rest, the account
must match the leases:

- every member of a managed group is covered: by a standing membership, or by a lease the
  tracker still works on (active, granting, revoking, or failed and retried);
- every active, unexpired lease has its member in the group;
- a standing membership is never removed.

At the end, with the faults gone and every lease due, sweeps leave only the standing
members. The wall clock moves in steps well inside the claim time (claims are leases on
time: a process paused for a whole claim time is outside what any lock can promise).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import threading

import pytest

import databricks_access as da
from databricks_access import LeaseState, MemoryLeaseStore, SqliteLeaseStore
from databricks_access.testing import Behaviour, FakeAccount, Fault, FaultPlan, StaleReads
from helpers.clocks import WallClock
from helpers.postgres_server import postgres_server_fixture  # noqa: F401 - the server fixture

LIVE = (LeaseState.ACTIVE, LeaseState.GRANTING, LeaseState.REVOKING, LeaseState.REVOKE_FAILED)


class World:
    """The account, the store, the trackers and the bookkeeping of one model run."""

    def __init__(self, seed: int, store, config, async_store=None) -> None:
        self.rng = random.Random(seed)
        self.clock = WallClock()
        self.fake = FakeAccount(
            account_id=config.account_id,
            clock=lambda: self.clock.now().timestamp(),
            behaviour=Behaviour(stale_reads=StaleReads(lag_requests=3, monotonic=False, seed=seed)),
        )
        sp = self.fake.add_service_principal("connector")
        self.secrets = da.StaticSecretStore(sp.client_id, sp.client_secret)
        self.config = da.AccountConfig(host=self.fake.host, account_id=self.fake.account_id)
        self.users = [self.fake.add_user(f"u{i}@example.com") for i in range(6)]
        self.groups = [self.fake.add_group(f"g{i}") for i in range(3)]
        # One standing membership: it must survive every lease on its pair.
        self.standing = (self.users[0], self.groups[0])
        self.fake.add_member(self.groups[0], self.users[0])
        self.store = store
        self.async_store = async_store if async_store is not None else store
        self.clients: list[da.AccountClient] = []
        self.one = self._tracker("one")
        self.two = self._tracker("two")
        self.errors: list[BaseException] = []
        self.ops = 0
        FaultPlan(
            [
                Fault.too_many_requests(retry_after=0.2, method="PATCH", probability=0.08),
                Fault.server_error(503, method="PATCH", probability=0.04),
                Fault.error(503, applied=True, method="PATCH", probability=0.04),
                Fault.request_limit_exceeded(method="GET", probability=0.03),
            ],
            seed=seed,
        ).install(self.fake)

    def _tracker(self, owner: str) -> da.LeaseTracker:
        client = da.AccountClient(
            self.config, secrets=self.secrets, transport=self.fake.transport(), clock=self.clock
        )
        self.clients.append(client)
        return da.LeaseTracker(
            da.MembershipManager(client), store=self.store, clock=self.clock, owner=owner
        )

    # -- operations ------------------------------------------------------------------------

    def pick_pair(self) -> tuple[da.PrincipalRef, str]:
        return da.PrincipalRef("user", self.rng.choice(self.users)), self.rng.choice(self.groups)

    def pick_lease(self) -> str | None:
        leases = self.store.find_leases(states=(LeaseState.ACTIVE, LeaseState.REVOKE_FAILED))
        return self.rng.choice(leases).id if leases else None

    def operation(self, rng: random.Random):
        """A random operation for a sync tracker, as a callable."""
        tracker = self.one if rng.random() < 0.75 else self.two
        kind = rng.choice(["grant", "grant", "grant", "extend", "revoke", "sweep", "reconcile"])
        if kind == "grant":
            principal, group = self.pick_pair()
            ttl = rng.choice([60, 90, 120, 300])
            return lambda: tracker.grant(principal, group, ttl=ttl, requester="m", reason="r")
        if kind in ("extend", "revoke"):
            lease_id = self.pick_lease()
            if lease_id is None:
                return tracker.sweep
            if kind == "extend":
                return lambda: tracker.extend(lease_id, by=rng.choice([30, 60]))
            return lambda: tracker.revoke(lease_id)
        if kind == "reconcile":
            return lambda: tracker.reconcile(self.groups, apply=True)
        return tracker.sweep

    def run_quietly(self, action) -> None:
        """Run one operation; library errors are expected under faults, others are bugs."""
        try:
            action()
        except da.DatabricksAccessError:
            pass
        except BaseException as exc:
            self.errors.append(exc)
        self.ops += 1

    # -- the invariant ----------------------------------------------------------------------

    def check(self, when: str) -> None:
        now = self.clock.now()
        leases = self.store.find_leases()
        by_pair: dict[tuple[str, str], list] = {}
        for lease in leases:
            by_pair.setdefault((lease.principal.id, lease.group_id), []).append(lease)
        standing_user, standing_group = self.standing
        assert standing_user in self.fake.group_members(standing_group), (
            f"{when}: the standing membership was removed"
        )
        for group in self.groups:
            members = self.fake.group_members(group)
            for user in self.users:
                if (user, group) == self.standing:
                    continue
                on_pair = by_pair.get((user, group), [])
                shown = [(x.id, x.state.value, x.expires_at.isoformat()) for x in on_pair]
                if user in members:
                    assert any(x.state in LIVE for x in on_pair), (
                        f"{when}: {user} is a member of {group} and no lease covers it: {shown}"
                    )
                if any(x.state is LeaseState.ACTIVE and x.expires_at > now for x in on_pair):
                    assert user in members, (
                        f"{when}: an active lease of {user} on {group} without its member: {shown}"
                    )
        assert not self.errors, f"{when}: {self.errors!r}"

    def settle(self) -> None:
        """Faults off, everything due: sweeps end every lease; only standing stays."""
        self.fake.interceptor = None
        self.fake.behaviour = Behaviour()
        for _ in range(6):
            self.clock.advance(dt.timedelta(minutes=10))
            self.one.sweep()
            self.two.sweep()
        assert not self.store.find_leases(states=LIVE)
        standing_user, standing_group = self.standing
        for group in self.groups:
            expected = {standing_user} if group == standing_group else set()
            assert set(self.fake.group_members(group)) == expected

    def close(self) -> None:
        for client in self.clients:
            client.close()


def rounds_of_threads(world: World, rounds: int, width: int, meanwhile=None) -> None:
    """`rounds` rounds of `width` operations at once; `meanwhile(round)` runs beside each."""
    for number in range(rounds):
        actions = [world.operation(world.rng) for _ in range(width)]
        if meanwhile is not None:
            actions.append(lambda number=number: meanwhile(number))
        barrier = threading.Barrier(len(actions))

        def work(action, barrier=barrier) -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)
            world.run_quietly(action)

        threads = [threading.Thread(target=work, args=(a,)) for a in actions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads), f"round {number}: an operation hung"
        world.check(f"round {number}")
        world.clock.advance(world.rng.choice([0, 5, 20, 45]))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_threads_and_a_replica_keep_the_account_and_the_leases_in_step(
    config, tmp_path, seed, kind
):
    store = MemoryLeaseStore() if kind == "memory" else SqliteLeaseStore(tmp_path / "l.db")
    world = World(seed, store, config)
    try:
        rounds_of_threads(world, rounds=25, width=6)
        world.settle()
        assert world.ops == 25 * 6
    finally:
        world.close()
        store.close()


async def rounds_of_tasks(world: World, rounds: int, width: int) -> None:
    async with da.AsyncAccountClient(
        world.config, secrets=world.secrets, transport=world.fake.transport(), clock=world.clock
    ) as client:
        tracker = da.AsyncLeaseTracker(
            da.AsyncMembershipManager(client),
            store=world.async_store,
            clock=world.clock,
            owner="tasks",
        )

        async def one(rng: random.Random) -> None:
            kind = rng.choice(["grant", "grant", "extend", "revoke", "sweep", "reconcile"])
            lease_id = world.pick_lease()
            try:
                if kind == "grant" or lease_id is None:
                    principal, group = world.pick_pair()
                    await tracker.grant(
                        principal, group, ttl=rng.choice([60, 120]), requester="m", reason="r"
                    )
                elif kind == "extend":
                    await tracker.extend(lease_id, by=60)
                elif kind == "revoke":
                    await tracker.revoke(lease_id)
                elif kind == "sweep":
                    await tracker.sweep()
                else:
                    await tracker.reconcile(world.groups, apply=True)
            except da.DatabricksAccessError:
                pass
            world.ops += 1

        for number in range(rounds):
            # Tasks on the async tracker and a thread on the sync one, all at once.
            side = threading.Thread(target=world.run_quietly, args=(world.operation(world.rng),))
            side.start()
            await asyncio.gather(*(one(world.rng) for _ in range(width)))
            await asyncio.to_thread(side.join, 60)
            world.check(f"async round {number}")
            world.clock.advance(world.rng.choice([0, 5, 20, 45]))


@pytest.mark.parametrize("seed", [4, 5])
def test_tasks_of_an_async_tracker_and_a_thread_keep_the_account_in_step(config, seed):
    store = MemoryLeaseStore()
    world = World(seed, store, config)
    try:
        asyncio.run(rounds_of_tasks(world, rounds=20, width=5))
        world.settle()
    finally:
        world.close()


@pytest.mark.parametrize("seed", [6])
def test_the_model_holds_on_postgresql_sync_and_async_across_a_restart(
    config, seed, postgres_server
):
    from databricks_access import AsyncPostgresLeaseStore, PostgresLeaseStore  # noqa: PLC0415

    schema = postgres_server.new_schema()
    store = PostgresLeaseStore(postgres_server.url, schema=schema)
    world = World(seed, store, config)

    async def main() -> None:
        async with AsyncPostgresLeaseStore(postgres_server.url, schema=schema) as native:
            world.async_store = native
            await rounds_of_tasks(world, rounds=8, width=4)

    def restart_in_round_three(number: int) -> None:
        if number == 3:
            postgres_server.restart()  # every connection drops, transactions in flight too

    try:
        rounds_of_threads(world, rounds=8, width=4, meanwhile=restart_in_round_three)
        asyncio.run(main())
        world.settle()
    finally:
        world.close()
        store.close()
