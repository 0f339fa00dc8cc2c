"""The account client against respx: every endpoint, error form, paging edge and retry."""

from __future__ import annotations

import asyncio
import json
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

import databricks_access as da

HOST = "https://accounts.cloud.databricks.com"
ACCOUNT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SCIM = f"{HOST}/api/2.0/accounts/{ACCOUNT}/scim/v2"
TOKEN_URL = f"{HOST}/oidc/accounts/{ACCOUNT}/v1/token"
SECRET = "dose-SECRET-value-4242"


@pytest.fixture
def clock():
    return da.ManualClock()


@pytest.fixture
def mock():
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).mock(
            return_value=httpx.Response(
                200, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600}
            )
        )
        yield router


@pytest.fixture
def client(mock, clock):
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    with da.AccountClient(cfg, secrets=da.StaticSecretStore("app-id", SECRET), clock=clock) as c:
        yield c


def query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(request.url)).query)


def group_json(gid: str, name: str, members=()) -> dict:
    data = {"id": gid, "displayName": name, "meta": {"resourceType": "Group"}}
    if members:
        data["members"] = [{"value": m, "$ref": f"Users/{m}"} for m in members]
    return data


def page(resources, total, start=1):
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# -- groups ----------------------------------------------------------------------------


def test_list_stops_on_total_results_without_an_extra_request(client, mock):
    route = mock.get(f"{SCIM}/Groups").mock(
        side_effect=[
            httpx.Response(200, json=page([group_json("1", "a"), group_json("2", "b")], 3)),
            httpx.Response(200, json=page([group_json("3", "c")], 3, start=3)),
        ]
    )
    groups = list(client.groups.list(attributes=["id", "displayName"], page_size=2))
    assert [g.id for g in groups] == ["1", "2", "3"]
    assert route.call_count == 2
    first, second = (query(c.request) for c in route.calls)
    assert first["startIndex"] == ["1"] and first["count"] == ["2"]
    assert first["attributes"] == ["id,displayName"]
    assert second["startIndex"] == ["3"]


def test_list_advances_by_what_arrived_on_short_pages_and_dedupes(client, mock):
    route = mock.get(f"{SCIM}/Groups").mock(
        side_effect=[
            httpx.Response(200, json=page([group_json("1", "a")], 4)),
            # The listing shifted: "1" shows again, then new ones.
            httpx.Response(200, json=page([group_json("1", "a"), group_json("2", "b")], 4)),
            httpx.Response(200, json=page([group_json("3", "c"), group_json("4", "d")], 4)),
        ]
    )
    ids = [g.id for g in client.groups.list(page_size=100)]
    assert ids == ["1", "2", "3", "4"]
    starts = [query(c.request)["startIndex"][0] for c in route.calls]
    assert starts == ["1", "2", "4"]


def test_list_accepts_an_empty_object_as_the_last_page(client, mock):
    mock.get(f"{SCIM}/Groups").mock(
        side_effect=[
            httpx.Response(200, json={"Resources": [group_json("1", "a")], "startIndex": 1}),
            httpx.Response(200, json={}),
        ]
    )
    assert [g.id for g in client.groups.list()] == ["1"]


def test_list_never_loops_on_a_server_that_ignores_start_index(client, mock):
    route = mock.get(f"{SCIM}/Groups").mock(
        return_value=httpx.Response(200, json=page([group_json("1", "a")], 1_000_000))
    )
    assert [g.id for g in client.groups.list()] == ["1"]
    assert route.call_count == 2


def test_get_group_parses_members_with_kinds(client, mock):
    mock.get(f"{SCIM}/Groups/7").mock(
        return_value=httpx.Response(
            200,
            json={
                "id": "7",
                "displayName": "ops",
                "members": [
                    {"value": "1", "$ref": "Users/1", "display": "alice"},
                    {"value": "2", "$ref": "ServicePrincipals/2"},
                    {"value": "3", "$ref": "Groups/3"},
                ],
                "someNewField": {"x": 1},
            },
        )
    )
    group = client.groups.get("7")
    kinds = [m.kind for m in group.members]
    assert kinds == [
        da.PrincipalKind.USER,
        da.PrincipalKind.SERVICE_PRINCIPAL,
        da.PrincipalKind.GROUP,
    ]
    assert group.member_ids == {"1", "2", "3"}


