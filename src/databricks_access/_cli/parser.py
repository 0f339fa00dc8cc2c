"""The argument parser: every command, its options and its help."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any, NoReturn

import databricks_access as da
from databricks_access._cli.commands import (
    _cmd_approve,
    _cmd_demo,
    _cmd_deny,
    _cmd_discover,
    _cmd_doctor,
    _cmd_emulator,
    _cmd_extend,
    _cmd_grant,
    _cmd_leases,
    _cmd_probe,
    _cmd_request,
    _cmd_requests,
    _cmd_revoke,
    _cmd_run,
    _cmd_sweep,
)
from databricks_access._cli.errors import _PROG, EXIT_CODES, EXIT_USAGE
from databricks_access._cli.render import _one_line, _shown
from databricks_access._cli.session import _CONFIG_VAR, _ENV_PREFIX

__all__ = ["build_parser"]


_RECORD_KINDS = (
    "memberships",
    "groups",
    "users",
    "service_principals",
    "workspaces",
    "assignments",
    "managers",
    "roles",
    "errors",
)
_LEASE_STATES = tuple(state.value for state in da.LeaseState)
_REQUEST_STATES = tuple(state.value for state in da.RequestState)


_EPILOG = "exit codes:\n" + "\n".join(
    f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()
)
_LEASE_ID_HELP = "the lease's id, as 'grant' and 'leases' print it (lease_...)"
_REQUEST_ID_HELP = "the request's id, as 'request' and 'requests' print it (req_...)"
_APPROVER_HELP = (
    "who decides: an approver's user name (one of the approvers 'request' printed); "
    "never the principal or the requester"
)
_CONFIG_HELP = (
    "the integration's configuration, a TOML or JSON file (default: $"
    f"{_CONFIG_VAR}, else the {_ENV_PREFIX}* variables)"
)


# -- durations ------------------------------------------------------------------------------


def _duration_arg(text: str) -> dt.timedelta:
    """A `--ttl`/`--by` value: `da.parse_duration`'s forms, and never zero."""
    try:
        duration = da.parse_duration(text)
    except da.ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].message) from None
    if not duration:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is zero; a duration must be positive")
    return duration


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line naming the option, and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {_one_line(message)} (see '{self.prog} --help')\n")


