"""SCIM writes: create, replace, delete, PATCH, conflicts and the switchable answers."""

from __future__ import annotations

import pytest

from databricks_access.testing import Behaviour, FakeAccount, MemberAnswer, OperationClass

from .conftest import add_members, patch_body, remove_member


@pytest.fixture
def trio(fake: FakeAccount) -> tuple[str, str, str]:
    alice = fake.add_user("alice@example.com", "Alice")
    bob = fake.add_user("bob@example.com", "Bob")
    bot = fake.add_service_principal("bot").id
    return alice, bob, bot


@pytest.fixture
def group(fake: FakeAccount) -> str:
    return fake.add_group("readers")


# ---- create ----------------------------------------------------------------------------


def test_create_group_with_members(fake, api, scim, trio):
    alice, _, bot = trio
    reply = api.post(
        f"{scim}/Groups",
        json={"displayName": "team", "members": [{"value": alice}, {"value": bot}]},
    )
    assert reply.status_code == 201
    body = reply.json()
    assert body["displayName"] == "team"
    assert [m["value"] for m in body["members"]] == [alice, bot]
    assert fake.find_group("team") == body["id"]
    assert fake.group_members(body["id"]) == {alice, bot}


def test_create_user(fake, api, scim):
    reply = api.post(
        f"{scim}/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "carol@example.com",
            "displayName": "Carol",
            "name": {"givenName": "Carol", "familyName": "King"},
            "emails": [{"value": "carol@example.com", "primary": True}],
            "active": True,
            "externalId": "idp-1",
        },
    )
    assert reply.status_code == 201
    body = reply.json()
    assert body["id"].isdigit()
    assert body["name"] == {"givenName": "Carol", "familyName": "King"}
    assert fake.find_user("CAROL@example.com") == body["id"]


def test_create_service_principal(fake, api, scim):
    reply = api.post(f"{scim}/ServicePrincipals", json={"displayName": "etl"})
    assert reply.status_code == 201
    body = reply.json()
    assert fake.find_service_principal(body["applicationId"]) == body["id"]
    given = api.post(
        f"{scim}/ServicePrincipals", json={"applicationId": "11111111-2222-4333-8444-555555555555"}
    )
    assert given.json()["displayName"] == "11111111-2222-4333-8444-555555555555"


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("Groups", {"displayName": "readers"}, "Group with name readers already exists."),
        ("Groups", {"displayName": "READERS"}, "Group with name READERS already exists."),
        (
            "Users",
            {"userName": "alice@example.com"},
            "User with username alice@example.com already exists.",
        ),
        (
            "Users",
            {"userName": "alice2", "emails": [{"value": "bob@example.com"}]},
            "User with email bob@example.com already exists in this account",
        ),
        (
            "ServicePrincipals",
            {"applicationId": "6f1c2a86-7f5c-4d3e-9a1b-2c3d4e5f6a7b"},
            "Service principal with application ID 6f1c2a86-7f5c-4d3e-9a1b-2c3d4e5f6a7b already exists.",
        ),
    ],
)
def test_conflicts_carry_the_real_messages(fake, api, scim, trio, group, kind, body, message):
    fake.add_service_principal("etl", "6f1c2a86-7f5c-4d3e-9a1b-2c3d4e5f6a7b")
    reply = api.post(f"{scim}/{kind}", json=body)
    assert reply.status_code == 409
    assert reply.json()["detail"] == message
    assert reply.json()["status"] == "409"


def test_builders_raise_the_same_conflicts(fake, group):
    with pytest.raises(ValueError, match=r"Group with name readers already exists\."):
        fake.add_group("readers")
    fake.add_user("a@example.com")
    with pytest.raises(ValueError, match=r"User with username A@example\.com already exists\."):
        fake.add_user("A@example.com")


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("Groups", {}),
        ("Groups", {"displayName": ""}),
        ("Groups", {"displayName": 5}),
        ("Users", {"displayName": "x"}),
        ("Users", {"userName": "x", "active": "yes"}),
        ("Users", {"userName": "x", "emails": "x@example.com"}),
        ("Users", {"userName": "x", "emails": [{"type": "work"}]}),
        ("Users", {"userName": "x", "name": "X"}),
        ("Groups", {"displayName": "x", "members": ["123"]}),
        ("Groups", {"displayName": "x", "members": "123"}),
    ],
)
def test_invalid_bodies_are_400(api, scim, kind, body):
    reply = api.post(f"{scim}/{kind}", json=body)
    assert reply.status_code == 400
    assert reply.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 100_000])
