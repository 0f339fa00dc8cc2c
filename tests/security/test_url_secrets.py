"""No URL the library keeps or shows may hold a credential: one rule (`url_secret`) for
every form (user information, `password=`/`sslpassword=`/`token=` in the query, the key
percent-encoded or upper-case, a URL nested in a reference's option) and every place a
URL is configured (lease store, secret store, accounts URL, token endpoint, Vault
address). Each is refused with `ConfigError` naming its field, the secret shown nowhere:
not in the error, not in a repr, not in the command line's output.
"""

from __future__ import annotations

import json

import pytest

import databricks_access as da
from databricks_access._cli import app as _cli
from databricks_access._cli import errors as _cli_errors
from databricks_access._util.redact import redact, url_secret

SECRET = "hunter2"
UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BASE = {"name": "x", "accounts_url": "https://accounts.cloud.databricks.com", "account_id": UUID}

LEASE_STORES = [
    f"postgresql://jit@db/jit?password={SECRET}",
    f"postgresql://jit@db/jit?sslpassword={SECRET}",
    f"postgresql://jit@db/jit?sslmode=require&password={SECRET}",
    f"postgresql://jit@db/jit?pass%77ord={SECRET}",
    f"postgresql://jit@db/jit?PASSWORD={SECRET}",
    f"postgresql:///jit?host=/run/postgresql&password={SECRET}",
    f"postgres://jit:{SECRET}@db/jit",
    "postgresql://jit:@db/jit",
]
SECRET_STORES = [
    f"vault:secret/databricks?addr=https://u:{SECRET}@vault.example.com",
    f"vault:secret/databricks?addr=https://vault.example.com/?token={SECRET}",
    f"vault:secret/databricks?addr=https%3A%2F%2Fvault.example.com%2F%3Ftoken%3D{SECRET}",
    f"azure-key-vault:https://u:{SECRET}@jit.vault.azure.net/secrets/sp",
    f"azure-key-vault:https://jit.vault.azure.net/secrets/sp?client_secret={SECRET}",
    f"aws-secrets-manager:sp?region=eu-west-1&token={SECRET}",
]
ENDPOINTS = [
    f"https://accounts.cloud.databricks.com/oidc/token?client_secret={SECRET}",
    f"https://u:{SECRET}@accounts.cloud.databricks.com/oidc/token",
]


def assert_hidden(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), *(repr(p) for p in getattr(exc, "problems", ()))):
        assert SECRET not in text, text


@pytest.mark.parametrize("url", LEASE_STORES)
def test_a_lease_store_url_with_a_secret_is_refused(url):
    with pytest.raises(da.ConfigError) as info:
        da.IntegrationConfig(**BASE, lease_store=url)
    assert info.value.fields == ("lease_store",)
    assert_hidden(info.value)
    assert url_secret(url) is not None


@pytest.mark.parametrize("ref", SECRET_STORES)
def test_a_secret_store_reference_with_a_secret_is_refused(ref):
    with pytest.raises(da.ConfigError) as info:
        da.IntegrationConfig(**BASE, secret_store=ref)
    assert info.value.fields == ("secret_store",)
    assert_hidden(info.value)


@pytest.mark.parametrize("url", ENDPOINTS)
def test_a_token_endpoint_with_a_secret_is_refused(url):
    with pytest.raises(da.ConfigError) as info:
        da.AccountConfig(host=BASE["accounts_url"], account_id=UUID, token_endpoint=url)
    assert "token_endpoint" in info.value.fields
    assert_hidden(info.value)


def test_a_vault_address_with_a_secret_is_refused():
    pytest.importorskip("hvac")
    for addr in (f"https://vault.example.com/?token={SECRET}", f"https://a:{SECRET}@vault.x"):
        with pytest.raises(da.ConfigError) as info:
            da.HashiCorpVaultStore("databricks/sp", addr=addr, environ={})
        assert_hidden(info.value)


@pytest.mark.parametrize("url", [*LEASE_STORES[:2], SECRET_STORES[1]])
def test_the_command_line_never_shows_it(tmp_path, capsys, url):
    key = "lease_store" if url.startswith("postgres") else "secret_store"
    config = tmp_path / "integration.json"
    config.write_text(json.dumps({**BASE, key: url}))
    for command in ("doctor", "leases", "run"):
        code = _cli.main([command, "--config", str(config)], environ={})
        captured = capsys.readouterr()
        assert code == _cli_errors.EXIT_USAGE
        assert SECRET not in captured.out + captured.err
        assert key in captured.err


def test_plain_urls_pass():
    for url in (
        "postgresql://jit@db.internal:5432/jit?sslmode=verify-full&sslkey=/k&application_name=a",
        "sqlite:///leases.db",
        "vault:secret/databricks?addr=https://vault.example.com&auth=approle",
        "https://accounts.cloud.databricks.com/login?next=%2F",
    ):
        assert url_secret(url) is None, url


@pytest.mark.parametrize(
    "text",
    [
        "GET / HTTP/1.1\r\nAuthorization: Basic aHVudGVyMjpodW50ZXIy\r\n",
        "error: bad header Authorization: Bearer hunter2.hunter2",
        "proxy said: basic aHVudGVyMjpodW50ZXIy",
        '{"client_secret": "hunter2"}',
        "grant_type=client_credentials&client_secret=hunter2&scope=all-apis",
        "X-Vault-Token: hunter2",
        "see https://jit:hunter2@db.internal/jit",
        "access_token=hunter2",
        '{"access_token":"hunter2","token_type":"Bearer"}',
    ],
)
def test_redact_masks_every_credential_form(text):
    assert "hunter2" not in redact(text)
    assert "aHVudGVyMjpodW50ZXIy" not in redact(text)


@pytest.mark.parametrize(
    "host",
    [
        "https:/accounts.cloud.databricks.com",
        "https:accounts.cloud.databricks.com",
        "HTTPS:/accounts.cloud.databricks.com",
        "http:/127.0.0.1:8080",
    ],
)
def test_a_scheme_typo_is_refused_not_read_as_a_host(host):
    with pytest.raises(da.ConfigError) as info:
        da.AccountConfig(
            host=host, account_id=UUID, allow_custom_host=True, allow_insecure_http=True
        )
    assert info.value.fields == ("host",)
    assert "malformed scheme" in str(info.value)
