"""Discovery of a whole account: `da.discover(client)` against the official SDK doing the same.

The account: 1,000 groups of 50 members on average (quick: 30 x 5), 5,000 users, service
principals, workspaces with assignments and group rule sets, served on loopback from its own
process with 10 ms of latency on every request. Both sides read the same inventory: groups
and their members, users and service principals (projected lists), workspaces and their
assignments, and every group's managers. The official SDK does it as a competent user
writes it: `a.groups.list(attributes="id,displayName")`, then `a.groups.get(id)` and each
group's rule set from a pool of 8 threads (ours runs 8 at once too), the rest in turn.

Measured for each side: requests (all, and API reads), wall time (client construction,
OAuth and the whole read), and peak Python memory (tracemalloc, in a second run without
latency, so that tracing does not distort the timing; the server is another process and is
not traced).

`run(quick)` returns a plain dict; `python -m bench.discovery [--quick]` prints it.
"""

from __future__ import annotations

import functools
import gc
import json
import math
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
from databricks_access import Inventory, discover
from databricks_access.testing import (
    FakeAccount,
    Fault,
    FaultPlan,
    OperationClass,
    ServerRateLimits,
)

LATENCY = 0.010
API = (OperationClass.GET, OperationClass.LIST)
USER_ATTRIBUTES = "id,userName,displayName,active,roles"
SP_ATTRIBUTES = "id,applicationId,displayName,active,roles"


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {
            "groups": 30,
            "members_per_group": 5,
            "users": 100,
            "service_principals": 3,
            "workspaces": 2,
            "assignments_per_workspace": 10,
        }
    return {
        "groups": 1_000,
        "members_per_group": 50,
        "users": 5_000,
        "service_principals": 20,
        "workspaces": 5,
        "assignments_per_workspace": 100,
    }


def _account(
    sizes: dict[str, int], latency: float, *, limited: bool = False
) -> tuple[FakeAccount, da.StaticSecretStore, tuple[int, ...]]:
    fake = FakeAccount()
    creds = fake.add_service_principal("bench")
    seeded = fake.seed(
        users=sizes["users"],
        groups=sizes["groups"],
        memberships=sizes["groups"] * sizes["members_per_group"],
        service_principals=sizes["service_principals"],
        workspaces=sizes["workspaces"],
        assignments_per_workspace=sizes["assignments_per_workspace"],
    )
    # Some groups have managers, so the rule sets are not all empty.
    for i, group_id in enumerate(seeded.group_ids[::10]):
        fake.set_group_managers(group_id, [f"users/user{i:05d}@example.com"])
    limits = ServerRateLimits(scale=1) if limited else None
    if latency or limits:
        FaultPlan([Fault.latency(latency)] if latency else [], rate_limits=limits).install(fake)
    fake.reset_log()
    return fake, da.StaticSecretStore(creds.client_id, creds.client_secret), seeded.workspace_ids


def _expected_api_requests(
    fake: FakeAccount, sizes: dict[str, int], workspaces: tuple[int, ...]
) -> int:
    """What discovery must send: list pages (totalResults ends them), one GET per group for
    members and one for managers, the workspace list, each workspace's assignment pages."""
    page = fake.behaviour.page_cap

    def pages(n: int, size: int) -> int:
        return max(1, math.ceil(n / size))

    assignment_pages = sum(
        pages(len(fake.assignments(w)), fake.behaviour.assignments_page_size) for w in workspaces
    )
    listed = (
        pages(sizes["groups"], page)
        + pages(sizes["users"], page)
        + pages(sizes["service_principals"] + 1, page)
    )
    return listed + 1 + assignment_pages + 2 * sizes["groups"]


THREADS = 8


def _ours(
    url: str, fake: FakeAccount, secrets: da.StaticSecretStore, *, limited: bool = False
) -> dict[str, Any]:
    config = da.AccountConfig(
        host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
    )
    # Against an emulator without rate limits, our throttle is off like the SDK's; under
    # the published limits (`limited`), the defaults.
    options: dict[str, Any] = {} if limited else {"rate_limits": None}
    with da.AccountClient(config, secrets=secrets, **options) as client:
        inventory = discover(client, concurrency=THREADS)
    return _summary_of_ours(inventory)


def _summary_of_ours(inventory: Inventory) -> dict[str, Any]:
    return {
        "members": {
            gid: frozenset(m.id for m in members) for gid, members in inventory.members.items()
        },
        "users": len(inventory.users),
        "service_principals": len(inventory.service_principals),
        "assignments": sum(len(a) for a in inventory.assignments.values()),
        "managers": {gid: tuple(m) for gid, m in inventory.managers.items()},
        "errors": len(inventory.errors),
    }


