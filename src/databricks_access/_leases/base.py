"""What every tracker flow shares: the clock, claims on pairs, standing, the outbox.

Besides HTTP calls the flows yield three effects: a store call (`StoreCall`, made by
the typed wrappers in `store.py`), a sleep and an event delivery, which the sync
tracker performs directly and the async tracker awaits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence

import attrs

from databricks_access._account.flows import Flow
from databricks_access._clock import Clock
from databricks_access._errors import LeaseError
from databricks_access._leases.membership import Guard, MembershipFlows
from databricks_access._leases.settings import TrackerSettings
from databricks_access._leases.store import (
    LeaseUpdate,
    claim_pairs,
    mark_delivered,
    pending_events,
    release_pairs,
    renew_pairs,
    update_leases,
)
from databricks_access._leases.values import (
    TERMINAL_STATES,
    AuditEvent,
    DetailValue,
    EventKind,
    Lease,
    LeaseState,
    Pair,
    StoredEvent,
    new_id,
)
from databricks_access._sansio import Effect, perform
from databricks_access._util.crash import crash_point

__all__ = ["Deliver", "FlowBase", "Sleep"]

logger = logging.getLogger("databricks_access")


@attrs.frozen
class Sleep(Effect[None]):
    """Wait, by the tracker's clock."""

    seconds: float


@attrs.frozen
class Deliver(Effect[Exception | None]):
    """Hand an event to the sink; the runner answers None or the exception raised."""

    event: AuditEvent


class FlowBase:
    """The state and small steps the grant, sweep and reconcile flows share."""

    def __init__(
        self,
        membership: MembershipFlows,
        clock: Clock,
        settings: TrackerSettings,
        owner: str,
    ) -> None:
        self.m = membership
        self.api = membership.api
        self.clock = clock
        self.s = settings
        self.owner = owner
        self.has_sink = False
        # HTTP retries under a claim must end well before the claim does.
        self.patch_deadline = settings.claim_ttl / 2

    # -- small pieces --------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return self.clock.now()

    def _event(self, kind: EventKind, lease: Lease, **detail: DetailValue) -> AuditEvent:
        return AuditEvent(
            kind=kind,
            at=self._now(),
            lease_id=lease.id,
            request_id=lease.request_id,
            principal=lease.principal,
            group_id=lease.group_id,
            requester=lease.requester,
            reason=lease.reason,
            approver=lease.approver,
            expires_at=lease.expires_at,
            detail=detail,
            principal_name=lease.principal_name,
            group_name=lease.group_name,
        )

    def _token(self) -> str:
        """A claim token for one operation: this tracker's name and a fresh tag.

        Claims belong to operations, not to trackers: two threads or tasks of one
        tracker exclude each other per pair exactly as two replicas do.
        """
        return f"{self.owner}/{new_id('op')[3:]}"

    def _until(self) -> dt.datetime:
        return self._now() + dt.timedelta(seconds=self.s.claim_ttl)

    def _claim(self, pair: Pair, token: str) -> Flow[None]:
        """Claim one pair, waiting (by the clock) while another operation holds it."""
        waited, delay = 0.0, 0.05
        while True:
            now = self._now()
            got = yield from claim_pairs([pair], owner=token, now=now, until=self._until())
            if got:
                crash_point("after_claim")
                return
            if waited > self.s.claim_ttl + 1:
                raise LeaseError(
                    f"another operation has held the claim on {pair} for {waited:.0f}s; "
                    "try again later"
                )
            yield Sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)

    def _renew(self, pairs: Sequence[Pair], token: str) -> Flow[set[Pair]]:
        """Extend this operation's claims; returns the pairs it still holds.

        Called right before every side effect: a pair whose claim was taken over or
        released meanwhile is not acted on.
        """
        if not pairs:
            return set()
        held: list[Pair] = yield from renew_pairs(list(pairs), owner=token, until=self._until())
        return set(held)

    def _guard(self, token: str) -> Guard:
        """A guard for `MembershipFlows.apply`: renews each request's claims first."""

        def guard(gid: str, ids: list[str]) -> Flow[list[str]]:
            held = yield from self._renew([Pair(m, gid) for m in ids], token)
            return [m for m in ids if Pair(m, gid) in held]

        return guard

    def _release(self, pairs: Sequence[Pair], token: str) -> Flow[None]:
        if pairs:
            yield from release_pairs(list(pairs), owner=token)

    def _standing(
        self, member_shown: bool, on_pair: Iterable[Lease], now: dt.datetime, pair: Pair
    ) -> bool:
        """Whether a membership the read shows is standing (promise 2).

        Not when this process changed the pair within the consistency window (measured on
        the monotonic clock, so a wall-clock step cannot shorten it), nor when a lease of
        ours on the pair held access or ended within the window (by the store's times,
        which every replica shares), unless that lease was itself standing.
        """
        if not member_shown:
            return False
        horizon = now - dt.timedelta(seconds=self.s.consistency_window)
        relevant = [
            lease
            for lease in on_pair
            if lease.state not in TERMINAL_STATES
            or (
                lease.state is LeaseState.REVOKED
                and lease.ended_at is not None
                and lease.ended_at >= horizon
            )
        ]
        if not relevant:
            return not self.m.recently_written(pair)
        return any(lease.standing for lease in relevant)

    def _end_standing(self, on_pair: Iterable[Lease], why: str) -> Flow[None]:
        """Clear the standing flag of a pair's live leases: the membership is no longer standing.

        Either a read showed the member absent (the standing membership is gone) or we
        added it back ourselves. From here on the membership is the leases': the last one
        to end removes it.
        """
        updates: list[LeaseUpdate] = [
            (
                attrs.evolve(lease, standing=False, updated_at=self._now()),
                lease.state,
                self._event(EventKind.DRIFT, lease, drift="standing_ended", why=why),
            )
            for lease in on_pair
            if lease.standing and lease.state not in TERMINAL_STATES
        ]
        if updates:
            yield from self._cas_many(updates)

    def deliver(self) -> Flow[int]:
        """Hand pending outbox events to the sink, oldest first; returns how many."""
        if not self.has_sink:
            return 0
        delivered = 0
        while True:
            pending: list[StoredEvent] = yield from pending_events(limit=100)
            if not pending:
                return delivered
            done: list[int] = []
            for stored in pending:
                failure = yield from perform(Deliver(stored.event))
                if failure is not None:
                    logger.warning("the event sink failed; events stay queued: %s", failure)
                    break
                done.append(stored.seq)
            if done:
                yield from mark_delivered(done)
                delivered += len(done)
            if len(done) < len(pending):
                return delivered

    def _cas_many(
        self, updates: list[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> Flow[list[bool]]:
        """Store many compare-and-set updates in one transaction; False where a lease changed.

        A change means another tracker took the pair over after our claim expired: the
        pair is theirs now, and this sweep leaves it alone.
        """
        if not updates:
            return []
        results: list[bool] = yield from update_leases(updates)
        for (lease, _, _), ok in zip(updates, results, strict=True):
            if not ok:
                logger.info("lease %s changed under another tracker; leaving it", lease.id)
        return results
