"""Roles, entitlements, `active`, names and emails on users, service principals and groups."""

from __future__ import annotations

import pytest

from databricks_access.testing import Behaviour, FakeAccount, MemberAnswer

from .conftest import patch_body

KINDS = ("Users", "ServicePrincipals", "Groups")


@pytest.fixture
def principals(fake: FakeAccount) -> dict[str, str]:
    return {
        "Users": fake.add_user("alice@example.com", "Alice", given_name="Alice"),
        "ServicePrincipals": fake.add_service_principal("bot", admin=False).id,
        "Groups": fake.add_group("readers"),
    }


# ---- roles and entitlements ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_roles_add_by_path_then_remove_by_filter(fake, api, scim, principals, kind):
    pid = principals[kind]
    add = patch_body({"op": "add", "path": "roles", "value": [{"value": "account_admin"}]})
    assert api.patch(f"{scim}/{kind}/{pid}", json=add).status_code in (200, 204)
    assert fake.roles(pid) == ("account_admin",)
    read = api.get(f"{scim}/{kind}/{pid}").json()
    assert [r["value"] for r in read["roles"]] == ["account_admin"]
    remove = patch_body({"op": "remove", "path": 'roles[value eq "account_admin"]'})
    assert api.patch(f"{scim}/{kind}/{pid}", json=remove).status_code in (200, 204)
    assert fake.roles(pid) == ()
    assert "roles" not in api.get(f"{scim}/{kind}/{pid}").json()


@pytest.mark.parametrize("kind", KINDS)
def test_roles_and_entitlements_path_less_replace_and_whole_remove(
    fake, api, scim, principals, kind
):
    pid = principals[kind]
    fake.set_roles(pid, ["old_role"])
    body = patch_body(
        {
            "op": "add",
            "value": {
                "roles": [{"value": "account_admin"}],
                "entitlements": [{"value": "allow-cluster-create"}],
            },
        }
    )
    assert api.patch(f"{scim}/{kind}/{pid}", json=body).status_code in (200, 204)
    assert fake.roles(pid) == ("old_role", "account_admin")
    assert fake.entitlements(pid) == ("allow-cluster-create",)
    replace = patch_body({"op": "replace", "path": "roles", "value": [{"value": "marketplace"}]})
    api.patch(f"{scim}/{kind}/{pid}", json=replace)
    assert fake.roles(pid) == ("marketplace",)
    api.patch(f"{scim}/{kind}/{pid}", json=patch_body({"op": "remove", "path": "entitlements"}))
    assert fake.entitlements(pid) == ()


def test_a_failed_patch_changes_no_role(fake, api, scim, principals):
    gid = principals["Groups"]
    body = patch_body(
        {"op": "add", "path": "roles", "value": [{"value": "account_admin"}]},
        {"op": "add", "path": "shoeSize", "value": "42"},
    )
    assert api.patch(f"{scim}/Groups/{gid}", json=body).status_code == 400
    assert fake.roles(gid) == ()


@pytest.mark.parametrize("kind", KINDS)
def test_create_keeps_roles_and_entitlements(fake, api, scim, kind):
    body: dict[str, object] = {
        "roles": [{"value": "account_admin"}],
        "entitlements": [{"value": "workspace-access"}],
    }
    if kind == "Users":
        body["userName"] = "carol@example.com"
    else:
        body["displayName"] = "carol"
    reply = api.post(f"{scim}/{kind}", json=body)
    assert reply.status_code == 201
    created = reply.json()
    assert fake.roles(created["id"]) == ("account_admin",)
    assert fake.entitlements(created["id"]) == ("workspace-access",)
    read = api.get(f"{scim}/{kind}/{created['id']}").json()
    assert [r["value"] for r in read["roles"]] == ["account_admin"]
    assert read["entitlements"] == [{"value": "workspace-access"}]


