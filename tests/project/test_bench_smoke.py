"""`python -m bench --quick` runs every workload and writes a row of numbers for each.

No timing is asserted: only that each row is there, with numbers and request counts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytest.importorskip("databricks.sdk")


def _registered() -> list[str]:
    code = "from bench.harness import load_workloads; print(' '.join(w.name for w in load_workloads()))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return out.split()


def test_quick_run_writes_every_row(tmp_path):
    target = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(target)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    document = json.loads(target.read_text(encoding="utf-8"))
    rows = {row["workload"]: row for row in document["rows"]}
    names = _registered()
    assert {"import_time", "get_overhead", "get_loopback", "token_stampede", "grant_many"} <= set(
        names
    )
    assert list(rows) == names
    for name, row in rows.items():
        for key in ("ours", "baseline", "ratio"):
            assert isinstance(row[key], float), (name, key)
            assert math.isfinite(row[key]) and row[key] >= 0, (name, key)
        for key in ("ours_requests", "baseline_requests"):
            assert isinstance(row[key], int) and row[key] >= 0, (name, key)
        assert row["unit"] and row["baseline_name"] and row["title"]
        assert name in run.stdout  # the table
    # Request counts come from the emulator's log.
    assert rows["get_overhead"]["ours_requests"] == rows["get_overhead"]["baseline_requests"] > 0
    assert rows["token_stampede"]["ours"] == 1
    assert rows["grant_many"]["ours_requests"] < rows["grant_many"]["baseline_requests"]
    assert document["settings"] == {"quick": True, "repeat": None}
    assert document["environment"]["databricks_sdk"]


def test_unknown_workloads_are_refused():
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "unknown workload(s): nope" in run.stderr
