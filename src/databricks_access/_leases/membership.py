"""Idempotent membership changes: grant and revoke, one at a time or coalesced in bulk.

`grant` always sends the add (the server treats it as idempotent); whether the principal
was already a member comes from the cheapest read there is — the principal's own
`groups` for one pair, one projected group read per group in bulk — never from listing
whole groups. Whichever way the server answers an add of an existing member or a remove
of a non-member (2xx, 400, 404, 409: it is not documented), the end state is the same
and no error is raised for it.

Bulk changes are coalesced per group into as few PATCH requests as the protocol allows
(many members per `add`, many `remove` operations per request), groups are patched
concurrently within a bound, and each pair gets its own result: a partial failure names
the pairs that failed and never hides a success. With `dry_run=True` only reads are
sent, and the plan (expected outcomes and the exact PATCH requests) is returned.
With `blind=True` the reads are skipped too: a bulk change is one PATCH per group and
chunk, and each pair's outcome is `APPLIED` (the end state is right; whether it was
already so is not known).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from databricks_access._account.api import AccountApi, Principal
from databricks_access._account.flows import Flow, OpClass, WaitForSlot, concurrently
from databricks_access._account.models import Group, PrincipalKind, PrincipalRef
from databricks_access._account.scim import add_members_body, check_id, remove_members_body
from databricks_access._account.throttle import RateLimits
from databricks_access._clock import Clock
from databricks_access._durations import Duration
from databricks_access._durations import seconds as _seconds
from databricks_access._errors import (
    BadRequestError,
    ConfigError,
    ConflictError,
    DatabricksAccessError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from databricks_access._leases.values import Pair
from databricks_access._sansio import perform

__all__ = [
    "AsyncMembershipManager",
    "ChangeNotSentError",
    "GrantOutcome",
    "GrantResult",
    "MembershipBatch",
    "MembershipFlows",
    "MembershipManager",
    "PlannedRequest",
    "RevokeOutcome",
    "RevokeResult",
]

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

GroupLike = Group | str
R = TypeVar("R", "GrantResult", "RevokeResult")

DEFAULT_BATCH = 100
DEFAULT_CONCURRENCY = 4
DEFAULT_WINDOW = 300.0


class GrantOutcome(enum.Enum):
    """What a grant did: added the member, found it already there, or failed (bulk only).

    `APPLIED`: a blind bulk grant sent the add without reading first; the principal is a
    member, whether or not it was one before.
    """

    ADDED = "added"
    ALREADY_MEMBER = "already_member"
    APPLIED = "applied"
    FAILED = "failed"


class RevokeOutcome(enum.Enum):
    """What a revoke did: removed the member, found it absent, or failed (bulk only).

    `APPLIED`: a blind bulk revoke sent the removal without reading first; the principal
    is not a member, whether or not it was one before.
    """

    REMOVED = "removed"
    NOT_MEMBER = "not_member"
    APPLIED = "applied"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class GrantResult:
    """The result of granting one principal membership in one group.

    Attributes:
        possibly_stale: The outcome rests on a read taken shortly after this manager
            changed the same membership; account reads lag writes, so `ADDED` versus
            `ALREADY_MEMBER` may be wrong (the membership itself is right).
        error: Why the pair failed, for `FAILED` results of bulk calls.
    """

    principal: PrincipalRef
    group_id: str
    outcome: GrantOutcome
    possibly_stale: bool = False
    error: DatabricksAccessError | None = attrs.field(default=None, eq=False)

    @property
    def ok(self) -> bool:
        """Whether the principal is now a member."""
        return self.outcome is not GrantOutcome.FAILED


@attrs.frozen(kw_only=True)
class RevokeResult:
    """The result of revoking one principal's membership in one group.

    Attributes:
        possibly_stale: As for `GrantResult`: `REMOVED` versus `NOT_MEMBER` may rest on
            a lagging read.
        error: Why the pair failed, for `FAILED` results of bulk calls.
    """

    principal: PrincipalRef
    group_id: str
    outcome: RevokeOutcome
    possibly_stale: bool = False
    error: DatabricksAccessError | None = attrs.field(default=None, eq=False)

    @property
    def ok(self) -> bool:
        """Whether the principal is now out of the group."""
        return self.outcome is not RevokeOutcome.FAILED


@attrs.frozen
class PlannedRequest:
    """A request a bulk change sends (or, in a dry run, would send)."""

    method: str
    path: str
    body: dict[str, Any] = attrs.field(eq=False)


@attrs.frozen(kw_only=True)
class MembershipBatch(Generic[R]):
    """The results of `grant_many` / `revoke_many`, one per pair, in the order given.

    Attributes:
        results: One result per pair (duplicates of a pair share one).
        requests: The PATCH requests sent — or, with `dry_run`, that would be sent.
        dry_run: Whether this was only a plan.
    """

    results: tuple[R, ...]
    requests: tuple[PlannedRequest, ...]
    dry_run: bool = False

    @property
    def failures(self) -> tuple[R, ...]:
        """The results that failed (each with its `error`)."""
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        """Whether every pair succeeded."""
        return not self.failures


def _group_id(group: GroupLike) -> str:
    if isinstance(group, Group):
        return check_id(group.id, "group")
    if not isinstance(group, str):
        raise ConfigError("must be a Group or a group id", "group")
    return check_id(group, "group")


def _already_member(error: DatabricksAccessError) -> bool:
    """Whether an add failed only because the principal was already a member."""
    if isinstance(error, ConflictError):
        return True
    return isinstance(error, BadRequestError) and "already" in error.detail.lower()


def _not_member(error: DatabricksAccessError) -> bool:
    """Whether a remove failed only because the principal was not a member."""
    if isinstance(error, NotFoundError):
        return True
    if isinstance(error, BadRequestError):
        code = (error.error_code or "").lower()
        return code == "notarget" or "not a member" in error.detail.lower()
    return False


Guard = Callable[[str, list[str]], Flow[list[str]]]
"""Asked before a membership request: (group id, member ids) -> the ids still allowed."""

Fold = Callable[[str, list[str]], Flow[list[str]]]
"""Asked once a removal's PATCH slot is due, when it had to wait for it: (group id,
member ids) -> more member ids to remove in the same request (the lease tracker's
leases of the group that fell due meanwhile, claimed and stored `REVOKING` first)."""


class ChangeNotSentError(DatabricksAccessError):
    """A membership change was not sent: its guard (a lease claim) no longer allowed it."""


@attrs.frozen
class _Outcomes:
    """How one `apply` sends its requests, and where it notes unproven removals."""

    adding: bool
    deadline: float | None
    guard: Guard | None
    unproven: set[Pair] | None = attrs.field(eq=False)
    check_group: bool = False
    fold: Fold | None = None
    folded: dict[str, list[str]] = attrs.field(factory=dict, eq=False)


def _transient(error: DatabricksAccessError) -> bool:
    """Whether an error says the service is unwell rather than the request is wrong."""
    return isinstance(error, (RateLimitedError, ServerError, TransportError))


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class MembershipFlows:
    """The manager's logic as flows, shared by the sync and async managers."""

    def __init__(
        self,
        api: AccountApi,
        clock: Clock,
        *,
        batch_size: int = DEFAULT_BATCH,
        concurrency: int = DEFAULT_CONCURRENCY,
        consistency_window: float = DEFAULT_WINDOW,
        paced: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 1000:
            raise ConfigError("must be an integer from 1 to 1000", "batch_size")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError("must be a positive integer", "concurrency")
        if not consistency_window >= 0:
            raise ConfigError("must be zero or more seconds", "consistency_window")
        self.api = api
        self.clock = clock
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.window = float(consistency_window)
        self.paced = paced
        """Whether the client paces PATCH requests (a rate limit): removals wait for slots."""
        self._resolved: dict[str, tuple[PrincipalRef, float]] = {}
        self._written: dict[Pair, float] = {}
        self._lock = threading.Lock()

    # -- principals and recent writes ------------------------------------------------------

    def resolve(self, principal: Principal) -> Flow[PrincipalRef]:
        """A principal as a reference; a name's lookup is reused for the consistency window.

        After that it is looked up again, so a user deleted and created anew under the
        same name is found by its new id without a restart.
        """
        if not isinstance(principal, str):
            return (yield from self.api.resolve_principal(principal))
        key = principal.casefold()
        cached = self._resolved.get(key)
        now = self.clock.monotonic()
        if cached is not None and now - cached[1] < max(self.window, 1.0):
            return cached[0]
        ref = yield from self.api.resolve_principal(principal)
        with self._lock:
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            self._resolved[key] = (ref, now)
        return ref

    def _resolve_many(
        self, principals: Sequence[Principal]
    ) -> Flow[list[PrincipalRef | DatabricksAccessError]]:
        distinct = _firsts(principals)
        outcomes: list[PrincipalRef | DatabricksAccessError]
        if any(isinstance(p, str) for p in distinct):
            # Names need a lookup each: resolve the distinct ones concurrently.
            outcomes = yield from concurrently(
                [self.resolve(p) for p in distinct], self.concurrency
            )
        else:
            outcomes = []
            for p in distinct:  # models and references: no request is sent
                outcomes.append((yield from self.resolve(p)))
        for outcome in outcomes:
            if isinstance(outcome, ConfigError):
                raise outcome
        by_key = {_key(p): o for p, o in zip(distinct, outcomes, strict=True)}
        return [by_key[_key(p)] for p in principals]

    def _note_write(self, pairs: Iterable[Pair]) -> None:
        now = self.clock.monotonic()
        with self._lock:
            for pair in pairs:
                self._written[pair] = now
            if len(self._written) > 100_000:
                cutoff = now - self.window
                self._written = {p: t for p, t in self._written.items() if t >= cutoff}

    def recently_written(self, pair: Pair) -> bool:
        """Whether this manager changed `pair` within the consistency window (monotonic)."""
        return bool(self._recently_written_of({pair.group_id: [pair.principal_id]}))

    def _recently_written_of(self, members: Mapping[str, Iterable[str]]) -> set[Pair]:
        """The pairs of `members` (principal ids by group) changed within the window."""
        if not self._written:
            return set()
        since = self.clock.monotonic() - self.window
        written = self._written
        stale: set[Pair] = set()
        for gid, ids in members.items():
            for pid in ids:
                pair = Pair(pid, gid)
                at = written.get(pair)
                if at is not None and at > since:
                    stale.add(pair)
        return stale

    # -- one pair ----------------------------------------------------------------------------

    def grant(self, principal: Principal, group: GroupLike) -> Flow[GrantResult]:
        """Make `principal` a member of `group`; say whether it already was."""
        gid = _group_id(group)
        ref = yield from self.resolve(principal)
        pair = Pair(ref.id, gid)
        stale = self.recently_written(pair)
        before = yield from self.api.principal_group_ids(ref)
        outcome = GrantOutcome.ALREADY_MEMBER if gid in before else GrantOutcome.ADDED
        try:
            yield from self.api.patch_members(gid, add=[ref.id])
        except (ConflictError, BadRequestError) as exc:
            if not _already_member(exc):
                raise
            outcome = GrantOutcome.ALREADY_MEMBER
        self._note_write([pair])
        return GrantResult(principal=ref, group_id=gid, outcome=outcome, possibly_stale=stale)

    def revoke(self, principal: Principal, group: GroupLike) -> Flow[RevokeResult]:
        """Take `principal` out of `group`; say whether it was a member."""
        gid = _group_id(group)
        ref = yield from self.resolve(principal)
        pair = Pair(ref.id, gid)
        stale = self.recently_written(pair)
        before = yield from self.api.principal_group_ids(ref)
        outcome = RevokeOutcome.REMOVED if gid in before else RevokeOutcome.NOT_MEMBER
        try:
            yield from self.api.patch_members(gid, remove=[ref.id])
        except (NotFoundError, BadRequestError) as exc:
            if not _not_member(exc):
                raise
            if isinstance(exc, NotFoundError):
                # A 404 may also mean the group does not exist: that is an error.
                yield from self.api.group_member_ids(gid)
            outcome = RevokeOutcome.NOT_MEMBER
        self._note_write([pair])
        return RevokeResult(principal=ref, group_id=gid, outcome=outcome, possibly_stale=stale)

    # -- many pairs --------------------------------------------------------------------------

    def grant_many(
        self,
        pairs: Iterable[tuple[Principal, GroupLike]],
        *,
        dry_run: bool = False,
        blind: bool = False,
    ) -> Flow[MembershipBatch[GrantResult]]:
        """Grant every pair with as few PATCH requests as possible."""
        return self._many(pairs, adding=True, dry_run=dry_run, blind=blind)

    def revoke_many(
        self,
        pairs: Iterable[tuple[Principal, GroupLike]],
        *,
        dry_run: bool = False,
        blind: bool = False,
    ) -> Flow[MembershipBatch[RevokeResult]]:
        """Revoke every pair with as few PATCH requests as possible."""
        return self._many(pairs, adding=False, dry_run=dry_run, blind=blind)

    def _many(
        self,
        pairs: Iterable[tuple[Principal, GroupLike]],
        *,
        adding: bool,
        dry_run: bool,
        blind: bool,
    ) -> Flow[MembershipBatch[Any]]:
        if not isinstance(dry_run, bool):
            raise ConfigError("must be True or False", "dry_run")
        if not isinstance(blind, bool):
            raise ConfigError("must be True or False", "blind")
        pairs = list(pairs)
        for index, item in enumerate(pairs):
            if not isinstance(item, tuple) or len(item) != 2:
                raise ConfigError(f"item {index} is not a (principal, group) pair", "pairs")
        # Each distinct group is checked once, however many pairs name it.
        checked: dict[object, str] = {}
        group_ids: list[str] = []
        for _, group in pairs:
            key = group if isinstance(group, str) else id(group)
            gid = checked.get(key)
            if gid is None:
                gid = checked[key] = _group_id(group)
            group_ids.append(gid)
        refs = yield from self._resolve_many([p for p, _ in pairs])

        # Distinct members per group, in first-seen order.
        members: dict[str, dict[str, PrincipalRef]] = {}
        for ref, gid in zip(refs, group_ids, strict=True):
            if isinstance(ref, PrincipalRef):
                members.setdefault(gid, {})[ref.id] = ref
        groups = list(members)

        # One projected read per group tells who is there already (unless blind: the
        # add and the remove are idempotent, so the read only serves the outcome).
        before: dict[str, frozenset[str] | DatabricksAccessError | None]
        if blind:
            before = dict.fromkeys(groups)
        else:
            reads = yield from concurrently(
                [self.api.group_member_ids(g) for g in groups], self.concurrency
            )
            before = dict(zip(groups, reads, strict=True))

        chunks = {
            g: _chunks(list(members[g]), self.batch_size)
            for g in groups
            if not isinstance(before[g], DatabricksAccessError)
        }
        planned = tuple(
            PlannedRequest(
                "PATCH",
                f"{self.api.scim}/Groups/{g}",
                add_members_body(chunk) if adding else remove_members_body(chunk),
            )
            for g, group_chunks in chunks.items()
            for chunk in group_chunks
        )

        stale = self._recently_written_of(members)
        failures: dict[Pair, DatabricksAccessError] = {}
        if not dry_run:
            failures = yield from self.apply(
                {g: list(members[g]) for g in chunks}, adding=adding, check_group=blind
            )

        results = [
            self._result(ref, gid, before.get(gid), failures, stale, adding=adding, blind=blind)
            for ref, gid in zip(refs, group_ids, strict=True)
        ]
        return MembershipBatch(results=tuple(results), requests=planned, dry_run=dry_run)

    def count_patches(self, changes: Mapping[str, Sequence[str]]) -> int:
        """How many PATCH requests `apply(changes)` sends when nothing fails."""
        return sum(-(-len(set(ids)) // self.batch_size) for ids in changes.values())

    def apply(
        self,
        changes: Mapping[str, Sequence[str]],
        *,
        adding: bool,
        deadline: float | None = None,
        guard: Guard | None = None,
        unproven: set[Pair] | None = None,
        check_group: bool = False,
        fold: Fold | None = None,
    ) -> Flow[dict[Pair, DatabricksAccessError]]:
        """Add (or remove) member ids per group, coalesced; returns the pairs that failed.

        Groups are patched concurrently (bounded); a group's chunks go in order. A request
        that fails is split in halves, and so on down to single members, so one member the
        server refuses never holds the others back; when a request and its first half both
        fail alike with a transient error (an outage, not one bad member), the rest is not
        sent and fails with it.

        Args:
            changes: Member ids per group id.
            adding: Add (True) or remove (False).
            deadline: The retry deadline of each request, in seconds.
            guard: Asked before each request with the group and its member ids; answers
                the ids that may still be sent (the lease tracker renews its claims
                here). The others fail with `ChangeNotSentError`, unsent.
            unproven: Filled with the pairs whose removal the server answered "not a
                member" (404, or 400 `noTarget`): an answer, not proof.
            check_group: When a removal is answered "not a member", read the group once:
                a group that does not exist fails its pairs instead of counting them as
                not members.
            fold: For removals: each request first waits for its PATCH slot; when it had
                to wait, `fold` names more members of the group to remove in it (never
                beyond `batch_size`). Their outcomes are returned like the others'.
        """
        groups = [g for g, ids in changes.items() if ids]
        chunked = {g: _chunks(list(dict.fromkeys(changes[g])), self.batch_size) for g in groups}
        sink = _Outcomes(
            adding=adding,
            deadline=deadline,
            guard=guard,
            unproven=unproven,
            check_group=check_group and not adding,
            fold=None if adding else fold,
        )
        outcomes = yield from concurrently(
            [self._apply(g, chunked[g], sink) for g in groups], self.concurrency
        )
        for g, extra in sink.folded.items():
            chunked[g].append(extra)  # folded members count as sent in their group
        failures: dict[Pair, DatabricksAccessError] = {}
        for g, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, DatabricksAccessError):
                failures.update({Pair(m, g): outcome for chunk in chunked[g] for m in chunk})
            else:
                failures.update(outcome)
        self._note_write(
            Pair(m, g)
            for g in groups
            for chunk in chunked[g]
            for m in chunk
            if not isinstance(failures.get(Pair(m, g)), ChangeNotSentError)
        )
        return failures

    def _apply(
        self, gid: str, group_chunks: list[list[str]], sink: _Outcomes
    ) -> Flow[dict[Pair, DatabricksAccessError]]:
        """Send one group's chunks in order; returns the pairs that failed."""
        failed: dict[Pair, DatabricksAccessError] = {}
        local = attrs.evolve(sink, unproven=set()) if sink.check_group else sink
        for chunk in group_chunks:
            yield from self._send(gid, chunk, local, failed)
        if local is not sink and local.unproven:
            # "Not a member" may also mean the group does not exist: then every pair fails.
            try:
                yield from self.api.group_member_ids(gid, deadline=sink.deadline)
            except DatabricksAccessError as missing:
                return {Pair(m, gid): missing for chunk in group_chunks for m in chunk}
            if sink.unproven is not None:
                sink.unproven.update(local.unproven)
        return failed

    def _send(
        self,
        gid: str,
        ids: list[str],
        sink: _Outcomes,
        failed: dict[Pair, DatabricksAccessError],
    ) -> Flow[None]:
        """One request for `ids`; when it fails, find the members it failed for.

        With a `fold`, the request first waits for its PATCH slot, then takes in what
        `fold` adds, so what fell due during the wait leaves in this request.
        """
        reserved = False
        if sink.fold is not None:
            waited = yield from perform(WaitForSlot(OpClass.PATCH))
            reserved = True
            room = self.batch_size - len(ids)
            if waited > 0:
                extra = [m for m in (yield from sink.fold(gid, ids)) if m not in ids][
                    : max(room, 0)
                ]
                if extra:
                    sink.folded.setdefault(gid, []).extend(extra)
                    ids = [*ids, *extra]
        error = yield from self._try(gid, ids, sink, failed, reserved=reserved)
        if error is not None:
            yield from self._split(gid, ids, error, sink, failed)

    def _split(
        self,
        gid: str,
        ids: list[str],
        error: DatabricksAccessError,
        sink: _Outcomes,
        failed: dict[Pair, DatabricksAccessError],
    ) -> Flow[None]:
        """Bisect a failed request: send both halves, then split the halves that failed.

        One member the server refuses costs about two requests per halving; when both
        halves fail alike with a transient error the service is unwell (not one
        member), and no more requests are spent on it.
        """
        if len(ids) == 1:
            failed[Pair(ids[0], gid)] = error
            return
        halves = [ids[: len(ids) // 2], ids[len(ids) // 2 :]]
        errors: list[DatabricksAccessError | None] = []
        for half in halves:
            half_error = yield from self._try(gid, half, sink, failed)
            errors.append(half_error)
        if all(e is not None and _transient(e) for e in errors):
            for half, half_error in zip(halves, errors, strict=True):
                failed.update({Pair(m, gid): half_error or error for m in half})
            return
        for half, half_error in zip(halves, errors, strict=True):
            if half_error is not None:
                yield from self._split(gid, half, half_error, sink, failed)

    def _try(
        self,
        gid: str,
        ids: list[str],
        sink: _Outcomes,
        failed: dict[Pair, DatabricksAccessError],
        *,
        reserved: bool = False,
    ) -> Flow[DatabricksAccessError | None]:
        """Send one request (what its guard allows); returns its error, if any is left.

        `reserved`: its PATCH slot was already waited for (see `WaitForSlot`).
        """
        if sink.guard is not None:
            allowed = set((yield from sink.guard(gid, ids)))
            for member in ids:
                if member not in allowed:
                    failed[Pair(member, gid)] = ChangeNotSentError(
                        f"the change of {member} in group {gid} was not sent: its claim was lost"
                    )
            ids = [member for member in ids if member in allowed]
            if not ids:
                return None
        tolerated = _already_member if sink.adding else _not_member
        try:
            yield from self._patch(gid, ids, sink.adding, sink.deadline, reserved=reserved)
        except DatabricksAccessError as exc:
            if not tolerated(exc):
                return exc
            if len(ids) > 1:
                # The server refused the batch for one member's state: go one by one
                # (only in that server mode), so every other member still changes.
                for member in ids:
                    error = yield from self._try(gid, [member], sink, failed)
                    if error is not None:
                        failed[Pair(member, gid)] = error
            elif not sink.adding and sink.unproven is not None:
                sink.unproven.add(Pair(ids[0], gid))
        return None

    def _patch(
        self,
        gid: str,
        ids: list[str],
        adding: bool,
        deadline: float | None,
        *,
        reserved: bool = False,
    ) -> Flow[None]:
        if adding:
            yield from self.api.patch_members(
                gid, add=ids, deadline=deadline, slot_reserved=reserved
            )
        else:
            yield from self.api.patch_members(
                gid, remove=ids, deadline=deadline, slot_reserved=reserved
            )

    def _result(
        self,
        ref: PrincipalRef | DatabricksAccessError,
        gid: str,
        before: frozenset[str] | DatabricksAccessError | None,
        failures: dict[Pair, DatabricksAccessError],
        stale: set[Pair],
        *,
        adding: bool,
        blind: bool = False,
    ) -> GrantResult | RevokeResult:
        cls: Callable[..., GrantResult | RevokeResult] = GrantResult if adding else RevokeResult
        failed_outcome = GrantOutcome.FAILED if adding else RevokeOutcome.FAILED
        if isinstance(ref, DatabricksAccessError):
            unknown = PrincipalRef(PrincipalKind.USER, "?")
            return cls(principal=unknown, group_id=gid, outcome=failed_outcome, error=ref)
        if isinstance(before, DatabricksAccessError):
            return cls(principal=ref, group_id=gid, outcome=failed_outcome, error=before)
        failure = failures.get(Pair(ref.id, gid)) if failures else None
        if failure is not None:
            return cls(principal=ref, group_id=gid, outcome=failed_outcome, error=failure)
        if blind:
            applied = GrantOutcome.APPLIED if adding else RevokeOutcome.APPLIED
            return cls(principal=ref, group_id=gid, outcome=applied)
        present = before is not None and ref.id in before
        if adding:
            outcome: GrantOutcome | RevokeOutcome = (
                GrantOutcome.ALREADY_MEMBER if present else GrantOutcome.ADDED
            )
        else:
            outcome = RevokeOutcome.REMOVED if present else RevokeOutcome.NOT_MEMBER
        return cls(
            principal=ref,
            group_id=gid,
            outcome=outcome,
            possibly_stale=bool(stale) and Pair(ref.id, gid) in stale,
        )


def _paces_patches(limits: RateLimits | None) -> bool:
    return limits is not None and limits.rate_for(OpClass.PATCH) is not None


def _key(principal: Principal) -> object:
    """Names compare by value (case-insensitively), models and references by identity."""
    return principal.casefold() if isinstance(principal, str) else id(principal)


def _firsts(principals: Sequence[Principal]) -> list[Principal]:
    """The first occurrence of each distinct principal."""
    seen: set[object] = set()
    out: list[Principal] = []
    for p in principals:
        key = _key(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


class MembershipManager:
    """Idempotent grant and revoke of group membership, one pair or many.

    Example::

        manager = da.MembershipManager(client)
        result = manager.grant("alice@example.com", group)
        result.outcome            # GrantOutcome.ADDED or GrantOutcome.ALREADY_MEMBER
        plan = manager.grant_many([(alice, ops), (bob, ops)], dry_run=True)
        plan.requests             # the PATCH requests it would send

    Args:
        client: The account client.
        batch_size: Members per PATCH request (default 100).
        concurrency: Groups patched at the same time (default 4).
        consistency_window: How long after its own write a read of the same membership
            is flagged `possibly_stale` (default 5 minutes).
    """

    def __init__(
        self,
        client: AccountClient,
        *,
        batch_size: int = DEFAULT_BATCH,
        concurrency: int = DEFAULT_CONCURRENCY,
        consistency_window: Duration = DEFAULT_WINDOW,
    ) -> None:
        self.client = client
        self._flows = MembershipFlows(
            client._api,  # the manager runs the client's flows
            client.clock,
            batch_size=batch_size,
            concurrency=concurrency,
            consistency_window=_seconds(consistency_window, "consistency_window"),
            paced=_paces_patches(client.rate_limits),
        )
        self._run = client._driver.run

    def resolve(self, principal: Principal) -> PrincipalRef:
        """A principal as a `PrincipalRef` (names are looked up once per manager)."""
        return self._run(self._flows.resolve(principal))

    def grant(self, principal: Principal, group: GroupLike) -> GrantResult:
        """Make `principal` a member of `group` (idempotent)."""
        return self._run(self._flows.grant(principal, group))

    def revoke(self, principal: Principal, group: GroupLike) -> RevokeResult:
        """Take `principal` out of `group` (idempotent)."""
        return self._run(self._flows.revoke(principal, group))

    def grant_many(
        self,
        pairs: Iterable[tuple[Principal, GroupLike]],
        dry_run: bool = False,
        *,
        blind: bool = False,
    ) -> MembershipBatch[GrantResult]:
        """Grant many (principal, group) pairs in as few PATCH requests as possible.

        With `blind=True` no read is sent first: one PATCH per group (per
        `batch_size` members) and outcomes `GrantOutcome.APPLIED`.
        """
        return self._run(self._flows.grant_many(pairs, dry_run=dry_run, blind=blind))

    def revoke_many(
        self,
        pairs: Iterable[tuple[Principal, GroupLike]],
        dry_run: bool = False,
        *,
        blind: bool = False,
    ) -> MembershipBatch[RevokeResult]:
        """Revoke many (principal, group) pairs in as few PATCH requests as possible.

        With `blind=True` no read is sent first: one PATCH per group (per
        `batch_size` members) and outcomes `RevokeOutcome.APPLIED`.
        """
        return self._run(self._flows.revoke_many(pairs, dry_run=dry_run, blind=blind))

    def __repr__(self) -> str:
        return f"MembershipManager({self.client!r})"


class AsyncMembershipManager:
    """`MembershipManager` on an `AsyncAccountClient`: the same methods, awaited."""

    def __init__(
        self,
        client: AsyncAccountClient,
        *,
        batch_size: int = DEFAULT_BATCH,
        concurrency: int = DEFAULT_CONCURRENCY,
        consistency_window: Duration = DEFAULT_WINDOW,
    ) -> None:
        self.client = client
        self._flows = MembershipFlows(
            client._api,
            client.clock,
            batch_size=batch_size,
            concurrency=concurrency,
            consistency_window=_seconds(consistency_window, "consistency_window"),
            paced=_paces_patches(client.rate_limits),
        )
        self._run = client._driver.run

    async def resolve(self, principal: Principal) -> PrincipalRef:
        """A principal as a `PrincipalRef` (names are looked up once per manager)."""
        return await self._run(self._flows.resolve(principal))

    async def grant(self, principal: Principal, group: GroupLike) -> GrantResult:
        """Make `principal` a member of `group` (idempotent)."""
        return await self._run(self._flows.grant(principal, group))

    async def revoke(self, principal: Principal, group: GroupLike) -> RevokeResult:
        """Take `principal` out of `group` (idempotent)."""
        return await self._run(self._flows.revoke(principal, group))

    async def grant_many(
        self,
        pairs: Iterable[tuple[Principal, GroupLike]],
        dry_run: bool = False,
        *,
        blind: bool = False,
    ) -> MembershipBatch[GrantResult]:
        """Grant many (principal, group) pairs in as few PATCH requests as possible."""
        return await self._run(self._flows.grant_many(pairs, dry_run=dry_run, blind=blind))

    async def revoke_many(
        self,
        pairs: Iterable[tuple[Principal, GroupLike]],
        dry_run: bool = False,
        *,
        blind: bool = False,
    ) -> MembershipBatch[RevokeResult]:
        """Revoke many (principal, group) pairs in as few PATCH requests as possible."""
        return await self._run(self._flows.revoke_many(pairs, dry_run=dry_run, blind=blind))

    def __repr__(self) -> str:
        return f"AsyncMembershipManager({self.client!r})"