def _sdk(
    url: str, fake: FakeAccount, secrets: da.StaticSecretStore, *, limited: bool = False
) -> dict[str, Any]:
    del limited  # the SDK has no client-side throttle: it retries what the server refuses
    credentials = secrets.get_credentials()
    with (
        sdk_account_client(
            url, fake.account_id, credentials.client_id, credentials.client_secret
        ) as a,
        ThreadPoolExecutor(THREADS) as pool,
    ):
        # What a user of the SDK keeps: the objects it returns, as `Inventory` keeps ours.
        ids = [g.id for g in a.groups.list(attributes="id,displayName")]
        groups = dict(zip(ids, pool.map(a.groups.get, ids), strict=True))
        users = list(a.users.list(attributes=USER_ATTRIBUTES))
        sps = list(a.service_principals.list(attributes=SP_ATTRIBUTES))
        workspaces = list(a.workspaces.list())
        assignments = {
            w.workspace_id: list(a.workspace_assignment.list(w.workspace_id)) for w in workspaces
        }

        def rule_set(gid: str) -> Any:
            return a.access_control.get_rule_set(
                name=f"accounts/{fake.account_id}/groups/{gid}/ruleSets/default", etag=""
            )

        rule_sets = dict(zip(ids, pool.map(rule_set, ids), strict=True))
    return {
        "members": {gid: frozenset(m.value for m in g.members or ()) for gid, g in groups.items()},
        "users": len(users),
        "service_principals": len(sps),
        "assignments": sum(len(a) for a in assignments.values()),
        "managers": {
            gid: tuple(
                p
                for rule in r.grant_rules or ()
                if rule.role == "roles/group.manager"
                for p in rule.principals or ()
            )
            for gid, r in rule_sets.items()
        },
        "errors": 0,
    }


def _measure(
    fake: FakeAccount,
    secrets: da.StaticSecretStore,
    side: Callable[..., dict[str, Any]],
    *,
    trace: bool,
) -> dict[str, Any]:
    """Serve `fake` from a child process; run one side against it; requests, time, memory."""
    with fake.serve(process=True) as url:
        gc.collect()
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        try:
            found = side(url, fake, secrets)
            wall = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] if trace else None
        finally:
            if trace:
                tracemalloc.stop()
    # Leaving `serve` copied the child's log and counts back into `fake`.
    counts = fake.counts
    api_log = [(r.method, r.path, r.query) for r in fake.log if r.op_class in API]
    rate_limited = fake.faults.get("rate_limited", 0)
    fake.reset_log()
    return {
        "found": found,
        "wall_s": wall,
        "peak_bytes": peak,
        "requests": sum(counts.values()),
        "api_requests": sum(counts[c] for c in API),
        "by_class": {str(k): v for k, v in sorted(counts.items())},
        "duplicate_requests": sum(n - 1 for n in Counter(api_log).values() if n > 1),
        "rate_limited": rate_limited,
    }


def _differences(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, str]:
    """What the two inventories disagree on, in words (empty: the same inventory)."""
    found = {}
    for key in ("members", "users", "service_principals", "assignments", "managers", "errors"):
        if ours[key] != theirs[key]:
            mine, other = ours[key], theirs[key]
            sizes = (
                f"{len(mine)} vs {len(other)}" if isinstance(mine, dict) else f"{mine} vs {other}"
            )
            found[key] = f"ours {sizes} (sdk)"
    return found


