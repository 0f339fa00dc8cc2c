"""Every Python block of the README runs, against the emulator, as a reader would run it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import respx

import databricks_access as da
from databricks_access.testing import FakeAccount

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_the_demo_and_test_commands_near_the_top():
    head = README.read_text(encoding="utf-8")[:1500]
    assert "python -m pip install . && python -m databricks_access demo" in head
    assert 'python -m pip install ".[test]" && python -m pytest' in head


def test_readme_python_blocks_run_against_the_emulator(tmp_path, monkeypatch, capsys):
    blocks = python_blocks()
    assert len(blocks) >= 3
    source = "\n".join(blocks)
    account = re.search(r'account_id="([0-9a-f-]{36})"', source).group(1)
    fake = FakeAccount(account_id=account, host="https://accounts.cloud.databricks.com")
    sp = fake.add_service_principal("connector")
    fake.add_user("alice@example.com")
    fake.add_group("existing-team")
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", sp.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", sp.client_secret)
    monkeypatch.chdir(tmp_path)
    transport = fake.transport()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="accounts.cloud.databricks.com").mock(
            side_effect=transport.handle_request
        )
        namespace: dict[str, object] = {"__name__": "__readme__"}
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    printed = capsys.readouterr().out
    assert "existing-team" in printed
    ops = fake.find_group("ops-oncall")
    assert ops is not None
    assert fake.find_user("alice@example.com") in fake.group_members(ops)
    assert (tmp_path / "leases.db").exists()
    assert "granted" in (tmp_path / "audit.jsonl").read_text()
    assert isinstance(namespace["lease"], da.Lease)
    inventory = namespace["inventory"]
    assert "<table" in inventory._repr_html_()
    assert {"group_id", "member_id"} <= set(namespace["rows"][0])
    namespace["client"].close()


@pytest.mark.parametrize("block", python_blocks())
def test_readme_blocks_are_valid_python(block):
    assert compile(block, "README", "exec") is not None
