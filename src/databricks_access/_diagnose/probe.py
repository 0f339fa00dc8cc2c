"""The account probe: measure what a real account does where the API is undocumented.

`probe(client, principals)` (async: `await aprobe(client, principals)`) runs a short,
scripted, polite sequence of requests on a *sandbox group* it creates under a unique
name (`databricks-access-probe-<random>`) and deletes at the end, also after an error or
an interrupt. It adds and removes only the principals the caller names, and it writes to
no other group. What it measures, each with how and how precisely, goes into a
`ProbeReport`:

- the most members one SCIM PATCH accepts (as far as the named principals reach);
- how long a group read lags a membership write;
- what adding an existing member and removing an absent one answer;
- whether list replies carry `totalResults`;
- whether a `+` sent raw in a filter value is read as a space (when a named user's
  user name holds a `+`);
- whether a 429 / 5xx answer to a PATCH was applied (only when one is met);
- opt-in (`rate_limits=True`): per operation class, how many requests at twice the
  published rate pass before the first 429, and whether that 429 carries `Retry-After`.

The probe is one flow (`_Script`), run by either driver; `plan=True` lists the requests
it would send (`ProbePlan`) and sends nothing. Measuring requests are sent once, never
retried by the driver, so every answer is seen as the server gave it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote

import attrs

from databricks_access._account.api import AccountApi, Principal, _is_uuid
from databricks_access._account.flows import Call, Flow, OpClass, Reply, request
from databricks_access._account.models import (
    Group,
    PrincipalKind,
    PrincipalRef,
    ServicePrincipal,
    User,
)
from databricks_access._account.scim import (
    add_members_body,
    encode_query,
    filter_eq,
    remove_members_body,
)
from databricks_access._account.serde import malformed
from databricks_access._diagnose.probe_report import (
    BatchLimit,
    MemberAnswers,
    PlusInFilter,
    ProbeReport,
    RateLimitRun,
    ReadLag,
    TotalResults,
    TransientAnswer,
    seconds_text,
)
from databricks_access._errors import (
    ApiError,
    ConfigError,
    DatabricksAccessError,
    NotFoundError,
    RateLimitedError,
)
from databricks_access._sansio import Effect, perform

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._clock import Clock

__all__ = [
    "SANDBOX_PREFIX",
    "PlannedProbeRequest",
    "ProbePlan",
    "aprobe",
    "cleanup_flow",
    "probe",
]

logger = logging.getLogger("databricks_access")

SANDBOX_PREFIX = "databricks-access-probe-"
"""Every sandbox group's name starts with this."""

# The published (unconfirmed) account API limits per second.
_PUBLISHED = {OpClass.GET: 20.0, OpClass.LIST: 4.0, OpClass.PATCH: 2.0}
_ATTEMPTS = 3  # a PATCH answered 429 / 5xx is sent again at most this many times in all
_LONGEST_WAIT = 30.0  # the longest pause between two reads of the lag measurement
_LONGEST_RETRY_AFTER = 60.0


# -- options and the plan ------------------------------------------------------------------


def _number(low: float, high: float) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"must be a number, not {type(value).__name__}", attribute.name)
        if not low <= value <= high:
            raise ConfigError(f"must be from {low:g} to {high:g}, got {value!r}", attribute.name)

    return check


def _flag(_instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"must be True or False, not {value!r}", attribute.name)


@attrs.frozen(kw_only=True)
class _Options:
    spacing: float = attrs.field(default=1.0, validator=_number(0.5, 60.0))
    max_lag: float = attrs.field(default=900.0, validator=_number(1.0, 3600.0))
    rate_limits: bool = attrs.field(default=False, validator=_flag)
    rate_limit_seconds: float = attrs.field(default=5.0, validator=_number(1.0, 60.0))
    max_batch: int = attrs.field(default=1000, validator=_number(1, 10_000))


def _read_waits(options: _Options) -> list[float]:
    """The pauses before each read of the lag measurement: s, s, 2s, 4s, ... (capped)."""
    waits: list[float] = []
    total, wait = 0.0, options.spacing
    while total < options.max_lag:
        waits.append(wait)
        total += wait
        if len(waits) > 1:
            wait = min(wait * 2, _LONGEST_WAIT)
    return waits


