"""The command line, through its real entry point: `python -m databricks_access ...`.

Each command runs in a subprocess against the emulator served on 127.0.0.1, configured
the way a user configures it: an `IntegrationConfig` file naming the account, `env` as
the secret store (the service principal's credentials in the child's environment) and a
SQLite lease store. The flows run a second time in-process through `_cli.main`, the same
function the console script calls, so that the coverage report sees them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

import databricks_access as da
from databricks_access._cli import render as _render
from helpers.cli import WAIT, Cli, clean_environ, one_error_line
from helpers.internals import human

COMMANDS = (
    "demo",
    "discover",
    "grant",
    "revoke",
    "extend",
    "request",
    "approve",
    "deny",
    "leases",
    "requests",
    "sweep",
    "run",
    "doctor",
    "emulator",
)


# -- help, version, demo -----------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_the_exit_codes(child, command):
    result = child(command, "--help", config=False)
    assert result.code == 0, result.err
    assert result.out.startswith(f"usage: databricks-access {command}")
    assert "exit codes:" in result.out
    for code in ("0", "1", "2", "3", "130"):
        assert f"\n  {code} " in result.out


def test_the_main_help_lists_every_command_and_exit_code(child):
    result = child("--help", config=False)
    assert result.code == 0
    for command in COMMANDS:
        assert command in result.out
    assert "130  interrupted" in result.out
    assert "DATABRICKS_ACCESS_CONFIG" in result.out


def test_version_and_missing_command(child):
    version = child("--version", config=False)
    assert version.code == 0
    assert version.out.strip() == f"databricks-access {da.__version__}"
    missing = child(config=False)
    assert missing.code == 2
    assert "COMMAND" in one_error_line(missing)


def test_the_demo_runs_without_configuration(child):
    result = child("demo", config=False, env={"DATABRICKS_CLIENT_SECRET": None})
    assert result.code == 0, result.err
    assert "Zero standing privileges" in result.out


# -- leases ----------------------------------------------------------------------------


def test_grant_list_extend_and_revoke(cli, account):
    fake = account.fake
    granted = cli(
        "grant", "alice@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "INC-1"
    )
    assert granted.code == 0, granted.err
    assert granted.out.startswith("granted lease_")
    assert "alice@example.com in prod-data-readers until" in granted.out
    assert account.alice in fake.group_members(account.readers)

    # By group id, as JSON; Bob is a standing member, and stays one.
    bob = cli(
        "grant", "bob@example.com", account.readers, "--ttl", "30m", "--reason", "INC-2", "--json"
    )
    assert bob.code == 0, bob.err
    bob_lease = bob.json()
    assert bob_lease["standing"] is True
    assert bob_lease["requester"] == "tester"  # $USER

    listed = cli("leases", "--json")
    assert listed.code == 0
    leases = listed.json()
    assert [lease["reason"] for lease in leases] == ["INC-1", "INC-2"]
    alice_id = leases[0]["id"]
    table = cli(
        "leases", "--principal", "ALICE@example.com", "--state", "active", "--format", "table"
    )
    assert table.out.splitlines()[0].split() == [
        "ID", "STATE", "PRINCIPAL", "GROUP", "STANDING", "EXPIRES", "ENDED", "REQUESTER", "REASON"
    ]  # fmt: skip
    assert len(table.out.splitlines()) == 2 and alice_id in table.out
    assert cli("leases", "--group", "no-such-group", "--format", "table").out == "(none)\n"

    extended = cli("extend", alice_id, "--by", "1h30m")
    assert extended.code == 0, extended.err
    assert extended.out.startswith(f"extended {alice_id}")
    clamped = cli("extend", alice_id, "--by", "1d", "--json").json()
    assert clamped["clamped"] is True

    revoked = cli("revoke", alice_id)
    assert revoked.code == 0, revoked.err
    assert revoked.out.startswith(f"revoked {alice_id}")
    assert account.alice not in fake.group_members(account.readers)
    again = cli("revoke", alice_id)
    assert (again.code, again.out) == (0, f"{alice_id} was already revoked; nothing to do\n")
    assert cli("revoke", bob_lease["id"], "--json").json()["state"] == "revoked"
    assert account.bob in fake.group_members(account.readers)  # standing: left alone

    states = {lease["id"]: lease["state"] for lease in cli("leases", "--json").json()}
    assert states == {alice_id: "revoked", bob_lease["id"]: "revoked"}


def test_operation_failures_exit_1_with_one_line(cli):
    unknown_group = cli("grant", "alice@example.com", "nope", "--ttl", "1h", "--reason", "x")
    assert unknown_group.code == 1
    assert "no group is named 'nope'" in one_error_line(unknown_group)
    unknown_user = cli(
        "grant", "zed@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "x"
    )
    assert unknown_user.code == 1
    assert "zed@example.com" in one_error_line(unknown_user)
    unknown_lease = cli("revoke", "lease_nope")
    assert unknown_lease.code == 1
    assert "no lease 'lease_nope'" in one_error_line(unknown_lease)
    assert cli("extend", "lease_nope", "--by", "1h").code == 1


def test_sweep_revokes_a_lease_that_ended(cli, account):
    # A lease granted two hours ago for one hour, by a tracker on a clock set back.
    clock = da.ManualClock(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    config = da.AccountConfig(
        host=account.url,
        account_id=account.fake.account_id,
        allow_custom_host=True,
        allow_insecure_http=True,
    )
    secrets = da.StaticSecretStore(account.client_id, account.client_secret)
    with da.AccountClient(config, secrets=secrets, clock=clock) as client, cli.store() as store:
        tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
        lease = tracker.grant(
            "alice@example.com", account.readers, ttl=3600, requester="t", reason="old"
        )
    assert account.alice in account.fake.group_members(account.readers)

    swept = cli("sweep")
    assert swept.code == 0, swept.err
    assert swept.out.startswith("swept: 1 revoked")
    assert account.alice not in account.fake.group_members(account.readers)
    assert cli("leases", "--state", "revoked", "--json").json()[0]["id"] == lease.id
    report = cli("sweep", "--json").json()
    assert report["revoked"] == [] and report["patches"] == 0


# -- access requests ------------------------------------------------------------------------


def test_request_approve_and_deny(cli, account):
    submitted = cli(
        "request",
        "alice@example.com",
        "prod-data-readers",
        "--ttl",
        "2h",
        "--reason",
        "INC-9",
        "--requester",
        "alice@example.com",
    )
    assert submitted.code == 0, submitted.err
    assert "approvers (integration_owner): user:bob@example.com" in submitted.out
    pending = cli("requests", "--state", "pending", "--json").json()
    assert len(pending) == 1
    request_id = pending[0]["id"]
    assert request_id in cli("requests").out

    own = cli("approve", request_id, "--as", "alice@example.com")
    assert own.code == 1
    assert "their own" in one_error_line(own)
    stranger = cli("approve", request_id, "--as", "eve@example.com")
    assert stranger.code == 1
    assert "not an approver" in one_error_line(stranger)

    approved = cli("approve", request_id, "--as", "bob@example.com")
    assert approved.code == 0, approved.err
    assert approved.out.startswith(f"approved {request_id} as bob@example.com")
    assert (
        "granted lease_" in approved.out
        and "alice@example.com in prod-data-readers" in approved.out
    )
    assert account.alice in account.fake.group_members(account.readers)
    (lease,) = cli("leases", "--state", "active", "--json").json()
    assert (lease["approver"], lease["request_id"]) == ("bob@example.com", request_id)
    assert lease["group_name"] == "prod-data-readers"  # named from its request

    second = cli(
        "request", "alice@example.com", account.readers, "--ttl", "1h", "--reason", "more", "--json"
    ).json()
    denied = cli("deny", second["id"], "--as", "bob@example.com", "--reason", "not today")
    assert denied.code == 0, denied.err
    assert denied.out == f"denied {second['id']} as bob@example.com: not today\n"
    assert cli("requests", "--state", "denied", "--json").json()[0]["decision_reason"] == (
        "not today"
    )
    late = cli("approve", second["id"], "--as", "bob@example.com")
    assert late.code == 1
    assert "is denied" in one_error_line(late)


# -- discovery --------------------------------------------------------------------------------


def test_discover_as_json_csv_and_table(cli, account, tmp_path):
    whole = cli("discover")  # not a terminal: the whole inventory as JSON
    assert whole.code == 0, whole.err
    inventory = da.Inventory.from_json(whole.out)
    assert set(inventory.groups) == {account.readers, account.ops}

    records = cli("discover", "--format", "json", "--records", "memberships").json()
    assert {(r["group_name"], r["member_name"]) for r in records} == {
        ("prod-data-readers", "Bob"),
        ('=HYPERLINK("http://x")', "Alice"),
    }

    out = tmp_path / "groups.csv"
    written = cli("discover", "--format", "csv", "--records", "groups", "--output", str(out))
    assert written.code == 0, written.err
    assert written.out == ""
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "group_id,group_name,members,managers,roles"
    names = {row["group_id"]: row["group_name"] for row in csv.DictReader(io.StringIO(text))}
    assert names == {account.readers: "prod-data-readers", account.ops: '\'=HYPERLINK("http://x")'}

    table = cli("discover", "--format", "table", "--records", "assignments", "--no-managers")
    assert table.code == 0
    assert table.out.splitlines()[0].split()[:3] == [
        "WORKSPACE_ID",
        "WORKSPACE_NAME",
        "PRINCIPAL_ID",
    ]
    assert "prod-data-readers" in table.out

    empty = cli("discover", "--format", "csv", "--records", "errors", "--no-workspaces")
    assert empty.out == "stage,item,message,status_code,error_code\n"


def test_discover_shows_progress_on_stderr_when_asked(cli):
    result = cli("discover", "--format", "json", "--progress")
    assert result.code == 0, result.err
    assert "groups" in result.err  # a tqdm bar, or the plain counter without tqdm
    quiet = cli("discover", "--format", "json", "--no-progress")
    assert quiet.err == ""


def test_the_progress_counter_without_tqdm(account, tmp_path, capsys, monkeypatch):
    cli = Cli(account, tmp_path, capsys, "in-process")
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails: no tqdm
    result = cli("discover", "--format", "csv", "--progress")
    assert result.code == 0, result.err
    assert "groups: 2/2\n" in result.err
    assert "users: 2/2\n" in result.err


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    assert [
        _render._csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "a=b", 3, None)
    ] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "a=b",
        3,
        "",
    ]


def test_table_cells_hold_no_terminal_escape():
    text = _render._table([{"name": "\x1b[31mred\x1b[0m", "ok": True, "none": None}])
    assert "\x1b" not in text
    assert text.splitlines()[1].split() == ["\\u001b[31mred\\u001b[0m", "yes"]


# -- run: the expiry loop ------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_stops_cleanly_on_a_signal_and_keeps_the_leases(child, account, signum):
    granted = child(
        "grant", "alice@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "r", "--json"
    )
    lease_id = granted.json()["id"]

    lines: queue.Queue[str] = queue.Queue()
    received: list[str] = []
    process = subprocess.Popen(
        [sys.executable, "-m", "databricks_access", "run", "--config", str(child.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**clean_environ(), **child.env},
    )
    try:

        def read() -> None:
            for line in process.stdout:
                received.append(line)
                lines.put(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while not (line := lines.get(timeout=WAIT)).startswith("running:"):
            assert line.strip(), line
        process.send_signal(signum)
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
    assert f"stopped on {signal.Signals(signum).name}" in out
    assert out.index(lease_id) < out.index("running:")  # queued events are printed first
    assert "granted" in out
    with child.store() as store:
        stored = store.get_lease(lease_id)
    assert stored is not None and stored.state is da.LeaseState.ACTIVE
    assert account.alice in account.fake.group_members(account.readers)


def test_run_in_process_stops_on_sigterm(account, tmp_path, capsys):
    cli = Cli(account, tmp_path, capsys, "in-process")
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
    assert "stopped on SIGTERM: 0 active lease(s)" in result.out
    assert signal.getsignal(signal.SIGTERM) is before


# -- doctor -------------------------------------------------------------------------------------


def test_doctor_passes_and_says_so(cli):
    result = cli("doctor")
    assert result.code == 0, result.out + result.err
    assert "no problem found" in result.out
    assert "[  ok] lease_store" in result.out
    assert cli.account.client_secret not in result.out + result.err


def test_doctor_exits_3_when_the_account_cannot_be_reached(child):
    child.config.write_text(
        child.config.read_text().replace(child.account.url, "http://127.0.0.1:9"), encoding="utf-8"
    )
    result = child("doctor")
    assert result.code == 3
    assert "[FAIL] token" in result.out


# -- usage and configuration errors: exit 2, one line ----------------------------------------------


@pytest.mark.parametrize("bad", ["5x", "90", "0m", "1h-", "", "1.5h", "h", "30m1h", "99999999999d"])
def test_bad_durations_exit_2_naming_the_option(child, bad):
    result = child("grant", "alice@example.com", "g", "--ttl", bad, "--reason", "r")
    assert result.code == 2
    assert "argument --ttl:" in one_error_line(result)


def test_a_ttl_out_of_bounds_names_the_option(cli):
    result = cli("grant", "alice@example.com", "prod-data-readers", "--ttl", "13h", "--reason", "r")
    assert result.code == 2
    assert one_error_line(result).startswith("error: --ttl: must be at most")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", dt.timedelta(seconds=45)),
        ("90m", dt.timedelta(minutes=90)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("2h", dt.timedelta(hours=2)),
        ("1d", dt.timedelta(days=1)),
        ("1d2h3m4s", dt.timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 15m ", dt.timedelta(minutes=15)),
    ],
)
def test_durations(text, expected):
    assert da.parse_duration(text) == expected
    assert da.parse_duration(human(expected)) == expected


def test_a_bad_config_file_is_one_line_naming_every_field(cli):
    bad = cli.tmp_path / "bad.toml"
    bad.write_text('name = "bad name"\naccounts_url = "https://x.example.com"\ncolour = 1\n')
    result = cli("leases", "--config", str(bad), config=False)
    assert result.code == 2
    line = one_error_line(result)
    assert line.startswith(f"error: the configuration in {bad} is invalid: ")
    for field in ("colour:", "name:", "accounts_url:", "account_id: is required"):
        assert field in line


def test_missing_and_unreadable_configuration(cli):
    none = cli("leases", config=False)
    assert none.code == 2
    assert "no configuration" in one_error_line(none)
    missing = cli("leases", "--config", str(cli.tmp_path / "nope.toml"), config=False)
    assert missing.code == 2
    assert "cannot read the configuration" in one_error_line(missing)
    broken = cli.tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    assert cli("leases", "--config", str(broken), config=False).code == 2


def test_configuration_from_the_environment(cli):
    by_path = cli("leases", config=False, env={"DATABRICKS_ACCESS_CONFIG": str(cli.config)})
    assert (by_path.code, by_path.out) == (0, "[]\n")  # piped: JSON
    settings = json.loads(cli.config.read_text())
    env = {f"DATABRICKS_ACCESS_{key.upper()}": str(value) for key, value in settings.items()}
    env["DATABRICKS_ACCESS_INTEGRATION_OWNERS"] = "bob@example.com"
    by_variables = cli("leases", "--json", config=False, env=env)
    assert (by_variables.code, by_variables.json()) == (0, [])
    # TOML, with the options after the command or before it.
    toml = cli.tmp_path / "integration.toml"
    toml.write_text(
        "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items()) + "\n",
        encoding="utf-8",
    )
    before = cli("--config", str(toml), "leases", "--format", "table", config=False)
    assert (before.code, before.out) == (0, "(none)\n")


# -- credentials and the network: exit 3; never a secret ---------------------------------------


def test_credentials_and_network_failures_exit_3(cli):
    grant = ("grant", "alice@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "r")
    missing = cli(*grant, env={"DATABRICKS_CLIENT_SECRET": None})
    assert missing.code == 3
    assert "DATABRICKS_CLIENT_SECRET" in one_error_line(missing)
    wrong = cli(*grant, env={"DATABRICKS_CLIENT_SECRET": "not-the-secret"})
    assert wrong.code == 3
    assert "refused the credentials" in one_error_line(wrong)
    assert "not-the-secret" not in wrong.err


def test_an_unreachable_account_exits_3(child):
    # Connections refused are retried with backoff first: the real entry point only.
    child.config.write_text(
        child.config.read_text().replace(child.account.url, "http://127.0.0.1:9"),
        encoding="utf-8",
    )
    down = child("grant", "alice@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "r")
    assert down.code == 3
    assert "cannot reach the account" in one_error_line(down)


def test_debug_shows_the_traceback_and_no_secret(cli):
    args = ("grant", "zed@example.com", "prod-data-readers", "--ttl", "1h", "--reason", "r")
    plain = cli(*args)
    assert plain.code == 1
    one_error_line(plain)
    debug = cli(*args, "--debug")
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.err
    assert debug.err.rstrip().splitlines()[-1].startswith("error: ")
    assert cli.account.client_secret not in debug.out + debug.err


def test_an_interrupt_exits_130(account, tmp_path, capsys, monkeypatch):
    cli = Cli(account, tmp_path, capsys, "in-process")

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(da, "discover", interrupted)
    result = cli("discover")
    assert result.code == 130
    assert one_error_line(result) == "error: interrupted"
