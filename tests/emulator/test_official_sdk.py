"""The official `databricks-sdk` runs unchanged against the emulator served on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from databricks_access.testing import FakeAccount, Fault, FaultPlan, OperationClass, SeedSummary

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


# ---- beyond membership: roles, principals' lifecycle, rule sets, secrets -----------------

ADMIN_ROLE = [iam.ComplexValue(value="account_admin")]


def _role_values(resource) -> list[str]:
    return [r.value for r in resource.roles or []]


def test_group_roles_create_patch_and_remove(account: Account, client):
    fake = account.fake
    group = client.groups.create(display_name="admins-by-sdk", roles=ADMIN_ROLE)
    assert fake.roles(group.id) == ("account_admin",)
    assert _role_values(client.groups.get(group.id)) == ["account_admin"]
    client.groups.patch(
        group.id,
        operations=[iam.Patch(op=iam.PatchOp.REMOVE, path='roles[value eq "account_admin"]')],
        schemas=PATCH_SCHEMA,
    )
    assert fake.roles(group.id) == ()
    client.groups.patch(
        group.id,
        operations=[iam.Patch(op=iam.PatchOp.ADD, value={"roles": [{"value": "account_admin"}]})],
        schemas=PATCH_SCHEMA,
    )
    assert fake.roles(group.id) == ("account_admin",)


def test_user_lifecycle(account: Account, client):
    fake = account.fake
    gid = account.seeded.group_ids[0]
    user = client.users.create(
        user_name="new.hire@example.com",
        display_name="New Hire",
        roles=ADMIN_ROLE,
        entitlements=[iam.ComplexValue(value="allow-cluster-create")],
        groups=[iam.ComplexValue(value=gid)],
    )
    assert fake.roles(user.id) == ("account_admin",)
    assert fake.entitlements(user.id) == ("allow-cluster-create",)
    assert user.id in fake.group_members(gid)
    # The SDK's own example disables a user with the string "false".
    client.users.patch(
        user.id,
        operations=[iam.Patch(op=iam.PatchOp.REPLACE, path="active", value="false")],
        schemas=PATCH_SCHEMA,
    )
    assert client.users.get(user.id).active is False
    client.users.patch(
        user.id,
        operations=[
            iam.Patch(op=iam.PatchOp.REPLACE, path="name.givenName", value="Newt"),
            iam.Patch(
                op=iam.PatchOp.REPLACE,
                path='emails[type eq "work"].value',
                value="newt@example.com",
            ),
        ],
        schemas=PATCH_SCHEMA,
    )
    read = client.users.get(user.id)
    assert read.name.given_name == "Newt"
    assert [e.value for e in read.emails] == ["newt@example.com"]
    client.users.update(user.id, user_name="new.hire@example.com", display_name="Renamed")
    assert client.users.get(user.id).display_name == "Renamed"
    assert fake.roles(user.id) == ()  # a PUT replaces the roles too
    client.users.delete(user.id)
    assert fake.find_user("new.hire@example.com") is None


def test_service_principal_lifecycle(account: Account, client):
    fake = account.fake
    sp = client.service_principals.create(display_name="etl-bot", roles=ADMIN_ROLE)
    assert sp.application_id
    assert fake.roles(sp.id) == ("account_admin",)
    projected = list(client.service_principals.list(attributes="id,displayName"))
    assert all(p.application_id for p in projected)
    client.service_principals.patch(
        sp.id,
        operations=[iam.Patch(op=iam.PatchOp.REPLACE, path="active", value=[{"value": "false"}])],
        schemas=PATCH_SCHEMA,
    )
    assert client.service_principals.get(sp.id).active is False
    client.service_principals.update(
        sp.id, display_name="etl-bot-2", application_id=sp.application_id
    )
    assert client.service_principals.get(sp.id).display_name == "etl-bot-2"
    client.service_principals.delete(sp.id)
    assert fake.find_service_principal(sp.application_id) is None


def test_service_principal_and_account_rule_sets(account: Account, client):
    fake = account.fake
    app_id = account.seeded.service_principals[0].client_id
    name = f"accounts/{fake.account_id}/servicePrincipals/{app_id}/ruleSets/default"
    current = client.access_control.get_rule_set(name=name, etag="")
    updated = client.access_control.update_rule_set(
        name=name,
        rule_set=iam.RuleSetUpdateRequest(
            name=name,
            etag=current.etag,
            grant_rules=[
                iam.GrantRule(
                    role="roles/servicePrincipal.user",
                    principals=["users/user00001@example.com"],
                )
            ],
        ),
    )
    assert updated.etag != current.etag
    assert fake.grant_rules(name) == {
        "roles/servicePrincipal.user": ("users/user00001@example.com",)
    }
    account_name = f"accounts/{fake.account_id}/ruleSets/default"
    assert client.access_control.get_rule_set(name=account_name, etag="").etag
    roles = client.access_control.get_assignable_roles_for_resource(
        resource=f"accounts/{fake.account_id}/servicePrincipals/{app_id}"
    )
    assert {r.name for r in roles.roles} == {
        "roles/servicePrincipal.user",
        "roles/servicePrincipal.manager",
    }


def test_service_principal_secrets(account: Account, client):
    fake = account.fake
    sp = account.seeded.service_principals[0]
    created = client.service_principal_secrets.create(service_principal_id=sp.id)
    assert created.secret
    listed = list(client.service_principal_secrets.list(service_principal_id=sp.id))
    assert created.id in {s.id for s in listed}
    with fake.serve() as url:
        other = sdk.AccountClient(
            host=url,
            account_id=fake.account_id,
            client_id=sp.client_id,
            client_secret=created.secret,
            auth_type="oauth-m2m",
        )
        try:
            assert other.groups.get(account.seeded.group_ids[0]).id
        finally:
            other.api_client._api_client._session.close()
    client.service_principal_secrets.delete(service_principal_id=sp.id, secret_id=created.id)
    assert created.id not in fake.secret_ids(sp.client_id)


def test_workspace_assignment_get_update_delete(account: Account, client):
    fake = account.fake
    workspace = account.seeded.workspace_ids[1]
    permissions = client.workspace_assignment.get(workspace_id=workspace)
    assert {p.permission_level for p in permissions.permissions} == {
        iam.WorkspacePermission.USER,
        iam.WorkspacePermission.ADMIN,
    }
    uid = account.seeded.user_ids[7]
    client.workspace_assignment.update(
        workspace_id=workspace, principal_id=int(uid), permissions=[iam.WorkspacePermission.ADMIN]
    )
    assert fake.assignments(workspace)[uid] == ("ADMIN",)
    client.workspace_assignment.delete(workspace_id=workspace, principal_id=int(uid))
    assert uid not in fake.assignments(workspace)


def test_direct_members_of_the_identity_api(account: Account, client):
    iamv2 = pytest.importorskip("databricks.sdk.service.iamv2")
    fake = account.fake
    gid = account.seeded.group_ids[4]
    parent = f"accounts/{fake.account_id}/groups/{gid}"
    uid = next(u for u in account.seeded.user_ids if gid not in fake.groups_of(u))
    added = client.iam_v2.create_direct_group_member(
        parent=parent, direct_group_member=iamv2.DirectGroupMember(principal_id=int(uid))
    )
    assert added.principal_type == iamv2.PrincipalType.USER
    assert uid in fake.group_members(gid)
    listed = list(client.iam_v2.list_direct_group_members(parent=parent, page_size=10))
    assert {str(m.principal_id) for m in listed} == fake.group_members(gid)
    one = client.iam_v2.get_direct_group_member(name=f"{parent}/direct-members/{uid}")
    assert one.principal_id == int(uid)
    client.iam_v2.delete_direct_group_member(name=f"{parent}/direct-members/{uid}")
    assert uid not in fake.group_members(gid)


def test_the_v2_scim_services_see_roles_too(account: Account, client):
    fake = account.fake
    group = client.groups_v2.create(display_name="v2-admins", roles=ADMIN_ROLE)
    assert _role_values(client.groups_v2.get(group.id)) == ["account_admin"]
    user = client.users_v2.create(user_name="v2.user@example.com", roles=ADMIN_ROLE)
    read = client.users_v2.get(user.id, attributes="id,userName,roles")
    assert _role_values(read) == ["account_admin"]
    client.users_v2.patch(
        user.id,
        operations=[iam.Patch(op=iam.PatchOp.REMOVE, path='roles[value eq "account_admin"]')],
        schemas=PATCH_SCHEMA,
    )
    assert fake.roles(user.id) == ()
    sp = client.service_principals_v2.create(display_name="v2-bot")
    client.service_principals_v2.patch(
        sp.id,
        operations=[
            iam.Patch(op=iam.PatchOp.ADD, path="roles", value=[{"value": "account_admin"}])
        ],
        schemas=PATCH_SCHEMA,
    )
    (listed,) = client.service_principals_v2.list(
        filter=f'applicationId eq "{sp.application_id}"', attributes="displayName,roles"
    )
    assert listed.application_id == sp.application_id
    assert _role_values(listed) == ["account_admin"]
    admins = [
        u.id for u in client.users.list(attributes="id,roles") if "account_admin" in _role_values(u)
    ]
    assert admins == []


def test_a_token_endpoint_fault_reaches_the_sdk_in_oauth_form(isolated):
    account = Account()
    FaultPlan([Fault.error(503, op_class="token")]).install(account.fake)
    with account.fake.serve() as url:
        a = sdk.AccountClient(
            host=url,
            account_id=account.fake.account_id,
            client_id=account.creds.client_id,
            client_secret=account.creds.client_secret,
            auth_type="oauth-m2m",
        )
        try:
            with pytest.raises(Exception, match="temporarily_unavailable") as info:
                a.groups.get(account.seeded.group_ids[0])
        finally:
            a.api_client._api_client._session.close()
    assert "unknown: unknown" not in str(info.value)
