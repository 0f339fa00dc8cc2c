"""Every Python block of the README runs, against the emulator, as a reader would run it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import respx

import databricks_access as da
from databricks_access.testing import FakeAccount

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

README = Path(__file__).resolve().parents[2] / "README.md"
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
    # Alice is in ops-oncall through the lease only: the first example took her out again,
    # so the lease is not standing and its end removes her.
    lease = namespace["lease"]
    assert lease.standing is False
    assert fake.group_members(ops) == {fake.find_user("alice@example.com")}
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


def test_readme_lists_every_runtime_dependency():
    project = tomllib.loads((README.parent / "pyproject.toml").read_text(encoding="utf-8"))
    names = {
        re.split(r"[<>=;\[ ]", spec, maxsplit=1)[0] for spec in project["project"]["dependencies"]
    }
    line = re.search(
        r"Runtime dependencies: (.*?)\.\n\n", README.read_text(encoding="utf-8"), re.DOTALL
    )
    assert line is not None
    assert set(re.findall(r"`([\w-]+)`", line.group(1))) == names


def test_readme_says_how_to_install_from_the_source_tree():
    text = README.read_text(encoding="utf-8")
    install = text[text.index("## Install") :]
    install = install[: install.index("\n## ", 1)]
    assert "python3 -m venv .venv" in install
    assert "python -m pip install ." in install
    assert "pip install databricks-access" not in text  # not published yet
