"""Rule sets beyond groups (service principals, the account), assignable roles, workspace
permission lists, service principal OAuth secrets and the direct-members identity API."""

from __future__ import annotations

import base64

import httpx
import pytest

from databricks_access.testing import FakeAccount, Fault, FaultPlan


@pytest.fixture
def rules(fake: FakeAccount) -> str:
    return f"/api/2.0/preview/accounts/{fake.account_id}/access-control/rule-sets"


@pytest.fixture
def roles_path(fake: FakeAccount) -> str:
    return f"/api/2.0/preview/accounts/{fake.account_id}/access-control/assignable-roles"


def _put(api, rules, name, etag, grant_rules):
    body = {"name": name, "rule_set": {"name": name, "etag": etag, "grant_rules": grant_rules}}
    return api.put(rules, json=body)


# ---- rule sets -------------------------------------------------------------------------


def test_service_principal_rule_set_round_trip(fake, api, rules):
    bot = fake.add_service_principal("bot")
    fake.add_user("alice@example.com")
    name = f"accounts/{fake.account_id}/servicePrincipals/{bot.client_id}/ruleSets/default"
    read = api.get(rules, params={"name": name, "etag": ""})
    assert read.status_code == 200
    assert read.json()["name"] == name
    assert "grant_rules" not in read.json()
    grant = [{"role": "roles/servicePrincipal.user", "principals": ["users/alice@example.com"]}]
    reply = _put(api, rules, name, read.json()["etag"], grant)
    assert reply.status_code == 200
    assert fake.grant_rules(name) == {"roles/servicePrincipal.user": ("users/alice@example.com",)}
    stale = _put(api, rules, name, read.json()["etag"], [])
    assert (stale.status_code, stale.json()["error_code"]) == (409, "RESOURCE_CONFLICT")


def test_service_principal_rule_sets_refuse_group_roles(fake, api, rules):
    bot = fake.add_service_principal("bot")
    fake.add_user("alice@example.com")
    name = f"accounts/{fake.account_id}/servicePrincipals/{bot.client_id}/ruleSets/default"
    etag = api.get(rules, params={"name": name}).json()["etag"]
    grant = [{"role": "roles/group.manager", "principals": ["users/alice@example.com"]}]
    assert _put(api, rules, name, etag, grant).status_code == 400
    assert fake.grant_rules(name) == {}


def test_account_rule_set(fake, api, rules):
    fake.add_user("alice@example.com")
    name = f"accounts/{fake.account_id}/ruleSets/default"
    etag = api.get(rules, params={"name": name}).json()["etag"]
    grant = [{"role": "roles/marketplace.admin", "principals": ["users/alice@example.com"]}]
    assert _put(api, rules, name, etag, grant).status_code == 200
    assert fake.grant_rules(name) == {"roles/marketplace.admin": ("users/alice@example.com",)}


def test_unknown_service_principal_rule_set_is_404(fake, api, rules):
    name = f"accounts/{fake.account_id}/servicePrincipals/nobody/ruleSets/default"
    reply = api.get(rules, params={"name": name})
    assert (reply.status_code, reply.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_a_deleted_service_principal_loses_its_rule_set(fake, api, rules):
    bot = fake.add_service_principal("bot")
    name = f"accounts/{fake.account_id}/servicePrincipals/{bot.client_id}/ruleSets/default"
    fake.add_user("alice@example.com")
    etag = api.get(rules, params={"name": name}).json()["etag"]
    grant = [{"role": "roles/servicePrincipal.manager", "principals": ["users/alice@example.com"]}]
    _put(api, rules, name, etag, grant)
    fake.delete_principal(bot.id)
    with pytest.raises(ValueError, match="No rule set"):
        fake.grant_rules(name)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("accounts/{account}", {"roles/marketplace.admin", "roles/billing.admin"}),
        ("accounts/{account}/groups/{group}", {"roles/group.manager"}),
        (
            "accounts/{account}/servicePrincipals/{app}",
            {"roles/servicePrincipal.user", "roles/servicePrincipal.manager"},
        ),
        (
            "accounts/{account}/servicePrincipals/{sp}",
            {"roles/servicePrincipal.user", "roles/servicePrincipal.manager"},
        ),
    ],
)
def test_assignable_roles(fake, api, roles_path, resource, expected):
    bot = fake.add_service_principal("bot")
    group = fake.add_group("g")
    name = resource.format(account=fake.account_id, group=group, app=bot.client_id, sp=bot.id)
    reply = api.get(roles_path, params={"resource": name})
    assert reply.status_code == 200
    assert {role["name"] for role in reply.json()["roles"]} == expected


