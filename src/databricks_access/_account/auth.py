"""OAuth machine-to-machine authentication (client credentials) as an `httpx.Auth`.

One token request per token lifetime, however many requests run at once: threads wait
on a lock, asyncio tasks on a per-loop lock created lazily (so one client survives
repeated `asyncio.run`). A token close to expiry is refreshed by one caller while the
others keep using it. Credentials are re-read from the secret store at every refresh,
and re-read with `refresh=True` after the token endpoint answers `invalid_client`
(the secret was rotated).

The auth flow is one generator of steps (send a request, take the fetch lock, sleep, read
credentials) that `sync_auth_flow` and `async_auth_flow` both run on the kernel
(`_sansio.relay`), so its logic is written once; only the effect handlers exist twice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import threading
import weakref
from collections.abc import AsyncGenerator, Generator
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
import httpx

from databricks_access._account.config import AccountConfig, check_endpoint
from databricks_access._account.retry import RetryPolicy, parse_retry_after
from databricks_access._clock import Clock, SystemClock
from databricks_access._durations import from_server
from databricks_access._errors import (
    ApiError,
    AuthenticationError,
    ServerError,
    error_from_reply,
    parse_error_body,
)
from databricks_access._sansio import Effect, relay, relay_async
from databricks_access._secrets.base import ClientCredentials, SecretStore
from databricks_access._util.json import loads as _json_loads

__all__ = ["OAuthM2M"]

logger = logging.getLogger("databricks_access")

_FORM = b"grant_type=client_credentials&scope=all-apis"
# Azure refuses tokens with 30 s or less left; a margin keeps requests in flight valid.
_EXPIRY_MARGIN = 40.0
_MAX_STALE_WINDOW = 20 * 60.0
# A token's lifetime when the reply names none (or garbage), and the longest one trusted.
# RFC 6750's b64token: what an `Authorization: Bearer` header may carry.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{1,16384}=*")
_DEFAULT_LIFETIME = 3600.0
# The largest token or discovery reply read.
_MAX_REPLY = 1024 * 1024
_MAX_LIFETIME = 86400.0


@attrs.frozen
class _Token:
    value: str = attrs.field(repr=False)
    expires_at: float  # monotonic seconds
    lifetime: float

    def remaining(self, now: float) -> float:
        return self.expires_at - now

    def expired(self, now: float) -> bool:
        return self.remaining(now) <= _EXPIRY_MARGIN

    def stale(self, now: float) -> bool:
        return self.remaining(now) <= min(self.lifetime / 2, _MAX_STALE_WINDOW)


class _Lock(Protocol):
    def release(self) -> None: ...


@attrs.frozen
class _Sleep(Effect[None]):
    """Wait on the clock."""

    seconds: float


@attrs.frozen
class _ReadCredentials(Effect[ClientCredentials]):
    """Read the credentials from the secret store."""

    refresh: bool


@attrs.frozen
class _ReadBody(Effect[None]):
    """Read the body of a reply to one of our own requests (token, discovery)."""

    response: httpx.Response


@attrs.frozen
class _Acquire(Effect[_Lock | None]):
    """Take the fetch lock (threads: the thread lock; tasks: the loop's lock).

    Without `wait`, only when it is free now. Answers the held lock, or None.
    """

    wait: bool


_Effect = _Sleep | _ReadCredentials | _ReadBody | _Acquire
_AuthStep = httpx.Request | _Effect


class OAuthM2M(httpx.Auth):
    """OAuth M2M for a service principal, usable on any `httpx.Client` or `AsyncClient`.

    The account clients build one for you; use it directly to call other account APIs
    with your own httpx client::

        auth = da.OAuthM2M(cfg, da.EnvSecretStore())
        with httpx.Client(auth=auth) as http:
            http.get(f"{cfg.host}/api/2.0/accounts/{cfg.account_id}/workspaces")

    Args:
        config: The account (host, account id, optional explicit token endpoint).
        secrets: Where the client id and secret are read, at every refresh.
        clock: Time source and sleep, for tests.
        retry: Retry policy of the token request (429, 5xx).
    """

    def __init__(
        self,
        config: AccountConfig,
        secrets: SecretStore,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._config = config
        self._secrets = secrets
        self._clock = clock or SystemClock()
        self._retry = retry or RetryPolicy(
            max_attempts=config.max_attempts, deadline=config.deadline
        )
        self._explicit_endpoint = config.token_endpoint is not None
        self._token_url = config.token_endpoint or (
            f"{config.host}/oidc/accounts/{config.account_id}/v1/token"
        )
        self._discovery_url = (
            f"{config.host}/oidc/accounts/{config.account_id}"
            "/.well-known/oauth-authorization-server"
        )
        self._timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout).as_dict()
        self._token: _Token | None = None
        self._thread_lock = threading.Lock()
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._loop_locks = weakref.WeakKeyDictionary()
        self._reread_credentials = False
        self.token_requests = 0
        """How many token requests this object has sent (for tests and benchmarks)."""

    @property
    def secrets(self) -> SecretStore:
        """The secret store the credentials are read from."""
        return self._secrets

    def __repr__(self) -> str:
        return f"OAuthM2M(host={self._config.host!r}, secrets={self._secrets!r})"

    # -- state -------------------------------------------------------------------------

    def _needs_fetch(self, token: _Token | None) -> bool:
        return token is None or token.stale(self._clock.monotonic())

    def _must_wait(self, token: _Token | None) -> bool:
        return token is None or token.expired(self._clock.monotonic())

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._thread_lock:
            lock = self._loop_locks.get(loop)
            if lock is None:
                lock = self._loop_locks[loop] = asyncio.Lock()
            return lock

    def invalidate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self._token = None

    # -- the shared fetch logic ----------------------------------------------------------

    def _token_request(self, url: str, credentials: ClientCredentials) -> httpx.Request:
        pair = f"{credentials.client_id}:{credentials.client_secret}".encode()
        return httpx.Request(
            "POST",
            url,
            headers={
                "Authorization": "Basic " + base64.b64encode(pair).decode("ascii"),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            content=_FORM,
            extensions={"timeout": self._timeout},
        )

    def _exchange(self, request: httpx.Request) -> Generator[_AuthStep, Any, httpx.Response]:
        """Send one of our own requests; its reply comes back with the body read."""
        response: httpx.Response = yield request
        yield _ReadBody(response)
        return response

    def _fetch_steps(self, *, patient: bool = True) -> Generator[_AuthStep, Any, _Token]:
        """Fetch a token; with `patient=False` (a still-valid token is held), try once."""
        credentials: ClientCredentials = yield _ReadCredentials(self._reread_credentials)
        reread = self._reread_credentials
        discovered = self._explicit_endpoint
        start = self._clock.monotonic()
        attempt = 0
        while True:
            attempt += 1
            sent_at = self._clock.monotonic()
            self.token_requests += 1
            response = yield from self._exchange(self._token_request(self._token_url, credentials))
            if response.is_success:
                self._reread_credentials = False
                return self._parse_token(response, sent_at)
            if response.status_code == 404 and not discovered:
                discovered = True
                if (yield from self._discover(patient=patient)):
                    continue
            error = self._token_error(response)
            if error.error_code == "invalid_client" and not reread:
                # A rotated secret: read it again from the source, bypassing any cache.
                reread = True
                credentials = yield _ReadCredentials(refresh=True)
                continue
            if error.error_code == "invalid_client":
                self._reread_credentials = True
            delay = None
            if patient and self._retry.retryable(error, idempotent=True):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                delay = self._retry.delay(
                    attempt=attempt,
                    elapsed=self._clock.monotonic() - start,
                    retry_after=retry_after,
                )
            if delay is None:
                raise error
            logger.debug("token request failed (%s); retrying in %.2fs", error, delay)
            yield _Sleep(delay)

    def _discover(self, *, patient: bool) -> Generator[_AuthStep, Any, bool]:
        """Read the token endpoint from the OIDC discovery document (same host only).

        A throttled or failing read (429, 5xx) is retried like any request; when the
        retries give up, that error is raised, so it is never masked by the token
        endpoint's 404 that sent us here.
        """
        start = self._clock.monotonic()
        attempt = 0
        while True:
            attempt += 1
            response = yield from self._exchange(
                httpx.Request(
                    "GET",
                    self._discovery_url,
                    headers={"Accept": "application/json"},
                    extensions={"timeout": self._timeout},
                )
            )
            status = response.status_code
            if response.is_success or not (status == 429 or status >= 500):
                break
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error = error_from_reply(
                status,
                response.content,
                method="GET",
                path=urlsplit(self._discovery_url).path,
                retry_after=retry_after,
            )
            delay = None
            if patient and self._retry.retryable(error, idempotent=True):
                delay = self._retry.delay(
                    attempt=attempt,
                    elapsed=self._clock.monotonic() - start,
                    retry_after=retry_after,
                )
            if delay is None:
                raise error
            logger.debug("OIDC discovery failed (%s); retrying in %.2fs", error, delay)
            yield _Sleep(delay)
        if not response.is_success:
            return False
        try:
            document = _json_loads(response.content, max_bytes=_MAX_REPLY)
            endpoint = document.get("token_endpoint") if isinstance(document, dict) else None
        except ValueError:
            return False
        if not isinstance(endpoint, str):
            return False
        # The same rules as a configured endpoint first: `urlsplit` silently drops TAB,
        # CR and LF, so the host comparison alone could pass a URL httpx then refuses.
        checked, problems = check_endpoint(
            endpoint,
            allow_custom_host=True,
            allow_insecure_http=self._config.allow_insecure_http,
            field="token_endpoint",
        )
        if checked is None:
            logger.warning(
                "ignoring an unusable token endpoint from discovery: %s",
                problems[0].message if problems else "invalid",
            )
            return False
        endpoint = checked
        # The secret goes to this URL: never to another host than the configured one.
        parts, host = urlsplit(endpoint), urlsplit(self._config.host)
        if (parts.scheme, parts.netloc.lower()) != (host.scheme, host.netloc.lower()):
            logger.warning("ignoring a token endpoint on another host: %s", parts.netloc)
            return False
        self._token_url = endpoint
        return True

    def _parse_token(self, response: httpx.Response, sent_at: float) -> _Token:
        try:
            data = _json_loads(response.content, max_bytes=_MAX_REPLY)
        except ValueError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ServerError(
                response.status_code,
                "MALFORMED_RESPONSE",
                "the token endpoint answered without an access_token",
            )
        if not _BEARER_TOKEN.fullmatch(token):
            # It would go into a header: refuse it now, and never show it.
            raise ServerError(
                response.status_code,
                "MALFORMED_RESPONSE",
                "the token endpoint answered an access_token that is not a bearer token "
                "(RFC 6750: letters, digits and -._~+/, up to 16 KiB)",
            )
        token_type = data.get("token_type", "Bearer") if isinstance(data, dict) else "Bearer"
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise ServerError(
                response.status_code,
                "MALFORMED_RESPONSE",
                f"unsupported token type {token_type[:20]!r}",
            )
        lifetime = from_server(
            data.get("expires_in") if isinstance(data, dict) else None,
            default=_DEFAULT_LIFETIME,
            maximum=_MAX_LIFETIME,
        )
        return _Token(token, sent_at + lifetime, lifetime)

    def _token_error(self, response: httpx.Response) -> ApiError:
        status = response.status_code
        code, detail = parse_error_body(response.content)
        path = urlsplit(self._token_url).path
        if status == 429 or status >= 500:
            return error_from_reply(
                status,
                response.content,
                method="POST",
                path=path,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        lowered = f"{code or ''} {detail}".lower()
        if (code or "").lower() == "unknown" or "ip access list" in lowered or status == 403:
            detail = (
                f"the token endpoint refused the request ({detail or 'no reason given'}); "
                "an account IP access list that does not allow this machine's address "
                "answers this way"
            )
        elif code == "invalid_client":
            reason = detail.rstrip(" .:") or "invalid client"
            detail = (
                f"{reason}: check the client id and secret in "
                f"{self._secrets!r}, and that the secret has not expired"
            )
        return AuthenticationError(status, code, detail, method="POST", path=path)

    # -- the flow, and its two drivers --------------------------------------------------

    def _auth_steps(self, request: httpx.Request) -> Generator[_AuthStep, Any, None]:
        """Attach a bearer token, fetching one first when needed: one fetch at a time.

        A caller whose token is still valid (only due for a refresh ahead of expiry) does
        not wait for another caller's fetch: it goes on with the token it holds.
        """
        for attempt in range(2):
            token = self._token
            fetched = False
            lock = None
            if self._needs_fetch(token):
                lock = yield _Acquire(wait=self._must_wait(token))
            if lock is not None:
                try:
                    if self._needs_fetch(self._token):
                        held = None if self._must_wait(self._token) else self._token
                        try:
                            self._token = yield from self._fetch_steps(patient=held is None)
                            fetched = True
                        except ApiError as exc:
                            if held is None:
                                raise
                            self._keep(held, exc)
                    token = self._token
                finally:
                    lock.release()
            response = yield self._authorize(request, token)
            if response.status_code != 401 or fetched or attempt:
                return
            # The cached token was refused (revoked, or the server's clock disagrees):
            # drop it and send once more with a fresh one.
            self._drop(token)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Attach a bearer token, fetching one first when needed (threads: one fetch)."""
        return relay(self._auth_steps(request), self._sync_effect, httpx.Request)

    def _sync_effect(self, step: Effect[Any]) -> object:
        if isinstance(step, _Acquire):
            return self._thread_lock if self._thread_lock.acquire(blocking=step.wait) else None
        if isinstance(step, _ReadBody):
            step.response.read()
            return None
        if isinstance(step, _Sleep):
            self._clock.sleep(step.seconds)
            return None
        if isinstance(step, _ReadCredentials):
            return self._secrets.get_credentials(refresh=step.refresh)
        raise TypeError(f"the token flow cannot run the step {step!r}")

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Attach a bearer token; concurrent tasks share one fetch per event loop."""
        return relay_async(self._auth_steps(request), self._async_effect, httpx.Request)

    async def _async_effect(self, step: Effect[Any]) -> object:
        if isinstance(step, _Acquire):
            lock = self._async_lock()
            if not step.wait and lock.locked():
                return None
            await lock.acquire()
            return lock
        if isinstance(step, _ReadBody):
            await step.response.aread()
            return None
        if isinstance(step, _Sleep):
            await self._clock.asleep(step.seconds)
            return None
        # A sync store may block: never on the event loop.
        if isinstance(step, _ReadCredentials):
            return await asyncio.to_thread(self._secrets.get_credentials, refresh=step.refresh)
        raise TypeError(f"the token flow cannot run the step {step!r}")

    def _keep(self, held: _Token, error: ApiError) -> None:
        """A refresh ahead of expiry failed: the held token is still valid, so keep it."""
        logger.warning(
            "could not refresh the access token ahead of its expiry (%s); using the current "
            "one, valid for another %.0fs",
            error,
            held.remaining(self._clock.monotonic()),
        )

    def _authorize(self, request: httpx.Request, token: _Token | None) -> httpx.Request:
        if token is None:  # pragma: no cover - the lock holder always leaves a token
            raise AuthenticationError(401, None, "no access token could be obtained")
        request.headers["Authorization"] = f"Bearer {token.value}"
        return request

    def _drop(self, token: _Token | None) -> None:
        with self._thread_lock:
            if self._token is token:
                self._token = None
