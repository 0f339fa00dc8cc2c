"""Workspaces, workspace permission assignments, and group rule sets."""

from __future__ import annotations

import pytest

from databricks_access.testing import Behaviour, FakeAccount


@pytest.fixture
def base(fake: FakeAccount) -> str:
    return f"/api/2.0/accounts/{fake.account_id}/workspaces"


def test_workspaces_list_is_a_bare_array(fake, api, base, clock):
    first = fake.add_workspace("prod", workspace_id=1234, deployment_name="dbc-prod")
    fake.add_workspace("dev", status="PROVISIONING")
    body = api.get(base).json()
    assert isinstance(body, list)
    assert [w["workspace_name"] for w in body] == ["prod", "dev"]
    assert body[0] == {
        "account_id": fake.account_id,
        "workspace_id": first,
        "workspace_name": "prod",
        "deployment_name": "dbc-prod",
        "workspace_status": "RUNNING",
        "workspace_status_message": "Workspace is running.",
        "creation_time": int(clock.now * 1000),
        "pricing_tier": "PREMIUM",
        "cloud": "aws",
        "aws_region": "us-east-1",
    }
    assert body[1]["workspace_status"] == "PROVISIONING"


def test_empty_workspace_list(api, base):
    assert api.get(base).json() == []


def test_azure_workspace_has_a_location():
    fake = FakeAccount(host="https://accounts.azuredatabricks.net", require_auth=False)
    fake.add_workspace("w")
    body = fake.dispatch("GET", f"/api/2.0/accounts/{fake.account_id}/workspaces").json()
    assert body[0]["cloud"] == "azure"
    assert "location" in body[0]


def test_workspace_get(fake, api, base):
    workspace = fake.add_workspace("prod")
    assert api.get(f"{base}/{workspace}").json()["workspace_id"] == workspace
    missing = api.get(f"{base}/42")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad = api.get(f"{base}/abc")
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_duplicate_workspace_id_is_refused(fake):
    fake.add_workspace("a", workspace_id=1)
    with pytest.raises(ValueError, match="already exists"):
        fake.add_workspace("b", workspace_id=1)


def test_assignments_shape(fake, api, base):
    workspace = fake.add_workspace("prod")
    user = fake.add_user("alice@example.com", "Alice")
    group = fake.add_group("readers")
    sp = fake.add_service_principal("etl")
    fake.assign(workspace, user, ["ADMIN"])
    fake.assign(workspace, group)
    fake.assign(workspace, sp.id, ["USER", "ADMIN"])
    body = api.get(f"{base}/{workspace}/permissionassignments").json()
    assert body == {
        "permission_assignments": [
            {
                "principal": {
                    "principal_id": int(user),
                    "display_name": "Alice",
                    "user_name": "alice@example.com",
                },
                "permissions": ["ADMIN"],
            },
            {
                "principal": {
                    "principal_id": int(group),
                    "display_name": "readers",
                    "group_name": "readers",
                },
                "permissions": ["USER"],
            },
            {
                "principal": {
                    "principal_id": int(sp.id),
                    "display_name": "etl",
                    "service_principal_name": sp.client_id,
                },
                "permissions": ["ADMIN"],
            },
        ]
    }
    fake.assign(workspace, group, [])
    assert set(fake.assignments(workspace)) == {user, sp.id}


def test_assignments_page_with_next_page_token(fake, api, base):
    fake.behaviour = Behaviour(assignments_page_size=7)
    workspace = fake.add_workspace("prod")
    summary = fake.seed(users=0, groups=20)
    for group in summary.group_ids:
        fake.assign(workspace, group)
    seen, token, pages = [], None, 0
    while True:
        params = {"page_token": token} if token else {}
        body = api.get(f"{base}/{workspace}/permissionassignments", params=params).json()
        pages += 1
        seen += [a["principal"]["principal_id"] for a in body.get("permission_assignments", [])]
        token = body.get("next_page_token")
        if not token:
            break
    assert pages == 3
    assert seen == [int(g) for g in summary.group_ids]


