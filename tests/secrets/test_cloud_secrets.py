"""The cloud secret stores: AWS Secrets Manager, Azure Key Vault, GCP Secret Manager, Vault.

Each runs its real SDK against a stand-in that answers as the documented service does:
moto for AWS; an in-process Key Vault under the real `SecretClient` (helpers/fake_key_vault);
a local Secret Manager REST server (helpers/fake_gcp_secrets); a local Vault HTTP server
(helpers/fake_vault). No request leaves 127.0.0.1 (or the process).

Every failure is checked with a recognisable secret in play: it never reaches the message,
the repr, the args, the traceback text or any chained exception.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import hvac
import pytest
from azure.identity import CredentialUnavailableError, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from botocore.stub import Stubber
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager
from moto import mock_aws
from test_secrets import CLIENT_ID, SECRET, assert_no_secret

from databricks_access import (
    AwsSecretsManagerStore,
    AzureKeyVaultStore,
    ClientCredentials,
    ConfigError,
    GcpSecretManagerStore,
    HashiCorpVaultStore,
    ManualClock,
    SecretStore,
    SecretStoreError,
    open_secret_store,
)
from databricks_access._secrets import aws as _aws_secrets
from databricks_access._secrets import azure as _azure_secrets
from databricks_access._secrets import cloud as _cloud_secrets
from databricks_access._secrets import gcp as _gcp_secrets
from databricks_access._secrets import vault as _vault_secrets
from helpers.doctests import run_doctests
from helpers.fake_gcp_secrets import FakeSecretManager
from helpers.fake_key_vault import FakeCredential, FakeKeyVault
from helpers.fake_vault import FakeVault
from helpers.internals import crc32c

GOOD = {"client_id": CLIENT_ID, "client_secret": SECRET}
GOOD_TEXT = json.dumps(GOOD)
CREDENTIALS = ClientCredentials(CLIENT_ID, SECRET)


def rotated(n: int) -> dict[str, str]:
    return {"client_id": CLIENT_ID, "client_secret": f"rotated-{n}"}


def failure(store: SecretStore, *, refresh: bool = False) -> SecretStoreError:
    """The store's error, checked for leaks; the message starts with the store's name."""
    with pytest.raises(SecretStoreError) as info:
        store.get_credentials(refresh=refresh)
    error = info.value
    assert_no_secret(error)
    assert SECRET not in repr(vars(error))
    # Raised outside any handler: no SDK exception (which may hold a body) is chained.
    assert error.__cause__ is None
    assert error.__context__ is None
    assert str(error).startswith(store.where + ": "), str(error)  # type: ignore[attr-defined]
    return error


# Values that are not the credentials document; each holds the secret somewhere.
MALFORMED = [
    ("not-json", f"client_secret={SECRET}", "is not valid JSON"),
    ("truncated", '{"client_id": "x", "client_secret": "' + SECRET, "is not valid JSON"),
    ("yaml", f"client_id: x\nclient_secret: {SECRET}\n", "is not valid JSON"),
    ("array", json.dumps([CLIENT_ID, SECRET]), "found an array"),
    ("string", json.dumps(SECRET), "found a string"),
    ("missing-id", json.dumps({"client_secret": SECRET}), "missing key 'client_id'"),
    ("missing-secret", json.dumps({"client_id": CLIENT_ID}), "missing key 'client_secret'"),
    ("missing-both", json.dumps({SECRET: SECRET}), "missing key 'client_id' and 'client_secret'"),
    ("empty-id", json.dumps({"client_id": " ", "client_secret": SECRET}), "'client_id' is empty"),
    ("empty-secret", json.dumps({"client_id": CLIENT_ID, "client_secret": ""}), "is empty"),
    (
        "secret-object",
        json.dumps({"client_id": CLIENT_ID, "client_secret": {"v": SECRET}}),
        "'client_secret' must be a string, found an object",
    ),
    (
        "id-list",
        json.dumps({"client_id": [SECRET], "client_secret": SECRET}),
        "'client_id' must be a string, found an array",
    ),
    ("too-large", SECRET * 3000, "larger than 65536 bytes"),
    (
        "lone-surrogate",
        '{"client_id": "x", "client_secret": "' + SECRET + '\\ud800"}',
        "'client_secret' is not valid Unicode text",
    ),
]
MALFORMED_IDS = [case[0] for case in MALFORMED]
NOT_UTF8 = b'{"client_id": "x", "client_secret": "' + SECRET.encode() + b'\xff"}'


# --- the shared parts ----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in MALFORMED], ids=MALFORMED_IDS)
def test_parse_text_names_the_problem_never_the_value(value, expected):
    with pytest.raises(SecretStoreError) as info:
        _cloud_secrets.parse_text("the store", value)
    assert str(info.value).startswith("the store: ")
    assert expected in str(info.value)
    assert_no_secret(info.value)
    assert info.value.__context__ is None


def test_parse_text_accepts_bytes_a_bom_and_whitespace():
    data = (
        b"\xef\xbb\xbf"
        + json.dumps({"client_id": f" {CLIENT_ID}\n", "client_secret": SECRET}).encode()
    )
    assert _cloud_secrets.parse_text("s", data) == CREDENTIALS
    assert _cloud_secrets.parse_text("s", "\ufeff" + GOOD_TEXT) == CREDENTIALS
    with pytest.raises(SecretStoreError, match="not UTF-8 text") as info:
        _cloud_secrets.parse_text("s", NOT_UTF8)
    assert_no_secret(info.value)


@pytest.mark.parametrize("ttl", [-1, float("nan"), float("inf"), "300", True, None])
def test_a_bad_cache_ttl_is_a_config_error(ttl):
    with pytest.raises(ConfigError) as info:
        _cloud_secrets.check_ttl(ttl)
    assert info.value.fields == ("cache_ttl",)


def test_cache_ttl_takes_a_timedelta():
    assert _cloud_secrets.check_ttl(dt.timedelta(minutes=2)) == 120.0


def test_modules_load_no_sdk_until_a_store_is_built():
    code = (
        "import sys, json\n"
        "import databricks_access, databricks_access._integration.approvers\n"
        "import databricks_access._secrets.refs, databricks_access._stores.refs\n"
        "import databricks_access._secrets.aws, databricks_access._secrets.azure\n"
        "import databricks_access._secrets.gcp, databricks_access._secrets.vault\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(out.stdout))
    heavy = {"boto3", "botocore", "azure", "google", "hvac", "requests", "grpc"}
    assert not loaded & heavy, sorted(loaded & heavy)


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("boto3", "aws"),
        ("botocore.exceptions", "aws"),
        ("azure.core.exceptions", "azure"),
        ("azure.keyvault.secrets", "azure"),
        ("azure.identity", "azure"),
        ("google.api_core.exceptions", "gcp"),
        ("google.cloud.secretmanager", "gcp"),
        ("hvac", "vault"),
    ],
)
def test_a_missing_sdk_names_the_extra(monkeypatch, module, extra):

    build = {
        "aws": lambda: AwsSecretsManagerStore("prod/sp", region="eu-west-1"),
        "azure": lambda: AzureKeyVaultStore("https://jit.vault.azure.net", "sp"),
        "gcp": lambda: GcpSecretManagerStore("p", "s"),
        "vault": lambda: HashiCorpVaultStore("sp", addr="https://vault.example.com"),
    }[extra]
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as info:
        build()
    assert f'pip install "databricks-access[{extra}]"' in str(info.value)
    assert info.value.fields == ("secret_store",)


DOC = Path(__file__).resolve().parents[2] / "docs" / "secret-stores.md"


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_docs_page_examples(aws):
    for block in doc_blocks("python"):
        compile(block, str(DOC), "exec")
    for block in doc_blocks("json"):
        json.loads(block)
    # The stores built in code, with the AWS secret read from moto.
    aws.create_secret(Name="prod/databricks/sales-sp", SecretString=GOOD_TEXT)
    namespace: dict[str, object] = {}
    exec(compile(doc_blocks("python")[1], str(DOC), "exec"), namespace)  # noqa: S102
    assert namespace["credentials"] == CREDENTIALS
    for name in ("aws", "azure", "gcp", "vault"):
        namespace[name].close()  # type: ignore[attr-defined]


def test_docstring_examples():

    for module in (_cloud_secrets, _aws_secrets, _azure_secrets, _gcp_secrets, _vault_secrets):
        result = run_doctests(module)
        assert result.failed == 0, module.__name__
    assert run_doctests(_aws_secrets).attempted > 0


# --- AWS Secrets Manager (moto) ---------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """No real AWS configuration or credentials, and no instance metadata lookups."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)