def test_malformed_json_is_400(fake, scim, group, body):
    headers = {"Authorization": f"Bearer {fake.static_token()}"}
    for method, path in (
        ("POST", f"{scim}/Groups"),
        ("PATCH", f"{scim}/Groups/{group}"),
        ("PUT", f"{scim}/Groups/{group}"),
    ):
        reply = fake.dispatch(method, path, headers, body)
        assert reply.status == 400
        assert reply.json()["scimType"] == "invalidSyntax"


# ---- replace and delete ----------------------------------------------------------------


def test_put_group_replaces_members_and_name(fake, api, scim, trio, group):
    alice, bob, _ = trio
    fake.add_member(group, alice)
    reply = api.put(
        f"{scim}/Groups/{group}", json={"displayName": "renamed", "members": [{"value": bob}]}
    )
    assert reply.status_code == 200
    assert reply.json()["displayName"] == "renamed"
    assert fake.group_members(group) == {bob}
    assert fake.find_group("renamed") == group
    assert fake.find_group("readers") is None


def test_put_without_members_wipes_them(fake, api, scim, trio, group):
    fake.add_member(group, trio[0])
    assert api.put(f"{scim}/Groups/{group}", json={"displayName": "readers"}).status_code == 200
    assert fake.group_members(group) == frozenset()


def test_put_user_and_conflict(fake, api, scim, trio):
    alice, _, _ = trio
    reply = api.put(
        f"{scim}/Users/{alice}", json={"userName": "alice@new.example", "active": False}
    )
    assert reply.status_code == 200
    assert reply.json()["userName"] == "alice@new.example"
    assert reply.json()["active"] is False
    assert fake.find_user("alice@new.example") == alice
    assert fake.find_user("alice@example.com") is None
    clash = api.put(f"{scim}/Users/{alice}", json={"userName": "bob@example.com"})
    assert clash.status_code == 409


def test_put_service_principal(fake, api, scim):
    creds = fake.add_service_principal("etl")
    reply = api.put(f"{scim}/ServicePrincipals/{creds.id}", json={"displayName": "etl-2"})
    assert reply.json()["displayName"] == "etl-2"
    moved = api.put(f"{scim}/ServicePrincipals/{creds.id}", json={"applicationId": "other"})
    assert moved.status_code == 400
    assert moved.json()["scimType"] == "mutability"


def test_delete_removes_memberships_and_assignments(fake, api, scim, trio, group):
    alice, _, _ = trio
    fake.add_member(group, alice)
    workspace = fake.add_workspace("ws")
    fake.assign(workspace, alice)
    reply = api.delete(f"{scim}/Users/{alice}")
    assert reply.status_code == 204
    assert reply.content == b""
    assert fake.group_members(group) == frozenset()
    assert fake.assignments(workspace) == {}
    assert api.get(f"{scim}/Users/{alice}").status_code == 404
    assert api.delete(f"{scim}/Users/{alice}").status_code == 404


def test_delete_group_removes_it_from_parents(fake, api, scim, trio):
    inner = fake.add_group("inner", members=[trio[0]])
    outer = fake.add_group("outer", members=[inner])
    assert api.delete(f"{scim}/Groups/{inner}").status_code == 204
    assert fake.group_members(outer) == frozenset()
    assert fake.groups_of(trio[0]) == frozenset()


# ---- PATCH -----------------------------------------------------------------------------


def test_patch_adds_several_members_at_once(fake, api, scim, trio, group):
    reply = api.patch(f"{scim}/Groups/{group}", json=add_members(*trio))
    assert (reply.status_code, reply.json()) == (200, {})
    assert fake.group_members(group) == set(trio)
    assert fake.counts[OperationClass.PATCH] == 1


def test_patch_removes_several_members(fake, api, scim, trio, group):
    alice, bob, bot = trio
    for member in trio:
        fake.add_member(group, member)
    body = patch_body(
        {"op": "remove", "path": f'members[value eq "{alice}"]'},
        {"op": "Remove", "path": f'members[value eq "{bot}"]'},
    )
    assert api.patch(f"{scim}/Groups/{group}", json=body).status_code == 200
    assert fake.group_members(group) == {bob}


def test_patch_add_without_path(fake, api, scim, trio, group):
    body = patch_body({"op": "ADD", "value": {"members": [{"value": trio[0]}]}})
    assert api.patch(f"{scim}/Groups/{group}", json=body).status_code == 200
    assert fake.group_members(group) == {trio[0]}


