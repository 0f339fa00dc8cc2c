"""The package's shape: a small top level, modules of one idea, the map in the docs.

`docs/internals.md` is the one-page package map; this keeps it and the folders in step,
and keeps the limits the layout promises: at most 22 entries at the package top, no
module over 900 lines, no effect named by a string, and each layer importing only the
layers below it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "databricks_access"
MAP = ROOT / "docs" / "internals.md"

# Each private subpackage and the subpackages it may import (besides the top-level
# foundation modules). The order is the layer picture of docs/internals.md, bottom up.
ALLOWED = {
    "_util": set(),
    "_secrets": {"_util"},
    "_account": {"_util", "_secrets"},
    "_leases": {"_util", "_account"},
    "_stores": {"_util", "_account", "_leases"},
    "_catalog": {"_util", "_secrets", "_account", "_leases", "_discovery"},
    "_integration": {"_util", "_secrets", "_account", "_leases", "_stores", "_catalog"},
    "_discovery": {"_util", "_account", "_leases", "_catalog"},
    "_diagnose": {"_util", "_secrets", "_account", "_leases", "_catalog"},
    "_cli": {
        "_util",
        "_secrets",
        "_account",
        "_leases",
        "_stores",
        "_catalog",
        "_integration",
        "_discovery",
        "_diagnose",
        "testing",
    },
}


def entries() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_top_level_is_small():
    assert len(entries()) <= 22, entries()


def test_no_module_is_over_900_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := len(p.read_text("utf-8").splitlines())) > 900
    }
    assert long == {}


def test_no_effect_is_named_by_a_string():
    named = re.compile(r"""\b_?(store|effect|call)\(\s*["'][a-z_]+["']""")
    found = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in modules()
        if "testing" not in p.relative_to(PACKAGE).parts  # the emulator's RPC names methods
        for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
        if named.search(line) or re.search(r"getattr\(self\.store, ", line)
    ]
    assert found == []


def imported_layers(path: Path) -> set[str]:
    layers: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "databricks_access" and len(parts) > 1:
                layers.add(parts[1])
    return layers


def test_each_layer_imports_only_the_layers_below_it():
    wrong = {}
    for layer, allowed in ALLOWED.items():
        folder = PACKAGE / layer
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.py"):
            above = {
                name
                for name in imported_layers(path)
                if (PACKAGE / name).is_dir() and name != layer and name not in allowed
            }
            if above:
                wrong[str(path.relative_to(PACKAGE))] = sorted(above)
    assert wrong == {}


def test_the_package_map_names_every_folder_and_module():
    text = MAP.read_text("utf-8")
    missing = [name for name in entries() if name != "py.typed" and name not in text]
    assert missing == []
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name.startswith("_")):
        for module in folder.rglob("*.py"):
            if module.name != "__init__.py":
                assert module.stem in text, f"{module.relative_to(PACKAGE)} is not on the map"