@pytest.fixture
def aws(aws_env, monkeypatch):

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        yield client
        client.close()


def aws_store(**options):

    options.setdefault("region", "eu-west-1")
    return AwsSecretsManagerStore(options.pop("secret_id", "prod/databricks"), **options)


def test_aws_secret_string_by_name(aws):
    aws.create_secret(Name="prod/databricks", SecretString=GOOD_TEXT)
    with aws_store() as store:
        assert isinstance(store, SecretStore)
        assert store.get_credentials() == CREDENTIALS
        assert store.where == "AWS Secrets Manager secret 'prod/databricks' in eu-west-1"
        assert repr(store) == "AwsSecretsManagerStore('prod/databricks', region='eu-west-1')"
        assert SECRET not in repr(store)


def test_aws_secret_binary_by_arn(aws):
    arn = aws.create_secret(Name="prod/databricks", SecretBinary=GOOD_TEXT.encode())["ARN"]

    with AwsSecretsManagerStore(arn) as store:  # the region comes from the ARN
        assert store.region == "eu-west-1"
        assert store.get_credentials() == CREDENTIALS


def test_aws_version_stages_follow_a_rotation(aws):
    aws.create_secret(Name="prod/databricks", SecretString=json.dumps(rotated(1)))
    aws.put_secret_value(SecretId="prod/databricks", SecretString=json.dumps(rotated(2)))
    with aws_store() as current, aws_store(version_stage="AWSPREVIOUS") as previous:
        assert current.get_credentials().client_secret == "rotated-2"
        assert previous.get_credentials().client_secret == "rotated-1"
        assert "(stage AWSPREVIOUS)" in previous.where
        assert "version_stage='AWSPREVIOUS'" in repr(previous)