def _batch_sizes(count: int) -> list[int]:
    """The PATCH sizes tried upward: 2, 4, 8, ... below `count`, then `count`."""
    sizes, size = [], 2
    while size < count:
        sizes.append(size)
        size *= 2
    if count >= 2:
        sizes.append(count)
    return sizes


@attrs.frozen(kw_only=True)
class PlannedProbeRequest:
    """One request of the probe's script, as `ProbePlan` lists it.

    Attributes:
        step: The measurement it belongs to.
        method: The HTTP method.
        target: The path and query, with `{sandbox}` for the sandbox group's id and
            `{principal N}` for the N-th named principal's id.
        purpose: What it is for.
        times: How often it is sent: `1`, or a range such as `1-36` when it repeats
            until an answer shows.
    """

    step: str
    method: str
    target: str
    purpose: str
    times: str = "1"


@attrs.frozen(kw_only=True)
class ProbePlan:
    """Every request the probe would send, in order; building it sends nothing.

    `str(plan)` lists them one per line.

    Attributes:
        sandbox_group: The sandbox group's name.
        requests: The requests, in order.
        notes: What can add requests beyond the list (resent PATCHes, bisection).
    """

    sandbox_group: str
    requests: tuple[PlannedProbeRequest, ...]
    notes: tuple[str, ...] = ()

    @property
    def most_requests(self) -> int:
        """The most requests the listed lines send (each at its largest `times`)."""
        return sum(int(r.times.rpartition("-")[2]) for r in self.requests)

    def __str__(self) -> str:
        lines = [
            f"The probe would send these requests (sandbox group {self.sandbox_group}):",
            *(
                f"{i:>3}. [{r.step}] {r.method} {r.target}  x{r.times}  ({r.purpose})"
                for i, r in enumerate(self.requests, 1)
            ),
        ]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _described(principal: Principal) -> tuple[str | None, str]:
    """(a lookup target or None, how the plan names it) for one named principal."""
    if isinstance(principal, str):
        if "@" in principal:
            return f"Users?filter={filter_eq('userName', principal)}", principal
        return f"ServicePrincipals?filter={filter_eq('applicationId', principal)}", principal
    if isinstance(principal, (User, ServicePrincipal)):
        return None, str(principal.ref)
    return None, str(principal)


def _plan(
    api: AccountApi, principals: Sequence[Principal], options: _Options, sandbox: str
) -> ProbePlan:
    group = f"{api.scim}/Groups/{{sandbox}}"
    count = min(len(principals), options.max_batch)
    out: list[PlannedProbeRequest] = []

    def add(step: str, method: str, target: str, purpose: str, times: str = "1") -> None:
        out.append(
            PlannedProbeRequest(
                step=step, method=method, target=target, purpose=purpose, times=times
            )
        )

    for principal in principals:
        lookup, shown = _described(principal)
        if lookup is not None:
            add("resolve", "GET", f"{api.scim}/{lookup}", f"find the id of {shown}")
    add("sandbox", "POST", f"{api.scim}/Groups", f"create the sandbox group {sandbox}")
    add("read_lag", "PATCH", group, "add {principal 1}: the write whose visibility is timed")
    add(
        "read_lag",
        "GET",
        f"{group}?attributes=id,members",
        "read the members until {principal 1} shows, after waits of "
        + ", ".join(f"{w:g}" for w in _read_waits(options)[:6])
        + f", ... s (at most {options.max_lag:g} s)",
        f"1-{len(_read_waits(options))}",
    )
    add(
        "total_results",
        "GET",
        f'{api.scim}/Groups?filter=displayName eq "{sandbox}"&attributes=id,displayName',
        "list the sandbox group: does the reply carry totalResults?",
    )
    add("member_answers", "PATCH", group, "add {principal 1} again: an existing member")
    add("member_answers", "PATCH", group, "remove {principal 1}")
    add("member_answers", "PATCH", group, "remove {principal 1} again: an absent member")
    for size in _batch_sizes(count):
        add("batch", "PATCH", group, f"add {{principal 1}} to {{principal {size}}}: {size} members")
        add("batch", "PATCH", group, f"remove those {size} (one remove per member), if added")
    plus = [p for p in principals if "+" in _user_name(p)]
    if plus:
        name = _user_name(plus[0])
        for how in ("with '+' sent as is", "with '+' sent as %2B"):
            add(
                "plus_in_filter",
                "GET",
                f"{api.scim}/Users?filter={filter_eq('userName', name)}",
                f"find {name} {how}",
            )
    if options.rate_limits:
        for op, method, target in _rate_targets(group, sandbox, api):
            rate = 2 * _PUBLISHED[op]
            most = math.ceil(rate * options.rate_limit_seconds)
            add(
                "rate_limits",
                method,
                target,
                f"{op.value} requests at {rate:g}/s until the first 429",
                f"1-{most}",
            )
    add("cleanup", "DELETE", group, "delete the sandbox group (also after an error)")
    bisections = max(1, math.ceil(math.log2(max(count, 2))))
    notes = [
        f"a PATCH answered 429 or 5xx is sent again after a pause, at most {_ATTEMPTS} times",
        (
            "the timed write answered 404 (the new group not yet visible) is sent again, "
            f"at most {_ATTEMPTS + 1} more times"
        ),
        f"a refused batch size is bisected: at most {bisections} more pairs of PATCHes",
        f"requests are at least {options.spacing:g} s apart (the rate-limit runs excepted)",
    ]
    return ProbePlan(sandbox_group=sandbox, requests=tuple(out), notes=tuple(notes))


