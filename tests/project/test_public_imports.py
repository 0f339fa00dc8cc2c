"""Tests, benchmarks and docs reach public names through the public package only.

A public name (in `databricks_access.__all__` or `databricks_access.testing.__all__`)
imported through a private module path (`from databricks_access._leases.values import Lease`,
`import databricks_access._errors as errors; errors.ConfigError`) ties that code to the
package's private layout. Private names (helpers a test checks on their own) may still
be imported from their private modules.

Python files are read with `ast`; fenced code blocks of Markdown files and code cells
of notebooks are read with `ast` too, or line by line with a regular expression when a
block is not Python.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import textwrap
from pathlib import Path

import pytest

import databricks_access
import databricks_access.testing

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = frozenset(databricks_access.__all__) | frozenset(databricks_access.testing.__all__)
FENCE = re.compile(r"^([ \t]*)(```|~~~)[^\n]*\n(.*?)^\1\2[ \t]*$", re.DOTALL | re.MULTILINE)
# Fallback for blocks that are not Python (shell lines, `>>>` sessions that do not parse).
FROM_LINE = re.compile(
    r"from\s+(databricks_access(?:\.testing)?\._[\w.]*)\s+import\s+\(?([\w\s,]+)\)?"
)
IMPORT_LINE = re.compile(r"import\s+(databricks_access(?:\.testing)?\._[\w.]*)")


def is_private_path(module: str) -> bool:
    """Whether a dotted module path goes through a private part of the package."""
    parts = module.split(".")
    return parts[0] == "databricks_access" and any(part.startswith("_") for part in parts[1:])


def is_module(dotted_path: str) -> bool:
    """Whether `dotted_path` names a module of the package (not a name inside one)."""
    try:
        return importlib.util.find_spec(dotted_path) is not None
    except (ImportError, ValueError):
        return False


def dotted(node: ast.expr) -> str | None:
    """`a.b.c` for an attribute chain on a plain name, else None."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names.append(node.id)
    return ".".join(reversed(names))


def python_violations(source: str) -> list[tuple[int, str]]:
    """(line, message) for each public name reached through a private path in `source`."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    # Local names bound to a module object: name -> dotted module path.
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    modules[head] = head
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if is_module(full):
                    modules[alias.asname or alias.name] = full
                elif is_private_path(node.module) and alias.name in PUBLIC:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
                elif alias.name.startswith("_"):
                    modules[alias.asname or alias.name] = full
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            # Code run in a child process (`python -c ...`) is read like the rest.
            if "databricks_access" in node.value and "import" in node.value:
                found.extend(
                    (node.lineno + line - 1, what) for line, what in block_violations(node.value)
                )
            continue
        if not isinstance(node, ast.Attribute) or node.attr not in PUBLIC:
            continue
        chain = dotted(node.value)
        if chain is None:
            continue
        head, _, rest = chain.partition(".")
        if head not in modules:
            continue
        module = modules[head] + (f".{rest}" if rest else "")
        if is_private_path(module):
            found.append((node.lineno, f"{module}.{node.attr}"))
    return sorted(set(found))


def text_violations(text: str) -> list[tuple[int, str]]:
    """The regular-expression reading of a block that is not Python (line-based)."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in FROM_LINE.finditer(line):
            names = [name.strip() for name in match.group(2).split(",")]
            found.extend(
                (number, f"from {match.group(1)} import {name}")
                for name in names
                if name.split(" as ")[0].strip() in PUBLIC
            )
        found.extend(
            (number, f"import {match.group(1)} (a private module, as a whole)")
            for match in IMPORT_LINE.finditer(line)
            if match.group(1).rpartition(".")[2] in PUBLIC
        )
    return found


def block_violations(block: str) -> list[tuple[int, str]]:
    """Violations in one code block: Python if it parses (prompts removed), else text."""
    lines = textwrap.dedent(block).splitlines()
    if any(line.lstrip().startswith(">>>") for line in lines):
        # A console session: keep the code, blank out the output, so line numbers hold.
        lines = [
            line.lstrip()[4:] if line.lstrip().startswith((">>> ", "... ")) else ""
            for line in lines
        ]
    try:
        return python_violations("\n".join(lines))
    except SyntaxError:
        return text_violations(block)


def markdown_violations(text: str) -> list[tuple[int, str]]:
    """Violations in the fenced code blocks of a Markdown document (document lines)."""
    found: list[tuple[int, str]] = []
    for match in FENCE.finditer(text):
        first = text.count("\n", 0, match.start(3)) + 1
        found.extend((first + line - 1, what) for line, what in block_violations(match.group(3)))
    return found


