"""Every code block of the docs and the README passes `mypy --strict`.

The blocks of a page run in order in one namespace (see `test_docs.py`), so each page is
checked as one module: its ```python and ```py blocks, in the order they appear.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"```(?:python|py)\n(.*?)```", re.DOTALL)
# Notebooks (Jupyter's and Databricks') provide `display`; everything else a block uses
# comes from the page itself.
PRELUDE = {"notebooks.md": "def display(*objs: object) -> None: ...\n"}
# The optional packages a page shows (pandas is not a dependency of anything here).
CONFIG = """\
[mypy]
strict = True
python_version = 3.10
warn_unreachable = True
enable_error_code = ignore-without-code, truthy-bool

[mypy-pandas.*]
ignore_missing_imports = True
"""


def page_module(page: Path) -> str:
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    return PRELUDE.get(page.name, "") + "\n".join(blocks)


def test_the_pages_have_code_to_check():
    with_code = [page.name for page in PAGES if BLOCK.search(page.read_text(encoding="utf-8"))]
    assert {"README.md", "getting-started.md", "integration.md", "notebooks.md"} <= set(with_code)


def test_every_docs_code_block_passes_mypy_strict(tmp_path):
    modules = []
    for page in PAGES:
        source = page_module(page)
        if not source.strip():
            continue
        module = tmp_path / f"{page.stem.replace('-', '_').lower()}_page.py"
        module.write_text(source, encoding="utf-8")
        modules.append(module)
    (tmp_path / "mypy.ini").write_text(CONFIG, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *map(str, modules),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"mypy --strict on the docs' code:\n{result.stdout}{result.stderr}")