def _rate_targets(group: str, sandbox: str, api: AccountApi) -> list[tuple[OpClass, str, str]]:
    return [
        (OpClass.GET, "GET", f"{group}?attributes=id,displayName"),
        (
            OpClass.LIST,
            "GET",
            f'{api.scim}/Groups?filter=displayName eq "{sandbox}"&attributes=id',
        ),
        (OpClass.PATCH, "PATCH", f"{group} (add, then remove, {{principal 1}})"),
    ]


def _user_name(principal: Principal) -> str:
    if isinstance(principal, str) and "@" in principal:
        return principal
    if isinstance(principal, User):
        return principal.user_name
    return ""


def _checked_principals(principals: object) -> list[Principal]:
    if isinstance(principals, (str, bytes)) or not isinstance(principals, Sequence):
        raise ConfigError("must be a list of users or service principals", "principals")
    if not principals:
        raise ConfigError(
            "name at least one user or service principal for the probe to add and remove",
            "principals",
        )
    checked: list[Principal] = []
    for item in principals:
        if isinstance(item, Group) or (
            isinstance(item, PrincipalRef) and item.kind is PrincipalKind.GROUP
        ):
            raise ConfigError("must be users or service principals, not groups", "principals")
        if isinstance(item, str) and "@" not in item and not _is_uuid(item.strip()):
            raise ConfigError(
                f"holds {item[:80]!r}: name users by user name (an email) and service "
                "principals by application id (a UUID)",
                "principals",
            )
        if not isinstance(item, (str, User, ServicePrincipal, PrincipalRef)):
            raise ConfigError(
                f"holds {type(item).__name__}, not a user name, application id or model",
                "principals",
            )
        checked.append(item)
    return checked


# -- the script ---------------------------------------------------------------------------------


@attrs.frozen
class _Sleep(Effect[None]):
    """Wait this many seconds on the client's clock."""

    seconds: float


@attrs.frozen
class _Monotonic(Effect[float]):
    """The client's monotonic clock."""


@attrs.define
class _Sandbox:
    """What cleanup needs to know, even when the script was cut short."""

    name: str
    creating: bool = False
    group_id: str | None = None
    deleted: bool = False


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _member_values(data: object) -> set[str]:
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list):
        return set()
    return {m["value"] for m in members if isinstance(m, dict) and isinstance(m.get("value"), str)}


