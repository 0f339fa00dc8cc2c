"""The two drivers that run flows: one on `httpx.Client`, one on `httpx.AsyncClient`.

All I/O-free work (building requests, mapping errors, deciding retries) is in
`_DriverBase`; the drivers themselves are the thin send and run loops, twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from databricks_access._account.flows import (
    Call,
    Concurrently,
    Flow,
    OpClass,
    Reply,
    Step,
    WaitForSlot,
)
from databricks_access._account.pagers import AsyncPager, Pager
from databricks_access._account.retry import RetryPolicy, parse_retry_after
from databricks_access._account.throttle import Throttle
from databricks_access._account.transport import PooledConnectionsTransport
from databricks_access._clock import Clock
from databricks_access._errors import (
    ApiError,
    DatabricksAccessError,
    RateLimitedError,
    RequestTimeoutError,
    TransportError,
    error_from_reply,
)
from databricks_access._sansio import Effect, run_async, run_sync

__all__ = [
    "AsyncDriver",
    "AsyncPager",
    "Pager",
    "SyncDriver",
    "new_async_http",
    "new_sync_http",
    "shared_ssl_context",
]

logger = logging.getLogger("databricks_access")

T = TypeVar("T")

# -- the httpx clients the account clients make ---------------------------------------------------

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """The verifying SSL context of every client this process makes, built once, lazily.

    Loading the CA bundle costs tens of milliseconds per context; one context serves any
    number of connections and threads.
    """
    global _ssl_context  # noqa: PLW0603 - one per process, by design
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context(verify=True, trust_env=True)
        return _ssl_context


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: the account API uses bearer tokens, not cookies.

    httpx offers every response to the jar and every request to it for a `Cookie`
    header; with urllib's cookie machinery that is a tenth of a request's CPU.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep no cookie."""

    def set_cookie_header(self, request: httpx.Request) -> None:
        """Send no cookie."""


_NO_COOKIES = _NoCookies()


class _SyncHttp(httpx.Client):
    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass


class _AsyncHttp(httpx.AsyncClient):
    connections: PooledConnectionsTransport | None = None
    """The transport `new_async_http` made for this client, if it made one."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass


def _verify(verify: bool) -> ssl.SSLContext | bool:
    return shared_ssl_context() if verify else False


def new_sync_http(
    transport: httpx.BaseTransport | None, timeout: httpx.Timeout, *, verify: bool
) -> httpx.Client:
    """The `httpx.Client` of an `AccountClient`: no cookie jar, the shared SSL context."""
    # A given transport carries its own TLS settings: do not load certificates for it.
    return _SyncHttp(
        transport=transport, timeout=timeout, verify=verify if transport else _verify(verify)
    )


ASYNC_POOL = 10
"""Requests an `AsyncAccountClient` has in flight per event loop, and its connections.