def test_patch_add_accepts_a_single_object(fake, api, scim, trio, group):
    body = patch_body({"op": "add", "path": "members", "value": {"value": trio[0]}})
    assert api.patch(f"{scim}/Groups/{group}", json=body).status_code == 200
    assert fake.group_members(group) == {trio[0]}


def test_patch_replace_display_name(fake, api, scim, group):
    body = patch_body({"op": "replace", "path": "displayName", "value": "writers"})
    assert api.patch(f"{scim}/Groups/{group}", json=body).status_code == 200
    assert fake.find_group("writers") == group
    fake.add_group("other")
    clash = patch_body({"op": "replace", "value": {"displayName": "other"}})
    reply = api.patch(f"{scim}/Groups/{group}", json=clash)
    assert reply.status_code == 409
    assert reply.json()["detail"] == "Group with name other already exists."


def test_patch_replace_and_remove_all_members(fake, api, scim, trio, group):
    alice, bob, _ = trio
    fake.add_member(group, alice)
    body = patch_body({"op": "replace", "path": "members", "value": [{"value": bob}]})
    assert api.patch(f"{scim}/Groups/{group}", json=body).status_code == 200
    assert fake.group_members(group) == {bob}
    assert (
        api.patch(
            f"{scim}/Groups/{group}", json=patch_body({"op": "remove", "path": "members"})
        ).status_code
        == 200
    )
    assert fake.group_members(group) == frozenset()


def test_patch_remove_with_value_is_400_and_changes_nothing(fake, api, scim, trio, group):
    fake.add_member(group, trio[0])
    body = patch_body({"op": "remove", "path": f'members[value eq "{trio[0]}"]', "value": ""})
    reply = api.patch(f"{scim}/Groups/{group}", json=body)
    assert reply.status_code == 400
    assert reply.json()["scimType"] == "invalidSyntax"
    assert "value" in reply.json()["detail"]
    assert fake.group_members(group) == {trio[0]}


def test_patch_is_atomic(fake, api, scim, trio, group):
    body = patch_body(
        {"op": "add", "path": "members", "value": [{"value": trio[0]}]},
        {"op": "frobnicate", "path": "members"},
    )
    assert api.patch(f"{scim}/Groups/{group}", json=body).status_code == 400
    assert fake.group_members(group) == frozenset()


