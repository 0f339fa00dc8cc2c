"""The account probe: measure what a real account does where WIRE.md is uncertain.

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
import functools
import json
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload
from urllib.parse import quote

import attrs

from databricks_access._api import AccountApi, Principal, _is_uuid
from databricks_access._converter import malformed
from databricks_access._diagnose import Check
from databricks_access._errors import (
    ApiError,
    ConfigError,
    DatabricksAccessError,
    NotFoundError,
    RateLimitedError,
)
from databricks_access._flows import Call, Flow, OpClass, Reply, request
from databricks_access._membership import DEFAULT_BATCH, DEFAULT_WINDOW
from databricks_access._models import (
    Group,
    PrincipalKind,
    PrincipalRef,
    ServicePrincipal,
    User,
)
from databricks_access._scim import (
    add_members_body,
    encode_query,
    filter_eq,
    remove_members_body,
)

if TYPE_CHECKING:
    import cattrs

    from databricks_access._client import AccountClient, AsyncAccountClient
    from databricks_access._clock import Clock

__all__ = [
    "SANDBOX_PREFIX",
    "SCHEMA_VERSION",
    "BatchLimit",
    "MemberAnswers",
    "PlannedProbeRequest",
    "PlusInFilter",
    "ProbePlan",
    "ProbeReport",
    "RateLimitRun",
    "ReadLag",
    "TotalResults",
    "TransientAnswer",
    "aprobe",
    "probe",
    "probe_check",
]

logger = logging.getLogger("databricks_access")

SCHEMA_VERSION = 1
"""The version of the report's JSON shape; a reader refuses any other."""
SANDBOX_PREFIX = "databricks-access-probe-"
"""Every sandbox group's name starts with this."""

# The published (unconfirmed) account API limits per second, WIRE.md "Rate limits".
_PUBLISHED = {OpClass.GET: 20.0, OpClass.LIST: 4.0, OpClass.PATCH: 2.0}
_ATTEMPTS = 3  # a PATCH answered 429 / 5xx is sent again at most this many times in all
_LONGEST_WAIT = 30.0  # the longest pause between two reads of the lag measurement
_LONGEST_RETRY_AFTER = 60.0


# -- the report ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BatchLimit:
    """The most members one SCIM PATCH accepted.

    Attributes:
        largest_accepted: The most members a PATCH carried and was answered 2xx; None
            when no PATCH succeeded.
        smallest_refused: The fewest members a PATCH carried and was refused (4xx); None
            when none was refused, so the limit is at least `largest_accepted`.
        refused_status: The status of that refusal.
        principals: How many distinct principals were named (the most one PATCH could
            carry).
        how: How it was measured.
        uncertainty: How far the value can be off.
    """

    largest_accepted: int | None = None
    smallest_refused: int | None = None
    refused_status: int | None = None
    principals: int = 0
    how: str = ""
    uncertainty: str = ""

    @property
    def exact(self) -> int | None:
        """The limit, when a size was accepted and the next one refused."""
        if (
            self.largest_accepted is not None
            and self.smallest_refused is not None
            and self.smallest_refused == self.largest_accepted + 1
        ):
            return self.largest_accepted
        return None


@attrs.frozen(kw_only=True)
class ReadLag:
    """How long a group read lagged a membership write (seconds on the client's clock).

    Attributes:
        at_least: The write was not visible this long after it was answered.
        at_most: It was visible this long after; None when it never showed (then the
            lag is more than `at_least`), or when nothing was measured.
        reads: How many reads it took (the last one saw the write).
        bound: The longest the probe kept reading.
        how: How it was measured.
        uncertainty: How far the value can be off.
    """

    at_least: float | None = None
    at_most: float | None = None
    reads: int = 0
    bound: float = 0.0
    how: str = ""
    uncertainty: str = ""

    @property
    def played_seconds(self) -> float | None:
        """The lag an emulator should play: the upper bound, else the lower one."""
        return self.at_most if self.at_most is not None else self.at_least


@attrs.frozen(kw_only=True)
class MemberAnswers:
    """The statuses answering undocumented membership changes (None: not measured).

    Attributes:
        add_existing: Adding a principal that is already a member.
        remove_missing: Removing a principal that is not a member.
        how: How it was measured.
    """

    add_existing: int | None = None
    remove_missing: int | None = None
    how: str = ""


