"""Several replicas on PostgreSQL: sweep throughput with 1, 2 and 4 tracker processes.

Each configuration gets a fresh account and a fresh store holding N due leases over G
groups; its worker processes open their client and store, fetch a token, then sweep in
batches (`sweep(limit=batch)`) until nothing is left, as replicas of a connector would.
The clock starts when every worker is ready and stops when the last one is done, so
interpreter start-up is not counted. The emulator runs in its own process, without rate
limits. PostgreSQL is a throwaway cluster with its default durability (`fsync` on), as
SQLite keeps its default `synchronous=FULL`: both sync every commit.

`DATABRICKS_ACCESS_BENCH_POSTGRES_URL` names an existing server to use instead (each
configuration uses a schema of its own). Without either, the row says so (`met=None`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import databricks_access as da
from bench.harness import Row, Settings, workload
from databricks_access import Lease, LeaseState
from databricks_access.testing import FakeAccount, OperationClass

START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)
ROOT = Path(__file__).parents[1]

WORKER = textwrap.dedent(
    """
    import datetime as dt, json, sys, time
    import databricks_access as da

    spec = json.loads(sys.argv[1])
    clock = da.ManualClock(dt.datetime.fromisoformat(spec["now"]))
    config = da.AccountConfig(
        host=spec["url"], account_id=spec["account_id"],
        allow_custom_host=True, allow_insecure_http=True,
    )
    secrets = da.StaticSecretStore(spec["client_id"], spec["client_secret"])
    if spec["kind"] == "postgres":
        from databricks_access import PostgresLeaseStore
        store = PostgresLeaseStore(spec["target"], schema=spec["schema"])
    else:
        from databricks_access import SqliteLeaseStore
        store = SqliteLeaseStore(spec["target"])
    with da.AccountClient(config, secrets=secrets, clock=clock) as client, store:
        tracker = da.LeaseTracker(
            da.MembershipManager(client), store=store, clock=clock, owner=spec["owner"]
        )
        client.groups.list(attributes=["id"]).collect()  # token and connection first
        print("ready", flush=True)
        sys.stdin.readline()
        ended = 0
        while swept := tracker.sweep(limit=spec["batch"]).ended:
            ended += swept
        print(f"done {ended}", flush=True)
    """
)


# -- a throwaway PostgreSQL cluster -------------------------------------------------------


def _bin_dir() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for candidate in [*reversed(found), *(Path(p).parent for p in [shutil.which("initdb")] if p)]:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


@contextmanager
def _postgres() -> Iterator[str | None]:
    """A PostgreSQL URL (a throwaway cluster, or the one named), or None without one."""
    named = os.environ.get("DATABRICKS_ACCESS_BENCH_POSTGRES_URL")
    if named:
        yield named
        return
    bin_dir = _bin_dir()
    if bin_dir is None:
        yield None
        return
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="da-bench-postgres-"))
    root.chmod(0o755)
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = root / "data"

    def run(*args: str) -> None:
        subprocess.run(
            [*prefix, str(bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=root,
        )

    try:
        run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=100"
        run("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start")
    except (subprocess.SubprocessError, OSError, KeyError):
        shutil.rmtree(root, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


# -- one configuration ----------------------------------------------------------------------


def _lease(index: int, principal: str, group: str) -> Lease:
    return Lease(
        id=f"lease_{index:07d}",
        principal=da.PrincipalRef(da.PrincipalKind.USER, principal),
        group_id=group,
        state=LeaseState.ACTIVE,
        granted_at=START,
        expires_at=START + dt.timedelta(minutes=30),
        requester="bench",
        reason="bench",
        updated_at=START,
    )


def _seed(kind: str, target: str, schema: str, leases: list[Lease]) -> None:
    """Write the leases in one transaction (the stores' API writes one at a time)."""
    if kind == "postgres":
        from databricks_access import PostgresLeaseStore  # noqa: PLC0415
        from databricks_access._stores.postgres.sql import _lease_values  # noqa: PLC0415

        with PostgresLeaseStore(target, schema=schema) as pg:
            pool = pg._pool
            assert pool is not None
            with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                cur.executemany(pg._sql.insert_lease, [[x.id, *_lease_values(x)] for x in leases])
        return
    from databricks_access import SqliteLeaseStore  # noqa: PLC0415
    from databricks_access._stores.sqlite.sql import _INSERT_LEASE, _lease_values  # noqa: PLC0415

    rows = [[x.id, *_lease_values(x)] for x in leases]
    with SqliteLeaseStore(target) as sqlite:
        sqlite._transaction(lambda conn: conn.executemany(_INSERT_LEASE, rows), "seed leases")


def _sweep(
    kind: str,
    target: str,
    schema: str,
    *,
    workers: int,
    count: int,
    groups: int,
    batch: int,
) -> dict[str, Any]:
    """Sweep `count` due leases with `workers` processes; throughput and requests."""
    fake = FakeAccount(log_size=None)
    creds = fake.add_service_principal("bench")
    group_ids = [fake.add_group(f"team-{g}") for g in range(groups)]
    seeded = fake.seed(users=count, groups=0, memberships=0, seed=11)
    pairs = [(uid, group_ids[i % groups]) for i, uid in enumerate(seeded.user_ids)]
    for uid, gid in pairs:
        fake.add_member(gid, uid)
    _seed(kind, target, schema, [_lease(i, uid, gid) for i, (uid, gid) in enumerate(pairs)])
    with fake.serve(process=True) as url:
        procs = []
        for n in range(workers):
            spec = {
                "url": url,
                "account_id": fake.account_id,
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "kind": kind,
                "target": target,
                "schema": schema,
                "now": (START + dt.timedelta(hours=1)).isoformat(),
                "owner": f"replica-{n}",
                "batch": batch,
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, json.dumps(spec)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
            )
        try:
            for proc in procs:
                if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                    raise AssertionError(f"a {kind} worker did not start: {proc.stderr}")
            started = time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            shares = []
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline().split()
                if line[:1] != ["done"]:
                    _, err = proc.communicate(timeout=60)
                    raise AssertionError(f"a {kind} worker failed: {err[-2000:]}")
                shares.append(int(line[1]))
            seconds = time.perf_counter() - started
        finally:
            for proc in procs:
                proc.communicate(timeout=120)
    counts = fake.counts
    left = sum(1 for uid, gid in pairs if uid in fake.group_members(gid))
    if sum(shares) != count or left:
        raise AssertionError(f"{kind} x{workers} left work undone: {sum(shares)}/{count}, {left}")
    return {
        "leases_per_s": count / seconds,
        "seconds": seconds,
        "shares": shares,
        "patches": counts[OperationClass.PATCH],
        "requests": sum(counts.values()),
    }


@workload(
    "postgres_sweep",
    title="sweep throughput, 5,000 due leases over 20 groups: PostgreSQL with 4 replica "
    "processes vs SQLite with 1, leases/s",
    order=75,
)
def postgres_sweep(settings: Settings) -> Row:
    count = settings.size(5_000, 200)
    groups = settings.size(20, 4)
    batch = settings.size(250, 50)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        size = {"count": count, "groups": groups, "batch": batch}
        results["sqlite x1"] = _sweep("sqlite", str(Path(tmp) / "leases.db"), "", workers=1, **size)
        with _postgres() as url:
            if url is not None:
                for workers in (1, 2, 4):
                    schema = f"bench_{os.getpid()}_{workers}_{time.monotonic_ns()}"
                    results[f"postgres x{workers}"] = _sweep(
                        "postgres", url, schema, workers=workers, **size
                    )
    sqlite = results["sqlite x1"]
    base = sqlite["leases_per_s"]
    details: dict[str, Any] = {
        "leases": count,
        "groups": groups,
        "batch": batch,
        "runs": results,
        "ratios_vs_sqlite_x1": {name: run["leases_per_s"] / base for name, run in results.items()},
        "note": "Wall time from 'go' to the last worker's 'done'; each worker sweeps "
        "sweep(limit=batch) until nothing is left. The emulator runs in its own process.",
    }
    if "postgres x4" not in results:
        details["note"] = (
            "PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or "
            "on PATH, and DATABRICKS_ACCESS_BENCH_POSTGRES_URL unset): only SQLite ran. "
            + details["note"]
        )
        return Row(
            unit="leases/s",
            ours=0.0,
            baseline=base,
            baseline_name="sqlite x1",
            ours_requests=0,
            baseline_requests=sqlite["requests"],
            target="postgres x4 >= postgres x1",
            met=None,
            details=details,
        )
    one, four = results["postgres x1"], results["postgres x4"]
    details["scaling_x4_vs_x1"] = four["leases_per_s"] / one["leases_per_s"]
    return Row(
        unit="leases/s",
        ours=four["leases_per_s"],
        baseline=base,
        baseline_name="sqlite x1",
        ours_requests=four["requests"],
        baseline_requests=sqlite["requests"],
        target="postgres x4 >= postgres x1",
        met=four["leases_per_s"] >= one["leases_per_s"],
        details=details,
    )