def test_aws_cache_until_the_ttl_or_a_refresh(aws):
    aws.create_secret(Name="prod/databricks", SecretString=json.dumps(rotated(1)))
    clock = ManualClock()
    with aws_store(clock=clock, cache_ttl=dt.timedelta(minutes=5)) as store:
        first = store.get_credentials()
        aws.put_secret_value(SecretId="prod/databricks", SecretString=json.dumps(rotated(2)))
        clock.advance(299)
        assert store.get_credentials() is first  # still cached
        assert store.get_credentials(refresh=True).client_secret == "rotated-2"  # rotation
        aws.put_secret_value(SecretId="prod/databricks", SecretString=json.dumps(rotated(3)))
        clock.advance(300)
        assert store.get_credentials().client_secret == "rotated-3"  # the TTL ran out


def test_aws_cache_ttl_zero_reads_every_time(aws):
    aws.create_secret(Name="prod/databricks", SecretString=json.dumps(rotated(1)))
    with aws_store(cache_ttl=0) as store:
        assert store.get_credentials().client_secret == "rotated-1"
        aws.put_secret_value(SecretId="prod/databricks", SecretString=json.dumps(rotated(2)))
        assert store.get_credentials().client_secret == "rotated-2"


def test_aws_not_found(aws):
    with aws_store(secret_id="prod/missing") as store:
        error = failure(store)
    assert str(error) == (
        "AWS Secrets Manager secret 'prod/missing' in eu-west-1: not found (no such secret, "
        "or no version with that stage) [ResourceNotFoundException]"
    )


def test_aws_missing_stage_is_not_found(aws):
    aws.create_secret(Name="prod/databricks", SecretString=GOOD_TEXT)
    with aws_store(version_stage="AWSPREVIOUS") as store:
        assert "not found" in str(failure(store))


def test_aws_secret_scheduled_for_deletion(aws):
    aws.create_secret(Name="prod/databricks", SecretString=GOOD_TEXT)
    aws.delete_secret(SecretId="prod/databricks", RecoveryWindowInDays=7)
    with aws_store() as store:
        assert "scheduled for deletion" in str(failure(store))


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in MALFORMED], ids=MALFORMED_IDS)
def test_aws_malformed_secret_string(aws, value, expected):
    aws.create_secret(Name="prod/databricks", SecretString=value)
    with aws_store(client=aws) as store:
        error = failure(store)
        assert expected in str(error)
        assert str(failure(store, refresh=True)) == str(error)


def test_aws_malformed_secret_binary(aws):
    aws.create_secret(Name="prod/databricks", SecretBinary=NOT_UTF8)
    with aws_store() as store:
        assert "not UTF-8 text" in str(failure(store))


def stubbed_client(aws_env, monkeypatch):

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.session.Session().client("secretsmanager", region_name="eu-west-1")
    return client, Stubber(client)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AccessDeniedException", "access denied: the caller needs secretsmanager:GetSecretValue"),
        ("DecryptionFailure", "cannot be decrypted: the caller needs kms:Decrypt"),
        ("InternalServiceError", "Secrets Manager failed [InternalServiceError]"),
        ("SomethingNew", "Secrets Manager answered SomethingNew (HTTP 400)"),
    ],
)
def test_aws_service_errors_never_repeat_the_service_message(aws_env, monkeypatch, code, expected):
    client, stubber = stubbed_client(aws_env, monkeypatch)
    # A message echoing the secret proves the service's text is never repeated.
    stubber.add_client_error(
        "get_secret_value", service_error_code=code, service_message=f"echo {SECRET}"
    )
    with stubber, aws_store(client=client) as store:
        error = failure(store)
    assert expected in str(error)
    client.close()


def test_aws_a_reply_without_a_value(aws_env, monkeypatch):
    client, stubber = stubbed_client(aws_env, monkeypatch)
    stubber.add_response("get_secret_value", {"Name": "prod/databricks"})
    with stubber, aws_store(client=client) as store:
        assert "holds no SecretString or SecretBinary" in str(failure(store))
    client.close()


def test_aws_no_credentials(aws_env):
    with aws_store() as store:
        assert "no AWS credentials found" in str(failure(store))


def test_aws_no_region(aws_env):

    with AwsSecretsManagerStore("prod/databricks") as store:
        assert store.where == "AWS Secrets Manager secret 'prod/databricks' in the default region"
        assert "no AWS region" in str(failure(store))


