"""The fault soak: many leases through grant, extend, early revoke and expiry, while the
emulator injects faults, and a model of what the account and the store must hold.

Everything is seeded and single-threaded (membership concurrency 1, seeded lease ids,
seeded retry jitter, a `ManualClock`), so one seed replays the same run exactly.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter, defaultdict
from typing import Any

import attrs

import databricks_access as da
from databricks_access import EventKind, LeaseState, MemoryLeaseStore
from databricks_access.testing import (
    FakeAccount,
    FakeRequest,
    FakeResponse,
    Fault,
    FaultPlan,
    OperationClass,
    StaleReads,
)
from helpers.internals import TERMINAL_STATES

ACCOUNT_ID = "5eed5eed-0000-4000-8000-00000000a11c"
MAX_TTL = dt.timedelta(hours=4)
CLAIM = dt.timedelta(minutes=2)
RETRY = dt.timedelta(minutes=5)
WINDOW = dt.timedelta(minutes=5)
OUTAGE = FakeResponse(
    503,
    (("content-type", "application/json"),),
    b'{"error_code":"TEMPORARILY_UNAVAILABLE","message":"outage (injected)"}',
)


class SeededIds:
    """Stands in for the `secrets` module of `_lease`, so lease ids replay under a seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def token_urlsafe(self, nbytes: int) -> str:
        return f"{self._rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def fault_plan(seed: int, rate: float) -> FaultPlan:
    """About `rate` of all requests meet a fault; each kind gets a share of it.

    Answers (429, 5xx, the 500 throttling form, drops, timeouts) are drawn first;
    stale reads and latency change the answers of others.
    """
    shares = {
        "429": 0.20,
        "500": 0.12,
        "503": 0.14,
        "limit": 0.14,
        "drop_lost": 0.08,
        "drop_applied": 0.10,
        "timeout_lost": 0.05,
        "timeout_applied": 0.07,
        "stale": 0.10,
    }
    p = {name: share * rate for name, share in shares.items()}
    # Later faults are only drawn when earlier ones did not fire: scale them up so each
    # kind keeps its share of all requests.
    faults: list[Fault] = []
    left = 1.0
    for name, builder in (
        ("429", lambda q: Fault.too_many_requests(retry_after=1.5, probability=q)),
        ("500", lambda q: Fault.server_error(500, probability=q)),
        ("503", lambda q: Fault.server_error(503, retry_after=0.5, probability=q)),
        ("limit", lambda q: Fault.request_limit_exceeded(probability=q)),
        ("drop_lost", lambda q: Fault.drop(probability=q)),
        ("drop_applied", lambda q: Fault.drop(applied=True, probability=q)),
        ("timeout_lost", lambda q: Fault.timeout(hold=0, probability=q)),
        ("timeout_applied", lambda q: Fault.timeout(hold=0, applied=True, probability=q)),
    ):
        faults.append(builder(min(1.0, p[name] / left)))
        left -= p[name]
    faults.append(
        Fault.stale_reads(
            StaleReads(lag_requests=3, lag_seconds=20, monotonic=False, seed=seed),
            probability=p["stale"],
        )
    )
    faults.append(Fault.latency(0.25, probability=0.02))
    return FaultPlan(faults, seed=seed)


class Weather:
    """The account's interceptor: the seeded fault plan, plus PATCH outages.

    An outage starts at a random request and answers every PATCH with 503 for a while:
    the API "stays down" for writes long enough that retries give up. `calm()` turns
    everything off for the final, healthy sweeps.
    """

    def __init__(self, plan: FaultPlan, seed: int, outage_rate: float) -> None:
        self.plan = plan
        self.rng = random.Random(seed ^ 0x0DD)
        self.outage_rate = outage_rate
        self.seen = 0
        self.outage_until = 0
        self.outages = 0
        self.healthy = False

    def calm(self) -> None:
        self.healthy = True

    def __call__(self, request: FakeRequest) -> Any:
        if self.healthy:
            return None
        self.seen += 1
        if self.seen >= self.outage_until and self.rng.random() < self.outage_rate:
            self.outage_until = self.seen + self.rng.randint(20, 60)
            self.outages += 1
        if self.seen < self.outage_until and request.op_class is OperationClass.PATCH:
            return OUTAGE
        return self.plan(request)


