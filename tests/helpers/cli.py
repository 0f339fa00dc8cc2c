"""The command line run against the emulator: fixtures shared by the CLI and policy tests.

`account` serves an emulated account on 127.0.0.1 with a service principal, two users and
two groups; `cli` runs a command in-process through `_cli.main` (what the console script
calls), `child` in a subprocess through `python -m databricks_access`. Both configure it
the way a user does: an `IntegrationConfig` file, `env` secrets and a SQLite lease store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

import databricks_access as da
from databricks_access._cli import app as _cli
from databricks_access.testing import FakeAccount

WAIT = 60  # seconds: a bound on every wait for a child, never a timing assertion


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@attrs.frozen
class Account:
    fake: FakeAccount
    url: str
    client_id: str
    client_secret: str
    alice: str
    bob: str
    readers: str
    ops: str


@pytest.fixture
def account() -> Iterator[Account]:
    fake = FakeAccount()
    sp = fake.add_service_principal("connector")
    alice = fake.add_user("alice@example.com", "Alice")
    bob = fake.add_user("bob@example.com", "Bob")
    readers = fake.add_group("prod-data-readers", members=[bob])
    ops = fake.add_group('=HYPERLINK("http://x")', members=[alice])
    workspace = fake.add_workspace("prod", workspace_id=1234)
    fake.assign(workspace, readers, ["USER"])
    with fake.serve() as url:
        yield Account(fake, url, sp.client_id, sp.client_secret, alice, bob, readers, ops)


def clean_environ() -> dict[str, str]:
    """The test's environment without anything that could configure the child."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABRICKS_", "COV_CORE_"))
    }


class Cli:
    """Runs the command line with a configuration file, in a subprocess or in-process."""

    def __init__(self, account: Account, tmp_path: Path, capsys, mode: str) -> None:
        self.account = account
        self.tmp_path = tmp_path
        self.capsys = capsys
        self.mode = mode
        self.db = tmp_path / "leases.db"
        self.config = tmp_path / "integration.json"
        self.config.write_text(
            json.dumps(
                {
                    "name": "cli-test",
                    "accounts_url": account.url,
                    "account_id": account.fake.account_id,
                    "allow_custom_host": True,
                    "allow_insecure_http": True,
                    "integration_owners": ["bob@example.com"],
                    "secret_store": "env",
                    "lease_store": f"sqlite:///{self.db}",  # an absolute path: four slashes
                }
            ),
            encoding="utf-8",
        )
        self.env = {
            "DATABRICKS_CLIENT_ID": account.client_id,
            "DATABRICKS_CLIENT_SECRET": account.client_secret,
            "USER": "tester",
        }

    def environ(self, env: Mapping[str, str | None] | None) -> dict[str, str]:
        merged: dict[str, str | None] = {**self.env, **(env or {})}
        return {key: value for key, value in merged.items() if value is not None}

    def __call__(
        self, *args: str, config: bool = True, env: Mapping[str, str | None] | None = None
    ) -> Result:
        argv = [*args, "--config", str(self.config)] if config else list(args)
        if self.mode == "subprocess":
            return spawn(argv, {**clean_environ(), **self.environ(env)})
        self.capsys.readouterr()
        try:
            code = _cli.main(argv, environ=self.environ(env))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def store(self) -> da.SqliteLeaseStore:
        return da.SqliteLeaseStore(self.db)


def spawn(argv: list[str], env: Mapping[str, str]) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "databricks_access", *argv],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=dict(env),
        timeout=WAIT,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(params=["subprocess", "in-process"])
def cli(request, account, tmp_path, capsys) -> Cli:
    return Cli(account, tmp_path, capsys, request.param)


@pytest.fixture
def child(account, tmp_path, capsys) -> Cli:
    """The real entry point only."""
    return Cli(account, tmp_path, capsys, "subprocess")


def one_error_line(result: Result) -> str:
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err
    return lines[0]