class _Script:
    """The probe's requests and measurements, as one flow."""

    def __init__(
        self,
        api: AccountApi,
        options: _Options,
        sandbox: _Sandbox,
        principals: Sequence[Principal],
        *,
        host: str,
        generated_at: dt.datetime,
    ) -> None:
        self.api = api
        self.options = options
        self.sandbox = sandbox
        self.principals = principals
        self.host = host
        self.generated_at = generated_at
        self.transient: list[TransientAnswer] = []
        self._last: float | None = None

    # -- sending -----------------------------------------------------------------------

    def _now(self) -> Flow[float]:
        return (yield from perform(_Monotonic()))

    def _pause(self, seconds: float) -> Flow[None]:
        if seconds > 0:
            yield _Sleep(seconds)

    def _send(self, call: Call) -> Flow[Reply]:
        """Send one call at least `spacing` after the previous one."""
        now = yield from self._now()
        if self._last is not None:
            yield from self._pause(self._last + self.options.spacing - now)
        try:
            reply = yield from request(call)
        except ApiError:
            self._last = yield from self._now()
            raise
        self._last = yield from self._now()
        return reply

    def _status(self, call: Call) -> Flow[tuple[int, Any, ApiError | None]]:
        """(status, JSON body, error) of one call sent once."""
        try:
            reply = yield from self._send(call)
        except ApiError as exc:
            return exc.status_code, None, exc
        return reply.status, reply.json(), None

    @property
    def _group(self) -> str:
        assert self.sandbox.group_id is not None  # noqa: S101 - set by the first step
        return f"{self.api.scim}/Groups/{self.sandbox.group_id}"

    def _patch_call(self, body: dict[str, Any]) -> Call:
        return Call(
            method="PATCH",
            path=self._group,
            body=body,
            op=OpClass.PATCH,
            idempotent=True,
            retries=False,
        )

    def _patch(self, step: str, body: dict[str, Any]) -> Flow[int | None]:
        """The status of a PATCH, sent again after a 429 / 5xx; None if every try was."""
        for attempt in range(_ATTEMPTS):
            status, _, error = yield from self._status(self._patch_call(body))
            if not _transient(status):
                return status
            after = error.retry_after if error is not None else None
            self.transient.append(
                TransientAnswer(step=step, method="PATCH", status=status, retry_after=after)
            )
            wait = after if after is not None else 2 * self.options.spacing * 2**attempt
            yield from self._pause(min(wait, _LONGEST_RETRY_AFTER))
        return None

    def _members(self) -> Flow[set[str]]:
        """The group's members as one read sees them (none while the group reads 404)."""
        try:
            reply = yield from self._send(
                Call(
                    method="GET",
                    path=self._group,
                    query=encode_query([("attributes", "id,members")]),
                    op=OpClass.GET,
                    idempotent=True,
                )
            )
        except NotFoundError:
            return set()  # a read lagging even the group's creation
        return _member_values(reply.json())

    # -- the steps ---------------------------------------------------------------------

    def run(self) -> Flow[ProbeReport]:
        ids: list[str] = []
        for principal in self.principals:
            ref = yield from self.api.resolve_principal(principal)
            if ref.id not in ids:
                ids.append(ref.id)
        ids = ids[: self.options.max_batch]
        yield from self._create()
        read_lag = yield from self._read_lag(ids[0])
        total = yield from self._total_results()
        answers = yield from self._member_answers(ids[0])
        batch = yield from self._batch(ids)
        plus = yield from self._plus()
        runs: list[RateLimitRun] = []
        if self.options.rate_limits:
            runs = yield from self._rate_limits(ids[0])
        yield from self._delete()
        from databricks_access._about import __version__  # noqa: PLC0415

        return ProbeReport(
            library_version=__version__,
            generated_at=self.generated_at,
            host=self.host,
            sandbox_deleted=self.sandbox.deleted,
            principals=len(ids),
            batch=batch,
            read_lag=read_lag,
            member_answers=answers,
            total_results=total,
            plus_in_filter=plus,
            transient=tuple(self.transient),
            rate_limits=tuple(runs),
        )

    def _create(self) -> Flow[None]:
        self.sandbox.creating = True
        reply = yield from self._send(
            Call(
                method="POST",
                path=f"{self.api.scim}/Groups",
                body={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": self.sandbox.name,
                },
                op=OpClass.WRITE,
                idempotent=False,
                retries=False,
            )
        )
        data = reply.json()
        group_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(group_id, str) or not group_id:
            raise malformed("the created group has no id")
        self.sandbox.group_id = group_id

    def _read_lag(self, member: str) -> Flow[ReadLag]:
        options = self.options
        for attempt in range(_ATTEMPTS + 2):
            status, _, error = yield from self._status(self._patch_call(add_members_body([member])))
            if status != 404 or attempt == _ATTEMPTS + 1:
                break
            # The new group itself may not be visible yet: wait, and write again.
            yield from self._pause(options.spacing * 2**attempt)
        written = yield from self._now()
        transient: TransientAnswer | None = None
        if _transient(status):
            after = error.retry_after if error is not None else None
            transient = TransientAnswer(
                step="read_lag", method="PATCH", status=status, retry_after=after
            )
        elif error is not None:
            raise error  # the probe cannot write to its own group: nothing to measure
        stale_for, shown_after, reads = 0.0, None, 0
        for wait in _read_waits(options):
            yield from self._pause(wait)
            members = yield from self._members()
            reads += 1
            elapsed = (yield from self._now()) - written
            if member in members:
                shown_after = elapsed
                break
            stale_for = elapsed
        how = (
            "one PATCH added a named principal to the sandbox group; the group was then "
            f"read (GET, attributes=id,members) after waits of {options.spacing:g} s, "
            f"doubling up to {_LONGEST_WAIT:g} s, until the member showed or "
            f"{options.max_lag:g} s passed"
        )
        if transient is not None:
            self.transient.append(attrs.evolve(transient, applied=True if shown_after else None))
            if shown_after is None:
                # Not visible: never applied, or a lag beyond the bound. Put it in place.
                yield from self._patch("read_lag", add_members_body([member]))
                return ReadLag(
                    bound=options.max_lag,
                    reads=reads,
                    how=f"{how}; the write was answered {status} and never showed, so the "
                    "lag could not be told from a write that was not applied",
                )
        if shown_after is None:
            return ReadLag(
                at_least=stale_for,
                reads=reads,
                bound=options.max_lag,
                how=how,
                uncertainty=f"a lower bound only: still stale after {seconds_text(stale_for)}",
            )
        return ReadLag(
            at_least=stale_for,
            at_most=shown_after,
            reads=reads,
            bound=options.max_lag,
            how=how,
            uncertainty=f"the lag lies between the last stale read ({seconds_text(stale_for)}) "
            f"and the first fresh one ({seconds_text(shown_after)}); reads are not monotonic "
            "on every account, so a single fresh read is no promise",
        )

    def _total_results(self) -> Flow[TotalResults]:
        query = encode_query(
            [
                ("filter", filter_eq("displayName", self.sandbox.name)),
                ("attributes", "id,displayName"),
            ]
        )
        status, data, error = yield from self._status(
            Call(
                method="GET",
                path=f"{self.api.scim}/Groups",
                query=query,
                op=OpClass.LIST,
                idempotent=True,
                retries=False,
            )
        )
        if error is not None:
            return TotalResults(how=f"the group list was answered {status}")
        present = isinstance(data, dict) and "totalResults" in data
        found = len(data.get("Resources") or []) if isinstance(data, dict) else 0
        return TotalResults(
            present=present,
            how=f"one group list filtered by the sandbox group's name ({found} resource(s))",
        )

    def _member_answers(self, member: str) -> Flow[MemberAnswers]:
        existing = yield from self._patch("add_existing", add_members_body([member]))
        removed = yield from self._patch("remove_member", remove_members_body([member]))
        if removed is None or not 200 <= removed < 300:
            return MemberAnswers(
                add_existing=existing,
                how="adding a member already in the sandbox group; removing it answered "
                + ("429/5xx every time" if removed is None else str(removed))
                + ", so removing an absent member was not tried",
            )
        absent = yield from self._patch("remove_absent", remove_members_body([member]))
        return MemberAnswers(
            add_existing=existing,
            remove_missing=absent,
            how="one PATCH adding a principal already in the sandbox group; one removing it; "
            "one removing it again",
        )

    def _try_batch(self, ids: list[str]) -> Flow[tuple[str, int | None]]:
        """("ok" | "refused" | "stopped", status) of adding (then removing) `ids`."""
        status = yield from self._patch("batch", add_members_body(ids))
        if status is None:
            return "stopped", None
        if not 200 <= status < 300:
            return "refused", status
        removed = yield from self._patch("batch", remove_members_body(ids))
        if removed is None or not 200 <= removed < 300:
            return "stuck", removed
        return "ok", status

    def _batch(self, ids: list[str]) -> Flow[BatchLimit]:
        count = len(ids)
        accepted, refused, refused_status = 1, None, None
        how = (
            f"PATCHes adding {', '.join(map(str, [1, *_batch_sizes(count)]))} distinct named "
            "principals at once, each undone by one PATCH removing them"
        )
        stopped = ""
        for size in _batch_sizes(count):
            outcome, status = yield from self._try_batch(ids[:size])
            if outcome == "ok":
                accepted = size
                continue
            if outcome == "refused":
                refused, refused_status = size, status
            else:
                stopped = f"; stopped at {size}: " + (
                    "every attempt was answered 429/5xx"
                    if outcome == "stopped"
                    else f"removing them answered {status}"
                )
                if outcome == "stuck":
                    accepted = size
            break
        if refused is not None:
            how += "; the refused size was then bisected"
            while refused - accepted > 1:
                middle = (accepted + refused) // 2
                outcome, status = yield from self._try_batch(ids[:middle])
                if outcome == "ok":
                    accepted = middle
                elif outcome == "refused":
                    refused, refused_status = middle, status
                else:
                    stopped = f"; bisection stopped at {middle}"
                    break
        if refused is not None and refused == accepted + 1:
            uncertainty = "exact"
        elif refused is not None:
            uncertainty = f"the limit lies from {accepted} to {refused - 1}"
        else:
            uncertainty = (
                f"a lower bound: {count} principal(s) were named, so no larger PATCH "
                "could be tried; name more to measure further"
            )
        return BatchLimit(
            largest_accepted=accepted,
            smallest_refused=refused,
            refused_status=refused_status,
            principals=count,
            how=how + stopped,
            uncertainty=uncertainty,
        )

    def _plus(self) -> Flow[PlusInFilter]:
        names = [n for p in self.principals if "+" in (n := _user_name(p))]
        if not names:
            return PlusInFilter(
                how="no named principal's user name contains '+' (name one such user to measure it)"
            )
        name = names[0]
        text = filter_eq("userName", name)
        found: list[tuple[int, bool]] = []
        for filter_text in (quote(text, safe="+"), quote(text, safe="")):
            status, data, _ = yield from self._status(
                Call(
                    method="GET",
                    path=f"{self.api.scim}/Users",
                    query=f"filter={filter_text}&attributes=id,userName",
                    op=OpClass.LIST,
                    idempotent=True,
                    retries=False,
                )
            )
            resources = (data.get("Resources") or []) if isinstance(data, dict) else []
            hit = any(
                isinstance(r, dict) and str(r.get("userName", "")).casefold() == name.casefold()
                for r in resources
            )
            found.append((status, hit))
        (raw_status, raw_found), (encoded_status, encoded_found) = found
        return PlusInFilter(
            raw_status=raw_status,
            raw_found=raw_found,
            encoded_status=encoded_status,
            encoded_found=encoded_found,
            how="two user lists filtered by a named user name holding '+': once with the "
            "'+' sent as is, once as %2B",
        )

    def _rate_limits(self, member: str) -> Flow[list[RateLimitRun]]:
        runs: list[RateLimitRun] = []
        for op in (OpClass.GET, OpClass.LIST, OpClass.PATCH):
            run = yield from self._rate_run(op, member)
            runs.append(run)
            # Let the bucket fill again before the next class (and before cleanup).
            rest = run.retry_after if run.retry_after is not None else 2.0
            yield from self._pause(min(rest, _LONGEST_RETRY_AFTER) + self.options.spacing)
        return runs

    def _rate_call(self, op: OpClass, member: str, number: int) -> Call:
        # Sent faster than the published figures on purpose: past the client's throttle.
        return attrs.evolve(self._rate_request(op, member, number), throttled=False)

    def _rate_request(self, op: OpClass, member: str, number: int) -> Call:
        if op is OpClass.GET:
            query = encode_query([("attributes", "id,displayName")])
            return Call(
                method="GET", path=self._group, query=query, op=op, idempotent=True, retries=False
            )
        if op is OpClass.LIST:
            query = encode_query(
                [("filter", filter_eq("displayName", self.sandbox.name)), ("attributes", "id")]
            )
            return Call(
                method="GET",
                path=f"{self.api.scim}/Groups",
                query=query,
                op=op,
                idempotent=True,
                retries=False,
            )
        body = add_members_body([member]) if number % 2 == 0 else remove_members_body([member])
        return self._patch_call(body)

    def _rate_run(self, op: OpClass, member: str) -> Flow[RateLimitRun]:
        rate = 2 * _PUBLISHED[op]
        most = math.ceil(rate * self.options.rate_limit_seconds)
        started = yield from self._now()
        accepted, stopped_by = 0, None
        for number in range(most):
            if number:
                yield from self._pause(1.0 / rate)
            call = self._rate_call(op, member, number)
            try:
                yield from request(call)
            except RateLimitedError as exc:
                elapsed = (yield from self._now()) - started
                self._last = started + elapsed
                return RateLimitRun(
                    op=op.value,
                    sent_per_second=rate,
                    accepted=accepted,
                    seconds=elapsed,
                    limited_status=exc.status_code,
                    retry_after=exc.retry_after,
                )
            except ApiError as exc:
                if _transient(exc.status_code):
                    self.transient.append(
                        TransientAnswer(
                            step=f"rate_limits_{op.value}",
                            method=call.method,
                            status=exc.status_code,
                            retry_after=exc.retry_after,
                        )
                    )
                    stopped_by = exc.status_code
                    break
                # An add or remove that found the member as it was: not a limit.
            accepted += 1
        elapsed = (yield from self._now()) - started
        self._last = started + elapsed
        return RateLimitRun(
            op=op.value,
            sent_per_second=rate,
            accepted=accepted,
            seconds=elapsed,
            stopped_by=stopped_by,
        )

    def _delete(self) -> Flow[None]:
        yield from cleanup_flow(self.api, self.sandbox, spacing=self.options.spacing)