def test_default_assignment_page_size_is_50(fake, api, base):
    workspace = fake.add_workspace("prod", workspace_id=7)
    summary = fake.seed(users=0, groups=60, workspaces=0)
    for group in summary.group_ids:
        fake.assign(workspace, group)
    body = api.get(f"{base}/{workspace}/permissionassignments").json()
    assert len(body["permission_assignments"]) == 50
    assert body["next_page_token"]


def test_empty_assignments(fake, api, base):
    workspace = fake.add_workspace("prod")
    assert api.get(f"{base}/{workspace}/permissionassignments").json() == {}


@pytest.mark.parametrize("token", ["garbage", "b2Zmc2V0Oi0x", "!!!", "eA=="])
def test_invalid_page_token_is_400(fake, api, base, token):
    workspace = fake.add_workspace("prod")
    reply = api.get(f"{base}/{workspace}/permissionassignments", params={"page_token": token})
    assert reply.status_code == 400
    assert reply.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_put_and_delete_assignment(fake, api, base):
    workspace = fake.add_workspace("prod")
    group = fake.add_group("readers")
    path = f"{base}/{workspace}/permissionassignments/principals/{group}"
    reply = api.put(path, json={"permissions": ["USER"]})
    assert reply.status_code == 200
    assert reply.json()["permissions"] == ["USER"]
    assert reply.json()["principal"]["group_name"] == "readers"
    assert fake.assignments(workspace) == {group: ("USER",)}
    assert api.put(path, json={"permissions": ["USER", "ADMIN"]}).json()["permissions"] == ["ADMIN"]
    assert api.delete(path).status_code == 200
    assert fake.assignments(workspace) == {}
    assert api.delete(path).status_code == 200  # idempotent
    api.put(path, json={"permissions": ["USER"]})
    assert api.put(path, json={"permissions": ["NOPE"]}).json()["permissions"] == []
    assert fake.assignments(workspace) == {}


def test_assignment_errors(fake, api, base):
    workspace = fake.add_workspace("prod")
    group = fake.add_group("readers")
    unknown = api.put(
        f"{base}/{workspace}/permissionassignments/principals/999", json={"permissions": ["USER"]}
    )
    assert unknown.status_code == 404
    no_ws = api.put(
        f"{base}/5/permissionassignments/principals/{group}", json={"permissions": ["USER"]}
    )
    assert no_ws.status_code == 404
    bad_json = api.put(f"{base}/{workspace}/permissionassignments/principals/{group}", content=b"{")
    assert bad_json.status_code == 400
    assert bad_json.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    not_object = api.put(f"{base}/{workspace}/permissionassignments/principals/{group}", json=[])
    assert not_object.status_code == 400
    with pytest.raises(ValueError, match="workspace"):
        fake.assign(999, group)


# ---- rule sets -------------------------------------------------------------------------


@pytest.fixture
def rules(fake: FakeAccount) -> str:
    return f"/api/2.0/preview/accounts/{fake.account_id}/access-control/rule-sets"


def rule_set_name(fake: FakeAccount, group: str) -> str:
    return f"accounts/{fake.account_id}/groups/{group}/ruleSets/default"


def test_rule_set_read_modify_write(fake, api, rules):
    group = fake.add_group("readers")
    fake.add_user("alice@example.com")
    name = rule_set_name(fake, group)
    first = api.get(rules, params={"name": name, "etag": ""}).json()
    assert first["name"] == name
    assert first["etag"]
    assert "grant_rules" not in first
    grant = [{"role": "roles/group.manager", "principals": ["users/alice@example.com"]}]
    reply = api.put(
        rules,
        json={
            "name": name,
            "rule_set": {"name": name, "grant_rules": grant, "etag": first["etag"]},
        },
    )
    assert reply.status_code == 200
    updated = reply.json()
    assert updated["grant_rules"] == grant
    assert updated["etag"] != first["etag"]
    assert fake.group_managers(group) == ("users/alice@example.com",)
    assert api.get(rules, params={"name": name}).json() == updated


