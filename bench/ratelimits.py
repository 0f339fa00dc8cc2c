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
    )
