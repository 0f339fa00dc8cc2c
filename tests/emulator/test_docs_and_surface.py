"""The docs page runs, the docstring examples run, and the public surface is pinned."""

from __future__ import annotations

import doctest
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

from databricks_access import testing

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"
PUBLIC = [
    "Behaviour",
    "CatalogSeedSummary",
    "ConnectionFault",
    "DropConnection",
    "EmptyPage",
    "Endpoint",
    "FakeAccount",
    "FakeRequest",
    "FakeResponse",
    "FakeTransport",
    "Fault",
    "FaultPlan",
    "HoldConnection",
    "Interceptor",
    "MemberAnswer",
    "Metastore",
    "OperationClass",
    "PassThrough",
    "RequestRecord",
    "RouteMatch",
    "SecurableType",
    "SeedSummary",
    "ServedAccount",
    "ServerRateLimits",
    "ServicePrincipalCredentials",
    "StaleReads",
]


def test_docs_examples_run_in_order():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "docs_testing"}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    globs = dict(vars(testing))
    found = list(finder.find(testing, "databricks_access.testing", globs=globs))
    for name in testing.__all__:
        found += finder.find(
            getattr(testing, name), f"databricks_access.testing.{name}", module=False, globs=globs
        )
    examples = [test for test in found if test.examples]
    assert len(examples) >= 5
    for test in examples:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_public_surface_is_pinned_sorted_and_documented():
    assert testing.__all__ == PUBLIC
    for name in testing.__all__:
        value = getattr(testing, name)
        # Type aliases such as `Interceptor` (a Callable) pass isclass on Python 3.10.
        if inspect.isclass(value) and typing.get_origin(value) is None:
            assert value.__module__ == "databricks_access.testing", name
            assert inspect.getdoc(value), name
            for attr, member in vars(value).items():
                if attr.startswith("_") or not (callable(member) or isinstance(member, property)):
                    continue
                assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_emulator_imports_nothing_of_the_client():
    code = (
        "import sys, databricks_access.testing\n"
        "print(' '.join(m for m in sys.modules if m.startswith('databricks_access')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    ours = set(out.split())
    assert all(
        m == "databricks_access" or m.startswith("databricks_access.testing") for m in ours
    ), ours
    third_party = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, databricks_access.testing; print(' '.join(sys.modules))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    roots = {m.split(".")[0] for m in third_party} - set(sys.stdlib_module_names)
    assert "cattrs" not in roots
    assert "databricks" not in roots
