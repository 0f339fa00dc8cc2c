"""The probe's report: what `probe` measured on one account, how, and how precisely.

`ProbeReport` is a frozen, versioned value with a JSON form (`to_json` / `from_json`)
and a plain-words summary. It holds no id, name, secret or token, so it can be shared as
it is, and it turns into settings (`batch_size_or_default`,
`suggested_consistency_window`), a `diagnose` check (`probe_check`) and an emulator
(`Behaviour.from_probe`, `ServerRateLimits.from_probe`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import attrs

from databricks_access._diagnose.diagnose import Check
from databricks_access._errors import ConfigError
from databricks_access._leases.membership import DEFAULT_BATCH, DEFAULT_WINDOW

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "SCHEMA_VERSION",
    "BatchLimit",
    "Fact",
    "MemberAnswers",
    "PlusInFilter",
    "ProbeReport",
    "RateLimitRun",
    "ReadLag",
    "TotalResults",
    "TransientAnswer",
    "probe_check",
    "seconds_text",
]

SCHEMA_VERSION = 1
"""The version of the report's JSON shape; a reader refuses any other."""


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


def seconds_text(value: float) -> str:
    """Seconds as the summary shows them: `12.3 s`."""
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
                f"reads lagged writes by up to {seconds_text(lag.at_most)}, longer than the "
                f"consistency window of {seconds_text(consistency_window)}"
            )
        elif lag.at_most is None and stale > 0 and stale >= consistency_window:
            found.append(
                f"reads lagged writes by more than {seconds_text(stale)}, at least "
                f"the consistency window of {seconds_text(consistency_window)}"
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
    # attrs' stubs before 23.2 bind `resolve_types` to instances, not classes.
    resolve = cast("Callable[[type[Any], dict[str, Any]], object]", attrs.resolve_types)
    classes: tuple[type[Any], ...] = (
        BatchLimit,
        ReadLag,
        MemberAnswers,
        PlusInFilter,
        TotalResults,
        TransientAnswer,
        RateLimitRun,
        ProbeReport,
    )
    for cls in classes:
        resolve(cls, globals())
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
        value = f"more than {seconds_text(lag.at_least)} (never seen within the bound)"
    else:
        low, high = seconds_text(lag.at_least), seconds_text(lag.at_most)
        value = f"between {low} and {high} ({lag.reads} reads)"
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
            value=f"no throttling in {run.accepted} requests over {seconds_text(run.seconds)}",
            how=how,
            uncertainty=f"the limit is at least about {run.sent_per_second:g}/s over that time",
        )
    low, high = run.rate_range or (0.0, 0.0)
    return Fact(
        name=name,
        measured=True,
        value=f"throttled ({run.limited_status}) after {run.accepted} requests in "
        f"{seconds_text(run.seconds)}: {low:.2f} to {high:.2f} per second sustained",
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
            f"{seconds_text(DEFAULT_WINDOW)}) agree with the probe report",
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