def test_group_without_members_key_has_no_members(client, mock):
    mock.get(f"{SCIM}/Groups/8").mock(
        return_value=httpx.Response(200, json={"id": "8", "displayName": "e"})
    )
    assert client.groups.get("8").members == ()


def test_members_uses_one_projected_get(client, mock):
    route = mock.get(f"{SCIM}/Groups/7").mock(
        return_value=httpx.Response(200, json=group_json("7", "ops", ["1", "2"]))
    )
    assert [m.id for m in client.groups.members("7")] == ["1", "2"]
    assert route.call_count == 1
    assert query(route.calls[0].request)["attributes"] == ["id,members"]


def test_find_escapes_the_display_name(client, mock):
    name = 'ops "admins" \\ or 1 eq 1'
    route = mock.get(f"{SCIM}/Groups").mock(
        return_value=httpx.Response(200, json=page([group_json("9", name)], 1))
    )
    group = client.groups.find(name)
    assert group is not None and group.id == "9"
    sent = query(route.calls[0].request)["filter"][0]
    assert sent == 'displayName eq "ops \\"admins\\" \\\\ or 1 eq 1"'


def test_find_returns_none_when_nothing_matches_exactly(client, mock):
    mock.get(f"{SCIM}/Groups").mock(
        return_value=httpx.Response(200, json=page([group_json("9", "Ops")], 1))
    )
    assert client.groups.find("ops") is None


def test_add_members_is_one_patch_for_many(client, mock):
    route = mock.patch(f"{SCIM}/Groups/7").mock(return_value=httpx.Response(200, json={}))
    client.groups.add_members(
        "7", ["1", "2", da.PrincipalRef(da.PrincipalKind.SERVICE_PRINCIPAL, "3")]
    )
    assert route.call_count == 1
    body = json.loads(route.calls[0].request.content)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
    assert body["Operations"] == [
        {"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}, {"value": "3"}]}
    ]


def test_remove_members_carries_no_value(client, mock):
    route = mock.patch(f"{SCIM}/Groups/7").mock(return_value=httpx.Response(204))
    client.groups.remove_members("7", ["1", "2"])
    body = json.loads(route.calls[0].request.content)
    assert body["Operations"] == [
        {"op": "remove", "path": 'members[value eq "1"]'},
        {"op": "remove", "path": 'members[value eq "2"]'},
    ]
    assert all("value" not in op for op in body["Operations"])


def test_create_conflict_is_not_retried_and_ensure_returns_existing(client, mock):
    post = mock.post(f"{SCIM}/Groups").mock(
        return_value=httpx.Response(
            409,
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "detail": "Group with name ops already exists.",
                "status": "409",
            },
        )
    )
    with pytest.raises(da.ConflictError, match="already exists"):
        client.groups.create("ops")
    assert post.call_count == 1
    mock.get(f"{SCIM}/Groups").mock(
        side_effect=[
            httpx.Response(200, json=page([], 0)),  # a racing creator is not visible yet
            httpx.Response(200, json=page([group_json("5", "ops")], 1)),
        ]
    )
    assert client.groups.ensure("ops").id == "5"


def test_ensure_creates_when_missing(client, mock):
    mock.get(f"{SCIM}/Groups").mock(return_value=httpx.Response(200, json=page([], 0)))
    post = mock.post(f"{SCIM}/Groups").mock(
        return_value=httpx.Response(201, json=group_json("6", "new"))
    )
    assert client.groups.ensure("new").id == "6"
    assert json.loads(post.calls[0].request.content)["displayName"] == "new"


def test_delete_group(client, mock):
    route = mock.delete(f"{SCIM}/Groups/6").mock(return_value=httpx.Response(204))
    client.groups.delete("6")
    assert route.called


# -- users, service principals, principals -----------------------------------------------