@attrs.define
class Expect:
    """What the test believes about one lease."""

    lease_id: str
    user: str
    group: str
    expires_at: dt.datetime
    granted_at: dt.datetime
    extensions: int = 0
    revoked_early: bool = False


@attrs.define
class Summary:
    leases: int = 0
    granted: int = 0
    grant_errors: Counter[str] = attrs.field(factory=Counter)
    grant_undone: int = 0
    extends: int = 0
    clamped: int = 0
    revokes: int = 0
    revoke_errors: Counter[str] = attrs.field(factory=Counter)
    sweeps: int = 0
    swept: Counter[str] = attrs.field(factory=Counter)
    final: Counter[str] = attrs.field(factory=Counter)
    events: Counter[str] = attrs.field(factory=Counter)
    requests: int = 0
    faults: Counter[str] = attrs.field(factory=Counter)
    outages: int = 0
    log: tuple[tuple[str, str, int, str | None], ...] = ()

    def lines(self) -> list[str]:
        return [
            (
                f"leases: {self.leases} ({self.granted} granted, grant errors "
                f"{dict(self.grant_errors)}, {self.grant_undone} ambiguous grants undone)"
            ),
            (
                f"extends: {self.extends} ({self.clamped} clamped); early revokes: "
                f"{self.revokes} (errors {dict(self.revoke_errors)}); sweeps: {self.sweeps} "
                f"{dict(self.swept)}"
            ),
            f"final states: {dict(self.final)}",
            f"events: {dict(self.events)}",
            (
                f"requests: {self.requests}, faults injected: {dict(self.faults)}, "
                f"PATCH outages: {self.outages}"
            ),
        ]


