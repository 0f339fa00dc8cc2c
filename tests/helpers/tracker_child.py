"""A tracker in its own process, for crash and multi-process tests.

Usage: python tracker_child.py '<json spec>'. The spec names the emulator URL and
credentials, the SQLite file, the injected time, and one action; the environment may
arm a crash point (DATABRICKS_ACCESS_CRASH_AT).
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import databricks_access as da
from databricks_access._sqlite_store import SqliteLeaseStore


def main() -> int:
    spec = json.loads(sys.argv[1])
    clock = da.ManualClock(dt.datetime.fromisoformat(spec["now"]))
    cfg = da.AccountConfig(
        host=spec["url"],
        account_id=spec["account_id"],
        allow_custom_host=True,
        allow_insecure_http=True,
    )
    secrets = da.StaticSecretStore(spec["client_id"], spec["client_secret"])
    with (
        da.AccountClient(cfg, secrets=secrets, clock=clock) as client,
        SqliteLeaseStore(spec["db"]) as store,
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
            while tracker.sweep(limit=spec.get("batch", 1000)).ended:
                pass
        elif action == "extend":
            tracker.extend(spec["lease_id"], by=dt.timedelta(seconds=spec["by"]))
        elif action == "revoke":
            tracker.revoke(spec["lease_id"])
        else:
            raise SystemExit(f"unknown action {action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
