"""The async client's own transport, against the emulator over loopback.

`AsyncAccountClient` sends on `PooledConnectionsTransport` unless given a transport or
a proxy is configured. Each test here holds it to what httpx's own transport did: the
same requests on the wire, kept-alive connections, closed with the client, and the same
typed errors (checked against a client on a plain `httpx.AsyncClient`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest

import databricks_access as da
from databricks_access._account import drivers
from databricks_access._account.transport import PooledConnectionsTransport
from databricks_access.testing import FakeAccount, FakeRequest, Fault, FaultPlan


@pytest.fixture
def fake() -> FakeAccount:
    return FakeAccount()


def _config(fake: FakeAccount, url: str, **kwargs: object) -> da.AccountConfig:
    return da.AccountConfig(
        host=url,
        account_id=fake.account_id,
        allow_custom_host=True,
        allow_insecure_http=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _secrets(fake: FakeAccount) -> da.StaticSecretStore:
    creds = fake.add_service_principal("transport")
    return da.StaticSecretStore(creds.client_id, creds.client_secret)


def _connections(client: da.AsyncAccountClient) -> PooledConnectionsTransport:
    transport = client._driver.http.connections  # type: ignore[attr-defined]
    assert isinstance(transport, PooledConnectionsTransport)
    return transport


def test_requests_go_out_with_the_headers_and_bodies_they_did(fake: FakeAccount):
    seen: list[FakeRequest] = []

    def record(request: FakeRequest) -> None:
        seen.append(request)

    fake.interceptor = record
    secrets = _secrets(fake)
    alice = fake.add_user("alice@example.com")
    gid = fake.add_group("g")
    with fake.serve() as url:

        async def main() -> da.Group:
            async with da.AsyncAccountClient(
                _config(fake, url), secrets=secrets, rate_limits=None
            ) as client:
                await client.groups.add_members(gid, [alice])
                return await client.groups.get(gid)

        group = asyncio.run(main())
    assert [m.id for m in group.members or ()] == [alice]
    token, patch, get = seen
    assert token.op_class.value == "token"
    for request in (patch, get):
        assert request.headers["authorization"].startswith("Bearer ")
        assert request.headers["accept"] == "application/json"
        assert request.headers["user-agent"].startswith("databricks-access/")
        assert request.headers["host"] == url.removeprefix("http://")
    assert patch.method == "PATCH"
    assert patch.headers["content-type"] == "application/json"
    assert int(patch.headers["content-length"]) == len(patch.body) > 0
    assert get.method == "GET"
    assert "content-length" not in get.headers


def test_connections_are_kept_alive_and_closed_with_the_client(fake: FakeAccount):
    secrets = _secrets(fake)
    gid = fake.add_group("g")
    with fake.serve() as url:

        async def main() -> None:
            client = da.AsyncAccountClient(_config(fake, url), secrets=secrets, rate_limits=None)
            await client.groups.get(gid)
            transport = _connections(client)
            assert transport.connections_opened == 1  # the token and the read, in turn
            for _ in range(5):
                await client.groups.get(gid)
            assert transport.connections_opened == 1
            await asyncio.gather(*(client.groups.get(gid) for _ in range(40)))
            assert transport.connections_opened <= drivers.ASYNC_POOL
            assert 1 <= transport.idle_connections <= drivers.ASYNC_POOL
            await client.close()
            assert transport.idle_connections == 0
            with pytest.raises(RuntimeError, match="closed"):
                await transport.handle_async_request(httpx.Request("GET", url))

        asyncio.run(main())


def test_a_connection_the_server_closed_is_not_reused(fake: FakeAccount):
    secrets = _secrets(fake)
    gid = fake.add_group("g")
    # The first GET is answered by closing the connection; the client's retry (and every
    # request after it) must go out on a fresh one, not on the dead socket.
    FaultPlan([Fault.drop(op_class="get", nth=1)]).install(fake)
    with fake.serve() as url:

        async def main() -> list[da.Group]:
            async with da.AsyncAccountClient(
                _config(fake, url), secrets=secrets, rate_limits=None
            ) as client:
                first = await client.groups.get(gid)
                return [first, *[await client.groups.get(gid) for _ in range(3)]]

        groups = asyncio.run(main())
    assert [g.id for g in groups] == [gid] * 4
    assert [r.status for r in fake.log if r.op_class.value == "get"] == [0, 200, 200, 200, 200]


async def _error_of(client: da.AsyncAccountClient, gid: str) -> da.DatabricksAccessError:
    with pytest.raises(da.DatabricksAccessError) as caught:
        await client.groups.get(gid)
    return caught.value


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.drop(op_class="get"), da.TransportError),
        (Fault.timeout(hold=2, op_class="get"), da.RequestTimeoutError),
    ],
    ids=["dropped", "timed out"],
)
def test_lost_answers_raise_what_httpx_s_transport_raised(fake: FakeAccount, fault, error):
    secrets = _secrets(fake)
    gid = fake.add_group("g")
    config_args = {"max_attempts": 1, "timeout": 0.5}
    with fake.serve() as url:
        config = _config(fake, url, **config_args)

        async def both() -> list[da.DatabricksAccessError]:
            ours = da.AsyncAccountClient(config, secrets=secrets, rate_limits=None)
            await ours.groups.get(gid)  # the token, and a kept-alive connection
            stock = httpx.AsyncClient(timeout=httpx.Timeout(0.5, connect=10.0))
            theirs = da.AsyncAccountClient(
                config, secrets=secrets, rate_limits=None, http_client=stock
            )
            await theirs.groups.get(gid)
            FaultPlan([fault]).install(fake)
            try:
                return [await _error_of(ours, gid), await _error_of(theirs, gid)]
            finally:
                await ours.close()
                await stock.aclose()

        ours, theirs = asyncio.run(both())
    assert type(ours) is type(theirs) is error
    assert str(ours) == str(theirs)
    assert ours.maybe_applied == theirs.maybe_applied is True


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]  # bound, never listening: connections are refused


def test_a_refused_connection_raises_what_httpx_s_transport_raised(
    fake: FakeAccount, closed_port: int
):
    url = f"http://127.0.0.1:{closed_port}"
    config = _config(fake, url, max_attempts=1)
    auth = httpx.BasicAuth("u", "p")  # no token request: the API request is refused

    async def both() -> list[da.DatabricksAccessError]:
        async with (
            da.AsyncAccountClient(config, auth=auth, rate_limits=None) as ours,
            httpx.AsyncClient() as stock,
        ):
            theirs = da.AsyncAccountClient(config, auth=auth, rate_limits=None, http_client=stock)
            return [await _error_of(ours, "g"), await _error_of(theirs, "g")]

    ours, theirs = asyncio.run(both())
    assert type(ours) is type(theirs) is da.TransportError
    assert str(ours) == str(theirs)
    assert ours.request_not_sent is theirs.request_not_sent is True


def test_a_configured_proxy_keeps_httpx_s_own_transport(monkeypatch: pytest.MonkeyPatch):
    timeout = httpx.Timeout(5.0)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "example.com")  # names no proxy: ours still
    assert drivers.new_async_http(None, timeout, verify=True).connections is not None  # type: ignore[attr-defined]
    for name in ("HTTPS_PROXY", "ALL_PROXY", "HTTP_PROXY"):
        with monkeypatch.context() as env:
            env.setenv(name, "http://proxy.example.com:3128")
            http = drivers.new_async_http(None, timeout, verify=True)
            assert http.connections is None  # type: ignore[attr-defined]
    # A transport given is used as it is.
    given = httpx.AsyncHTTPTransport()
    assert drivers.new_async_http(given, timeout, verify=True).connections is None  # type: ignore[attr-defined]


def test_a_cancelled_request_closes_its_connection_and_the_client_goes_on(fake: FakeAccount):
    secrets = _secrets(fake)
    gid = fake.add_group("g")
    # The second GET is answered late; the caller gives up on it first.
    FaultPlan([Fault.latency(2.0, op_class="get", nth=2)]).install(fake)
    with fake.serve() as url:

        async def main() -> None:
            async with da.AsyncAccountClient(
                _config(fake, url), secrets=secrets, rate_limits=None
            ) as client:
                await client.groups.get(gid)
                transport = _connections(client)
                assert transport.idle_connections == 1
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(client.groups.get(gid), timeout=0.2)
                # The connection that was cut off mid-answer is not kept for reuse...
                assert transport.idle_connections == 0
                # ...and the next request goes out on a fresh one.
                assert (await client.groups.get(gid)).id == gid
                assert transport.connections_opened == 2
                assert transport.idle_connections == 1

        asyncio.run(main())
