"""What every group unlocks: a Unity Catalog walk, ours against the official SDK doing the same.

The account (seeded by the emulator's `seed_unity_catalog`): 3 workspaces on 2 metastores
(two workspaces share one), 50 catalogs of 20 schemas (1,000 schemas; quick: 6 x 3),
10 groups with a grant on every catalog and schema, served on loopback from its own
process with 10 ms of latency on every request. Tables are not read (they are opt-in).

Both sides read the same things: the account's groups (with members), users and service
principals, the workspace list, each workspace's metastore assignment, then each
metastore once (its summary, its catalogs, every catalog's schemas) and the grants on
the metastore, every catalog and every schema. Ours: `CatalogReader(...).read()`,
8 requests in flight per workspace. The official SDK as a competent user writes it:
an `AccountClient` for the directory (group GETs from 8 threads), one `WorkspaceClient`
per workspace (OAuth M2M with the same credentials), `metastores.current()` on each,
metastores deduplicated by hand, then `catalogs.list`, `schemas.list` and `grants.get`
from a pool of 8 threads.

Measured for each side: requests (all, and API reads, with duplicates), wall time
(interleaved runs: medians and spread) and peak Python memory (tracemalloc, in a second
run without latency; the server is another process and is not traced).

`python -m bench.unity_catalog [--quick]` prints the result as JSON.
"""

from __future__ import annotations

import functools
import gc
import json
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import databricks_access as da
from bench.harness import (
    Row,
    Settings,
    interleaved,
    isolate_sdk_environment,
    median,
    sdk_account_client,
    workload,
)
from databricks_access.testing import FakeAccount, Fault, FaultPlan, OperationClass

LATENCY = 0.010
THREADS = 8
API = (OperationClass.GET, OperationClass.LIST)


def _sizes(quick: bool, *, tables: bool = False) -> dict[str, int]:
    if quick:
        sizes = {"workspaces": 3, "metastores": 2, "catalogs": 6, "schemas_per_catalog": 3}
        return {**sizes, "tables_per_catalog_schema": 2 if tables else 0}
    if tables:  # 1,000 tables in 100 schemas
        return {
            "workspaces": 3,
            "metastores": 2,
            "catalogs": 10,
            "schemas_per_catalog": 10,
            "tables_per_catalog_schema": 10,
        }
    sizes = {"workspaces": 3, "metastores": 2, "catalogs": 50, "schemas_per_catalog": 20}
    return {**sizes, "tables_per_catalog_schema": 0}


def _account(
    sizes: dict[str, int], latency: float
) -> tuple[FakeAccount, da.StaticSecretStore, tuple[int, ...]]:
    fake = FakeAccount()
    creds = fake.add_service_principal("bench")
    fake.seed(users=50, groups=0, memberships=0, service_principals=2, workspaces=0)
    seeded = fake.seed_unity_catalog(**sizes, groups=10)
    for workspace in seeded.workspace_ids:
        fake.assign(workspace, creds.id, ["USER"])
    if latency:
        FaultPlan([Fault.latency(latency)]).install(fake)
    fake.reset_log()
    return fake, da.StaticSecretStore(creds.client_id, creds.client_secret), seeded.workspace_ids


def _expected_uc_requests(sizes: dict[str, int]) -> int:
    """Per workspace one assignment; per metastore its summary, one catalog page and one
    grants read; per catalog one schema page and one grants read; per schema one grants
    read (the emulator's pages hold 1,000 items, so every listing is one page)."""
    catalogs = sizes["catalogs"]
    schemas = catalogs * sizes["schemas_per_catalog"]
    metastores = sizes["metastores"]
    tables = schemas * sizes["tables_per_catalog_schema"]
    # With tables: one table listing per schema and one grants read per table.
    table_reads = schemas + tables if sizes["tables_per_catalog_schema"] else 0
    return sizes["workspaces"] + 3 * metastores + 2 * catalogs + schemas + table_reads


def _ours(
    url: str,
    fake: FakeAccount,
    secrets: da.StaticSecretStore,
    hosts: dict[int, str],
    *,
    tables: bool = False,
) -> dict[str, Any]:
    config = da.AccountConfig(
        host=url,
        account_id=fake.account_id,
        allow_custom_host=True,
        allow_insecure_http=True,
        rate_limits=None,  # the emulator enforces no limit here, and the SDK has none
    )
    with da.AccountClient(config, secrets=secrets) as account:
        reader = da.CatalogReader(
            account, workspace_hosts=hosts, concurrency=THREADS, include_tables=tables
        )
        view = reader.read()
    snapshot = view.snapshot
    return {
        "metastores": len(snapshot.metastores),
        "securables": len(snapshot.securables),
        "grants": sorted(
            (g.securable.securable_type.value, g.securable.full_name, g.principal, g.privileges)
            for g in snapshot.grants
            if g.privileges != ("OWNER",)
        ),
        "groups": len(view.inventory.groups),
        "errors": len(snapshot.errors),
    }