def test_aws_an_injected_session_and_client_are_used(aws):
    aws.create_secret(Name="prod/databricks", SecretString=GOOD_TEXT)
    session = boto3.session.Session(region_name="eu-west-1")

    with AwsSecretsManagerStore("prod/databricks", session=session) as store:
        assert store.get_credentials() == CREDENTIALS
        assert store.region == "eu-west-1"
    with AwsSecretsManagerStore("prod/databricks", client=aws) as store:
        assert store.region == "eu-west-1"
        assert store.get_credentials() == CREDENTIALS
    # The injected client is left open: it still works.
    assert aws.get_secret_value(SecretId="prod/databricks")["Name"] == "prod/databricks"


def test_aws_reference_opens_a_working_store(aws):
    aws.create_secret(Name="prod/databricks", SecretString=GOOD_TEXT)
    with open_secret_store("aws-secrets-manager:prod/databricks?region=eu-west-1") as store:
        assert store.get_credentials() == CREDENTIALS


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"secret_id": " "}, "secret_id"),
        ({"region": "Europe"}, "region"),
        (
            {
                "secret_id": "arn:aws:secretsmanager:us-east-1:123456789012:secret:sp",
                "region": "eu-west-1",
            },
            "region",
        ),
        ({"version_stage": "AWS CURRENT"}, "version_stage"),
        ({"cache_ttl": -5}, "cache_ttl"),
    ],
)
def test_aws_bad_arguments(options, field):
    with pytest.raises(ConfigError) as info:
        aws_store(**options)
    assert info.value.fields == (field,)


def test_aws_a_closed_store_refuses(aws):
    aws.create_secret(Name="prod/databricks", SecretString=GOOD_TEXT)
    store = aws_store()
    store.get_credentials()
    store.close()
    store.close()  # idempotent
    assert "the store is closed" in str(failure(store))


# --- Azure Key Vault (the real SecretClient over an in-process vault) -----------------------


@pytest.fixture
def key_vault():

    vault = FakeKeyVault()
    yield vault
    vault.close_all()


def azure_store(vault, name="databricks-sp", **options):

    options.setdefault("client", vault.client())
    return AzureKeyVaultStore(vault.vault_url, name, **options)


def test_azure_latest_and_pinned_versions(key_vault):
    first = key_vault.set_secret("databricks-sp", json.dumps(rotated(1)))
    key_vault.set_secret("databricks-sp", json.dumps(rotated(2)))
    with azure_store(key_vault) as latest, azure_store(key_vault, version=first) as pinned:
        assert latest.get_credentials().client_secret == "rotated-2"
        assert pinned.get_credentials().client_secret == "rotated-1"
        assert (
            latest.where == "Azure Key Vault secret 'databricks-sp' in https://jit.vault.azure.net"
        )
        assert pinned.where.endswith(f"(version {first})")
        assert repr(pinned) == (
            f"AzureKeyVaultStore('https://jit.vault.azure.net', 'databricks-sp', version={first!r})"
        )
    # The SDK's challenge flow ran: one unauthenticated request, then the real one.
    assert len(key_vault.requests) >= 3


def test_azure_cache_until_the_ttl_or_a_refresh(key_vault):
    key_vault.set_secret("databricks-sp", json.dumps(rotated(1)))
    clock = ManualClock()
    with azure_store(key_vault, clock=clock, cache_ttl=60) as store:
        first = store.get_credentials()
        key_vault.set_secret("databricks-sp", json.dumps(rotated(2)))
        assert store.get_credentials() is first
        assert store.get_credentials(refresh=True).client_secret == "rotated-2"
        key_vault.set_secret("databricks-sp", json.dumps(rotated(3)))
        clock.advance(60)
        assert store.get_credentials().client_secret == "rotated-3"


def test_azure_not_found(key_vault):
    with azure_store(key_vault) as store:
        error = failure(store)
    assert str(error) == (
        "Azure Key Vault secret 'databricks-sp' in https://jit.vault.azure.net: not found "
        "(no such secret or version, or it was deleted) [SecretNotFound]"
    )


def test_azure_version_not_found(key_vault):
    key_vault.set_secret("databricks-sp", GOOD_TEXT)
    with azure_store(key_vault, version="ffff") as store:
        assert "not found" in str(failure(store))


def test_azure_forbidden(key_vault):
    key_vault.set_secret("databricks-sp", GOOD_TEXT)
    key_vault.denied.add("databricks-sp")
    with azure_store(key_vault) as store:
        error = failure(store)
    assert "access denied: the identity needs the 'Key Vault Secrets User' role" in str(error)
    assert str(error).endswith("[ForbiddenByRbac]")


def test_azure_disabled_secret(key_vault):
    key_vault.set_secret("databricks-sp", GOOD_TEXT, enabled=False)
    with azure_store(key_vault) as store:
        error = failure(store)
    assert "the secret is disabled" in str(error)
    assert str(error).endswith("[SecretDisabled]")


def test_azure_a_secret_without_a_value(key_vault):
    key_vault.set_secret("databricks-sp", None)
    with azure_store(key_vault) as store:
        assert "holds no value" in str(failure(store))


def test_azure_token_refused(key_vault):

    key_vault.set_secret("databricks-sp", GOOD_TEXT)
    client = key_vault.client(FakeCredential(token="revoked"))
    with azure_store(key_vault, client=client) as store:
        error = failure(store)
    assert "cannot authenticate to Key Vault" in str(error)
    assert "[ClientAuthenticationError]" in str(error)


