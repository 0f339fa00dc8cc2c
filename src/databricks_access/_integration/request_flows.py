"""The access-request lifecycle as I/O-free flows: submit, approve, deny, cancel, sweep.

`RequestFlows` builds on the tracker's flows. Asking the integration is an effect
(`ResolveApprovers`, `CheckApprover`) that the facades of `_integration.requests` answer,
sync or async; the answers are checked here: approvers must be `Approvers`, and only an
answer of exactly `True` makes an approver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

import attrs

from databricks_access._account.api import Principal
from databricks_access._account.flows import Flow, collect
from databricks_access._account.models import Group, PrincipalKind, PrincipalRef, User
from databricks_access._account.retry import RetryPolicy
from databricks_access._account.scim import filter_eq
from databricks_access._catalog.summary import DescribeUnlocks, with_summary
from databricks_access._durations import Duration
from databricks_access._errors import (
    ApprovalError,
    BadRequestError,
    ConfigError,
    DatabricksAccessError,
    LeaseError,
    NotFoundError,
)
from databricks_access._integration.approvers import Approvers
from databricks_access._leases.settings import group_id as _group_id
from databricks_access._leases.settings import text as _text
from databricks_access._leases.store import (
    StaleStateError,
    add_request,
    find_leases,
    find_requests,
    get_request,
    update_request,
)
from databricks_access._leases.tracker_flows import TrackerFlows
from databricks_access._leases.values import (
    AccessRequest,
    AuditEvent,
    DetailValue,
    EventKind,
    Lease,
    LeaseState,
    RequestState,
    new_id,
)
from databricks_access._sansio import Effect, perform
from databricks_access._util.crash import crash_point
from databricks_access._util.html import HtmlList, render_html

__all__ = ["CheckApprover", "RequestFlows", "RequestSweep", "ResolveApprovers"]

T = TypeVar("T")
_OPEN = (RequestState.PENDING,)
# Groups visited at most when checking whether an approver is inside a principal group.
_MAX_WALK = 1000
_MAX_ERROR = 500
# What counts as transient: the client's own retry rules for an idempotent request (the
# membership add is one): throttling, 5xx, the network.
_RETRY_RULES = RetryPolicy()


@attrs.frozen
class ResolveApprovers(Effect[object]):
    """Effect: resolve the approvers of a group through the integration.

    Answered with whatever the integration gave: the flow checks that it is `Approvers`.
    """

    group: Group | str


@attrs.frozen
class CheckApprover(Effect[object]):
    """Effect: ask the integration whether `identity` is one of `approvers`.

    Answered as the integration answered: anything but exactly True is a no.
    """

    identity: str
    approvers: Approvers = attrs.field(eq=False)


@attrs.frozen(kw_only=True)
class RequestSweep:
    """What `AccessRequests.sweep()` did.

    Attributes:
        expired: Requests that waited too long: pending ones past their time, and
            approved ones whose grant never succeeded before `expires_at`.
        granted: Approved requests whose lease this sweep granted (after an interrupted
            approval, or a transient failure).
        failed: Approved requests whose grant failed for good (now `FAILED`).
        retrying: Approved requests whose grant failed again with a transient error;
            they stay `APPROVED` and are retried after `retry_at`.
    """

    _repr_html_ = render_html

    expired: tuple[str, ...] = ()
    granted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    retrying: tuple[str, ...] = ()


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _transient(exc: DatabricksAccessError) -> bool:
    """Whether a failed grant is worth trying again later."""
    if isinstance(exc, StaleStateError):
        return False
    return isinstance(exc, LeaseError) or _RETRY_RULES.retryable(exc, idempotent=True)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


def _refuse_awaitable(answer: object, what: str) -> None:
    """A sync answer that is a coroutine means an async integration on the sync side."""
    if inspect.isawaitable(answer):
        if inspect.iscoroutine(answer):
            answer.close()  # never awaited: close it, so nothing runs and nothing warns
        raise ConfigError(
            f"{what} answered an awaitable: the integration is async; use "
            "AsyncAccessRequests with it, or a sync Integration",
            "integration",
        )


def _approvers_answer(answer: object) -> Approvers:
    _refuse_awaitable(answer, "approvers_for()")
    if not isinstance(answer, Approvers):
        raise ConfigError(
            f"approvers_for() answered {type(answer).__name__}, not databricks_access.Approvers",
            "integration",
        )
    return answer


class RequestFlows:
    """The request lifecycle as flows, on top of the tracker's flows."""

    def __init__(
        self,
        tracker: TrackerFlows,
        details: str | None,
        pending_ttl: float,
        *,
        retry_delay: float = 30.0,
        max_retry_delay: float = 600.0,
        unlocks: bool = False,
    ) -> None:
        self.t = tracker
        self.details = details
        self.unlocks = unlocks  # ask what the group unlocks (a catalog reader is set)
        self.pending_ttl = pending_ttl
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay

    def _event(self, kind: EventKind, req: AccessRequest, **detail: DetailValue) -> AuditEvent:
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
            principal_name=req.principal_name,
            group_name=req.group_name,
        )

    def _get(self, request_id: object) -> Flow[AccessRequest]:
        if not isinstance(request_id, str) or not request_id or len(request_id) > 100:
            raise ConfigError("must be a request id", "request_id")
        found: AccessRequest | None = yield from get_request(request_id)
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
            yield from update_request(
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
        """Expire a pending request past its time, or an approved one never granted."""
        if self.t.clock.now() < req.expires_at:
            return req
        if req.state is RequestState.PENDING:
            req = yield from self._move(req, RequestState.EXPIRED, EventKind.REQUEST_EXPIRED)
            yield from self.t.deliver()
        elif req.state is RequestState.APPROVED and req.lease_id is None:
            why = "approved, but the grant did not succeed before the request expired"
            if req.last_error:
                why += f" (last error: {req.last_error})"
            req = yield from self._move(
                req,
                RequestState.EXPIRED,
                EventKind.REQUEST_EXPIRED,
                expect=(RequestState.APPROVED,),
                decision_reason=why[:_MAX_ERROR],
                retry_at=None,
            )
            yield from self.t.deliver()
        return req

    # -- the integration's answers -----------------------------------------------------------

    def _approvers(self, group: Group | str) -> Flow[Approvers]:
        answer = yield from perform(ResolveApprovers(group))
        return _approvers_answer(answer)

    def _is_approver(self, identity: str, approvers: Approvers) -> Flow[bool]:
        answer = yield from perform(CheckApprover(identity, approvers))
        _refuse_awaitable(answer, "is_approver()")
        return answer is True  # anything but exactly True is a no

    # -- identities --------------------------------------------------------------------------

    def _identities(self, name: str) -> Flow[tuple[PrincipalRef, ...]]:
        """The account principals a user name, e-mail address or application id names.

        A user name or an application id names one principal. A name that is no user
        name may still be an e-mail address of users (an alias): those are found too.
        Empty when the account knows nobody by that name (an IdP-only approver, a handle).
        """
        name = name.strip()
        try:
            return ((yield from self.t.m.resolve(name)),)
        except ConfigError:
            return ()  # neither a user name nor an application id
        except NotFoundError:
            pass
        if "@" not in name:
            return ()
        listing = self.t.api.list_users(
            filter=filter_eq("emails.value", name), attributes=["id", "userName"]
        )
        try:
            found: list[User] = yield from collect(listing())
        except BadRequestError:
            return ()  # a server that cannot filter on e-mails: the user name decided
        return tuple(user.ref for user in found)

    def _inside_group(self, member: PrincipalRef, group_id: str) -> Flow[bool]:
        """Whether `member` is in the group, directly or through nested groups."""
        seen: set[str] = set()
        frontier = {member}
        while frontier and len(seen) <= _MAX_WALK:
            parents: set[str] = set()
            for ref in frontier:
                found: frozenset[str] = yield from self.t.api.principal_group_ids(ref)
                parents |= found
            if group_id in parents:
                return True
            fresh = parents - seen
            seen |= fresh
            frontier = {PrincipalRef(PrincipalKind.GROUP, gid) for gid in sorted(fresh)}
        return False

    def _refuse_self(self, req: AccessRequest, approver: str) -> Flow[None]:
        """Refuse the principal and the requester, by spelling and then by identity."""
        own = ApprovalError(f"{approver} cannot approve access request {req.id}: it is their own")
        if _same(approver, req.requester) or _same(approver, req.principal_name):
            raise own
        who = yield from self._identities(approver)
        if not who:
            return
        ids = {ref.id for ref in who}
        if req.principal.id in ids:
            raise own
        requester = yield from self._identities(req.requester)
        if ids & {ref.id for ref in requester}:
            raise own
        if req.principal.kind is PrincipalKind.GROUP:
            for ref in who:
                if (yield from self._inside_group(ref, req.principal.id)):
                    # Adding a group gives its members access: none of them approves it.
                    raise ApprovalError(
                        f"{approver} cannot approve access request {req.id}: they are a "
                        "member of the group that would get the access"
                    )

    def _check_approver(self, req: AccessRequest, approver: str) -> Flow[None]:
        yield from self._refuse_self(req, approver)
        approvers = yield from self._approvers(req.group_id)
        if not (yield from self._is_approver(approver, approvers)):
            names = ", ".join(str(o) for o in approvers.owners) or "nobody"
            raise ApprovalError(
                f"{approver} is not an approver of group {req.group_name or req.group_id} "
                f"(approvers: {names})"
            )

    # -- the lifecycle ---------------------------------------------------------------------

    def _existing_group(self, gid: str) -> Flow[Group]:
        try:
            return (yield from self.t.api.group_summary(gid))
        except NotFoundError as exc:
            raise NotFoundError(
                exc.status_code,
                exc.error_code,
                f"there is no group with id {gid} in the account; nothing was requested",
                method=exc.method,
                path=exc.path,
            ) from exc

    def _principal_name(self, ref: PrincipalRef) -> Flow[str]:
        """The name the account knows a principal by: user name, application id, group name."""
        if ref.kind is PrincipalKind.USER:
            user = yield from self.t.api.get_user(ref.id)
            return user.user_name
        if ref.kind is PrincipalKind.SERVICE_PRINCIPAL:
            sp = yield from self.t.api.get_service_principal(ref.id)
            return sp.application_id
        group = yield from self.t.api.group_summary(ref.id)
        return group.display_name or group.id

    def _existing_principal(self, principal: Principal) -> Flow[tuple[PrincipalRef, str]]:
        """The principal's reference and name, read from the account (it must exist)."""
        ref: PrincipalRef = yield from self.t.m.resolve(principal)
        if isinstance(principal, str):
            return ref, principal  # looked up by this very name
        # A model or a reference is read once: one that does not exist (any more) is
        # refused now, not at the grant, and its name backs the self-approval check.
        try:
            name = yield from self._principal_name(ref)
        except NotFoundError as exc:
            raise NotFoundError(
                exc.status_code,
                exc.error_code,
                f"there is no {ref.kind.value.replace('_', ' ')} with id {ref.id} in the "
                "account; nothing was requested",
                method=exc.method,
                path=exc.path,
            ) from exc
        return ref, name

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
        ref, principal_name = yield from self._existing_principal(principal)
        found = yield from self._existing_group(gid)
        name = group.display_name if isinstance(group, Group) else None
        target = group if isinstance(group, Group) else found
        approvers = yield from self._approvers(target)
        summary = (yield from perform(DescribeUnlocks(target))) if self.unlocks else None
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
            approvers=tuple(str(o) for o in approvers.owners),
            approver_source=approvers.source.value,
            access_details=with_summary(self.details, summary),
            group_name=name or found.display_name,
            principal_name=principal_name,
        )
        detail = {"unlocks": summary} if summary else {}
        event = self._event(EventKind.REQUEST_SUBMITTED, req, **detail)
        yield from add_request(req, event)
        yield from self.t.deliver()
        return req

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
            return (yield from self._grant(req))  # finishing an interrupted approval now
        if req.state is not RequestState.PENDING:
            raise ApprovalError(f"access request {req.id} is {req.state.value}")
        yield from self._check_approver(req, approver)
        now = self.t.clock.now()
        approved = yield from self._move(
            req,
            RequestState.APPROVED,
            EventKind.REQUEST_APPROVED,
            decided_by=approver,
            # From here, `expires_at` bounds the retries of a grant that meets trouble.
            expires_at=max(req.expires_at, now + dt.timedelta(seconds=self.pending_ttl)),
        )
        crash_point("after_approve")
        return (yield from self._grant(approved))

    def _granted_lease(self, req: AccessRequest, on_pair: Sequence[Lease]) -> Lease | None:
        """The lease an earlier attempt granted for this request (a crash kept it unlinked)."""
        for lease in on_pair:
            if lease.request_id != req.id or lease.state is LeaseState.GRANT_FAILED:
                continue
            if req.attempts and lease.granted_at <= req.updated_at:
                continue  # a failed attempt's lease (its grant was undone)
            return lease
        return None

    def _retry_delay(self, attempts: int) -> float:
        return float(min(self.max_retry_delay, self.retry_delay * 2 ** min(attempts - 1, 30)))

    def _grant(self, req: AccessRequest) -> Flow[AccessRequest]:
        # A crash between the grant and the link below leaves the request's lease stored
        # (the tracker's sweep finishes it): link that one, never grant a request twice.
        on_pair: list[Lease] = yield from find_leases(
            principal_id=req.principal.id, group_id=req.group_id
        )
        earlier = self._granted_lease(req, on_pair)
        if earlier is not None:
            done = attrs.evolve(
                req, lease_id=earlier.id, retry_at=None, updated_at=self.t.clock.now()
            )
            yield from update_request(done, expect=(RequestState.APPROVED,), event=None)
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
            yield from self._grant_failed(req, exc)
            raise
        done = attrs.evolve(req, lease_id=lease.id, retry_at=None, updated_at=self.t.clock.now())
        yield from update_request(done, expect=(RequestState.APPROVED,), event=None)
        return done

    def _grant_failed(self, req: AccessRequest, exc: DatabricksAccessError) -> Flow[None]:
        """Keep a transient failure for a retry; end the request on a definitive one."""
        now = self.t.clock.now()
        attempts = req.attempts + 1
        if _transient(exc) and now < req.expires_at:
            retry_at = now + dt.timedelta(seconds=self._retry_delay(attempts))
            noted = attrs.evolve(
                req,
                attempts=attempts,
                retry_at=min(retry_at, req.expires_at),
                last_error=_error_text(exc),
                updated_at=now,
            )
            # A stale state: another replica moved it on meanwhile, theirs to finish.
            with contextlib.suppress(StaleStateError):
                yield from update_request(noted, expect=(RequestState.APPROVED,), event=None)
            return
        try:
            yield from self._move(
                req,
                RequestState.FAILED,
                EventKind.REQUEST_FAILED,
                expect=(RequestState.APPROVED,),
                decision_reason=f"the grant failed: {_error_text(exc)}"[:_MAX_ERROR],
                attempts=attempts,
                retry_at=None,
                last_error=_error_text(exc),
            )
        except ApprovalError:
            return  # another replica moved it on meanwhile
        yield from self.t.deliver()

    def deny(self, request_id: str, approver: str, reason: str) -> Flow[AccessRequest]:
        """Deny a pending request; only an approver may."""
        approver = cast("str", _text(approver, "approver"))
        reason = cast("str", _text(reason, "reason"))
        req = yield from self._get(request_id)
        req = yield from self._expire_if_due(req)
        if req.state is not RequestState.PENDING:
            raise ApprovalError(f"access request {req.id} is {req.state.value}")
        approvers = yield from self._approvers(req.group_id)
        if not (yield from self._is_approver(approver, approvers)):
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
        found: list[AccessRequest] = yield from find_requests(
            states=None if states is None else tuple(states),
            principal_id=principal_id,
            group_id=group_id,
        )
        return HtmlList(found)  # a list that shows as a table in a notebook

    def sweep(self) -> Flow[RequestSweep]:
        """Expire requests past their time; grant approved ones left without a lease."""
        expired: list[str] = []
        granted: list[str] = []
        failed: list[str] = []
        retrying: list[str] = []
        pending: list[AccessRequest] = yield from find_requests(states=(RequestState.PENDING,))
        for req in pending:
            after = yield from self._expire_if_due(req)
            if after.state is RequestState.EXPIRED:
                expired.append(req.id)
        approved: list[AccessRequest] = yield from find_requests(states=(RequestState.APPROVED,))
        for req in approved:
            if req.lease_id is not None:
                continue
            try:
                after = yield from self._expire_if_due(req)
            except ApprovalError:
                continue  # another replica moved it on meanwhile
            if after.state is RequestState.EXPIRED:
                expired.append(req.id)
                continue
            if req.retry_at is not None and self.t.clock.now() < req.retry_at:
                continue  # backing off
            try:
                yield from self._grant(req)
            except DatabricksAccessError:
                now: AccessRequest | None = yield from get_request(req.id)
                still = now is not None and now.state is RequestState.APPROVED
                (retrying if still else failed).append(req.id)
            else:
                granted.append(req.id)
        return RequestSweep(
            expired=tuple(expired),
            granted=tuple(granted),
            failed=tuple(failed),
            retrying=tuple(retrying),
        )

    def seconds_until_due(self, idle: float) -> Flow[float]:
        """How long `run()` may sleep for requests: until the next expiry or grant retry."""
        now = self.t.clock.now()
        open_requests: list[AccessRequest] = yield from find_requests(
            states=(RequestState.PENDING, RequestState.APPROVED)
        )
        due = [
            req.expires_at
            if req.state is RequestState.PENDING
            else min(req.retry_at or now, req.expires_at)
            for req in open_requests
            if req.state is RequestState.PENDING or req.lease_id is None
        ]
        if not due:
            return idle
        return max(0.0, min(idle, (min(due) - now).total_seconds()))
