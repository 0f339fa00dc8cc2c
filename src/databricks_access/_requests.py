"""Self-service access requests: submit, approve (never by oneself), deny, cancel, expire.

A request is stored `PENDING` with its approvers resolved through the `Integration`
(resource owner first, integration owners as the fallback). Approval checks the
approver again against a fresh resolution (directory changes show without a restart),
refuses self-approval and anyone who is not an approver, stores `APPROVED`, then grants
through the lease tracker with the approver recorded on the lease. Every transition
writes an audit event with it.

A crash between approval and grant leaves an `APPROVED` request without a lease;
`sweep()` grants it (and expires pending requests that waited too long).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import attrs

from databricks_access._api import Principal
from databricks_access._crash import crash_point
from databricks_access._durations import Duration
from databricks_access._durations import seconds as _seconds
from databricks_access._errors import ApprovalError, ConfigError, DatabricksAccessError
from databricks_access._flows import Flow
from databricks_access._lease import (
    AccessRequest,
    AuditEvent,
    EventKind,
    Lease,
    LeaseState,
    RequestState,
    new_id,
)
from databricks_access._models import Group
from databricks_access._store import StaleStateError
from databricks_access._tracker import (
    TrackerFlows,
    _group_id,
    _store,
    _text,
)

if TYPE_CHECKING:
    from databricks_access._tracker import AsyncLeaseTracker, LeaseTracker

__all__ = ["AccessRequests", "AsyncAccessRequests", "RequestFlows", "RequestSweep"]

T = TypeVar("T")
_OPEN = (RequestState.PENDING,)


class IntegrationLike(Protocol):
    """What access requests need of an `Integration`."""

    @property
    def custom_access_details(self) -> str | None:
        """Text shown to people asking for access."""
        ...

    def approvers_for(self, group: Group | str) -> Any:
        """The approvers of a group and where they came from."""
        ...

    def is_approver(self, identity: str, approvers: Any) -> bool:
        """Whether `identity` may approve, given `approvers`."""
        ...


@attrs.frozen
class ResolveApprovers:
    """Effect: resolve the approvers of a group through the integration."""

    group: Group | str


@attrs.frozen
class CheckApprover:
    """Effect: ask the integration whether `identity` is one of `approvers`."""

    identity: str
    approvers: Any = attrs.field(eq=False)


@attrs.frozen(kw_only=True)
class RequestSweep:
    """What `AccessRequests.sweep()` did: requests expired, approved requests granted."""

    expired: tuple[str, ...] = ()
    granted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _owner_text(owner: object) -> str:
    kind = getattr(owner, "kind", None)
    name = getattr(owner, "name", None)
    if name is None:
        return str(owner)
    kind_text = getattr(kind, "value", kind)
    return f"{kind_text}:{name}" if kind_text else str(name)


class RequestFlows:
    """The request lifecycle as flows, on top of the tracker's flows."""

    def __init__(self, tracker: TrackerFlows, details: str | None, pending_ttl: float) -> None:
        self.t = tracker
        self.details = details
        self.pending_ttl = pending_ttl

    def _event(self, kind: EventKind, req: AccessRequest, **detail: str) -> AuditEvent:
        return AuditEvent(
            kind=kind,
            at=self.t.clock.now(),
            request_id=req.id,
            lease_id=req.lease_id,
            principal=req.principal,
            group_id=req.group_id,
            requester=req.requester,
            reason=req.reason,
            approver=req.decided_by,
            detail=detail,
        )

    def _get(self, request_id: object) -> Flow[AccessRequest]:
        if not isinstance(request_id, str) or not request_id or len(request_id) > 100:
            raise ConfigError("must be a request id", "request_id")
        found: AccessRequest | None = yield from _store("get_request", request_id)
        if found is None:
            raise ApprovalError(f"no access request {request_id!r}")
        return found

    def _move(
        self,
        req: AccessRequest,
        state: RequestState,
        kind: EventKind,
        *,
        expect: Sequence[RequestState] = _OPEN,
        **changes: Any,
    ) -> Flow[AccessRequest]:
        moved = attrs.evolve(req, state=state, updated_at=self.t.clock.now(), **changes)
        detail = {"decision_reason": moved.decision_reason} if moved.decision_reason else {}
        try:
            yield from _store(
                "update_request",
                moved,
                expect=tuple(expect),
                event=self._event(kind, moved, **detail),
            )
        except StaleStateError:
            current: AccessRequest = yield from self._get(req.id)
            raise ApprovalError(
                f"access request {req.id} is already {current.state.value}"
            ) from None
        return moved

    def _expire_if_due(self, req: AccessRequest) -> Flow[AccessRequest]:
        if req.state is RequestState.PENDING and self.t.clock.now() >= req.expires_at:
            req = yield from self._move(req, RequestState.EXPIRED, EventKind.REQUEST_EXPIRED)
            yield from self.t.deliver()
        return req

    # -- the lifecycle ---------------------------------------------------------------------

    def submit(
        self,
        principal: Principal,
        group: Group | str,
        *,
        ttl: Duration,
        reason: str,
        requester: str,
    ) -> Flow[AccessRequest]:
        """Store a pending request with its approvers resolved."""
        seconds = self.t.check_ttl(ttl)
        reason = cast("str", _text(reason, "reason"))
        requester = cast("str", _text(requester, "requester"))
        gid = _group_id(group)
        ref = yield from self.t.m.resolve(principal)
        approvers = yield ResolveApprovers(group)
        now = self.t.clock.now()
        req = AccessRequest(
            id=new_id("req"),
            principal=ref,
            group_id=gid,
            ttl_seconds=seconds,
            reason=reason,
            requester=requester,
            state=RequestState.PENDING,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=self.pending_ttl),
            updated_at=now,
            approvers=tuple(_owner_text(o) for o in approvers.owners),
            approver_source=str(getattr(approvers.source, "value", approvers.source)),
            access_details=self.details,
            group_name=group.display_name if isinstance(group, Group) else None,
            principal_name=principal if isinstance(principal, str) else None,
        )
        yield from _store("add_request", req, self._event(EventKind.REQUEST_SUBMITTED, req))
        yield from self.t.deliver()
        return req

    def _check_approver(self, req: AccessRequest, approver: str) -> Flow[None]:
        if _same(approver, req.requester) or _same(approver, req.principal_name):
            raise ApprovalError(
                f"{approver} cannot approve access request {req.id}: it is their own"
            )
        approvers = yield ResolveApprovers(req.group_id)
        allowed = yield CheckApprover(approver, approvers)
        if not allowed:
            names = ", ".join(_owner_text(o) for o in approvers.owners) or "nobody"
            raise ApprovalError(
                f"{approver} is not an approver of group {req.group_name or req.group_id} "
                f"(approvers: {names})"
            )

    def approve(self, request_id: str, approver: str) -> Flow[AccessRequest]:
        """Approve a pending request and grant it through the tracker."""
        approver = cast("str", _text(approver, "approver"))
        req = yield from self._get(request_id)
        req = yield from self._expire_if_due(req)
        if (
            req.state is RequestState.APPROVED
            and req.lease_id is None
            and _same(approver, req.decided_by)
        ):
            return (yield from self._grant(req))  # finishing an interrupted approval
        if req.state is not RequestState.PENDING:
            raise ApprovalError(f"access request {req.id} is {req.state.value}")
        yield from self._check_approver(req, approver)
        approved = yield from self._move(
            req, RequestState.APPROVED, EventKind.REQUEST_APPROVED, decided_by=approver
        )
        crash_point("after_approve")
        return (yield from self._grant(approved))

    def _grant(self, req: AccessRequest) -> Flow[AccessRequest]:
        # A crash between the grant and the link below leaves the request's lease stored
        # (the tracker's sweep finishes it): link that one, never grant a request twice.
        on_pair: list[Lease] = yield from _store(
            "find_leases", principal_id=req.principal.id, group_id=req.group_id
        )
        earlier = [x for x in on_pair if x.request_id == req.id]
        if earlier and earlier[0].state is not LeaseState.GRANT_FAILED:
            done = attrs.evolve(req, lease_id=earlier[0].id, updated_at=self.t.clock.now())
            yield from _store("update_request", done, expect=(RequestState.APPROVED,), event=None)
            return done
        try:
            group: Group | str = (
                Group(id=req.group_id, display_name=req.group_name)
                if req.group_name
                else req.group_id
            )
            lease = yield from self.t.grant(
                req.principal,
                group,
                principal_name=req.principal_name,
                ttl=req.ttl_seconds,
                requester=req.requester,
                reason=req.reason,
                approver=req.decided_by,
                request_id=req.id,
            )
        except DatabricksAccessError as exc:
            yield from self._move(
                req,
                RequestState.FAILED,
                EventKind.REQUEST_FAILED,
                expect=(RequestState.APPROVED,),
                decision_reason=f"the grant failed: {type(exc).__name__}: {exc}"[:500],
            )
            yield from self.t.deliver()
            raise
        done = attrs.evolve(req, lease_id=lease.id, updated_at=self.t.clock.now())
        yield from _store("update_request", done, expect=(RequestState.APPROVED,), event=None)
        return done

    def deny(self, request_id: str, approver: str, reason: str) -> Flow[AccessRequest]:
        """Deny a pending request; only an approver may."""
        approver = cast("str", _text(approver, "approver"))
        reason = cast("str", _text(reason, "reason"))
        req = yield from self._get(request_id)
        req = yield from self._expire_if_due(req)
        if req.state is not RequestState.PENDING:
            raise ApprovalError(f"access request {req.id} is {req.state.value}")
        approvers = yield ResolveApprovers(req.group_id)
        if not (yield CheckApprover(approver, approvers)):
            raise ApprovalError(f"{approver} is not an approver of group {req.group_id}")
        denied = yield from self._move(
            req,
            RequestState.DENIED,
            EventKind.REQUEST_DENIED,
            decided_by=approver,
            decision_reason=reason,
        )
        yield from self.t.deliver()
        return denied

    def cancel(self, request_id: str, by: str) -> Flow[AccessRequest]:
        """Withdraw a pending request; only its requester may."""
        by = cast("str", _text(by, "by"))
        req = yield from self._get(request_id)
        if req.state is not RequestState.PENDING:
            raise ApprovalError(f"access request {req.id} is {req.state.value}")
        if not _same(by, req.requester):
            raise ApprovalError(f"only {req.requester} can cancel access request {req.id}")
        cancelled = yield from self._move(
            req, RequestState.CANCELLED, EventKind.REQUEST_CANCELLED, decided_by=by
        )
        yield from self.t.deliver()
        return cancelled

    def get(self, request_id: str) -> Flow[AccessRequest]:
        """One request (expired on the way if its time is up)."""
        req = yield from self._get(request_id)
        return (yield from self._expire_if_due(req))

    def find(
        self,
        *,
        states: Iterable[RequestState] | None,
        principal_id: str | None,
        group_id: str | None,
    ) -> Flow[list[AccessRequest]]:
        """Stored requests, filtered; oldest first."""
        found: list[AccessRequest] = yield from _store(
            "find_requests",
            states=None if states is None else tuple(states),
            principal_id=principal_id,
            group_id=group_id,
        )
        return found

    def sweep(self) -> Flow[RequestSweep]:
        """Expire pending requests past their time; grant approved ones left without a lease."""
        expired: list[str] = []
        granted: list[str] = []
        failed: list[str] = []
        pending: list[AccessRequest] = yield from _store(
            "find_requests", states=(RequestState.PENDING,)
        )
        for req in pending:
            after = yield from self._expire_if_due(req)
            if after.state is RequestState.EXPIRED:
                expired.append(req.id)
        approved: list[AccessRequest] = yield from _store(
            "find_requests", states=(RequestState.APPROVED,)
        )
        for req in approved:
            if req.lease_id is not None:
                continue
            try:
                yield from self._grant(req)
            except DatabricksAccessError:
                failed.append(req.id)
            else:
                granted.append(req.id)
        return RequestSweep(expired=tuple(expired), granted=tuple(granted), failed=tuple(failed))