def _sdk(
    url: str,
    fake: FakeAccount,
    secrets: da.StaticSecretStore,
    hosts: dict[int, str],
    *,
    tables: bool = False,
) -> dict[str, Any]:
    from databricks.sdk import WorkspaceClient  # noqa: PLC0415 - imported once, warmed up

    credentials = secrets.get_credentials()
    with (
        sdk_account_client(
            url, fake.account_id, credentials.client_id, credentials.client_secret
        ) as a,
        ThreadPoolExecutor(THREADS) as pool,
    ):
        ids = [g.id for g in a.groups.list(attributes="id,displayName")]
        groups = list(pool.map(a.groups.get, ids))
        users = list(a.users.list(attributes="id,userName,displayName,active"))
        sps = list(a.service_principals.list(attributes="id,applicationId,displayName,active"))
        workspaces = [w for w in a.workspaces.list() if w.workspace_id in hosts]
        clients = {
            w.workspace_id: WorkspaceClient(
                host=hosts[w.workspace_id],
                client_id=credentials.client_id,
                client_secret=credentials.client_secret,
                auth_type="oauth-m2m",
            )
            for w in workspaces
        }
        current = dict(
            zip(clients, pool.map(lambda c: c.metastores.current(), clients.values()), strict=True)
        )
        through: dict[str, Any] = {}
        for wid, assignment in current.items():
            through.setdefault(assignment.metastore_id, clients[wid])
        grants: list[tuple[str, str, str, tuple[str, ...]]] = []
        securables = 0

        def read_grants(
            w: Any, kind: str, name: str
        ) -> list[tuple[str, str, str, tuple[str, ...]]]:
            found = w.grants.get(securable_type=kind, full_name=name)
            return [
                (
                    kind,
                    name,
                    p.principal,
                    tuple(str(getattr(v, "value", v)) for v in p.privileges or ()),
                )
                for p in found.privilege_assignments or ()
            ]

        for metastore_id, w in through.items():
            w.metastores.summary()
            catalogs = [c.name for c in w.catalogs.list()]
            schema_lists = list(
                pool.map(
                    lambda c, w=w: [s.full_name for s in w.schemas.list(catalog_name=c)], catalogs
                )
            )
            schemas = [s for names in schema_lists for s in names]
            jobs = [
                ("metastore", metastore_id),
                *(("catalog", c) for c in catalogs),
                *(("schema", s) for s in schemas),
            ]
            if tables:

                def table_names(schema: str, w: Any = w) -> list[str]:
                    catalog, name = schema.split(".", 1)
                    listed = w.tables.list(
                        catalog_name=catalog,
                        schema_name=name,
                        omit_columns=True,
                        omit_properties=True,
                    )
                    return [t.full_name for t in listed]

                jobs += [("table", t) for names in pool.map(table_names, schemas) for t in names]
            for found in pool.map(lambda job, w=w: read_grants(w, *job), jobs):
                grants.extend(found)
            securables += len(jobs)
        for client in clients.values():
            client.api_client._api_client._session.close()
    return {
        "metastores": len(through),
        "securables": securables,
        "grants": sorted(grants),
        "groups": len(groups),
        "users": len(users) + len(sps),
        "errors": 0,
    }


def _measure(
    fake: FakeAccount,
    secrets: da.StaticSecretStore,
    workspaces: tuple[int, ...],
    side: Callable[..., dict[str, Any]],
    *,
    trace: bool,
) -> dict[str, Any]:
    with fake.serve(process=True) as url:
        hosts = {w: f"{url}/ws/{w}" for w in workspaces}
        gc.collect()
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        try:
            found = side(url, fake, secrets, hosts)
            wall = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] if trace else None
        finally:
            if trace:
                tracemalloc.stop()
    counts = fake.counts
    log = fake.log
    api_log = [(r.workspace_id, r.method, r.path, r.query) for r in log if r.op_class in API]
    uc = [r for r in log if "/unity-catalog/" in r.path]
    fake.reset_log()
    return {
        "found": found,
        "wall_s": wall,
        "peak_bytes": peak,
        "requests": sum(counts.values()),
        "api_requests": sum(counts[c] for c in API),
        "uc_requests": len(uc),
        "by_class": {str(k): v for k, v in sorted(counts.items())},
        "duplicate_requests": sum(n - 1 for n in Counter(api_log).values() if n > 1),
        "catalog_listings": sum(1 for r in uc if r.path.endswith("/catalogs")),
    }


