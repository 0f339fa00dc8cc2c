"""A tracker in its own process, for crash and multi-process tests.

Usage: python tracker_child.py '<json spec>'. The spec names the emulator URL and
credentials, the SQLite file (`db`) or another store (`"store": "postgres:<url>"`, with
an optional `"schema"`), the injected time, and one action; the environment may arm a
crash point (DATABRICKS_ACCESS_CRASH_AT).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading

import databricks_access as da
from databricks_access import SqliteLeaseStore


def _open_store(spec):
    """The store the spec names: `"store": "postgres:<url>"`, else the SQLite file `db`."""
    kind, _, target = spec.get("store", "").partition(":")
    if kind == "postgres":
        from databricks_access import PostgresLeaseStore  # noqa: PLC0415

        return PostgresLeaseStore(target, schema=spec.get("schema", "databricks_access"))
    return SqliteLeaseStore(spec["db"])


def main() -> int:
    spec = json.loads(sys.argv[1])
    if spec.get("trace"):
        _trace_crash_points()
    clock = da.ManualClock(dt.datetime.fromisoformat(spec["now"]))
    cfg = da.AccountConfig(
        host=spec["url"],
        account_id=spec["account_id"],
        allow_custom_host=True,
        allow_insecure_http=True,
    )
    secrets = da.StaticSecretStore(spec["client_id"], spec["client_secret"])
    with (
        # No client-side throttle: the served emulator has no limits here, and the
        # throttle's waits would move this process's manual clock, which only the
        # test's own steps may move.
        da.AccountClient(cfg, secrets=secrets, clock=clock, rate_limits=None) as client,
        _open_store(spec) as store,
    ):
        tracker = da.LeaseTracker(
            da.MembershipManager(client), store=store, clock=clock, owner=spec["owner"]
        )
        action = spec["action"]
        if action == "grant":
            lease = tracker.grant(
                da.PrincipalRef("user", spec["user"]),
                spec["group"],
                ttl=dt.timedelta(seconds=spec["ttl"]),
                requester="crash-test",
                reason="crash-test",
            )
            print(lease.id)
        elif action == "sweep":
            # Small batches interleave with another sweeping process; stop when a sweep
            # finds nothing left that this process could take.
            ended = 0
            while swept := tracker.sweep(limit=spec.get("batch", 1000)).ended:
                ended += swept
            print(f"ended {ended}", file=sys.stderr)  # how the work was shared out
        elif action == "extend":
            tracker.extend(spec["lease_id"], by=dt.timedelta(seconds=spec["by"]))
        elif action == "revoke":
            tracker.revoke(spec["lease_id"])
        elif action == "approve":
            approved = _requests(spec, client, tracker).approve(
                spec["request_id"], approver=spec["approver"]
            )
            print(approved.lease_id, flush=True)
        elif action == "sequence":
            _sequence(spec, client, tracker, clock)
        else:
            raise SystemExit(f"unknown action {action}")
    return 0


# -- additions for the crash matrix (tests/reliability/test_crash_matrix.py) ---------------

_STEP = [-1]  # the sequence step running now, for traces


def _requests(spec, client, tracker):
    """AccessRequests whose approvers are the spec's integration owners."""
    from databricks_access import AccessRequests  # noqa: PLC0415

    config = da.IntegrationConfig(
        name="crash-matrix",
        accounts_url=spec["url"],
        account_id=spec["account_id"],
        integration_owners=spec["owners"],
        allow_custom_host=True,
        allow_insecure_http=True,
    )
    return AccessRequests(tracker, da.Integration(config, client=client, timeout=None))


def _trace_crash_points() -> None:
    """Print each crash point reached, with its step, instead of crashing."""
    import databricks_access._integration.request_flows as requests_module  # noqa: PLC0415
    import databricks_access._leases.base as base_module  # noqa: PLC0415
    import databricks_access._leases.sweep as sweep_module  # noqa: PLC0415
    import databricks_access._leases.tracker_flows as flows_module  # noqa: PLC0415

    lock = threading.Lock()

    def trace(name: str) -> None:
        # Points are reached on several threads at once (a sweep's groups run
        # concurrently): one write per line, under a lock, so two never share a line.
        with lock:
            sys.stdout.write(f"point {_STEP[0]} {name}\n")
            sys.stdout.flush()

    # Patched where the name is used: each module that passes crash points.
    for module in (base_module, sweep_module, flows_module):
        module.crash_point = trace
    requests_module.crash_point = trace


def _sequence(spec, client, tracker, clock) -> None:
    """Run several operations in order, so that `point:N` lands in different places.

    Steps: `{"do": "grant", "user", "group", "ttl"}`, `{"do": "extend", "lease", "by"}`,
    `{"do": "revoke", "lease"}` (`lease` indexes the leases this sequence granted),
    `{"do": "approve", "request_id", "approver"}`, `{"do": "advance", "seconds"}`,
    `{"do": "sweep"}`. With `"trace": true` (any action), crash points are printed instead.
    """
    leases: list[str] = []
    requests = _requests(spec, client, tracker)
    for index, step in enumerate(spec["steps"]):
        _STEP[0] = index
        do = step["do"]
        if do == "grant":
            lease = tracker.grant(
                da.PrincipalRef("user", step["user"]),
                step["group"],
                ttl=dt.timedelta(seconds=step["ttl"]),
                requester="crash-test",
                reason=f"step {index}",
            )
            leases.append(lease.id)
            print(f"lease {index} {lease.id}", flush=True)
        elif do == "extend":
            tracker.extend(leases[step["lease"]], by=dt.timedelta(seconds=step["by"]))
        elif do == "revoke":
            tracker.revoke(leases[step["lease"]])
        elif do == "approve":
            approved = requests.approve(step["request_id"], approver=step["approver"])
            leases.append(approved.lease_id)
            print(f"lease {index} {approved.lease_id}", flush=True)
        elif do == "advance":
            clock.advance(dt.timedelta(seconds=step["seconds"]))
        elif do == "sweep":
            tracker.sweep()
        else:
            raise SystemExit(f"unknown step {do}")
        print(f"done {index}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
