"""Host metadata, OIDC discovery, the token endpoint, bearer tokens and the admin role."""

from __future__ import annotations

import base64

import attrs
import httpx
import pytest

from databricks_access.testing import Behaviour, FakeAccount, OperationClass

from .conftest import Clock, add_members

FORM = {"grant_type": "client_credentials", "scope": "all-apis"}


@pytest.fixture
def http(fake: FakeAccount):
    with httpx.Client(transport=fake.transport(), base_url=fake.host) as client:
        yield client


def token_path(fake: FakeAccount) -> str:
    return f"/oidc/accounts/{fake.account_id}/v1/token"


def test_host_metadata_names_the_oidc_endpoint(fake, http):
    reply = http.get("/.well-known/databricks-config")
    assert reply.status_code == 200
    assert reply.json() == {
        "oidc_endpoint": f"https://accounts.cloud.databricks.com/oidc/accounts/{fake.account_id}",
        "account_id": fake.account_id,
        "cloud": "aws",
        "host": "https://accounts.cloud.databricks.com",
    }


def test_host_metadata_can_answer_with_a_placeholder(fake, http):
    fake.behaviour = Behaviour(oidc_endpoint_placeholder=True)
    body = http.get("/.well-known/databricks-config").json()
    assert (
        body["oidc_endpoint"] == "https://accounts.cloud.databricks.com/oidc/accounts/{account_id}"
    )
    assert "account_id" not in body


@pytest.mark.parametrize(
    ("host", "cloud"),
    [
        ("https://accounts.azuredatabricks.net", "azure"),
        ("https://accounts.gcp.databricks.com", "gcp"),
        ("https://accounts.cloud.databricks.us/", "aws"),
        ("http://127.0.0.1:8080", "aws"),
    ],
)
def test_cloud_follows_the_host(host, cloud):
    fake = FakeAccount(host=host)
    assert fake.host == host.rstrip("/")
    assert fake.dispatch("GET", "/.well-known/databricks-config").json()["cloud"] == cloud


def test_discovery_document(fake, http):
    root = f"{fake.host}/oidc/accounts/{fake.account_id}"
    body = http.get(
        f"/oidc/accounts/{fake.account_id}/.well-known/oauth-authorization-server"
    ).json()
    assert body["issuer"] == root
    assert body["token_endpoint"] == f"{root}/v1/token"
    assert body["authorization_endpoint"] == f"{root}/v1/authorize"


def test_meta_documents_need_no_token(fake, http):
    assert http.get("/.well-known/databricks-config").status_code == 200
    assert fake.counts[OperationClass.META] == 1


def test_token_with_basic_auth(fake, http):
    creds = fake.add_service_principal("connector")
    reply = http.post(token_path(fake), data=FORM, auth=(creds.client_id, creds.client_secret))
    assert reply.status_code == 200
    body = reply.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "all-apis"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert http.get(f"{fake.scim_path}/Users", headers=headers).status_code == 200


def test_token_with_credentials_in_the_form(fake, http):
    creds = fake.add_service_principal("connector")
    form = {**FORM, "client_id": creds.client_id, "client_secret": creds.client_secret}
    reply = http.post(token_path(fake), data=form)
    assert reply.status_code == 200
    assert reply.json()["access_token"]


def test_token_ttl_is_configurable(fake, http):
    fake.behaviour = Behaviour(token_ttl=60)
    creds = fake.add_service_principal("connector")
    reply = http.post(token_path(fake), data=FORM, auth=(creds.client_id, creds.client_secret))
    assert reply.json()["expires_in"] == 60


@pytest.mark.parametrize(
    "auth",
    [("unknown", "secret"), ("KNOWN", "wrong"), None],
    ids=["unknown-client", "wrong-secret", "no-credentials"],
)
def test_token_refuses_bad_clients(fake, http, auth):
    creds = fake.add_service_principal("connector")
    if auth is not None and auth[0] == "KNOWN":
        auth = (creds.client_id, auth[1])
    reply = http.post(token_path(fake), data=FORM, auth=auth)
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"
    assert reply.json()["error_description"]
    assert reply.headers["content-type"].startswith("application/json")


def test_token_refuses_garbage_basic_auth(fake):
    headers = {
        "Authorization": "Basic %%%not-base64",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    reply = fake.dispatch("POST", token_path(fake), headers, b"grant_type=client_credentials")
    assert reply.status == 401
    no_colon = base64.b64encode(b"just-an-id").decode()
    reply = fake.dispatch(
        "POST",
        token_path(fake),
        {"Authorization": f"Basic {no_colon}"},
        b"grant_type=client_credentials",
    )
    assert reply.status == 401


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"scope": "all-apis"}, "invalid_request"),
        ({"grant_type": "password", "scope": "all-apis"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "sql"}, "invalid_scope"),
    ],
)
def test_token_request_errors(fake, http, form, error):
    creds = fake.add_service_principal("connector")
    reply = http.post(token_path(fake), data=form, auth=(creds.client_id, creds.client_secret))
    assert reply.status_code == 400
    assert reply.json()["error"] == error


def test_rotated_secrets(fake, http):
    creds = fake.add_service_principal("connector")
    second = fake.add_secret(creds.client_id)
    for secret in (creds.client_secret, second):
        reply = http.post(token_path(fake), data=FORM, auth=(creds.client_id, secret))
        assert reply.status_code == 200
    fake.remove_secret(creds.client_id, creds.client_secret)
    reply = http.post(token_path(fake), data=FORM, auth=(creds.client_id, creds.client_secret))
    assert reply.status_code == 401
    with pytest.raises(ValueError, match="no such secret"):
        fake.remove_secret(creds.client_id, "nope")