def test_rule_set_stale_etag_is_409(fake, api, rules):
    group = fake.add_group("readers")
    fake.add_user("alice@example.com")
    name = rule_set_name(fake, group)
    etag = api.get(rules, params={"name": name}).json()["etag"]
    fake.set_group_managers(group, ["users/alice@example.com"])  # someone else wrote
    body = {"name": name, "rule_set": {"name": name, "grant_rules": [], "etag": etag}}
    reply = api.put(rules, json=body)
    assert reply.status_code == 409
    assert reply.json()["error_code"] == "RESOURCE_CONFLICT"
    assert fake.group_managers(group) == ("users/alice@example.com",)


def test_set_group_managers_builder(fake):
    group = fake.add_group("readers")
    creds = fake.add_service_principal("etl")
    fake.add_group("admins")
    fake.set_group_managers(group, [f"servicePrincipals/{creds.client_id}", "groups/admins"])
    assert fake.group_managers(group) == (f"servicePrincipals/{creds.client_id}", "groups/admins")
    fake.set_group_managers(group, [])
    assert fake.group_managers(group) == ()
    with pytest.raises(ValueError, match="users/nobody"):
        fake.set_group_managers(group, ["users/nobody@example.com"])


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "accounts/{account}/ruleSets/custom",
        "accounts/other/groups/{group}/ruleSets/default",
        "accounts/{account}/groups/{group}/ruleSets/custom",
        "accounts/{account}/workspaces/{group}/ruleSets/default",
        "accounts/{account}/groups/{group}/extra/ruleSets/default",
    ],
)
def test_rule_set_bad_names_are_400(fake, api, rules, name):
    group = fake.add_group("readers")
    params = {} if name is None else {"name": name.format(account=fake.account_id, group=group)}
    reply = api.get(rules, params=params)
    assert reply.status_code == 400
    assert reply.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_rule_set_of_unknown_group_is_404(fake, api, rules):
    reply = api.get(rules, params={"name": rule_set_name(fake, "123")})
    assert reply.status_code == 404


@pytest.mark.parametrize(
    "rule_set",
    [
        None,
        {"name": "other", "etag": "x"},
        {"grant_rules": []},
        {"etag": "E", "grant_rules": "x"},
        {"etag": "E", "grant_rules": ["x"]},
        {"etag": "E", "grant_rules": [{"role": "roles/account.admin", "principals": []}]},
        {"etag": "E", "grant_rules": [{"role": "roles/group.manager", "principals": "users/a"}]},
        {
            "etag": "E",
            "grant_rules": [
                {"role": "roles/group.manager", "principals": ["users/nobody@example.com"]}
            ],
        },
    ],
)
def test_rule_set_bad_puts_are_400(fake, api, rules, rule_set):
    group = fake.add_group("readers")
    name = rule_set_name(fake, group)
    etag = api.get(rules, params={"name": name}).json()["etag"]
    if isinstance(rule_set, dict) and rule_set.get("etag") == "E":
        rule_set = {**rule_set, "etag": etag}
    reply = api.put(rules, json={"name": name, "rule_set": rule_set})
    assert reply.status_code == 400


def test_rule_set_malformed_json(fake, api, rules):
    assert api.put(rules, content=b"nope").status_code == 400


def test_deleting_a_group_drops_its_rule_set(fake, api, rules):
    group = fake.add_group("readers")
    fake.add_user("alice@example.com")
    fake.set_group_managers(group, ["users/alice@example.com"])
    fake.delete_principal(group)
    assert api.get(rules, params={"name": rule_set_name(fake, group)}).status_code == 404
