"""docs/unity-catalog.md: its example runs and prints what the page says it prints."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "unity-catalog.md"


def test_the_example_runs_and_prints_what_it_says(capsys):
    text = PAGE.read_text(encoding="utf-8")
    example, approval = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    namespace = {"__name__": "__docs__"}
    exec(compile(example, "docs/unity-catalog.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "SELECT, USE_CATALOG on catalog sales (+1 below); USE_SCHEMA on schema sales.raw"
    )
    assert "sales.raw USE_SCHEMA juniors () False" in out
    assert "sales.raw SELECT analysts ('analysts',) True" in out
    assert out[-1] == "('analysts', 'juniors')"
    # The approval: the approver reads the summary on the request, then the grant lands.
    exec(compile(approval, "docs/unity-catalog.md", "exec"), namespace)  # noqa: S102
    details, decided = capsys.readouterr().out.splitlines()
    assert details == (
        "Unlocks (Unity Catalog): SELECT, USE_CATALOG on catalog sales (+1 below); "
        "USE_SCHEMA on schema sales.raw"
    )
    assert decided == "approved True"
    fake = namespace["fake"]
    assert namespace["carol"] in fake.group_members(namespace["juniors"])


def test_the_page_is_in_the_site_navigation():
    nav = (PAGE.parents[1] / "mkdocs.yml").read_text(encoding="utf-8")
    assert "unity-catalog.md" in nav


def test_every_path_the_code_reads_is_documented():
    text = PAGE.read_text(encoding="utf-8")
    for path in (
        "/oidc/v1/token",
        "/api/2.1/unity-catalog/current-metastore-assignment",
        "/api/2.1/unity-catalog/metastore_summary",
        "/api/2.1/unity-catalog/catalogs",
        "/api/2.1/unity-catalog/schemas",
        "/api/2.1/unity-catalog/tables",
        "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}",
        "privilege_assignments",
        "next_page_token",
    ):
        assert path in text, path
