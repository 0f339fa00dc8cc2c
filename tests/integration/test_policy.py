"""Policy in one place: lease limits, the audit sink and the owner tag source live in
`IntegrationConfig`, and the command line and a connector enforce the same rules."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import pytest

import databricks_access as da
from databricks_access.testing import FakeAccount
from helpers.cli import Cli

ACCOUNT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BASE = {
    "name": "policy-test",
    "accounts_url": "https://accounts.cloud.databricks.com",
    "account_id": ACCOUNT,
}


def write_toml(path, text: str) -> None:
    head = "\n".join(f"{key} = {json.dumps(value)}" for key, value in BASE.items())
    path.write_text(head + "\n" + text, encoding="utf-8")


# -- the configuration ------------------------------------------------------------------------


def test_policy_sink_and_tags_from_toml(tmp_path):
    write_toml(
        tmp_path / "integration.toml",
        'integration_owners = ["ann@example.com"]\n'
        'audit_sink = "jsonl:audit.jsonl"\n'
        "[lease_policy]\nmin_ttl = 300\nmax_ttl = 28800\nmax_extensions = 2\n"
        '[resource_owner]\ntag_key = "owner"\nidp_attribute = "email"\n'
        '[owner_tags]\npattern = "^team-(?P<owner>[a-z]+)-readers$"\n',
    )
    config = da.IntegrationConfig.from_toml(tmp_path / "integration.toml")
    assert config.lease_policy == da.LeasePolicy(
        min_ttl=dt.timedelta(minutes=5), max_ttl=dt.timedelta(hours=8), max_extensions=2
    )
    assert config.audit_sink == "jsonl:audit.jsonl"
    assert isinstance(config.audit_sink_instance(), da.JsonLinesSink)
    assert config.owner_tags == da.OwnerTags(pattern="^team-(?P<owner>[a-z]+)-readers$")
    tags = config.tag_source()
    assert tags is not None
    assert tags.tag_value(da.Group(id="1", display_name="team-ann-readers"), "owner") == "ann"
    assert da.IntegrationConfig.from_dict(config.to_dict()) == config


def test_the_defaults_are_the_trackers():
    config = da.IntegrationConfig(**BASE)
    assert config.lease_policy == da.LeasePolicy()
    assert (config.lease_policy.min_ttl, config.lease_policy.max_ttl) == (
        dt.timedelta(seconds=60),
        dt.timedelta(hours=12),
    )
    assert config.audit_sink is None and config.audit_sink_instance() is None
    assert config.owner_tags is None and config.tag_source() is None
    assert "lease_policy" not in config.to_dict()


def test_every_policy_problem_is_named_at_once():
    with pytest.raises(da.ConfigError) as caught:
        da.IntegrationConfig.from_dict(
            {
                **BASE,
                "lease_policy": {"min_ttl": "1h", "max_ttl": -5, "max_extensions": 1.5, "x": 1},
                "audit_sink": "syslog",
                "owner_tags": {"pattern": "(", "groups": {}},
            }
        )
    fields = caught.value.fields
    for field in (
        "lease_policy.x",
        "lease_policy.min_ttl",
        "lease_policy.max_ttl",
        "lease_policy.max_extensions",
        "audit_sink",
        "owner_tags",
    ):
        assert field in fields, (field, fields)
    assert "28800" in str(caught.value)  # says how to write a duration


def test_min_above_max_and_tags_without_resource_owner_are_refused():
    with pytest.raises(da.ConfigError, match="shorter than min_ttl") as caught:
        da.IntegrationConfig(**BASE, lease_policy={"min_ttl": 7200, "max_ttl": 3600})
    assert caught.value.fields == ("lease_policy.max_ttl",)
    with pytest.raises(da.ConfigError, match="needs resource_owner"):
        da.IntegrationConfig(**BASE, owner_tags={"pattern": "^(?P<owner>.*)$"})


def test_policy_from_the_environment():
    env = {f"DATABRICKS_ACCESS_{key.upper()}": value for key, value in BASE.items()}
    env |= {
        "DATABRICKS_ACCESS_LEASE_POLICY_MAX_TTL": "28800",
        "DATABRICKS_ACCESS_LEASE_POLICY_MAX_EXTENSIONS": "3",
        "DATABRICKS_ACCESS_AUDIT_SINK": "jsonl:/var/log/jit/audit.jsonl",
    }
    config = da.IntegrationConfig.from_env(env)
    assert config.lease_policy.max_ttl == dt.timedelta(hours=8)
    assert config.lease_policy.max_extensions == 3
    assert config.audit_sink == "jsonl:/var/log/jit/audit.jsonl"
    env["DATABRICKS_ACCESS_LEASE_POLICY_MIN_TTL"] = "soon"
    with pytest.raises(da.ConfigError) as caught:
        da.IntegrationConfig.from_env(env)
    assert caught.value.fields == ("DATABRICKS_ACCESS_LEASE_POLICY_MIN_TTL",)


# -- a connector: config.lease_tracker() ----------------------------------------------------------


@pytest.fixture
def fake():
    account = FakeAccount(account_id=ACCOUNT)
    account.add_user("alice@example.com", "Alice")
    account.add_group("prod-data-readers")
    return account


def _config(tmp_path, **policy) -> da.IntegrationConfig:
    return da.IntegrationConfig(
        **BASE,
        lease_policy=policy,
        audit_sink=f"jsonl:{tmp_path / 'audit.jsonl'}",
        lease_store=f"sqlite:///{tmp_path / 'leases.db'}",
    )


def test_a_connector_tracker_enforces_the_configured_policy(fake, tmp_path):
    config = _config(tmp_path, max_ttl=8 * 3600, max_extensions=1)
    sp = fake.add_service_principal("connector")
    readers = fake.find_group("prod-data-readers")
    with da.AccountClient(
        config.account_config(),
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
    ) as client:
        tracker = config.lease_tracker(da.MembershipManager(client))
        with pytest.raises(da.ConfigError) as caught:
            tracker.grant("alice@example.com", readers, ttl=dt.timedelta(hours=9), reason="r",
                          requester="alice")  # fmt: skip
        assert caught.value.fields == ("ttl",)
        assert fake.group_members(readers) == frozenset()  # refused before any request
        lease = tracker.grant(
            "alice@example.com", readers, ttl=dt.timedelta(hours=1), reason="r", requester="a"
        )
        tracker.extend(lease.id, by=dt.timedelta(minutes=30))
        with pytest.raises(da.LeaseError):
            tracker.extend(lease.id, by=dt.timedelta(minutes=30))  # max_extensions = 1
        tracker.store.close()
    audit = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["kind"] for line in audit] == ["granted", "extended"]


def test_an_async_connector_tracker_enforces_the_configured_policy(fake, tmp_path):
    config = _config(tmp_path, max_ttl=8 * 3600)
    sp = fake.add_service_principal("connector")
    readers = fake.find_group("prod-data-readers")

    async def main() -> None:
        async with da.AsyncAccountClient(
            config.account_config(),
            secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
            transport=fake.transport(),
        ) as client:
            store = config.lease_store_ref.open()
            tracker = config.async_lease_tracker(da.AsyncMembershipManager(client), store=store)
            with pytest.raises(da.ConfigError):
                await tracker.grant("alice@example.com", readers, ttl=dt.timedelta(hours=9),
                                    reason="r", requester="alice")  # fmt: skip
            await tracker.grant(
                "alice@example.com", readers, ttl=dt.timedelta(hours=8), reason="r", requester="a"
            )
            store.close()

    asyncio.run(main())
    assert fake.group_members(readers) == {fake.find_user("alice@example.com")}
    audit = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["kind"] for line in audit] == ["granted"]


# -- the command line: the same rules --------------------------------------------------------


def set_config(cli: Cli, **changes: object) -> None:
    data = json.loads(cli.config.read_text(encoding="utf-8"))
    data.update(changes)
    cli.config.write_text(json.dumps(data), encoding="utf-8")


def test_the_cli_enforces_the_configured_ttl_cap(cli, account):
    set_config(cli, lease_policy={"max_ttl": 8 * 3600})
    refused = cli("grant", "alice@example.com", "prod-data-readers", "--ttl", "9h", "--reason", "r")
    assert refused.code == 2
    assert "--ttl" in refused.err
    assert account.alice not in account.fake.group_members(account.readers)
    assert cli("request", "carol@example.com", "prod-data-readers", "--ttl", "9h",
               "--reason", "r").code == 2  # fmt: skip
    assert cli("grant", "alice@example.com", "prod-data-readers", "--ttl", "8h",
               "--reason", "r").code == 0  # fmt: skip
    assert account.alice in account.fake.group_members(account.readers)


def test_the_cli_audits_to_the_configured_sink(cli, account):
    audit = cli.tmp_path / "audit.jsonl"
    set_config(cli, audit_sink=f"jsonl:{audit}")
    assert cli("grant", "alice@example.com", "prod-data-readers", "--ttl", "1h",
               "--reason", "INC-7").code == 0  # fmt: skip
    (event,) = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert (event["kind"], event["reason"]) == ("granted", "INC-7")


def test_the_cli_request_uses_the_configured_owner_tags(cli, account):
    set_config(
        cli,
        resource_owner={"tag_key": "owner", "idp_attribute": "email"},
        owner_tags={"groups": {"prod-data-readers": {"owner": "alice@example.com"}}},
    )
    tagged = cli("request", "bob@example.com", "prod-data-readers", "--ttl", "1h",
                 "--reason", "r", "--json")  # fmt: skip
    assert tagged.code == 0, tagged.err
    request = tagged.json()
    assert (request["approver_source"], request["approvers"]) == (
        "resource_owner",
        ["user:alice@example.com"],
    )


def test_the_cli_request_says_when_it_fell_back(cli, account):
    set_config(
        cli,
        resource_owner={"tag_key": "owner", "idp_attribute": "email"},
        owner_tags={"groups": {"someone-else": {"owner": "alice@example.com"}}},
    )
    result = cli("request", "alice@example.com", "prod-data-readers", "--ttl", "1h",
                 "--reason", "r")  # fmt: skip
    assert result.code == 0, result.err
    assert "approvers (integration_owner): user:bob@example.com" in result.out
    (note,) = [line for line in result.out.splitlines() if line.startswith("note:")]
    assert "fell back to the integration owners" in note
    assert "prod-data-readers" in note and "'owner'" in note


def test_the_documented_policy_block_loads(tmp_path):
    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(
        encoding="utf-8"
    )
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", page, re.DOTALL) if "lease_policy" in b]
    write_toml(tmp_path / "integration.toml", 'integration_owners = ["ann@example.com"]\n' + block)
    config = da.IntegrationConfig.from_toml(tmp_path / "integration.toml")
    assert config.lease_policy.max_ttl == dt.timedelta(hours=8)
    assert config.owner_tags is not None and config.owner_tags.pattern is not None
    assert config.audit_sink == "jsonl:/var/log/jit/audit.jsonl"


def test_the_cli_request_says_how_to_configure_owner_tags(cli, account):
    set_config(cli, resource_owner={"tag_key": "owner", "idp_attribute": "email"})
    result = cli("request", "alice@example.com", "prod-data-readers", "--ttl", "1h",
                 "--reason", "r")  # fmt: skip
    assert result.code == 0, result.err
    (note,) = [line for line in result.out.splitlines() if line.startswith("note:")]
    assert "no owner resolver" in note and "owner_tags" in note
