"""IntegrationConfig: field rules, loading (dict, JSON, TOML, env), store references."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import databricks_access as da
import databricks_access._diagnose.diagnose as _diagnose
from databricks_access import (
    AccountConfig,
    AwsSecretsManagerStore,
    AzureKeyVaultStore,
    Cloud,
    ConfigError,
    EnvSecretStore,
    FileSecretStore,
    GcpSecretManagerStore,
    HashiCorpVaultStore,
    IntegrationConfig,
    LeaseError,
    LeaseStoreRef,
    Owner,
    OwnerKind,
    ResourceOwnerSetting,
    SecretStoreRef,
    SqliteLeaseStore,
    open_secret_store,
)
from databricks_access._integration import approvers as _approvers
from databricks_access._integration import config as _integration
from databricks_access._integration import directories as _directories
from databricks_access._integration import owners as _owners
from databricks_access._integration.validation import MAX_ACCESS_DETAILS
from databricks_access._secrets import refs as _secret_refs
from databricks_access._stores import refs as _lease_refs
from databricks_access._stores.postgres import settings as _postgres_settings
from helpers.doctests import run_doctests

ACCOUNT_ID = "0a1b2c3d-0000-4000-8000-00000000abcd"
AWS = "https://accounts.cloud.databricks.com"
BASE: dict[str, Any] = {"name": "sales-analytics", "accounts_url": AWS, "account_id": ACCOUNT_ID}
OWNER_SETTING = {"tag_key": "owner", "idp_attribute": "email"}


def build(**overrides: Any) -> IntegrationConfig:
    return IntegrationConfig(**{**BASE, **overrides})


def problems(**overrides: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_dict({**BASE, **overrides})
    return info.value


@pytest.mark.parametrize("module", [_integration, _secret_refs, _lease_refs, _approvers])
def test_doctests(module):
    result = run_doctests(module)
    assert result.attempted > 0, module.__name__
    assert result.failed == 0, module.__name__


# -- a valid configuration ----------------------------------------------------------------


def test_minimal_config_has_defaults_and_normalised_values():
    cfg = IntegrationConfig(
        name="  sales_analytics-2 ",
        accounts_url="Accounts.Cloud.Databricks.com/login?x=1",
        account_id=ACCOUNT_ID.upper(),
    )
    assert cfg.name == "sales_analytics-2"
    assert cfg.accounts_url == AWS
    assert cfg.account_id == ACCOUNT_ID
    assert cfg.custom_access_details is None
    assert cfg.integration_owners == ()
    assert cfg.resource_owner is None
    assert cfg.lease_store == "sqlite:///leases.db"
    assert cfg.secret_store == "env"
    assert cfg.cloud is Cloud.AWS
    assert (cfg.allow_custom_host, cfg.allow_insecure_http) == (False, False)


def test_full_config_parses_owners_and_setting():
    cfg = build(
        custom_access_details="  Ask in #data-access.\nApprovals take a day.  ",
        integration_owners=["group:Data Owners", "Ann@Example.com", Owner.user("ann@example.com")],
        resource_owner=OWNER_SETTING,
        lease_store="postgres://jit@db.internal:5432/jit?sslmode=require",
        secret_store="ENV:SP_ID, SP_SECRET",
    )
    assert cfg.custom_access_details == "Ask in #data-access.\nApprovals take a day."
    # owners are parsed and deduplicated case-insensitively, the first spelling kept
    assert cfg.integration_owners == (Owner.group("data owners"), Owner.user("ann@example.com"))
    assert cfg.integration_owners[1].name == "Ann@Example.com"
    assert cfg.resource_owner == ResourceOwnerSetting("owner", "email")
    assert cfg.resource_owner == ResourceOwnerSetting("owner", "email")
    assert cfg.lease_store == "postgresql://jit@db.internal:5432/jit?sslmode=require"
    assert cfg.lease_store_ref.kind == "postgresql"
    assert cfg.secret_store == "env:SP_ID,SP_SECRET"


def test_owner_tables_are_accepted():
    cfg = build(integration_owners=[{"kind": "group", "name": "owners"}], resource_owner=None)
    assert cfg.integration_owners == (Owner(OwnerKind.GROUP, "owners"),)


def test_owners_as_one_comma_separated_string():
    cfg = build(integration_owners="group:owners, ann@example.com")
    assert [str(o) for o in cfg.integration_owners] == ["group:owners", "user:ann@example.com"]


def test_exactly_400_characters_of_access_details_are_accepted():
    text = "x" * MAX_ACCESS_DETAILS
    assert build(custom_access_details=text).custom_access_details == text
    assert build(custom_access_details="   ").custom_access_details is None


def test_401_characters_of_access_details_name_the_field():
    error = problems(custom_access_details="x" * (MAX_ACCESS_DETAILS + 1))
    assert error.fields == ("custom_access_details",)
    assert "401 characters" in str(error)
    assert "at most 400" in str(error)


def test_names_of_64_characters_are_accepted_and_65_are_not():
    assert build(name="a" * 64).name == "a" * 64
    assert problems(name="a" * 65).fields == ("name",)


def test_account_config_uses_the_same_host_rules():
    cfg = build(
        accounts_url="http://127.0.0.1:8080/", allow_custom_host=True, allow_insecure_http=True
    )
    account = cfg.account_config(timeout=5, scim_version="2.1")
    assert isinstance(account, AccountConfig)
    assert account.host == "http://127.0.0.1:8080"
    assert account.account_id == ACCOUNT_ID
    assert (account.timeout, account.scim_version) == (5.0, "2.1")
    assert account.allow_custom_host and account.allow_insecure_http
    assert cfg.cloud is Cloud.CUSTOM


def test_http_loopback_needs_both_flags():
    error = problems(accounts_url="http://127.0.0.1:8080", allow_custom_host=True)
    assert set(error.fields) == {"accounts_url"}
    assert "allow_insecure_http" in str(error)


# -- every field rule, one at a time ----------------------------------------------------------

FIELD_ERRORS = [
    # (overrides, fields, a fragment of the message)
    ({"name": ""}, ("name",), "is empty"),
    ({"name": "sales analytics"}, ("name",), "letters, digits"),
    ({"name": "-sales"}, ("name",), "starting with a letter or digit"),
    ({"name": "naïve"}, ("name",), "letters, digits"),
    ({"name": "a/b"}, ("name",), "letters, digits"),
    ({"name": 42}, ("name",), "must be a string, not a number"),
    ({"name": None}, ("name",), "not null"),
    ({"accounts_url": "http://example.com"}, ("accounts_url", "accounts_url"), "https"),
    ({"accounts_url": "https://example.com"}, ("accounts_url",), "allow_custom_host"),
    ({"accounts_url": ["https://x"]}, ("accounts_url",), "must be a string"),
    ({"account_id": "1234567890"}, ("account_id",), "workspace ID"),
    ({"account_id": ""}, ("account_id",), "is empty"),
    ({"account_id": 7}, ("account_id",), "must be a string"),
    ({"custom_access_details": 3}, ("custom_access_details",), "must be a string"),
    ({"custom_access_details": "a\x00b"}, ("custom_access_details",), "control character"),
    ({"integration_owners": "data-owners"}, ("integration_owners",), "user:<user name>"),
    ({"integration_owners": ["user:ann smith@x.com"]}, ("integration_owners",), "whitespace"),
    ({"integration_owners": [42]}, ("integration_owners",), "entry 1"),
    ({"integration_owners": ["group:"]}, ("integration_owners",), "is empty"),
    (
        {"integration_owners": [{"kind": "robot", "name": "x"}]},
        ("integration_owners",),
        "'user' or 'group'",
    ),
    ({"integration_owners": [{"kind": "user"}]}, ("integration_owners",), "exactly the keys"),
    ({"integration_owners": 5}, ("integration_owners",), "must be a list"),
    ({"integration_owners": ["x@y.z"] * 101}, ("integration_owners",), "at most 100"),
    (
        {"resource_owner": "owner", "integration_owners": ["group:o"]},
        ("resource_owner",),
        "must be a table",
    ),
    (
        {"resource_owner": {"tag_key": "owner"}, "integration_owners": ["group:o"]},
        ("resource_owner.idp_attribute",),
        "is required",
    ),
    (
        {
            "resource_owner": {"tag_key": "", "idp_attribute": "e mail"},
            "integration_owners": ["group:o"],
        },
        ("resource_owner.tag_key", "resource_owner.idp_attribute"),
        "attribute name",
    ),
    (
        {"resource_owner": {**OWNER_SETTING, "tagkey": "x"}, "integration_owners": ["group:o"]},
        ("resource_owner.tagkey",),
        "did you mean 'tag_key'",
    ),
    (
        {
            "resource_owner": {"tag_key": 1, "idp_attribute": "email"},
            "integration_owners": ["group:o"],
        },
        ("resource_owner.tag_key",),
        "must be a string",
    ),
    ({"resource_owner": OWNER_SETTING}, ("integration_owners",), "required when resource_owner"),
    ({"lease_store": "mysql://db/leases"}, ("lease_store",), "scheme 'mysql'"),
    ({"lease_store": "leases.db"}, ("lease_store",), "sqlite:///leases.db"),
    ({"lease_store": "sqlite://host/leases.db"}, ("lease_store",), "has no host"),
    ({"lease_store": "sqlite:///"}, ("lease_store",), "names no file"),
    ({"lease_store": "sqlite:///:memory:"}, ("lease_store",), "MemoryLeaseStore"),
    ({"lease_store": "sqlite:///x.db?mode=ro"}, ("lease_store",), "no query"),
    ({"lease_store": "postgresql://db:99999/x"}, ("lease_store",), "not a valid PostgreSQL URL"),
    ({"lease_store": "postgresql://db/x#frag"}, ("lease_store",), "no fragment"),
    ({"lease_store": ""}, ("lease_store",), "is empty"),
    ({"lease_store": 5}, ("lease_store",), "must be a string"),
    ({"secret_store": "kms:key"}, ("secret_store",), "not a secret store reference"),
    ({"secret_store": "env:ONLY_ONE"}, ("secret_store",), "two variable names"),
    ({"secret_store": "env:A-B,C"}, ("secret_store",), "two variable names"),
    ({"secret_store": "env:SAME,SAME"}, ("secret_store",), "same variable twice"),
    ({"secret_store": "file:"}, ("secret_store",), "needs a path"),
    ({"secret_store": "file://server/share/x.json"}, ("secret_store",), "local path"),
    ({"secret_store": "aws-secrets-manager:"}, ("secret_store",), "secret name"),
    ({"secret_store": "aws-secrets-manager:arn:aws:s3:::bucket"}, ("secret_store",), "ARN"),
    (
        {"secret_store": "azure-key-vault:https://evil.example.com/x"},
        ("secret_store",),
        "Key Vault host",
    ),
    (
        {"secret_store": "azure-key-vault:http://v.vault.azure.net/x"},
        ("secret_store",),
        "azure-key-vault",
    ),
    (
        {"secret_store": "azure-key-vault:https://v.vault.azure.net/a/b/c"},
        ("secret_store",),
        "azure-key-vault",
    ),
    (
        {"secret_store": "gcp-secret-manager:projects/p/secret/s"},
        ("secret_store",),
        "projects/<project>/secrets/<secret>",
    ),
    ({"secret_store": "vault:../etc"}, ("secret_store",), "KV path"),
    ({"secret_store": "vault:"}, ("secret_store",), "KV path"),
    ({"secret_store": "vault:databricks"}, ("secret_store",), "<mount>/<path>"),
    ({"secret_store": "vault:secret/sp?kv=3"}, ("secret_store",), "kv is 1 or 2"),
    ({"secret_store": "vault:secret/sp?auth=ldap"}, ("secret_store",), "token or approle"),
    (
        {"secret_store": "vault:secret/sp?token=s.abc"},
        ("secret_store",),
        "holds a secret in its query (token=)",
    ),
    ({"secret_store": "vault:secret/sp?kv=1&kv=2"}, ("secret_store",), "kv twice"),
    ({"secret_store": "vault:secret/sp?kv="}, ("secret_store",), "kv is empty"),
    ({"secret_store": "vault:secret/sp?kv=1&version=3"}, ("secret_store",), "no versions"),
    ({"secret_store": "vault:secret/sp?version=0"}, ("secret_store",), "positive version"),
    ({"secret_store": "vault:secret/sp?addr=http://vault.example.com"}, ("secret_store",), "addr"),
    ({"secret_store": "vault:secret/sp?addr=https://v.example.com/ui"}, ("secret_store",), "path"),
    ({"secret_store": "aws-secrets-manager:sp?region=Europe"}, ("secret_store",), "eu-west-1"),
    ({"secret_store": "aws-secrets-manager:sp?stage=x"}, ("secret_store",), "version_stage"),
    (
        {
            "secret_store": "aws-secrets-manager:"
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sp?region=us-east-1"
        },
        ("secret_store",),
        "the ARN names the region eu-west-1",
    ),
    ({"secret_store": ""}, ("secret_store",), "is empty"),
    ({"secret_store": 3}, ("secret_store",), "must be a string"),
    ({"allow_custom_host": "yes"}, ("allow_custom_host",), "true or false"),
    ({"allow_insecure_http": 1}, ("allow_insecure_http",), "true or false"),
]


@pytest.mark.parametrize(("overrides", "fields", "fragment"), FIELD_ERRORS)
def test_each_field_rule(overrides, fields, fragment):
    error = problems(**overrides)
    assert error.fields == fields
    assert fragment in str(error)
    # The constructor reports the very same problems (keyword arguments, no dict).
    with pytest.raises(ConfigError) as direct:
        IntegrationConfig(**{**BASE, **overrides})
    assert direct.value.problems == error.problems


def test_every_problem_is_reported_at_once():
    error = problems(
        name="bad name",
        accounts_url="ftp://example.com",
        account_id="nope",
        custom_access_details="x" * 500,
        resource_owner={"tag_key": "owner", "idp_attribute": "email"},
        lease_store="mysql://x",
        secret_store="kms:x",
        allow_custom_host="no",
    )
    assert error.fields == (
        "allow_custom_host",
        "name",
        "accounts_url",
        "accounts_url",
        "account_id",
        "custom_access_details",
        "integration_owners",
        "lease_store",
        "secret_store",
    )
    assert str(error).startswith("9 configuration problems:\n")


def test_resource_owner_with_integration_owner_is_valid():
    cfg = build(resource_owner=OWNER_SETTING, integration_owners=["group:data-owners"])
    assert cfg.resource_owner is not None


def test_user_information_in_the_accounts_url_is_never_echoed():
    error = problems(accounts_url="https://admin:hunter2@accounts.cloud.databricks.com")
    assert "hunter2" not in str(error)
    assert error.fields == ("accounts_url",)


def test_a_password_in_the_lease_store_url_is_refused_and_never_echoed():
    error = problems(lease_store="postgresql://jit:s3cr3t-pw@db.internal/jit")
    assert error.fields == ("lease_store",)
    assert "password" in str(error)
    assert "s3cr3t-pw" not in str(error)


# -- from_dict: keys and types ------------------------------------------------------------------


def test_unknown_keys_are_named_with_a_suggestion():
    error = problems(acounts_url=AWS, colour="blue")
    assert error.fields == ("acounts_url", "colour")
    assert "did you mean 'accounts_url'?" in str(error)
    assert "the keys are: name, accounts_url" in str(error)


def test_non_text_keys_are_problems():
    with pytest.raises(ConfigError) as info:
        data: dict[Any, Any] = {**BASE, 3: "x"}
        IntegrationConfig.from_dict(data)
    assert info.value.fields == ("<a number key>",)


def test_missing_required_keys():
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_dict({})
    assert info.value.fields == ("name", "accounts_url", "account_id")
    assert all(p.message == "is required" for p in info.value.problems)


@pytest.mark.parametrize("data", [[], "name=x", None, 3, [("name", "x")]])
def test_from_dict_refuses_what_is_not_a_table(data):
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_dict(data)
    assert info.value.fields == ("config",)


def test_round_trip_through_a_dict_and_json():
    cfg = build(
        custom_access_details="Ask in #data-access.",
        integration_owners=["group:data-owners", "ann@example.com"],
        resource_owner=OWNER_SETTING,
        lease_store="sqlite:////var/lib/jit/leases.db",
        secret_store="file:/run/secrets/databricks",
    )
    data = cfg.to_dict()
    assert data == {
        "name": "sales-analytics",
        "accounts_url": AWS,
        "account_id": ACCOUNT_ID,
        "custom_access_details": "Ask in #data-access.",
        "integration_owners": ["group:data-owners", "user:ann@example.com"],
        "resource_owner": {"tag_key": "owner", "idp_attribute": "email"},
        "lease_store": "sqlite:////var/lib/jit/leases.db",
        "secret_store": "file:/run/secrets/databricks",
        "allow_custom_host": False,
        "allow_insecure_http": False,
    }
    assert IntegrationConfig.from_dict(data) == cfg
    assert IntegrationConfig.from_json(json.dumps(data)) == cfg


def test_to_dict_leaves_out_unset_fields():
    data = build().to_dict()
    assert "custom_access_details" not in data
    assert "resource_owner" not in data
    assert None not in data.values()


# -- JSON and TOML files ------------------------------------------------------------------------


def test_from_json_reads_a_file(tmp_path: Path):
    path = tmp_path / "integration.json"
    path.write_text(json.dumps({**BASE, "integration_owners": ["group:o"]}), encoding="utf-8")
    assert IntegrationConfig.from_json(path).integration_owners == (Owner.group("o"),)
    assert IntegrationConfig.from_json(str(path)).name == "sales-analytics"


def test_from_json_reports_syntax_errors_with_their_place():
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_json('{"name": "x",\n "accounts_url": }')
    assert info.value.fields == ("config",)
    assert "line 2 column" in str(info.value)


def test_from_json_reports_duplicate_keys_with_the_other_problems():
    text = '{"name": "a", "name": "b", "accounts_url": "%s", "account_id": "x"}' % AWS  # noqa: UP031
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_json(text)
    assert info.value.fields == ("name", "account_id")
    assert "appears more than once" in str(info.value)


def test_from_json_refuses_a_top_level_list(tmp_path: Path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a list"):
        IntegrationConfig.from_json(path)


def test_from_json_missing_and_unreadable_files(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_json(tmp_path / "missing.json")
    assert info.value.fields == ("path",)
    assert "cannot read" in str(info.value)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        IntegrationConfig.from_json(binary)


def test_from_json_deep_nesting_is_a_config_error():
    with pytest.raises(ConfigError):
        IntegrationConfig.from_json("{" + '"a":[' * 100_000 + "]" * 100_000 + "}")


TOML = f"""
name = "sales-analytics"
accounts_url = "{AWS}/login"
account_id = "{ACCOUNT_ID}"
custom_access_details = \"\"\"
Ask in #data-access.
Approvals take a day.\"\"\"
integration_owners = ["group:data-owners", "ann@example.com"]
lease_store = "sqlite:///state/leases.db"
secret_store = "env:SP_ID,SP_SECRET"

