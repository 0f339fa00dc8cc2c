"""The lease tracker at scale: sweeping a large store, and how late leases end under run()."""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import databricks_access as da
from bench.harness import Row, Settings, interleaved, sdk_account_client, timed, workload
from databricks_access import Lease, LeaseState, SqliteLeaseStore
from databricks_access._stores.sqlite.sql import _INSERT_LEASE, _lease_values
from databricks_access.testing import (
    FakeAccount,
    Fault,
    FaultPlan,
    OperationClass,
    ServerRateLimits,
)

START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)


def _lease(index: int, principal: str, group: str, expires_at: dt.datetime) -> Lease:
    return Lease(
        id=f"lease_{index:07d}",
        principal=da.PrincipalRef(da.PrincipalKind.USER, principal),
        group_id=group,
        state=LeaseState.ACTIVE,
        granted_at=START,
        expires_at=expires_at,
        requester="bench",
        reason="bench",
        updated_at=START,
    )


def _bulk_insert(store: SqliteLeaseStore, leases: list[Lease]) -> None:
    """Seed many leases in one transaction (the store's own API writes one at a time)."""
    rows = [[lease.id, *_lease_values(lease)] for lease in leases]

    def work(conn: Any) -> None:
        conn.executemany(_INSERT_LEASE, rows)

    store._transaction(work, "seed leases")


def _sweep_account(
    path: Path, stored: int, due: int, groups: int
) -> tuple[FakeAccount, da.testing.ServicePrincipalCredentials, list[tuple[str, str]]]:
    """A store of `stored` leases, `due` of them expired, spread over `groups` groups."""
    fake = FakeAccount(log_size=None)
    creds = fake.add_service_principal("bench")
    group_ids = [fake.add_group(f"team-{g}") for g in range(groups)]
    seeded = fake.seed(users=due, groups=0, memberships=0, seed=3)
    due_pairs = [(uid, group_ids[i % groups]) for i, uid in enumerate(seeded.user_ids)]
    for uid, gid in due_pairs:
        fake.add_member(gid, uid)
    leases = [
        _lease(i, uid, gid, START + dt.timedelta(minutes=30))
        for i, (uid, gid) in enumerate(due_pairs)
    ]
    # The rest are not due: other principals, expiring hours later.
    leases += [
        _lease(due + i, f"9{i:015d}", group_ids[i % groups], START + dt.timedelta(hours=8))
        for i in range(stored - due)
    ]
    with SqliteLeaseStore(path) as store:
        _bulk_insert(store, leases)
    return fake, creds, due_pairs


def _check_store(path: Path, stored: int, due: int) -> None:
    """Every due lease ended in the store (revoked, with its end time), no other touched."""
    conn = sqlite3.connect(path)
    try:
        rows = dict(conn.execute("SELECT state, count(*) FROM leases GROUP BY state").fetchall())
        ended = conn.execute(
            "SELECT count(*) FROM leases WHERE state = 'revoked' AND ended_at IS NOT NULL"
        ).fetchone()[0]
    finally:
        conn.close()
    if rows != {"revoked": due, "active": stored - due} or ended != due:
        raise AssertionError(f"the store is not as a finished sweep leaves it: {rows}, {ended}")


def _sweep_once(
    url: str, fake: FakeAccount, creds: Any, path: Path, *, trace: bool
) -> dict[str, Any]:
    config = da.AccountConfig(
        host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
    )
    clock = da.ManualClock(START + dt.timedelta(hours=1))
    secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
    with (
        da.AccountClient(config, secrets=secrets, clock=clock) as client,
        SqliteLeaseStore(path) as store,
    ):
        tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
        client.groups.list(attributes=["id"]).collect()  # token and connection outside the timing
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        report = tracker.sweep()
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else None
        if trace:
            tracemalloc.stop()
    return {"seconds": seconds, "report": report, "peak_bytes": peak}


def _remove_per_group(sdk: Any, pairs: list[tuple[str, str]], batch: int = 100) -> None:
    """The removals as a competent SDK user sends them: per group, `batch` members per
    `groups.patch` (our tracker's batch), no lease store."""
    from databricks.sdk.service import iam  # noqa: PLC0415 - slow to import: only when used

    schemas = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]
    by_group: dict[str, list[str]] = {}
    for uid, gid in pairs:
        by_group.setdefault(gid, []).append(uid)
    for gid, uids in by_group.items():
        for start in range(0, len(uids), batch):
            operations = [
                iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{uid}"]')
                for uid in uids[start : start + batch]
            ]
            sdk.groups.patch(gid, operations=operations, schemas=schemas)


