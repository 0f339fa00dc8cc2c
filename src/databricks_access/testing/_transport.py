"""The emulator served in-process to httpx, sync and async, without sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx

from databricks_access.testing._http import ConnectionFault, FakeResponse, HoldConnection

__all__ = ["Dispatch", "FakeTransport"]

Dispatch = Callable[[str, str, Mapping[str, str], bytes], FakeResponse]
"""The emulator's core: (method, target, headers, body) -> response."""


class FakeTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx transport answering from an emulator, for `httpx.Client` and `AsyncClient`.

    The request's host is ignored: every request goes to the emulator. Get one from
    `FakeAccount.transport()`. Injected faults play out as a client would meet them:
    latency is waited out (with the injected `sleep`), a dropped connection raises
    `httpx.RemoteProtocolError`, a held one raises `httpx.ReadTimeout` at once.

    Example:
        >>> import httpx
        >>> fake = FakeAccount()
        >>> with httpx.Client(transport=fake.transport(), base_url=fake.host) as client:
        ...     client.get("/.well-known/databricks-config").json()["cloud"]
        'aws'

    Args:
        dispatch: The emulator's dispatch function.
        sleep: Waits out injected latency for sync clients; default `time.sleep`.
        async_sleep: The same for async clients; default `asyncio.sleep`.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._dispatch = dispatch
        self._sleep = sleep or time.sleep
        self._async_sleep = async_sleep or asyncio.sleep

    def _reply(self, request: httpx.Request, body: bytes) -> FakeResponse:
        target = request.url.raw_path.decode("ascii")
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            return self._dispatch(request.method, target, headers, body)
        except HoldConnection:
            raise httpx.ReadTimeout("timed out (injected)", request=request) from None
        except ConnectionFault:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None

    @staticmethod
    def _response(reply: FakeResponse) -> httpx.Response:
        return httpx.Response(reply.status, headers=list(reply.headers), content=reply.body)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a request from a sync `httpx.Client`."""
        reply = self._reply(request, request.read())
        if reply.delay > 0:
            self._sleep(reply.delay)
        return self._response(reply)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a request from an `httpx.AsyncClient`."""
        reply = self._reply(request, await request.aread())
        if reply.delay > 0:
            await self._async_sleep(reply.delay)
        return self._response(reply)
