"""The records of the lease tracker: leases, audit events and access requests.

Plain frozen values, shared by the tracker and every `LeaseStore`. Times are
timezone-aware UTC datetimes taken from the tracker's injected `Clock`.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Mapping

import attrs

from databricks_access._account.models import PrincipalKind, PrincipalRef
from databricks_access._util.html import render_html

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "AccessRequest",
    "AuditEvent",
    "EventKind",
    "Lease",
    "LeaseState",
    "Pair",
    "RequestState",
    "StoredEvent",
    "new_id",
]


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier such as `lease_3kT9...`."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


class LeaseState(enum.Enum):
    """Where a lease stands. Each transition is stored before the side effect it announces.

    `GRANTING` → `ACTIVE` → `REVOKING` → `REVOKED`; `GRANT_FAILED` when the add failed;
    `REVOKE_FAILED` when removal failed after its retries (it is retried later).
    """

    GRANTING = "granting"
    ACTIVE = "active"
    REVOKING = "revoking"
    REVOKED = "revoked"
    GRANT_FAILED = "grant_failed"
    REVOKE_FAILED = "revoke_failed"


ACTIVE_STATES = frozenset({LeaseState.GRANTING, LeaseState.ACTIVE})
"""States in which a lease holds (or is about to hold) access."""
TERMINAL_STATES = frozenset({LeaseState.REVOKED, LeaseState.GRANT_FAILED})
"""States a lease never leaves."""


@attrs.frozen
class Pair:
    """One (principal, group) membership: the unit that claims serialise."""

    principal_id: str
    group_id: str

    def __str__(self) -> str:
        return f"{self.principal_id}@{self.group_id}"


@attrs.frozen(kw_only=True)
class Lease:
    """A time-bound grant of one principal's membership in one group.

    Attributes:
        id: The lease's id.
        principal: Who holds it.
        group_id: The group it grants.
        state: Where it stands.
        granted_at: When it was first granted; `max_ttl` counts from here.
        expires_at: When access ends.
        requester: Who asked for it.
        reason: Why (a ticket, an incident).
        approver: Who approved it, when an approval flow was used.
        standing: The principal was already a member without a lease of ours when the
            lease was granted: its end leaves the membership alone.
        extensions: How many times it was extended.
        attempts: Failed revocation attempts so far.
        retry_at: When the next revocation attempt is due (after a failure).
        last_error: The last failure, in words (never a secret).
        updated_at: The last change.
        ended_at: When it was revoked or failed for good.
        request_id: The access request that produced it, if any.
        group_name: The group's display name, for people reading reports.
        principal_name: The principal's user name or display name, likewise.
        version: How many times the stored lease was changed. A store replaces a lease
            only if the stored version is still the one it was read at (and then counts
            one more), so a stale copy never overwrites a newer change.
    """

    _repr_html_ = render_html

    id: str
    principal: PrincipalRef
    group_id: str
    state: LeaseState
    granted_at: dt.datetime
    expires_at: dt.datetime
    requester: str
    reason: str
    approver: str | None = None
    standing: bool = False
    extensions: int = 0
    attempts: int = 0
    retry_at: dt.datetime | None = None
    last_error: str | None = None
    updated_at: dt.datetime
    ended_at: dt.datetime | None = None
    request_id: str | None = None
    group_name: str | None = None
    principal_name: str | None = None
    version: int = 0

    @property
    def pair(self) -> Pair:
        """The (principal, group) pair of this lease."""
        return Pair(self.principal.id, self.group_id)

    @property
    def holds_access(self) -> bool:
        """Whether this lease keeps its principal in the group (granting or active)."""
        return self.state in ACTIVE_STATES

    def due_at(self) -> dt.datetime | None:
        """When the tracker must next act on this lease, or None if never."""
        if self.state is LeaseState.ACTIVE:
            return self.expires_at
        if self.state is LeaseState.REVOKE_FAILED:
            return self.retry_at or self.updated_at
        if self.state in (LeaseState.GRANTING, LeaseState.REVOKING):
            return self.updated_at
        return None


class EventKind(enum.Enum):
    """What an audit event records."""

    GRANTED = "granted"
    GRANT_FAILED = "grant_failed"
    EXTENDED = "extended"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ENDED = "ended"
    """A lease ended and the membership stays: it is standing, or another lease holds it
    (`detail["membership"]` says which). Nothing was removed, so it is not `revoked`."""
    REVOKE_FAILED = "revoke_failed"
    DRIFT = "drift"
    REQUEST_SUBMITTED = "request_submitted"
    REQUEST_APPROVED = "request_approved"
    REQUEST_DENIED = "request_denied"
    REQUEST_CANCELLED = "request_cancelled"
    REQUEST_EXPIRED = "request_expired"
    REQUEST_FAILED = "request_failed"


DetailValue = str | int | float | bool
"""A value in `AuditEvent.detail`: text, a number or a flag, as JSON has them."""

# Detail keys whose values older versions wrote as text ("true", "3"): typed on reading.
_FLAG_DETAILS = frozenset({"standing", "recovered", "clamped"})
_COUNT_DETAILS = frozenset({"attempts"})


def _detail_value(key: str, value: object) -> DetailValue:
    if isinstance(value, (bool, int, float, str)) and not (
        isinstance(value, str) and (key in _FLAG_DETAILS or key in _COUNT_DETAILS)
    ):
        return value
    text = str(value)
    if key in _FLAG_DETAILS and text.lower() in {"true", "false"}:
        return text.lower() == "true"
    if key in _COUNT_DETAILS and text.isdigit():
        return int(text)
    return text


@attrs.frozen(kw_only=True)
class AuditEvent:
    """One audit record: what happened to which lease or request, when, and by whom.

    Events never carry secrets or tokens. `principal_name` and `group_name` are the
    names known when the event happened (a user name, a group's display name), kept
    beside the ids because names can change or disappear later. `detail` holds short,
    typed values: text, numbers and flags (`{"standing": True}`, `{"attempts": 3}`).
    """

    _repr_html_ = render_html

    kind: EventKind
    at: dt.datetime
    lease_id: str | None = None
    request_id: str | None = None
    principal: PrincipalRef | None = None
    group_id: str | None = None
    requester: str | None = None
    reason: str | None = None
    approver: str | None = None
    expires_at: dt.datetime | None = None
    detail: Mapping[str, DetailValue] = attrs.field(factory=dict)
    principal_name: str | None = None
    group_name: str | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (ISO 8601 times, the principal as `kind`/`id`)."""
        out: dict[str, object] = {"kind": self.kind.value, "at": self.at.isoformat()}
        for name in (
            "lease_id",
            "request_id",
            "group_id",
            "requester",
            "reason",
            "approver",
            "principal_name",
            "group_name",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.principal is not None:
            out["principal"] = {"kind": self.principal.kind.value, "id": self.principal.id}
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at.isoformat()
        if self.detail:
            out["detail"] = dict(self.detail)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AuditEvent:
        """Rebuild an event written by `to_json` (by this version or an older one).

        Flags and counts that older versions wrote as text (`"true"`, `"3"`) come back
        typed.
        """
        principal = data.get("principal")
        ref = None
        if isinstance(principal, Mapping):
            ref = PrincipalRef(PrincipalKind(str(principal["kind"])), str(principal["id"]))
        expires = data.get("expires_at")
        detail = data.get("detail")

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        return cls(
            kind=EventKind(str(data["kind"])),
            at=dt.datetime.fromisoformat(str(data["at"])),
            lease_id=text("lease_id"),
            request_id=text("request_id"),
            principal=ref,
            group_id=text("group_id"),
            requester=text("requester"),
            reason=text("reason"),
            approver=text("approver"),
            expires_at=dt.datetime.fromisoformat(str(expires)) if expires else None,
            detail={str(k): _detail_value(str(k), v) for k, v in detail.items()}
            if isinstance(detail, Mapping)
            else {},
            principal_name=text("principal_name"),
            group_name=text("group_name"),
        )


@attrs.frozen
class StoredEvent:
    """An event in the store's outbox, with its sequence number."""

    seq: int
    event: AuditEvent


class RequestState(enum.Enum):
    """Where a self-service access request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class AccessRequest:
    """A person's request for time-bound membership, waiting for an approver.

    Attributes:
        approvers: The identities (user names or IdP group names) allowed to approve,
            resolved at submission.
        approver_source: Where the approvers came from (`resource_owner` or
            `integration_owner`).
        expires_at: When a pending request expires; once approved, until when a grant
            that meets transient errors is retried.
        access_details: The integration's custom access details, shown to the requester.
        attempts: Grant attempts that failed so far (an approved request is retried).
        retry_at: When the next grant attempt is due, after a transient failure.
        last_error: The last grant failure, in words (never a secret).
    """

    _repr_html_ = render_html

    id: str
    principal: PrincipalRef
    group_id: str
    ttl_seconds: float
    reason: str
    requester: str
    state: RequestState
    created_at: dt.datetime
    expires_at: dt.datetime
    updated_at: dt.datetime
    approvers: tuple[str, ...] = ()
    approver_source: str | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    lease_id: str | None = None
    access_details: str | None = None
    group_name: str | None = None
    principal_name: str | None = None
    attempts: int = 0
    retry_at: dt.datetime | None = None
    last_error: str | None = None