def test_inactive_service_principal_gets_no_token(fake, http):
    creds = fake.add_service_principal("connector", active=False)
    reply = http.post(token_path(fake), data=FORM, auth=(creds.client_id, creds.client_secret))
    assert reply.status_code == 401


def test_token_expires_by_the_injected_clock(fake, http, clock: Clock):
    creds = fake.add_service_principal("connector")
    token = fake.issue_token(creds.client_id)
    headers = {"Authorization": f"Bearer {token}"}
    clock.advance(3599)
    assert http.get(f"{fake.scim_path}/Users", headers=headers).status_code == 200
    clock.advance(1)
    reply = http.get(f"{fake.scim_path}/Users", headers=headers)
    assert reply.status_code == 401
    assert reply.json() == {
        "error_code": "UNAUTHENTICATED",
        "message": "The access token has expired.",
    }


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer   ", "Basic abc", "Token x"],
)
def test_missing_token_is_401_in_rest_form(fake, http, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in (f"{fake.scim_path}/Groups", f"/api/2.0/accounts/{fake.account_id}/workspaces"):
        reply = http.get(path, headers=headers)
        assert reply.status_code == 401
        body = reply.json()
        assert body["error_code"] == 401
        assert "Credential was not sent" in body["message"]


def test_unknown_token_is_401(fake, http):
    reply = http.get(f"{fake.scim_path}/Users", headers={"Authorization": "Bearer nope"})
    assert reply.status_code == 401
    assert reply.json()["error_code"] == "UNAUTHENTICATED"


def test_token_of_a_deleted_service_principal_is_401(fake, http):
    creds = fake.add_service_principal("connector")
    token = fake.issue_token(creds.client_id)
    fake.delete_principal(creds.id)
    reply = http.get(f"{fake.scim_path}/Users", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401


def test_revoke_tokens(fake, http):
    static = fake.static_token()
    assert static == fake.static_token()
    fake.revoke_tokens()
    reply = http.get(f"{fake.scim_path}/Users", headers={"Authorization": f"Bearer {static}"})
    assert reply.status_code == 401
    assert fake.static_token() != static


def test_issue_token_for_unknown_client_raises(fake):
    with pytest.raises(ValueError, match="client id"):
        fake.issue_token("nope")


def test_auth_can_be_switched_off(fake, http):
    fake.require_auth = False
    assert http.get(f"{fake.scim_path}/Users").status_code == 200


def test_non_admin_service_principal_may_read_but_not_write(fake, http):
    creds = fake.add_service_principal("reader", admin=False)
    group = fake.add_group("g")
    user = fake.add_user("u@example.com")
    headers = {"Authorization": f"Bearer {fake.issue_token(creds.client_id)}"}
    assert http.get(f"{fake.scim_path}/Groups/{group}", headers=headers).status_code == 200
    writes = [
        http.patch(f"{fake.scim_path}/Groups/{group}", json=add_members(user), headers=headers),
        http.post(f"{fake.scim_path}/Groups", json={"displayName": "x"}, headers=headers),
        http.delete(f"{fake.scim_path}/Groups/{group}", headers=headers),
    ]
    for reply in writes:
        assert reply.status_code == 403
        assert reply.json()["error_code"] == "PERMISSION_DENIED"
    assert fake.group_members(group) == frozenset()
    assert fake.find_group("x") is None


def test_non_admin_reads_can_be_refused(fake, http):
    fake.behaviour = Behaviour(non_admin_can_read=False)
    creds = fake.add_service_principal("reader", admin=False)
    headers = {"Authorization": f"Bearer {fake.issue_token(creds.client_id)}"}
    assert http.get(f"{fake.scim_path}/Users", headers=headers).status_code == 403
    fake.set_admin(creds.client_id, True)
    assert http.get(f"{fake.scim_path}/Users", headers=headers).status_code == 200


def test_token_path_can_move_and_discovery_follows(fake, http):
    fake.behaviour = attrs.evolve(fake.behaviour, token_path="/oauth/token")
    creds = fake.add_service_principal("connector")
    discovery = http.get(f"/oidc/accounts/{fake.account_id}/.well-known/oauth-authorization-server")
    assert discovery.json()["token_endpoint"] == f"{fake.host}/oauth/token"
    auth = (creds.client_id, creds.client_secret)
    assert http.post("/oauth/token", data=FORM, auth=auth).status_code == 200
    assert http.post(token_path(fake), data=FORM, auth=auth).status_code == 404


def test_token_endpoint_only_answers_post(fake, http):
    assert http.get(token_path(fake)).status_code == 404


def test_client_secret_never_reaches_the_log(fake, http):
    creds = fake.add_service_principal("connector")
    form = {**FORM, "client_id": creds.client_id, "client_secret": creds.client_secret}
    http.post(token_path(fake), data=form)
    record = fake.log[-1]
    assert record.op_class is OperationClass.TOKEN
    assert creds.client_secret.encode() not in record.body
    assert b"client_secret=%2A%2A%2A" in record.body
    assert creds.client_secret not in repr(creds)
    assert creds.client_secret not in repr(record)


def test_behaviour_rejects_bad_values():
    with pytest.raises(ValueError, match="token_path"):
        Behaviour(token_path="oauth/token")
    with pytest.raises(ValueError, match="patch_status"):
        Behaviour(patch_status=201)
    with pytest.raises(ValueError, match="page_cap"):
        Behaviour(page_cap=0)


def test_constructor_rejects_bad_values():
    with pytest.raises(ValueError, match="account_id"):
        FakeAccount(account_id="a/b")
    with pytest.raises(ValueError, match="host"):
        FakeAccount(host="accounts.cloud.databricks.com")
