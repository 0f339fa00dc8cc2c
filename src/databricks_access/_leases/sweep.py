"""Ending leases: the sweep of what is due, and the early end of chosen leases.

Every ending lease becomes `REVOKING` before anything is sent; removals are coalesced
per group, each PATCH renewing its pairs' claims first; outcomes are stored together.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import cast

import attrs

from databricks_access._account.flows import Flow
from databricks_access._errors import DatabricksAccessError, LeaseError, NotFoundError
from databricks_access._leases.base import FlowBase
from databricks_access._leases.membership import ChangeNotSentError
from databricks_access._leases.results import SweepReport
from databricks_access._leases.settings import error_text as _error_text
from databricks_access._leases.store import (
    claim_pairs,
    due_leases,
    find_leases,
    leases_on_pairs,
)
from databricks_access._leases.values import (
    TERMINAL_STATES,
    AuditEvent,
    DetailValue,
    EventKind,
    Lease,
    LeaseState,
    Pair,
)
from databricks_access._util.crash import crash_point

__all__ = ["SweepFlows"]

logger = logging.getLogger("databricks_access")

# Due leases handled together: their removals are coalesced per group across the batch.
_SWEEP_BATCH = 10_000


class SweepFlows(FlowBase):
    """`sweep()` and the early end of leases, on top of the shared steps."""

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
