"""Self-service access requests: submit, approve (never by oneself), deny, cancel, expire.

A request is stored `PENDING` with its approvers resolved through the integration
(resource owner first, integration owners as the fallback), after the group and the
principal were found in the account. Approval refuses the principal themself and the
requester, judged on resolved identity (ids, not spelling), then checks the approver
against a fresh resolution (directory changes show without a restart): only an answer
of exactly `True` is a yes. It stores `APPROVED`, then grants through the lease tracker
with the approver recorded on the lease. Every transition writes an audit event.

The seam to the integration is typed: `AccessRequests` takes an integration with sync
answers (`IntegrationLike`, such as `Integration`); `AsyncAccessRequests` awaits an
async one (`AsyncIntegrationLike`, such as `AsyncIntegration`) or runs a sync one in a
worker thread. A sync `AccessRequests` given an async integration is refused at
construction: its answers would be coroutines, never awaited.

A grant that fails with a transient error (throttling, a server error, the network, a
busy store) leaves the request `APPROVED` without a lease; `sweep()` (and the `run()`
loop) tries again with exponential backoff until the grant succeeds, the request
expires, or a definitive error makes it `FAILED`. A crash between approval and grant is
finished the same way.

The lifecycle itself is I/O-free (`RequestFlows`, in `_integration.request_flows`); the
two facades here run it and answer its questions to the integration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import threading
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, TypeVar, cast

from databricks_access._account.api import Principal
from databricks_access._account.flows import Flow
from databricks_access._account.models import Group
from databricks_access._catalog.summary import DescribeUnlocks, adescribe, describe
from databricks_access._durations import Duration
from databricks_access._durations import seconds as _seconds
from databricks_access._errors import ConfigError, DatabricksAccessError
from databricks_access._integration.approvers import Approvers
from databricks_access._integration.request_flows import (
    CheckApprover,
    RequestFlows,
    RequestSweep,
    ResolveApprovers,
)
from databricks_access._leases.tracker import AsyncLeaseTracker, LeaseTracker
from databricks_access._leases.values import AccessRequest, RequestState
from databricks_access._sansio import Effect

if TYPE_CHECKING:
    from databricks_access._catalog.reader import AsyncCatalogReader, CatalogReader

__all__ = ["AccessRequests", "AsyncAccessRequests", "AsyncIntegrationLike", "IntegrationLike"]

logger = logging.getLogger("databricks_access")

T = TypeVar("T")


class IntegrationLike(Protocol):
    """What `AccessRequests` needs of an integration: sync answers (`Integration`)."""

    @property
    def custom_access_details(self) -> str | None:
        """Text shown to people asking for access."""
        ...

    def approvers_for(self, group: Group | str) -> Approvers:
        """The approvers of a group and where they came from."""
        ...

    def is_approver(self, identity: str, approvers: Approvers) -> bool:
        """Whether `identity` may approve, given `approvers`."""
        ...


class AsyncIntegrationLike(Protocol):
    """What `AsyncAccessRequests` awaits of an async integration (`AsyncIntegration`)."""

    @property
    def custom_access_details(self) -> str | None:
        """Text shown to people asking for access."""
        ...

    def approvers_for(self, group: Group | str) -> Awaitable[Approvers]:
        """The approvers of a group and where they came from."""
        ...

    def is_approver(self, identity: str, approvers: Approvers) -> Awaitable[bool]:
        """Whether `identity` may approve, given `approvers`."""
        ...


def _integration_kind(integration: IntegrationLike | AsyncIntegrationLike) -> bool:
    """Whether the integration answers asynchronously; `ConfigError` if it is no integration."""
    methods: tuple[object, ...] = ()
    with contextlib.suppress(AttributeError):
        details = integration.custom_access_details
        if details is None or isinstance(details, str):
            methods = (integration.approvers_for, integration.is_approver)
    if not methods or not all(callable(method) for method in methods):
        raise ConfigError(
            "must be an integration with custom_access_details (text or None), "
            "approvers_for() and is_approver(), not "
            f"{type(integration).__name__}",
            "integration",
        )
    kinds = {inspect.iscoroutinefunction(method) for method in methods}
    if len(kinds) > 1:
        raise ConfigError(
            "mixes an async and a sync method among approvers_for() and is_approver(); "
            "both must be sync (Integration) or both async (AsyncIntegration)",
            "integration",
        )
    return kinds.pop()


def _is_async_integration(
    integration: AsyncIntegrationLike | IntegrationLike,
) -> TypeGuard[AsyncIntegrationLike]:
    return _integration_kind(integration)


def _settings(
    pending_ttl: Duration, retry_delay: Duration, max_retry_delay: Duration
) -> tuple[float, float, float]:
    values = []
    for value, field in (
        (pending_ttl, "pending_ttl"),
        (retry_delay, "retry_delay"),
        (max_retry_delay, "max_retry_delay"),
    ):
        seconds = _seconds(value, field)
        if seconds <= 0:
            raise ConfigError("must be positive", field)
        values.append(seconds)
    if values[2] < values[1]:
        raise ConfigError("must be at least retry_delay", "max_retry_delay")
    return values[0], values[1], values[2]


class AccessRequests:
    """Self-service access requests with approval, on a `LeaseTracker`.

    Example::

        requests = da.AccessRequests(tracker, integration)
        req = requests.submit("alice@example.com", group, ttl=timedelta(hours=1),
                              reason="INC-1234", requester="alice@example.com")
        requests.approve(req.id, approver="bob@example.com")   # grants the lease

    Args:
        tracker: The lease tracker that grants approved requests.
        integration: Resolves each group's approvers and checks an approver, with sync
            answers: an `Integration` (an `AsyncIntegration` belongs with
            `AsyncAccessRequests`).
        pending_ttl: How long a request waits for a decision (default one day); from
            its approval, also how long a grant that meets transient errors is retried.
        retry_delay: The wait before retrying a grant that failed transiently (default
            30 s); it doubles with each failure.
        max_retry_delay: The longest wait between retries (default 10 min).
        catalog: A `CatalogReader`: each request then records what its group unlocks
            in Unity Catalog (a one-line summary after the access details), for the
            approver to see.

    Raises:
        ConfigError: A setting is out of range, or `integration` is async or no
            integration at all (the error names `integration`).
    """

    def __init__(
        self,
        tracker: LeaseTracker,
        integration: IntegrationLike,
        *,
        pending_ttl: Duration = dt.timedelta(days=1),
        retry_delay: Duration = dt.timedelta(seconds=30),
        max_retry_delay: Duration = dt.timedelta(minutes=10),
        catalog: CatalogReader | None = None,
    ) -> None:
        pending, delay, longest = _settings(pending_ttl, retry_delay, max_retry_delay)
        given: object = tracker  # checked at run time too: a mismatch fails here, not later
        if not isinstance(given, LeaseTracker):
            raise ConfigError(
                f"must be a LeaseTracker, not {type(given).__name__} (an AsyncLeaseTracker "
                "belongs with AsyncAccessRequests)",
                "tracker",
            )
        if _integration_kind(integration):
            raise ConfigError(
                f"{type(integration).__name__} answers asynchronously: use it with "
                "AsyncAccessRequests (on an AsyncLeaseTracker), or pass a sync Integration",
                "integration",
            )
        self.tracker = tracker
        self.integration = integration
        self.catalog = catalog
        self.flows = RequestFlows(
            tracker.flows,
            integration.custom_access_details,
            pending,
            retry_delay=delay,
            max_retry_delay=longest,
            unlocks=catalog is not None,
        )

    def _effect(self, step: Effect[Any]) -> object:
        if isinstance(step, DescribeUnlocks):
            return None if self.catalog is None else describe(self.catalog, step.group)
        if isinstance(step, ResolveApprovers):
            return self.integration.approvers_for(step.group)
        if isinstance(step, CheckApprover):
            return self.integration.is_approver(step.identity, step.approvers)
        return self.tracker._effect(step)  # the tracker's store and sink

    def _run(self, flow: Flow[T]) -> T:
        return self.tracker._driver.run(flow, self._effect)

    def submit(
        self,
        principal: Principal,
        group: Group | str,
        *,
        ttl: Duration,
        reason: str,
        requester: str,
    ) -> AccessRequest:
        """Ask for access; the request waits, `PENDING`, for an approver."""
        return self._run(
            self.flows.submit(principal, group, ttl=ttl, reason=reason, requester=requester)
        )

    def approve(self, request_id: str, approver: str) -> AccessRequest:
        """Approve and grant the lease.

        Raises:
            ApprovalError: Self-approval (by the principal or the requester, judged on
                identity), an approver the integration does not confirm with exactly
                `True`, or a request that is not pending.
            DatabricksAccessError: The grant failed. The approval is stored either way:
                after a transient error the request stays `APPROVED` and `sweep()`
                retries it from `retry_at`; after a definitive one it is `FAILED`.
        """
        return self._run(self.flows.approve(request_id, approver))

    def deny(self, request_id: str, approver: str, reason: str) -> AccessRequest:
        """Deny a pending request."""
        return self._run(self.flows.deny(request_id, approver, reason))

    def cancel(self, request_id: str, by: str) -> AccessRequest:
        """Withdraw a pending request (its requester only)."""
        return self._run(self.flows.cancel(request_id, by))

    def get(self, request_id: str) -> AccessRequest:
        """One request."""
        return self._run(self.flows.get(request_id))

    def list(
        self,
        *,
        state: RequestState | Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
    ) -> list[AccessRequest]:
        """Stored requests, filtered; oldest first."""
        states = [state] if isinstance(state, RequestState) else state
        return self._run(
            self.flows.find(states=states, principal_id=principal_id, group_id=group_id)
        )

    def sweep(self) -> RequestSweep:
        """Expire requests that waited too long; grant approved ones left without a lease.

        An approval a crash interrupted is granted now; one whose grant failed
        transiently is tried again once its `retry_at` has come.
        """
        return self._run(self.flows.sweep())

    def run(self, stop: threading.Event | None = None, *, idle: float = 30.0) -> None:
        """Sweep leases and requests whenever something is due, until `stop` is set.

        The tracker's `run()` loop (run this instead of it), plus the requests' part:
        pending requests expire on time, and approved ones whose grant failed
        transiently are granted when their `retry_at` comes. Sleeps until the next due
        lease or request, waking early when the store changes. Errors of a sweep are
        logged and retried; nothing is lost.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tracker.sweep()
                self.sweep()
                wait = min(
                    self.tracker._run(self.tracker.flows.seconds_until_due(idle)),
                    self._run(self.flows.seconds_until_due(idle)),
                )
            except DatabricksAccessError as exc:
                logger.warning("sweep failed, retrying soon: %s", exc)
                wait = min(idle, 5.0)
            remaining = wait
            start = self.tracker.clock.monotonic()
            while remaining > 0 and not stop.is_set():
                if self.tracker.store.wait_for_change(min(remaining, 0.5)):
                    break
                remaining = wait - (self.tracker.clock.monotonic() - start)

    def __repr__(self) -> str:
        return f"AccessRequests({self.tracker!r})"