def test_azure_credential_unavailable(key_vault):

    key_vault.set_secret("databricks-sp", GOOD_TEXT)
    credential = FakeCredential(error=CredentialUnavailableError(f"nothing worked {SECRET}"))
    with azure_store(key_vault, client=key_vault.client(credential)) as store:
        assert "[CredentialUnavailableError]" in str(failure(store))


def test_azure_vault_unreachable(key_vault):
    key_vault.fail_connect = True
    with azure_store(key_vault) as store:
        assert "cannot reach the vault [ServiceRequestError]" in str(failure(store))


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in MALFORMED], ids=MALFORMED_IDS)
def test_azure_malformed(key_vault, value, expected):
    key_vault.set_secret("databricks-sp", value)
    with azure_store(key_vault) as store:
        assert expected in str(failure(store))


def test_azure_builds_its_client_and_closes_what_it_built():

    store = AzureKeyVaultStore("https://jit.vault.azure.net", "databricks-sp")
    client = store._make_client()  # nothing is sent: the SDK connects on first use
    assert isinstance(client, SecretClient)
    assert isinstance(store._own_credential, DefaultAzureCredential)
    store.close()
    assert store._own_credential is None
    credential = FakeCredential()
    with AzureKeyVaultStore("https://jit.vault.azure.net", "sp", credential=credential) as store:
        assert isinstance(store._make_client(), SecretClient)
    assert not credential.closed  # the caller's credential is the caller's to close


@pytest.mark.parametrize(
    ("args", "options", "field"),
    [
        (("http://jit.vault.azure.net", "sp"), {}, "vault_url"),
        (("https://jit.vault.azure.net", "a_b"), {}, "name"),
        (("https://jit.vault.azure.net", "sp"), {"version": "not-hex!"}, "version"),
    ],
)
def test_azure_bad_arguments(args, options, field):

    with pytest.raises(ConfigError) as info:
        AzureKeyVaultStore(*args, **options)
    assert field in info.value.fields


# --- GCP Secret Manager (the REST transport against a local server) --------------------------


@pytest.fixture
def gcp():

    with FakeSecretManager() as fake:
        yield fake


@pytest.fixture
def gcp_client(gcp):

    client = secretmanager.SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcp.endpoint},
    )
    yield client
    client.transport.close()


def gcp_store(client, name="databricks-sp", **options):
    return GcpSecretManagerStore("my-project", name, client=client, **options)


def test_gcp_latest_and_pinned_versions(gcp, gcp_client):
    gcp.add_version("my-project", "databricks-sp", json.dumps(rotated(1)).encode())
    gcp.add_version("my-project", "databricks-sp", json.dumps(rotated(2)).encode())
    with gcp_store(gcp_client) as latest, gcp_store(gcp_client, version=1) as pinned:
        assert latest.get_credentials().client_secret == "rotated-2"
        assert pinned.get_credentials().client_secret == "rotated-1"
        assert pinned.name == "projects/my-project/secrets/databricks-sp/versions/1"
        assert repr(pinned) == "GcpSecretManagerStore('my-project', 'databricks-sp', version='1')"
    assert gcp.requests[0] == (
        "/v1/projects/my-project/secrets/databricks-sp/versions/latest:access"
    )


def test_gcp_the_store_builds_its_own_rest_client(gcp):

    gcp.add_version("p", "s", GOOD_TEXT.encode())
    with GcpSecretManagerStore(
        "p", "s", transport="rest", endpoint=gcp.endpoint, credentials=AnonymousCredentials()
    ) as store:
        assert store.get_credentials() == CREDENTIALS


def test_gcp_cache_until_the_ttl_or_a_refresh(gcp, gcp_client):
    gcp.add_version("my-project", "databricks-sp", json.dumps(rotated(1)).encode())
    clock = ManualClock()
    with gcp_store(gcp_client, clock=clock) as store:
        first = store.get_credentials()
        gcp.add_version("my-project", "databricks-sp", json.dumps(rotated(2)).encode())
        clock.advance(299)
        assert store.get_credentials() is first
        assert len(gcp.requests) == 1
        assert store.get_credentials(refresh=True).client_secret == "rotated-2"
        gcp.add_version("my-project", "databricks-sp", json.dumps(rotated(3)).encode())
        clock.advance(300)
        assert store.get_credentials().client_secret == "rotated-3"
        assert len(gcp.requests) == 3


