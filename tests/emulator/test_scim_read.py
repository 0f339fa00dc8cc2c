"""SCIM reads: paging, projection, list shapes, get, and the 2.1 endpoints."""

from __future__ import annotations

import uuid

import attrs
import pytest

from databricks_access.testing import Behaviour, EmptyPage, FakeAccount

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


@pytest.fixture
def users(fake: FakeAccount) -> list[str]:
    return [fake.add_user(f"user{i:03d}@example.com", f"User {i:03d}") for i in range(250)]


def test_first_page_is_capped_at_100(api, scim, users):
    body = api.get(f"{scim}/Users").json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 250
    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == 100
    assert [r["id"] for r in body["Resources"]] == users[:100]


def test_count_above_the_cap_is_capped(api, scim, users):
    body = api.get(f"{scim}/Users", params={"count": 10_000}).json()
    assert body["itemsPerPage"] == 100


def test_start_index_is_honoured_and_one_based(api, scim, users):
    body = api.get(f"{scim}/Users", params={"startIndex": 101, "count": 50}).json()
    assert body["startIndex"] == 101
    assert [r["id"] for r in body["Resources"]] == users[100:150]


def test_paging_like_the_official_sdk_terminates(api, scim, users):
    seen, start, requests = [], 1, 0
    while True:
        body = api.get(f"{scim}/Users", params={"startIndex": start, "count": 10_000}).json()
        requests += 1
        resources = body.get("Resources", [])
        if not resources:
            break
        seen += [r["id"] for r in resources]
        start += len(resources)
    assert seen == users
    assert requests == 4  # three pages and the SDK's extra empty one


def test_last_page_and_beyond(api, scim, users):
    body = api.get(f"{scim}/Users", params={"startIndex": 201}).json()
    assert body["itemsPerPage"] == 50
    beyond = api.get(f"{scim}/Users", params={"startIndex": 251}).json()
    assert beyond == {"schemas": [LIST], "totalResults": 250, "startIndex": 251, "itemsPerPage": 0}


@pytest.mark.parametrize(
    ("params", "start", "items"),
    [
        ({"startIndex": 0}, 1, 100),
        ({"startIndex": -5}, 1, 100),
        ({"count": 0}, 1, 0),
        ({"count": -3}, 1, 0),
        ({"count": 7}, 1, 7),
        ({"startIndex": ""}, 1, 100),
    ],
)
def test_out_of_range_paging_values_are_clamped(api, scim, users, params, start, items):
    body = api.get(f"{scim}/Users", params=params).json()
    assert (body["startIndex"], body["itemsPerPage"], body["totalResults"]) == (start, items, 250)


@pytest.mark.parametrize("params", [{"startIndex": "one"}, {"count": "1.5"}, {"count": "9" * 5000}])
def test_non_integer_paging_values_are_400(api, scim, users, params):
    reply = api.get(f"{scim}/Users", params=params)
    assert reply.status_code == 400
    assert reply.json()["scimType"] == "invalidValue"


def test_page_cap_is_configurable(fake, api, scim, users):
    fake.behaviour = Behaviour(page_cap=20)
    assert api.get(f"{scim}/Users", params={"count": 50}).json()["itemsPerPage"] == 20


def test_scim_2_1_caps_pages_at_100(fake, api, users):
    fake.behaviour = Behaviour(page_cap=1000)
    path = f"/api/2.1/accounts/{fake.account_id}/scim/v2/Users"
    assert api.get(path, params={"count": 1000}).json()["itemsPerPage"] == 100
    scim20 = f"/api/2.0/accounts/{fake.account_id}/scim/v2/Users"
    assert api.get(scim20, params={"count": 1000}).json()["itemsPerPage"] == 250


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (
            EmptyPage.NO_RESOURCES_KEY,
            {"schemas": [LIST], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0},
        ),
        (
            EmptyPage.EMPTY_RESOURCES,
            {
                "schemas": [LIST],
                "totalResults": 0,
                "startIndex": 1,
                "itemsPerPage": 0,
                "Resources": [],
            },
        ),
        (EmptyPage.EMPTY_OBJECT, {}),
    ],
)
def test_empty_page_shapes(fake, api, scim, shape, expected):
    fake.behaviour = Behaviour(empty_page=shape)
    assert api.get(f"{scim}/Groups").json() == expected