def test_find_user_sends_plus_as_percent_2b_and_spaces_as_percent_20(client, mock):
    route = mock.get(f"{SCIM}/Users").mock(
        return_value=httpx.Response(
            200, json=page([{"id": "1", "userName": "Alice+test@example.com"}], 1)
        )
    )
    user = client.users.find("alice+test@example.com")
    assert user is not None and user.id == "1"
    raw = route.calls[0].request.url.raw_path.decode()
    assert "%2B" in raw and "+" not in raw.split("?", 1)[1]
    assert "%20eq%20" in raw


def test_find_user_falls_back_when_the_server_rejects_plus(client, mock):
    invalid = httpx.Response(
        400,
        json={
            "detail": "Given filter operator is not supported.",
            "scimType": "InvalidFilter",
            "status": "400",
        },
    )
    route = mock.get(f"{SCIM}/Users").mock(
        side_effect=[
            invalid,
            httpx.Response(
                200,
                json=page(
                    [
                        {"id": "1", "userName": "alice+test@example.com"},
                        {"id": "2", "userName": "alice+other+test@example.com"},
                    ],
                    2,
                ),
            ),
        ]
    )
    user = client.users.find("alice+test@example.com")
    assert user is not None and user.id == "1"
    fallback = query(route.calls[1].request)["filter"][0]
    assert fallback == 'userName sw "alice" and userName co "test@example.com"'


def test_users_list_get_and_service_principals(client, mock):
    mock.get(f"{SCIM}/Users").mock(
        return_value=httpx.Response(200, json=page([{"id": "1", "userName": "a@x.com"}], 1))
    )
    mock.get(f"{SCIM}/Users/1").mock(
        return_value=httpx.Response(
            200,
            json={"id": "1", "userName": "a@x.com", "groups": [{"value": "7", "type": "direct"}]},
        )
    )
    app = "11111111-2222-3333-4444-555555555555"
    mock.get(f"{SCIM}/ServicePrincipals").mock(
        return_value=httpx.Response(
            200, json=page([{"id": "9", "applicationId": app, "displayName": "bot"}], 1)
        )
    )
    mock.get(f"{SCIM}/ServicePrincipals/9").mock(
        return_value=httpx.Response(200, json={"id": "9", "applicationId": app})
    )
    assert [u.user_name for u in client.users.list()] == ["a@x.com"]
    assert client.users.get("1").groups[0].value == "7"
    assert [sp.id for sp in client.service_principals.list()] == ["9"]
    assert client.service_principals.get("9").application_id == app
    assert client.service_principals.find(app.upper()).id == "9"


def test_resolve_principal(client, mock):
    app = "11111111-2222-3333-4444-555555555555"
    mock.get(f"{SCIM}/ServicePrincipals").mock(
        return_value=httpx.Response(200, json=page([{"id": "9", "applicationId": app}], 1))
    )
    mock.get(f"{SCIM}/Users").mock(return_value=httpx.Response(200, json=page([], 0)))
    ref = da.PrincipalRef(da.PrincipalKind.GROUP, "5")
    assert client.resolve_principal(ref) is ref
    assert client.resolve_principal(app) == da.PrincipalRef(da.PrincipalKind.SERVICE_PRINCIPAL, "9")
    assert client.resolve_principal(da.User(id="3")) == da.PrincipalRef("user", "3")
    with pytest.raises(da.NotFoundError, match=r"nobody@example\.com"):
        client.resolve_principal("nobody@example.com")
    with pytest.raises(da.ConfigError, match="principal"):
        client.resolve_principal("not-a-name")


# -- workspaces and rule sets ------------------------------------------------------------


def test_workspaces_and_assignments_follow_every_page_token(client, mock):
    base = f"{HOST}/api/2.0/accounts/{ACCOUNT}"
    mock.get(f"{base}/workspaces").mock(
        return_value=httpx.Response(
            200,
            json=[{"workspace_id": 42, "workspace_name": "prod", "workspace_status": "RUNNING"}],
        )
    )
    assignment = {"principal": {"principal_id": 1, "user_name": "a@x.com"}, "permissions": ["USER"]}
    route = mock.get(f"{base}/workspaces/42/permissionassignments").mock(
        side_effect=[
            httpx.Response(
                200, json={"permission_assignments": [assignment], "next_page_token": "p2"}
            ),
            httpx.Response(
                200, json={"permission_assignments": [dict(assignment, permissions=["ADMIN"])]}
            ),
        ]
    )
    (ws,) = client.workspaces.list()
    assert ws.workspace_id == 42
    items = client.workspace_assignments.list(ws.workspace_id).collect()
    assert [a.permissions for a in items] == [("USER",), ("ADMIN",)]
    assert items[0].principal.kind is da.PrincipalKind.USER
    assert query(route.calls[1].request)["page_token"] == ["p2"]


