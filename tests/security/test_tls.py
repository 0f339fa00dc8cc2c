"""TLS verification is on by default, and only `insecure_skip_tls_verify=True` on an
`AccountConfig` turns it off — with a WARNING each time a client is built. No
environment variable turns it off: not `DATABRICKS_INSECURE_SKIP_TLS_VERIFY`, not
`PYTHONHTTPSVERIFY=0`, not empty CA bundle variables, not a prefixed integration variable.

Proved twice: on the clients' SSL contexts, and against a real TLS server on 127.0.0.1
with a self-signed certificate (built with the `openssl` command when it is present),
which a default client refuses and an explicitly insecure one reaches.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import shutil
import ssl
import subprocess
import threading

import httpx
import pytest

import databricks_access as da
from databricks_access._account.drivers import shared_ssl_context

UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
HOST = "https://accounts.cloud.databricks.com"
ENVIRONMENT = {
    "DATABRICKS_INSECURE_SKIP_TLS_VERIFY": "true",
    "DATABRICKS_INSECURE": "1",
    "DATABRICKS_ACCESS_INSECURE_SKIP_TLS_VERIFY": "true",
    "DATABRICKS_ACCESS_INSECURE": "yes",
    "PYTHONHTTPSVERIFY": "0",
    "CURL_CA_BUNDLE": "",
    "REQUESTS_CA_BUNDLE": "",
    "HTTPX_VERIFY": "0",
    "SSL_VERIFY": "false",
}


def contexts(config: da.AccountConfig) -> list[ssl.SSLContext]:
    """The SSL contexts of a sync client and of an async client built from `config`."""
    sync = da.AccountClient(config, secrets=da.StaticSecretStore("app", "secret"))
    asynchronous = da.AsyncAccountClient(config, secrets=da.StaticSecretStore("app", "secret"))
    found = [sync._driver.http._transport._pool._ssl_context]
    http = asynchronous._new_http()
    found.append(http.connections.ssl_context)
    sync.close()
    asyncio.run(http.aclose())
    return found


def verifying(context: ssl.SSLContext) -> bool:
    return context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_verification_is_on_by_default():
    config = da.AccountConfig(host=HOST, account_id=UUID)
    assert config.insecure_skip_tls_verify is False
    assert all(verifying(c) for c in contexts(config))


def test_only_the_explicit_flag_turns_it_off_and_each_client_warns(caplog):
    config = da.AccountConfig(host=HOST, account_id=UUID, insecure_skip_tls_verify=True)
    with caplog.at_level(logging.WARNING, logger="databricks_access"):
        found = contexts(config)
    assert [c.verify_mode for c in found] == [ssl.CERT_NONE, ssl.CERT_NONE]
    warnings = [r for r in caplog.records if "TLS certificate verification is OFF" in r.message]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING and HOST in r.message for r in warnings)


@pytest.mark.parametrize("flag", ["true", "yes", 1, "1", None])
def test_the_flag_takes_only_a_real_boolean(flag):
    with pytest.raises(da.ConfigError) as info:
        da.AccountConfig(host=HOST, account_id=UUID, insecure_skip_tls_verify=flag)
    assert info.value.fields == ("insecure_skip_tls_verify",)


def test_no_environment_variable_turns_it_off(monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABRICKS_HOST", HOST)
    monkeypatch.setenv("DATABRICKS_ACCOUNT_ID", UUID)
    monkeypatch.setenv("DATABRICKS_ACCESS_NAME", "sales")
    monkeypatch.setenv("DATABRICKS_ACCESS_ACCOUNTS_URL", HOST)
    monkeypatch.setenv("DATABRICKS_ACCESS_ACCOUNT_ID", UUID)
    configs = [
        da.AccountConfig(host=HOST, account_id=UUID),
        da.AccountConfig.from_env(),
        da.IntegrationConfig.from_env().account_config(),
    ]
    for config in configs:
        assert config.insecure_skip_tls_verify is False
        assert all(verifying(c) for c in contexts(config))


# -- against a real TLS server -------------------------------------------------------------


class _Refuse(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b'{"error": "invalid_client", "error_description": "refused (test server)"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _call(url: str, **flags: bool) -> None:
    config = da.AccountConfig(
        host=url, account_id=UUID, allow_custom_host=True, max_attempts=1, **flags
    )
    with da.AccountClient(config, secrets=da.StaticSecretStore("app", "secret")) as client:
        client.groups.get("1")


def test_a_self_signed_server_is_refused(tls_server, monkeypatch):
    with pytest.raises(da.TransportError, match=r"CERTIFICATE_VERIFY_FAILED|certificate") as info:
        _call(tls_server)
    assert info.value.request_not_sent
    # The environment cannot talk the client into it.
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(da.TransportError):
        _call(tls_server)


def _acall(url: str, http_client: httpx.AsyncClient | None = None, **flags: bool) -> None:
    config = da.AccountConfig(
        host=url, account_id=UUID, allow_custom_host=True, max_attempts=1, **flags
    )

    async def main() -> None:
        secrets = da.StaticSecretStore("app", "secret")
        async with da.AsyncAccountClient(
            config, secrets=secrets, http_client=http_client
        ) as client:
            await client.groups.get("1")

    asyncio.run(main())


def _refusal(url: str, http_client: httpx.AsyncClient | None = None) -> Exception:
    with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate") as info:
        _acall(url, http_client)
    return info.value


def test_a_self_signed_server_is_refused_by_the_async_client_too(tls_server, monkeypatch):
    # As a client on httpx's own transport refuses it: the same error (a TransportError
    # since httpcore maps TLS failures; the bare ssl error with httpcore 1.0.0).
    ours = _refusal(tls_server)
    theirs = _refusal(tls_server, httpx.AsyncClient(verify=shared_ssl_context()))
    assert (type(ours), str(ours)) == (type(theirs), str(theirs))
    if isinstance(ours, da.TransportError):
        assert ours.request_not_sent
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    assert type(_refusal(tls_server)) is type(ours)


def test_only_the_explicit_flag_lets_the_async_client_reach_it(tls_server, caplog):
    with caplog.at_level(logging.WARNING, logger="databricks_access"):
        with pytest.raises(da.AuthenticationError, match="invalid_client"):
            _acall(tls_server, insecure_skip_tls_verify=True)
    assert any("verification is OFF" in r.message for r in caplog.records)


def test_only_the_explicit_flag_reaches_a_self_signed_server(tls_server, caplog):
    with caplog.at_level(logging.WARNING, logger="databricks_access"):
        # The handshake passes: the server's own answer (401 invalid_client) comes back.
        with pytest.raises(da.AuthenticationError, match="invalid_client"):
            _call(tls_server, insecure_skip_tls_verify=True)
    assert any("verification is OFF" in r.message for r in caplog.records)
