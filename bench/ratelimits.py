"""Writes under the server's rate limits: throttle client-side instead of provoking 429s."""

from __future__ import annotations

import time
from typing import Any

import databricks_access as da
from bench.harness import Row, Settings, sdk_account_client, workload
from databricks_access.testing import FakeAccount, FaultPlan, OperationClass, ServerRateLimits

SCALE = 50.0  # the published limits (GET 20/s, LIST 4/s, PATCH 2/s, writes 5/s) x 50


def _account(writes: int, groups: int) -> tuple[FakeAccount, Any, list[tuple[str, str]]]:
    fake = FakeAccount(log_size=None)
    creds = fake.add_service_principal("bench")
    seeded = fake.seed(users=writes, groups=groups, memberships=0, seed=11)
    pairs = [(uid, seeded.group_ids[i % groups]) for i, uid in enumerate(seeded.user_ids)]
    FaultPlan(rate_limits=ServerRateLimits(scale=SCALE)).install(fake)
    return fake, creds, pairs


def _ours(url: str, fake: FakeAccount, creds: Any, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    config = da.AccountConfig(
        host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
    )
    secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
    surfaced = 0
    limits = da.RateLimits.published(scale=SCALE)
    with da.AccountClient(config, secrets=secrets, rate_limits=limits) as client:
        client.workspaces.list().collect()  # the token, outside the timing
        started = time.perf_counter()
        for uid, gid in pairs:
            try:
                client.groups.add_members(gid, [uid])
            except da.RateLimitedError:
                surfaced += 1
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "surfaced_429": surfaced}


def _sdk(url: str, fake: FakeAccount, creds: Any, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    from databricks.sdk.errors import TooManyRequests  # noqa: PLC0415
    from databricks.sdk.service import iam  # noqa: PLC0415

    schemas = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]
    surfaced = 0
    with sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk:
        list(sdk.workspaces.list())
        started = time.perf_counter()
        for uid, gid in pairs:
            operation = iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": uid}])
            try:
                sdk.groups.patch(gid, operations=[operation], schemas=schemas)
            except TooManyRequests:
                surfaced += 1
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "surfaced_429": surfaced}


@workload(
    "rate_limited_writes",
    title="2,000 membership writes under the emulator's rate limits (published x50), s",
    order=90,
)
def rate_limited_writes(settings: Settings) -> Row:
    writes = settings.size(2_000, 150)
    groups = 20
    limits = ServerRateLimits(scale=SCALE)
    rate = limits.rate(OperationClass.PATCH)
    burst = rate  # the server's default bucket: one second's worth
    ideal = max(writes - burst, 0) / rate
    results: dict[str, dict[str, Any]] = {}
    for side, run in (("ours", _ours), ("sdk", _sdk)):
        fake, creds, pairs = _account(writes, groups)
        with fake.serve(process=True) as url:
            outcome = run(url, fake, creds, pairs)
        missing = sum(1 for uid, gid in pairs if uid not in fake.group_members(gid))
        outcome.update(
            requests=sum(fake.counts.values()),
            server_429=fake.faults.get("rate_limited", 0),
            missing=missing,
        )
        results[side] = outcome
    ours, sdk = results["ours"], results["sdk"]
    within = ours["seconds"] <= ideal * 1.10 + 0.5
    return Row(
        unit="s",
        ours=ours["seconds"],
        baseline=sdk["seconds"],
        baseline_name="sdk",
        ours_requests=ours["requests"],
        baseline_requests=sdk["requests"],
        target="0 429s surfaced, within 10% of ideal",
        met=None
        if settings.quick
        else ours["surfaced_429"] == 0 and ours["missing"] == 0 and within,
        details={
            "writes": writes,
            "patch_rate_per_s": rate,
            "ideal_s": ideal,
            "ours_over_ideal": ours["seconds"] / ideal if ideal else None,
            "ours": ours,
            "sdk": sdk,
        },
        ours_samples=[ours["seconds"]],
        baseline_samples=[sdk["seconds"]],
    )