def cleanup_flow(api: AccountApi, sandbox: _Sandbox, *, spacing: float = 0.0) -> Flow[None]:
    """Delete the sandbox group; found by its unique name if its id never came back."""
    if sandbox.deleted or not sandbox.creating:
        return
    if spacing:
        yield _Sleep(spacing)
    group_id = sandbox.group_id
    if group_id is None:
        found = yield from api.find_group(sandbox.name)
        if found is None:
            sandbox.deleted = True
            return
        group_id = found.id
    with contextlib.suppress(NotFoundError):
        yield from api.delete_group(group_id)
    sandbox.deleted = True


# -- running it -------------------------------------------------------------------------------


def _sync_effects(clock: Clock) -> Callable[[Effect[Any]], object]:
    def handle(step: Effect[Any]) -> object:
        if isinstance(step, _Sleep):
            clock.sleep(step.seconds)
            return None
        if isinstance(step, _Monotonic):
            return clock.monotonic()
        raise TypeError(f"the probe cannot run the step {step!r}")

    return handle


def _async_effects(clock: Clock) -> Callable[[Effect[Any]], Awaitable[object]]:
    async def handle(step: Effect[Any]) -> object:
        if isinstance(step, _Sleep):
            await clock.asleep(step.seconds)
            return None
        if isinstance(step, _Monotonic):
            return clock.monotonic()
        raise TypeError(f"the probe cannot run the step {step!r}")

    return handle