def test_assignable_roles_of_nothing_are_404_or_400(fake, api, roles_path):
    missing = api.get(roles_path, params={"resource": f"accounts/{fake.account_id}/groups/1"})
    assert missing.status_code == 404
    assert api.get(roles_path).status_code == 400


# ---- workspace permission list ---------------------------------------------------------


def test_workspace_permission_list(fake, api):
    workspace = fake.add_workspace("prod")
    path = f"/api/2.0/accounts/{fake.account_id}/workspaces/{workspace}/permissionassignments"
    reply = api.get(f"{path}/permissions")
    assert reply.status_code == 200
    assert [p["permission_level"] for p in reply.json()["permissions"]] == ["USER", "ADMIN"]
    assert all(p["description"] for p in reply.json()["permissions"])
    assert (
        api.get(
            f"{path[: path.rindex('/workspaces/')]}/workspaces/1/permissionassignments/permissions"
        ).status_code
        == 404
    )


# ---- service principal OAuth secrets ---------------------------------------------------


@pytest.fixture
def secrets_path(fake: FakeAccount):
    def path(sp_id: str) -> str:
        return f"/api/2.0/accounts/{fake.account_id}/servicePrincipals/{sp_id}/credentials/secrets"

    return path


def _token(fake: FakeAccount, client_id: str, secret: str) -> int:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    with httpx.Client(transport=fake.transport(), base_url=fake.host) as http:
        reply = http.post(
            f"/oidc/accounts/{fake.account_id}/v1/token",
            data={"grant_type": "client_credentials", "scope": "all-apis"},
            headers={"Authorization": f"Basic {basic}"},
        )
    return reply.status_code


def test_a_created_secret_works_at_the_token_endpoint_until_deleted(fake, api, secrets_path):
    bot = fake.add_service_principal("bot")
    created = api.post(secrets_path(bot.id), json={"lifetime": "3600s"})
    assert created.status_code == 200
    body = created.json()
    assert body["secret"].startswith("dose")
    assert body["status"] == "ACTIVE"
    assert body["expire_time"] and body["create_time"]
    assert _token(fake, bot.client_id, body["secret"]) == 200
    listed = api.get(secrets_path(bot.id)).json()["secrets"]
    assert [s["id"] for s in listed] == list(fake.secret_ids(bot.client_id))
    assert body["id"] in {s["id"] for s in listed}
    assert all("secret" not in s for s in listed)
    assert api.delete(f"{secrets_path(bot.id)}/{body['id']}").status_code == 200
    assert body["id"] not in fake.secret_ids(bot.client_id)
    assert _token(fake, bot.client_id, body["secret"]) == 401
    assert _token(fake, bot.client_id, bot.client_secret) == 200


def test_a_secret_expires_with_its_lifetime(fake, api, secrets_path, clock):
    bot = fake.add_service_principal("bot")
    secret = api.post(secrets_path(bot.id), json={"lifetime": "60s"}).json()["secret"]
    assert _token(fake, bot.client_id, secret) == 200
    clock.advance(61)
    assert _token(fake, bot.client_id, secret) == 401