@attrs.frozen(kw_only=True)
class PlusInFilter:
    """How a `+` in a SCIM filter value is read.

    Attributes:
        raw_status: The status of the list filtered with the `+` sent as is.
        raw_found: Whether that list found the user.
        encoded_status: The status of the list filtered with the `+` sent as `%2B`.
        encoded_found: Whether that list found the user.
        how: How it was measured, or why it was not.
    """

    raw_status: int | None = None
    raw_found: bool | None = None
    encoded_status: int | None = None
    encoded_found: bool | None = None
    how: str = ""

    @property
    def read_as_space(self) -> bool | None:
        """True when a raw `+` missed the user that `%2B` found; None when not measured."""
        if self.raw_found is None or self.encoded_found is None:
            return None
        if self.raw_found:
            return False
        return bool(self.encoded_found)


@attrs.frozen(kw_only=True)
class TotalResults:
    """Whether a SCIM list reply carried `totalResults`.

    Attributes:
        present: True or False; None when not measured.
        how: How it was measured.
    """

    present: bool | None = None
    how: str = ""


@attrs.frozen(kw_only=True)
class TransientAnswer:
    """A 429 or 5xx answer the probe met, and whether the request was applied anyway.

    Attributes:
        step: The probe's step (`read_lag`, `add_existing`, `batch`, ...).
        method: The HTTP method.
        status: The status.
        retry_after: Its `Retry-After` in seconds, None when it had none.
        applied: True when a later read showed the change; None when unknown.
    """

    step: str
    method: str
    status: int
    retry_after: float | None = None
    applied: bool | None = None


@attrs.frozen(kw_only=True)
class RateLimitRun:
    """Requests of one operation class sent at twice the published rate, to the first 429.

    Attributes:
        op: The operation class: `get`, `list` or `patch`.
        sent_per_second: The rate they were sent at.
        accepted: How many were answered before the first throttling answer (all of
            them when there was none).
        seconds: From the first request to the throttling answer (or the last one).
        limited_status: 429, or 500 for the `REQUEST_LIMIT_EXCEEDED` form; None when
            none was met.
        retry_after: The throttling answer's `Retry-After` in seconds; None when absent.
        stopped_by: The status of another 5xx that ended the run early, if one did.
    """

    op: str
    sent_per_second: float
    accepted: int
    seconds: float
    limited_status: int | None = None
    retry_after: float | None = None
    stopped_by: int | None = None

    @property
    def rate_range(self) -> tuple[float, float] | None:
        """The sustained rate `(low, high)` the answers fit; None when none throttled.

        A token bucket holding one second's worth (`r`) and refilling `r` per second let
        `accepted` requests through in `seconds` and refused the next, so
        `accepted <= r * (1 + seconds) < accepted + 1`.
        """
        if self.limited_status is None:
            return None
        span = 1.0 + self.seconds
        return self.accepted / span, (self.accepted + 1) / span

    @property
    def estimated_rate(self) -> float | None:
        """The middle of `rate_range`; None when nothing was throttled."""
        bounds = self.rate_range
        return None if bounds is None else (bounds[0] + bounds[1]) / 2


@attrs.frozen(kw_only=True)
class Fact:
    """One line of a report's summary: a measured value, how, and how precisely."""

    name: str
    measured: bool
    value: str
    how: str
    uncertainty: str = ""


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