def test_group_managers_set_retries_a_stale_etag(client, mock):
    url = f"{HOST}/api/2.0/preview/accounts/{ACCOUNT}/access-control/rule-sets"
    name = f"accounts/{ACCOUNT}/groups/7/ruleSets/default"
    other = {"role": "roles/group.owner", "principals": ["users/o@x.com"]}
    get = mock.get(url).mock(
        side_effect=[
            httpx.Response(200, json={"name": name, "etag": "e1", "grant_rules": [other]}),
            httpx.Response(200, json={"name": name, "etag": "e2", "grant_rules": [other]}),
        ]
    )
    put = mock.put(url).mock(
        side_effect=[
            httpx.Response(
                409, json={"error_code": "RESOURCE_CONFLICT", "message": "etag mismatch"}
            ),
            httpx.Response(200, json={"name": name, "etag": "e3", "grant_rules": []}),
        ]
    )
    result = client.group_managers.set("7", [da.User(id="1", user_name="m@x.com"), "groups/admins"])
    assert result.etag == "e3"
    assert get.call_count == 2 and put.call_count == 2
    body = json.loads(put.calls[1].request.content)
    assert body["rule_set"]["etag"] == "e2"
    assert body["rule_set"]["grant_rules"] == [
        other,
        {"role": "roles/group.manager", "principals": ["users/m@x.com", "groups/admins"]},
    ]
    assert query(get.calls[0].request)["name"] == [name]


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "code"),
    [
        (
            404,
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"Group 1 not found","status":"404"}',
            {},
            da.NotFoundError,
            None,
        ),
        (
            400,
            b'{"detail":"bad","scimType":"invalidSyntax","status":"400"}',
            {},
            da.BadRequestError,
            "invalidSyntax",
        ),
        (
            400,
            b'{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"gone"}',
            {},
            da.NotFoundError,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (400, b'{"error_code":1234,"message":"numeric code"}', {}, da.BadRequestError, "1234"),
        (
            403,
            b"PERMISSION_DENIED: not an account admin",
            {},
            da.PermissionDeniedError,
            "PERMISSION_DENIED",
        ),
        (404, b"", {}, da.NotFoundError, None),
        (
            409,
            b'{"error_code":"ALREADY_EXISTS","message":"x"}',
            {},
            da.ConflictError,
            "ALREADY_EXISTS",
        ),
        (401, b"", {}, da.AuthenticationError, None),
        (418, b"<html>teapot</html>", {}, da.ApiError, None),
    ],
)
def test_error_forms_map_to_typed_errors(client, mock, status, body, headers, expected, code):
    mock.get(f"{SCIM}/Groups/1").mock(
        return_value=httpx.Response(status, content=body, headers=headers)
    )
    with pytest.raises(expected) as info:
        client.groups.get("1")
    assert type(info.value) is expected
    assert info.value.status_code == status
    assert info.value.error_code == code
    assert "None Group" not in str(info.value)


def test_scim_throttling_as_500_is_retried(client, mock, clock):
    route = mock.get(f"{SCIM}/Groups/1").mock(
        side_effect=[
            httpx.Response(
                500, json={"detail": "REQUEST_LIMIT_EXCEEDED: too many requests", "status": "500"}
            ),
            httpx.Response(429, text="", headers={"Retry-After": "1.58"}),
            httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}),
            httpx.Response(200, json=group_json("1", "a")),
        ]
    )
    assert client.groups.get("1").id == "1"
    assert route.call_count == 4
    # Jittered backoff for the 500; 1.58 s lengthened by up to 20%, so that clients told
    # the same wait do not return together; the date capped at 60 s, spread below it.
    assert 1.58 <= clock.slept[1] <= 1.58 * 1.2
    assert 48.0 <= clock.slept[2] <= 60.0
    assert 0 <= clock.slept[0] <= 0.5


