"""The type checker's view of the public API: `mypy --strict` on `tests/typing/`.

The files there are never run; they hold `assert_type` checks and the mismatched uses
that must not type-check, each marked `# type: ignore[<code>]`: under `--strict`
(`warn_unused_ignores`), an ignore that is no longer needed is itself an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mypy")


def test_the_typing_examples_type_check(tmp_path):
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            # One cache per run: runs on several Pythons at once must not share one.
            os.environ.get("MYPY_CACHE_DIR") or str(ROOT / ".mypy_cache"),
            "--no-error-summary",
            str(ROOT / "tests" / "typing"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (ROOT / "tests" / "typing" / "requests_pairing.py").exists()
    assert (ROOT / "tests" / "typing" / "api.py").exists()