@attrs.frozen(kw_only=True)
class ProbeReport:
    """What `probe` measured on one account: values, how, and how precisely.

    It holds no id, name, secret or token: share it as it is (`to_json`). Turn it into
    settings with `batch_size_or_default()` and `suggested_consistency_window()`, and
    into an emulator with `Behaviour.from_probe(report)`.

    Example::

        report = da.probe(client, ["alice@example.com"])
        print(report.summary())
        Path("probe.json").write_text(report.to_json())
        manager = da.MembershipManager(client, batch_size=report.batch_size_or_default())

    Attributes:
        schema_version: The JSON shape's version (`SCHEMA_VERSION`).
        library_version: The databricks_access version that ran the probe.
        generated_at: When the probe ran (UTC).
        host: The accounts host probed.
        sandbox_deleted: Whether the sandbox group was deleted at the end.
        principals: How many principals were named.
        requests_sent: How many requests the probe sent, token requests excluded.
        batch: The PATCH member limit.
        read_lag: How long reads lagged a write.
        member_answers: The answers to adding an existing and removing an absent member.
        total_results: Whether list replies carried `totalResults`.
        plus_in_filter: How `+` in a filter value was read.
        transient: The 429 / 5xx answers met along the way.
        rate_limits: The opt-in rate-limit runs, one per operation class.
    """

    schema_version: int = SCHEMA_VERSION
    library_version: str = ""
    generated_at: dt.datetime
    host: str
    sandbox_deleted: bool = False
    principals: int = 0
    requests_sent: int = 0
    batch: BatchLimit = BatchLimit()
    read_lag: ReadLag = ReadLag()
    member_answers: MemberAnswers = MemberAnswers()
    total_results: TotalResults = TotalResults()
    plus_in_filter: PlusInFilter = PlusInFilter()
    transient: tuple[TransientAnswer, ...] = ()
    rate_limits: tuple[RateLimitRun, ...] = ()

    # -- settings ----------------------------------------------------------------------

    def batch_size_or_default(self, default: int = DEFAULT_BATCH) -> int:
        """The members per PATCH to use: `default`, lowered to the measured limit.

        Example::

            da.MembershipManager(client, batch_size=report.batch_size_or_default())
        """
        if self.batch.smallest_refused is not None:
            accepted = self.batch.largest_accepted or 1
            return max(1, min(default, accepted))
        return default

    def suggested_consistency_window(self, default: float = DEFAULT_WINDOW) -> dt.timedelta:
        """The consistency window to use: `default` (5 min), or longer than the lag seen.

        A measured upper bound is rounded up to whole minutes; a lag that never ended
        within the probe's bound gives twice that bound.

        Example::

            da.LeaseTracker(manager, store=store,
                            consistency_window=report.suggested_consistency_window())
        """
        lag = self.read_lag
        if lag.at_most is not None:
            needed = math.ceil(lag.at_most / 60.0) * 60.0
        elif lag.at_least is not None:
            needed = 2 * max(lag.at_least, lag.bound)
        else:
            needed = 0.0
        return dt.timedelta(seconds=max(default, needed))

    def disagreements(
        self, *, batch_size: int = DEFAULT_BATCH, consistency_window: float = DEFAULT_WINDOW
    ) -> list[str]:
        """Where settings (the library's defaults unless given) contradict this report."""
        found: list[str] = []
        batch = self.batch
        if batch.smallest_refused is not None and batch_size >= batch.smallest_refused:
            found.append(
                f"batch size {batch_size} is above the account's PATCH limit: "
                f"{batch.smallest_refused} members were refused"
                + (f", {batch.largest_accepted} accepted" if batch.largest_accepted else "")
            )
        lag = self.read_lag
        stale = lag.at_least or 0.0
        if lag.at_most is not None and lag.at_most > consistency_window:
            found.append(
                f"reads lagged writes by up to {_seconds(lag.at_most)}, longer than the "
                f"consistency window of {_seconds(consistency_window)}"
            )
        elif lag.at_most is None and stale > 0 and stale >= consistency_window:
            found.append(
                f"reads lagged writes by more than {_seconds(stale)}, at least "
                f"the consistency window of {_seconds(consistency_window)}"
            )
        return found

    # -- text ---------------------------------------------------------------------------

    def facts(self) -> list[Fact]:
        """Each measured value (or why it was not measured), in the summary's order."""
        return [
            _batch_fact(self.batch),
            _lag_fact(self.read_lag),
            _answer_fact("add existing member", self.member_answers.add_existing, self),
            _answer_fact("remove absent member", self.member_answers.remove_missing, self),
            _total_fact(self.total_results),
            _plus_fact(self.plus_in_filter),
            _transient_fact(self.transient),
            _retry_after_fact(self.transient, self.rate_limits),
            *(_rate_fact(run) for run in self.rate_limits),
        ]

    def summary(self) -> str:
        """The report in plain words, one paragraph per fact."""
        head = (
            f"databricks_access probe report (schema {self.schema_version}, "
            f"library {self.library_version or 'unknown'})"
        )
        about = (
            f"account host: {self.host}; probed {self.generated_at.isoformat()} with "
            f"{self.principals} principal(s) and {self.requests_sent} request(s); "
            f"sandbox group {'deleted' if self.sandbox_deleted else 'NOT deleted'}"
        )
        lines = [head, about]
        for fact in self.facts():
            lines.append(f"- {fact.name}: {fact.value if fact.measured else 'not measured'}")
            lines.append(f"    how: {fact.how}")
            if fact.uncertainty:
                lines.append(f"    uncertainty: {fact.uncertainty}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # -- JSON ---------------------------------------------------------------------------

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON (`from_json` reads it back)."""
        return json.dumps(_report_converter().unstructure(self), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ProbeReport:
        """Read a report written by `to_json`.

        Raises:
            ConfigError: The text is not a report, or of another schema version.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"is not JSON: {exc}", "probe_report") from None
        if not isinstance(data, dict):
            raise ConfigError("must be a JSON object", "probe_report")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"has schema_version {version!r}; this library reads {SCHEMA_VERSION}",
                "schema_version",
            )
        try:
            return _report_converter().structure(data, cls)
        except Exception as exc:  # noqa: BLE001 - cattrs raises many kinds; one error out
            raise ConfigError(f"is not a valid probe report ({exc})", "probe_report") from None