@pytest.mark.parametrize("kind", ["Users", "ServicePrincipals"])
def test_create_with_groups_joins_them(fake, api, scim, principals, kind):
    gid = principals["Groups"]
    body: dict[str, object] = {"groups": [{"value": gid}]}
    body.update({"userName": "dan@example.com"} if kind == "Users" else {"displayName": "dan"})
    created = api.post(f"{scim}/{kind}", json=body).json()
    assert created["id"] in fake.group_members(gid)


def test_create_with_an_unknown_group_creates_nothing(fake, api, scim):
    reply = api.post(
        f"{scim}/Users", json={"userName": "e@example.com", "groups": [{"value": "9"}]}
    )
    assert reply.status_code == 400
    assert fake.find_user("e@example.com") is None


def test_put_replaces_roles(fake, api, scim, principals):
    pid = principals["ServicePrincipals"]
    fake.set_roles(pid, ["account_admin"])
    reply = api.put(f"{scim}/ServicePrincipals/{pid}", json={"displayName": "bot"})
    assert reply.status_code == 200
    assert fake.roles(pid) == ()


def test_an_admin_role_given_by_patch_lets_the_service_principal_write(fake, api, scim):
    creds = fake.add_service_principal("late-admin", admin=False)
    token = fake.issue_token(creds.client_id)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.post(f"{scim}/Groups", json={"displayName": "x"}, headers=headers).status_code == 403
    add = patch_body({"op": "add", "path": "roles", "value": [{"value": "account_admin"}]})
    api.patch(f"{scim}/ServicePrincipals/{creds.id}", json=add)
    assert api.post(f"{scim}/Groups", json={"displayName": "x"}, headers=headers).status_code == 201


# ---- active ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [False, "false", "False", [{"value": "false"}], [{"value": False}]]
)
@pytest.mark.parametrize("kind", ["Users", "ServicePrincipals"])
def test_every_disable_form_disables(fake, api, scim, principals, kind, value):
    pid = principals[kind]
    body = patch_body({"op": "replace", "path": "active", "value": value})
    assert api.patch(f"{scim}/{kind}/{pid}", json=body).status_code in (200, 204)
    assert api.get(f"{scim}/{kind}/{pid}").json()["active"] is False
    enable = patch_body({"op": "replace", "value": {"active": "true"}})
    api.patch(f"{scim}/{kind}/{pid}", json=enable)
    assert api.get(f"{scim}/{kind}/{pid}").json()["active"] is True


@pytest.mark.parametrize("value", ["no", 0, [{"value": "maybe"}], [], None])
def test_other_active_values_are_400(api, scim, principals, value):
    pid = principals["Users"]
    body = patch_body({"op": "replace", "path": "active", "value": value})
    assert api.patch(f"{scim}/Users/{pid}", json=body).status_code == 400
    assert api.get(f"{scim}/Users/{pid}").json()["active"] is True


def test_create_accepts_active_as_text(fake, api, scim):
    reply = api.post(f"{scim}/Users", json={"userName": "f@example.com", "active": "false"})
    assert reply.status_code == 201
    assert reply.json()["active"] is False


# ---- service principal projections -----------------------------------------------------


def test_projected_service_principal_reads_keep_the_application_id(api, scim, principals):
    pid = principals["ServicePrincipals"]
    one = api.get(f"{scim}/ServicePrincipals/{pid}", params={"attributes": "displayName"}).json()
    assert one["applicationId"]
    assert set(one) == {"applicationId", "displayName", "id"}
    listed = api.get(f"{scim}/ServicePrincipals", params={"attributes": "id,displayName"}).json()
    assert all(r["applicationId"] for r in listed["Resources"])


# ---- sub-attribute paths ---------------------------------------------------------------