def _sandbox_name() -> str:
    return SANDBOX_PREFIX + secrets.token_hex(4)


def _cleanup_failed(sandbox: _Sandbox, exc: BaseException) -> None:
    logger.warning(
        "the probe could not delete its sandbox group %s: %s; delete it by hand",
        sandbox.name,
        exc,
    )


@overload
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[False] = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport: ...
@overload
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[True],
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbePlan: ...
@overload
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan: ...
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan:
    """Measure what this account does where the API's behaviour is undocumented.

    It creates a sandbox group (`databricks-access-probe-<random>`), adds and removes
    only `principals` there, and deletes it at the end, also after an error or Ctrl-C.
    No other group is touched. With the defaults and one principal it sends about ten
    requests, at least `spacing` seconds apart; see docs/probe.md for each request.

    Example::

        with da.AccountClient(cfg) as client:
            print(da.probe(client, ["alice@example.com"], plan=True))   # sends nothing
            report = da.probe(client, ["alice@example.com", APP_ID])
        print(report.summary())

    Args:
        client: The account client (its identity needs to create and delete groups).
        principals: At least one user (user name or `User`) or service principal
            (application id or `ServicePrincipal`), or `PrincipalRef`s of them. The more
            are named, the larger the PATCHes the batch measurement can try.
        plan: Return the `ProbePlan` (every request it would send) and send nothing.
        spacing: The least seconds between two requests (0.5 to 60).
        max_lag: How long to keep reading for a write to show (1 to 3600 s).
        rate_limits: Also run the rate-limit measurement: per class (get, list, patch),
            requests at twice the published rate until the first 429, at most
            `rate_limit_seconds` long each.
        rate_limit_seconds: The longest rate-limit run per class (1 to 60 s).
        max_batch: The most principals one PATCH may carry (1 to 10000).

    Returns:
        The `ProbeReport`, or the `ProbePlan` when `plan` is true.

    Raises:
        ConfigError: No principal, a group among them, or a bad option (before any
            request).
        ApiError: The probe could not do its work (no right to create groups, say);
            the sandbox group is deleted all the same.
    """
    options = _Options(
        spacing=spacing,
        max_lag=max_lag,
        rate_limits=rate_limits,
        rate_limit_seconds=rate_limit_seconds,
        max_batch=max_batch,
    )
    named = _checked_principals(principals)
    api: AccountApi = client._api  # noqa: SLF001 - the probe runs the client's flows
    sandbox = _Sandbox(_sandbox_name())
    if plan:
        return _plan(api, named, options, sandbox.name)
    driver = client._driver  # noqa: SLF001
    script = _Script(
        api,
        options,
        sandbox,
        named,
        host=client.config.host,
        generated_at=client.clock.now(),
    )
    effects = _sync_effects(client.clock)
    before = driver.requests_sent
    try:
        report = driver.run(script.run(), effects)
    finally:
        if not sandbox.deleted and sandbox.creating:
            try:
                driver.run(cleanup_flow(api, sandbox), effects)
            except DatabricksAccessError as exc:
                _cleanup_failed(sandbox, exc)
    return attrs.evolve(report, requests_sent=driver.requests_sent - before)


@overload
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[False] = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport: ...
@overload
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[True],
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbePlan: ...
@overload
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan: ...
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan:
    """The async twin of `probe`: `report = await da.aprobe(client, principals)`."""
    options = _Options(
        spacing=spacing,
        max_lag=max_lag,
        rate_limits=rate_limits,
        rate_limit_seconds=rate_limit_seconds,
        max_batch=max_batch,
    )
    named = _checked_principals(principals)
    api: AccountApi = client._api  # noqa: SLF001
    sandbox = _Sandbox(_sandbox_name())
    if plan:
        return _plan(api, named, options, sandbox.name)
    driver = client._driver  # noqa: SLF001
    script = _Script(
        api,
        options,
        sandbox,
        named,
        host=client.config.host,
        generated_at=client.clock.now(),
    )
    effects = _async_effects(client.clock)
    before = driver.requests_sent
    try:
        report = await driver.run(script.run(), effects)
    finally:
        if not sandbox.deleted and sandbox.creating:
            try:
                await driver.run(cleanup_flow(api, sandbox), effects)
            except DatabricksAccessError as exc:
                _cleanup_failed(sandbox, exc)
    return attrs.evolve(report, requests_sent=driver.requests_sent - before)
