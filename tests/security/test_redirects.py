"""No credential ever follows a redirect.

The class: every HTTP path that carries a credential (the account client with its
bearer token, the OAuth token request with the client secret, the Vault store with its
token or AppRole secret id) meets a redirect to another host. Nothing may reach that
host, and the caller gets a typed error, even when a caller-supplied `httpx.Client` was
built with `follow_redirects=True`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from typing_extensions import Self

import databricks_access as da
from databricks_access.testing import FakeRequest, FakeResponse

hvac = pytest.importorskip("hvac")

VAULT_TOKEN = "hvs." + "5ec12e7" * 4
SECRET_ID = "d0se-" + "5ec12e7" * 4


class _Server:
    """A plain HTTP server on 127.0.0.1 that records what it receives."""

    def __init__(self, answer) -> None:
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.received.append((self.command, self.path, dict(self.headers), body))
                status, headers, content = answer(self.command, self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[_Server]:
    """The other host a redirect points to: it answers like Vault would, and records."""
    secret = json.dumps(
        {"data": {"data": {"client_id": "evil", "client_secret": "evil"}, "metadata": {}}}
    ).encode()
    login = json.dumps({"auth": {"client_token": "evil", "lease_duration": 600}}).encode()

    def answer(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        body = login if method == "POST" else secret
        return 200, {"Content-Type": "application/json"}, body

    with _Server(answer) as server:
        yield server


@pytest.fixture
def redirector(elsewhere) -> Iterator[_Server]:
    """The configured Vault address: it answers every request with a 307 elsewhere."""

    def answer(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return 307, {"Location": elsewhere.url + path}, b""

    with _Server(answer) as server:
        yield server


@pytest.mark.parametrize("auth", ["token", "approle"])
def test_the_vault_store_never_follows_a_redirect(redirector, elsewhere, auth):
    environ = {"VAULT_TOKEN": VAULT_TOKEN, "VAULT_ROLE_ID": "role", "VAULT_SECRET_ID": SECRET_ID}
    store = da.HashiCorpVaultStore(
        "databricks/sp",
        addr=redirector.url,
        auth=auth,
        environ=environ,
        allow_insecure_http=True,
    )
    with store, pytest.raises(da.SecretStoreError) as info:
        store.get_credentials()
    assert redirector.received, "the store never asked the configured address"
    assert elsewhere.received == []
    assert "redirect" in str(info.value)
    assert VAULT_TOKEN not in str(info.value) and SECRET_ID not in str(info.value)


def test_an_injected_vault_client_does_not_follow_redirects_either(redirector, elsewhere):
    client = hvac.Client(url=redirector.url, token=VAULT_TOKEN)
    try:
        store = da.HashiCorpVaultStore(
            "databricks/sp", client=client, environ={}, allow_insecure_http=True
        )
        with store, pytest.raises(da.SecretStoreError):
            store.get_credentials()
    finally:
        client.adapter.close()
    assert elsewhere.received == []


# -- the account client ----------------------------------------------------------------------


def _redirect_scim(fake, target: str) -> None:
    def intercept(request: FakeRequest) -> FakeResponse | None:
        if "/scim/" in request.path:
            return FakeResponse(302, (("location", target + request.path),), b"")
        return None

    fake.interceptor = intercept


def test_a_supplied_client_that_follows_redirects_is_refused_the_redirect(
    fake, config, credentials, clock
):
    group = fake.add_group("ops")
    seen: list[httpx.Request] = []

    def other_host(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": group, "displayName": "evil"})

    transport = fake.transport()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.example":
            return other_host(request)
        return transport.handle_request(request)

    _redirect_scim(fake, "https://evil.example")
    http = httpx.Client(transport=httpx.MockTransport(route), follow_redirects=True)
    with da.AccountClient(config, secrets=credentials, http_client=http, clock=clock) as client:
        with pytest.raises(da.ApiError) as info:
            client.groups.get(group)
    assert seen == []
    assert info.value.status_code == 302
    http.close()


def test_a_supplied_async_client_that_follows_redirects_is_refused_the_redirect(
    fake, config, credentials, clock
):
    group = fake.add_group("ops")
    seen: list[httpx.Request] = []
    transport = fake.transport()

    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.example":
            seen.append(request)
            return httpx.Response(200, json={"id": group, "displayName": "evil"})
        return await transport.handle_async_request(request)

    _redirect_scim(fake, "https://evil.example")

    async def main() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(route), follow_redirects=True)
        async with da.AsyncAccountClient(
            config, secrets=credentials, http_client=http, clock=clock
        ) as client:
            with pytest.raises(da.ApiError) as info:
                await client.groups.get(group)
            assert info.value.status_code == 302
        await http.aclose()

    asyncio.run(main())
    assert seen == []


def test_the_token_request_never_follows_a_redirect(fake, config, credentials, clock):
    seen: list[httpx.Request] = []
    transport = fake.transport()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.example":
            seen.append(request)
            return httpx.Response(200, json={"access_token": "evil", "expires_in": 3600})
        return transport.handle_request(request)

    def intercept(request: FakeRequest) -> FakeResponse | None:
        if request.path.endswith("/v1/token"):
            return FakeResponse(307, (("location", "https://evil.example/token"),), b"")
        return None

    fake.interceptor = intercept
    http = httpx.Client(transport=httpx.MockTransport(route), follow_redirects=True)
    with da.AccountClient(config, secrets=credentials, http_client=http, clock=clock) as client:
        with pytest.raises(da.DatabricksAccessError) as info:
            client.groups.get(fake.add_group("ops"))
    http.close()
    assert seen == []
    assert credentials.get_credentials().client_secret not in str(info.value)


def test_the_azure_store_never_follows_a_redirect(monkeypatch):
    pytest.importorskip("azure.keyvault.secrets")
    import requests  # noqa: PLC0415 - the azure extra's transport
    from azure.core.pipeline.transport import RequestsTransport  # noqa: PLC0415
    from azure.keyvault.secrets import SecretClient  # noqa: PLC0415

    from helpers.fake_key_vault import FakeCredential, FakeKeyVault  # noqa: PLC0415

    elsewhere: list[dict[str, str]] = []

    class Redirecting(FakeKeyVault):
        def send(self, request, **kwargs):
            host = request.url.split("/")[2]
            if host == "evil.example":
                elsewhere.append(dict(request.headers))
                return self._reply(
                    request, 200, {"value": '{"client_id":"e","client_secret":"e"}'}, {}
                )
            if request.headers.get("Authorization") is None:
                return super().send(request, **kwargs)
            return self._reply(request, 307, None, {"Location": "https://evil.example/secrets/sp"})

    # Its own vault name: the SDK caches auth challenges per vault, across tests.
    vault = Redirecting("https://redirect-test.vault.azure.net")
    session = requests.Session()
    session.mount("https://", vault)

    class Sdk:
        @staticmethod
        def SecretClient(**kwargs):
            transport = RequestsTransport(session=session, session_owner=False)
            return SecretClient(transport=transport, retry_total=0, **kwargs)

    store = da.AzureKeyVaultStore(vault.vault_url, "sp", credential=FakeCredential())
    monkeypatch.setattr(store, "_sdk", Sdk)
    with store, pytest.raises(da.SecretStoreError):
        store.get_credentials()
    session.close()
    assert vault.requests, "the store never asked the vault"
    assert elsewhere == []