def test_post_is_not_retried_on_500_but_get_is(client, mock):
    post = mock.post(f"{SCIM}/Groups").mock(
        return_value=httpx.Response(500, json={"detail": "boom"})
    )
    with pytest.raises(da.ServerError):
        client.groups.create("x")
    assert post.call_count == 1
    get = mock.get(f"{SCIM}/Groups/2").mock(return_value=httpx.Response(502))
    with pytest.raises(da.ServerError):
        client.groups.get("2")
    assert get.call_count == 6  # max_attempts


def test_transport_errors_are_typed_and_retried_for_idempotent_calls(client, mock):
    route = mock.get(f"{SCIM}/Groups/3").mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=group_json("3", "c")),
        ]
    )
    assert client.groups.get("3").id == "3"
    assert route.call_count == 3
    mock.get(f"{SCIM}/Groups/4").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(da.RequestTimeoutError):
        client.groups.get("4")


def test_malformed_replies_are_server_errors(client, mock):
    mock.get(f"{SCIM}/Groups/5").mock(
        return_value=httpx.Response(200, content=b'{"id": "5", "display')
    )
    with pytest.raises(da.ServerError, match="not valid JSON"):
        client.groups.get("5")
    mock.get(f"{SCIM}/Groups/6").mock(
        return_value=httpx.Response(200, json=["not", "an", "object"])
    )
    with pytest.raises(da.ServerError, match="MALFORMED_RESPONSE"):
        client.groups.get("6")


@pytest.mark.parametrize("bad", ["", "../1", "1/2", "a?b", "a#b", "%2F", "..", " 1", "x" * 200])
def test_unsafe_ids_are_refused_before_any_request(client, mock, bad):
    with pytest.raises(da.ConfigError, match="group_id"):
        client.groups.get(bad)
    assert not [c for c in mock.calls if "/scim/" in str(c.request.url)]


# -- OAuth -------------------------------------------------------------------------------


def test_token_request_is_form_with_basic_auth_and_is_reused(client, mock):
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    client.groups.get("1")
    client.groups.get("1")
    token_calls = [c for c in mock.calls if str(c.request.url) == TOKEN_URL]
    assert len(token_calls) == 1
    sent = token_calls[0].request
    assert sent.content == b"grant_type=client_credentials&scope=all-apis"
    assert sent.headers["Authorization"].startswith("Basic ")
    api = [c for c in mock.calls if "/scim/" in str(c.request.url)]
    assert all(c.request.headers["Authorization"] == "Bearer tok-1" for c in api)


def test_token_is_refreshed_ahead_of_expiry(client, mock, clock):
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    client.groups.get("1")
    clock.advance(60 * 39)  # 21 min left: still fresh (stale at 20 min before expiry)
    client.groups.get("1")
    clock.advance(60 * 2)
    client.groups.get("1")
    assert client.auth.token_requests == 2


def test_rotated_secret_is_reread_after_invalid_client(mock, clock):
    class Rotating:
        def __init__(self):
            self.calls = []

        def get_credentials(self, *, refresh=False):
            self.calls.append(refresh)
            secret = "new-secret" if refresh else "old-secret"
            return da.ClientCredentials("app", secret)

    def token(request):
        ok = b"new-secret" in __import__("base64").b64decode(request.headers["Authorization"][6:])
        if ok:
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(
            401,
            json={"error": "invalid_client", "error_description": "Client authentication failed"},
        )

    mock.routes.clear()
    mock.post(TOKEN_URL).mock(side_effect=token)
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    store = Rotating()
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    with da.AccountClient(cfg, secrets=store, clock=clock) as client:
        assert client.groups.get("1").id == "1"
    assert store.calls == [False, True]


