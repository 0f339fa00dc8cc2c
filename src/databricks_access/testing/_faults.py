"""Fault injection: server-side rate limits per operation class, and fault plans.

Both are interceptors (`FakeAccount.interceptor`): they see each classified request
before the account does and may answer in its place, delay its answer, or lose it. They
hold no I/O, so the same plan plays in-process (the httpx transport) and over loopback
(`FakeAccount.serve()`), and with a seed the same requests meet the same faults.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import attrs

from databricks_access.testing._behaviour import StaleReads
from databricks_access.testing._http import (
    SCIM_ERROR_SCHEMA,
    DropConnection,
    FakeRequest,
    FakeResponse,
    HoldConnection,
    PassThrough,
)
from databricks_access.testing._routing import Endpoint, OperationClass

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from databricks_access._diagnose.probe_report import ProbeReport
    from databricks_access.testing._account import FakeAccount

__all__ = ["Fault", "FaultPlan", "ServerRateLimits", "Where"]

_SCIM_ENDPOINTS = frozenset({Endpoint.SCIM_COLLECTION, Endpoint.SCIM_RESOURCE})
_TOKEN_ENDPOINTS = frozenset({Endpoint.TOKEN, Endpoint.WORKSPACE_TOKEN})
_ERROR_CODES = {
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    429: "Too many requests. Please wait a moment and try again.",
    500: "Internal error.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable.",
    504: "The request timed out.",
}
_OAUTH_ERRORS = {
    400: "invalid_request",
    401: "invalid_client",
    403: "access_denied",
    429: "too_many_requests",
    503: "temporarily_unavailable",
}
_LIMIT_DETAIL = "REQUEST_LIMIT_EXCEEDED: Too many requests. Please wait a moment and try again."
_JSON = ("content-type", "application/json")


def seconds_text(seconds: float) -> str:
    """A `Retry-After` value in seconds: whole, or fractional rounded up to milliseconds.

    Example:
        >>> seconds_text(2.0), seconds_text(1.58), seconds_text(0.0001)
        ('2', '1.58', '0.001')
    """
    millis = math.ceil(round(seconds * 1000, 6))
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")


def _body(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def error_response(
    request: FakeRequest,
    status: int,
    *,
    retry_after: float | None = None,
    scim_form: bool | None = None,
    detail: str | None = None,
    fault: str | None = None,
) -> FakeResponse:
    """An error in the form the request's endpoint uses (SCIM, REST, or OAuth for tokens).

    Args:
        request: The request answered.
        status: The status code.
        retry_after: Seconds for a `Retry-After` header, or None for none.
        scim_form: Force the SCIM form (True) or the REST form (False); None picks by
            endpoint: SCIM on SCIM endpoints, OAuth (`error`, `error_description`) on the
            token endpoint, REST elsewhere.
        detail: The SCIM `detail` (the REST form takes the text after `CODE: `).
        fault: The fault's name in the request log.
    """
    code = _ERROR_CODES.get(status, f"HTTP_{status}")
    if detail is None:
        detail = f"{code}: {_MESSAGES.get(status, 'Injected fault.')}"
    route = request.route
    oauth_form = scim_form is None and route is not None and route.endpoint in _TOKEN_ENDPOINTS
    if scim_form is None:
        scim_form = route is not None and route.endpoint in _SCIM_ENDPOINTS
    payload: dict[str, object]
    if oauth_form:
        # The token endpoint answers errors in the OAuth form (RFC 6749, section 5.2).
        payload = {
            "error": _OAUTH_ERRORS.get(
                status, "server_error" if status >= 500 else "invalid_request"
            ),
            "error_description": detail.partition(": ")[2] or detail,
        }
    elif scim_form:
        payload = {"schemas": [SCIM_ERROR_SCHEMA], "detail": detail, "status": str(status)}
    else:
        payload = {"error_code": code, "message": detail.partition(": ")[2] or detail}
    headers = [_JSON]
    if retry_after is not None:
        headers.append(("retry-after", seconds_text(retry_after)))
    return FakeResponse(status, tuple(headers), _body(payload), fault=fault or str(status))


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be a positive rate or None, got {value!r}")


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.define(kw_only=True, eq=False)
class ServerRateLimits:
    """Server-side rate limits: a token bucket per operation class, answering 429.

    Requests of a class beyond its rate get a 429 with a `Retry-After` (seconds, maybe
    fractional: how long until the bucket holds a token again), in the endpoint's error
    form and logged as the fault `rate_limited`; they take no token. Token and metadata
    requests are never limited. The defaults are the reported (unconfirmed) account API
    limits: GET 20/s, LIST 240/min, PATCH 2/s, other writes 5/s. Not to be confused with
    `databricks_access.RateLimits`, the client's own throttle.

    Use it alone as the interceptor, or inside a `FaultPlan`. Buckets read `clock`:
    inject the emulator's clock for deterministic tests; the default `time.monotonic`
    suits a served emulator.

    Example:
        >>> now = [0.0]
        >>> limits = ServerRateLimits(get=4, burst=2, clock=lambda: now[0])
        >>> fake = FakeAccount(require_auth=False, interceptor=limits)
        >>> path = f"{fake.scim_path}/Groups/{fake.add_group('g')}"
        >>> [fake.dispatch("GET", path).status for _ in range(2)]
        [200, 200]
        >>> reply = fake.dispatch("GET", path)
        >>> reply.status, dict(reply.headers)["retry-after"], fake.log[-1].fault
        (429, '0.25', 'rate_limited')
        >>> now[0] += 0.25
        >>> fake.dispatch("GET", path).status
        200

    Attributes:
        get: GET requests of one resource per second; None for no limit.
        list: List requests (one page each) per second.
        patch: PATCH requests per second.
        write: Other writes (POST, PUT, DELETE) per second.
        burst: How many requests a full bucket holds; default one second's worth
            (at least 1).
        scale: Multiplies every rate (and the default burst): 10 runs a benchmark ten
            times faster with the same shape.
        status: 429 (with `Retry-After`), or 500 for the SCIM `REQUEST_LIMIT_EXCEEDED`
            form without `Retry-After`, as the real SCIM API has throttled.
        clock: Seconds, monotonic; default `time.monotonic`.
    """

    get: float | None = attrs.field(default=20.0, validator=_positive_or_none)
    list: float | None = attrs.field(default=4.0, validator=_positive_or_none)
    patch: float | None = attrs.field(default=2.0, validator=_positive_or_none)
    write: float | None = attrs.field(default=5.0, validator=_positive_or_none)
    burst: float | None = attrs.field(default=None, validator=_positive_or_none)
    scale: float = attrs.field(default=1.0, validator=_positive)
    status: Literal[429, 500] = attrs.field(default=429, validator=attrs.validators.in_((429, 500)))
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[OperationClass, tuple[float, float]] = attrs.field(
        init=False, factory=dict, repr=False
    )
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {
                name: getattr(self, name)
                for name in attrs.fields_dict(type(self))
                if name != "_lock"
            }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_lock", threading.Lock())

    @classmethod
    def from_probe(
        cls, report: ProbeReport, *, clock: Callable[[], float] = time.monotonic
    ) -> ServerRateLimits:
        """The rate limits a probe report measured (`probe(..., rate_limits=True)`).

        A class that was throttled gets the middle of its measured range, and the
        throttling answer's form (429, or the 500 `REQUEST_LIMIT_EXCEEDED` form); a class
        never throttled gets the rate it was probed at (the limit is at least that); a
        class the report did not probe keeps the published default.

        Example::

            fake = FakeAccount(behaviour=Behaviour.from_probe(report))
            fake.interceptor = ServerRateLimits.from_probe(report, clock=fake_clock)
        """
        defaults = cls()
        rates = {"get": defaults.get, "list": defaults.list, "patch": defaults.patch}
        status: Literal[429, 500] = 429
        for run in report.rate_limits:
            estimated = run.estimated_rate
            if run.op in rates:
                rates[run.op] = estimated if estimated is not None else run.sent_per_second
            if run.limited_status == 500:
                status = 500
        return cls(
            get=rates["get"],
            list=rates["list"],
            patch=rates["patch"],
            status=status,
            clock=clock,
        )

    def rate(self, op_class: OperationClass) -> float | None:
        """The scaled rate of one operation class, or None when it is not limited."""
        rates = {
            OperationClass.GET: self.get,
            OperationClass.LIST: self.list,
            OperationClass.PATCH: self.patch,
            OperationClass.WRITE: self.write,
        }
        rate = rates.get(op_class)
        return None if rate is None else rate * self.scale

    def take(self, op_class: OperationClass) -> float:
        """Take a token for one request; returns 0, or the seconds until one is free."""
        rate = self.rate(op_class)
        if rate is None:
            return 0.0
        capacity = self.burst if self.burst is not None else max(1.0, rate)
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(op_class, (capacity, now))
            tokens = min(capacity, tokens + max(now - last, 0.0) * rate)
            if tokens >= 1.0:
                self._buckets[op_class] = (tokens - 1.0, now)
                return 0.0
            self._buckets[op_class] = (tokens, now)
            return (1.0 - tokens) / rate

    def reset(self) -> None:
        """Fill every bucket again."""
        with self._lock:
            self._buckets.clear()

    def __call__(self, request: FakeRequest) -> FakeResponse | None:
        """The interceptor: a 429 (or the 500 form) when the class is over its rate."""
        wait = self.take(request.op_class)
        if wait <= 0:
            return None
        if self.status == 500:
            return error_response(
                request, 500, scim_form=True, detail=_LIMIT_DETAIL, fault="rate_limited"
            )
        return error_response(request, 429, retry_after=wait, fault="rate_limited")


class Where(TypedDict, total=False):
    """Which requests a `Fault` applies to; every key given must hold (all optional).

    Keys:
        op_class: An `OperationClass` (or its name, `"patch"`) or several.
        method: An HTTP method (`"GET"`) or several.
        path: A regular expression searched in the raw request path, such as
            `r"/Groups/123$"`.
        nth: Which of the requests matching `op_class`, `method` and `path` (1 for the
            first), one number or several: `nth=3` with `method="PATCH"` is the third
            PATCH.
        requests: Which requests by their number among all requests the plan has
            seen (1 for the first): `range(5, 8)` is requests 5 to 7.
        probability: The chance that a matching request meets the fault, drawn from the
            plan's seeded generator.
        times: The most requests this fault is injected into.
    """

    op_class: OperationClass | str | Iterable[OperationClass | str]
    method: str | Iterable[str]
    path: str
    nth: int | Collection[int]
    requests: int | Collection[int]
    probability: float
    times: int


FaultKind = Literal["status", "latency", "drop", "timeout", "stale_reads"]
_ANSWERS = frozenset({"status", "drop", "timeout"})


def _items(value: object) -> list[object]:
    if isinstance(value, (str, int)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _classes(value: object) -> frozenset[OperationClass] | None:
    if value is None:
        return None
    return frozenset(OperationClass(item) for item in _items(value))


def _methods(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(str(item).upper() for item in _items(value))


def _numbers(value: object) -> Collection[int] | None:
    if value is None or isinstance(value, range):
        return value
    numbers = _items(value)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise ValueError(f"request numbers must be integers, got {value!r}")
    return frozenset(n for n in numbers if isinstance(n, int))


def _compile(value: str | None) -> re.Pattern[str] | None:
    return None if value is None else re.compile(value)


def _probability(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be from 0 to 1, got {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


@attrs.frozen(kw_only=True)
class Fault:
    """One fault of a `FaultPlan`: what happens, and to which requests.

    Build one with the class methods; each takes the selection keywords `op_class`,
    `method`, `path`, `nth`, `requests`, `probability` and `times` (the attributes of the
    same names, below) to pick its requests; every one given must hold.

    Example:
        >>> Fault.too_many_requests(retry_after=0.5, method="PATCH", nth=3).label
        '429'
        >>> Fault.latency(0.2, path=r"/Groups/123$").kind
        'latency'

    Attributes:
        kind: `status` (an error answer), `latency`, `drop`, `timeout` or `stale_reads`.
        label: The fault's name in the request log.
        status: The status code of a `status` fault.
        retry_after: Its `Retry-After` in seconds, or None for none.
        scim_form: Whether its body takes the SCIM error form (True), the REST form
            (False), or the form of the request's endpoint (None).
        detail: Its error message (`CODE: message`), or None for a standard one.
        body: A raw body replacing the error body (plain text, empty, ...).
        seconds: The latency of a `latency` fault; how long a `timeout` fault holds
            the connection.
        applied: Whether a `drop`, `timeout` or `status` fault lets the account handle
            the request before the answer is lost (or replaced by the error).
        stale: The stale reads a `stale_reads` fault switches on while its requests are
            served.
        op_class: The operation classes it applies to; None for all.
        method: The methods it applies to; None for all.
        path: The regular expression searched in the path; None for all paths.
        nth: Which matching requests (1-based) it applies to; None for all.
        requests: Which requests of the plan (1-based) it applies to; None for all.
        probability: The chance a selected request meets it.
        times: The most requests it is injected into; None for no limit.
    """

    kind: FaultKind
    label: str
    status: int = 0
    retry_after: float | None = attrs.field(default=None, validator=_non_negative)
    scim_form: bool | None = None
    detail: str | None = None
    body: bytes | None = None
    seconds: float = attrs.field(default=0.0, validator=_non_negative)
    applied: bool = False
    stale: StaleReads | None = None
    op_class: frozenset[OperationClass] | None = attrs.field(default=None, converter=_classes)
    method: frozenset[str] | None = attrs.field(default=None, converter=_methods)
    path: str | None = None
    nth: Collection[int] | None = attrs.field(default=None, converter=_numbers)
    requests: Collection[int] | None = attrs.field(default=None, converter=_numbers)
    probability: float = attrs.field(default=1.0, validator=_probability)
    times: int | None = attrs.field(default=None, validator=_non_negative)
    _pattern: re.Pattern[str] | None = attrs.field(
        init=False,
        repr=False,
        eq=False,
        default=attrs.Factory(lambda f: _compile(f.path), takes_self=True),
    )

    # ---- answers -----------------------------------------------------------------------

    @classmethod
    def error(
        cls,
        status: int,
        *,
        retry_after: float | None = None,
        detail: str | None = None,
        body: bytes | None = None,
        applied: bool = False,
        **where: Unpack[Where],
    ) -> Fault:
        """Answer with this status, in the endpoint's error form (or with `body`).

        Args:
            status: The status code (400 to 599).
            retry_after: Seconds for a `Retry-After` header; None for none.
            detail: The error message as `CODE: message`; default a standard one.
            body: A raw body instead of the JSON error (`b""`, plain text, ...).
            applied: Let the account handle the request first: the write happens and
                the answer is the error all the same (a gateway timing out, say).
            **where: Which requests: `op_class`, `method`, `path`, `nth`, `requests`,
                `probability`, `times`.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an error status (400 to 599), got {status!r}")
        return cls(
            kind="status",
            label=str(status),
            status=status,
            retry_after=retry_after,
            detail=detail,
            body=body,
            applied=applied,
            **where,
        )

    @classmethod
    def too_many_requests(cls, retry_after: float | None = 1.0, **where: Unpack[Where]) -> Fault:
        """Answer 429 `REQUEST_LIMIT_EXCEEDED`, with `Retry-After` (None: without one)."""
        return cls.error(429, retry_after=retry_after, **where)

    @classmethod
    def server_error(
        cls, status: int = 500, *, retry_after: float | None = None, **where: Unpack[Where]
    ) -> Fault:
        """Answer a 5xx (500, 502, 503, 504) in the endpoint's error form."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be 500 to 599, got {status!r}")
        return cls.error(status, retry_after=retry_after, **where)

    @classmethod
    def request_limit_exceeded(cls, **where: Unpack[Where]) -> Fault:
        """Answer 500 with `REQUEST_LIMIT_EXCEEDED` in SCIM form and no `Retry-After`.

        That is how the SCIM API has been seen throttling (WIRE.md, "Errors").
        """
        return cls(
            kind="status",
            label="request_limit_exceeded",
            status=500,
            scim_form=True,
            detail=_LIMIT_DETAIL,
            **where,
        )

    @classmethod
    def drop(cls, *, applied: bool = False, **where: Unpack[Where]) -> Fault:
        """Close the connection without answering (`DropConnection`).

        With `applied=True` the account handles the request first: the write happens,
        the answer is lost.
        """
        return cls(kind="drop", label="drop", applied=applied, **where)

    @classmethod
    def timeout(cls, hold: float = 30.0, *, applied: bool = False, **where: Unpack[Where]) -> Fault:
        """Never answer: the server holds the connection `hold` seconds (`HoldConnection`).

        In-process the client gets `httpx.ReadTimeout` at once; over loopback, give the
        client a read timeout shorter than `hold`.
        """
        return cls(kind="timeout", label="timeout", seconds=hold, applied=applied, **where)

    # ---- changes to a normal answer ----------------------------------------------------

    @classmethod
    def latency(cls, seconds: float, **where: Unpack[Where]) -> Fault:
        """Let the account answer, `seconds` later. Latencies of several faults add up."""
        return cls(kind="latency", label="latency", seconds=seconds, **where)

    @classmethod
    def stale_reads(cls, stale_reads: StaleReads, **where: Unpack[Where]) -> Fault:
        """Serve the selected requests with these stale reads (a window of staleness).

        Typically `requests=range(a, b)`: from request `a` the account's
        `behaviour.stale_reads` is switched to `stale_reads`, and from request `b` it is
        switched back. Needs the plan installed with `FaultPlan.install(account)`.
        """
        return cls(kind="stale_reads", label="stale_reads", stale=stale_reads, **where)

    def targets(self, request: FakeRequest) -> bool:
        """Whether a request is of the class, method and path this fault applies to."""
        return (
            (self.op_class is None or request.op_class in self.op_class)
            and (self.method is None or request.method in self.method)
            and (self._pattern is None or self._pattern.search(request.path) is not None)
        )


class FaultPlan:
    """Faults to inject, by schedule or by seeded chance, plus optional rate limits.

    A plan is the account's interceptor: `plan.install(fake)` (or
    `fake.interceptor = plan` when it has no `stale_reads` fault). For each request, in
    order: the first answering fault that applies (`status`, `drop`, `timeout`) answers;
    otherwise `rate_limits`, if any, may answer 429; otherwise the account answers. The
    latencies of the `latency` faults that apply add up and delay whichever answer.
    Injected faults are logged (`RequestRecord.fault`, `FakeAccount.faults`).

    The same plan runs in-process and over loopback. With the same seed and the same
    sequence of requests, the same requests meet the same faults.

    Example:
        >>> fake = FakeAccount(require_auth=False)
        >>> plan = FaultPlan(
        ...     [
        ...         Fault.too_many_requests(retry_after=0.5, method="GET", nth=2),
        ...         Fault.server_error(503, requests=range(3, 5)),
        ...     ]
        ... ).install(fake)
        >>> [fake.dispatch("GET", "/.well-known/databricks-config").status for _ in range(5)]
        [200, 429, 503, 503, 200]
        >>> dict(fake.faults)
        {'429': 1, '503': 2}

    Args:
        faults: The faults, in order of precedence.
        seed: Seeds the draws of `probability`.
        rate_limits: Server-side rate limits applied to requests no fault answered.
    """

    def __init__(
        self,
        faults: Iterable[Fault] = (),
        *,
        seed: int = 0,
        rate_limits: ServerRateLimits | None = None,
    ) -> None:
        self.faults = tuple(faults)
        """The faults, in order of precedence."""
        self.rate_limits = rate_limits
        """The server-side rate limits, if any."""
        self.seed = seed
        """The seed of the draws."""
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 - test determinism, not security
        self._seen = 0
        self._matched = [0] * len(self.faults)
        self._fired = [0] * len(self.faults)
        self._injected: Counter[str] = Counter()
        self._account: FakeAccount | None = None
        self._stale: StaleReads | None = None
        self._saved_stale: StaleReads | None = None

    def __repr__(self) -> str:
        return (
            f"FaultPlan(faults={len(self.faults)}, seed={self.seed}, "
            f"rate_limits={self.rate_limits!r}, seen={self._seen})"
        )

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def install(self, account: FakeAccount) -> FaultPlan:
        """Make this plan the account's interceptor, and let it switch stale reads there.

        Returns:
            The plan itself.
        """
        with self._lock:
            self._account = account
        account.interceptor = self
        return self

    @property
    def seen(self) -> int:
        """How many requests the plan has seen."""
        return self._seen

    @property
    def injected(self) -> Counter[str]:
        """How many times each fault (by label) was injected by this plan object (a copy).

        A plan served in another process counts there: read the account's log or
        `faults` instead.
        """
        with self._lock:
            return Counter(self._injected)

    def __call__(self, request: FakeRequest) -> FakeResponse | PassThrough | None:
        """The interceptor: decide this request's faults."""
        with self._lock:
            self._seen += 1
            number = self._seen
            answer: Fault | None = None
            delay = 0.0
            labels: list[str] = []
            stale: StaleReads | None = None
            for index, fault in enumerate(self.faults):
                if not fault.targets(request):
                    continue
                self._matched[index] += 1
                if fault.nth is not None and self._matched[index] not in fault.nth:
                    continue
                if fault.requests is not None and number not in fault.requests:
                    continue
                if fault.kind in _ANSWERS and answer is not None:
                    continue
                if fault.times is not None and self._fired[index] >= fault.times:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                self._fired[index] += 1
                if fault.kind in _ANSWERS:
                    answer = fault
                elif fault.kind == "latency":
                    delay += fault.seconds
                    if "latency" not in labels:
                        labels.append("latency")
                elif stale is None:
                    stale = fault.stale
                    labels.append("stale_reads")
            if any(fault.kind == "stale_reads" for fault in self.faults):
                self._switch_stale_reads(stale)
            return self._verdict(request, answer, delay, labels)

    def _verdict(
        self, request: FakeRequest, answer: Fault | None, delay: float, labels: list[str]
    ) -> FakeResponse | PassThrough | None:
        if answer is not None:
            self._injected[answer.label] += 1
            if answer.kind == "drop":
                raise DropConnection(applied=answer.applied)
            if answer.kind == "timeout":
                raise HoldConnection(answer.seconds, applied=answer.applied)
        self._injected.update(labels)
        response: FakeResponse | None = None
        if answer is not None:
            response = self._error(request, answer)
        elif self.rate_limits is not None:
            response = self.rate_limits(request)
            if response is not None:
                self._injected["rate_limited"] += 1
        if response is not None:
            fault = "+".join([response.fault or "intercepted", *labels])
            return attrs.evolve(response, delay=delay, fault=fault)
        if labels:
            return PassThrough(delay, "+".join(labels))
        return None

    @staticmethod
    def _error(request: FakeRequest, fault: Fault) -> FakeResponse:
        response = error_response(
            request,
            fault.status,
            retry_after=fault.retry_after,
            scim_form=fault.scim_form,
            detail=fault.detail,
            fault=fault.label,
        )
        if fault.applied:
            response = attrs.evolve(response, applied=True)
        if fault.body is not None:
            headers = tuple(h for h in response.headers if h[0] != "content-type")
            response = attrs.evolve(response, headers=headers, body=fault.body)
        return response

    def _switch_stale_reads(self, wanted: StaleReads | None) -> None:
        if wanted == self._stale:
            return
        account = self._account
        if account is None:
            raise RuntimeError(
                "A stale_reads fault switches the account's behaviour: "
                "install the plan with plan.install(account)."
            )
        behaviour = account.behaviour
        if self._stale is None:
            self._saved_stale = behaviour.stale_reads
        restored = wanted if wanted is not None else self._saved_stale
        account.behaviour = attrs.evolve(behaviour, stale_reads=restored or StaleReads())
        self._stale = wanted