def test_name_sub_attributes(api, scim, principals):
    uid = principals["Users"]
    body = patch_body(
        {"op": "replace", "path": "name.givenName", "value": "Alicia"},
        {
            "op": "add",
            "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
            "value": "Liddell",
        },
    )
    assert api.patch(f"{scim}/Users/{uid}", json=body).status_code in (200, 204)
    assert api.get(f"{scim}/Users/{uid}").json()["name"] == {
        "givenName": "Alicia",
        "familyName": "Liddell",
    }
    api.patch(f"{scim}/Users/{uid}", json=patch_body({"op": "remove", "path": "name.familyName"}))
    assert api.get(f"{scim}/Users/{uid}").json()["name"] == {"givenName": "Alicia"}


def test_work_email_value_path(fake, api, scim, principals):
    uid = principals["Users"]
    body = patch_body(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "alice@new.example.com"}
    )
    assert api.patch(f"{scim}/Users/{uid}", json=body).status_code in (200, 204)
    emails = api.get(f"{scim}/Users/{uid}").json()["emails"]
    assert [e["value"] for e in emails] == ["alice@new.example.com"]
    # The old address is free again, the new one is taken.
    assert fake.add_user("bob@example.com", emails=["alice@example.com"])
    clash = patch_body(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "alice@example.com"}
    )
    assert api.patch(f"{scim}/Users/{uid}", json=clash).status_code == 409


def test_sub_attributes_are_refused_where_they_do_not_exist(api, scim, principals):
    gid, sid = principals["Groups"], principals["ServicePrincipals"]
    body = patch_body({"op": "replace", "path": "name.givenName", "value": "x"})
    assert api.patch(f"{scim}/ServicePrincipals/{sid}", json=body).status_code == 400
    email = patch_body({"op": "replace", "path": 'emails[type eq "work"].value', "value": "x@y"})
    assert api.patch(f"{scim}/Groups/{gid}", json=email).status_code == 400


def test_an_invalid_path_filter_is_invalid_filter(api, scim, principals):
    gid = principals["Groups"]
    body = patch_body({"op": "remove", "path": 'roles[value gt "a"]'})
    reply = api.patch(f"{scim}/Groups/{gid}", json=body)
    assert (reply.status_code, reply.json()["scimType"]) == (400, "InvalidFilter")


def test_the_admin_role_of_a_group_makes_its_members_admins(fake, api, scim):
    creds = fake.add_service_principal("member-of-admins", admin=False)
    outer = fake.add_group("admins")
    inner = fake.add_group("platform", members=[creds.id])
    fake.add_member(outer, inner)
    headers = {"Authorization": f"Bearer {fake.issue_token(creds.client_id)}"}
    assert api.post(f"{scim}/Groups", json={"displayName": "x"}, headers=headers).status_code == 403
    fake.set_roles(outer, ["account_admin"])
    assert api.post(f"{scim}/Groups", json={"displayName": "x"}, headers=headers).status_code == 201


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_put_changes_nothing(fake, api, scim, principals, kind):
    pid = principals[kind]
    fake.set_roles(pid, ["account_admin"])
    before = api.get(f"{scim}/{kind}/{pid}").json()
    body: dict[str, object] = {
        "displayName": "renamed",
        "externalId": 42,  # not a string: the whole PUT is refused
        "roles": [],
    }
    if kind == "Users":
        body["userName"] = "alice@example.com"
    assert api.put(f"{scim}/{kind}/{pid}", json=body).status_code == 400
    assert api.get(f"{scim}/{kind}/{pid}").json() == before
    assert fake.roles(pid) == ("account_admin",)


def test_removing_a_role_not_held_can_be_refused(fake, api, scim, principals):
    fake.behaviour = Behaviour(remove_missing_value=MemberAnswer.BAD_REQUEST)
    gid = principals["Groups"]
    fake.set_roles(gid, ["account_admin"])
    body = patch_body(
        {"op": "remove", "path": 'roles[value eq "account_admin"]'},
        {"op": "remove", "path": 'roles[value eq "nope"]'},
    )
    reply = api.patch(f"{scim}/Groups/{gid}", json=body)
    assert (reply.status_code, reply.json()["scimType"]) == (400, "noTarget")
    assert fake.roles(gid) == ("account_admin",)