@functools.cache
def _report_converter() -> cattrs.Converter:
    import cattrs  # noqa: PLC0415 - imported on first use, like the API converter

    # The public classes show as `databricks_access.X`: resolve their annotations here.
    for cls in (
        BatchLimit,
        ReadLag,
        MemberAnswers,
        PlusInFilter,
        TotalResults,
        TransientAnswer,
        RateLimitRun,
        ProbeReport,
    ):
        attrs.resolve_types(cls, globalns=globals())
    converter = cattrs.Converter()
    converter.register_unstructure_hook(dt.datetime, lambda value: value.isoformat())
    converter.register_structure_hook(
        dt.datetime, lambda value, _: dt.datetime.fromisoformat(cast("str", value))
    )
    return converter


def _batch_fact(batch: BatchLimit) -> Fact:
    name = "members per PATCH"
    if batch.largest_accepted is None:
        return Fact(name=name, measured=False, value="", how=batch.how)
    if batch.exact is not None:
        value = f"exactly {batch.exact} (refused {batch.smallest_refused}: {batch.refused_status})"
    elif batch.smallest_refused is not None:
        value = (
            f"from {batch.largest_accepted} to {batch.smallest_refused - 1} "
            f"(refused {batch.smallest_refused}: {batch.refused_status})"
        )
    else:
        value = f"at least {batch.largest_accepted}"
    return Fact(name=name, measured=True, value=value, how=batch.how, uncertainty=batch.uncertainty)


def _lag_fact(lag: ReadLag) -> Fact:
    name = "read lag after a write"
    if lag.at_least is None:
        return Fact(name=name, measured=False, value="", how=lag.how)
    if lag.at_most is None:
        value = f"more than {_seconds(lag.at_least)} (never seen within the bound)"
    else:
        value = f"between {_seconds(lag.at_least)} and {_seconds(lag.at_most)} ({lag.reads} reads)"
    return Fact(name=name, measured=True, value=value, how=lag.how, uncertainty=lag.uncertainty)


def _status_text(status: int) -> str:
    return f"{status} (success)" if 200 <= status < 300 else str(status)


def _answer_fact(name: str, status: int | None, report: ProbeReport) -> Fact:
    how = report.member_answers.how
    if status is None:
        return Fact(name=name, measured=False, value="", how=how or "no answer was recorded")
    return Fact(
        name=name,
        measured=True,
        value=_status_text(status),
        how=how,
        uncertainty="one request: exact for this account today",
    )


def _total_fact(total: TotalResults) -> Fact:
    name = "totalResults in list replies"
    if total.present is None:
        return Fact(name=name, measured=False, value="", how=total.how)
    return Fact(
        name=name,
        measured=True,
        value="present" if total.present else "absent",
        how=total.how,
        uncertainty="one reply; other endpoints and empty pages may differ",
    )


def _plus_fact(plus: PlusInFilter) -> Fact:
    name = "'+' in a filter value"
    space = plus.read_as_space
    if plus.raw_status is None:
        return Fact(name=name, measured=False, value="", how=plus.how)
    raw = f"raw '+': {plus.raw_status}, {'found' if plus.raw_found else 'not found'}"
    encoded = (
        f"'%2B': {plus.encoded_status}, {'found' if plus.encoded_found else 'not found'}"
        if plus.encoded_status is not None
        else "'%2B': not sent"
    )
    verdict = {True: "read as a space", False: "read as a plus", None: "unclear"}[space]
    return Fact(
        name=name,
        measured=True,
        value=f"{verdict} ({raw}; {encoded})",
        how=plus.how,
        uncertainty="one user name; exact for this account today",
    )


def _transient_fact(transient: tuple[TransientAnswer, ...]) -> Fact:
    name = "a 429/503/504 answer to a PATCH applied?"
    patches = [t for t in transient if t.method == "PATCH"]
    if not patches:
        return Fact(
            name=name,
            measured=False,
            value="",
            how="no PATCH was answered 429 or 5xx; such answers cannot be provoked politely",
        )
    shown = "; ".join(
        f"{t.step}: {t.status}, "
        + {True: "applied", False: "not applied", None: "unknown"}[t.applied]
        for t in patches
    )
    return Fact(
        name=name,
        measured=any(t.applied is not None for t in patches),
        value=shown,
        how="a PATCH answered 429/5xx was followed by reads of the group until the change "
        "showed (or the read bound passed), then sent again",
        uncertainty="only the answers met; 'unknown' when the member was already in place",
    )


