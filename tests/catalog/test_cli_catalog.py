"""`databricks-access unlocks GROUP` and `explain PRINCIPAL`, against the served emulator."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from tests.catalog.conftest import World, build_world

import databricks_access as da
from databricks_access._cli import app as _cli
from databricks_access.testing import FakeAccount


@attrs.frozen
class Served:
    world: World
    config: Path
    env: dict[str, str]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    fake = FakeAccount()
    sp = fake.add_service_principal("connector")
    world = build_world(fake, sp.id)
    with fake.serve() as url:
        hosts = {
            str(w): fake.workspace_host(w) for w in (world.analytics, world.reporting, world.lab)
        }
        config = tmp_path / "integration.json"
        config.write_text(
            json.dumps(
                {
                    "name": "uc-cli",
                    "accounts_url": url,
                    "account_id": fake.account_id,
                    "allow_custom_host": True,
                    "allow_insecure_http": True,
                    "integration_owners": ["bob@example.com"],
                    "secret_store": "env",
                    "lease_store": f"sqlite:///{tmp_path / 'leases.db'}",
                    "rate_limits": "off",
                    "workspace_hosts": hosts,
                }
            ),
            encoding="utf-8",
        )
        env = {
            "DATABRICKS_CLIENT_ID": sp.client_id,
            "DATABRICKS_CLIENT_SECRET": sp.client_secret,
            "USER": "tester",
        }
        yield Served(world, config, env)


def _run(served: Served, capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = _cli.main([*argv, "--config", str(served.config)], environ=served.env)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unlocks_as_csv(served: Served, capsys):
    code, out, err = _run(served, capsys, "unlocks", "juniors", "--format", "csv", "--tables")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {"securable", "privilege", "inherited_from", "granted_to", "via"} <= set(rows[0])
    pairs = {(r["securable"], r["privilege"], r["granted_to"]) for r in rows}
    assert ("sales.raw", "USE_SCHEMA", "juniors") in pairs
    assert ("sales.curated.orders", "SELECT", "analysts") in pairs
    assert {r["via"] for r in rows if r["granted_to"] == "analysts"} == {"analysts"}


def test_unlocks_as_json_and_table(served: Served, capsys):
    code, out, _ = _run(served, capsys, "unlocks", "analysts", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["group_name"] == "analysts"
    assert {m["name"] for m in data["metastores"]} == {"primary", "secondary"}
    code, out, _ = _run(served, capsys, "unlocks", "analysts", "--format", "table")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("SELECT, USE_CATALOG on catalog sales")
    assert lines[2].split() == [
        c.upper()
        for c in (
            "metastore",
            "securable_type",
            "securable",
            "privilege",
            "inherited_from",
            "granted_to",
            "via",
        )
    ]


def test_explain_names_the_group_chain(served: Served, capsys):
    code, out, err = _run(served, capsys, "explain", "alice@example.com", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert sorted(data["groups"]) == ["analysts", "juniors"]
    assert any(p["via"] == "juniors > analysts" for p in data["privileges"])


def test_unmatched_names_and_unread_workspaces_are_warned_about(served: Served, capsys):
    fake = served.world.fake
    carol = fake.add_user("carol@example.com")
    fake.grant("catalog", "hr", "carol@example.com", ["BROWSE"])
    fake.delete_principal(carol)
    fake.add_workspace("locked", deployment_name="dbc-locked")  # not assigned, no host
    code, _, err = _run(served, capsys, "unlocks", "analysts", "--format", "json")
    assert code == 0
    assert "matches no account principal" in err
    assert "could not read workspace_host" in err


def test_an_unknown_group_fails_with_one_line(served: Served, capsys):
    code, _, err = _run(served, capsys, "unlocks", "no-such-group")
    assert code != 0
    assert "no-such-group" in err
    assert "Traceback" not in err


def test_the_requests_table_shows_what_each_unlocks(served: Served, capsys, tmp_path: Path):
    world = served.world
    config = da.IntegrationConfig.from_json(served.config)
    secrets = da.StaticSecretStore(
        served.env["DATABRICKS_CLIENT_ID"], served.env["DATABRICKS_CLIENT_SECRET"]
    )
    with da.AccountClient(config.account_config(), secrets=secrets) as account:
        store = da.SqliteLeaseStore(tmp_path / "leases.db")
        tracker = da.LeaseTracker(da.MembershipManager(account), store=store)
        reader = da.CatalogReader(account, workspace_hosts=config.workspace_hosts)
        requests = da.AccessRequests(
            tracker, da.Integration(config, client=account), catalog=reader
        )
        requests.submit(
            "alice@example.com",
            world.analysts,
            ttl=dt.timedelta(hours=1),
            reason="INC-7",
            requester="alice",
        )
        store.close()
    code, out, err = _run(served, capsys, "requests", "--format", "table")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[-1] == "UNLOCKS"
    assert "on catalog sales" in out
    code, out, _ = _run(served, capsys, "requests", "--format", "json")
    assert "Unlocks (Unity Catalog): " in json.loads(out)[0]["access_details"]


def test_a_request_from_the_command_line_records_what_its_group_unlocks(served: Served, capsys):
    code, out, err = _run(
        served,
        capsys,
        "request",
        "alice@example.com",
        "analysts",
        "--ttl",
        "1h",
        "--reason",
        "INC-8",
        "--unlocks",
    )
    assert code == 0, err
    assert "Unlocks (Unity Catalog): " in out
    code, out, err = _run(served, capsys, "requests", "--format", "json")
    assert code == 0, err
    (stored,) = json.loads(out)
    assert "on catalog sales" in stored["access_details"]
    # Without the flag, nothing is read and nothing recorded.
    code, out, _ = _run(
        served, capsys, "request", "bob@example.com", "analysts", "--ttl", "1h", "--reason", "x"
    )
    assert code == 0
    assert "Unlocks" not in out


def test_the_real_entry_point(served: Served):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "databricks_access",
            "explain",
            "bob@example.com",
            "--format",
            "csv",
            "--config",
            str(served.config),
        ],
        capture_output=True,
        text=True,
        env={**env, **served.env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "sales," in done.stdout
    assert served.env["DATABRICKS_CLIENT_SECRET"] not in done.stdout + done.stderr


def test_help_lists_the_commands_with_exit_codes(capsys):
    for command in ("unlocks", "explain"):
        with pytest.raises(SystemExit) as done:
            _cli.main([command, "--help"], environ={})
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: databricks-access {command}")
        assert "exit codes:" in out
