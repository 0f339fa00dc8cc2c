"""The lease tracker: time-bound membership that ends on time, even after a crash.

`LeaseTracker` and `AsyncLeaseTracker` are thin facades: they run the flows of
`tracker_flows.py` and perform their effects (store calls, sleeps, deliveries), the
sync one directly and the async one awaited (its store calls run in worker threads, so
the event loop never blocks on a database).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from databricks_access._account.api import Principal
from databricks_access._account.flows import Flow
from databricks_access._account.models import PrincipalRef
from databricks_access._clock import Clock
from databricks_access._durations import Duration
from databricks_access._durations import seconds as _seconds
from databricks_access._errors import DatabricksAccessError
from databricks_access._leases.base import Deliver, Sleep
from databricks_access._leases.events import EventSink
from databricks_access._leases.results import DriftReport, ExtendResult, SweepReport
from databricks_access._leases.settings import GroupLike
from databricks_access._leases.settings import error_text as _error_text
from databricks_access._leases.store import AsyncLeaseStore, LeaseStore, StoreCall, threaded
from databricks_access._leases.tracker_flows import build_flows as _flows
from databricks_access._leases.values import Lease, LeaseState
from databricks_access._sansio import Effect

if TYPE_CHECKING:
    from databricks_access._leases.membership import AsyncMembershipManager, MembershipManager

__all__ = ["AsyncLeaseTracker", "LeaseTracker"]

logger = logging.getLogger("databricks_access")

T = TypeVar("T")


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
            manager._flows,  # the tracker drives the manager's flows
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
        self._driver = manager.client._driver

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
            manager._flows,
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
        self._driver = manager.client._driver

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