def _sweep_side(
    tmp: Path, stored: int, due: int, groups: int, *, trace: bool = False
) -> dict[str, Any]:
    """One sweep of a fresh store by our tracker; checks that nothing was left undone."""
    path = tmp / f"leases-{time.perf_counter_ns()}.db"
    fake, creds, pairs = _sweep_account(path, stored, due, groups)
    with fake.serve(process=True) as url:
        outcome = _sweep_once(url, fake, creds, path, trace=trace)
    # The served process hands its state and counts back when it stops.
    counts = fake.counts
    report: da.SweepReport = outcome["report"]
    if len(report.revoked) != due or any(fake.group_members(g) for _, g in pairs[:groups]):
        raise AssertionError(f"the sweep left work undone: {report!r:.200}")
    _check_store(path, stored, due)
    return {
        "seconds": outcome["seconds"],
        "patches": counts[OperationClass.PATCH],
        "requests": sum(counts.values()),
        "peak_mib": None if outcome["peak_bytes"] is None else outcome["peak_bytes"] / 2**20,
    }


def _sdk_sweep_side(tmp: Path, due: int, groups: int, batch: int) -> dict[str, Any]:
    """The same removals with the official SDK, per group and `batch` members, no store."""
    fake, creds, pairs = _sweep_account(tmp / f"sdk-{time.perf_counter_ns()}.db", due, due, groups)
    with (
        fake.serve(process=True) as url,
        sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk,
    ):
        seconds = timed(functools.partial(_remove_per_group, sdk, pairs, batch))
    if any(fake.group_members(g) for _, g in pairs[:groups]):
        raise AssertionError("the SDK's removals left members behind")
    counts = fake.counts
    return {
        "seconds": seconds,
        "patches": counts[OperationClass.PATCH],
        "requests": sum(counts.values()),
    }