httpcore's pool scans every queued request against every connection (and asks each
connection's socket whether it expired) whenever a request starts or ends: with 200
requests queued that scan was most of the CPU. The driver queues requests beyond this
on a semaphore instead, where waiting costs nothing, and the client's transport
(`PooledConnectionsTransport`) keeps that many connections alive without a pool.
Ten in flight is more than the published rate limits let through at real latencies.
"""


def _env_proxy() -> bool:
    """Whether httpx would send through a proxy named by the environment or the system.

    httpx reads the same table (`urllib.request.getproxies`) and mounts a proxy for each
    of these schemes; `NO_PROXY` alone mounts none.
    """
    from urllib.request import getproxies  # noqa: PLC0415 - loaded with httpx anyway

    proxies = getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def new_async_http(
    transport: httpx.AsyncBaseTransport | None, timeout: httpx.Timeout, *, verify: bool
) -> httpx.AsyncClient:
    """The `httpx.AsyncClient` of an `AsyncAccountClient`, made like `new_sync_http`'s.

    Its requests go out on a `PooledConnectionsTransport` (the driver bounds them), unless
    a transport is given or a proxy is configured: then as httpx sends them, through
    httpx's connection pool of `ASYNC_POOL` connections.
    """
    limits = httpx.Limits(max_connections=ASYNC_POOL, max_keepalive_connections=ASYNC_POOL)
    connections = None
    if transport is None and not _env_proxy():
        transport = connections = PooledConnectionsTransport(
            ssl_context=shared_ssl_context() if verify else _unverified_ssl_context(),
            max_idle=ASYNC_POOL,
            keepalive_expiry=limits.keepalive_expiry,
        )
    http = _AsyncHttp(
        transport=transport,
        timeout=timeout,
        verify=verify if transport else _verify(verify),
        limits=limits,
    )
    http.connections = connections
    return http


def _unverified_ssl_context() -> ssl.SSLContext:
    # What httpx's own transport makes of `verify=False`.
    return httpx.create_ssl_context(verify=False)


_URL_CACHE = 512  # parsed URLs kept per driver (targets repeat: a group polled, a token)


class _DriverBase:
    def __init__(
        self,
        *,
        host: str,
        auth: httpx.Auth | None,
        retry: RetryPolicy,
        throttle: Throttle | None,
        clock: Clock,
        user_agent: str,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._host = host
        self._auth = auth
        self._retry = retry
        self._throttle = throttle
        self._clock = clock
        self._rand = rand
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        # What every request of one httpx client shares, built once for it.
        self._prepared: (
            tuple[weakref.ref[httpx.Client | httpx.AsyncClient], httpx.Headers, dict[str, Any]]
            | None
        ) = None
        self._urls: dict[str, httpx.URL] = {}
        self.requests_sent = 0
        """Requests sent by this driver, retries included (token requests excluded)."""

    def _request(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        # Built directly rather than by `http.build_request`: that merges the client's
        # base URL, headers and cookie jar into every request, re-parsing the URL and
        # copying the jar each time. Here the merged headers are made once per client and
        # the URL of a repeated target is parsed once.
        prepared = self._prepared
        if prepared is None or prepared[0]() is not http:
            headers = httpx.Headers(http.headers)
            headers.update(self._headers)
            timeout = {"timeout": http.timeout.as_dict()}
            prepared = self._prepared = (weakref.ref(http), headers, timeout)
        _, headers, extensions = prepared
        target = call.target
        url = self._urls.get(target)
        if url is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            url = self._urls[target] = httpx.URL(self._host + target)
        if call.body is None:
            return httpx.Request(call.method, url, headers=headers, extensions=extensions)
        request_headers = headers.copy()
        request_headers["Content-Type"] = "application/json"
        content = json.dumps(call.body, separators=(",", ":")).encode()
        return httpx.Request(
            call.method, url, headers=request_headers, content=content, extensions=extensions
        )

    def _auth_for(self, call: Call) -> httpx.Auth | None:
        return self._auth if call.authenticate else None

    @staticmethod
    def _reply_or_error(call: Call, response: httpx.Response) -> Reply | DatabricksAccessError:
        if response.is_success:
            return Reply(
                status=response.status_code, headers=response.headers, content=response.content
            )
        return error_from_reply(
            response.status_code,
            response.content,
            method=call.method,
            path=call.path,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    @staticmethod
    def _transport_error(
        call: Call, request: httpx.Request, exc: httpx.TransportError
    ) -> TransportError:
        try:
            failed = exc.request
        except RuntimeError:
            failed = request
        # A refused connection, or a failed token request, means ours never left.
        not_sent = failed is not request or isinstance(
            exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
        )
        cls = RequestTimeoutError if isinstance(exc, httpx.TimeoutException) else TransportError
        # Name the request that failed: the token request, when the auth flow's failed.
        what = f"{call.method} {call.path}"
        if failed is not request:
            what = f"{failed.method} {failed.url.path} (the token request for {what})"
        if isinstance(exc, httpx.LocalProtocolError):
            # The HTTP library refused our own request: its text quotes the header it
            # refused, which can be `Authorization: Bearer <token>`. Say what, not which.
            return cls(
                f"{what}: the request could not be sent: "
                "the HTTP library refused one of its headers",
                request_not_sent=True,
            )
        return cls(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "), request_not_sent=not_sent)

    @staticmethod
    def _may_have_landed(error: DatabricksAccessError) -> bool:
        """Whether a failed attempt may have reached the server and taken effect.

        Only an answer that says the request was refused as it stands (a 4xx other than
        429) is proof that nothing changed. A 429, 503 or 504 usually means nothing was
        done, but a gateway can answer so after the account applied the change: treat
        every such answer as maybe applied, so the caller undoes or verifies it.
        """
        if isinstance(error, TransportError):
            return not error.request_not_sent
        if isinstance(error, RateLimitedError):
            return True
        return isinstance(error, ApiError) and (
            error.status_code >= 500 or error.status_code == 429
        )

    def _next_delay(
        self, call: Call, error: DatabricksAccessError, attempt: int, started: float
    ) -> float | None:
        if not call.retries or not self._retry.retryable(error, idempotent=call.idempotent):
            return None
        retry_after = error.retry_after if isinstance(error, ApiError) else None
        delay = self._retry.delay(
            attempt=attempt,
            elapsed=self._clock.monotonic() - started,
            retry_after=retry_after,
            rand=self._rand,
            deadline=call.deadline,
        )
        if delay is not None and retry_after is not None and self._throttle is not None:
            # The server's bucket is emptier than ours thought: every request of the
            # class waits (as long as this retry does), not only this one.
            self._throttle.defer(call.op, delay)
        if delay is not None:
            logger.debug(
                "%s %s failed (%s); retry %d in %.2fs",
                call.method,
                call.path,
                error,
                attempt,
                delay,
            )
        return delay


class SyncDriver(_DriverBase):
    """Runs flows on an `httpx.Client`; concurrent steps use a bounded thread pool."""

    def __init__(self, http: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.http = http

    def send(self, call: Call) -> Reply:
        """Send one call with throttling and retries; returns a 2xx reply or raises."""
        started = self._clock.monotonic()
        attempt = 0
        landed = False  # whether an attempt so far may have taken effect
        while True:
            attempt += 1
            if (
                self._throttle is not None
                and call.throttled
                and not (attempt == 1 and call.slot_reserved)
            ):
                wait = self._throttle.reserve(call.op)
                if wait > 0:
                    self._clock.sleep(wait)
            request = self._request(self.http, call)
            self.requests_sent += 1
            try:
                # Never a redirect, whatever the supplied client says: it would carry
                # the token to wherever the Location points.
                response = self.http.send(
                    request, auth=self._auth_for(call), follow_redirects=False
                )
            except httpx.TransportError as exc:
                outcome: Reply | DatabricksAccessError = self._transport_error(call, request, exc)
            except DatabricksAccessError as exc:  # no token: this attempt was never sent
                exc.maybe_applied = exc.maybe_applied or landed
                raise
            else:
                outcome = self._reply_or_error(call, response)
            if isinstance(outcome, Reply):
                return outcome
            landed = landed or self._may_have_landed(outcome)
            delay = self._next_delay(call, outcome, attempt, started)
            if delay is None:
                outcome.maybe_applied = landed
                raise outcome
            self._clock.sleep(delay)

    def wait_for_slot(self, op: OpClass) -> float:
        """Reserve the next throttle slot of `op`'s class and sleep until it; the wait."""
        wait = 0.0 if self._throttle is None else self._throttle.reserve(op)
        if wait > 0:
            self._clock.sleep(wait)
        return wait

    def run(self, flow: Flow[T], effects: Callable[[Effect[Any]], object] | None = None) -> T:
        """Run a flow to its end and return its value.

        Effects other than `Call` and `Concurrently` go to `effects` (the lease tracker's
        store calls and sleeps). Any failure of a step is thrown into the flow at its
        yield, so the flow's own cleanup (releasing a claim) runs before it propagates.
        """

        def handle(step: Step) -> object:
            if isinstance(step, Call):
                return self.send(step)
            if isinstance(step, WaitForSlot):
                return self.wait_for_slot(step.op)
            if isinstance(step, Concurrently):
                return self._concurrently(step, effects)
            if effects is not None:
                return effects(step)
            raise TypeError(f"a flow yielded {step!r}, which this run cannot handle")

        return run_sync(flow, handle)

    def _concurrently(
        self, step: Concurrently, effects: Callable[[Effect[Any]], object] | None
    ) -> list[object]:
        def captured(flow: Flow[object]) -> object:
            try:
                return self.run(flow, effects)
            except DatabricksAccessError as exc:
                return exc

        if len(step.flows) == 1 or step.limit == 1:
            return [captured(f) for f in step.flows]
        with ThreadPoolExecutor(max_workers=min(step.limit, len(step.flows))) as pool:
            return list(pool.map(captured, step.flows))


