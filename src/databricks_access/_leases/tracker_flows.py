"""The tracker's logic as flows, written once for `LeaseTracker` and `AsyncLeaseTracker`.

How the promises of the design are kept:

1. Intent before side effect: `GRANTING` is stored before the add is sent, `ACTIVE`
   after; `REVOKING` before the removal, `REVOKED` after. A sweep finds leases left
   `GRANTING` or `REVOKING` by a crash (once their claim has expired) and finishes them.
2. Standing membership: the add is always sent; a pair counts as standing only when a
   read shows the member and no lease of ours on the pair held access or ended within
   the consistency window (or one that did was itself standing). A standing lease's
   end leaves the membership.
3. Overlapping leases: a member is removed only when no other lease on the pair still
   holds access, decided under the pair's claim.
4. Extensions are clamped to `max_ttl` from the original grant; the result says so.
5. Revocation happens at least once: failures that outlive the client's retries make
   the lease `REVOKE_FAILED`, reported by an event and retried every
   `revoke_retry_interval` until it succeeds. Not-a-member counts as revoked.
6. `run()` sleeps until the next due lease and wakes on changes to the store.
7. Grant and revoke of one pair are serialised by a claim in the store that expires by
   the injected clock; HTTP retries under a claim stop well before it expires.
8. `reconcile()` reports standing members and vanished memberships.
9. Every event is written with its state change and delivered afterwards (at least once).
10. Every decision takes `now` from the injected `Clock`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Iterable
from typing import cast

import attrs

from databricks_access._account.api import Principal
from databricks_access._account.flows import Flow
from databricks_access._account.models import Group, PrincipalRef
from databricks_access._clock import Clock
from databricks_access._durations import Duration
from databricks_access._durations import seconds as _seconds
from databricks_access._errors import DatabricksAccessError, LeaseError
from databricks_access._leases.events import EventSink
from databricks_access._leases.membership import ChangeNotSentError, MembershipFlows
from databricks_access._leases.reconcile import ReconcileFlows
from databricks_access._leases.results import ExtendResult
from databricks_access._leases.settings import (
    GroupLike,
    TrackerSettings,
)
from databricks_access._leases.settings import (
    after as _after,
)
from databricks_access._leases.settings import (
    error_text as _error_text,
)
from databricks_access._leases.settings import (
    group_id as _group_id,
)
from databricks_access._leases.settings import (
    lease_id as _lease_id,
)
from databricks_access._leases.settings import (
    text as _text,
)
from databricks_access._leases.store import (
    StaleStateError,
    add_lease,
    find_leases,
    get_lease,
    next_due,
    update_lease,
)
from databricks_access._leases.sweep import SweepFlows
from databricks_access._leases.values import (
    TERMINAL_STATES,
    DetailValue,
    EventKind,
    Lease,
    LeaseState,
    new_id,
)
from databricks_access._util.crash import crash_point
from databricks_access._util.html import HtmlList

__all__ = ["TrackerFlows", "build_flows"]

logger = logging.getLogger("databricks_access")

# How often a grant claims its pair again when its read outlived the claim.
_CLAIM_ROUNDS = 3


class TrackerFlows(SweepFlows, ReconcileFlows):
    """Grant, extend, revoke and the queries; sweep and reconcile come from their modules."""

    # -- grant -------------------------------------------------------------------------------

    def check_ttl(self, ttl: Duration) -> float:
        """The TTL in seconds, or a `ConfigError` naming `ttl`."""
        return _seconds(ttl, "ttl", minimum=self.s.min_ttl, maximum=self.s.max_ttl)

    def grant(
        self,
        principal: Principal,
        group: GroupLike,
        *,
        ttl: Duration,
        requester: str,
        reason: str,
        approver: str | None = None,
        request_id: str | None = None,
        principal_name: str | None = None,
    ) -> Flow[Lease]:
        """Add the membership for `ttl`, behind a lease stored first."""
        seconds = self.check_ttl(ttl)
        requester = cast("str", _text(requester, "requester"))
        reason = cast("str", _text(reason, "reason"))
        approver = _text(approver, "approver", optional=True)
        gid = _group_id(group)
        ref = yield from self.m.resolve(principal)
        now = self._now()
        draft = Lease(
            id=new_id("lease"),
            principal=ref,
            group_id=gid,
            state=LeaseState.GRANTING,
            granted_at=now,
            expires_at=_after(now, seconds, "ttl"),
            requester=requester,
            reason=reason,
            approver=approver,
            updated_at=now,
            request_id=request_id,
            group_name=group.display_name if isinstance(group, Group) else None,
            principal_name=principal if isinstance(principal, str) else principal_name,
        )
        token = self._token()
        try:
            lease, fresh = yield from self._grant_intent(draft, seconds, token)
            active = (yield from self._grant_effect(lease, token)) if fresh else lease
        except Exception:
            yield from self._release([draft.pair], token)
            yield from self.deliver()
            raise
        yield from self._release([draft.pair], token)
        yield from self.deliver()
        return active

    def _grant_intent(self, draft: Lease, seconds: float, token: str) -> Flow[tuple[Lease, bool]]:
        """Claim the pair, read it, judge standing and store the `GRANTING` lease.

        When the read outlives the claim and another operation takes the pair over,
        nothing is written: the grant waits for the pair again and judges anew. Returns
        the lease and whether it is new: an access request is granted once, so a lease
        of the same request that holds access already is returned instead (two replicas
        finishing one approval grant it once).
        """
        pair = draft.pair
        for _ in range(_CLAIM_ROUNDS):
            yield from self._claim(pair, token)
            on_pair: list[Lease] = yield from find_leases(
                principal_id=pair.principal_id, group_id=pair.group_id
            )
            for held in on_pair:
                same_request = draft.request_id is not None and held.request_id == draft.request_id
                if same_request and held.holds_access:
                    return held, False
            before = yield from self.api.principal_group_ids(
                draft.principal, deadline=self.patch_deadline
            )
            if pair in (yield from self._renew([pair], token)):
                break
            logger.info("the claim on %s was lost during its read; claiming again", pair)
        else:
            raise LeaseError(f"the claim on {pair} was lost {_CLAIM_ROUNDS} times; try again")
        now = self._now()
        shown = pair.group_id in before
        if not shown:
            # Fresh evidence: whatever standing membership there was is gone.
            yield from self._end_standing(on_pair, "a read showed the member absent")
        lease = attrs.evolve(
            draft,
            granted_at=now,
            expires_at=_after(now, seconds, "ttl"),
            updated_at=now,
            standing=self._standing(shown, on_pair, now, pair),
        )
        yield from add_lease(lease, None)
        crash_point("after_intent_write")
        return lease, True

    def _grant_effect(self, lease: Lease, token: str) -> Flow[Lease]:
        """Send the add of a stored `GRANTING` lease under its claim; store the outcome."""
        pair = lease.pair
        try:
            yield from self._add(pair.group_id, [pair.principal_id], token)
        except ChangeNotSentError:
            # Lost the claim before the add: the lease stays GRANTING, and the operation
            # that holds the pair now (or the next sweep) finishes it.
            raise LeaseError(
                f"lease {lease.id} was stored but its claim on {pair} was lost before the "
                "add was sent; a sweep finishes it"
            ) from None
        except DatabricksAccessError as exc:
            if exc.maybe_applied:
                # The add may have landed before the API failed: undo it as an early
                # revoke (retried until it succeeds), so no membership outlives the
                # failed grant. Standing members and other leases keep theirs.
                noted = attrs.evolve(lease, last_error=_error_text(exc))
                yield from update_lease(
                    noted,
                    expect=(LeaseState.GRANTING,),
                    event=self._event(EventKind.GRANT_FAILED, noted, error=_error_text(exc)),
                )
                yield from self._end_pair(
                    pair, ending_ids={lease.id}, early_by="grant failed", token=token
                )
                raise
            failed = attrs.evolve(
                lease,
                state=LeaseState.GRANT_FAILED,
                last_error=_error_text(exc),
                updated_at=self._now(),
                ended_at=self._now(),
            )
            yield from update_lease(
                failed,
                expect=(LeaseState.GRANTING,),
                event=self._event(EventKind.GRANT_FAILED, failed, error=_error_text(exc)),
            )
            raise
        crash_point("after_patch")
        active = attrs.evolve(lease, state=LeaseState.ACTIVE, updated_at=self._now())
        detail: dict[str, DetailValue] = {"standing": True} if active.standing else {}
        yield from update_lease(
            active,
            expect=(LeaseState.GRANTING,),
            event=self._event(EventKind.GRANTED, active, **detail),
        )
        crash_point("after_activate")
        return attrs.evolve(active, version=active.version + 1)

    def _add(self, gid: str, ids: list[str], token: str) -> Flow[None]:
        failures = yield from self.m.apply(
            {gid: ids}, adding=True, deadline=self.patch_deadline, guard=self._guard(token)
        )
        if failures:
            raise next(iter(failures.values()))

    # -- extend --------------------------------------------------------------------------------

    def extend(self, lease_id: str, by: Duration) -> Flow[ExtendResult]:
        """Push an active lease's expiry out, clamped to `max_ttl` from its grant.

        Under the pair's claim, like every change to a pair, and stored by a
        compare-and-set on the lease's version: an extension is never lost to a sweep
        that read the lease before it, nor answered for a lease that is ending.
        """
        seconds = _seconds(by, "by", positive=True)
        found: Lease | None = yield from get_lease(_lease_id(lease_id))
        if found is None:
            raise LeaseError(f"no lease {lease_id!r}")
        token = self._token()
        yield from self._claim(found.pair, token)
        try:
            result = yield from self._extend_claimed(found.id, seconds)
        except Exception:
            yield from self._release([found.pair], token)
            raise
        yield from self._release([found.pair], token)
        yield from self.deliver()
        return result

    def _extend_claimed(self, lease_id: str, seconds: float) -> Flow[ExtendResult]:
        lease: Lease | None = yield from get_lease(lease_id)
        if lease is None:  # pragma: no cover - leases are never deleted
            raise LeaseError(f"lease {lease_id} disappeared")
        now = self._now()
        if lease.state is not LeaseState.ACTIVE or lease.expires_at <= now:
            state = "expired" if lease.state is LeaseState.ACTIVE else lease.state.value
            raise LeaseError(f"lease {lease.id} is {state}; only active leases can be extended")
        limit = self.s.max_extensions
        if limit is not None and lease.extensions >= limit:
            raise LeaseError(f"lease {lease.id} was already extended {limit} times (the limit)")
        cap = _after(lease.granted_at, self.s.max_ttl, "max_ttl")
        try:
            requested = lease.expires_at + dt.timedelta(seconds=seconds)
        except OverflowError:
            requested = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        clamped = requested > cap
        new_expiry = min(requested, cap)
        if new_expiry <= lease.expires_at:
            return ExtendResult(lease=lease, clamped=clamped, requested_expires_at=requested)
        extended = attrs.evolve(
            lease, expires_at=new_expiry, extensions=lease.extensions + 1, updated_at=now
        )
        detail: dict[str, DetailValue] = {
            "previous_expires_at": lease.expires_at.isoformat(),
            "clamped": clamped,
        }
        try:
            yield from update_lease(
                extended,
                expect=(LeaseState.ACTIVE,),
                event=self._event(EventKind.EXTENDED, extended, **detail),
            )
        except StaleStateError:
            raise LeaseError(f"lease {lease.id} changed meanwhile (it is ending)") from None
        crash_point("after_extend")
        stored = attrs.evolve(extended, version=extended.version + 1)
        return ExtendResult(lease=stored, clamped=clamped, requested_expires_at=requested)

    # -- revoke (early) ------------------------------------------------------------------------

    def revoke(self, lease_id: str, *, by: str | None = None) -> Flow[Lease]:
        """End a lease now; the membership goes unless standing or held by another lease."""
        by = _text(by, "by", optional=True)
        lease: Lease | None = yield from get_lease(_lease_id(lease_id))
        if lease is None:
            raise LeaseError(f"no lease {lease_id!r}")
        if lease.state in TERMINAL_STATES:
            return lease
        token = self._token()
        yield from self._claim(lease.pair, token)
        try:
            report = yield from self._end_pair(
                lease.pair, ending_ids={lease.id}, early_by=by or "requested", token=token
            )
        except Exception:
            yield from self._release([lease.pair], token)
            raise
        yield from self._release([lease.pair], token)
        yield from self.deliver()
        final: Lease | None = yield from get_lease(lease.id)
        if final is None:  # pragma: no cover - leases are never deleted
            raise LeaseError(f"lease {lease.id} disappeared")
        if report.failed:
            raise LeaseError(
                f"lease {lease.id} could not be revoked yet ({final.last_error}); "
                "it is REVOKE_FAILED and will be retried"
            )
        return final

    # -- queries and drift -----------------------------------------------------------------------

    def leases(
        self,
        *,
        principal: PrincipalRef | str | None = None,
        group: GroupLike | None = None,
        state: LeaseState | Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> Flow[list[Lease]]:
        """Stored leases, filtered; oldest first."""
        principal_id = principal.id if isinstance(principal, PrincipalRef) else principal
        group_id = None if group is None else _group_id(group)
        states = [state] if isinstance(state, LeaseState) else state
        found: list[Lease] = yield from find_leases(
            principal_id=principal_id,
            group_id=group_id,
            states=None if states is None else tuple(states),
            limit=limit,
        )
        return HtmlList(found)  # a list that shows as a table in a notebook

    def seconds_until_due(self, idle: float) -> Flow[float]:
        """How long `run()` may sleep: until the next due lease, at most `idle`."""
        due: dt.datetime | None = yield from next_due(
            stuck_after=dt.timedelta(seconds=self.s.claim_ttl)
        )
        if due is None:
            return idle
        return max(0.0, min(idle, (due - self._now()).total_seconds()))


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('t')[2:10]}"


def build_flows(
    membership: MembershipFlows,
    clock: Clock,
    events: EventSink | None,
    *,
    min_ttl: Duration,
    max_ttl: Duration,
    max_extensions: int | None,
    consistency_window: Duration,
    claim_ttl: Duration,
    revoke_retry_interval: Duration,
    owner: str | None,
) -> TrackerFlows:
    settings = TrackerSettings(
        min_ttl=_seconds(min_ttl, "min_ttl"),
        max_ttl=_seconds(max_ttl, "max_ttl"),
        max_extensions=max_extensions,
        consistency_window=_seconds(consistency_window, "consistency_window"),
        claim_ttl=_seconds(claim_ttl, "claim_ttl"),
        revoke_retry_interval=_seconds(revoke_retry_interval, "revoke_retry_interval"),
    )
    settings.check()
    flows = TrackerFlows(membership, clock, settings, owner or _default_owner())
    flows.has_sink = events is not None
    return flows
