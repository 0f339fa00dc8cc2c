"""The HTTP transport of an `AsyncAccountClient`: kept-alive httpcore connections, no pool.

httpx's default transport hands every request to httpcore's connection pool, which on
each request start and end scans every queued request against every connection and
asks each idle connection's socket whether the server closed it: with ten requests in
flight that bookkeeping was a third of the client's CPU. The driver already bounds what
is in flight (`drivers.ASYNC_POOL`), so this transport needs no queue: a request takes
the most recently used idle connection to its origin (checked once, as httpcore's pool
checks it: not expired, not closed by the server) or opens a new one, and gives it back
when the response has been read. At most `max_idle` connections are kept per origin.

Connections are public `httpcore.AsyncHTTPConnection`s made as httpcore's pool makes
them (the same SSL context, ALPN, HTTP/1.1, keep-alive expiry and timeouts), and
httpcore's errors become the same httpx errors httpx's own transport raises. The body is
read here, before the connection is given back: the account clients never stream.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpcore
import httpx

__all__ = ["PooledConnectionsTransport"]

# httpcore's errors and the httpx errors httpx's transport raises for them.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """Raise httpcore's errors as httpx's (the most specific first), chained."""
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


class _Body(httpx.AsyncByteStream):
    """A response body already read."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content


_Key = tuple[bytes, bytes, int]


class PooledConnectionsTransport(httpx.AsyncBaseTransport):
    """Sends each request on an idle kept-alive connection, or a new one.

    For a client whose requests in flight are bounded by its caller: it opens as many
    connections as requests are in flight and keeps `max_idle` per origin.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        max_idle: int,
        keepalive_expiry: float | None,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[_Key, list[httpcore.AsyncHTTPConnection]] = {}
        self._closed = False
        self.connections_opened = 0
        """Connections opened so far (each to one origin, reused while it lives)."""

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The SSL context of every HTTPS connection this transport opens."""
        return self._ssl_context

    @property
    def idle_connections(self) -> int:
        """Connections kept alive and idle now."""
        return sum(len(idle) for idle in self._idle.values())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` and read its response."""
        if self._closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        url = request.url
        core_url = httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        assert isinstance(request.stream, httpx.AsyncByteStream)  # noqa: S101 - httpx's own check
        core_request = httpcore.Request(
            method=request.method,
            url=core_url,
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        origin = core_url.origin
        key = (origin.scheme, origin.host, origin.port)
        with _httpx_errors():
            connection = await self._idle_connection(key)
            if connection is None:
                self.connections_opened += 1
                connection = httpcore.AsyncHTTPConnection(
                    origin,
                    ssl_context=self._ssl_context,
                    keepalive_expiry=self._keepalive_expiry,
                )
            reusable = False
            try:
                response = await connection.handle_async_request(core_request)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
                reusable = True
            finally:
                await self._give_back(key, connection, reusable=reusable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(content),
            extensions=response.extensions,
        )

    async def _idle_connection(self, key: _Key) -> httpcore.AsyncHTTPConnection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            # What httpcore's pool asks before it reuses a connection: the server has not
            # closed it, and it has not been idle longer than the keep-alive expiry.
            if connection.is_idle() and not connection.has_expired():
                return connection
            await connection.aclose()
        return None

    async def _give_back(
        self, key: _Key, connection: httpcore.AsyncHTTPConnection, *, reusable: bool
    ) -> None:
        idle = self._idle.setdefault(key, [])
        if reusable and not self._closed and connection.is_idle() and len(idle) < self._max_idle:
            idle.append(connection)
        else:
            await connection.aclose()

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when given back."""
        self._closed = True
        idle = [connection for connections in self._idle.values() for connection in connections]
        self._idle.clear()
        with _httpx_errors():
            for connection in idle:
                await connection.aclose()