def test_bad_credentials_raise_authentication_error_without_the_secret(mock, clock):
    mock.routes.clear()
    mock.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            401,
            json={"error": "invalid_client", "error_description": "Client authentication failed"},
        )
    )
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    with da.AccountClient(cfg, secrets=da.StaticSecretStore("app", SECRET), clock=clock) as client:
        with pytest.raises(da.AuthenticationError, match="invalid_client") as info:
            client.groups.get("1")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_ip_access_list_block_is_named(mock, clock):
    mock.routes.clear()
    mock.post(TOKEN_URL).mock(return_value=httpx.Response(403, text="unknown: unknown"))
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    with da.AccountClient(cfg, secrets=da.StaticSecretStore("app", SECRET), clock=clock) as client:
        with pytest.raises(da.AuthenticationError, match="IP access list"):
            client.groups.get("1")


def test_token_endpoint_from_discovery_on_same_host_only(mock, clock):
    mock.routes.clear()
    mock.post(TOKEN_URL).mock(return_value=httpx.Response(404))
    mock.get(f"{HOST}/oidc/accounts/{ACCOUNT}/.well-known/oauth-authorization-server").mock(
        return_value=httpx.Response(200, json={"token_endpoint": f"{HOST}/oauth/token"})
    )
    other = mock.post(f"{HOST}/oauth/token").mock(
        return_value=httpx.Response(200, json={"access_token": "t2", "expires_in": 3600})
    )
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    with da.AccountClient(cfg, secrets=da.StaticSecretStore("app", SECRET), clock=clock) as client:
        client.groups.get("1")
    assert other.call_count == 1


def test_token_endpoint_throttling_is_retried(mock, clock):
    mock.routes.clear()
    token = mock.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(503),
            httpx.Response(200, json={"access_token": "t", "expires_in": 3600}),
        ]
    )
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    with da.AccountClient(cfg, secrets=da.StaticSecretStore("app", SECRET), clock=clock) as client:
        client.groups.get("1")
    assert token.call_count == 3
    assert 2.0 <= clock.slept[0] <= 2.4


def test_a_refused_token_is_replaced_once(client, mock):
    route = mock.get(f"{SCIM}/Groups/1").mock(
        side_effect=[
            httpx.Response(200, json=group_json("1", "a")),
            httpx.Response(401, json={"error_code": "UNAUTHENTICATED", "message": "token revoked"}),
            httpx.Response(200, json=group_json("1", "a")),
        ]
    )
    client.groups.get("1")
    client.groups.get("1")
    assert route.call_count == 3
    assert client.auth.token_requests == 2


def test_token_single_flight_across_16_threads(mock):
    gate = threading.Barrier(16)
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    with da.AccountClient(cfg, secrets=da.StaticSecretStore("app", SECRET)) as client:
        errors = []

        def work():
            gate.wait()
            try:
                client.groups.get("1")
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert client.auth.token_requests == 1
    assert len([c for c in mock.calls if str(c.request.url) == TOKEN_URL]) == 1


def test_token_single_flight_across_100_async_tasks(mock):
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)

    async def main():
        async with da.AsyncAccountClient(
            cfg, secrets=da.StaticSecretStore("app", SECRET)
        ) as client:
            groups = await asyncio.gather(*(client.groups.get("1") for _ in range(100)))
            return client, groups

    client, groups = asyncio.run(main())
    assert len(groups) == 100
    assert client.auth.token_requests == 1


def test_async_client_survives_repeated_asyncio_run(mock):
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    client = da.AsyncAccountClient(cfg, secrets=da.StaticSecretStore("app", SECRET))
    assert asyncio.run(client.groups.get("1")).id == "1"
    assert asyncio.run(client.groups.get("1")).id == "1"
    asyncio.run(client.close())
    assert client.auth.token_requests == 1


def test_sync_client_inside_a_running_event_loop(client, mock):
    mock.get(f"{SCIM}/Groups/1").mock(return_value=httpx.Response(200, json=group_json("1", "a")))

    async def notebook_cell():
        # A Jupyter cell runs inside a live loop; the sync client must not need one.
        return client.groups.get("1")

    assert asyncio.run(notebook_cell()).id == "1"