def _add_common(parser: argparse.ArgumentParser, *, top: bool, config: bool = True) -> None:
    # On the main parser the defaults are set; on each command they are SUPPRESSed, so
    # `--config` and `--debug` work before or after the command name.
    default: Any = None if top else argparse.SUPPRESS
    if config:
        parser.add_argument("--config", metavar="PATH", default=default, help=_CONFIG_HELP)
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and the library's debug log on stderr",
    )


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _add_listing_format(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        help=f"how to print {what} (default: a table on a terminal, else JSON)",
    )
    _add_json(parser, f"{what} (same as --format json)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `databricks-access`, with every command."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=_PROG,
        description=(
            "Just-in-time access to Databricks through account group membership: grant "
            "time-bound leases, approve requests, revoke on expiry, discover who holds what."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {da.__version__}")
    _add_common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, summary: str, description: str, *, config: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=_EPILOG,
            formatter_class=formatter,
        )
        _add_common(sub, top=False, config=config)
        return sub

    demo = command(
        "demo",
        "run a full just-in-time flow against the built-in account emulator",
        "Grant, list, expire and revoke leases against an emulated account, in this "
        "process, with no configuration and no network.",
        config=False,
    )
    demo.set_defaults(handler=_cmd_demo)

    discover = command(
        "discover",
        "list who holds what: groups, members, roles, workspaces, managers",
        "Read the account once and print one table of the inventory (default: the "
        "memberships). On a terminal the default format is a table, else JSON (the "
        "whole inventory unless --records is given). CSV cells that a spreadsheet "
        "would run as a formula (starting with = + - @) get a leading '.",
    )
    discover.add_argument("--format", choices=("table", "json", "csv"), help="output format")
    discover.add_argument(
        "--records",
        choices=_RECORD_KINDS,
        help="which table to print (table and CSV default: memberships)",
    )
    discover.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    discover.add_argument(
        "--no-members",
        dest="members",
        action="store_false",
        help="skip each group's members (groups are still listed)",
    )
    discover.add_argument(
        "--no-workspaces",
        dest="workspaces",
        action="store_false",
        help="skip workspaces and their permission assignments",
    )
    discover.add_argument(
        "--no-managers", dest="managers", action="store_false", help="skip group managers"
    )
    discover.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="requests in flight at once (1 to 256, default 8)",
    )
    discover.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: when stderr is a terminal)",
    )
    discover.set_defaults(handler=_cmd_discover)

    ttl_help = "how long the access lasts, like 15m, 90m, 2h or 1h30m (from 1m to 12h by default)"
    grant = command(
        "grant",
        "add PRINCIPAL to GROUP for a while, behind a lease",
        "Grant a time-bound membership: the lease is stored before the member is "
        "added, and 'run' or 'sweep' removes the member when it ends. A standing member "
        "stays a member.",
    )
    grant.add_argument("principal", metavar="PRINCIPAL", help="a user name or an application id")
    grant.add_argument("group", metavar="GROUP", help="a group display name or id")
    grant.add_argument(
        "--ttl", type=_duration_arg, required=True, metavar="DURATION", help=ttl_help
    )
    grant.add_argument("--reason", required=True, help="why: a ticket, an incident")
    grant.add_argument(
        "--requester", metavar="NAME", help="who asks (default: $USER, else the config name)"
    )
    _add_json(grant, "the lease")
    grant.set_defaults(handler=_cmd_grant, fields={"approver": "--as"})

    revoke = command(
        "revoke",
        "end a lease now",
        "End a lease early. The member is removed unless the membership is standing or "
        "another lease still holds it. Revoking an ended lease does nothing.",
    )
    revoke.add_argument("lease_id", metavar="LEASE_ID", help=_LEASE_ID_HELP)
    revoke.add_argument(
        "--as", dest="by", metavar="NAME", help="who revokes (default: $USER, else the config name)"
    )
    _add_json(revoke, "the lease")
    revoke.set_defaults(handler=_cmd_revoke, fields={"by": "--as", "lease_id": "LEASE_ID"})

    extend = command(
        "extend",
        "push a lease's end out",
        "Extend an active lease. The total is clamped to the longest lease allowed "
        "from its grant time (12 hours by default); the output says so.",
    )
    extend.add_argument("lease_id", metavar="LEASE_ID", help=_LEASE_ID_HELP)
    extend.add_argument(
        "--by", type=_duration_arg, required=True, metavar="DURATION", help="how much longer"
    )
    _add_json(extend, "the lease")
    extend.set_defaults(handler=_cmd_extend, fields={"lease_id": "LEASE_ID"})

    request = command(
        "request",
        "ask for PRINCIPAL to join GROUP, pending an approver",
        "Submit an access request. Its approvers are resolved now (the resource owners, "
        "else the integration owners) and printed; 'approve' grants it as a lease.",
    )
    request.add_argument("principal", metavar="PRINCIPAL", help="a user name or an application id")
    request.add_argument("group", metavar="GROUP", help="a group display name or id")
    request.add_argument(
        "--ttl", type=_duration_arg, required=True, metavar="DURATION", help=ttl_help
    )
    request.add_argument("--reason", required=True, help="why: a ticket, an incident")
    request.add_argument(
        "--requester", metavar="NAME", help="who asks (default: $USER, else the config name)"
    )
    request.add_argument(
        "--unlocks",
        action="store_true",
        help="record what GROUP unlocks in Unity Catalog on the request, for its approvers "
        "(reads every metastore through the account's workspaces)",
    )
    _add_json(request, "the request")
    request.set_defaults(handler=_cmd_request)

    approve = command(
        "approve",
        "approve a pending request, which grants its lease",
        "Approve an access request and grant it. Refused (exit 1) for the requester "
        "or the principal themselves, and for anyone who is not an approver.",
    )
    approve.add_argument("request_id", metavar="REQUEST_ID", help=_REQUEST_ID_HELP)
    approve.add_argument(
        "--as", dest="approver", required=True, metavar="APPROVER", help=_APPROVER_HELP
    )
    _add_json(approve, "the request and its lease")
    approve.set_defaults(handler=_cmd_approve, fields={"approver": "--as"})

    deny = command(
        "deny",
        "deny a pending request",
        "Deny an access request; only an approver may.",
    )
    deny.add_argument("request_id", metavar="REQUEST_ID", help=_REQUEST_ID_HELP)
    deny.add_argument(
        "--as", dest="approver", required=True, metavar="APPROVER", help=_APPROVER_HELP
    )
    deny.add_argument("--reason", required=True, help="why, shown to the requester")
    _add_json(deny, "the request")
    deny.set_defaults(handler=_cmd_deny, fields={"approver": "--as"})

    leases = command(
        "leases",
        "list stored leases",
        "List the leases in the lease store, oldest first. Reads the store only (it "
        "needs no credentials and creates no file). On a terminal the default format is "
        "a table (STANDING: the member was one before the lease, and stays one; ENDED "
        "instead of EXPIRES once a lease is over), else JSON.",
    )
    leases.add_argument("--principal", help="only this principal (user name, app id or SCIM id)")
    leases.add_argument("--group", help="only this group (display name or id)")
    leases.add_argument(
        "--state",
        action="append",
        choices=_LEASE_STATES,
        help="only leases in this state (repeatable)",
    )
    _add_listing_format(leases, "the leases")
    leases.set_defaults(handler=_cmd_leases)

    requests = command(
        "requests",
        "list access requests",
        "List the access requests in the lease store, oldest first. Reads the store "
        "only. On a terminal the default format is a table, else JSON.",
    )
    requests.add_argument("--principal", help="only this principal")
    requests.add_argument("--group", help="only this group (display name or id)")
    requests.add_argument(
        "--state",
        action="append",
        choices=_REQUEST_STATES,
        help="only requests in this state (repeatable)",
    )
    _add_listing_format(requests, "the requests")
    requests.set_defaults(handler=_cmd_requests)

    sweep = command(
        "sweep",
        "revoke what is due, once",
        "Revoke every lease that has ended, finish work a crash interrupted, retry "
        "failed revocations, expire stale requests. Exit 1 when a revocation failed (it "
        "stays stored and is retried).",
    )
    _add_json(sweep, "the report")
    sweep.set_defaults(handler=_cmd_sweep)

    run = command(
        "run",
        "revoke leases as they end, until stopped",
        "The expiry loop: sleep until the next lease ends, revoke it, repeat; wake at "
        "once when another process grants. Prints each audit event. SIGTERM or Ctrl-C "
        "stops it cleanly after the current sweep (exit 0); a second one stops at once.",
    )
    run.add_argument(
        "--idle",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="the longest sleep between checks (default 30)",
    )
    run.set_defaults(handler=_cmd_run)

    # -- Unity Catalog: `unlocks GROUP` and `explain PRINCIPAL` --
    from databricks_access._cli.catalog import add_commands  # noqa: PLC0415

    add_commands(command, _positive_int)

    doctor = command(
        "doctor",
        "check the configuration, credentials, token, API access and roles",
        "Check the whole chain and say what to fix: configuration, secret store, token, "
        "SCIM access, account admin and group manager rights, lease store. Exit 3 when "
        "the account cannot be reached or authenticated to, 1 for another failure.",
    )
    doctor.add_argument(
        "--probe-report",
        metavar="FILE",
        help="also check the library's defaults against a report of 'probe'",
    )
    doctor.set_defaults(handler=_cmd_doctor)

    probe = command(
        "probe",
        "measure what the account does where the API is undocumented",
        "Create a sandbox group (databricks-access-probe-<random>), add and remove only "
        "the principals named with --principal there, time how reads lag writes, find "
        "the most members one PATCH takes, then delete the group (also after an error "
        "or Ctrl-C). No other group is touched. --plan lists every request and sends "
        "nothing; nothing is sent without --yes. See docs/probe.md.",
    )
    probe.add_argument(
        "--principal",
        action="append",
        required=True,
        metavar="NAME",
        help="a user name or service principal application id to add and remove "
        "(repeatable; at least one)",
    )
    probe.add_argument("--plan", action="store_true", help="list the requests, send nothing")
    probe.add_argument("--yes", action="store_true", help="send the requests")
    probe.add_argument(
        "--rate-limits",
        action="store_true",
        help="also send requests at twice the published rates until the first 429",
    )
    probe.add_argument(
        "--spacing",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="the least time between two requests (0.5 to 60, default 1)",
    )
    probe.add_argument(
        "--max-lag",
        type=_positive_float,
        default=900.0,
        metavar="SECONDS",
        help="how long to wait for a write to show in reads (default 900)",
    )
    probe.add_argument("--output", metavar="FILE", help="also write the report (JSON) to FILE")
    _add_json(probe, "the report")
    probe.set_defaults(
        handler=_cmd_probe,
        fields={"principals": "--principal", "spacing": "--spacing", "max_lag": "--max-lag"},
    )
    emulator = command(
        "emulator",
        "serve an emulated account on 127.0.0.1, to try the other commands on",
        "Serve an emulated Databricks account (users, groups, a service principal) on "
        "127.0.0.1 until Ctrl-C or SIGTERM, write a configuration that reaches it (its "
        "service principal's secret in a file readable by you only), and print how to use "
        "it from another terminal. Nothing leaves this machine.",
        config=False,
    )
    emulator.add_argument(
        "--port", type=_port, default=0, help="the port on 127.0.0.1 (default: a free one)"
    )
    emulator.add_argument(
        "--dir",
        metavar="DIR",
        help="an existing, empty directory for the configuration and the lease store, kept "
        "afterwards (default: a temporary one, removed when the emulator stops)",
    )
    emulator.set_defaults(handler=_cmd_emulator)
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0 to 65535)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and below 86400")
    return value
