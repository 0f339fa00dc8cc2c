"""The lease tracker: time-bound membership that ends on time, even after a crash.

The tracker's logic is written once, as flows. Besides HTTP calls they yield three
effects — a store call, a sleep and an event delivery — that the sync tracker performs
directly and the async tracker awaits (its store calls run in worker threads, so the
event loop never blocks on a database).

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

import asyncio
import datetime as dt
import inspect
import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from databricks_access._account.api import Principal
from databricks_access._account.flows import Flow, collect, concurrently
from databricks_access._account.models import Group, MemberRef, PrincipalRef
from databricks_access._account.scim import check_id
from databricks_access._clock import Clock
from databricks_access._durations import Duration
from databricks_access._durations import seconds as _seconds
from databricks_access._errors import (
    ConfigError,
    DatabricksAccessError,
    LeaseError,
    NotFoundError,
)
from databricks_access._leases.events import EventSink
from databricks_access._leases.membership import ChangeNotSentError, Guard, MembershipFlows
from databricks_access._leases.store import (
    AsyncLeaseStore,
    LeaseStore,
    LeaseUpdate,
    StaleStateError,
    StoreCall,
    add_event,
    add_lease,
    claim_pairs,
    due_leases,
    find_leases,
    get_lease,
    leases_on_pairs,
    mark_delivered,
    next_due,
    pending_events,
    release_pairs,
    renew_pairs,
    threaded,
    update_lease,
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
from databricks_access._util.html import HtmlList, render_html

if TYPE_CHECKING:
    from databricks_access._leases.membership import AsyncMembershipManager, MembershipManager

__all__ = [
    "AsyncLeaseTracker",
    "DriftItem",
    "DriftReport",
    "ExtendResult",
    "LeaseTracker",
    "SweepReport",
    "TrackerFlows",
]

logger = logging.getLogger("databricks_access")

T = TypeVar("T")
GroupLike = Group | str

_MAX_TEXT = 1000
# Due leases handled together: their removals are coalesced per group across the batch.
_SWEEP_BATCH = 10_000
# How often a grant claims its pair again when its read outlived the claim.
_CLAIM_ROUNDS = 3


# -- effects: what a tracker flow asks of its runner besides HTTP ---------------------------
# Store calls are `StoreCall`s, made by the typed wrappers in `_store.py`.


@attrs.frozen
class Sleep(Effect[None]):
    """Wait, by the tracker's clock."""

    seconds: float


@attrs.frozen
class Deliver(Effect[Exception | None]):
    """Hand an event to the sink; the runner answers None or the exception raised."""

    event: AuditEvent


# -- results ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ExtendResult:
    """The outcome of `extend`: the lease as stored, and whether `max_ttl` cut it short.

    Attributes:
        lease: The lease after the extension.
        clamped: The extension asked for more than `max_ttl` allows from the grant time.
        requested_expires_at: The expiry that was asked for.
    """

    _repr_html_ = render_html

    lease: Lease
    clamped: bool
    requested_expires_at: dt.datetime


@attrs.frozen(kw_only=True)
class SweepReport:
    """What one `sweep()` did.

    Attributes:
        revoked: Leases ended, with the membership removed.
        kept: Leases ended while the membership stays (standing, or another lease holds it).
        failed: Leases whose removal failed (now `REVOKE_FAILED`, retried later).
        recovered: Leases a crash left `GRANTING` that this sweep completed.
        skipped: Due leases whose pair another tracker holds the claim on.
        patches: Membership PATCH requests sent.
        events_delivered: Events handed to the sink.
    """

    _repr_html_ = render_html

    revoked: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    recovered: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    patches: int = 0
    events_delivered: int = 0

    @property
    def ended(self) -> int:
        """How many leases this sweep ended (revoked or kept)."""
        return len(self.revoked) + len(self.kept)


@attrs.frozen(kw_only=True)
class DriftItem:
    """One difference between the leases and the account.

    `kind` is `standing` (a member holding no lease) or `vanished` (an active lease whose
    membership is gone).
    """

    _repr_html_ = render_html

    kind: str
    group_id: str
    principal: PrincipalRef | None
    principal_id: str
    lease_id: str | None = None
    display: str | None = None


@attrs.frozen(kw_only=True)
class DriftReport:
    """What `reconcile()` found and, with `apply=True`, what it changed."""

    _repr_html_ = render_html

    standing: tuple[DriftItem, ...] = ()
    vanished: tuple[DriftItem, ...] = ()
    readded: tuple[DriftItem, ...] = ()
    removed: tuple[DriftItem, ...] = ()
    failures: tuple[tuple[DriftItem, str], ...] = ()

    @property
    def clean(self) -> bool:
        """Whether the account matches the leases exactly."""
        return not self.standing and not self.vanished


