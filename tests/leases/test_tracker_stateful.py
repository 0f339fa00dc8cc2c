"""A stateful model of the lease tracker against the emulator (Hypothesis).

After each healthy sweep, a principal is a member of a managed group exactly when its
membership is standing or it holds an active lease; a standing member is never removed;
no lease ever disappears from the store.
"""

from __future__ import annotations

import datetime as dt

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

import databricks_access as da
from databricks_access import LeaseState, MemoryLeaseStore
from databricks_access.testing import FakeAccount, FakeResponse
from helpers.internals import ACTIVE_STATES

USERS = 4
GROUPS = 2
MAX_TTL = dt.timedelta(hours=3)
WINDOW = dt.timedelta(minutes=5)
UNAVAILABLE = FakeResponse(
    503,
    (("Content-Type", "application/json"),),
    b'{"error_code":"TEMPORARILY_UNAVAILABLE","message":"down"}',
)


class TrackerMachine(RuleBasedStateMachine):
    leases = Bundle("leases")

    @initialize(
        standing=st.sets(
            st.tuples(st.integers(0, USERS - 1), st.integers(0, GROUPS - 1)), max_size=3
        )
    )
    def setup(self, standing):
        self.clock = da.ManualClock()
        self.fake = FakeAccount(
            account_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            clock=lambda: self.clock.now().timestamp(),
        )
        sp = self.fake.add_service_principal("c")
        self.users = [self.fake.add_user(f"u{i}@example.com") for i in range(USERS)]
        self.groups = [self.fake.add_group(f"g{i}") for i in range(GROUPS)]
        self.standing = set()
        for u, g in standing:
            self.fake.add_member(self.groups[g], self.users[u])
            self.standing.add((self.users[u], self.groups[g]))
        self.faulty = False
        self.fake.interceptor = self._intercept
        cfg = da.AccountConfig(host=self.fake.host, account_id=self.fake.account_id)
        self.client = da.AccountClient(
            cfg,
            secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
            transport=self.fake.transport(),
            clock=self.clock,
        )
        self.store = MemoryLeaseStore()
        self.tracker = da.LeaseTracker(
            da.MembershipManager(self.client),
            store=self.store,
            clock=self.clock,
            max_ttl=MAX_TTL,
            consistency_window=WINDOW,
        )
        self.known: set[str] = set()

    def teardown(self):
        if hasattr(self, "client"):
            self.client.close()

    def _intercept(self, request):
        if self.faulty and request.method == "PATCH":
            return UNAVAILABLE
        return None

    def _removal_pending(self, user, group):
        return any(
            lease.state in (LeaseState.REVOKING, LeaseState.REVOKE_FAILED)
            for lease in self.store.find_leases(principal_id=user, group_id=group)
        )

    def _holding(self, user, group):
        return [
            lease
            for lease in self.store.find_leases(principal_id=user, group_id=group)
            if lease.state in ACTIVE_STATES
        ]

    # -- actions ----------------------------------------------------------------------------

    @rule(
        target=leases,
        u=st.integers(0, USERS - 1),
        g=st.integers(0, GROUPS - 1),
        minutes=st.integers(1, 240),
    )
    def grant(self, u, g, minutes):
        ttl = dt.timedelta(minutes=minutes)
        user, group = self.users[u], self.groups[g]
        if (user, group) in self.standing and self._recent_ours_only(user, group):
            # The documented limit of the consistency window: an out-of-band add soon
            # after our own lease ended cannot be told from a lagging read of our add.
            self.standing.discard((user, group))
        try:
            lease = self.tracker.grant(
                da.PrincipalRef("user", user), group, ttl=ttl, requester="r", reason="x"
            )
        except da.ConfigError:
            assert ttl > MAX_TTL
            return "none"
        except da.DatabricksAccessError:
            assert self.faulty
            (failed,) = [
                x
                for x in self.store.find_leases(principal_id=user, group_id=group)
                if x.id not in self.known
            ]
            # A 503 to the add may have landed: the grant is undone by a removal, which
            # the outage may refuse too (then it is retried as any failed revocation).
            assert failed.state in (
                LeaseState.GRANT_FAILED,
                LeaseState.REVOKED,
                LeaseState.REVOKE_FAILED,
            )
            self.known.add(failed.id)
            return failed.id
        self.known.add(lease.id)
        assert lease.expires_at == self.clock.now() + ttl or self.faulty is False
        return lease.id

    @rule(lease_id=leases, minutes=st.integers(1, 240))
    def extend(self, lease_id, minutes):
        lease = self.store.get_lease(lease_id) if lease_id != "none" else None
        try:
            result = self.tracker.extend(lease_id, by=dt.timedelta(minutes=minutes))
        except da.LeaseError:
            assert (
                lease is None
                or lease.state is not LeaseState.ACTIVE
                or lease.expires_at <= self.clock.now()
            )
            return
        except da.ConfigError:
            assert lease_id == "none"
            return
        cap = result.lease.granted_at + MAX_TTL
        assert result.lease.expires_at <= cap
        assert result.clamped == (lease.expires_at + dt.timedelta(minutes=minutes) > cap)

    @rule(lease_id=consumes(leases))
    def revoke(self, lease_id):
        if lease_id == "none":
            return
        try:
            lease = self.tracker.revoke(lease_id)
        except da.LeaseError:
            assert self.faulty
            return
        assert lease.state in (LeaseState.REVOKED, LeaseState.GRANT_FAILED)

    @rule(minutes=st.integers(1, 120))
    def advance(self, minutes):
        self.clock.advance(dt.timedelta(minutes=minutes))

    def _recent_ours_only(self, user, group):
        horizon = self.clock.now() - WINDOW
        relevant = [
            lease
            for lease in self.store.find_leases(principal_id=user, group_id=group)
            if lease.state not in (LeaseState.REVOKED, LeaseState.GRANT_FAILED)
            or (lease.state is LeaseState.REVOKED and lease.ended_at >= horizon)
        ]
        return bool(relevant) and not any(lease.standing for lease in relevant)

    @rule(u=st.integers(0, USERS - 1), g=st.integers(0, GROUPS - 1))
    def out_of_band_add(self, u, g):
        user, group = self.users[u], self.groups[g]
        if user in self.fake.group_members(group) or self._holding(user, group):
            return
        if self._removal_pending(user, group):
            # The documented limit: a removal of ours still being retried (a revocation,
            # or the undo of a grant whose add may have landed) removes the member,
            # whoever added them meanwhile.
            return
        self.fake.add_member(group, user)
        self.standing.add((user, group))

    @rule(u=st.integers(0, USERS - 1), g=st.integers(0, GROUPS - 1))
    def out_of_band_remove(self, u, g):
        user, group = self.users[u], self.groups[g]
        if self._holding(user, group) or user not in self.fake.group_members(group):
            return
        self.fake.remove_member(group, user)
        self.standing.discard((user, group))

    @rule()
    def faulty_sweep(self):
        self.faulty = True
        try:
            self.tracker.sweep()
        finally:
            self.faulty = False

    @rule(faulty=st.booleans())
    def toggle_faults(self, faulty):
        self.faulty = faulty

    @rule()
    def healthy_sweep(self):
        self.faulty = False
        # Past the retry cadence of failed removals, and past any claim left behind.
        self.clock.advance(dt.timedelta(minutes=5))
        self.tracker.sweep()
        now = self.clock.now()
        for user in self.users:
            for group in self.groups:
                active = [
                    lease
                    for lease in self.store.find_leases(principal_id=user, group_id=group)
                    if lease.state is LeaseState.ACTIVE and lease.expires_at > now
                ]
                expected = (user, group) in self.standing or bool(active)
                assert (user in self.fake.group_members(group)) == expected, (user, group, active)

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def standing_members_are_never_removed(self):
        if not hasattr(self, "fake"):
            return
        for user, group in self.standing:
            assert user in self.fake.group_members(group)

    @invariant()
    def no_lease_disappears(self):
        if not hasattr(self, "store"):
            return
        stored = {lease.id for lease in self.store.find_leases()}
        assert self.known <= stored


TrackerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_tracker_state_machine = TrackerMachine.TestCase
