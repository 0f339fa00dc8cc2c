"""Bulk membership: many (principal, group) grants over loopback."""

from __future__ import annotations

import functools
from typing import Any

import databricks_access as da
from bench.harness import Row, Settings, median, sdk_account_client, timed, workload
from databricks_access.testing import (
    FakeAccount,
    OperationClass,
    SeedSummary,
    ServicePrincipalCredentials,
)


def _account(
    principals: int, groups: int
) -> tuple[FakeAccount, ServicePrincipalCredentials, SeedSummary]:
    """The same account every time: `principals` users, `groups` empty groups."""
    fake = FakeAccount()
    creds = fake.add_service_principal("bench")
    seeded = fake.seed(users=principals, groups=groups, memberships=0, seed=7)
    return fake, creds, seeded


def _pairs(seeded: SeedSummary, per_group: int) -> list[tuple[str, str]]:
    return [(uid, seeded.group_ids[i // per_group]) for i, uid in enumerate(seeded.user_ids)]


def _check(fake: FakeAccount, pairs: list[tuple[str, str]]) -> None:
    missing = [(u, g) for u, g in pairs if u not in fake.group_members(g)]
    if missing:
        raise AssertionError(f"{len(missing)} grants are missing, e.g. {missing[0]}")


def _grant(
    manager: da.MembershipManager,
    refs: list[tuple[da.PrincipalRef, str]],
    batches: list[da.MembershipBatch[da.GrantResult]],
) -> None:
    batches.append(manager.grant_many(refs))


def _patch_each(sdk: Any, pairs: list[tuple[str, str]]) -> None:
    """One PATCH per pair, as the official SDK's API invites."""
    from databricks.sdk.service import iam  # noqa: PLC0415 - 3 s to import: only when used

    schemas = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]
    for uid, gid in pairs:
        operation = iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": uid}])
        sdk.groups.patch(gid, operations=[operation], schemas=schemas)


@workload(
    "grant_many",
    title="grant N principals into G groups over loopback (server process), ms",
    order=40,
)
def grant_many(settings: Settings) -> Row:
    principals = settings.size(1_000, 100)
    groups = settings.size(20, 4)
    per_group = principals // groups
    reps = settings.reps(3)
    seconds: dict[str, list[float]] = {"ours": [], "sdk": []}
    requests: dict[str, int] = {"ours": 0, "sdk": 0}
    patches: dict[str, int] = {"ours": 0, "sdk": 0}

    for _ in range(reps):
        # Ours: MembershipManager.grant_many, PATCHes coalesced per group.
        fake, creds, seeded = _account(principals, groups)
        pairs = _pairs(seeded, per_group)
        refs = [(da.PrincipalRef(da.PrincipalKind.USER, uid), gid) for uid, gid in pairs]
        with fake.serve(process=True) as url:
            config = da.AccountConfig(
                host=url,
                account_id=fake.account_id,
                allow_custom_host=True,
                allow_insecure_http=True,
            )
            with da.AccountClient(
                config, secrets=da.StaticSecretStore(creds.client_id, creds.client_secret)
            ) as client:
                manager = da.MembershipManager(client)
                batches: list[da.MembershipBatch[da.GrantResult]] = []
                seconds["ours"].append(timed(functools.partial(_grant, manager, refs, batches)))
                if not batches[0].ok:
                    raise AssertionError(f"grant_many failed: {batches[0].failures[:1]}")
        _check(fake, pairs)
        requests["ours"] = sum(fake.counts.values())
        patches["ours"] = fake.counts[OperationClass.PATCH]

        # The official SDK: one groups.patch per pair, as its API invites.
        fake, creds, seeded = _account(principals, groups)
        with (
            fake.serve(process=True) as url,
            sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk,
        ):
            seconds["sdk"].append(timed(functools.partial(_patch_each, sdk, pairs)))
        _check(fake, pairs)
        requests["sdk"] = sum(fake.counts.values())
        patches["sdk"] = fake.counts[OperationClass.PATCH]

    ours_ms = median(seconds["ours"]) * 1000
    sdk_ms = median(seconds["sdk"]) * 1000
    return Row(
        unit="ms",
        ours=ours_ms,
        baseline=sdk_ms,
        baseline_name="sdk",
        ours_requests=requests["ours"],
        baseline_requests=requests["sdk"],
        target="ours <= 60 requests, ratio <= 0.1",
        met=requests["ours"] <= 60 and ours_ms / sdk_ms <= 0.1,
        details={
            "principals": principals,
            "groups": groups,
            "repetitions": reps,
            "patches": patches,
            "speedup": sdk_ms / ours_ms,
            "wall_s": seconds,
            "note": "Requests include discovery and the token; the SDK's client is built (host metadata, OIDC discovery) before timing.",
        },
    )