# -- validation --------------------------------------------------------------------------------


def _text(value: object, field: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty string", field)
    if len(value) > _MAX_TEXT:
        raise ConfigError(f"must be at most {_MAX_TEXT} characters, not {len(value)}", field)
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise ConfigError("must not contain control characters", field)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("must be valid Unicode text (no lone surrogates)", field) from None
    return value


def _group_id(group: GroupLike) -> str:
    if isinstance(group, Group):
        return check_id(group.id, "group")
    if not isinstance(group, str):
        raise ConfigError("must be a Group or a group id", "group")
    return check_id(group, "group")


def _after(start: dt.datetime, seconds: float, field: str) -> dt.datetime:
    """`start` plus `seconds`, or a `ConfigError` naming `field` when that is no date."""
    try:
        return start + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ConfigError(f"is too long: {seconds:g}s from {start.isoformat()}", field) from None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


@attrs.frozen(kw_only=True)
class TrackerSettings:
    """The tracker's tunables, validated together."""

    min_ttl: float = 60.0
    max_ttl: float = 12 * 3600.0
    max_extensions: int | None = None
    consistency_window: float = 300.0
    claim_ttl: float = 120.0
    revoke_retry_interval: float = 300.0

    def check(self) -> None:
        """Raise one `ConfigError` for every setting that does not fit."""
        from databricks_access._errors import ConfigProblem  # noqa: PLC0415

        problems = []
        if not self.min_ttl > 0:
            problems.append(ConfigProblem("min_ttl", "must be positive"))
        if not self.max_ttl >= self.min_ttl:
            problems.append(ConfigProblem("max_ttl", "must be at least min_ttl"))
        if self.max_extensions is not None and self.max_extensions < 0:
            problems.append(ConfigProblem("max_extensions", "must be zero or more"))
        if not self.consistency_window >= 0:
            problems.append(ConfigProblem("consistency_window", "must be zero or more"))
        if not self.claim_ttl >= 10:
            problems.append(ConfigProblem("claim_ttl", "must be at least 10 seconds"))
        if not self.revoke_retry_interval > 0:
            problems.append(ConfigProblem("revoke_retry_interval", "must be positive"))
        if problems:
            raise ConfigError(problems)


# -- the flows ---------------------------------------------------------------------------------


class TrackerFlows:
    """The tracker's logic as flows, shared by `LeaseTracker` and `AsyncLeaseTracker`."""

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

    # -- sweep ---------------------------------------------------------------------------------

    def sweep(self, *, limit: int | None = None) -> Flow[SweepReport]:
        """Revoke what is due, finish what a crash left, retry what failed."""
        token = self._token()
        totals: dict[str, list[str]] = {
            "revoked": [],
            "kept": [],
            "failed": [],
            "recovered": [],
            "skipped": [],
        }
        patches = 0
        seen: set[str] = set()
        processed = 0
        while limit is None or processed < limit:
            now = self._now()
            stuck = now - dt.timedelta(seconds=self.s.claim_ttl)
            want = _SWEEP_BATCH if limit is None else min(_SWEEP_BATCH, limit - processed)
            # Leases whose pair another tracker holds stay due: look past them, so that
            # several replicas work on different pairs instead of waiting on the same ones.
            due: list[Lease] = yield from due_leases(
                now, stuck_before=stuck, limit=want + len(totals["skipped"])
            )
            fresh = [lease for lease in due if lease.id not in seen][:want]
            if not fresh:
                break
            seen.update(lease.id for lease in fresh)
            part = yield from self._sweep_batch(fresh, now, token)
            for key, values in part.items():
                if key == "taken_over":
                    totals["skipped"] += cast("list[str]", values)
                elif key != "patches":
                    totals[key] += cast("list[str]", values)
            patches += cast("int", part["patches"])
            processed += len(fresh) - len(cast("list[str]", part["skipped"]))
        delivered = yield from self.deliver()
        return SweepReport(
            revoked=tuple(totals["revoked"]),
            kept=tuple(totals["kept"]),
            failed=tuple(totals["failed"]),
            recovered=tuple(totals["recovered"]),
            skipped=tuple(totals["skipped"]),
            patches=patches,
            events_delivered=delivered,
        )

    def _sweep_batch(
        self, due: list[Lease], now: dt.datetime, token: str
    ) -> Flow[dict[str, object]]:
        pairs = list(dict.fromkeys(lease.pair for lease in due))
        until = now + dt.timedelta(seconds=self.s.claim_ttl)
        claimed: list[Pair] = yield from claim_pairs(pairs, owner=token, now=now, until=until)
        crash_point("after_claim")
        mine = set(claimed)
        out: dict[str, object] = {
            "skipped": [lease.id for lease in due if lease.pair not in mine],
        }
        try:
            result = yield from self._end_pairs(claimed, now, token)
        except Exception as exc:
            logger.warning(
                "sweeping leases %s failed: %s",
                ", ".join(lease.id for lease in due if lease.pair in mine)[:2000],
                _error_text(exc),
            )
            yield from self._release(claimed, token)
            raise
        yield from self._release(claimed, token)
        out.update(result)
        return out

    def _end_pair(
        self, pair: Pair, *, ending_ids: set[str], early_by: str, token: str
    ) -> Flow[SweepReport]:
        """End chosen leases of one claimed pair now (an early revoke)."""
        on_pair: list[Lease] = yield from find_leases(
            principal_id=pair.principal_id, group_id=pair.group_id
        )
        now = self._now()
        plan = _PairPlan.build(on_pair, now, self.s.claim_ttl, force=ending_ids)
        result = yield from self._execute({pair: plan}, now, early_by=early_by, token=token)
        return SweepReport(
            revoked=tuple(cast("list[str]", result["revoked"])),
            kept=tuple(cast("list[str]", result["kept"])),
            failed=tuple(cast("list[str]", result["failed"])),
        )

    def _end_pairs(
        self, pairs: list[Pair], now: dt.datetime, token: str
    ) -> Flow[dict[str, object]]:
        live = tuple(state for state in LeaseState if state not in TERMINAL_STATES)
        found: list[Lease] = yield from leases_on_pairs(pairs, states=live)
        by_pair: dict[Pair, list[Lease]] = {pair: [] for pair in pairs}
        for lease in found:
            by_pair[lease.pair].append(lease)
        plans = {
            pair: _PairPlan.build(on_pair, now, self.s.claim_ttl)
            for pair, on_pair in by_pair.items()
        }
        return (yield from self._execute(plans, now, early_by=None, token=token))

    def _confirm_removed(self, pairs: set[Pair]) -> Flow[dict[Pair, DatabricksAccessError]]:
        """Confirm removals answered "not a member" by reading their groups.

        That answer is not proof (the service has given it for members). Returns the
        pairs a read still shows.
        """
        failures: dict[Pair, DatabricksAccessError] = {}
        by_group: dict[str, list[Pair]] = {}
        for pair in pairs:
            by_group.setdefault(pair.group_id, []).append(pair)
        for gid, group_pairs in by_group.items():
            try:
                members = yield from self.api.group_member_ids(gid, deadline=self.patch_deadline)
            except NotFoundError:
                continue  # the group itself is gone, and with it the membership
            except DatabricksAccessError as exc:
                failures.update(dict.fromkeys(group_pairs, exc))
                continue
            for pair in group_pairs:
                if pair.principal_id in members:
                    failures[pair] = LeaseError(
                        f"the removal of {pair.principal_id} from group {gid} was answered "
                        "'not a member', but a read still shows the member"
                    )
        return failures

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

    def _execute(
        self,
        plans: dict[Pair, _PairPlan],
        now: dt.datetime,
        *,
        early_by: str | None,
        token: str,
    ) -> Flow[dict[str, object]]:
        lost: set[Pair] = set()

        # 1. Intent: every ending lease becomes REVOKING before anything is sent.
        intents: list[tuple[Lease, LeaseState, AuditEvent | None]] = []
        owners: list[Pair] = []
        for pair, plan in plans.items():
            for lease in plan.ending:
                revoking = attrs.evolve(lease, state=LeaseState.REVOKING, updated_at=now)
                event = None
                if lease.state is LeaseState.ACTIVE and early_by is None:
                    event = self._event(EventKind.EXPIRED, revoking)
                intents.append((revoking, lease.state, event))
                owners.append(pair)
        stored = yield from self._cas_many(intents)
        lost.update(pair for pair, ok in zip(owners, stored, strict=True) if not ok)
        # The ending leases as stored now (their versions counted up).
        current = {
            lease.id: attrs.evolve(lease, version=lease.version + 1)
            for (lease, _, _), ok in zip(intents, stored, strict=True)
            if ok
        }
        crash_point("after_revoking_write")

        # 2. Side effects, coalesced per group: removals, and adds of recovered grants.
        # Each request renews the claims of its pairs first (the guard); a pair whose
        # claim was lost meanwhile is not sent, and left to whoever holds it now.
        removals: dict[str, list[str]] = {}
        adds: dict[str, list[str]] = {}
        for pair, plan in plans.items():
            if pair in lost:
                continue
            if plan.remove:
                removals.setdefault(pair.group_id, []).append(pair.principal_id)
            if plan.recover:
                adds.setdefault(pair.group_id, []).append(pair.principal_id)
        remove_failures: dict[Pair, DatabricksAccessError] = {}
        add_failures: dict[Pair, DatabricksAccessError] = {}
        patches = self.m.count_patches(removals) + self.m.count_patches(adds)
        guard = self._guard(token)
        if removals:
            unproven: set[Pair] = set()
            remove_failures = yield from self.m.apply(
                removals,
                adding=False,
                deadline=self.patch_deadline,
                guard=guard,
                unproven=unproven,
            )
            if unproven:
                remove_failures.update((yield from self._confirm_removed(unproven)))
        if adds:
            add_failures = yield from self.m.apply(
                adds, adding=True, deadline=self.patch_deadline, guard=guard
            )
        if removals or adds:
            crash_point("after_revoke_patch")
        for failures in (remove_failures, add_failures):
            lost.update(p for p, e in failures.items() if isinstance(e, ChangeNotSentError))

        # 3. Outcomes, stored together.
        retry_at = now + dt.timedelta(seconds=self.s.revoke_retry_interval)
        outcomes: list[tuple[Lease, LeaseState, AuditEvent | None]] = []
        buckets: list[list[str] | None] = []
        revoked: list[str] = []
        kept: list[str] = []
        failed: list[str] = []
        recovered: list[str] = []
        at = self._now()
        for pair, plan in plans.items():
            if pair in lost:
                continue
            add_error = add_failures.get(pair)
            for lease in plan.recover:
                if add_error is None:
                    active = attrs.evolve(lease, state=LeaseState.ACTIVE, updated_at=at)
                    event = self._event(EventKind.GRANTED, active, recovered=True)
                    outcomes.append((active, LeaseState.GRANTING, event))
                    buckets.append(recovered)
                else:
                    # Left GRANTING: the next sweep after the claim expiry tries again.
                    retry = attrs.evolve(
                        lease,
                        attempts=lease.attempts + 1,
                        last_error=_error_text(add_error),
                        updated_at=at,
                    )
                    outcomes.append((retry, LeaseState.GRANTING, None))
                    buckets.append(None)
            error = remove_failures.get(pair)
            for read in plan.ending:
                lease = current[read.id]
                if error is not None:
                    failed_lease = attrs.evolve(
                        lease,
                        state=LeaseState.REVOKE_FAILED,
                        attempts=lease.attempts + 1,
                        retry_at=retry_at,
                        last_error=_error_text(error),
                        updated_at=at,
                    )
                    event = self._event(
                        EventKind.REVOKE_FAILED,
                        failed_lease,
                        error=_error_text(error),
                        attempts=failed_lease.attempts,
                    )
                    outcomes.append((failed_lease, LeaseState.REVOKING, event))
                    buckets.append(failed)
                    continue
                done = attrs.evolve(
                    lease, state=LeaseState.REVOKED, updated_at=at, ended_at=at, last_error=None
                )
                ended: dict[str, DetailValue] = {"membership": plan.membership_note}
                if early_by is not None:
                    ended["revoked_by"] = early_by
                # A membership that stays (standing, or held by another lease) was not revoked.
                kind = EventKind.REVOKED if plan.remove else EventKind.ENDED
                outcomes.append((done, LeaseState.REVOKING, self._event(kind, done, **ended)))
                buckets.append(revoked if plan.remove else kept)
        stored = yield from self._cas_many(outcomes)
        for (lease, _, _), bucket, ok in zip(outcomes, buckets, stored, strict=True):
            if ok and bucket is not None:
                bucket.append(lease.id)
        return {
            "revoked": revoked,
            "kept": kept,
            "failed": failed,
            "recovered": recovered,
            "taken_over": [
                lease.id for pair in lost for lease in (*plans[pair].ending, *plans[pair].recover)
            ],
            "patches": patches,
        }

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

    def reconcile(
        self, groups: Iterable[GroupLike], *, apply: bool, remove_standing: bool
    ) -> Flow[DriftReport]:
        """Compare managed groups with the leases; optionally repair."""
        gids = list(dict.fromkeys(_group_id(g) for g in groups))
        listings = [collect(self.api.group_members(g)()) for g in gids]
        members_by_group = yield from concurrently(listings, self.m.concurrency)
        now = self._now()
        horizon = now - dt.timedelta(seconds=self.s.consistency_window)
        standing: list[DriftItem] = []
        vanished: list[DriftItem] = []
        for gid, members in zip(gids, members_by_group, strict=True):
            if isinstance(members, DatabricksAccessError):
                raise members
            leases: list[Lease] = yield from find_leases(group_id=gid)
            holding = {lease.principal.id for lease in leases if lease.state not in TERMINAL_STATES}
            recently_ended = {
                lease.principal.id
                for lease in leases
                if lease.state is LeaseState.REVOKED
                and lease.ended_at is not None
                and lease.ended_at >= horizon
            }
            present: dict[str, MemberRef] = {m.id: m for m in members}
            standing.extend(
                DriftItem(
                    kind="standing",
                    group_id=gid,
                    principal=member.principal,
                    principal_id=member.id,
                    display=member.display,
                )
                for member in present.values()
                if member.id not in holding and member.id not in recently_ended
            )
            for lease in leases:
                settled = lease.updated_at <= horizon
                if (
                    lease.state is LeaseState.ACTIVE
                    and lease.principal.id not in present
                    and settled
                ):
                    vanished.append(
                        DriftItem(
                            kind="vanished",
                            group_id=gid,
                            principal=lease.principal,
                            principal_id=lease.principal.id,
                            lease_id=lease.id,
                        )
                    )
        for item in (*standing, *vanished):
            yield from add_event(_drift_event(item, now))
        readded: list[DriftItem] = []
        removed: list[DriftItem] = []
        failures: list[tuple[DriftItem, str]] = []
        if apply:
            token = self._token()
            readded = yield from self._repair(vanished, adding=True, failures=failures, token=token)
            if remove_standing:
                removed = yield from self._repair(
                    standing, adding=False, failures=failures, token=token
                )
        yield from self.deliver()
        return DriftReport(
            standing=tuple(standing),
            vanished=tuple(vanished),
            readded=tuple(readded),
            removed=tuple(removed),
            failures=tuple(failures),
        )

    def _repair(
        self,
        items: list[DriftItem],
        *,
        adding: bool,
        failures: list[tuple[DriftItem, str]],
        token: str,
    ) -> Flow[list[DriftItem]]:
        """Add (or remove) the memberships of `items`, coalesced; returns those done.

        Under the pairs' claims, and judged again from the store once they are held: a
        lease revoked or expired since the read is not re-added, a member who got a lease
        since the read is not removed. A pair another operation holds is reported as a
        failure, to try again.
        """
        if not items:
            return []
        pairs = list(dict.fromkeys(Pair(item.principal_id, item.group_id) for item in items))
        now = self._now()
        claimed: list[Pair] = yield from claim_pairs(
            pairs, owner=token, now=now, until=self._until()
        )
        try:
            done = yield from self._repair_claimed(items, set(claimed), adding, failures, token)
        except Exception:
            yield from self._release(claimed, token)
            raise
        yield from self._release(claimed, token)
        return done

    def _repair_claimed(
        self,
        items: list[DriftItem],
        claimed: set[Pair],
        adding: bool,
        failures: list[tuple[DriftItem, str]],
        token: str,
    ) -> Flow[list[DriftItem]]:
        found: list[Lease] = yield from leases_on_pairs(list(claimed))
        by_pair: dict[Pair, list[Lease]] = {pair: [] for pair in claimed}
        for lease in found:
            by_pair[lease.pair].append(lease)
        now = self._now()
        horizon = now - dt.timedelta(seconds=self.s.consistency_window)
        eligible: list[DriftItem] = []
        for item in items:
            pair = Pair(item.principal_id, item.group_id)
            if pair not in claimed:
                failures.append((item, "another operation holds the pair; try again"))
                continue
            on_pair = by_pair[pair]
            if adding:
                holds = any(x.state is LeaseState.ACTIVE and x.expires_at > now for x in on_pair)
                if holds:
                    eligible.append(item)
            else:
                recent = any(
                    x.state not in TERMINAL_STATES
                    or (x.ended_at is not None and x.ended_at >= horizon)
                    for x in on_pair
                )
                if not recent and not self.m.recently_written(pair):
                    eligible.append(item)
        changes: dict[str, list[str]] = {}
        for item in eligible:
            changes.setdefault(item.group_id, []).append(item.principal_id)
        if adding:
            # The memberships re-added are ours from now on: no lease of theirs is standing.
            for pair in dict.fromkeys(Pair(i.principal_id, i.group_id) for i in eligible):
                yield from self._end_standing(by_pair[pair], "reconcile re-added the member")
        failed = yield from self.m.apply(
            changes, adding=adding, deadline=self.patch_deadline, guard=self._guard(token)
        )
        done: list[DriftItem] = []
        for item in eligible:
            error = failed.get(Pair(item.principal_id, item.group_id))
            if error is None:
                done.append(item)
            else:
                failures.append((item, _error_text(error)))
        return done


def _drift_event(item: DriftItem, now: dt.datetime) -> AuditEvent:
    return AuditEvent(
        kind=EventKind.DRIFT,
        at=now,
        lease_id=item.lease_id,
        principal=item.principal,
        group_id=item.group_id,
        detail={"drift": item.kind, "principal_id": item.principal_id},
    )


def _lease_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 100:
        raise ConfigError("must be a lease id", "lease_id")
    return value


@attrs.frozen
class _PairPlan:
    """What to do with one claimed pair: which leases end, whether the member goes."""

    ending: tuple[Lease, ...]
    recover: tuple[Lease, ...]
    remove: bool
    membership_note: str

    @classmethod
    def build(
        cls,
        on_pair: Sequence[Lease],
        now: dt.datetime,
        claim_ttl: float,
        force: set[str] | None = None,
    ) -> _PairPlan:
        stuck = now - dt.timedelta(seconds=claim_ttl)
        ending: list[Lease] = []
        recover: list[Lease] = []
        holding: list[Lease] = []
        for lease in on_pair:
            state = lease.state
            if state in TERMINAL_STATES:
                continue
            forced = force is not None and lease.id in force
            if state is LeaseState.GRANTING:
                if lease.updated_at > stuck and not forced:
                    holding.append(lease)  # in flight elsewhere: it holds access
                elif lease.expires_at > now and not forced:
                    recover.append(lease)
                else:
                    ending.append(lease)
            elif state is LeaseState.ACTIVE:
                if forced or (force is None and lease.expires_at <= now):
                    ending.append(lease)
                else:
                    holding.append(lease)
            elif state is LeaseState.REVOKE_FAILED:
                retry_due = (lease.retry_at or lease.updated_at) <= now
                if forced or (force is None and retry_due):
                    ending.append(lease)
            elif state is LeaseState.REVOKING:
                ending.append(lease)
        keepers = [*holding, *recover]
        standing = any(lease.standing for lease in (*ending, *keepers))
        if not ending:
            note = ""
        elif keepers:
            note = "kept: another lease holds it"
        elif standing:
            note = "kept: standing membership"
        else:
            note = "removed"
        remove = bool(ending) and not keepers and not standing
        return cls(tuple(ending), tuple(recover), remove, note)


class _Backoff:
    """The waits of `run()` after failed sweeps: 1 s, doubling, at most `idle` (and 5 min).

    Whatever a sweep raised, library error or not, is logged and the loop goes on: a
    process supervisor restarting a crashed loop would revoke nothing in between.
    """

    def __init__(self, idle: float) -> None:
        self.cap = max(1.0, min(idle, 300.0))
        self.failures = 0

    def failed(self, exc: Exception) -> float:
        self.failures += 1
        wait = min(self.cap, 2.0 ** (self.failures - 1))
        logger.warning(
            "sweep failed (%d in a row), retrying in %.0fs: %s",
            self.failures,
            wait,
            _error_text(exc),
            exc_info=not isinstance(exc, DatabricksAccessError),
        )
        return wait

    def reset(self) -> None:
        self.failures = 0


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('t')[2:10]}"