# ---- the defaults under the published limits (scale 1) ---------------------------------------


def _limited_account(principals: int, groups: int) -> tuple[FakeAccount, Any, list[Any]]:
    """Principals and empty groups behind the published server-side limits, unscaled."""
    fake = FakeAccount(log_size=None)
    creds = fake.add_service_principal("bench")
    seeded = fake.seed(users=principals, groups=groups, memberships=0, seed=13)
    per_group = principals // groups
    pairs = [(uid, seeded.group_ids[i // per_group]) for i, uid in enumerate(seeded.user_ids)]
    FaultPlan(rate_limits=ServerRateLimits(scale=1)).install(fake)
    return fake, creds, pairs


def _ideal(patches: int) -> float:
    """Seconds PATCH 2/s allows for `patches` PATCHes, the first second's burst free."""
    limits = ServerRateLimits(scale=1)
    rate = limits.rate(OperationClass.PATCH) or 1.0
    return max(patches - rate, 0) / rate


def _bulk_ours(url: str, fake: FakeAccount, creds: Any, pairs: list[Any]) -> dict[str, Any]:
    config = da.AccountConfig(
        host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
    )
    secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
    refs = [(da.PrincipalRef(da.PrincipalKind.USER, uid), gid) for uid, gid in pairs]
    with da.AccountClient(config, secrets=secrets) as client:  # the default settings
        client.workspaces.list().collect()  # the token, outside the timing
        manager = da.MembershipManager(client)
        started = time.perf_counter()
        granted = manager.grant_many(refs)
        revoked = manager.revoke_many(refs)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "failures": len(granted.failures) + len(revoked.failures)}


def _bulk_sdk(url: str, fake: FakeAccount, creds: Any, pairs: list[Any]) -> dict[str, Any]:
    from bench.membership import _patch_per_group  # noqa: PLC0415 - one home for the baseline

    failures = 0
    with sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk:
        list(sdk.workspaces.list())
        started = time.perf_counter()
        for adding in (True, False):
            try:
                _patch_per_group(sdk, pairs, adding=adding)
            except Exception:
                failures += 1
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "failures": failures}


@workload(
    "limits_bulk",
    title="defaults under the published limits (PATCH 2/s): grant_many + revoke_many of "
    "1,000 principals / 20 groups vs the SDK per group, s",
    order=92,
)
def limits_bulk(settings: Settings) -> Row:
    principals = settings.size(1_000, 20)
    groups = settings.size(20, 2)
    patches = 2 * groups * -(-(principals // groups) // 100)
    ideal = _ideal(patches)
    results: dict[str, dict[str, Any]] = {}
    for side, run in (("ours", _bulk_ours), ("sdk", _bulk_sdk)):
        fake, creds, pairs = _limited_account(principals, groups)
        with fake.serve(process=True) as url:
            outcome = run(url, fake, creds, pairs)
        outcome.update(
            requests=sum(fake.counts.values()),
            patches=fake.counts[OperationClass.PATCH],
            server_429=fake.faults.get("rate_limited", 0),
            left=sum(1 for uid, gid in pairs if uid in fake.group_members(gid)),
        )
        results[side] = outcome
    ours, sdk = results["ours"], results["sdk"]
    return Row(
        unit="s",
        ours=ours["seconds"],
        baseline=sdk["seconds"],
        baseline_name="sdk/group",
        ours_requests=ours["requests"],
        baseline_requests=sdk["requests"],
        target="0 failures, <= 1.1x ideal",
        met=None
        if settings.quick
        else ours["failures"] == 0 and ours["left"] == 0 and ours["seconds"] <= 1.1 * ideal,
        details={
            "principals": principals,
            "groups": groups,
            "ideal_s": ideal,
            "ours_over_ideal": ours["seconds"] / ideal if ideal else None,
            "ours": ours,
            "sdk": sdk,
            "note": "one run per side (each is bound by the PATCH rate, not by CPU); "
            "ours: MembershipManager defaults (a read per group, then coalesced PATCHes); "
            "sdk: one groups.patch per group, its own retries on 429.",
        },
        ours_samples=[ours["seconds"]],
        baseline_samples=[sdk["seconds"]],
    )


def _sweep_limited(settings: Settings) -> tuple[dict[str, Any], dict[str, Any], float]:
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from bench.leases import _remove_per_group, _sweep_account  # noqa: PLC0415
    from databricks_access import SqliteLeaseStore  # noqa: PLC0415

    due = settings.size(2_000, 20)
    groups = settings.size(20, 2)
    ideal = _ideal(groups * -(-(due // groups) // 100))
    limits = FaultPlan(rate_limits=ServerRateLimits(scale=1))
    with tempfile.TemporaryDirectory() as tmp:
        # Ours: LeaseTracker.sweep() with the default settings, on the real clock (the
        # seeded leases expired long ago).
        fake, creds, pairs = _sweep_account(Path(tmp) / "ours.db", due, due, groups)
        limits.install(fake)
        with fake.serve(process=True) as url:
            config = da.AccountConfig(
                host=url,
                account_id=fake.account_id,
                allow_custom_host=True,
                allow_insecure_http=True,
            )
            secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
            with (
                da.AccountClient(config, secrets=secrets) as client,
                SqliteLeaseStore(Path(tmp) / "ours.db") as store,
            ):
                tracker = da.LeaseTracker(da.MembershipManager(client), store=store)
                client.workspaces.list().collect()
                started = time.perf_counter()
                report = tracker.sweep()
                seconds = time.perf_counter() - started
        ours = {
            "seconds": seconds,
            "revoked": len(report.revoked),
            "failed": len(report.failed),
            "requests": sum(fake.counts.values()),
            "patches": fake.counts[OperationClass.PATCH],
            "server_429": fake.faults.get("rate_limited", 0),
            "left": sum(1 for uid, gid in pairs if uid in fake.group_members(gid)),
        }
        fake, creds, pairs = _sweep_account(Path(tmp) / "sdk.db", due, due, groups)
        FaultPlan(rate_limits=ServerRateLimits(scale=1)).install(fake)
        with (
            fake.serve(process=True) as url,
            sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk,
        ):
            list(sdk.workspaces.list())
            started = time.perf_counter()
            _remove_per_group(sdk, pairs)
            sdk_seconds = time.perf_counter() - started
        theirs = {
            "seconds": sdk_seconds,
            "requests": sum(fake.counts.values()),
            "patches": fake.counts[OperationClass.PATCH],
            "server_429": fake.faults.get("rate_limited", 0),
            "left": sum(1 for uid, gid in pairs if uid in fake.group_members(gid)),
        }
    return ours, theirs, ideal


@workload(
    "limits_sweep",
    title="sweep() of 2,000 due leases / 20 groups under the published limits (PATCH 2/s), "
    "default settings, vs the SDK per group, s",
    order=94,
)
def limits_sweep(settings: Settings) -> Row:
    ours, sdk, ideal = _sweep_limited(settings)
    return Row(
        unit="s",
        ours=ours["seconds"],
        baseline=sdk["seconds"],
        baseline_name="sdk/group",
        ours_requests=ours["requests"],
        baseline_requests=sdk["requests"],
        target="0 failures, <= 1.1x ideal",
        met=None
        if settings.quick
        else ours["failed"] == 0 and ours["left"] == 0 and ours["seconds"] <= 1.1 * ideal,
        details={
            "ideal_s": ideal,
            "ours_over_ideal": ours["seconds"] / ideal if ideal else None,
            "ours": ours,
            "sdk": sdk,
            "note": "one run per side; ours: LeaseTracker.sweep() over SQLite with the "
            "default settings; sdk: only the removals, one groups.patch per group and 100 "
            "members.",
        },
        ours_samples=[ours["seconds"]],
        baseline_samples=[sdk["seconds"]],
    )
