"""Ending leases: the sweep of what is due, and the early end of chosen leases.

A sweep batch claims all its pairs at once, right after reading what is due. Under a
PATCH rate limit it then runs one flow per group (groups concurrently, bounded): each
stores its ending leases `REVOKING` just before its own removal, so the first PATCH is
not held back by every other group's store work; otherwise the batch is one flow.
Removals are coalesced per group, each PATCH renewing its pairs' claims first, and a
group's outcomes are stored as soon as its PATCH is answered. Under the client's rate
limits a removal waits for its PATCH slot first, then folds in the group's leases that
fell due meanwhile (claimed and stored `REVOKING` before it is sent), so they leave in
the same PATCH.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import cast

import attrs

from databricks_access._account.flows import Flow, concurrently
from databricks_access._errors import DatabricksAccessError, LeaseError, NotFoundError
from databricks_access._leases.base import FlowBase
from databricks_access._leases.membership import ChangeNotSentError, Fold
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
# Due leases a removal waiting for its slot looks through for its group's.
_FOLD_SCAN = 2_000
_LIVE = tuple(state for state in LeaseState if state not in TERMINAL_STATES)


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
            # A sweep with a limit ends no more than it was asked to: no folding.
            part = yield from self._sweep_batch(fresh, now, token, fold=limit is None)
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
        self, due: list[Lease], now: dt.datetime, token: str, *, fold: bool
    ) -> Flow[dict[str, object]]:
        """End a batch of due leases, one flow per group (groups concurrently, bounded).

        The batch's pairs are claimed together, at once: a claim taken later, after
        another replica has ended the pair's leases, would name a pair no sweep looks
        at again, and a crash then would leave it behind. Each group's flow then
        stores its intent just before its own removal, so the first PATCH goes out
        while later groups' store work is still to come, and that work overlaps the
        wait for earlier groups' PATCH slots. What is due is judged once, at `now`, for
        the whole batch.

        Without waits for PATCH slots (a client without a PATCH rate limit) there is
        nothing for the store work to overlap, and a sweep with a `limit` folds nothing:
        then the batch runs as one flow, its intents stored in one transaction and its
        outcomes together after every removal is answered, so a crash part-way leaves
        every claimed pair still due, for the replica that takes its claims over.
        """
        per_group = fold and self.m.paced

        def part(pair: Pair) -> str:
            """The flow of the batch that ends `pair`'s leases."""
            return pair.group_id if per_group else ""

        pairs = list(dict.fromkeys(lease.pair for lease in due))
        until = now + dt.timedelta(seconds=self.s.claim_ttl)
        claimed: list[Pair] = yield from claim_pairs(pairs, owner=token, now=now, until=until)
        crash_point("after_claim")
        mine = set(claimed)
        by_part: dict[str, list[Pair]] = {}
        for pair in claimed:
            by_part.setdefault(part(pair), []).append(pair)
        # A removal never folds in the batch's own pairs, held or not.
        planned: dict[str, set[Pair]] = {}
        for pair in pairs:
            planned.setdefault(part(pair), set()).add(pair)
        due_in: dict[str, list[Lease]] = {}
        skipped: list[str] = []
        for lease in due:
            if lease.pair in mine:
                due_in.setdefault(part(lease.pair), []).append(lease)
            else:
                skipped.append(lease.id)
        pending = _Pending(len(due))
        answers = yield from concurrently(
            [
                self._sweep_group(
                    group,
                    due_in[key],
                    now,
                    token,
                    folding=_Folding(planned=planned[key], pending=pending) if fold else None,
                )
                for key, group in by_part.items()
            ],
            self.m.concurrency,
        )
        out: dict[str, object] = {
            "patches": 0,
            "skipped": skipped,
        }
        failure: BaseException | None = None
        for answer in answers:
            if isinstance(answer, BaseException):
                failure = failure or answer
                continue
            for key, values in answer.items():
                if key == "patches":
                    out[key] = cast("int", out[key]) + cast("int", values)
                else:
                    out[key] = [*cast("list[str]", out.get(key, [])), *cast("list[str]", values)]
        if failure is not None:
            raise failure
        for key in ("revoked", "kept", "failed", "recovered", "taken_over"):
            out.setdefault(key, [])
        return out

    def _sweep_group(
        self,
        claimed: list[Pair],
        due: list[Lease],
        now: dt.datetime,
        token: str,
        *,
        folding: _Folding | None,
    ) -> Flow[dict[str, object]]:
        """One group's part of a batch: end the due leases of its claimed pairs.

        Its claims (and those its removal folded in) are released when it ends, however
        it ends.
        """
        try:
            result = yield from self._end_pairs(claimed, now, token, folding)
        except Exception as exc:
            logger.warning(
                "sweeping leases %s failed: %s",
                ", ".join(lease.id for lease in due)[:2000],
                _error_text(exc),
            )
            yield from self._release(self._held(claimed, folding), token)
            raise
        finally:
            if folding is not None:
                folding.pending.count -= len(due)
        yield from self._release(self._held(claimed, folding), token)
        return result

    @staticmethod
    def _held(claimed: list[Pair], folding: _Folding | None) -> list[Pair]:
        return [*claimed, *(folding.claimed if folding is not None else ())]

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
        self, pairs: list[Pair], now: dt.datetime, token: str, folding: _Folding | None
    ) -> Flow[dict[str, object]]:
        plans = yield from self._plan(pairs, now)
        return (yield from self._execute(plans, now, early_by=None, token=token, folding=folding))

    def _plan(self, pairs: list[Pair], now: dt.datetime) -> Flow[dict[Pair, _PairPlan]]:
        """What to do with each claimed pair, from its live leases as stored."""
        found: list[Lease] = yield from leases_on_pairs(pairs, states=_LIVE)
        by_pair: dict[Pair, list[Lease]] = {pair: [] for pair in pairs}
        for lease in found:
            by_pair[lease.pair].append(lease)
        return {
            pair: _PairPlan.build(on_pair, now, self.s.claim_ttl)
            for pair, on_pair in by_pair.items()
        }

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
        folding: _Folding | None = None,
    ) -> Flow[dict[str, object]]:
        # 1. Intent: every ending lease becomes REVOKING before anything is sent.
        current, lost = yield from self._intend(plans, now, early_by)
        crash_point("after_revoking_write")

        # 2. Removals: one flow per group, groups concurrently (bounded). Each stores its
        # outcomes as soon as its group's PATCH is answered, so a lease's end is recorded
        # when its membership went, not when the slowest group's did.
        removals: dict[str, list[Pair]] = {}
        for pair, plan in plans.items():
            if pair not in lost and plan.remove:
                removals.setdefault(pair.group_id, []).append(pair)
        totals: dict[str, list[str]] = {"revoked": [], "kept": [], "failed": [], "recovered": []}
        deferred: dict[Pair, _PairPlan] = {}
        remove_failures: dict[Pair, DatabricksAccessError] = {}
        patches = self.m.count_patches(
            {gid: [pair.principal_id for pair in group] for gid, group in removals.items()}
        )
        if removals:
            answers = yield from concurrently(
                [
                    self._remove_group(
                        gid,
                        group,
                        plans=plans,
                        current=current,
                        lost=lost,
                        early_by=early_by,
                        token=token,
                        folding=folding,
                    )
                    for gid, group in removals.items()
                ],
                self.m.concurrency,
            )
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
                ready, failures, done = answer
                if done is None:
                    deferred.update(ready)
                    remove_failures.update(failures)
                else:
                    for key, ids in done.items():
                        totals[key] += ids

        # 3. Adds of recovered grants (coalesced per group), then every other outcome.
        adds: dict[str, list[str]] = {}
        for pair, plan in plans.items():
            if pair not in lost and plan.recover:
                adds.setdefault(pair.group_id, []).append(pair.principal_id)
        patches += self.m.count_patches(adds)
        add_failures: dict[Pair, DatabricksAccessError] = {}
        if adds:
            add_failures = yield from self.m.apply(
                adds, adding=True, deadline=self.patch_deadline, guard=self._guard(token)
            )
            crash_point("after_revoke_patch")
            lost.update(p for p, e in add_failures.items() if isinstance(e, ChangeNotSentError))
        rest = {pair: plan for pair, plan in plans.items() if pair not in lost and not plan.remove}
        rest.update(deferred)
        part = yield from self._store_outcomes(
            rest,
            current,
            add_failures=add_failures,
            remove_failures=remove_failures,
            early_by=early_by,
            now=now,
        )
        for key, ids in part.items():
            totals[key] += ids
        return {
            **totals,
            "taken_over": [
                lease.id for pair in lost for lease in (*plans[pair].ending, *plans[pair].recover)
            ],
            "patches": patches,
        }

    def _intend(
        self, plans: dict[Pair, _PairPlan], now: dt.datetime, early_by: str | None
    ) -> Flow[tuple[dict[str, Lease], set[Pair]]]:
        """Store the ending leases `REVOKING`; returns them as stored, and the pairs lost.

        A pair is lost when one of its leases changed meanwhile: another tracker took it
        over after our claim expired, and it is theirs now.
        """
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
        lost = {pair for pair, ok in zip(owners, stored, strict=True) if not ok}
        # The ending leases as stored now (their versions counted up).
        current = {
            lease.id: attrs.evolve(lease, version=lease.version + 1)
            for (lease, _, _), ok in zip(intents, stored, strict=True)
            if ok
        }
        return current, lost

    def _remove_group(
        self,
        gid: str,
        group: list[Pair],
        *,
        plans: dict[Pair, _PairPlan],
        current: dict[str, Lease],
        lost: set[Pair],
        early_by: str | None,
        token: str,
        folding: _Folding | None,
    ) -> Flow[_GroupDone]:
        """Remove one group's members (with what falls due meanwhile).

        Each request renews the claims of its pairs first (the guard); a pair whose claim
        was lost meanwhile is not sent, and left to whoever holds it now. When a request
        waited for its slot, the group's outcomes are stored at once (a lease's end is
        recorded when its membership went, not when the slowest group's did); otherwise
        they are returned, with the failures, to be stored with the batch's others.
        """
        unproven: set[Pair] = set()
        failures = yield from self.m.apply(
            {gid: [pair.principal_id for pair in group]},
            adding=False,
            deadline=self.patch_deadline,
            guard=self._guard(token),
            unproven=unproven,
            fold=None if folding is None else self._fold(folding, token),
        )
        if unproven:
            failures.update((yield from self._confirm_removed(unproven)))
        crash_point("after_revoke_patch")
        unsent = {p for p, e in failures.items() if isinstance(e, ChangeNotSentError)}
        lost.update(unsent & set(group))
        mine = {pair: plans[pair] for pair in group}
        stored = current
        if folding is not None:
            mine.update(folding.plans.pop(gid, {}))
            stored = {**current, **folding.current}
        ready = {pair: plan for pair, plan in mine.items() if pair not in unsent}
        if folding is None or gid not in folding.waited:
            # Nothing waited for a slot: the outcomes are stored with the batch's others,
            # in one transaction.
            return ready, failures, None
        done = yield from self._store_outcomes(
            ready, stored, add_failures={}, remove_failures=failures, early_by=early_by, now=None
        )
        return ready, failures, done

    def _fold(self, folding: _Folding, token: str) -> Fold:
        """Leases of a group that fell due while its PATCH waited for a slot, to join it.

        Each is claimed and its pair planned as a sweep plans it; its leases are stored
        `REVOKING` before the PATCH, and their outcomes after it, with the group's.
        Pairs another operation holds, or that need more than a removal (a grant to
        finish), are left to the next sweep.
        """

        def fold(gid: str, ids: list[str]) -> Flow[list[str]]:
            folding.waited.add(gid)
            room = self.m.batch_size - len(ids)
            if room <= 0:
                return []
            now = self._now()
            stuck = now - dt.timedelta(seconds=self.s.claim_ttl)
            # The batch's leases not yet stored `REVOKING` come first in the scan: look
            # past them.
            scan = _FOLD_SCAN + max(folding.pending.count, 0)
            due: list[Lease] = yield from due_leases(now, stuck_before=stuck, limit=scan)
            wanted = [
                pair
                for pair in dict.fromkeys(lease.pair for lease in due if lease.group_id == gid)
                if pair not in folding.planned
            ][:room]
            if not wanted:
                return []
            folding.planned.update(wanted)
            until = now + dt.timedelta(seconds=self.s.claim_ttl)
            claimed: list[Pair] = yield from claim_pairs(wanted, owner=token, now=now, until=until)
            folding.claimed.extend(claimed)
            if not claimed:
                return []
            plans = yield from self._plan(claimed, now)
            plans = {p: plan for p, plan in plans.items() if plan.ending and not plan.recover}
            current, lost = yield from self._intend(plans, now, None)
            mine = {pair: plan for pair, plan in plans.items() if pair not in lost}
            folding.plans.setdefault(gid, {}).update(mine)
            folding.current.update(current)
            return [pair.principal_id for pair, plan in mine.items() if plan.remove]

        return fold

    def _store_outcomes(
        self,
        plans: dict[Pair, _PairPlan],
        current: dict[str, Lease],
        *,
        add_failures: dict[Pair, DatabricksAccessError],
        remove_failures: dict[Pair, DatabricksAccessError],
        early_by: str | None,
        now: dt.datetime | None,
    ) -> Flow[dict[str, list[str]]]:
        """Store what became of the pairs' leases, together; returns their ids by outcome."""
        at = self._now()
        retry_at = (now or at) + dt.timedelta(seconds=self.s.revoke_retry_interval)
        outcomes: list[tuple[Lease, LeaseState, AuditEvent | None]] = []
        buckets: list[list[str] | None] = []
        revoked: list[str] = []
        kept: list[str] = []
        failed: list[str] = []
        recovered: list[str] = []
        for pair, plan in plans.items():
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
        return {"revoked": revoked, "kept": kept, "failed": failed, "recovered": recovered}


@attrs.define
class _Pending:
    """Due leases of a sweep batch whose group's flow has not finished yet."""

    count: int


@attrs.define
class _Folding:
    """One group's folding in a sweep batch: what its removal took in while waiting."""

    planned: set[Pair]
    """Pairs planned already (the group's own, and those folded): never folded again."""
    pending: _Pending
    claimed: list[Pair] = attrs.Factory(list)
    plans: dict[str, dict[Pair, _PairPlan]] = attrs.Factory(dict)
    """Folded pairs' plans by group, until the group's outcomes are stored."""
    current: dict[str, Lease] = attrs.Factory(dict)
    """Folded ending leases as stored `REVOKING`."""
    waited: set[str] = attrs.Factory(set)
    """Groups whose removal waited for a PATCH slot."""


_GroupDone = tuple[
    dict[Pair, "_PairPlan"], dict[Pair, DatabricksAccessError], dict[str, list[str]] | None
]
"""A group's removal: its pairs' plans, the failures, and the outcomes if stored already."""


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
