"""`python -m bench`: run the workloads, print one table, write JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.harness import (
    RESULTS,
    Row,
    Settings,
    environment,
    isolate_sdk_environment,
    load_workloads,
    run,
    table,
)


def main(argv: list[str] | None = None) -> int:
    workloads = load_workloads()
    names = [w.name for w in workloads]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="databricks_access against the official databricks-sdk, on the account emulator.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and one repetition (a smoke test)"
    )
    parser.add_argument(
        "--only", metavar="NAME[,NAME]", help=f"run only these workloads: {', '.join(names)}"
    )
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="repetitions of each timed measurement (median)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS,
        metavar="PATH",
        help=f"where to write the results (default {RESULTS})",
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(names)}")
        workloads = [w for w in workloads if w.name in wanted]

    isolate_sdk_environment()
    settings = Settings(quick=args.quick, repeat=args.repeat)
    rows: list[Row] = []
    for work in workloads:
        print(f"running {work.name}: {work.title} ...", file=sys.stderr, flush=True)
        rows.append(run(work, settings))

    print(table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "environment": environment(),
        "settings": {"quick": settings.quick, "repeat": settings.repeat},
        "rows": [row.as_json() for row in rows],
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