def test_user_resource(fake, api, scim):
    user = fake.add_user(
        "ann@example.com",
        "Ann",
        given_name="Ann",
        family_name="Lee",
        external_id="ext-1",
        emails=["ann@example.com", "ann@other.example"],
    )
    group = fake.add_group("readers", members=[user])
    body = api.get(f"{scim}/Users/{user}").json()
    assert body == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": user,
        "userName": "ann@example.com",
        "displayName": "Ann",
        "active": True,
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [
            {"value": "ann@example.com", "type": "work", "primary": True},
            {"value": "ann@other.example", "type": "work", "primary": False},
        ],
        "externalId": "ext-1",
        "groups": [
            {"value": group, "display": "readers", "$ref": f"Groups/{group}", "type": "direct"}
        ],
    }


def test_ids_are_16_digit_numeric_strings(fake):
    ids = [fake.add_user(f"u{i}@example.com") for i in range(20)]
    ids += [fake.add_group(f"g{i}") for i in range(20)]
    assert all(len(i) == 16 and i.isdigit() for i in ids)
    assert len(set(ids)) == 40


def test_service_principal_resource(fake, api, scim):
    creds = fake.add_service_principal("etl", "6f1c2a86-7f5c-4d3e-9a1b-2c3d4e5f6a7b")
    group = fake.add_group("bots", members=[creds.id])
    body = api.get(f"{scim}/ServicePrincipals/{creds.id}").json()
    assert body == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
        "id": creds.id,
        "applicationId": "6f1c2a86-7f5c-4d3e-9a1b-2c3d4e5f6a7b",
        "displayName": "etl",
        "active": True,
        "roles": [{"value": "account_admin", "type": "direct"}],
        "groups": [
            {"value": group, "display": "bots", "$ref": f"Groups/{group}", "type": "direct"}
        ],
    }
    assert creds.application_id == creds.client_id == body["applicationId"]
    plain = fake.add_service_principal("reader", admin=False)
    assert "roles" not in api.get(f"{scim}/ServicePrincipals/{plain.id}").json()


def test_generated_application_ids_are_uuids(fake):
    creds = fake.add_service_principal("etl")
    assert uuid.UUID(creds.client_id).version == 4


def test_group_get_has_typed_member_refs(fake, api, scim):
    user = fake.add_user("u@example.com", "U")
    sp = fake.add_service_principal("bot").id
    inner = fake.add_group("inner")
    outer = fake.add_group("outer", members=[user, sp, inner])
    body = api.get(f"{scim}/Groups/{outer}").json()
    assert body["members"] == [
        {"value": user, "display": "U", "$ref": f"Users/{user}"},
        {"value": sp, "display": "bot", "$ref": f"ServicePrincipals/{sp}"},
        {"value": inner, "display": "inner", "$ref": f"Groups/{inner}"},
    ]
    assert body["meta"] == {"resourceType": "Group"}
    nested = api.get(f"{scim}/Groups/{inner}").json()
    assert nested["groups"] == [
        {"value": outer, "display": "outer", "$ref": f"Groups/{outer}", "type": "direct"}
    ]


def test_empty_group_has_no_members_key(fake, api, scim):
    group = fake.add_group("empty")
    body = api.get(f"{scim}/Groups/{group}").json()
    assert "members" not in body
    assert body["displayName"] == "empty"


def test_group_list_has_no_members_by_default(fake, api, scim):
    user = fake.add_user("u@example.com")
    fake.add_group("g", members=[user])
    resource = api.get(f"{scim}/Groups").json()["Resources"][0]
    assert "members" not in resource
    asked = api.get(f"{scim}/Groups", params={"attributes": "members"}).json()["Resources"][0]
    assert "members" not in asked


def test_group_list_with_members_when_switched(fake, api, scim):
    user = fake.add_user("u@example.com")
    fake.add_group("g", members=[user])
    fake.behaviour = Behaviour(group_list_members=True)
    resource = api.get(f"{scim}/Groups").json()["Resources"][0]
    assert [m["value"] for m in resource["members"]] == [user]


def test_attributes_projection_keeps_id(fake, api, scim, users):
    body = api.get(f"{scim}/Users", params={"attributes": "userName", "count": 1}).json()
    assert body["Resources"] == [{"id": users[0], "userName": "user000@example.com"}]


