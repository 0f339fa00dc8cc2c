"""The documentation's examples run, and its reference pages match the code.

Every ```python block of the pages below runs, in order, as a reader would run it: the
pages that talk to "the account" get the emulator answering as the account their
configuration names; ```py blocks need optional packages (tqdm, pandas) and are only
compiled; ```toml blocks are saved as `integration.toml` first.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import respx

import databricks_access as da
from databricks_access import testing
from databricks_access._cli import app as _cli
from databricks_access.testing import FakeAccount

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROOT = DOCS.parent
HOST = "accounts.cloud.databricks.com"
ACCOUNT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
# The pages written with this test; the others have their own tests.
PAGES = (
    "index.md",
    "getting-started.md",
    "concepts.md",
    "integration.md",
    "notebooks.md",
    "cli.md",
    "troubleshooting.md",
    "reference.md",
)


def blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def run_page(page: str, namespace: dict[str, object] | None = None) -> dict[str, object]:
    namespace = {"__name__": "__docs__", **(namespace or {})}
    for block in blocks(page, "python"):
        exec(compile(block, f"docs/{page}", "exec"), namespace)  # noqa: S102 - the docs' own code
    return namespace


@pytest.fixture
def account(tmp_path, monkeypatch):
    """The emulator, answering as the account of the pages' configuration, in tmp_path."""
    fake = FakeAccount(account_id=ACCOUNT_ID, host=f"https://{HOST}")
    sp = fake.add_service_principal("connector")
    fake.add_user("alice@example.com", "Alice")
    fake.add_user("bob@example.com", "Bob")
    fake.add_user("ann@example.com", "Ann")
    fake.add_user("carol@example.com", "Carol")
    fake.add_group("prod-data-readers")
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", sp.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", sp.client_secret)
    monkeypatch.chdir(tmp_path)
    transport = fake.transport()
    with respx.mock(assert_all_called=False) as router:
        router.route(host=HOST).mock(side_effect=transport.handle_request)
        yield fake


@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_is_valid(page):
    for block in blocks(page, "python") + blocks(page, "py"):
        compile(block, f"docs/{page}", "exec")


def test_getting_started_runs(account, tmp_path, capsys):
    (toml,) = blocks("getting-started.md", "toml")
    (tmp_path / "integration.toml").write_text(toml, encoding="utf-8")
    namespace = run_page("getting-started.md")
    readers = account.find_group("prod-data-readers")
    assert account.group_members(readers) == frozenset()  # granted, then revoked early
    lease = namespace["lease"]
    assert isinstance(lease, da.Lease)
    assert lease.id in capsys.readouterr().out
    with da.SqliteLeaseStore(tmp_path / "leases.db") as store:  # the file the CLI reads
        assert store.get_lease(lease.id).state is da.LeaseState.REVOKED


def test_concepts_run():
    namespace = run_page("concepts.md")
    assert isinstance(namespace["tracker"], da.LeaseTracker)


# The async approval examples build an `AsyncIntegration`; run again with a sync
# `Integration` in its place, they show the other working pairing.
PAIRINGS = {
    "integration.md": (
        "da.AsyncIntegration(config, client=aclient)",
        "da.Integration(config, client=client)",
    ),
    "approvals.md": ("da.AsyncIntegration(config, client=aclient)", "da.Integration(config)"),
}


def run_paired(page: str, pairing: str, namespace: dict[str, object] | None = None):
    """Run a page; with the `sync` pairing, its async approvals use a sync integration."""
    namespace = {"__name__": "__docs__", **(namespace or {})}
    async_form, sync_form = PAIRINGS[page]
    found = 0
    for block in blocks(page, "python"):
        if pairing == "sync" and async_form in block:
            block = block.replace(async_form, sync_form)  # noqa: PLW2901 - the variant
            found += 1
        exec(compile(block, f"docs/{page}", "exec"), namespace)  # noqa: S102 - the docs' own code
    assert found == (1 if pairing == "sync" else 0)
    return namespace


@pytest.mark.parametrize("pairing", ["async", "sync"])
def test_integration_guide_runs(account, tmp_path, capsys, pairing):
    (toml,) = blocks("integration.md", "toml")
    (tmp_path / "integration.toml").write_text(toml, encoding="utf-8")
    namespace = run_paired("integration.md", pairing)
    readers = account.find_group("prod-data-readers")
    alice, bob = account.find_user("alice@example.com"), account.find_user("bob@example.com")
    carol = account.find_user("carol@example.com")
    assert account.group_members(readers) == {alice, bob, carol}
    assert namespace["approved"].lease_id is not None
    approved = namespace["approved_async"]
    assert isinstance(approved, da.AccessRequest)
    assert approved.decided_by == "ann@example.com"  # Carol's own approval was refused
    assert "granted" in (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    assert "Access is logged" in capsys.readouterr().out  # the access details, shown


@pytest.mark.parametrize("pairing", ["async", "sync"])
def test_the_approvals_page_runs_in_both_pairings(pairing):
    namespace = run_paired("approvals.md", pairing)
    account = namespace["account"]
    assert isinstance(account, FakeAccount)
    assert account.group_members(namespace["ledger_id"]) == {namespace["erin"]}
    approved = namespace["approved"]
    assert isinstance(approved, da.AccessRequest)
    assert approved.decided_by == "ann@example.com"


def test_notebooks_page_runs(account, tmp_path):
    shown: list[str] = []

    def display(value: object) -> None:  # Jupyter's, in a kernel
        render = getattr(value, "_repr_html_", None)
        shown.append(render() if render else repr(value))

    readers = account.find_group("prod-data-readers")
    account.add_member(readers, account.find_user("bob@example.com"))
    run_page("notebooks.md", {"display": display})
    assert any("prod-data-readers" in html for html in shown)
    assert any("alice@example.com" in html for html in shown)
    assert (tmp_path / "leases.db").exists()


def test_the_cli_page_documents_every_command_and_option():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = _cli.build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert f"### {name}\n" in text, name
        for action in sub._actions:
            for option in action.option_strings:
                if option not in {"-h", "--help", "--config", "--debug"}:
                    assert option in text, f"{name} {option}"
    for code, meaning in _cli.EXIT_CODES.items():
        assert f"| {code} |" in text, meaning


def test_troubleshooting_explains_every_error():
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    errors = [
        name
        for name in da.__all__
        if isinstance(getattr(da, name), type)
        and issubclass(getattr(da, name), da.DatabricksAccessError)
    ]
    assert len(errors) >= 15
    for name in errors:
        assert f"\n## {name}\n" in text, name


def test_the_reference_lists_every_public_name():
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^::: databricks_access\.(\w+)$", text, re.MULTILINE))
    assert listed >= set(da.__all__) - {"__version__"}
    emulator = set(re.findall(r"^::: databricks_access\.testing\.(\w+)$", text, re.MULTILINE))
    assert emulator == set(testing.__all__)


def test_every_page_is_in_the_site_navigation():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.glob("*.md")}
    assert pages
    for page in pages:
        assert f": {page}\n" in config, page
    assert (DOCS / "notebooks" / "quickstart.ipynb").exists()
