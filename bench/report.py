"""Render a benchmark JSON file as the Markdown table of docs/performance.md.

python -m bench --json bench/results/latest.json
python -m bench.report bench/results/latest.json                          # print the table
python -m bench.report bench/results/latest.json --write docs/performance.md  # replace it

`--write` replaces what lies between the page's `<!-- bench-table:start -->` and
`<!-- bench-table:end -->` markers, so the page's table is always a run's JSON.

python -m bench --only import_time --json /tmp/run.json
python -m bench.report /tmp/run.json --write docs/performance.md --merge

`--merge` replaces only the rows of the workloads in the JSON file and keeps the page's
other rows as they are (a new workload goes after the row registered before it).
"""

from __future__ import annotations

import json
import re
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


def _workload(line: str) -> str | None:
    match = re.match(r"\| `([^`]+)` \|", line)
    return match.group(1) if match else None


def _registered() -> list[str]:
    """The registered workloads' names, in the table's order."""
    from bench.harness import load_workloads  # noqa: PLC0415 - imports every workload module

    return [work.name for work in load_workloads()]


def merge(document: dict[str, Any], page: Path) -> None:
    """Replace the page's rows of this run's workloads, keeping every other row."""
    text = page.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    body, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{page} has no {START} ... {END} markers")
    lines = [line for line in body.strip("\n").split("\n") if line]
    new = table(document).split("\n")
    rows = {_workload(line): line for line in new[2:]}
    merged = lines[:2] or new[:2]
    merged += [rows.pop(name, line) if (name := _workload(line)) else line for line in lines[2:]]
    if rows:  # workloads the page did not have yet: after the row registered before each
        order = _registered()
        for row in document["rows"]:
            name = row["workload"]
            if name not in rows:
                continue
            names = [_workload(line) for line in merged]
            before = order[: order.index(name)] if name in order else None
            if before is None:
                at = len(merged)
            else:
                present = [n for n in before if n in names]
                at = names.index(present[-1]) + 1 if present else 2
            merged.insert(at, rows.pop(name))
    body = "\n".join(merged)
    page.write_text(f"{head}{START}\n{body}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Print the table of the JSON file named on the command line (or write it)."""
    args = sys.argv[1:] if argv is None else argv
    target = None
    merging = "--merge" in args
    args = [arg for arg in args if arg != "--merge"]
    if "--write" in args:
        index = args.index("--write")
        target = Path(args[index + 1])
        args = args[:index] + args[index + 2 :]
    path = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    if target is None:
        print(table(document))
    elif merging:
        merge(document, target)
    else:
        write(document, target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
