"""The command line's first minutes: help that the defaults accept, listings that pipe as
JSON, read-only commands that need no credentials and write nothing, and a doctor that
names the failing request quickly."""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import databricks_access as da
from databricks_access._cli import parser as _cli_parser
from helpers.cli import WAIT, Cli, clean_environ, one_error_line, spawn

GRANT = ("grant", "alice@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "INC-1")


def set_config(cli: Cli, **changes: object) -> None:
    data = json.loads(cli.config.read_text(encoding="utf-8"))
    data.update(changes)
    cli.config.write_text(json.dumps(data), encoding="utf-8")


# -- help ----------------------------------------------------------------------------------


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = _cli_parser.build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


@pytest.mark.parametrize("command", ["grant", "request"])
def test_every_ttl_example_in_the_help_is_accepted_by_the_defaults(command):
    (ttl,) = (a for a in subcommand(command)._actions if "--ttl" in a.option_strings)
    examples = re.findall(r"\b\d+[dhms](?:\d+[hms])*\b", ttl.help.split("(")[0])
    assert len(examples) >= 3, ttl.help
    for example in examples:
        seconds = da.parse_duration(example).total_seconds()
        assert 60 <= seconds <= 12 * 3600, example


@pytest.mark.parametrize(
    ("command", "argument"),
    [
        ("approve", "--as APPROVER"),
        ("deny", "--as APPROVER"),
        ("approve", "REQUEST_ID"),
        ("deny", "REQUEST_ID"),
        ("revoke", "LEASE_ID"),
        ("extend", "LEASE_ID"),
        ("revoke", "--as NAME"),
    ],
)
def test_every_argument_has_help(child, command, argument):
    help_text = child(command, "--help", config=False).out
    body = help_text.split("\n\n", 2)[2]  # past the usage and the description
    (entry,) = [line for line in body.splitlines() if line.strip().startswith(argument)]
    described = entry.strip()[len(argument) :].strip()
    assert len(described) > 10, f"{command} {argument}: {entry!r}"


def test_the_demo_help_lists_no_config_option(child):
    help_text = child("demo", "--help", config=False).out
    assert "--config" not in help_text
    assert "--debug" in help_text


# -- listings ------------------------------------------------------------------------------


def test_leases_and_requests_print_json_when_piped(child):
    assert child(*GRANT).code == 0
    leases = child("leases")
    assert leases.code == 0, leases.err
    (lease,) = json.loads(leases.out)
    assert lease["principal_name"] == "alice@example.com"
    requests = child("requests")
    assert (requests.code, json.loads(requests.out)) == (0, [])
    table = child("leases", "--format", "table")
    assert table.out.splitlines()[0].split()[:2] == ["ID", "STATE"]


def test_leases_show_standing_and_ended_instead_of_expires(cli, account):
    assert cli(*GRANT).code == 0
    bob = cli("grant", "bob@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "I-2")
    assert bob.code == 0, bob.err
    alice_id = cli("leases", "--json").json()[0]["id"]
    assert cli("revoke", alice_id).code == 0
    table = cli("leases", "--format", "table").out.splitlines()
    header = table[0].split()
    assert header == [
        "ID", "STATE", "PRINCIPAL", "GROUP", "STANDING", "EXPIRES", "ENDED", "REQUESTER", "REASON"
    ]  # fmt: skip
    columns = {name: table[0].index(name) for name in header}

    def cell(row: str, name: str) -> str:
        following = [columns[n] for n in header if columns[n] > columns[name]]
        return row[columns[name] : min(following, default=len(row))].strip()

    alice_row = next(row for row in table[1:] if alice_id in row)
    bob_row = next(row for row in table[1:] if "bob@example.com" in row)
    assert cell(alice_row, "STANDING") == "no"
    assert cell(alice_row, "EXPIRES") == ""  # revoked: it ended, it no longer expires
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", cell(alice_row, "ENDED"))
    assert cell(bob_row, "STANDING") == "yes"  # Bob was a member before the lease
    assert cell(bob_row, "EXPIRES") and cell(bob_row, "ENDED") == ""


# -- read-only commands ----------------------------------------------------------------------


def test_leases_and_doctor_create_no_lease_store(cli):
    assert not cli.db.exists()
    listed = cli("leases", "--json")
    assert (listed.code, listed.json()) == (0, [])
    assert "does not exist yet" in listed.err  # an empty list says why
    assert cli("requests", "--format", "table").out == "(none)\n"
    doctor = cli("doctor")
    assert doctor.code == 0, doctor.out + doctor.err
    assert "[  ok] lease_store" in doctor.out
    assert "does not exist yet" in doctor.out
    assert not cli.db.exists()
    assert list(cli.db.parent.glob("leases.db*")) == []


def test_doctor_leaves_an_existing_store_unchanged(cli):
    assert cli(*GRANT).code == 0
    before = cli.db.read_bytes()
    doctor = cli("doctor")
    assert "[  ok] lease_store: opens, and holds 1 lease(s)" in doctor.out
    assert cli.db.read_bytes() == before


def test_leases_need_no_secret_store_extra(account, tmp_path, capsys, monkeypatch):
    cli = Cli(account, tmp_path, capsys, "in-process")
    assert cli(*GRANT).code == 0
    set_config(cli, secret_store="aws-secrets-manager:jit/connector")
    monkeypatch.setitem(sys.modules, "boto3", None)  # the `aws` extra is not installed
    listed = cli("leases", "--json")
    assert listed.code == 0, listed.err
    assert [lease["principal_name"] for lease in listed.json()] == ["alice@example.com"]
    assert cli("requests", "--json").code == 0
    doctor = cli("doctor")
    assert doctor.code == 3
    assert "[FAIL] secret:" in doctor.out
    assert "aws" in doctor.out.split("[FAIL] secret:")[1].splitlines()[0]
    assert "[  ok] lease_store: opens, and holds 1 lease(s)" in doctor.out


def test_doctor_names_the_token_request_and_gives_up_quickly(
    account, tmp_path, capsys, monkeypatch
):
    cli = Cli(account, tmp_path, capsys, "in-process")
    set_config(cli, accounts_url="http://127.0.0.1:9")  # nothing listens there
    slept: list[float] = []
    monkeypatch.setattr(da.SystemClock, "sleep", lambda _self, seconds: slept.append(seconds))
    result = cli("doctor")
    assert result.code == 3
    (token,) = [line for line in result.out.splitlines() if line.startswith("[FAIL] token")]
    assert "POST /oidc/accounts/" in token and "/v1/token" in token
    assert token.index("POST") < token.index("GET")  # the token request is what failed
    assert sum(slept) <= 2.0, slept  # a retry or two, not the default minute of backoff


# -- emulator ------------------------------------------------------------------------------


def test_the_emulator_serves_an_account_the_other_commands_use(tmp_path):
    lines: queue.Queue[str] = queue.Queue()
    received: list[str] = []
    process = subprocess.Popen(
        [sys.executable, "-m", "databricks_access", "emulator"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=clean_environ(),
    )
    try:

        def read() -> None:
            for line in process.stdout:
                received.append(line)
                lines.put(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while not lines.get(timeout=WAIT).startswith("stop with Ctrl-C"):
            pass
        (export,) = [line for line in received if "export DATABRICKS_ACCESS_CONFIG=" in line]
        config = Path(export.split("=", 1)[1].strip())
        env = {**clean_environ(), "DATABRICKS_ACCESS_CONFIG": str(config), "USER": "tester"}
        granted = spawn([*GRANT[:4], "15m", *GRANT[5:]], env)
        assert granted.code == 0, granted.err
        listed = spawn(["leases"], env)
        (lease,) = json.loads(listed.out)
        assert (lease["principal_name"], lease["state"]) == ("alice@example.com", "active")
        credentials = json.loads((config.parent / "credentials.json").read_text("utf-8"))
        assert (config.parent / "credentials.json").stat().st_mode & 0o077 == 0
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
    reader.join(timeout=WAIT)
    err = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    out = "".join(received)
    assert code == 0, err
    assert "stopped on SIGINT" in out
    assert credentials["client_secret"] not in out + err
    assert not config.parent.exists()  # the temporary folder is removed


def test_the_emulator_overwrites_nothing(child, tmp_path):
    folder = tmp_path / "trial"
    folder.mkdir()
    (folder / "integration.toml").write_text("mine", encoding="utf-8")
    result = child("emulator", "--dir", str(folder), config=False)
    assert result.code == 2
    assert "already holds integration.toml" in one_error_line(result)
    assert (folder / "integration.toml").read_text(encoding="utf-8") == "mine"
    missing = child("emulator", "--dir", str(tmp_path / "nope"), config=False)
    assert missing.code == 2
    assert "is not an existing directory" in one_error_line(missing)


# -- run -----------------------------------------------------------------------------------


def test_run_prints_the_queued_events_readably(account, tmp_path, capsys):
    cli = Cli(account, tmp_path, capsys, "in-process")
    assert cli(*GRANT).code == 0
    before = signal.getsignal(signal.SIGTERM)

    def stop_when_handled() -> None:
        deadline = time.monotonic() + WAIT
        while signal.getsignal(signal.SIGTERM) is before and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=stop_when_handled, daemon=True)
    killer.start()
    result = cli("run", "--idle", "0.2")
    killer.join(timeout=WAIT)
    assert result.code == 0, result.err
    (granted,) = [line for line in result.out.splitlines() if " granted " in line]
    assert "alice@example.com in prod-data-readers" in granted
    assert "(requested by tester; reason: INC-1)" in granted
    assert account.alice not in granted  # names, not SCIM ids