def test_gcp_concurrent_callers_share_one_read(gcp, gcp_client):
    gcp.add_version("my-project", "databricks-sp", GOOD_TEXT.encode())
    with gcp_store(gcp_client) as store:
        results: list[ClientCredentials] = []
        threads = [
            threading.Thread(target=lambda: results.append(store.get_credentials()))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert results == [CREDENTIALS] * 8
    assert len(gcp.requests) == 1


def test_gcp_not_found(gcp, gcp_client):
    with gcp_store(gcp_client) as store:
        error = failure(store)
    assert str(error) == (
        "GCP Secret Manager secret projects/my-project/secrets/databricks-sp/versions/latest: "
        "not found (no such project, secret or version) [NOT_FOUND]"
    )


def test_gcp_version_not_found(gcp, gcp_client):
    gcp.add_version("my-project", "databricks-sp", GOOD_TEXT.encode())
    with gcp_store(gcp_client, version=7) as store:
        assert "[NOT_FOUND]" in str(failure(store))


def test_gcp_permission_denied(gcp, gcp_client):
    gcp.add_version("my-project", "databricks-sp", GOOD_TEXT.encode())
    gcp.denied.add(("my-project", "databricks-sp"))
    with gcp_store(gcp_client) as store:
        error = failure(store)
    assert "roles/secretmanager.secretAccessor" in str(error)
    assert str(error).endswith("[PERMISSION_DENIED]")


@pytest.mark.parametrize("state", ["DISABLED", "DESTROYED"])
def test_gcp_disabled_or_destroyed_version(gcp, gcp_client, state):
    gcp.add_version("my-project", "databricks-sp", GOOD_TEXT.encode(), state=state)
    with gcp_store(gcp_client) as store:
        error = failure(store)
    assert "the version is disabled or destroyed" in str(error)
    assert str(error).endswith("[FAILED_PRECONDITION]")


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        # A 401 makes google-auth refresh the credentials: anonymous ones cannot be.
        (401, "UNAUTHENTICATED", "could not be refreshed [InvalidOperation]"),
        (500, "INTERNAL", "Secret Manager answered HTTP 500 [INTERNAL]"),
        (409, "ABORTED", "Secret Manager answered HTTP 409 [ABORTED]"),
    ],
)
def test_gcp_other_errors(gcp, gcp_client, code, status, expected):
    gcp.add_version("my-project", "databricks-sp", GOOD_TEXT.encode())
    gcp.fail_next.append((code, status))
    with gcp_store(gcp_client) as store:
        assert str(failure(store)).endswith(expected)


def test_gcp_checksums(gcp, gcp_client):
    gcp.add_version("my-project", "good", GOOD_TEXT.encode())
    gcp.add_version("my-project", "unsummed", GOOD_TEXT.encode(), checksum=None)
    gcp.add_version("my-project", "corrupt", GOOD_TEXT.encode(), checksum=12345)
    with gcp_store(gcp_client, "good") as store:
        assert store.get_credentials() == CREDENTIALS
    with gcp_store(gcp_client, "unsummed") as store:
        assert store.get_credentials() == CREDENTIALS
    with gcp_store(gcp_client, "corrupt") as store:
        assert "does not match its CRC-32C checksum" in str(failure(store))


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in MALFORMED], ids=MALFORMED_IDS)
def test_gcp_malformed(gcp, gcp_client, value, expected):
    gcp.add_version("my-project", "databricks-sp", value.encode())
    with gcp_store(gcp_client) as store:
        assert expected in str(failure(store))


def test_gcp_not_utf8(gcp, gcp_client):
    gcp.add_version("my-project", "databricks-sp", NOT_UTF8)
    with gcp_store(gcp_client) as store:
        assert "not UTF-8 text" in str(failure(store))


def test_gcp_no_default_credentials(monkeypatch, tmp_path):

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with GcpSecretManagerStore("p", "s", transport="rest") as store:
        assert "no Google credentials found" in str(failure(store))


def test_gcp_crc32c_matches_the_known_vectors():

    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA


@pytest.mark.parametrize(
    ("args", "options", "field"),
    [
        (("", "s"), {}, "project"),
        (("p/x", "s"), {}, "project"),
        (("p", "a b"), {}, "secret"),
        (("p", "s"), {"version": "0"}, "version"),
        (("p", "s"), {"version": True}, "version"),
        (("p", "s"), {"transport": "http"}, "transport"),
        (("p", "s"), {"timeout": 0}, "timeout"),
    ],
)
def test_gcp_bad_arguments(args, options, field):

    with pytest.raises(ConfigError) as info:
        GcpSecretManagerStore(*args, **options)
    assert info.value.fields == (field,)


# --- HashiCorp Vault (hvac against a local Vault API server) -------------------------------

ROOT = "hvs.root-token-not-a-secret"


@pytest.fixture
def vault_clock():
    return ManualClock()


@pytest.fixture
def vault(vault_clock):

    with FakeVault(clock=vault_clock.monotonic, lease_duration=600) as fake:
        fake.kv2["secret"] = {}
        fake.kv1["kv"] = {}
        fake.add_token(ROOT, "*")
        yield fake


def vault_store(vault, clock, path="databricks/sp", **options):

    options.setdefault("environ", {"VAULT_TOKEN": ROOT})
    return HashiCorpVaultStore(
        path, addr=vault.url, allow_insecure_http=True, clock=clock, **options
    )