def test_async_list_and_find(mock):
    mock.get(f"{SCIM}/Groups").mock(
        side_effect=[
            httpx.Response(200, json=page([group_json("1", "a"), group_json("2", "b")], 2)),
            httpx.Response(200, json=page([group_json("2", "b")], 1)),
        ]
    )
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)

    async def main():
        async with da.AsyncAccountClient(
            cfg, secrets=da.StaticSecretStore("app", SECRET)
        ) as client:
            names = [g.display_name async for g in client.groups.list()]
            found = await client.groups.find("b")
            return names, found

    names, found = asyncio.run(main())
    assert names == ["a", "b"]
    assert found is not None and found.id == "2"


def test_client_side_throttle_spaces_patches(mock, clock):
    route = mock.patch(f"{SCIM}/Groups/7").mock(return_value=httpx.Response(204))
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    limits = da.RateLimits(patch=2.0)
    with da.AccountClient(
        cfg, secrets=da.StaticSecretStore("a", SECRET), clock=clock, rate_limits=limits
    ) as client:
        for i in range(5):
            client.groups.add_members("7", [str(i)])
    assert route.call_count == 5
    assert sum(clock.slept) == pytest.approx(2.0)


# -- what every request is built with ------------------------------------------------------


def test_no_cookie_is_kept_or_sent(client, mock):
    route = mock.get(f"{SCIM}/Groups/1").mock(
        return_value=httpx.Response(
            200, json=group_json("1", "a"), headers={"Set-Cookie": "session=abc; Path=/"}
        )
    )
    client.groups.get("1")
    client.groups.get("1")
    assert route.call_count == 2
    assert all("cookie" not in call.request.headers for call in route.calls)
    assert list(client._driver.http.cookies.jar) == []


def test_async_client_keeps_no_cookie(mock):
    route = mock.get(f"{SCIM}/Groups/1").mock(
        return_value=httpx.Response(
            200, json=group_json("1", "a"), headers={"Set-Cookie": "session=abc; Path=/"}
        )
    )
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)

    async def main():
        async with da.AsyncAccountClient(cfg, secrets=da.StaticSecretStore("a", SECRET)) as c:
            await c.groups.get("1")
            await c.groups.get("1")

    asyncio.run(main())
    assert route.call_count == 2
    assert all("cookie" not in call.request.headers for call in route.calls)


def test_requests_carry_the_client_headers_and_timeouts(client, mock):
    route = mock.patch(f"{SCIM}/Groups/7").mock(return_value=httpx.Response(204))
    get = mock.get(f"{SCIM}/Groups/7").mock(
        return_value=httpx.Response(200, json=group_json("7", "a"))
    )
    client.groups.add_members("7", ["1"])
    client.groups.get("7")
    client.groups.get("7")  # the same target again: the same URL, parsed once
    patch, read = route.calls[0].request, get.calls[1].request
    assert patch.headers["content-type"] == "application/json"
    assert json.loads(patch.content)["Operations"][0]["value"] == [{"value": "1"}]
    for request in (patch, read):
        assert request.headers["user-agent"].startswith("databricks-access/")
        assert request.headers["accept"] == "application/json"
        assert "gzip" in request.headers["accept-encoding"]
        assert request.headers["authorization"] == "Bearer tok-1"
        assert request.extensions["timeout"]["read"] == 30.0
    assert "content-type" not in read.headers
    assert str(read.url) == f"{SCIM}/Groups/7"


def test_clients_share_one_ssl_context():
    cfg = da.AccountConfig(host=HOST, account_id=ACCOUNT)
    secrets = da.StaticSecretStore("a", SECRET)
    with (
        da.AccountClient(cfg, secrets=secrets) as one,
        da.AccountClient(cfg, secrets=secrets) as two,
    ):
        first = one._driver.http._transport._pool._ssl_context
        second = two._driver.http._transport._pool._ssl_context
    asynchronous = da.AsyncAccountClient(cfg, secrets=secrets)
    http = asynchronous._new_http()
    third = http.connections.ssl_context
    asyncio.run(http.aclose())
    assert first is second is third
    insecure = da.AccountConfig(host=HOST, account_id=ACCOUNT, insecure_skip_tls_verify=True)
    with da.AccountClient(insecure, secrets=secrets) as unverified:
        assert unverified._driver.http._transport._pool._ssl_context is not first
