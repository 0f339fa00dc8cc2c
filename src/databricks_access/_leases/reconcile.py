"""Drift: members of managed groups without a lease, leases whose membership vanished."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from databricks_access._account.flows import Flow, collect, concurrently
from databricks_access._account.models import MemberRef
from databricks_access._errors import DatabricksAccessError
from databricks_access._leases.base import FlowBase
from databricks_access._leases.results import DriftItem, DriftReport
from databricks_access._leases.settings import GroupLike
from databricks_access._leases.settings import error_text as _error_text
from databricks_access._leases.settings import group_id as _group_id
from databricks_access._leases.store import add_event, claim_pairs, find_leases, leases_on_pairs
from databricks_access._leases.values import (
    TERMINAL_STATES,
    AuditEvent,
    EventKind,
    Lease,
    LeaseState,
    Pair,
)

__all__ = ["ReconcileFlows"]


class ReconcileFlows(FlowBase):
    """`reconcile()`, on top of the shared steps."""

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