def run(quick: bool, *, reps: int = 1, limited: bool = False) -> dict[str, Any]:
    """Discover one account with `da.discover` and with the official SDK; compare.

    Returns requests, wall time (each side `reps` times, interleaved) and peak memory for
    both, the requests discovery had to send, and whether the targets were met: no wasted
    request, and faster than the SDK with 8 threads. With `limited`, the emulator enforces
    the published rate limits and our client runs with its default settings.
    """
    isolate_sdk_environment()
    if not (quick and limited):
        # Warm both sides up (imports, the SDK's 1-2 s import above all) outside the timing.
        tiny, tiny_secrets, _ = _account({**_sizes(quick=True), "groups": 2, "users": 5}, 0.0)
        _measure(tiny, tiny_secrets, _ours, trace=False)
        _measure(tiny, tiny_secrets, _sdk, trace=False)
    sizes = _sizes(quick)
    if limited:
        sizes = {**sizes, "groups": sizes["groups"] // 10, "users": sizes["users"] // 10}
    slow, secrets, workspaces = _account(sizes, LATENCY, limited=limited)
    expected = _expected_api_requests(slow, sizes, workspaces)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "sdk": []}

    def side(name: str, action: Callable[..., dict[str, Any]]) -> Callable[[], float]:
        def measure() -> float:
            outcome = _measure(
                slow, secrets, functools.partial(action, limited=limited), trace=False
            )
            runs[name].append(outcome)
            return float(outcome["wall_s"])

        return measure

    samples = interleaved({"ours": side("ours", _ours), "sdk": side("sdk", _sdk)}, reps)
    timed = {name: outcomes[-1] for name, outcomes in runs.items()}
    traced: dict[str, dict[str, Any] | None] = {"ours": None, "sdk": None}
    if not (limited or quick):  # memory is measured at full size only
        fast, secrets, _ = _account(sizes, 0.0)
        traced = {
            "ours": _measure(fast, secrets, _ours, trace=True),
            "sdk": _measure(fast, secrets, _sdk, trace=True),
        }

    result: dict[str, Any] = {
        "sizes": sizes,
        "latency_s": LATENCY,
        "limited": limited,
        "threads": THREADS,
        "expected_api_requests": expected,
        "wall_s": samples,
    }
    for name in ("ours", "sdk"):
        t, m = timed[name], traced[name]
        peak = None if m is None else m["peak_bytes"]
        result[name] = {
            "wall_s": median(samples[name]),
            "requests": t["requests"],
            "api_requests": t["api_requests"],
            "by_class": t["by_class"],
            "duplicate_requests": t["duplicate_requests"],
            "errors": t["found"]["errors"],
            "rate_limited": t["rate_limited"],
            "peak_bytes": peak,
            "peak_mib": peak / 2**20 if peak is not None else None,
        }
    ours, sdk = result["ours"], result["sdk"]
    result["speedup"] = sdk["wall_s"] / ours["wall_s"]
    result["wasted_api_requests"] = ours["api_requests"] - expected
    result["differences"] = _differences(timed["ours"]["found"], timed["sdk"]["found"])
    if "assignments" in result["differences"]:
        result["differences"]["assignments"] += ": the SDK does not follow next_page_token"
    if limited:
        # Requests sent twice here are retries of the server's 429s (counted apart).
        result["targets"] = {"no_errors": ours["errors"] == 0}
    else:
        result["targets"] = {
            "no_wasted_request": result["wasted_api_requests"] == 0
            and ours["duplicate_requests"] == 0,
            "at_least_1.2x_faster": result["speedup"] >= 1.2,
        }
    # The SDK reads fewer assignments (it stops at the first page): all else must agree.
    result["met"] = all(result["targets"].values()) and set(result["differences"]) <= {
        "assignments"
    }
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))


@workload(
    "discovery",
    title="discover 1,000 groups x 50 members at 10 ms latency vs the SDK with 8 threads, s",
    order=60,
)
def discovery(settings: Settings) -> Row:
    """The discovery row: wall time and requests, ours vs the official SDK (8 threads)."""
    result = run(settings.quick, reps=settings.reps(3))
    ours, sdk = result["ours"], result["sdk"]
    return Row(
        unit="s",
        ours=ours["wall_s"],
        baseline=sdk["wall_s"],
        baseline_name="sdk 8 threads",
        ours_requests=ours["requests"],
        baseline_requests=sdk["requests"],
        target="0 wasted, ratio <= 0.83",
        met=None if settings.quick else bool(result.get("met")),
        details=result,
        ours_samples=result["wall_s"]["ours"],
        baseline_samples=result["wall_s"]["sdk"],
    )


@workload(
    "limits_discovery",
    title="discover 100 groups x 50 members under the published limits (GET 20/s), "
    "default settings, vs the SDK with 8 threads, s",
    order=62,
)
def limits_discovery(settings: Settings) -> Row:
    """Discovery when the server enforces the published rate limits."""
    result = run(settings.quick, reps=settings.reps(1), limited=True)
    ours, sdk = result["ours"], result["sdk"]
    return Row(
        unit="s",
        ours=ours["wall_s"],
        baseline=sdk["wall_s"],
        baseline_name="sdk 8 threads",
        ours_requests=ours["requests"],
        baseline_requests=sdk["requests"],
        target="0 errors, same inventory",
        met=None if settings.quick else bool(result.get("met")),
        details=result,
        ours_samples=result["wall_s"]["ours"],
        baseline_samples=result["wall_s"]["sdk"],
    )