class AsyncDriver(_DriverBase):
    """Runs flows on an `httpx.AsyncClient`; concurrent steps are bounded tasks.

    Given a factory instead of a client, it keeps one `AsyncClient` per event loop:
    connections belong to the loop that opened them, and a client used across repeated
    `asyncio.run` calls must not reuse a closed loop's connections.
    """

    def __init__(
        self, http: httpx.AsyncClient | Callable[[], httpx.AsyncClient], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._fixed = http if isinstance(http, httpx.AsyncClient) else None
        self._factory = None if isinstance(http, httpx.AsyncClient) else http
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._per_loop = weakref.WeakKeyDictionary()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._gates = weakref.WeakKeyDictionary()

    def _gate(self) -> asyncio.Semaphore | None:
        """The running loop's bound on requests in flight (None on a client passed in)."""
        if self._fixed is not None:
            return None
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(ASYNC_POOL)
        return gate

    @property
    def http(self) -> httpx.AsyncClient:
        """The `AsyncClient` for the running event loop."""
        if self._fixed is not None:
            return self._fixed
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            assert self._factory is not None  # noqa: S101 - set when _fixed is None
            client = self._per_loop[loop] = self._factory()
        return client

    async def aclose(self) -> None:
        """Close the clients this driver made (the running loop's; others are dropped)."""
        if self._fixed is not None:
            return
        loop = asyncio.get_running_loop()
        client = self._per_loop.pop(loop, None)
        self._per_loop.clear()
        if client is not None:
            await client.aclose()

    async def send(self, call: Call) -> Reply:
        """Send one call with throttling and retries; returns a 2xx reply or raises."""
        started = self._clock.monotonic()
        attempt = 0
        landed = False  # whether an attempt so far may have taken effect
        while True:
            attempt += 1
            if (
                self._throttle is not None
                and call.throttled
                and not (attempt == 1 and call.slot_reserved)
            ):
                wait = self._throttle.reserve(call.op)
                if wait > 0:
                    await self._clock.asleep(wait)
            http = self.http
            request = self._request(http, call)
            self.requests_sent += 1
            gate = self._gate()
            try:
                if gate is None:
                    response = await http.send(
                        request, auth=self._auth_for(call), follow_redirects=False
                    )
                else:
                    async with gate:
                        response = await http.send(
                            request, auth=self._auth_for(call), follow_redirects=False
                        )
            except httpx.TransportError as exc:
                outcome: Reply | DatabricksAccessError = self._transport_error(call, request, exc)
            except DatabricksAccessError as exc:  # no token: this attempt was never sent
                exc.maybe_applied = exc.maybe_applied or landed
                raise
            else:
                outcome = self._reply_or_error(call, response)
            if isinstance(outcome, Reply):
                return outcome
            landed = landed or self._may_have_landed(outcome)
            delay = self._next_delay(call, outcome, attempt, started)
            if delay is None:
                outcome.maybe_applied = landed
                raise outcome
            await self._clock.asleep(delay)

    async def wait_for_slot(self, op: OpClass) -> float:
        """Reserve the next throttle slot of `op`'s class and sleep until it; the wait."""
        wait = 0.0 if self._throttle is None else self._throttle.reserve(op)
        if wait > 0:
            await self._clock.asleep(wait)
        return wait

    async def run(
        self, flow: Flow[T], effects: Callable[[Effect[Any]], Awaitable[object]] | None = None
    ) -> T:
        """Run a flow to its end and return its value (effects as for `SyncDriver.run`)."""

        async def handle(step: Step) -> object:
            if isinstance(step, Call):
                return await self.send(step)
            if isinstance(step, WaitForSlot):
                return await self.wait_for_slot(step.op)
            if isinstance(step, Concurrently):
                return await self._concurrently(step, effects)
            if effects is not None:
                return await effects(step)
            raise TypeError(f"a flow yielded {step!r}, which this run cannot handle")

        return await run_async(flow, handle)

    async def _concurrently(
        self, step: Concurrently, effects: Callable[[Effect[Any]], Awaitable[object]] | None
    ) -> list[object]:
        gate = asyncio.Semaphore(step.limit)

        async def one(flow: Flow[object]) -> object:
            async with gate:
                try:
                    return await self.run(flow, effects)
                except DatabricksAccessError as exc:
                    return exc

        return list(await asyncio.gather(*(one(f) for f in step.flows)))