class AsyncAccessRequests:
    """`AccessRequests` on an `AsyncLeaseTracker`: the same methods, awaited.

    The integration is an `AsyncIntegration`, whose answers are awaited, or a sync
    `Integration`, whose calls run in a worker thread (never on the event loop).

    Example::

        requests = da.AsyncAccessRequests(tracker, da.AsyncIntegration(config, client=client))
        req = await requests.submit("alice@example.com", group, ttl=3600,
                                    reason="INC-1234", requester="alice@example.com")
        await requests.approve(req.id, approver="bob@example.com")
    """

    def __init__(
        self,
        tracker: AsyncLeaseTracker,
        integration: AsyncIntegrationLike | IntegrationLike,
        *,
        pending_ttl: Duration = dt.timedelta(days=1),
        retry_delay: Duration = dt.timedelta(seconds=30),
        max_retry_delay: Duration = dt.timedelta(minutes=10),
        catalog: AsyncCatalogReader | CatalogReader | None = None,
    ) -> None:
        pending, delay, longest = _settings(pending_ttl, retry_delay, max_retry_delay)
        given: object = tracker  # checked at run time too: a mismatch fails here, not later
        if not isinstance(given, AsyncLeaseTracker):
            raise ConfigError(
                f"must be an AsyncLeaseTracker, not {type(given).__name__} (a LeaseTracker "
                "belongs with AccessRequests)",
                "tracker",
            )
        self._async: AsyncIntegrationLike | None = None
        self._sync: IntegrationLike | None = None
        if _is_async_integration(integration):
            self._async = integration
        else:
            self._sync = cast("IntegrationLike", integration)
        self.tracker = tracker
        self.integration = integration
        self.catalog = catalog
        self.flows = RequestFlows(
            tracker.flows,
            integration.custom_access_details,
            pending,
            retry_delay=delay,
            max_retry_delay=longest,
            unlocks=catalog is not None,
        )

    async def _effect(self, step: Effect[Any]) -> object:
        if isinstance(step, DescribeUnlocks):
            return None if self.catalog is None else await adescribe(self.catalog, step.group)
        if isinstance(step, ResolveApprovers):
            if self._async is not None:
                return await self._async.approvers_for(step.group)
            sync = cast("IntegrationLike", self._sync)
            return await asyncio.to_thread(sync.approvers_for, step.group)
        if isinstance(step, CheckApprover):
            if self._async is not None:
                return await self._async.is_approver(step.identity, step.approvers)
            sync = cast("IntegrationLike", self._sync)
            return await asyncio.to_thread(sync.is_approver, step.identity, step.approvers)
        return await self.tracker._effect(step)

    async def _run(self, flow: Flow[T]) -> T:
        return await self.tracker._driver.run(flow, self._effect)

    async def submit(
        self,
        principal: Principal,
        group: Group | str,
        *,
        ttl: Duration,
        reason: str,
        requester: str,
    ) -> AccessRequest:
        """Ask for access; the request waits, `PENDING`, for an approver."""
        return await self._run(
            self.flows.submit(principal, group, ttl=ttl, reason=reason, requester=requester)
        )

    async def approve(self, request_id: str, approver: str) -> AccessRequest:
        """Approve and grant the lease.

        Raises:
            ApprovalError: Self-approval (by the principal or the requester, judged on
                identity), an approver the integration does not confirm with exactly
                `True`, or a request that is not pending.
            DatabricksAccessError: The grant failed. The approval is stored either way:
                after a transient error the request stays `APPROVED` and `sweep()`
                retries it from `retry_at`; after a definitive one it is `FAILED`.
        """
        return await self._run(self.flows.approve(request_id, approver))

    async def deny(self, request_id: str, approver: str, reason: str) -> AccessRequest:
        """Deny a pending request."""
        return await self._run(self.flows.deny(request_id, approver, reason))

    async def cancel(self, request_id: str, by: str) -> AccessRequest:
        """Withdraw a pending request (its requester only)."""
        return await self._run(self.flows.cancel(request_id, by))

    async def get(self, request_id: str) -> AccessRequest:
        """One request."""
        return await self._run(self.flows.get(request_id))

    async def list(
        self,
        *,
        state: RequestState | Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
    ) -> list[AccessRequest]:
        """Stored requests, filtered; oldest first."""
        states = [state] if isinstance(state, RequestState) else state
        return await self._run(
            self.flows.find(states=states, principal_id=principal_id, group_id=group_id)
        )

    async def sweep(self) -> RequestSweep:
        """Expire requests that waited too long; grant approved ones left without a lease.

        An approval a crash interrupted is granted now; one whose grant failed
        transiently is tried again once its `retry_at` has come.
        """
        return await self._run(self.flows.sweep())

    async def run(self, stop: asyncio.Event | None = None, *, idle: float = 30.0) -> None:
        """Sweep leases and requests whenever something is due (see `AccessRequests.run`)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.tracker.sweep()
                await self.sweep()
                wait = min(
                    await self.tracker._run(self.tracker.flows.seconds_until_due(idle)),
                    await self._run(self.flows.seconds_until_due(idle)),
                )
            except DatabricksAccessError as exc:
                logger.warning("sweep failed, retrying soon: %s", exc)
                wait = min(idle, 5.0)
            remaining = wait
            start = self.tracker.clock.monotonic()
            while remaining > 0 and not stop.is_set():
                if await self.tracker.store.wait_for_change(min(remaining, 0.5)):
                    break
                remaining = wait - (self.tracker.clock.monotonic() - start)

    def __repr__(self) -> str:
        return f"AsyncAccessRequests({self.tracker!r})"
