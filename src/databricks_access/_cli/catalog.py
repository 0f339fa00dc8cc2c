"""The command line's Unity Catalog commands: `unlocks GROUP` and `explain PRINCIPAL`.

Both read the account directory and every metastore once (through the workspaces; hosts
from the configuration's `workspace_hosts` where the workspace list cannot give them)
and print one row per privilege and securable: a table on a terminal, else JSON;
`--format csv` for a spreadsheet (formula-like cells get a leading `'`). Names in grants
that match no account principal, and what could not be read, are warned about on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from databricks_access._catalog.reader import CatalogReader
from databricks_access._catalog.reports import COLUMNS, AccessExplanation, UnlocksReport
from databricks_access._catalog.summary import summary_of

if TYPE_CHECKING:
    from databricks_access._cli.session import _Session
    from databricks_access._leases.values import AccessRequest

__all__ = ["add_commands", "with_unlocks"]

CommandFactory = Callable[[str, str, str], argparse.ArgumentParser]


def _add_options(parser: argparse.ArgumentParser, positive_int: Callable[[str], int]) -> None:
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        help="output format (default: a table on a terminal, else JSON)",
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="read tables and their grants too (one listing per schema, one read per table)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=8,
        metavar="N",
        help="requests in flight at once per workspace (1 to 64, default 8)",
    )


def add_commands(command: CommandFactory, positive_int: Callable[[str], int]) -> None:
    """Register `unlocks` and `explain` with the command line's `command` factory."""
    unlocks = command(
        "unlocks",
        "what a group unlocks in Unity Catalog, for approvers and auditors",
        "Every Unity Catalog privilege membership of GROUP confers: the grants to the "
        "group and to every group containing it, on each metastore, catalog, schema (and "
        "table, with --tables), catalog and schema grants inherited below them. Reads the "
        "account and each metastore once, through the workspaces the service principal "
        "is assigned to.",
    )
    unlocks.add_argument("group", metavar="GROUP", help="the group's display name or id")
    _add_options(unlocks, positive_int)
    unlocks.set_defaults(handler=_cmd_unlocks)

    explain = command(
        "explain",
        "every Unity Catalog privilege a principal holds, and the groups it comes through",
        "Every Unity Catalog privilege PRINCIPAL holds (a user name, a service "
        "principal's application id, a group name, or an id), with the chain of groups "
        "each one flows through.",
    )
    explain.add_argument("principal", metavar="PRINCIPAL", help="who to explain")
    _add_options(explain, positive_int)
    explain.set_defaults(handler=_cmd_explain)


def _reader(args: argparse.Namespace, session: _Session) -> CatalogReader:
    return session.catalog_reader(
        include_tables=bool(args.tables), concurrency=int(args.concurrency)
    )


def _print(args: argparse.Namespace, report: UnlocksReport | AccessExplanation) -> int:
    from databricks_access._cli import commands, errors, render  # noqa: PLC0415 - the printers

    output_format = args.format or ("table" if commands._isatty() else "json")
    if output_format == "json":
        render._write(report.to_json(indent=2, ensure_ascii=False))
    elif output_format == "csv":
        sys.stdout.write(report.to_csv())
    else:
        rows = [{k: r[k] for k in COLUMNS} for r in report.records()]
        render._write(f"{report.summary()}\n\n")  # a blank line, then the rows
        render._write(render._table(rows, COLUMNS))
    for name in report.unmatched:
        shown = name.name or f"(deleted principal {name.principal_id})"
        render._write(
            f"warning: grants name {shown!r}, which matches no account principal "
            f"({name.grants} grant(s), e.g. on {name.example})",
            sys.stderr,
        )
    for error in report.errors:
        render._write(
            f"warning: could not read {error.stage} {error.item}: {error.message}", sys.stderr
        )
    return errors.EXIT_OK


def _cmd_unlocks(args: argparse.Namespace, session: _Session) -> int:
    return _print(args, _reader(args, session).unlocks(args.group))


def _cmd_explain(args: argparse.Namespace, session: _Session) -> int:
    return _print(args, _reader(args, session).explain_access(args.principal))


def with_unlocks(
    rows: list[dict[str, object]], requests: list[AccessRequest]
) -> list[dict[str, object]]:
    """Request table rows with an `unlocks` column, when any request recorded a summary."""
    summaries = [summary_of(req.access_details) for req in requests]
    if not any(summaries):
        return rows
    return [{**row, "unlocks": text or ""} for row, text in zip(rows, summaries, strict=True)]