class AccessRequests:
    """Self-service access requests with approval, on a `LeaseTracker`.

    Example::

        requests = da.AccessRequests(tracker, integration)
        req = requests.submit("alice@example.com", group, ttl=timedelta(hours=1),
                              reason="INC-1234", requester="alice@example.com")
        requests.approve(req.id, approver="bob@example.com")   # grants the lease

    Args:
        tracker: The lease tracker that grants approved requests.
        integration: Resolves each group's approvers and checks an approver.
        pending_ttl: How long a request waits for a decision (default one day).
    """

    def __init__(
        self,
        tracker: LeaseTracker,
        integration: IntegrationLike,
        *,
        pending_ttl: Duration = dt.timedelta(days=1),
    ) -> None:
        seconds = _seconds(pending_ttl, "pending_ttl")
        if seconds <= 0:
            raise ConfigError("must be positive", "pending_ttl")
        self.tracker = tracker
        self.integration = integration
        self.flows = RequestFlows(tracker.flows, integration.custom_access_details, seconds)

    def _effect(self, step: object) -> Any:
        if isinstance(step, ResolveApprovers):
            return self.integration.approvers_for(step.group)
        if isinstance(step, CheckApprover):
            return self.integration.is_approver(step.identity, step.approvers)
        return self.tracker._effect(step)  # noqa: SLF001 - the tracker's store and sink

    def _run(self, flow: Flow[T]) -> T:
        return self.tracker._driver.run(flow, self._effect)  # noqa: SLF001

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
        """Approve and grant; raises `ApprovalError` for self-approval or a non-approver."""
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
        """Expire requests that waited too long; finish approvals a crash interrupted."""
        return self._run(self.flows.sweep())

    def __repr__(self) -> str:
        return f"AccessRequests({self.tracker!r})"