class Soak:
    """One seeded soak run against an in-process emulator."""

    def __init__(
        self,
        *,
        seed: int,
        leases: int,
        fault_rate: float = 0.20,
        outage_rate: float = 0.002,
        store: Any = None,
        users: int = 40,
        groups: int = 8,
        standing: int = 20,
    ) -> None:
        self.seed = seed
        self.target = leases
        self.rng = random.Random(seed)
        self.clock = da.ManualClock(dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.timezone.utc))
        clock = self.clock
        self.fake = FakeAccount(
            account_id=ACCOUNT_ID,
            clock=lambda: clock.now().timestamp(),
            rng_seed=seed,
            log_size=None,
        )
        sp = self.fake.add_service_principal("soak")
        self.users = [self.fake.add_user(f"user{i:03d}@example.com") for i in range(users)]
        self.groups = [self.fake.add_group(f"team-{g}") for g in range(groups)]
        pairs = [(u, g) for u in self.users for g in self.groups]
        self.standing = set(self.rng.sample(pairs, standing))
        for user, group in sorted(self.standing):
            self.fake.add_member(group, user)
        self.plan = fault_plan(seed, fault_rate)
        self.plan.install(self.fake)  # lets its stale-reads fault switch the account
        self.weather = Weather(self.plan, seed, outage_rate)
        self.fake.interceptor = self.weather
        config = da.AccountConfig(host=self.fake.host, account_id=self.fake.account_id)
        self.client = da.AccountClient(
            config,
            secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
            transport=self.fake.transport(sleep=clock.sleep),
            clock=clock,
        )
        self.client._driver._rand = random.Random(seed ^ 0x7177).random
        self.store = store if store is not None else MemoryLeaseStore()
        self.sink = da.MemorySink()
        self.tracker = da.LeaseTracker(
            da.MembershipManager(self.client, concurrency=1),
            store=self.store,
            clock=clock,
            events=self.sink,
            max_ttl=MAX_TTL,
            claim_ttl=CLAIM,
            revoke_retry_interval=RETRY,
            consistency_window=WINDOW,
            owner="soak",
        )
        self.expect: dict[str, Expect] = {}
        self.summary = Summary()

    # -- operations ----------------------------------------------------------------------

    def _new_lease(self, user: str, group: str, known: set[str]) -> da.Lease:
        fresh = [
            lease
            for lease in self.store.find_leases(principal_id=user, group_id=group)
            if lease.id not in known
        ]
        assert len(fresh) == 1, fresh  # exactly one lease per grant call, even a failed one
        return fresh[0]

    def grant(self) -> None:
        user, group = self.rng.choice(self.users), self.rng.choice(self.groups)
        ttl = dt.timedelta(seconds=self.rng.randint(60, 3 * 3600))
        known = {lease.id for lease in self.store.find_leases(principal_id=user, group_id=group)}
        now = self.clock.now()
        self.summary.leases += 1
        try:
            lease = self.tracker.grant(
                da.PrincipalRef("user", user), group, ttl=ttl, requester="soak", reason="INC-1"
            )
        except da.LeaseError:
            raise  # no claim contention here: a LeaseError would be a bug
        except da.DatabricksAccessError as exc:
            # Documented: the API stayed down for the add. The lease is recorded.
            self.summary.grant_errors[type(exc).__name__] += 1
            failed = self._new_lease(user, group, known)
            self.expect[failed.id] = Expect(
                failed.id, user, group, failed.expires_at, failed.granted_at
            )
            if exc.maybe_applied:
                # The add may have landed before the API failed: the grant is undone.
                self.summary.grant_undone += 1
                assert failed.state in {LeaseState.REVOKED, LeaseState.REVOKE_FAILED}, failed
            else:
                assert failed.state is LeaseState.GRANT_FAILED, failed
                assert failed.last_error, failed
            return
        assert lease.state is LeaseState.ACTIVE
        assert lease.expires_at == lease.granted_at + ttl
        assert lease.granted_at >= now
        assert user in self.fake.group_members(group)
        self.summary.granted += 1
        self.expect[lease.id] = Expect(lease.id, user, group, lease.expires_at, lease.granted_at)

    def _pick_active(self) -> da.Lease | None:
        now = self.clock.now()
        active = [
            lease
            for lease in self.store.find_leases(states=[LeaseState.ACTIVE])
            if lease.expires_at > now
        ]
        return self.rng.choice(active) if active else None

    def extend(self) -> None:
        lease = self._pick_active()
        if lease is None:
            return
        by = dt.timedelta(minutes=self.rng.randint(1, 180))
        result = self.tracker.extend(lease.id, by=by)
        expect = self.expect[lease.id]
        wanted = expect.expires_at + by
        cap = expect.granted_at + MAX_TTL
        assert result.clamped == (wanted > cap)
        if min(wanted, cap) > expect.expires_at:
            expect.expires_at = min(wanted, cap)
            expect.extensions += 1
        assert result.lease.expires_at == expect.expires_at
        self.summary.extends += 1
        self.summary.clamped += result.clamped

    def revoke(self) -> None:
        lease = self._pick_active()
        if lease is None:
            return
        self.expect[lease.id].revoked_early = True
        self.summary.revokes += 1
        try:
            final = self.tracker.revoke(lease.id, by="soak")
        except da.LeaseError as exc:
            # Documented: the removal failed; the lease is REVOKE_FAILED and retried.
            self.summary.revoke_errors[type(exc).__name__] += 1
            assert self.store.get_lease(lease.id).state is LeaseState.REVOKE_FAILED
            return
        assert final.state is LeaseState.REVOKED

    def sweep(self) -> None:
        self.clock.advance(self.rng.randint(0, 900))
        report = self.tracker.sweep()  # never raises for API failures: they are recorded
        self.summary.sweeps += 1
        for name in ("revoked", "kept", "failed", "recovered", "skipped"):
            self.summary.swept[name] += len(getattr(report, name))
        assert report.skipped == ()

    # -- invariants ----------------------------------------------------------------------

    def check_always(self) -> None:
        """What holds between any two operations, faults or not."""
        holding: dict[str, set[str]] = defaultdict(set)
        active: dict[str, set[str]] = defaultdict(set)
        for lease in self.store.find_leases():
            assert lease.state is not LeaseState.GRANTING, lease  # no crash here
            if lease.state not in TERMINAL_STATES:
                holding[lease.group_id].add(lease.principal.id)
            if lease.state is LeaseState.ACTIVE:
                active[lease.group_id].add(lease.principal.id)
        for group in self.groups:
            members = self.fake.group_members(group)
            standing = {u for u, g in self.standing if g == group}
            assert standing <= members, f"a standing member of {group} was removed"
            assert active[group] <= members, f"an active lease of {group} lost its membership"
            orphans = members - standing - holding[group]
            assert not orphans, f"members of {group} without a lease: {sorted(orphans)}"

    def check_final(self) -> None:
        """After the healthy settling sweeps: the exact state."""
        now = self.clock.now()
        leases = {lease.id: lease for lease in self.store.find_leases()}
        assert set(leases) == set(self.expect), "a lease was lost or appeared"
        assert len(leases) == self.target
        active: dict[str, set[str]] = defaultdict(set)
        for lease in leases.values():
            expect = self.expect[lease.id]
            self.summary.final[lease.state.value] += 1
            assert lease.state in {
                LeaseState.ACTIVE,
                LeaseState.REVOKED,
                LeaseState.GRANT_FAILED,
            }, lease
            assert lease.extensions == expect.extensions
            if lease.state is LeaseState.ACTIVE:
                assert not expect.revoked_early
                assert lease.expires_at == expect.expires_at > now
                active[lease.group_id].add(lease.principal.id)
            elif lease.state is LeaseState.REVOKED and not expect.revoked_early:
                # Never ended before its time, unless the grant itself was undone.
                assert lease.ended_at is not None
                assert lease.ended_at >= expect.expires_at or self._undone(lease.id), lease
        for group in self.groups:
            standing = {u for u, g in self.standing if g == group}
            assert self.fake.group_members(group) == standing | active[group], group
        self.check_events(leases)

    def _kinds(self, lease_id: str) -> list[str]:
        return [e.kind.value for e in self.sink.events if e.lease_id == lease_id]

    def _undone(self, lease_id: str) -> bool:
        kinds = self._kinds(lease_id)
        return (
            bool(kinds)
            and kinds[0] == EventKind.GRANT_FAILED.value
            and ("revoked" in kinds or "ended" in kinds)
        )

    def check_events(self, leases: dict[str, da.Lease]) -> None:
        assert self.store.pending_events(limit=10) == [], "events left undelivered"
        self.summary.events = Counter(e.kind.value for e in self.sink.events)
        for lease in leases.values():
            expect = self.expect[lease.id]
            kinds = " ".join(self._kinds(lease.id))
            n = lease.extensions
            failures = " ".join(["revoke_failed"] * lease.attempts)
            # A lease whose membership stays (standing, or another lease holds it) is
            # "ended", not "revoked"; a standing one always stays.
            end = "ended" if lease.standing else "(revoked|ended)"
            if lease.state is LeaseState.GRANT_FAILED:
                pattern = "grant_failed"
            elif self._undone(lease.id):
                pattern = f"grant_failed {failures} {end}"
            elif lease.state is LeaseState.ACTIVE:
                pattern = " ".join(["granted"] + ["extended"] * n)
            else:
                expired = "" if expect.revoked_early else "expired"
                pattern = " ".join(["granted"] + ["extended"] * n + [expired, failures, end])
            wanted = re.sub(r"\s+", " ", pattern).strip()
            assert re.fullmatch(wanted, kinds), (lease.id, kinds, wanted, lease)

    # -- the run -------------------------------------------------------------------------

    def run(self) -> Summary:
        with self.client:
            while self.summary.leases < self.target:
                roll = self.rng.random()
                if roll < 0.50:
                    self.grant()
                elif roll < 0.65:
                    self.extend()
                elif roll < 0.75:
                    self.revoke()
                else:
                    self.sweep()
                self.clock.advance(self.rng.randint(0, 20))
                self.check_always()
            # Settle: the API is healthy again; everything due or left failing is finished.
            self.weather.calm()
            self.clock.advance(RETRY + CLAIM)
            for _ in range(5):
                report = self.tracker.sweep()
                self.summary.sweeps += 1
                assert report.failed == ()
                if report.ended == 0:
                    break
            self.check_always()
            self.check_final()
        self.summary.requests = len(self.fake.log)
        self.summary.faults = self.fake.faults
        self.summary.outages = self.weather.outages
        self.summary.log = tuple((r.method, r.path, r.status, r.fault) for r in self.fake.log)
        return self.summary