def test_at_most_five_secrets(fake, api, secrets_path):
    bot = fake.add_service_principal("bot")
    statuses = [api.post(secrets_path(bot.id), json={}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 400]
    assert len(fake.secret_ids(bot.client_id)) == 5


def test_secrets_paths_and_inputs_checked(fake, api, secrets_path):
    bot = fake.add_service_principal("bot")
    assert api.get(secrets_path("123")).status_code == 404
    assert api.delete(f"{secrets_path(bot.id)}/nope").status_code == 404
    assert api.post(secrets_path(bot.id), json={"lifetime": "forever"}).status_code == 400
    assert len(fake.secret_ids(bot.client_id)) == 1


def test_secrets_list_pages(fake, api, secrets_path):
    bot = fake.add_service_principal("bot")
    for _ in range(3):
        api.post(secrets_path(bot.id), json={})
    first = api.get(secrets_path(bot.id), params={"page_size": 3}).json()
    assert len(first["secrets"]) == 3
    rest = api.get(
        secrets_path(bot.id), params={"page_size": 3, "page_token": first["next_page_token"]}
    ).json()
    assert len(rest["secrets"]) == 1
    assert "next_page_token" not in rest


# ---- direct members --------------------------------------------------------------------


@pytest.fixture
def direct(fake: FakeAccount):
    def path(group: str, member: str = "") -> str:
        base = f"/api/2.0/identity/accounts/{fake.account_id}/groups/{group}/direct-members"
        return f"{base}/{member}" if member else base

    return path


def test_direct_members_add_list_get_remove(fake, api, direct):
    alice = fake.add_user("alice@example.com", "Alice")
    bot = fake.add_service_principal("bot").id
    group = fake.add_group("g", members=[alice])
    added = api.post(direct(group), json={"principal_id": int(bot)})
    assert added.status_code == 200
    assert added.json()["principal_type"] == "SERVICE_PRINCIPAL"
    assert fake.group_members(group) == {alice, bot}
    listed = api.get(direct(group)).json()["direct_group_members"]
    assert [str(m["principal_id"]) for m in listed] == [alice, bot]
    assert listed[0]["name"] == f"accounts/{fake.account_id}/groups/{group}/direct-members/{alice}"
    assert listed[0]["display_name"] == "Alice"
    one = api.get(direct(group, alice))
    assert one.json()["principal_type"] == "USER"
    assert api.post(direct(group), json={"principal_id": int(bot)}).status_code == 409
    assert api.delete(direct(group, alice)).status_code == 200
    assert fake.group_members(group) == {bot}
    assert api.get(direct(group, alice)).status_code == 404


def test_direct_members_page(fake, api, direct):
    users = [fake.add_user(f"u{i}@example.com") for i in range(5)]
    group = fake.add_group("g", members=users)
    first = api.get(direct(group), params={"page_size": 2}).json()
    seen = [str(m["principal_id"]) for m in first["direct_group_members"]]
    token = first["next_page_token"]
    while token:
        page = api.get(direct(group), params={"page_size": 2, "page_token": token}).json()
        seen += [str(m["principal_id"]) for m in page["direct_group_members"]]
        token = page.get("next_page_token")
    assert seen == users


def test_direct_members_refuse_unknowns(fake, api, direct):
    group = fake.add_group("g")
    assert api.get(direct("1")).status_code == 404
    assert api.post(direct(group), json={"principal_id": 42}).status_code == 404
    assert api.post(direct(group), json={}).status_code == 400
    assert fake.group_members(group) == frozenset()


# ---- the token endpoint's fault form ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, "too_many_requests"), (503, "temporarily_unavailable"), (500, "server_error")],
)
def test_token_endpoint_faults_answer_in_oauth_form(fake, status, error):
    bot = fake.add_service_principal("bot")
    FaultPlan([Fault.error(status, op_class="token")]).install(fake)
    reply = fake.dispatch(
        "POST",
        f"/oidc/accounts/{fake.account_id}/v1/token",
        {"content-type": "application/x-www-form-urlencoded"},
        f"grant_type=client_credentials&client_id={bot.client_id}&client_secret=x".encode(),
    )
    body = reply.json()
    assert reply.status == status
    assert body["error"] == error
    assert body["error_description"]
    assert "error_code" not in body