class AsyncAccessRequests:
    """`AccessRequests` on an `AsyncLeaseTracker`: the same methods, awaited."""

    def __init__(
        self,
        tracker: AsyncLeaseTracker,
        integration: IntegrationLike,
        *,
        pending_ttl: Duration = dt.timedelta(days=1),
    ) -> None:
        seconds = _seconds(pending_ttl, "pending_ttl")
        if seconds <= 0:
            raise ConfigError("must be positive", "pending_ttl")
        self.tracker = tracker
        self.integration = integration
        self.flows = RequestFlows(tracker.flows, integration.custom_access_details, seconds)

    async def _effect(self, step: object) -> Any:
        if isinstance(step, ResolveApprovers):
            return await asyncio.to_thread(self.integration.approvers_for, step.group)
        if isinstance(step, CheckApprover):
            return await asyncio.to_thread(
                self.integration.is_approver, step.identity, step.approvers
            )
        return await self.tracker._effect(step)  # noqa: SLF001

    async def _run(self, flow: Flow[T]) -> T:
        return await self.tracker._driver.run(flow, self._effect)  # noqa: SLF001

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
        """Approve and grant; raises `ApprovalError` for self-approval or a non-approver."""
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
        """Expire requests that waited too long; finish approvals a crash interrupted."""
        return await self._run(self.flows.sweep())

    def __repr__(self) -> str:
        return f"AsyncAccessRequests({self.tracker!r})"