def run(quick: bool, *, reps: int = 1, tables: bool = False) -> dict[str, Any]:
    """Walk one account's Unity Catalog with `CatalogReader` and with the official SDK."""
    isolate_sdk_environment()
    ours_side = functools.partial(_ours, tables=tables)
    sdk_side = functools.partial(_sdk, tables=tables)
    # Warm both sides up (imports; the SDK's takes seconds) outside the timing.
    tiny, tiny_secrets, tiny_ws = _account(_sizes(quick=True, tables=tables), 0.0)
    _measure(tiny, tiny_secrets, tiny_ws, ours_side, trace=False)
    _measure(tiny, tiny_secrets, tiny_ws, sdk_side, trace=False)
    sizes = _sizes(quick, tables=tables)
    slow, secrets, workspaces = _account(sizes, LATENCY)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "sdk": []}

    def side(name: str, action: Callable[..., dict[str, Any]]) -> Callable[[], float]:
        def measure() -> float:
            outcome = _measure(slow, secrets, workspaces, action, trace=False)
            runs[name].append(outcome)
            return float(outcome["wall_s"])

        return measure

    samples = interleaved({"ours": side("ours", ours_side), "sdk": side("sdk", sdk_side)}, reps)
    last = {name: outcomes[-1] for name, outcomes in runs.items()}
    traced: dict[str, dict[str, Any] | None] = {"ours": None, "sdk": None}
    if not quick:
        fast, fast_secrets, fast_ws = _account(sizes, 0.0)
        traced = {
            "ours": _measure(fast, fast_secrets, fast_ws, ours_side, trace=True),
            "sdk": _measure(fast, fast_secrets, fast_ws, sdk_side, trace=True),
        }
    expected = _expected_uc_requests(sizes)
    result: dict[str, Any] = {
        "sizes": sizes,
        "latency_s": LATENCY,
        "threads": THREADS,
        "tables": tables,
        "expected_uc_requests": expected,
        "wall_s": samples,
    }
    for name in ("ours", "sdk"):
        t, m = last[name], traced[name]
        peak = None if m is None else m["peak_bytes"]
        result[name] = {
            "wall_s": median(samples[name]),
            "requests": t["requests"],
            "api_requests": t["api_requests"],
            "uc_requests": t["uc_requests"],
            "catalog_listings": t["catalog_listings"],
            "by_class": t["by_class"],
            "duplicate_requests": t["duplicate_requests"],
            "peak_bytes": peak,
            "peak_mib": peak / 2**20 if peak is not None else None,
        }
    ours, sdk = result["ours"], result["sdk"]
    result["speedup"] = sdk["wall_s"] / ours["wall_s"]
    result["same_grants"] = last["ours"]["found"]["grants"] == last["sdk"]["found"]["grants"]
    result["targets"] = {
        "every_metastore_once": ours["catalog_listings"] == sizes["metastores"],
        "no_wasted_request": ours["uc_requests"] == expected and ours["duplicate_requests"] == 0,
        "same_grants_as_sdk": result["same_grants"],
        "at_least_as_fast": result["speedup"] >= 1.0,
    }
    result["met"] = all(result["targets"].values())
    return result


if __name__ == "__main__":
    flags = sys.argv[1:]
    print(json.dumps(run("--quick" in flags, tables="--tables" in flags), indent=2, default=str))


@workload(
    "unity_catalog",
    title="what every group unlocks: 3 workspaces, 2 metastores, 50 catalogs x 20 schemas "
    "at 10 ms latency vs the SDK with 8 threads, s",
    order=70,
)
def unity_catalog(settings: Settings) -> Row:
    """The Unity Catalog walk: wall time and requests, ours vs the official SDK (8 threads)."""
    result = run(settings.quick, reps=settings.reps(3))
    ours, sdk = result["ours"], result["sdk"]
    return Row(
        unit="s",
        ours=ours["wall_s"],
        baseline=sdk["wall_s"],
        baseline_name="sdk 8 threads",
        ours_requests=ours["requests"],
        baseline_requests=sdk["requests"],
        target="each metastore once, 0 wasted, same grants, ratio <= 1",
        met=None if settings.quick else bool(result.get("met")),
        details=result,
        ours_samples=result["wall_s"]["ours"],
        baseline_samples=result["wall_s"]["sdk"],
    )


@workload(
    "unity_catalog_tables",
    title="what every group unlocks, tables opt-in: 10 catalogs x 10 schemas x 10 tables "
    "at 10 ms latency vs the SDK with 8 threads, s",
    order=71,
)
def unity_catalog_tables(settings: Settings) -> Row:
    """The walk with tables read (1,000 tables and their grants), ours vs the SDK."""
    result = run(settings.quick, reps=settings.reps(3), tables=True)
    ours, sdk = result["ours"], result["sdk"]
    return Row(
        unit="s",
        ours=ours["wall_s"],
        baseline=sdk["wall_s"],
        baseline_name="sdk 8 threads",
        ours_requests=ours["requests"],
        baseline_requests=sdk["requests"],
        target="each metastore once, 0 wasted, same grants, ratio <= 1",
        met=None if settings.quick else bool(result.get("met")),
        details=result,
        ours_samples=result["wall_s"]["ours"],
        baseline_samples=result["wall_s"]["sdk"],
    )
