"""The command line: `databricks-access` or `python -m databricks_access`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="databricks-access",
        description="Just-in-time access to Databricks through account group membership.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="run a full just-in-time flow against the built-in account emulator",
        description="Grant, list, expire and revoke leases against an emulated account.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from databricks_access._demo import run_demo  # noqa: PLC0415

        return run_demo()
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
