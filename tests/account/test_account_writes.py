"""Users, service principals, roles, workspace assignments and service principal access:
every write, on both clients, checked in the emulator's state."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import databricks_access as da
from databricks_access.testing import Behaviour, FakeAccount, MemberAnswer, OperationClass


@pytest.fixture(params=["sync", "async"])
def call(request, client, async_client_factory) -> Callable[[Callable[[Any], Any]], Any]:
    """Run one client operation on the sync client or on a fresh async one."""
    if request.param == "sync":
        return lambda op: op(client)

    def run(op: Callable[[Any], Any]) -> Any:
        async def main() -> Any:
            async with async_client_factory() as async_client:
                return await op(async_client)

        return asyncio.run(main())

    return run


def _writes(fake: FakeAccount) -> int:
    return fake.counts[OperationClass.WRITE] + fake.counts[OperationClass.PATCH]


# ---- users -----------------------------------------------------------------------------


def test_user_create_update_deactivate_delete(fake, call):
    gid = fake.add_group("g")
    user = call(
        lambda c: c.users.create(
            "alice+jit@example.com",
            display_name="Alice",
            given_name="Alice",
            family_name="Liddell",
            roles=["account_admin"],
            entitlements=["allow-cluster-create"],
        )
    )
    assert isinstance(user, da.User)
    assert fake.find_user("alice+jit@example.com") == user.id
    assert fake.roles(user.id) == ("account_admin",)
    assert fake.entitlements(user.id) == ("allow-cluster-create",)
    call(lambda c: c.users.update(user, display_name="Alice L.", given_name="Ally"))
    read = call(lambda c: c.users.get(user.id))
    assert (read.display_name, read.name.given_name, read.name.family_name) == (
        "Alice L.",
        "Ally",
        "Liddell",
    )
    call(lambda c: c.users.update(user.id, emails=["alice@new.example.com"]))
    assert [e.value for e in call(lambda c: c.users.get(user.id)).emails] == [
        "alice@new.example.com"
    ]
    fake.add_member(gid, user.id)
    call(lambda c: c.users.deactivate(user))
    assert call(lambda c: c.users.get(user.id)).active is False
    assert user.id in fake.group_members(gid)  # deactivation keeps memberships
    call(lambda c: c.users.delete(user.id))
    assert fake.find_user("alice+jit@example.com") is None
    assert fake.group_members(gid) == frozenset()


def test_creating_a_taken_user_name_is_a_conflict_sent_once(fake, call):
    fake.add_user("bob@example.com")
    before = fake.counts[OperationClass.WRITE]
    with pytest.raises(da.ConflictError, match="already exists"):
        call(lambda c: c.users.create("bob@example.com"))
    assert fake.counts[OperationClass.WRITE] == before + 1


# ---- service principals -----------------------------------------------------------------


def test_service_principal_create_update_deactivate_delete(fake, call):
    sp = call(lambda c: c.service_principals.create("etl", roles=["account_admin"]))
    assert isinstance(sp, da.ServicePrincipal)
    assert sp.application_id
    assert fake.find_service_principal(sp.application_id) == sp.id
    assert fake.roles(sp.id) == ("account_admin",)
    call(lambda c: c.service_principals.update(sp, display_name="etl-2"))
    assert call(lambda c: c.service_principals.get(sp.id)).display_name == "etl-2"
    call(lambda c: c.service_principals.deactivate(sp.id))
    assert call(lambda c: c.service_principals.get(sp.id)).active is False
    call(lambda c: c.service_principals.delete(sp))
    assert fake.find_service_principal(sp.application_id) is None


def test_service_principal_with_a_chosen_application_id(fake, call):
    app_id = "5f0c1b7e-8d9a-4c3b-9e2f-1a2b3c4d5e6f"
    sp = call(lambda c: c.service_principals.create("azure-app", application_id=app_id))
    assert sp.application_id == app_id
    with pytest.raises(da.ConflictError):
        call(lambda c: c.service_principals.create("again", application_id=app_id))


# ---- roles -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["users", "service_principals", "groups"])
def test_roles_on_every_kind_of_principal(fake, call, kind):
    pid = {
        "users": lambda: fake.add_user("carol@example.com"),
        "service_principals": lambda: fake.add_service_principal("bot", admin=False).id,
        "groups": lambda: fake.add_group("admins"),
    }[kind]()
    assert call(lambda c: getattr(c, kind).roles(pid)) == ()
    call(lambda c: getattr(c, kind).add_roles(pid, ["account_admin", "account_admin"]))
    assert fake.roles(pid) == ("account_admin",)
    assert call(lambda c: getattr(c, kind).roles(pid)) == ("account_admin",)
    call(lambda c: getattr(c, kind).add_roles(pid, ["account_admin"]))  # held: kept, no error
    assert fake.roles(pid) == ("account_admin",)
    call(lambda c: getattr(c, kind).remove_roles(pid, ["account_admin", "not_held"]))
    assert fake.roles(pid) == ()


def test_roles_not_held_are_skipped_when_the_server_refuses_them(fake, call):
    fake.behaviour = Behaviour(remove_missing_value=MemberAnswer.BAD_REQUEST)
    gid = fake.add_group("admins")
    fake.set_roles(gid, ["account_admin", "billing_admin"])
    call(lambda c: c.groups.remove_roles(gid, ["account_admin", "not_held"]))
    assert fake.roles(gid) == ("billing_admin",)
    patches = [r.status for r in fake.log if r.method == "PATCH"]
    assert patches == [400, 200]  # refused whole, then only the held role


def test_removing_roles_sends_no_value_and_one_patch(fake, client):
    gid = fake.add_group("admins")
    fake.set_roles(gid, ["account_admin", "marketplace"])
    client.groups.remove_roles(gid, ["account_admin", "marketplace"])
    (patch,) = [r for r in fake.log if r.method == "PATCH"]
    assert b'"value"' not in patch.body
    assert fake.roles(gid) == ()


def test_no_roles_sends_nothing(fake, client):
    gid = fake.add_group("admins")
    client.groups.add_roles(gid, [])
    client.groups.remove_roles(gid, [])
    assert _writes(fake) == 0


# ---- bad input: a typed error naming the field, before any request -----------------------


@pytest.mark.parametrize(
    ("op", "field"),
    [
        (lambda c: c.users.create(""), "user_name"),
        (lambda c: c.users.create("a@example.com", roles="account_admin"), "roles"),
        (lambda c: c.users.create("a@example.com", active="no"), "active"),
        (lambda c: c.users.create("a@example.com", display_name="x\ny"), "display_name"),
        (lambda c: c.users.update("123"), "update"),
        (lambda c: c.users.update("../Groups/1", display_name="x"), "user_id"),
        (lambda c: c.users.delete("1/2"), "user_id"),
        (lambda c: c.service_principals.create("x", application_id="not-a-uuid"), "application_id"),
        (lambda c: c.service_principals.deactivate("?x"), "service_principal_id"),
        (lambda c: c.groups.add_roles("1", [""]), "roles"),
        (lambda c: c.groups.remove_roles("1", "account_admin"), "roles"),
        (lambda c: c.workspace_assignments.set(1, "2", []), "permissions"),
        (lambda c: c.workspace_assignments.set(1, "2", ["OWNER"]), "permissions"),
        (lambda c: c.workspace_assignments.set(1, "2", "USER"), "permissions"),
        (lambda c: c.workspace_assignments.set("w1", "2"), "workspace_id"),
        (lambda c: c.workspace_assignments.remove(1, "alice"), "principal"),
        (lambda c: c.workspace_assignments.get("1/2"), "workspace_id"),
        (lambda c: c.service_principal_access.get("bot"), "application_id"),
        (
            lambda c: c.service_principal_access.set(
                "5f0c1b7e-8d9a-4c3b-9e2f-1a2b3c4d5e6f", users=["alice"]
            ),
            "principals",
        ),
        (
            lambda c: c.service_principal_access.set("5f0c1b7e-8d9a-4c3b-9e2f-1a2b3c4d5e6f"),
            "users",
        ),
    ],
)
def test_bad_input_is_refused_before_any_request(fake, call, op, field):
    with pytest.raises(da.ConfigError) as info:
        call(op)
    assert field in info.value.fields
    assert fake.log == ()


# ---- workspace assignments -------------------------------------------------------------


def test_workspace_assignments_get_set_remove(fake, call):
    workspace = fake.add_workspace("prod")
    gid = fake.add_group("analysts")
    permissions = call(lambda c: c.workspace_assignments.get(workspace))
    assert [p.permission_level for p in permissions] == ["USER", "ADMIN"]
    assert all(isinstance(p, da.WorkspacePermission) for p in permissions)
    assigned = call(lambda c: c.workspace_assignments.set(workspace, gid))
    assert fake.assignments(workspace) == {gid: ("USER",)}
    assert assigned.permissions == ("USER",)
    assert assigned.principal.ref == da.PrincipalRef("group", gid)
    call(lambda c: c.workspace_assignments.set(str(workspace), gid, ["ADMIN"]))
    assert fake.assignments(workspace) == {gid: ("ADMIN",)}
    call(lambda c: c.workspace_assignments.remove(workspace, da.PrincipalRef("group", gid)))
    assert fake.assignments(workspace) == {}


def test_assigning_to_a_missing_workspace_is_not_found(fake, call):
    gid = fake.add_group("analysts")
    with pytest.raises(da.NotFoundError):
        call(lambda c: c.workspace_assignments.set(123, gid))


# ---- service principal access (rule sets) ----------------------------------------------


def test_service_principal_access_sets_users_and_managers(fake, call):
    bot = fake.add_service_principal("bot")
    alice = call(lambda c: c.users.create("alice@example.com"))
    fake.add_group("ops")
    name = f"accounts/{fake.account_id}/servicePrincipals/{bot.client_id}/ruleSets/default"
    call(lambda c: c.service_principal_access.set(bot.client_id, users=[alice, "groups/ops"]))
    assert fake.grant_rules(name) == {
        "roles/servicePrincipal.user": ("users/alice@example.com", "groups/ops")
    }
    call(lambda c: c.service_principal_access.set(bot.client_id, managers=[alice]))
    assert fake.grant_rules(name) == {
        "roles/servicePrincipal.user": ("users/alice@example.com", "groups/ops"),
        "roles/servicePrincipal.manager": ("users/alice@example.com",),
    }
    call(lambda c: c.service_principal_access.set(bot.client_id, users=[]))
    assert fake.grant_rules(name) == {
        "roles/servicePrincipal.manager": ("users/alice@example.com",),
    }
    rule_set = call(lambda c: c.service_principal_access.get(bot.client_id))
    assert rule_set.name == name
    assert [(r.role, r.principals) for r in rule_set.grant_rules] == [
        ("roles/servicePrincipal.manager", ("users/alice@example.com",))
    ]


def test_service_principal_access_takes_a_model(fake, client):
    bot = fake.add_service_principal("bot")
    fake.add_user("alice@example.com")
    model = client.service_principals.get(bot.id)
    client.service_principal_access.set(model, users=["users/alice@example.com"])
    name = f"accounts/{fake.account_id}/servicePrincipals/{bot.client_id}/ruleSets/default"
    assert fake.grant_rules(name) == {"roles/servicePrincipal.user": ("users/alice@example.com",)}


def test_service_principal_access_retries_a_stale_etag(fake, client):
    bot = fake.add_service_principal("bot")
    fake.add_user("alice@example.com")
    fake.add_user("bob@example.com")
    name = f"accounts/{fake.account_id}/servicePrincipals/{bot.client_id}/ruleSets/default"
    raced = []

    def interceptor(request):
        # Someone else changes the rule set between our read and our first write.
        if request.method == "PUT" and not raced:
            raced.append(True)
            fake.interceptor = None
            etag = fake.dispatch(
                "GET",
                f"/api/2.0/preview/accounts/{fake.account_id}/access-control/rule-sets?name={name}",
                {"authorization": f"Bearer {fake.static_token()}"},
            ).json()["etag"]
            rules = [
                {"role": "roles/servicePrincipal.manager", "principals": ["users/bob@example.com"]}
            ]
            body = {"name": name, "rule_set": {"name": name, "etag": etag, "grant_rules": rules}}
            fake.dispatch(
                "PUT",
                f"/api/2.0/preview/accounts/{fake.account_id}/access-control/rule-sets",
                {"authorization": f"Bearer {fake.static_token()}"},
                json.dumps(body).encode(),
            )

    fake.interceptor = interceptor
    client.service_principal_access.set(bot.client_id, users=["users/alice@example.com"])
    puts = [r.status for r in fake.log if r.method == "PUT"]
    assert puts == [200, 409, 200]  # the racer's, our stale one, our retry
    assert fake.grant_rules(name) == {
        "roles/servicePrincipal.manager": ("users/bob@example.com",),
        "roles/servicePrincipal.user": ("users/alice@example.com",),
    }


def test_the_account_api_page_runs():
    page = Path(__file__).resolve().parents[2] / "docs" / "account-api.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 5
    namespace: dict[str, object] = {"__name__": "docs_account_api"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)  # noqa: S102 - our own docs
    fake = namespace["fake"]
    assert isinstance(fake, FakeAccount)
    assert fake.find_user("alice@example.com") is not None


# ---- service principal OAuth secrets ---------------------------------------------------


def test_secret_create_list_delete_and_the_new_secret_works(fake, config, clock, call):
    bot = fake.add_service_principal("bot")
    created = call(lambda c: c.service_principal_secrets.create(bot.id, dt.timedelta(hours=1)))
    assert isinstance(created, da.ServicePrincipalSecret)
    assert created.secret and created.id in fake.secret_ids(bot.client_id)
    assert created.secret not in repr(created)
    assert created.expire_time
    # The new secret is a working credential.
    store = da.StaticSecretStore(bot.client_id, created.secret)
    with da.AccountClient(config, secrets=store, transport=fake.transport(), clock=clock) as own:
        assert own.groups.find("nobody") is None
    listed = call(lambda c: c.service_principal_secrets.list(bot.id).collect())
    assert {s.id for s in listed} == set(fake.secret_ids(bot.client_id))
    assert all(s.secret is None for s in listed)
    call(lambda c: c.service_principal_secrets.delete(bot.id, created.id))
    assert created.id not in fake.secret_ids(bot.client_id)
    store = da.StaticSecretStore(bot.client_id, created.secret)
    with (
        da.AccountClient(config, secrets=store, transport=fake.transport(), clock=clock) as gone,
        pytest.raises(da.AuthenticationError) as info,
    ):
        gone.groups.find("nobody")
    assert created.secret not in str(info.value)


def test_a_sixth_secret_is_refused(fake, client):
    bot = fake.add_service_principal("bot")
    for _ in range(4):
        client.service_principal_secrets.create(bot.id)
    with pytest.raises(da.BadRequestError):
        client.service_principal_secrets.create(bot.id)
    assert len(fake.secret_ids(bot.client_id)) == 5


@pytest.mark.parametrize(
    ("op", "field"),
    [
        (lambda c: c.service_principal_secrets.create("1", lifetime=0), "lifetime"),
        (lambda c: c.service_principal_secrets.create("1", lifetime="1h"), "lifetime"),
        (lambda c: c.service_principal_secrets.create("1", lifetime=10**9), "lifetime"),
        (lambda c: c.service_principal_secrets.create("../x"), "service_principal_id"),
        (lambda c: c.service_principal_secrets.delete("1", "a/b"), "secret_id"),
    ],
)
def test_bad_secret_input_sends_nothing(fake, call, op, field):
    with pytest.raises(da.ConfigError) as info:
        call(op)
    assert field in info.value.fields
    assert fake.log == ()