# -- the facades ---------------------------------------------------------------------------


class LeaseTracker:
    """Time-bound group membership with zero standing privileges.

    Example::

        tracker = da.LeaseTracker(manager, store=da.SqliteLeaseStore("leases.db"))
        lease = tracker.grant("alice@example.com", group, ttl=timedelta(hours=1),
                              requester="alice", reason="INC-1234")
        tracker.sweep()          # revokes whatever is due; run() does it in a loop

    Args:
        manager: The membership manager (and through it, the account client).
        store: Where leases, claims and events live.
        clock: Time for every decision (default: the client's clock).
        events: Where audit events are delivered (they are stored either way).
        min_ttl: The shortest lease (default 60 s).
        max_ttl: The longest lease, extensions included, from its grant (default 12 h).
        max_extensions: How many times a lease may be extended (default: no limit).
        consistency_window: How long reads may lag writes (default 5 min).
        claim_ttl: How long a claim on a pair lasts (default 2 min).
        revoke_retry_interval: The wait between retries of a failed removal (5 min).
        owner: This tracker's name in claims (default: host, process and a random tag).
    """

    def __init__(
        self,
        manager: MembershipManager,
        *,
        store: LeaseStore,
        clock: Clock | None = None,
        events: EventSink | None = None,
        min_ttl: Duration = 60,
        max_ttl: Duration = dt.timedelta(hours=12),
        max_extensions: int | None = None,
        consistency_window: Duration = dt.timedelta(minutes=5),
        claim_ttl: Duration = dt.timedelta(minutes=2),
        revoke_retry_interval: Duration = dt.timedelta(minutes=5),
        owner: str | None = None,
    ) -> None:
        self.manager = manager
        self.store = store
        self.clock = clock or manager.client.clock
        self.events = events
        self.flows = _flows(
            manager._flows,  # noqa: SLF001 - the tracker drives the manager's flows
            self.clock,
            events,
            min_ttl=min_ttl,
            max_ttl=max_ttl,
            max_extensions=max_extensions,
            consistency_window=consistency_window,
            claim_ttl=claim_ttl,
            revoke_retry_interval=revoke_retry_interval,
            owner=owner,
        )
        self._driver = manager.client._driver  # noqa: SLF001

    def _effect(self, step: Effect[Any]) -> object:
        if isinstance(step, StoreCall):
            return step.call(self.store)
        if isinstance(step, Sleep):
            self.clock.sleep(step.seconds)
            return None
        if isinstance(step, Deliver):
            try:
                cast("EventSink", self.events).emit(step.event)
            except Exception as exc:  # noqa: BLE001 - a sink's failure must not lose events
                return exc
            return None
        raise TypeError(f"unknown effect {step!r}")

    def _run(self, flow: Flow[T]) -> T:
        return self._driver.run(flow, self._effect)

    def grant(
        self,
        principal: Principal,
        group: GroupLike,
        *,
        ttl: Duration,
        requester: str,
        reason: str,
        approver: str | None = None,
    ) -> Lease:
        """Grant membership for `ttl`; the lease is stored before the membership is added."""
        return self._run(
            self.flows.grant(
                principal, group, ttl=ttl, requester=requester, reason=reason, approver=approver
            )
        )

    def extend(self, lease_id: str, by: Duration) -> ExtendResult:
        """Extend an active lease, clamped to `max_ttl` from its grant."""
        return self._run(self.flows.extend(lease_id, by))

    def revoke(self, lease_id: str, *, by: str | None = None) -> Lease:
        """End a lease now (idempotent); returns the lease as stored."""
        return self._run(self.flows.revoke(lease_id, by=by))

    def sweep(self, *, limit: int | None = None) -> SweepReport:
        """Revoke what is due, finish interrupted work, retry failures; deliver events."""
        return self._run(self.flows.sweep(limit=limit))

    def leases(
        self,
        *,
        principal: PrincipalRef | str | None = None,
        group: GroupLike | None = None,
        state: LeaseState | Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """Stored leases, filtered by principal id, group and state."""
        return self._run(
            self.flows.leases(principal=principal, group=group, state=state, limit=limit)
        )

    def reconcile(
        self, groups: Iterable[GroupLike], *, apply: bool = False, remove_standing: bool = False
    ) -> DriftReport:
        """Report drift in managed groups; with `apply`, re-add vanished memberships."""
        return self._run(self.flows.reconcile(groups, apply=apply, remove_standing=remove_standing))

    def deliver_events(self) -> int:
        """Deliver queued events to the sink now; returns how many."""
        return self._run(self.flows.deliver())

    def run(self, stop: threading.Event | None = None, *, idle: float = 30.0) -> None:
        """Sweep whenever a lease is due, until `stop` is set.

        Sleeps until the next due lease (never polling on a fixed period) and wakes early
        when the store changes, such as a new grant in another thread or process.
        Errors of a sweep are logged and retried; nothing is lost.
        """
        idle = _seconds(idle, "idle", positive=True)
        stop = stop or threading.Event()
        backoff = _Backoff(idle)
        while not stop.is_set():
            try:
                self.sweep()
                wait = self._run(self.flows.seconds_until_due(idle))
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one sweep
                wait = backoff.failed(exc)
            else:
                backoff.reset()
            remaining = wait
            start = self.clock.monotonic()
            while remaining > 0 and not stop.is_set():
                if self.store.wait_for_change(min(remaining, 0.5)):
                    break
                remaining = wait - (self.clock.monotonic() - start)

    def __repr__(self) -> str:
        return f"LeaseTracker(store={self.store!r}, owner={self.flows.owner!r})"


class AsyncLeaseTracker:
    """`LeaseTracker` on asyncio: the same methods, awaited.

    Store calls run in worker threads (or natively, for an async store), so the event
    loop never blocks on a database.
    """

    def __init__(
        self,
        manager: AsyncMembershipManager,
        *,
        store: LeaseStore | AsyncLeaseStore,
        clock: Clock | None = None,
        events: EventSink | None = None,
        min_ttl: Duration = 60,
        max_ttl: Duration = dt.timedelta(hours=12),
        max_extensions: int | None = None,
        consistency_window: Duration = dt.timedelta(minutes=5),
        claim_ttl: Duration = dt.timedelta(minutes=2),
        revoke_retry_interval: Duration = dt.timedelta(minutes=5),
        owner: str | None = None,
    ) -> None:
        self.manager = manager
        self.store = threaded(store)
        self.clock = clock or manager.client.clock
        self.events = events
        self.flows = _flows(
            manager._flows,  # noqa: SLF001
            self.clock,
            events,
            min_ttl=min_ttl,
            max_ttl=max_ttl,
            max_extensions=max_extensions,
            consistency_window=consistency_window,
            claim_ttl=claim_ttl,
            revoke_retry_interval=revoke_retry_interval,
            owner=owner,
        )
        self._driver = manager.client._driver  # noqa: SLF001

    async def _effect(self, step: Effect[Any]) -> object:
        if isinstance(step, StoreCall):
            answer = step.call(self.store)
            return await answer if inspect.isawaitable(answer) else answer
        if isinstance(step, Sleep):
            await self.clock.asleep(step.seconds)
            return None
        if isinstance(step, Deliver):
            try:
                await asyncio.to_thread(cast("EventSink", self.events).emit, step.event)
            except Exception as exc:  # noqa: BLE001 - a sink's failure must not lose events
                return exc
            return None
        raise TypeError(f"unknown effect {step!r}")

    async def _run(self, flow: Flow[T]) -> T:
        return await self._driver.run(flow, self._effect)

    async def grant(
        self,
        principal: Principal,
        group: GroupLike,
        *,
        ttl: Duration,
        requester: str,
        reason: str,
        approver: str | None = None,
    ) -> Lease:
        """Grant membership for `ttl`; the lease is stored before the membership is added."""
        return await self._run(
            self.flows.grant(
                principal, group, ttl=ttl, requester=requester, reason=reason, approver=approver
            )
        )

    async def extend(self, lease_id: str, by: Duration) -> ExtendResult:
        """Extend an active lease, clamped to `max_ttl` from its grant."""
        return await self._run(self.flows.extend(lease_id, by))

    async def revoke(self, lease_id: str, *, by: str | None = None) -> Lease:
        """End a lease now (idempotent); returns the lease as stored."""
        return await self._run(self.flows.revoke(lease_id, by=by))

    async def sweep(self, *, limit: int | None = None) -> SweepReport:
        """Revoke what is due, finish interrupted work, retry failures; deliver events."""
        return await self._run(self.flows.sweep(limit=limit))

    async def leases(
        self,
        *,
        principal: PrincipalRef | str | None = None,
        group: GroupLike | None = None,
        state: LeaseState | Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """Stored leases, filtered by principal id, group and state."""
        return await self._run(
            self.flows.leases(principal=principal, group=group, state=state, limit=limit)
        )

    async def reconcile(
        self, groups: Iterable[GroupLike], *, apply: bool = False, remove_standing: bool = False
    ) -> DriftReport:
        """Report drift in managed groups; with `apply`, re-add vanished memberships."""
        return await self._run(
            self.flows.reconcile(groups, apply=apply, remove_standing=remove_standing)
        )

    async def deliver_events(self) -> int:
        """Deliver queued events to the sink now; returns how many."""
        return await self._run(self.flows.deliver())

    async def run(self, stop: asyncio.Event | None = None, *, idle: float = 30.0) -> None:
        """Sweep whenever a lease is due, until `stop` is set (see `LeaseTracker.run`)."""
        idle = _seconds(idle, "idle", positive=True)
        stop = stop or asyncio.Event()
        backoff = _Backoff(idle)
        while not stop.is_set():
            try:
                await self.sweep()
                wait = await self._run(self.flows.seconds_until_due(idle))
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one sweep
                wait = backoff.failed(exc)
            else:
                backoff.reset()
            remaining = wait
            start = self.clock.monotonic()
            while remaining > 0 and not stop.is_set():
                if await self.store.wait_for_change(min(remaining, 0.5)):
                    break
                remaining = wait - (self.clock.monotonic() - start)

    def __repr__(self) -> str:
        return f"AsyncLeaseTracker(store={self.store!r}, owner={self.flows.owner!r})"


def _flows(
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
