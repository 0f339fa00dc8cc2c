"""Render a benchmark JSON file as the Markdown table of docs/performance.md.

python -m bench --json bench/results/latest.json
python -m bench.report bench/results/latest.json                          # print the table
python -m bench.report bench/results/latest.json --write docs/performance.md  # replace it

`--write` replaces what lies between the page's `<!-- bench-table:start -->` and
`<!-- bench-table:end -->` markers, so the page's table is always a run's JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

START = "<!-- bench-table:start -->"
END = "<!-- bench-table:end -->"


def _figure(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _range(spread: dict[str, Any] | None, suffix: str = "") -> str:
    if not spread:
        return "-"
    if spread["n"] < 2:
        return "1 run"
    return f"{_figure(spread['min'])}-{_figure(spread['max'])}{suffix}, n={spread['n']}"


def table(document: dict[str, Any]) -> str:
    """The rows of a run as one Markdown table: medians, and the range of each side."""
    lines = [
        (
            "| workload | unit | ours (range) | baseline (range) | ratio | ratio range "
            "| requests (ours / baseline) | target | met |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        ratio = row.get("ratio")
        spread = row.get("spread") or {}
        met = {True: "yes", False: "**no**", None: "reference"}[row["met"]]
        lines.append(
            f"| `{row['workload']}` | {row['unit']} "
            f"| {_figure(row['ours'])} ({_range(spread.get('ours'))}) "
            f"| {_figure(row['baseline'])} {row['baseline_name']} "
            f"({_range(spread.get('baseline'))}) "
            f"| {'n/a' if ratio is None else f'{ratio:.3g}x'} "
            f"| {_range(spread.get('ratio'), 'x')} "
            f"| {row['ours_requests']:,} / {row['baseline_requests']:,} | {row['target']} | {met} |"
        )
    return "\n".join(lines)


def write(document: dict[str, Any], page: Path) -> None:
    """Replace the table between the markers of `page` with this run's."""
    text = page.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{page} has no {START} ... {END} markers")
    page.write_text(f"{head}{START}\n{table(document)}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Print the table of the JSON file named on the command line (or write it)."""
    args = sys.argv[1:] if argv is None else argv
    target = None
    if "--write" in args:
        index = args.index("--write")
        target = Path(args[index + 1])
        args = args[:index] + args[index + 2 :]
    path = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    if target is None:
        print(table(document))
    else:
        write(document, target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
