"""The quickstart notebook runs, cell by cell, in a real Jupyter kernel.

The kernel is this interpreter (`sys.executable -m ipykernel_launcher`), named through a
kernelspec written for the test, so it imports the package exactly as the tests do (in
CI: the wheel installed in a fresh virtual environment), whatever other kernels the
machine has.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Before jupyter_core is imported: use the platform's directories and skip its
# deprecation warning about them (warnings are errors in this suite).
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "quickstart.ipynb"
KERNEL = "databricks-access-tests"


def kernelspec(root: Path) -> Path:
    """A kernelspec running this interpreter; returns the directory to add to JUPYTER_PATH."""
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "databricks_access tests",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    return root


def test_the_quickstart_notebook_runs_in_a_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernelspec(tmp_path / "jupyter")))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=60,
        startup_timeout=60,
        allow_errors=False,  # a cell that raises fails the test, naming the cell
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    outputs = {cell.id: cell.outputs for cell in notebook.cells if cell.cell_type == "code"}
    errors = [o for cell in outputs.values() for o in cell if o.output_type == "error"]
    assert errors == []
    html = [
        o["data"]["text/html"]
        for cell in outputs.values()
        for o in cell
        if o.output_type == "execute_result" and "text/html" in o.get("data", {})
    ]
    # The inventory, the lease, the group and the ended lease render as HTML tables.
    assert len(html) >= 4
    assert any("prod-data-readers" in table for table in html)
    assert any("revoked" in table for table in html)
    # What the group unlocks, and the chain of groups that gives Bob the same.
    assert any("USE_CATALOG" in table and "prod.finance" in table for table in html)
    assert any("analysts" in table and "SELECT" in table for table in html)
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-2]
    assert "'granted'" in last.outputs[0]["data"]["text/plain"]