@pytest.mark.parametrize(
    "body",
    [
        {"Operations": []},
        {"operations": [{"op": "add", "path": "members", "value": []}]},
        {"schemas": ["urn:wrong"], "Operations": [{"op": "add", "path": "members", "value": []}]},
        patch_body("not an object"),
        patch_body({"path": "members"}),
        patch_body({"op": "add", "path": "members"}),
        patch_body({"op": "add", "path": "members", "value": "123"}),
        patch_body({"op": "add", "path": "members", "value": [{"value": 123}]}),
        patch_body({"op": "add", "path": "roles", "value": "account_admin"}),
        patch_body({"op": "add", "path": "shoeSize", "value": "42"}),
        patch_body({"op": "add", "path": 5, "value": []}),
        patch_body({"op": "add", "value": "x"}),
        patch_body({"op": "remove"}),
        patch_body({"op": "remove", "path": "displayName"}),
        patch_body({"op": "remove", "path": 'members[value gt "1"]'}),
        patch_body({"op": "remove", "path": 'members[value eq "1"'}),
        patch_body({"op": "replace", "path": "displayName", "value": ""}),
    ],
)
def test_bad_patches_are_400(api, scim, group, body):
    reply = api.patch(f"{scim}/Groups/{group}", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["status"] == "400"


def test_patch_cannot_make_a_group_its_own_member(api, scim, group):
    assert api.patch(f"{scim}/Groups/{group}", json=add_members(group)).status_code == 400


def test_patch_users_and_service_principals(fake, api, scim, trio):
    alice, _, bot = trio
    body = patch_body(
        {"op": "replace", "path": "displayName", "value": "Alice A."},
        {"op": "replace", "value": {"active": False, "externalId": "x-1"}},
    )
    assert api.patch(f"{scim}/Users/{alice}", json=body).status_code == 200
    user = api.get(f"{scim}/Users/{alice}").json()
    assert (user["displayName"], user["active"], user["externalId"]) == ("Alice A.", False, "x-1")
    rename = patch_body({"op": "replace", "path": "userName", "value": "bob@example.com"})
    assert api.patch(f"{scim}/Users/{alice}", json=rename).status_code == 409
    unset = patch_body({"op": "remove", "path": "externalId"})
    assert api.patch(f"{scim}/Users/{alice}", json=unset).status_code == 200
    assert "externalId" not in api.get(f"{scim}/Users/{alice}").json()
    sp = patch_body({"op": "replace", "path": "active", "value": False})
    assert api.patch(f"{scim}/ServicePrincipals/{bot}", json=sp).status_code == 200
    assert api.get(f"{scim}/ServicePrincipals/{bot}").json()["active"] is False
    for bad in (
        patch_body({"op": "replace", "path": "applicationId", "value": "x"}),
        patch_body({"op": "replace", "path": "active", "value": "no"}),
        patch_body({"op": "add", "path": "groups", "value": []}),
        patch_body({"op": "remove", "path": f'members[value eq "{alice}"]'}),
    ):
        assert api.patch(f"{scim}/ServicePrincipals/{bot}", json=bad).status_code == 400


def test_patch_status_can_be_204(fake, api, scim, trio, group):
    fake.behaviour = Behaviour(patch_status=204)
    reply = api.patch(f"{scim}/Groups/{group}", json=add_members(trio[0]))
    assert (reply.status_code, reply.content) == (204, b"")


def test_patch_unknown_group_is_404(api, scim, trio):
    assert api.patch(f"{scim}/Groups/999", json=add_members(trio[0])).status_code == 404


# ---- the undocumented answers ----------------------------------------------------------


def test_adding_an_unknown_id_is_accepted_and_adds_nothing_by_default(fake, api, scim, trio, group):
    reply = api.patch(f"{scim}/Groups/{group}", json=add_members("1234567890123456", trio[0]))
    assert reply.status_code == 200
    assert fake.group_members(group) == {trio[0]}


@pytest.mark.parametrize(
    ("answer", "status"), [(MemberAnswer.BAD_REQUEST, 400), (MemberAnswer.NOT_FOUND, 404)]
)
def test_adding_an_unknown_id_can_fail(fake, api, scim, trio, group, answer, status):
    fake.behaviour = Behaviour(add_unknown_member=answer)
    reply = api.patch(f"{scim}/Groups/{group}", json=add_members(trio[0], "1234567890123456"))
    assert reply.status_code == status
    assert fake.group_members(group) == frozenset()


def test_adding_an_existing_member_is_2xx_by_default(fake, api, scim, trio, group):
    fake.add_member(group, trio[0])
    assert api.patch(f"{scim}/Groups/{group}", json=add_members(trio[0])).status_code == 200
    assert fake.group_members(group) == {trio[0]}


@pytest.mark.parametrize(
    ("answer", "status", "scim_type"),
    [(MemberAnswer.BAD_REQUEST, 400, "invalidValue"), (MemberAnswer.CONFLICT, 409, "uniqueness")],
)
def test_adding_an_existing_member_can_fail(
    fake, api, scim, trio, group, answer, status, scim_type
):
    fake.add_member(group, trio[0])
    fake.behaviour = Behaviour(add_existing_member=answer)
    reply = api.patch(f"{scim}/Groups/{group}", json=add_members(trio[1], trio[0]))
    assert reply.status_code == status
    assert reply.json()["scimType"] == scim_type
    assert fake.group_members(group) == {trio[0]}


def test_removing_a_non_member_is_2xx_by_default(fake, api, scim, trio, group):
    assert api.patch(f"{scim}/Groups/{group}", json=remove_member(trio[0])).status_code == 200


@pytest.mark.parametrize(
    ("answer", "status", "scim_type"),
    [(MemberAnswer.BAD_REQUEST, 400, "noTarget"), (MemberAnswer.NOT_FOUND, 404, None)],
)
def test_removing_a_non_member_can_fail(fake, api, scim, trio, group, answer, status, scim_type):
    fake.behaviour = Behaviour(remove_missing_member=answer)
    reply = api.patch(f"{scim}/Groups/{group}", json=remove_member(trio[0]))
    assert reply.status_code == status
    assert reply.json().get("scimType") == scim_type


def test_behaviour_validates_member_answers():
    with pytest.raises(ValueError, match="add_existing_member"):
        Behaviour(add_existing_member=MemberAnswer.NOT_FOUND)
    with pytest.raises(ValueError, match="remove_missing_member"):
        Behaviour(remove_missing_member=MemberAnswer.CONFLICT)


def test_remove_by_display_filter(fake, api, scim, trio, group):
    for member in trio:
        fake.add_member(group, member)
    body = patch_body({"op": "remove", "path": 'members[display eq "Bob" or display eq "bot"]'})
    assert api.patch(f"{scim}/Groups/{group}", json=body).status_code == 200
    assert fake.group_members(group) == {trio[0]}
