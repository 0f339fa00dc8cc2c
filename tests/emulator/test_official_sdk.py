"""The official `databricks-sdk` runs unchanged against the emulator served on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from databricks_access.testing import FakeAccount, OperationClass, SeedSummary

sdk = pytest.importorskip("databricks.sdk")
iam = pytest.importorskip("databricks.sdk.service.iam")

PATCH_SCHEMA = [iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No DATABRICKS_* variable and no ~/.databrickscfg can reach the SDK."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))


class Account:
    def __init__(self) -> None:
        self.fake = FakeAccount()
        self.creds = self.fake.add_service_principal("sdk-client")
        self.seeded: SeedSummary = self.fake.seed(
            users=250,
            groups=12,
            memberships=600,
            service_principals=3,
            workspaces=2,
            assignments_per_workspace=4,
            seed=11,
        )


@pytest.fixture
def account(isolated) -> Account:
    return Account()


@pytest.fixture
def client(account: Account) -> Iterator[object]:
    with account.fake.serve() as url:
        a = sdk.AccountClient(
            host=url,
            account_id=account.fake.account_id,
            client_id=account.creds.client_id,
            client_secret=account.creds.client_secret,
            auth_type="oauth-m2m",
        )
        try:
            yield a
        finally:
            a.api_client._api_client._session.close()


def _list_queries(fake: FakeAccount, resource: str) -> list[str]:
    return [
        r.query
        for r in fake.log
        if r.op_class is OperationClass.LIST and r.path.endswith(f"/scim/v2/{resource}")
    ]


def test_m2m_login_follows_the_emulator_documents(account: Account, client):
    assert client.groups.get(account.seeded.group_ids[0]).id == account.seeded.group_ids[0]
    fake = account.fake
    first = [(r.method, r.path.rsplit("/", 2)[-1], r.status) for r in fake.log[:4]]
    assert first == [
        ("GET", "databricks-config", 200),
        ("GET", "oauth-authorization-server", 200),
        ("POST", "token", 200),
        ("GET", account.seeded.group_ids[0], 200),
    ]
    assert fake.counts[OperationClass.TOKEN] == 1


def test_lists_page_by_start_index_until_an_empty_page(account: Account, client):
    users = list(client.users.list())
    assert len(users) == 250
    assert len({u.id for u in users}) == 250
    # count=10000 capped at 100 per page; the SDK pays one more, empty, page.
    assert _list_queries(account.fake, "Users") == [
        "startIndex=1&count=10000",
        "startIndex=101&count=10000",
        "startIndex=201&count=10000",
        "startIndex=251&count=10000",
    ]
    groups = list(client.groups.list(attributes="id,displayName"))
    assert sorted(g.display_name for g in groups) == [f"group-{i:04d}" for i in range(12)]
    assert not any(g.members for g in groups)  # a list never carries members
    principals = list(client.service_principals.list())
    assert len(principals) == 4


def test_filters(account: Account, client):
    (user,) = client.users.list(filter='userName eq "user00042@example.com"')
    assert user.id == account.seeded.user_ids[42]
    (group,) = client.groups.list(filter='displayName eq "group-0003"')
    assert group.id == account.seeded.group_ids[3]
    (sp,) = client.service_principals.list(filter=f'applicationId eq "{account.creds.client_id}"')
    assert sp.id == account.creds.id
    starting = list(client.users.list(filter='userName sw "user0000"'))
    assert len(starting) == 10


def test_get_a_group_with_its_members(account: Account, client):
    gid = account.seeded.group_ids[0]
    group = client.groups.get(gid)
    assert group.display_name == "group-0000"
    assert {m.value for m in group.members} == account.fake.group_members(gid)


def test_patch_membership_in_and_out(account: Account, client):
    fake = account.fake
    gid = account.seeded.group_ids[5]
    uid = next(u for u in account.seeded.user_ids if gid not in fake.groups_of(u))
    client.groups.patch(
        gid,
        operations=[iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": uid}])],
        schemas=PATCH_SCHEMA,
    )
    assert uid in fake.group_members(gid)
    client.groups.patch(
        gid,
        operations=[iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{uid}"]')],
        schemas=PATCH_SCHEMA,
    )
    assert uid not in fake.group_members(gid)
    assert fake.counts[OperationClass.PATCH] == 2


def test_workspace_assignments(account: Account, client):
    workspace = account.seeded.workspace_ids[0]
    listed = list(client.workspace_assignment.list(workspace_id=workspace))
    assigned = account.fake.assignments(workspace)
    assert {str(a.principal.principal_id) for a in listed} == set(assigned)
    assert all(a.permissions == [iam.WorkspacePermission.USER] for a in listed)
    assert all(a.principal.group_name for a in listed)


def test_rule_sets(account: Account, client):
    fake = account.fake
    gid = account.seeded.group_ids[1]
    fake.set_group_managers(gid, ["users/user00001@example.com"])
    name = f"accounts/{fake.account_id}/groups/{gid}/ruleSets/default"
    rule_set = client.access_control.get_rule_set(name=name, etag="")
    assert rule_set.name == name
    assert rule_set.etag
    (rule,) = rule_set.grant_rules
    assert rule.role == "roles/group.manager"
    assert rule.principals == ["users/user00001@example.com"]


def test_the_sdk_against_a_server_process(isolated):
    account = Account()
    fake = account.fake
    gid = account.seeded.group_ids[2]
    uid = next(u for u in account.seeded.user_ids if gid not in fake.groups_of(u))
    with fake.serve(process=True) as url:
        a = sdk.AccountClient(
            host=url,
            account_id=fake.account_id,
            client_id=account.creds.client_id,
            client_secret=account.creds.client_secret,
            auth_type="oauth-m2m",
        )
        try:
            a.groups.patch(
                gid,
                operations=[iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": uid}])],
                schemas=PATCH_SCHEMA,
            )
            assert len(list(a.groups.list(attributes="id"))) == 12
        finally:
            a.api_client._api_client._session.close()
    assert uid in fake.group_members(gid)
    assert fake.counts[OperationClass.PATCH] == 1
    assert fake.counts[OperationClass.TOKEN] == 1