[resource_owner]
tag_key = "owner"
idp_attribute = "email"
"""


def test_from_toml_reads_every_field(tmp_path: Path):
    path = tmp_path / "integration.toml"
    path.write_text(TOML, encoding="utf-8")
    cfg = IntegrationConfig.from_toml(path)
    assert cfg.accounts_url == AWS
    assert cfg.custom_access_details == "Ask in #data-access.\nApprovals take a day."
    assert cfg.resource_owner == ResourceOwnerSetting("owner", "email")
    assert cfg.lease_store_ref.path == "state/leases.db"
    assert cfg.secret_store_ref.client_id_var == "SP_ID"
    assert IntegrationConfig.from_toml(str(path)) == cfg


def test_from_toml_reads_a_nested_table(tmp_path: Path):
    body = "\n".join(
        line
        for line in TOML.replace("[resource_owner]", "[tool.databricks_access.resource_owner]")
        .strip()
        .splitlines()
    )
    head, _, tail = body.partition("[tool.databricks_access.resource_owner]")
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "connector"\n\n[tool.databricks_access]\n'
        + head
        + "[tool.databricks_access.resource_owner]"
        + tail,
        encoding="utf-8",
    )
    cfg = IntegrationConfig.from_toml(path, table="tool.databricks_access")
    assert cfg.name == "sales-analytics"
    with pytest.raises(ConfigError, match=r"has no table \[tool.other\]"):
        IntegrationConfig.from_toml(path, table="tool.other")


def test_from_toml_reports_syntax_errors_and_types(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nname = "y"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        IntegrationConfig.from_toml(path)
    path.write_text(
        f'name = "x"\naccounts_url = "{AWS}"\naccount_id = "{ACCOUNT_ID}"\n'
        "allow_custom_host = 1979-05-27\nlease_store = 3\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_toml(path)
    assert info.value.fields == ("allow_custom_host", "lease_store")


def test_from_toml_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_toml(tmp_path / "none.toml")
    assert info.value.fields == ("path",)


# -- environment variables ----------------------------------------------------------------------

ENV = {
    "DATABRICKS_ACCESS_NAME": "sales-analytics",
    "DATABRICKS_ACCESS_ACCOUNTS_URL": f"{AWS}/",
    "DATABRICKS_ACCESS_ACCOUNT_ID": ACCOUNT_ID,
}


def test_from_env_reads_every_variable():
    cfg = IntegrationConfig.from_env(
        {
            **ENV,
            "DATABRICKS_ACCESS_CUSTOM_ACCESS_DETAILS": "Ask in #data-access.",
            "DATABRICKS_ACCESS_INTEGRATION_OWNERS": "group:data-owners, ann@example.com",
            "DATABRICKS_ACCESS_RESOURCE_OWNER_TAG_KEY": "owner",
            "DATABRICKS_ACCESS_RESOURCE_OWNER_IDP_ATTRIBUTE": "email",
            "DATABRICKS_ACCESS_LEASE_STORE": "sqlite:////var/lib/leases.db",
            "DATABRICKS_ACCESS_SECRET_STORE": "file:/run/secrets/sp.json",
            "DATABRICKS_ACCESS_ALLOW_CUSTOM_HOST": "No",
            "DATABRICKS_ACCESS_ALLOW_INSECURE_HTTP": "0",
            "DATABRICKS_ACCESS_SOMETHING_ELSE": "ignored",
        }
    )
    assert cfg.accounts_url == AWS
    assert [str(o) for o in cfg.integration_owners] == ["group:data-owners", "user:ann@example.com"]
    assert cfg.resource_owner == ResourceOwnerSetting("owner", "email")
    assert cfg.lease_store_ref.path == "/var/lib/leases.db"
    assert cfg.secret_store_ref == SecretStoreRef("file", "/run/secrets/sp.json")
    assert cfg.custom_access_details == "Ask in #data-access."


def test_from_env_with_another_prefix_and_os_environ(monkeypatch: pytest.MonkeyPatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name.replace("DATABRICKS_ACCESS_", "JIT_"), value)
    assert IntegrationConfig.from_env(prefix="JIT_").name == "sales-analytics"


def test_from_env_names_the_variables_in_problems():
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_env(
            {
                "DATABRICKS_ACCESS_NAME": "  ",
                "DATABRICKS_ACCESS_ACCOUNTS_URL": "http://example.com",
                "DATABRICKS_ACCESS_ALLOW_CUSTOM_HOST": "maybe",
                "DATABRICKS_ACCESS_RESOURCE_OWNER_TAG_KEY": "owner",
                "DATABRICKS_ACCESS_LEASE_STORE": "mysql://x",
            }
        )
    assert info.value.fields == (
        "DATABRICKS_ACCESS_NAME",
        "DATABRICKS_ACCESS_ACCOUNT_ID",
        "DATABRICKS_ACCESS_ALLOW_CUSTOM_HOST",
        "DATABRICKS_ACCESS_ACCOUNTS_URL",
        "DATABRICKS_ACCESS_ACCOUNTS_URL",
        "DATABRICKS_ACCESS_RESOURCE_OWNER_IDP_ATTRIBUTE",
        "DATABRICKS_ACCESS_INTEGRATION_OWNERS",
        "DATABRICKS_ACCESS_LEASE_STORE",
    )
    assert "is not set" in str(info.value)


def test_from_env_allows_flags_for_the_emulator():
    cfg = IntegrationConfig.from_env(
        {
            **ENV,
            "DATABRICKS_ACCESS_ACCOUNTS_URL": "http://localhost:8080",
            "DATABRICKS_ACCESS_ALLOW_CUSTOM_HOST": "true",
            "DATABRICKS_ACCESS_ALLOW_INSECURE_HTTP": "YES",
        }
    )
    assert cfg.account_config().host == "http://localhost:8080"


# -- store references --------------------------------------------------------------------------

SECRET_REFS = [
    ("env", SecretStoreRef("env"), "env"),
    (" Env ", SecretStoreRef("env"), "env"),
    (
        "env:SP_ID,SP_SECRET",
        SecretStoreRef("env", client_id_var="SP_ID", client_secret_var="SP_SECRET"),
        "env:SP_ID,SP_SECRET",
    ),
    (
        "env:DATABRICKS_CLIENT_ID,DATABRICKS_CLIENT_SECRET",
        SecretStoreRef("env"),
        "env",
    ),
    ("file:/run/secrets/sp.json", SecretStoreRef("file", "/run/secrets/sp.json"), None),
    ("file:///run/secrets/sp", SecretStoreRef("file", "/run/secrets/sp"), "file:/run/secrets/sp"),
    ("file:~/sp.json", SecretStoreRef("file", "~/sp.json"), None),
    ("aws-secrets-manager:prod/databricks/sp", None, None),
    (
        "aws-secrets-manager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/sp-AbCdEf",
        None,
        None,
    ),
    ("azure-key-vault:https://jit.vault.azure.net/databricks-sp", None, None),
    (
        "azure-key-vault:https://JIT.vault.azure.net/secrets/databricks-sp/0123abcd",
        None,
        "azure-key-vault:https://jit.vault.azure.net/secrets/databricks-sp/0123abcd",
    ),
    ("gcp-secret-manager:projects/p-1/secrets/databricks-sp", None, None),
    ("gcp-secret-manager:projects/p-1/secrets/databricks-sp/versions/latest", None, None),
    ("vault:secret/data/databricks", None, None),
    (
        "aws-secrets-manager:prod/sp?version_stage=AWSPREVIOUS&region=eu-west-1",
        SecretStoreRef(
            "aws-secrets-manager",
            "prod/sp",
            options=(("region", "eu-west-1"), ("version_stage", "AWSPREVIOUS")),
        ),
        "aws-secrets-manager:prod/sp?region=eu-west-1&version_stage=AWSPREVIOUS",
    ),
    (
        "vault:/kv/team/databricks/?addr=https://Vault.example.com:8200&auth=approle&kv=1",
        SecretStoreRef(
            "vault",
            "kv/team/databricks",
            options=(("kv", "1"), ("auth", "approle"), ("addr", "https://Vault.example.com:8200")),
        ),
        "vault:kv/team/databricks?kv=1&auth=approle&addr=https://Vault.example.com:8200",
    ),
    ("vault:secret/databricks?version=3", None, None),
]


@pytest.mark.parametrize(("text", "expected", "canonical"), SECRET_REFS)
def test_secret_store_references(text, expected, canonical):
    ref = SecretStoreRef.parse(text)
    if expected is not None:
        assert ref == expected
    assert str(ref) == (canonical or text.strip())
    assert SecretStoreRef.parse(str(ref)) == ref
    assert build(secret_store=text).secret_store == str(ref)


def test_env_and_file_references_open_their_stores(tmp_path: Path):
    store = open_secret_store("env:SP_ID,SP_SECRET", environ={"SP_ID": "app", "SP_SECRET": "s3"})
    assert isinstance(store, EnvSecretStore)
    assert store.get_credentials().client_id == "app"
    path = tmp_path / "sp.json"
    path.write_text('{"client_id": "app", "client_secret": "s3"}', encoding="utf-8")
    store = build(secret_store=f"file:{path}").secret_store_instance()
    assert isinstance(store, FileSecretStore)
    assert store.get_credentials().client_id == "app"
    assert isinstance(build().secret_store_instance(environ={}), EnvSecretStore)


@pytest.mark.parametrize(
    ("text", "extra"),
    [
        ("aws-secrets-manager:prod/sp", "aws"),
        ("azure-key-vault:https://jit.vault.azure.net/sp", "azure"),
        ("gcp-secret-manager:projects/p/secrets/s", "gcp"),
        ("vault:secret/sp", "vault"),
    ],
)
def test_cloud_secret_stores_name_the_extra_they_need(text, extra, monkeypatch):
    # The SDKs are installed for the tests: hide them, as a base install lacks them.
    for module in SDK_MODULES:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as info:
        open_secret_store(text)
    assert info.value.fields == ("secret_store",)
    assert f"databricks-access[{extra}]" in str(info.value)


SDK_MODULES = (
    "boto3",
    "botocore.exceptions",
    "azure.core.exceptions",
    "azure.keyvault.secrets",
    "azure.identity",
    "google.api_core.exceptions",
    "google.auth.exceptions",
    "google.cloud.secretmanager",
    "hvac",
    "hvac.exceptions",
)


def test_aws_references_open_aws_secrets_manager_stores():
    pytest.importorskip("boto3")

    with open_secret_store(
        "aws-secrets-manager:prod/sp?region=eu-west-1&version_stage=AWSPREVIOUS"
    ) as store:
        assert isinstance(store, AwsSecretsManagerStore)
        assert (store.secret_id, store.region, store.version_stage) == (
            "prod/sp",
            "eu-west-1",
            "AWSPREVIOUS",
        )
    arn = "arn:aws:secretsmanager:ap-south-1:123456789012:secret:prod/sp-AbCdEf"
    with open_secret_store(f"aws-secrets-manager:{arn}") as store:
        assert (store.secret_id, store.region, store.version_stage) == (
            arn,
            "ap-south-1",
            "AWSCURRENT",
        )


def test_azure_references_open_key_vault_stores():
    pytest.importorskip("azure.keyvault.secrets")
    pytest.importorskip("azure.identity")

    with open_secret_store("azure-key-vault:https://jit.vault.azure.net/databricks-sp") as store:
        assert isinstance(store, AzureKeyVaultStore)
        assert (store.vault_url, store.name, store.version) == (
            "https://jit.vault.azure.net",
            "databricks-sp",
            None,
        )
    with open_secret_store(
        "azure-key-vault:https://jit.vault.azure.net/secrets/databricks-sp/0123abcd"
    ) as store:
        assert (store.name, store.version) == ("databricks-sp", "0123abcd")


def test_gcp_references_open_secret_manager_stores():
    pytest.importorskip("google.cloud.secretmanager")

    with open_secret_store("gcp-secret-manager:projects/p-1/secrets/databricks-sp") as store:
        assert isinstance(store, GcpSecretManagerStore)
        assert store.name == "projects/p-1/secrets/databricks-sp/versions/latest"
    with open_secret_store("gcp-secret-manager:projects/p-1/secrets/sp/versions/7") as store:
        assert store.name == "projects/p-1/secrets/sp/versions/7"


VAULT_ENV = {"VAULT_ADDR": "https://vault.example.com:8200", "VAULT_TOKEN": "hvs.not-used"}


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("vault:secret/databricks", VAULT_ENV, ("secret", "databricks", 2, "token")),
        # The KV v2 API form: <mount>/data/<path>.
        ("vault:secret/data/databricks", VAULT_ENV, ("secret", "databricks", 2, "token")),
        # KV v1 has no data/ segment: it is part of the path.
        ("vault:kv/data/databricks?kv=1", VAULT_ENV, ("kv", "data/databricks", 1, "token")),
        (
            "vault:secret/databricks",
            {**VAULT_ENV, "VAULT_ROLE_ID": "role"},
            ("secret", "databricks", 2, "approle"),
        ),
        (
            "vault:secret/team/sp?auth=approle&addr=https://v.example.com",
            {"VAULT_ROLE_ID": "role"},
            ("secret", "team/sp", 2, "approle"),
        ),
    ],
)
def test_vault_references_open_vault_stores(text, environ, expected):
    pytest.importorskip("hvac")

    with open_secret_store(text, environ=environ) as store:
        assert isinstance(store, HashiCorpVaultStore)
        assert (store.mount_point, store.path, store.kv_version, store.auth) == expected
        assert store.addr.startswith("https://")


def test_vault_reference_problems_name_the_secret_store_field():
    pytest.importorskip("hvac")
    with pytest.raises(ConfigError, match="VAULT_ADDR") as info:
        open_secret_store("vault:secret/sp", environ={})
    assert info.value.fields == ("secret_store",)
    with pytest.raises(ConfigError, match="VAULT_ROLE_ID") as info:
        open_secret_store("vault:secret/sp?auth=approle", environ=VAULT_ENV)
    assert info.value.fields == ("secret_store",)


def test_vault_reference_over_loopback_http_needs_the_allow_flag():
    pytest.importorskip("hvac")
    text = "vault:secret/sp?addr=http://127.0.0.1:8200"
    with pytest.raises(ConfigError, match="http") as info:
        open_secret_store(text, environ={})
    assert info.value.fields == ("secret_store",)
    with open_secret_store(text, environ={}, allow_insecure_http=True) as store:
        assert store.addr == "http://127.0.0.1:8200"
    cfg = build(secret_store=text, allow_insecure_http=True)
    with cfg.secret_store_instance(environ={}) as store:
        assert store.addr == "http://127.0.0.1:8200"


def test_secret_store_parse_raises_config_error():
    with pytest.raises(ConfigError) as info:
        SecretStoreRef.parse("nope", field="store")
    assert info.value.fields == ("store",)


LEASE_REFS = [
    ("sqlite:///leases.db", "sqlite", "leases.db"),
    ("sqlite:///state/leases.db", "sqlite", "state/leases.db"),
    ("sqlite:////var/lib/jit/leases.db", "sqlite", "/var/lib/jit/leases.db"),
    ("SQLITE:///leases.db", "sqlite", "leases.db"),
    ("postgresql://jit@db.internal:5432/jit", "postgresql", None),
    ("postgres://db.internal/jit?sslmode=verify-full", "postgresql", None),
    ("postgresql:///jit?host=/var/run/postgresql", "postgresql", None),
]


@pytest.mark.parametrize(("text", "kind", "path"), LEASE_REFS)
def test_lease_store_references(text, kind, path):
    ref = LeaseStoreRef.parse(text)
    assert (ref.kind, ref.path) == (kind, path)
    assert LeaseStoreRef.parse(str(ref)) == ref
    assert ref.url.startswith(("sqlite:///", "postgresql://"))


def test_sqlite_reference_opens_a_store(tmp_path: Path):
    store = LeaseStoreRef.parse(f"sqlite:///{tmp_path}/leases.db").open()
    assert isinstance(store, SqliteLeaseStore)
    close = getattr(store, "close", None)
    if close is not None:
        close()
    assert (tmp_path / "leases.db").exists()


def test_postgresql_reference_names_its_extra_or_opens_the_store(monkeypatch):
    ref = LeaseStoreRef.parse("postgresql://jit@db.invalid/jit?connect_timeout=2")
    # With the extra: it is a PostgresLeaseStore, and an unreachable server says so.
    with pytest.raises(LeaseError, match="cannot connect to the PostgreSQL lease store"):
        ref.open()
    # Without it (as the module records a failed import): the error names the extra.
    monkeypatch.setattr(_postgres_settings, "_MISSING", ImportError("No module named 'psycopg'"))
    with pytest.raises(ConfigError, match=r"databricks-access\[postgres\]"):
        ref.open()
    with pytest.raises(ConfigError) as info:
        LeaseStoreRef.parse("mysql://x")
    assert info.value.fields == ("lease_store",)


# -- never anything but ConfigError ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "name",
        "accounts_url",
        "account_id",
        "custom_access_details",
        "integration_owners",
        "resource_owner",
        "lease_store",
        "secret_store",
        "allow_custom_host",
        "allow_insecure_http",
    ]
)
plausible = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["sales", "a b", "", "x" * 70]) | st.text(max_size=10),
        "accounts_url": st.sampled_from([AWS, "http://localhost:1", "x", ""]) | st.text(),
        "account_id": st.sampled_from([ACCOUNT_ID, "1", ""]) | st.text(max_size=40),
        "integration_owners": st.lists(
            st.sampled_from(["group:o", "a@b.c", "user:", "x"]) | json_values, max_size=3
        ),
        "resource_owner": st.fixed_dictionaries(
            {},
            optional={"tag_key": json_values | st.just("owner"), "idp_attribute": json_values},
        )
        | json_values,
        "lease_store": st.sampled_from(["sqlite:///a.db", "postgresql://[::1", "sqlite://"])
        | st.text(),
        "secret_store": st.sampled_from(
            [
                "env:",
                "azure-key-vault:https://[::1]:99999/x",
                "file://",
                "gcp-secret-manager:",
            ]
        )
        | st.text(),
        "allow_custom_host": json_values,
        "allow_insecure_http": st.booleans(),
    },
)


def _config_or_config_error(data: Any) -> None:
    error: ConfigError | None = None
    try:
        cfg = IntegrationConfig.from_dict(data)
    except ConfigError as exc:
        error = exc
    if error is not None:
        assert error.problems
        assert all(isinstance(p.field, str) and isinstance(p.message, str) for p in error.problems)
    else:
        assert IntegrationConfig.from_dict(cfg.to_dict()) == cfg


@given(st.dictionaries(field_names | st.text(max_size=8), json_values, max_size=8))
@example(
    {"name": "x", "accounts_url": AWS, "account_id": ACCOUNT_ID, "custom_access_details": math.nan}
)
def test_fuzz_arbitrary_dicts_give_a_config_or_config_error(data):
    _config_or_config_error(data)


@given(plausible)
def test_fuzz_plausible_dicts_give_a_config_or_config_error(data):
    _config_or_config_error({**BASE, **data})


@given(st.text(max_size=200))
@example("{" * 5000)
@example('{"name": 1e999}')
def test_fuzz_json_text_gives_a_config_or_config_error(text):
    with contextlib.suppress(ConfigError):
        IntegrationConfig.from_json("{" + text)


def test_fuzz_environment_gives_a_config_or_config_error():
    @given(
        st.dictionaries(
            st.sampled_from(
                [f"DATABRICKS_ACCESS_{k.upper()}" for k in BASE]
                + [
                    "DATABRICKS_ACCESS_RESOURCE_OWNER_TAG_KEY",
                    "DATABRICKS_ACCESS_INTEGRATION_OWNERS",
                    "DATABRICKS_ACCESS_ALLOW_CUSTOM_HOST",
                    "DATABRICKS_ACCESS_SECRET_STORE",
                ]
            ),
            st.text(max_size=30),
        )
    )
    def run(environ):
        with contextlib.suppress(ConfigError):
            IntegrationConfig.from_env(environ)

    run()


def test_from_env_does_not_read_the_real_environment_when_given_a_mapping(monkeypatch):
    monkeypatch.setitem(os.environ, "DATABRICKS_ACCESS_NAME", "from-os")
    with pytest.raises(ConfigError) as info:
        IntegrationConfig.from_env({})
    assert "DATABRICKS_ACCESS_NAME" in info.value.fields


# -- the documentation's examples run ----------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


def doc_blocks(name: str, language: str) -> list[str]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new public names on the package, until `__init__` exports them itself."""
    for module in (_integration, _approvers, _owners, _directories, _diagnose):
        for name in module.__all__:
            if not hasattr(da, name):
                monkeypatch.setattr(da, name, getattr(module, name), raising=False)


