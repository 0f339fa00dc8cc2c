"""Render a benchmark JSON file as the Markdown table of docs/performance.md.

python -m bench --json bench/results/latest.json
python -m bench.report bench/results/latest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _figure(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(document: dict[str, Any]) -> str:
    """The rows of a run as one Markdown table."""
    lines = [
        "| workload | unit | ours | baseline | ratio | requests (ours / baseline) | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        ratio = row.get("ratio")
        met = {True: "yes", False: "**no**", None: "reference"}[row["met"]]
        lines.append(
            f"| `{row['workload']}` | {row['unit']} | {_figure(row['ours'])} "
            f"| {_figure(row['baseline'])} ({row['baseline_name']}) "
            f"| {'n/a' if ratio is None else f'{ratio:.3g}x'} "
            f"| {row['ours_requests']:,} / {row['baseline_requests']:,} | {row['target']} | {met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table of the JSON file named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    print(table(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