def test_attributes_are_case_insensitive_and_accept_urns(fake, api, scim, users):
    attributes = "USERNAME, urn:ietf:params:scim:schemas:core:2.0:User:displayName,name.givenName"
    body = api.get(f"{scim}/Users", params={"attributes": attributes, "count": 1}).json()
    assert body["Resources"] == [
        {"id": users[0], "userName": "user000@example.com", "displayName": "User 000"}
    ]


def test_excluded_attributes(fake, api, scim, users):
    body = api.get(
        f"{scim}/Users", params={"excludedAttributes": "emails,groups,id,schemas", "count": 1}
    ).json()
    assert body["Resources"] == [
        {
            "id": users[0],
            "userName": "user000@example.com",
            "displayName": "User 000",
            "active": True,
        }
    ]


def test_projection_on_get(fake, api, scim):
    user = fake.add_user("u@example.com")
    group = fake.add_group("g", members=[user])
    body = api.get(f"{scim}/Groups/{group}", params={"attributes": "displayName"}).json()
    assert body == {"id": group, "displayName": "g"}
    without = api.get(f"{scim}/Groups/{group}", params={"excludedAttributes": "members"}).json()
    assert "members" not in without


def test_attributes_members_can_lose_id_and_display_name(fake, api, scim):
    user = fake.add_user("u@example.com")
    group = fake.add_group("g", members=[user])
    fake.behaviour = attrs.evolve(fake.behaviour, projection_keeps_id=False)
    body = api.get(f"{scim}/Groups/{group}", params={"attributes": "members"}).json()
    assert body == {
        "members": [{"value": user, "display": "u@example.com", "$ref": f"Users/{user}"}]
    }


def test_sort_by(fake, api, scim):
    for name in ("carol", "alice", "Bob"):
        fake.add_user(f"{name}@example.com")
    ascending = api.get(f"{scim}/Users", params={"sortBy": "userName"}).json()["Resources"]
    assert [r["userName"] for r in ascending] == [
        "alice@example.com",
        "Bob@example.com",
        "carol@example.com",
    ]
    descending = api.get(
        f"{scim}/Users", params={"sortBy": "userName", "sortOrder": "descending"}
    ).json()
    assert descending["Resources"][0]["userName"] == "carol@example.com"
    emails = api.get(f"{scim}/Users", params={"sortBy": "emails"}).json()["Resources"]
    assert emails[0]["userName"] == "alice@example.com"
    assert api.get(f"{scim}/Users", params={"sortBy": "shoeSize"}).status_code == 400


@pytest.mark.parametrize("kind", ["Users", "Groups", "ServicePrincipals"])
def test_get_unknown_id_is_404_in_scim_form(api, scim, kind):
    reply = api.get(f"{scim}/{kind}/1234")
    assert reply.status_code == 404
    body = reply.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "404"
    assert body["detail"].endswith("with id 1234 is not found")


def test_get_of_the_wrong_kind_is_404(fake, api, scim):
    user = fake.add_user("u@example.com")
    assert api.get(f"{scim}/Groups/{user}").status_code == 404


@pytest.mark.parametrize(
    "suffix",
    [
        "Groups/{id}/..",
        "Groups/..%2FUsers",
        "Groups/{id}%2F..",
        "Groups/%2E%2E",
        "Groups/{id}/",
        "Groups//{id}",
        "Users/..",
        "Groups/{id}%00",
        "groups/{id}",
    ],
)
def test_odd_ids_never_resolve_to_something_else(fake, scim, suffix):
    user = fake.add_user("u@example.com")
    group = fake.add_group("g", members=[user])
    headers = {"Authorization": f"Bearer {fake.static_token()}"}
    reply = fake.dispatch("GET", f"{scim}/{suffix.format(id=group)}", headers)
    assert reply.status in (400, 404)


def test_both_api_versions_serve_the_same_resources(fake, api):
    user = fake.add_user("u@example.com")
    for version in ("2.0", "2.1"):
        body = api.get(f"/api/{version}/accounts/{fake.account_id}/scim/v2/Users/{user}").json()
        assert body["userName"] == "u@example.com"


def test_other_account_is_404(fake, api):
    reply = api.get("/api/2.0/accounts/00000000-0000-4000-8000-000000000000/scim/v2/Users")
    assert reply.status_code == 404
    assert reply.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