def test_vault_kv2_with_a_token(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    with vault_store(vault, vault_clock) as store:
        assert store.get_credentials() == CREDENTIALS
        assert store.where == f"Vault KV v2 secret 'secret/databricks/sp' at {vault.url}"
        assert ROOT not in repr(store)
    assert vault.requests[-1].path == "/v1/secret/data/databricks/sp"
    assert vault.requests[-1].token == ROOT


def test_vault_kv2_pinned_version(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", rotated(1))
    vault.put_v2("secret", "databricks/sp", rotated(2))
    with vault_store(vault, vault_clock, version=1) as pinned:
        assert pinned.get_credentials().client_secret == "rotated-1"
        assert pinned.where.endswith("(version 1)")
    with vault_store(vault, vault_clock) as latest:
        assert latest.get_credentials().client_secret == "rotated-2"


def test_vault_kv1(vault, vault_clock):
    vault.put_v1("kv", "databricks/sp", {**GOOD, "owner": "data-platform"})
    with vault_store(vault, vault_clock, mount_point="kv", kv_version=1) as store:
        assert store.get_credentials() == CREDENTIALS
    assert vault.requests[-1].path == "/v1/kv/databricks/sp"


def test_vault_cache_until_the_ttl_or_a_refresh(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", rotated(1))
    with vault_store(vault, vault_clock, cache_ttl=120) as store:
        first = store.get_credentials()
        vault.put_v2("secret", "databricks/sp", rotated(2))
        assert store.get_credentials() is first
        assert vault.reads() == 1
        assert store.get_credentials(refresh=True).client_secret == "rotated-2"
        vault.put_v2("secret", "databricks/sp", rotated(3))
        vault_clock.advance(120)
        assert store.get_credentials().client_secret == "rotated-3"
        assert vault.reads() == 3


def test_vault_token_from_the_environment_is_read_again_on_refresh(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    environ = {"VAULT_TOKEN": "hvs.old"}
    with vault_store(vault, vault_clock, environ=environ) as store:
        assert "permission denied" in str(failure(store))
        environ["VAULT_TOKEN"] = ROOT  # a new token, placed by the operator
        assert store.get_credentials(refresh=True) == CREDENTIALS


def test_vault_approle_logs_in_and_renews_before_the_lease_ends(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    vault.add_approle("role-1", SECRET, "secret/data/databricks/sp")
    environ = {"VAULT_ROLE_ID": "role-1", "VAULT_SECRET_ID": SECRET}
    with vault_store(vault, vault_clock, environ=environ, cache_ttl=60) as store:
        assert store.auth == "approle"
        assert store.get_credentials() == CREDENTIALS
        assert vault.logins() == 1
        vault_clock.advance(61)
        store.get_credentials()
        assert vault.logins() == 1  # the token is still good
        vault_clock.advance(600 - 61 - 30)  # within the renewal margin of the 600 s lease
        store.get_credentials()
        assert vault.logins() == 2
        assert SECRET not in repr(store)


def test_vault_approle_logs_in_again_on_refresh(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", rotated(1))
    vault.add_approle("role-1", "secret-id-1", "*")
    with vault_store(
        vault, vault_clock, environ={}, role_id="role-1", secret_id="secret-id-1"
    ) as store:
        store.get_credentials()
        vault.put_v2("secret", "databricks/sp", rotated(2))
        assert store.get_credentials(refresh=True).client_secret == "rotated-2"
        assert vault.logins() == 2


def test_vault_approle_logs_in_again_when_the_token_is_revoked(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    vault.add_approle("role-1", "secret-id-1", "*")
    with vault_store(
        vault, vault_clock, environ={}, role_id="role-1", secret_id="secret-id-1", cache_ttl=0
    ) as store:
        store.get_credentials()
        vault.tokens = {t: v for t, v in vault.tokens.items() if not t.startswith("hvs.fake")}
        assert store.get_credentials() == CREDENTIALS
        assert vault.logins() == 2


def test_vault_approle_refused(vault, vault_clock):
    vault.add_approle("role-1", "the-right-one", "*")
    with vault_store(vault, vault_clock, environ={}, role_id="role-1", secret_id=SECRET) as store:
        error = failure(store)
    assert "the AppRole login at auth/approle was refused" in str(error)


def test_vault_approle_not_mounted(vault, vault_clock):
    with vault_store(
        vault, vault_clock, environ={}, role_id="r", secret_id=SECRET, approle_mount="other"
    ) as store:
        assert "no AppRole auth method is mounted at auth/other" in str(failure(store))


def test_vault_approle_with_a_policy_that_does_not_cover_the_secret(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    vault.add_approle("role-1", "secret-id-1", "secret/data/other")
    with vault_store(
        vault, vault_clock, environ={}, role_id="role-1", secret_id="secret-id-1"
    ) as store:
        assert "permission denied" in str(failure(store))
        assert vault.logins() == 1  # a token just issued is not worth a second login


def test_vault_approle_without_a_secret_id(vault, vault_clock):
    with vault_store(vault, vault_clock, environ={"VAULT_ROLE_ID": "r"}) as store:
        assert "no AppRole secret id" in str(failure(store))


def test_vault_without_a_token(vault, vault_clock):
    with vault_store(vault, vault_clock, environ={}) as store:
        assert "no Vault token" in str(failure(store))


def test_vault_permission_denied(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    vault.add_token("hvs.narrow", "secret/data/other")
    with vault_store(vault, vault_clock, token="hvs.narrow") as store:
        error = failure(store)
    assert "permission denied: the token's policy needs the read capability on " in str(error)
    assert "secret/data/databricks/sp" in str(error)


def test_vault_not_found(vault, vault_clock):
    with vault_store(vault, vault_clock) as store:
        error = failure(store)
    assert str(error) == (
        f"Vault KV v2 secret 'secret/databricks/sp' at {vault.url}: not found (no secret at "
        "secret/data/databricks/sp; or the version was deleted or destroyed; check the "
        "mount and kv=1|2)"
    )


def test_vault_deleted_version(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    vault.kv2["secret"]["databricks/sp"][0].deleted = True
    with vault_store(vault, vault_clock) as store:
        assert "not found" in str(failure(store))


def test_vault_wrong_kv_version(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    with vault_store(vault, vault_clock, kv_version=1) as store:
        assert "check the mount and kv=1|2" in str(failure(store))


def test_vault_sealed(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    vault.fail_next.append((503, {"errors": ["Vault is sealed"]}))
    with vault_store(vault, vault_clock) as store:
        assert "Vault is sealed or down [503]" in str(failure(store))


def test_vault_unreachable(vault_clock):

    with FakeVault(clock=vault_clock.monotonic) as fake:
        url = fake.url  # a port that was just closed
    with HashiCorpVaultStore(
        "sp", addr=url, allow_insecure_http=True, token=ROOT, timeout=5
    ) as store:
        assert "cannot reach Vault [ConnectionError]" in str(failure(store))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"client_secret": SECRET}, "missing key 'client_id'"),
        ({"client_id": CLIENT_ID, "client_secret": " "}, "'client_secret' is empty"),
        ({"client_id": CLIENT_ID, "client_secret": [SECRET]}, "must be a string, found an array"),
        ({"client_id": 7, "client_secret": {"x": SECRET}}, "'client_id' must be a string"),
        ({"client_id": CLIENT_ID, "client_secret": SECRET + "\ud800"}, "not valid Unicode text"),
    ],
)
def test_vault_malformed(vault, vault_clock, data, expected):
    vault.put_v2("secret", "databricks/sp", data)
    with vault_store(vault, vault_clock) as store:
        assert expected in str(failure(store))


def test_vault_a_reply_without_data(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    vault.fail_next.append((200, {"data": None}))
    with vault_store(vault, vault_clock) as store:
        assert "the reply holds no secret data (is the mount KV v2?)" in str(failure(store))


def test_vault_namespace_header(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    with vault_store(
        vault, vault_clock, environ={"VAULT_TOKEN": ROOT, "VAULT_NAMESPACE": "team"}
    ) as store:
        store.get_credentials()
    assert vault.requests[-1].namespace == "team"


def test_vault_an_injected_client(vault, vault_clock):

    vault.put_v2("secret", "databricks/sp", GOOD)
    client = hvac.Client(url=vault.url, token=ROOT)
    try:
        with HashiCorpVaultStore(
            "databricks/sp", client=client, environ={}, allow_insecure_http=True
        ) as store:
            assert store.addr == vault.url
            assert store.get_credentials() == CREDENTIALS
        # The injected client is the caller's: still open, it still reads.
        reply = client.secrets.kv.v2.read_secret_version(
            path="databricks/sp", mount_point="secret", raise_on_deleted_version=True
        )
        assert reply["data"]["data"] == GOOD
    finally:
        client.adapter.close()


def test_vault_reference_opens_a_working_store(vault, vault_clock):
    vault.put_v2("secret", "databricks/sp", GOOD)
    environ = {"VAULT_ADDR": vault.url, "VAULT_TOKEN": ROOT}
    with open_secret_store(
        "vault:secret/data/databricks/sp", environ=environ, allow_insecure_http=True
    ) as store:
        assert store.get_credentials() == CREDENTIALS


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"path": "../etc"}, "path"),
        ({"mount_point": ""}, "mount_point"),
        ({"kv_version": 3}, "kv_version"),
        ({"version": 0}, "version"),
        ({"kv_version": 1, "version": 2}, "version"),
        ({"addr": "http://vault.example.com"}, "addr"),
        ({"auth": "ldap"}, "auth"),
        ({"auth": "approle"}, "role_id"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_vault_bad_arguments(options, field):

    options.setdefault("addr", "https://vault.example.com")
    path = options.pop("path", "databricks/sp")
    with pytest.raises(ConfigError) as info:
        HashiCorpVaultStore(path, environ={}, **options)
    assert field in info.value.fields


def test_vault_http_needs_the_allow_flag():

    with pytest.raises(ConfigError, match="http"):
        HashiCorpVaultStore("sp", addr="http://127.0.0.1:8200", environ={})
    with pytest.raises(ConfigError) as info:
        HashiCorpVaultStore("sp", environ={})
    assert "VAULT_ADDR" in str(info.value)
