"""The probe's options and its plan: what it would send, checked and listed before it runs.

`ProbePlan` (what `probe(..., plan=True)` returns) lists every request with its purpose,
and how many times it may be sent; nothing is sent to build it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from databricks_access._account.api import AccountApi, Principal
from databricks_access._account.flows import OpClass
from databricks_access._account.models import (
    Group,
    PrincipalKind,
    PrincipalRef,
    ServicePrincipal,
    User,
)
from databricks_access._account.scim import filter_eq
from databricks_access._account.scim_api import _is_uuid
from databricks_access._errors import ConfigError

__all__ = ["PlannedProbeRequest", "ProbePlan"]


# The published (unconfirmed) account API limits per second.
_PUBLISHED = {OpClass.GET: 20.0, OpClass.LIST: 4.0, OpClass.PATCH: 2.0}
_ATTEMPTS = 3  # a PATCH answered 429 / 5xx is sent again at most this many times in all
_LONGEST_WAIT = 30.0  # the longest pause between two reads of the lag measurement
_LONGEST_RETRY_AFTER = 60.0


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