def notebook_violations(text: str) -> list[tuple[str, str]]:
    """Violations in the code cells of a notebook, as ("cell N line M", message)."""
    found: list[tuple[str, str]] = []
    for index, cell in enumerate(json.loads(text).get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"]
        source = "".join(source) if isinstance(source, list) else source
        # IPython magics and shell escapes are not Python: blank them out.
        code = "\n".join(
            "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
        )
        found.extend((f"cell {index} line {line}", what) for line, what in block_violations(code))
    return found


def shown(path: Path) -> Path:
    """How a file is named in a message: from the project's root when it is inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def violations_in(path: Path) -> list[str]:
    """`path:line: message` for each public name imported through a private path."""
    text = path.read_text(encoding="utf-8")
    shown_as = shown(path)
    if path.suffix == ".py":
        places: list[tuple[object, str]] = list(python_violations(text))
    elif path.suffix == ".md":
        places = list(markdown_violations(text))
    elif path.suffix == ".ipynb":
        places = list(notebook_violations(text))
    else:
        return []
    return [f"{shown_as}:{where}: {what}" for where, what in places]


def checked_files() -> list[Path]:
    """Every file this test reads: tests, bench, docs, examples and the README."""
    files = [ROOT / "README.md"]
    for folder in ("tests", "bench", "docs", "examples"):
        for suffix in ("*.py", "*.md", "*.ipynb"):
            files.extend((ROOT / folder).rglob(suffix))
    # This file holds bad imports on purpose, as data for the checker's own tests.
    return sorted(path for path in set(files) if path.is_file() and path != Path(__file__))


def test_tests_bench_and_docs_import_public_names_from_the_public_package():
    files = checked_files()
    assert ROOT / "README.md" in files
    assert any(path.suffix == ".ipynb" for path in files)
    assert any(path.parts[-2:] == ("tests", "conftest.py") for path in files)
    problems = [problem for path in files for problem in violations_in(path)]
    assert not problems, "import these from databricks_access instead:\n" + "\n".join(problems)


# The checker itself, on bad and good code.


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from databricks_access._leases.values import Lease\n", [1]),
        (
            "import os\nfrom databricks_access._leases.values import (\n    TERMINAL_STATES,\n    Lease,\n)\n",
            [2],
        ),
        ("from databricks_access.testing._oauth import ServicePrincipalCredentials\n", [1]),
        ("import databricks_access._errors as e\n\nraise e.ConfigError('x')\n", [3]),
        ("from databricks_access import _errors\n\nx = _errors.LeaseError\n", [3]),
        ("import databricks_access._errors\n\nx = databricks_access._errors.LeaseError\n", [3]),
        ("def f():\n    from databricks_access._stores.sqlite import SqliteLeaseStore\n", [2]),
        # Private names through private paths, public names through public ones: fine.
        ("from databricks_access._leases.values import TERMINAL_STATES\n", []),
        ("from databricks_access import _cli\n\n_cli.main([])\n", []),
        ("from databricks_access import Lease, SqliteLeaseStore\n", []),
        ("import databricks_access as da\n\nda.Lease\n", []),
        ("from databricks_access.testing import FakeAccount\n", []),
        ("import databricks_access._stores.postgres as module\n\nmodule._MIGRATIONS\n", []),
        # Code in a string, run in a child process.
        ('code = """\nimport sys\nfrom databricks_access._leases.values import Lease\n"""\n', [3]),
        ('run(["python", "-c", "import databricks_access._leases.values as m; m.Lease"])\n', [1]),
        ('run(["python", "-c", "import databricks_access._util.html"])\n', []),
    ],
)
def test_the_checker_finds_public_names_on_private_paths(source, expected):
    assert [line for line, _ in python_violations(source)] == expected


def test_the_checker_reads_markdown_blocks_and_names_the_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "```python\n"
        "import databricks_access as da\n"
        "from databricks_access._stores.sqlite import SqliteLeaseStore\n"
        "```\n\n"
        "```pycon\n"
        ">>> from databricks_access._errors import ConfigError\n"
        "```\n\n"
        "```bash\n"
        'python -c "from databricks_access._leases.values import Lease, TERMINAL_STATES"\n'
        "```\n\n"
        "```python\n"
        "from databricks_access._stores.rows import micros\n"
        "```\n",
        encoding="utf-8",
    )
    problems = violations_in(page)
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        f"{shown(page)}:5",
        f"{shown(page)}:9",
        f"{shown(page)}:13",
    ]
    assert "SqliteLeaseStore" in problems[0]
    assert "ConfigError" in problems[1]
    assert problems[2].endswith("import Lease")


def test_the_checker_reads_python_files_and_notebooks(tmp_path):
    module = tmp_path / "bad_test.py"
    module.write_text(
        '"""A test."""\n\nfrom databricks_access._stores.memory import MemoryLeaseStore\n',
        encoding="utf-8",
    )
    assert violations_in(module) == [
        f"{shown(module)}:3: from databricks_access._stores.memory import MemoryLeaseStore"
    ]
    notebook = tmp_path / "bad.ipynb"
    cells = [
        {"cell_type": "markdown", "source": ["from databricks_access._leases.values import Lease"]},
        {"cell_type": "code", "source": ["%pip install x\n", "import databricks_access as da"]},
        {
            "cell_type": "code",
            "source": ["x = 1\n", "from databricks_access._leases.values import Lease"],
        },
    ]
    notebook.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    assert violations_in(notebook) == [
        f"{shown(notebook)}:cell 2 line 2: from databricks_access._leases.values import Lease"
    ]