def test_configuration_doc_examples_run(
    exported: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "integration.toml").write_text(doc_blocks("configuration.md", "toml")[0])
    (tmp_path / "integration.json").write_text(doc_blocks("configuration.md", "json")[0])
    namespace: dict[str, object] = {"__name__": "__docs__"}
    blocks = doc_blocks("configuration.md", "python")
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, "docs/configuration.md", "exec"), namespace)  # noqa: S102 - the docs' own code
    printed = capsys.readouterr().out
    shown = doc_blocks("configuration.md", "text")[0]
    assert printed.splitlines()[0] == shown.splitlines()[0]
    for printed_line, shown_line in zip(printed.splitlines(), shown.splitlines(), strict=True):
        # the page shortens some long messages with "..."
        head = shown_line.split("...")[0].split("(")[0]
        assert printed_line.startswith(head), (printed_line, shown_line)


def test_configuration_doc_environment_example_loads():
    (block,) = doc_blocks("configuration.md", "sh")
    environ = dict(line.split("=", 1) for line in block.strip().splitlines())
    cfg = IntegrationConfig.from_env(environ)
    assert cfg.cloud is Cloud.GCP
    assert cfg.resource_owner == ResourceOwnerSetting("owner", "email")
    assert cfg.lease_store_ref.path == "/var/lib/jit/leases.db"
