"""Seeding: sizes, determinism, and a large account built quickly."""

from __future__ import annotations

import pytest

from databricks_access.testing import FakeAccount, SeedSummary


def test_seed_sizes(fake):
    summary = fake.seed(
        users=300,
        groups=20,
        memberships=1_000,
        service_principals=3,
        workspaces=2,
        assignments_per_workspace=5,
    )
    assert isinstance(summary, SeedSummary)
    assert len(summary.user_ids) == 300
    assert len(summary.group_ids) == 20
    assert len(summary.service_principals) == 3
    assert len(summary.workspace_ids) == 2
    assert summary.memberships == 1_000
    assert sum(len(fake.group_members(g)) for g in summary.group_ids) == 1_000
    assert sum(len(fake.groups_of(u)) for u in summary.user_ids) == 1_000
    for workspace in summary.workspace_ids:
        assert len(fake.assignments(workspace)) == 5


def test_seed_names(fake):
    summary = fake.seed(users=3, groups=2, service_principals=1, workspaces=1, prefix="t-")
    assert fake.find_user("t-user00002@example.com") == summary.user_ids[2]
    assert fake.find_group("t-group-0001") == summary.group_ids[1]
    creds = summary.service_principals[0]
    assert fake.find_service_principal(creds.client_id) == creds.id
    assert "client_secret" not in repr(summary)


def test_seeded_service_principals_can_log_in(fake, api):
    creds = fake.seed(users=0, groups=0, service_principals=1).service_principals[0]
    reply = api.post(
        f"/oidc/accounts/{fake.account_id}/v1/token",
        data={"grant_type": "client_credentials", "scope": "all-apis"},
        auth=(creds.client_id, creds.client_secret),
    )
    assert reply.status_code == 200


def test_default_memberships_are_twice_the_users(fake):
    assert fake.seed(users=50, groups=10).memberships == 100
    assert FakeAccount().seed(users=5, groups=1).memberships == 5  # capped at users * groups


def snapshot(fake: FakeAccount, summary: SeedSummary) -> tuple:
    return (
        summary.user_ids,
        summary.group_ids,
        summary.workspace_ids,
        tuple(c.client_id for c in summary.service_principals),
        tuple(sorted(fake.group_members(g)) for g in summary.group_ids),
    )


def test_seed_is_deterministic():
    runs = []
    for _ in range(2):
        fake = FakeAccount()
        summary = fake.seed(
            users=500,
            groups=30,
            memberships=2_000,
            service_principals=2,
            workspaces=2,
            assignments_per_workspace=3,
            seed=11,
        )
        runs.append(snapshot(fake, summary))
    assert runs[0] == runs[1]
    other = FakeAccount()
    assert (
        snapshot(
            other,
            other.seed(
                users=500,
                groups=30,
                memberships=2_000,
                service_principals=2,
                workspaces=2,
                assignments_per_workspace=3,
                seed=12,
            ),
        )
        != runs[0]
    )


def test_seed_twice_needs_a_prefix(fake):
    fake.seed(users=2, groups=1)
    with pytest.raises(ValueError, match="already exists"):
        fake.seed(users=2, groups=1)
    fake.seed(users=2, groups=1, prefix="b-")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": -1},
        {"groups": -2},
        {"users": 2, "groups": 2, "memberships": 5},
        {"memberships": -1},
    ],
)
def test_seed_rejects_bad_counts(fake, kwargs):
    with pytest.raises(ValueError, match="must"):
        fake.seed(**kwargs)


def test_large_seed_completes_and_serves(api):
    # The size of the performance promise (50k users, 2k groups, 100k memberships); the
    # time is measured by the benchmarks, never asserted here.
    fake = FakeAccount(require_auth=False)
    summary = fake.seed(
        users=50_000,
        groups=2_000,
        memberships=100_000,
        service_principals=5,
        workspaces=3,
        assignments_per_workspace=50,
    )
    assert len(summary.user_ids) == 50_000
    reply = fake.dispatch("GET", f"{fake.scim_path}/Users?startIndex=49901&count=100")
    assert reply.json()["itemsPerPage"] == 100
    assert reply.json()["totalResults"] == 50_000
    found = fake.dispatch(
        "GET", f"{fake.scim_path}/Users?filter=userName%20eq%20%22user49999%40example.com%22"
    )
    assert [r["id"] for r in found.json()["Resources"]] == [summary.user_ids[-1]]