@workload(
    "sweep",
    title="sweep() of 100,000 stored leases, 10,000 due over 20 groups (SQLite) vs SDK "
    "removals per group, s",
    order=70,
)
def sweep(settings: Settings) -> Row:
    stored = settings.size(100_000, 2_000)
    due = settings.size(10_000, 200)
    groups = settings.size(20, 4)
    batch = 100
    max_patches = groups * -(-(due // groups) // batch)
    reps = settings.reps(3)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "sdk": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def ours() -> float:
            runs["ours"].append(_sweep_side(folder, stored, due, groups))
            return float(runs["ours"][-1]["seconds"])

        def sdk() -> float:
            runs["sdk"].append(_sdk_sweep_side(folder, due, groups, batch))
            return float(runs["sdk"][-1]["seconds"])

        samples = interleaved({"ours": ours, "sdk": sdk}, reps)
        # Memory is measured at full size only (tracing slows the sweep several times).
        traced = None if settings.quick else _sweep_side(folder, stored, due, groups, trace=True)
    last, sdk_last = runs["ours"][-1], runs["sdk"][-1]
    return Row(
        unit="s",
        ours=statistics.median(samples["ours"]),
        baseline=statistics.median(samples["sdk"]),
        baseline_name="sdk/group",
        ours_requests=last["requests"],
        baseline_requests=sdk_last["requests"],
        target=f"PATCHes <= {max_patches}",
        met=all(run["patches"] <= max_patches for run in runs["ours"]),
        details={
            "stored": stored,
            "due": due,
            "groups": groups,
            "batch": batch,
            "max_patches": max_patches,
            "ours": runs["ours"],
            "traced": traced,
            "sdk": runs["sdk"],
            "note": "ours: LeaseTracker.sweep() over a SQLite store, the emulator in its own "
            "process; sdk: only the removals, one groups.patch per group and 100 members, "
            "no store.",
        },
        ours_samples=samples["ours"],
        baseline_samples=samples["sdk"],
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# The hand-written job's two statements, on the store's own schema: one range scan of the
# (state, due_at) index, and one update of each PATCHed batch through the `id` index. (With
# `state = 'active'` added to the UPDATE, SQLite scans the 90,000 active rows of the
# (state, due_at) index for each batch instead: ten times slower, not a competent job.)
_SQL_DUE = "SELECT id, principal_id, group_id FROM leases WHERE state = 'active' AND due_at <= ?"
_SQL_END = (
    "UPDATE leases SET state = 'revoked', ended_at = ?, updated_at = ?, due_at = NULL, "
    "version = version + 1 WHERE id IN "
)


def _sql_expiry_job(sdk: Any, conn: sqlite3.Connection, now: int, batch: int) -> int:
    """A careful hand-written expiry job: the due rows in one indexed SELECT; per group,
    `batch` members per `groups.patch` (as the SDK side of `sweep`); after each PATCH,
    its rows marked ended in one transaction. Returns the rows ended."""
    from databricks.sdk.service import iam  # noqa: PLC0415 - slow to import: only when used

    schemas = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]
    by_group: dict[str, list[tuple[str, str]]] = {}
    for lease_id, uid, gid in conn.execute(_SQL_DUE, (now,)):
        by_group.setdefault(gid, []).append((lease_id, uid))
    ended = 0
    for gid, items in by_group.items():
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            operations = [
                iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{uid}"]')
                for _, uid in chunk
            ]
            sdk.groups.patch(gid, operations=operations, schemas=schemas)
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    _SQL_END + "(" + ", ".join(["?"] * len(chunk)) + ")",
                    [now, now, *(lease_id for lease_id, _ in chunk)],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            ended += cursor.rowcount
    return ended


def _sql_sweep_side(tmp: Path, stored: int, due: int, groups: int, batch: int) -> dict[str, Any]:
    """The same job by hand: the SDK's PATCHes plus the minimal SQL on the same store."""
    path = tmp / f"sql-{time.perf_counter_ns()}.db"
    fake, creds, pairs = _sweep_account(path, stored, due, groups)
    now = (START + dt.timedelta(hours=1) - _EPOCH) // dt.timedelta(microseconds=1)
    # Durable as our store: WAL (already the file's mode), synchronous FULL, explicit BEGIN.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise AssertionError("the store is not in WAL mode")
        conn.execute("PRAGMA synchronous = FULL")
        with (
            fake.serve(process=True) as url,
            sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk,
        ):
            sdk.groups.get(pairs[0][1])  # token and connection outside the timing, as ours
            ended: list[int] = []
            seconds = timed(lambda: ended.append(_sql_expiry_job(sdk, conn, now, batch)))
    finally:
        conn.close()
    if ended != [due] or any(fake.group_members(g) for _, g in pairs[:groups]):
        raise AssertionError(f"the SQL job left work undone: {ended} rows ended of {due}")
    _check_store(path, stored, due)
    counts = fake.counts
    return {
        "seconds": seconds,
        "patches": counts[OperationClass.PATCH],
        "requests": sum(counts.values()),
    }


@workload(
    "sweep_sql",
    title="sweep() of 100,000 stored leases, 10,000 due over 20 groups (SQLite) vs SDK "
    "removals per group plus the minimal SQL on the same store, s",
    order=70,
)
def sweep_sql(settings: Settings) -> Row:
    stored = settings.size(100_000, 2_000)
    due = settings.size(10_000, 200)
    groups = settings.size(20, 4)
    batch = 100
    reps = settings.reps(3)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "sql": [], "sdk": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def ours() -> float:
            runs["ours"].append(_sweep_side(folder, stored, due, groups))
            return float(runs["ours"][-1]["seconds"])

        def sql() -> float:
            runs["sql"].append(_sql_sweep_side(folder, stored, due, groups, batch))
            return float(runs["sql"][-1]["seconds"])

        def sdk() -> float:
            runs["sdk"].append(_sdk_sweep_side(folder, due, groups, batch))
            return float(runs["sdk"][-1]["seconds"])

        samples = interleaved({"ours": ours, "sql": sql, "sdk": sdk}, reps)
    ours_median = statistics.median(samples["ours"])
    sql_median = statistics.median(samples["sql"])
    sdk_median = statistics.median(samples["sdk"])
    return Row(
        unit="s",
        ours=ours_median,
        baseline=sql_median,
        baseline_name="sdk/group + SQL",
        ours_requests=runs["ours"][-1]["requests"],
        baseline_requests=runs["sql"][-1]["requests"],
        target="ratio <= 1.5",
        met=ours_median / sql_median <= 1.5,
        details={
            "stored": stored,
            "due": due,
            "groups": groups,
            "batch": batch,
            "ours": runs["ours"],
            "sql": runs["sql"],
            "sdk_only": runs["sdk"],
            "sdk_only_s": sdk_median,
            "ratio_vs_sdk_only": ours_median / sdk_median,
            "sdk_only_samples": samples["sdk"],
            "note": "ours: LeaseTracker.sweep() over a SQLite store (WAL, synchronous FULL); "
            "baseline: the same PATCHes with the SDK, one groups.patch per group and 100 "
            "members, after one indexed SELECT of the due rows and, after each PATCH, one "
            "UPDATE ... WHERE id IN (...) in its own transaction, on the same store file "
            "with the same settings; sdk_only: the PATCHes with no store (the sweep row's "
            "baseline), interleaved with both.",
        },
        ours_samples=samples["ours"],
        baseline_samples=samples["sql"],
    )


def _expiry_lag(settings: Settings, *, limited: bool) -> dict[str, Any]:
    """Leases due over a window, `run()` on a real clock; how late each one ended."""
    count = settings.size(1_000, 60)
    window = settings.size(30, 1 if limited else 3)
    groups = settings.size(20, 2 if limited else 4)
    lead = 2.0 if not settings.quick else 1.0  # for the loop to start before the first is due
    fake = FakeAccount(log_size=None)
    creds = fake.add_service_principal("bench")
    group_ids = [fake.add_group(f"team-{g}") for g in range(groups)]
    seeded = fake.seed(users=count, groups=0, memberships=0, seed=5)
    pairs = [(uid, group_ids[i % groups]) for i, uid in enumerate(seeded.user_ids)]
    for uid, gid in pairs:
        fake.add_member(gid, uid)
    limits = ServerRateLimits(scale=1) if limited else None
    FaultPlan([Fault.latency(0.005)], rate_limits=limits).install(fake)
    # Unlimited emulator: our throttle off too. Published limits: the default settings.
    options: dict[str, Any] = {} if limited else {"rate_limits": None}
    with tempfile.TemporaryDirectory() as tmp, fake.serve(process=True) as url:
        path = Path(tmp) / "leases.db"
        config = da.AccountConfig(
            host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
        )
        secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
        with (
            da.AccountClient(config, secrets=secrets, **options) as client,
            SqliteLeaseStore(path, synchronous="NORMAL") as store,
        ):
            tracker = da.LeaseTracker(da.MembershipManager(client), store=store)
            client.groups.list(attributes=["id"]).collect()
            t0 = tracker.clock.now() + dt.timedelta(seconds=lead)
            step = window / count
            leases = [
                _lease(i, uid, gid, t0 + dt.timedelta(seconds=i * step))
                for i, (uid, gid) in enumerate(pairs)
            ]
            _bulk_insert(store, leases)
            stop = threading.Event()
            loop = threading.Thread(target=tracker.run, kwargs={"stop": stop, "idle": 1.0})
            loop.start()
            deadline = time.monotonic() + lead + window + (90 if limited else 30)
            # (bounded: a run that misses it raises below, naming the leases left)
            try:
                while time.monotonic() < deadline:
                    if not store.find_leases(
                        states=[LeaseState.ACTIVE, LeaseState.REVOKING], limit=1
                    ):
                        break
                    stop.wait(0.2)
            finally:
                stop.set()
                loop.join(timeout=30)
            ended = store.find_leases()
    lags = sorted(
        (lease.ended_at - lease.expires_at).total_seconds()
        for lease in ended
        if lease.state is LeaseState.REVOKED and lease.ended_at is not None
    )
    left = sum(1 for uid, gid in pairs if uid in fake.group_members(gid))
    if len(lags) != count or left:
        raise AssertionError(f"{count - len(lags)} leases did not end, {left} members left")
    return {
        "leases": count,
        "window_s": window,
        "groups": groups,
        "latency_s": 0.005,
        "limited": limited,
        "p50_s": statistics.median(lags),
        "p99_s": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "max_s": lags[-1],
        "min_s": lags[0],
        "patches": fake.counts[OperationClass.PATCH],
        "requests": sum(fake.counts.values()),
        "rate_limited": fake.faults.get("rate_limited", 0),
    }


@workload(
    "expiry_lag",
    title="expiry lag: 1,000 leases over 20 groups due within 30 s, run() with a real clock, "
    "5 ms latency; p99 s",
    order=80,
)
def expiry_lag(settings: Settings) -> Row:
    result = _expiry_lag(settings, limited=False)
    return Row(
        unit="s",
        ours=result["p99_s"],
        baseline=1.0,
        baseline_name="target",
        ours_requests=result["requests"],
        baseline_requests=0,
        target="p99 <= 1 s",
        met=result["p99_s"] <= 1.0,
        details=result,
        ours_samples=[result["p99_s"]],
    )


@workload(
    "limits_expiry_lag",
    title="expiry lag under the published limits (PATCH 2/s), default settings: 1,000 leases "
    "over 20 groups due within 30 s; p99 s",
    order=82,
)
def limits_expiry_lag(settings: Settings) -> Row:
    result = _expiry_lag(settings, limited=True)
    return Row(
        unit="s",
        ours=result["p99_s"],
        baseline=10.0,
        baseline_name="target",
        ours_requests=result["requests"],
        baseline_requests=0,
        target="p99 <= 10 s, none lost",
        met=None if settings.quick else result["p99_s"] <= 10.0,
        details=result,
        ours_samples=[result["p99_s"]],
    )