def _retry_after_fact(
    transient: tuple[TransientAnswer, ...], runs: tuple[RateLimitRun, ...]
) -> Fact:
    name = "Retry-After on throttling answers"
    seen = [(t.status, t.retry_after) for t in transient if t.status == 429]
    seen += [(r.limited_status, r.retry_after) for r in runs if r.limited_status is not None]
    if not seen:
        return Fact(
            name=name,
            measured=False,
            value="",
            how="no request was throttled"
            + ("" if runs else " (the rate-limit runs are opt-in: rate_limits=True)"),
        )
    parts = [
        f"{status}: " + ("no Retry-After" if after is None else f"Retry-After {after:g} s")
        for status, after in seen
    ]
    return Fact(
        name=name,
        measured=True,
        value="; ".join(parts),
        how="read from each throttling answer met",
        uncertainty="only the answers met",
    )


def _rate_fact(run: RateLimitRun) -> Fact:
    name = f"rate limit, {run.op}"
    how = (
        f"{run.op} requests on the sandbox group sent at {run.sent_per_second:g}/s "
        f"(twice the published rate) until the first throttling answer"
    )
    if run.stopped_by is not None:
        return Fact(
            name=name,
            measured=False,
            value="",
            how=f"{how}; a {run.stopped_by} answer ended the run after {run.accepted} requests",
        )
    if run.limited_status is None:
        return Fact(
            name=name,
            measured=True,
            value=f"no throttling in {run.accepted} requests over {_seconds(run.seconds)}",
            how=how,
            uncertainty=f"the limit is at least about {run.sent_per_second:g}/s over that time",
        )
    low, high = run.rate_range or (0.0, 0.0)
    return Fact(
        name=name,
        measured=True,
        value=f"throttled ({run.limited_status}) after {run.accepted} requests in "
        f"{_seconds(run.seconds)}: {low:.2f} to {high:.2f} per second sustained",
        how=how,
        uncertainty="the range assumes a token bucket holding one second's worth",
    )


def probe_check(report: ProbeReport, *, batch_size: int = DEFAULT_BATCH) -> Check:
    """The `probe_report` check of `diagnose`: do the library's defaults fit the report?"""
    found = report.disagreements(batch_size=batch_size)
    if not found:
        return Check(
            "probe_report",
            ok=True,
            verdict=f"the defaults (batch size {batch_size}, consistency window "
            f"{_seconds(DEFAULT_WINDOW)}) agree with the probe report",
        )
    window = report.suggested_consistency_window().total_seconds()
    return Check(
        "probe_report",
        ok=False,
        verdict="; ".join(found),
        fix=f"Use MembershipManager(client, batch_size={report.batch_size_or_default()}) and "
        f"LeaseTracker(..., consistency_window={window:g}) "
        "(report.batch_size_or_default(), report.suggested_consistency_window()).",
    )


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
class _Sleep:
    """-> None: wait this many seconds on the client's clock."""

    seconds: float


@attrs.frozen
class _Monotonic:
    """-> float: the client's monotonic clock."""


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
        now = yield _Monotonic()
        return cast("float", now)

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
                uncertainty=f"a lower bound only: still stale after {_seconds(stale_for)}",
            )
        return ReadLag(
            at_least=stale_for,
            at_most=shown_after,
            reads=reads,
            bound=options.max_lag,
            how=how,
            uncertainty=f"the lag lies between the last stale read ({_seconds(stale_for)}) "
            f"and the first fresh one ({_seconds(shown_after)}); reads are not monotonic "
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
                how=f"adding a member already in the sandbox group; removing it answered "
                f"{removed}, so removing an absent member was not tried",
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


def _sync_effects(clock: Clock) -> Callable[[object], object]:
    def handle(step: object) -> object:
        if isinstance(step, _Sleep):
            clock.sleep(step.seconds)
            return None
        if isinstance(step, _Monotonic):
            return clock.monotonic()
        raise TypeError(f"the probe cannot run the step {step!r}")

    return handle


def _async_effects(clock: Clock) -> Callable[[object], Awaitable[object]]:
    async def handle(step: object) -> object:
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
