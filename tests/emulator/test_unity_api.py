"""Workspace hosts in-process (httpx transport): routing, tokens, errors, paging, limits."""

from __future__ import annotations

import asyncio

import attrs
import httpx
import pytest

from databricks_access.testing import (
    Behaviour,
    Endpoint,
    FakeAccount,
    OperationClass,
    ServerRateLimits,
)

UC = "/api/2.1/unity-catalog"


class World:
    def __init__(self, fake: FakeAccount) -> None:
        self.fake = fake
        self.creds = fake.add_service_principal("connector")
        self.ws = fake.add_workspace("one", deployment_name="dbc-one")
        self.ws2 = fake.add_workspace("two", deployment_name="dbc-two")
        self.ms = fake.add_metastore("m").metastore_id
        fake.assign_metastore(self.ws, self.ms)
        fake.assign_metastore(self.ws2, self.ms)
        fake.assign(self.ws, self.creds.id)
        fake.assign(self.ws2, self.creds.id)
        for i in range(5):
            fake.add_catalog(self.ms, f"c{i}")
        fake.add_schema(self.ms, "c1", "s")
        fake.add_table(self.ms, "c1", "s", "t")
        self.http = httpx.Client(transport=fake.transport())

    def host(self, workspace_id: int | None = None) -> str:
        return self.fake.workspace_host(self.ws if workspace_id is None else workspace_id)

    def token(self, workspace_id: int | None = None, creds=None) -> str:
        creds = creds or self.creds
        base = self.fake.host if workspace_id is None else self.host(workspace_id)
        path = (
            f"/oidc/accounts/{self.fake.account_id}/v1/token"
            if workspace_id is None
            else "/oidc/v1/token"
        )
        reply = self.http.post(
            f"{base}{path}",
            data={"grant_type": "client_credentials", "scope": "all-apis"},
            auth=(creds.client_id, creds.client_secret),
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]

    def get(self, url: str, token: str, **params: object) -> httpx.Response:
        return self.http.get(url, params=params, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def world(fake: FakeAccount) -> World:
    return World(fake)


def test_realistic_workspace_hosts_route_in_process(world: World):
    assert world.host() == "https://dbc-one.cloud.databricks.com"
    meta = world.http.get(f"{world.host()}/.well-known/databricks-config").json()
    assert meta["oidc_endpoint"] == "https://dbc-one.cloud.databricks.com/oidc"
    assert meta["workspace_id"] == str(world.ws)
    assert meta["account_id"] == world.fake.account_id
    discovery = world.http.get(f"{world.host()}/oidc/.well-known/oauth-authorization-server")
    assert discovery.json()["token_endpoint"] == f"{world.host()}/oidc/v1/token"
    token = world.token(world.ws)
    reply = world.get(f"{world.host()}{UC}/catalogs", token)
    assert [c["name"] for c in reply.json()["catalogs"]] == [f"c{i}" for i in range(5)]
    # The path prefix form works in-process too, and on other zones the host follows.
    prefixed = world.get(f"{world.fake.host}/ws/{world.ws}{UC}/current-metastore-assignment", token)
    assert prefixed.json() == {"workspace_id": world.ws, "metastore_id": world.ms}
    localhost = world.get(f"http://dbc-two.localhost:8080{UC}/catalogs", token)
    assert localhost.status_code == 401  # routed to workspace two: not this token's
    assert world.fake.log[-1].workspace_id == world.ws2
    account_side = world.http.get(f"{world.fake.host}/.well-known/databricks-config")
    assert "workspace_id" not in account_side.json()
    assert world.fake.log[-1].workspace_id is None
    azure = FakeAccount(host="https://accounts.azuredatabricks.net")
    workspace = azure.add_workspace("w", deployment_name="adb-1")
    assert azure.workspace_host(workspace) == "https://adb-1.azuredatabricks.net"
    log = world.fake.log
    assert log[0].workspace_id == world.ws
    assert [r.op_class for r in log[:3]] == [
        OperationClass.META,
        OperationClass.META,
        OperationClass.TOKEN,
    ]


def test_tokens_are_valid_only_where_issued(world: World):
    account_token = world.token()
    ws_token = world.token(world.ws)
    ws2_token = world.token(world.ws2)
    catalogs = f"{UC}/catalogs"
    assert world.get(f"{world.host()}{catalogs}", ws_token).status_code == 200
    assert world.get(f"{world.host(world.ws2)}{catalogs}", ws2_token).status_code == 200
    for url, token in [
        (f"{world.host()}{catalogs}", ws2_token),
        (f"{world.host(world.ws2)}{catalogs}", ws_token),
        (f"{world.host()}{catalogs}", account_token),
        (f"{world.host()}{catalogs}", world.fake.static_token()),
        (f"{world.fake.host}{world.fake.scim_path}/Groups", ws_token),
    ]:
        reply = world.get(url, token)
        assert reply.status_code == 401, url
        assert reply.json()["error_code"] == "UNAUTHENTICATED"
    groups = world.get(f"{world.fake.host}{world.fake.scim_path}/Groups", account_token)
    assert groups.status_code == 200
    issued = world.fake.issue_token(world.creds.client_id, workspace_id=world.ws2)
    assert world.get(f"{world.host(world.ws2)}{catalogs}", issued).status_code == 200
    assert world.get(f"{world.host()}{catalogs}", issued).status_code == 401


def test_assignment_decides_workspace_access(world: World):
    outsider = world.fake.add_service_principal("outsider")
    token = world.token(world.ws, outsider)
    reply = world.get(f"{world.host()}{UC}/catalogs", token)
    assert reply.status_code == 403
    assert reply.json()["error_code"] == "PERMISSION_DENIED"
    group = world.fake.add_group("parent")
    nested = world.fake.add_group("child", members=[outsider.id])
    world.fake.add_member(group, nested)
    world.fake.assign(world.ws, group)
    assert world.get(f"{world.host()}{UC}/catalogs", token).status_code == 200
    world.fake.remove_member(nested, outsider.id)
    assert world.get(f"{world.host()}{UC}/catalogs", token).status_code == 403

    world.fake.behaviour = attrs.evolve(world.fake.behaviour, workspace_token_for_unassigned=False)
    refused = world.http.post(
        f"{world.host()}/oidc/v1/token",
        data={"grant_type": "client_credentials", "scope": "all-apis"},
        auth=(outsider.client_id, outsider.client_secret),
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert world.token(world.ws)  # an assigned one still gets its token


def test_error_shapes(world: World):
    token = world.token(world.ws)
    reply = world.get(f"{world.host()}{UC}/tables/c1.s.missing", token)
    assert reply.status_code == 404
    body = reply.json()
    assert body["error_code"] == "TABLE_DOES_NOT_EXIST"
    assert body["message"] == "Table 'c1.s.missing' does not exist."
    assert body["details"][0]["reason"] == "TABLE_DOES_NOT_EXIST"
    missing_schema = world.get(f"{world.host()}{UC}/permissions/table/c1.nope.t", token)
    assert missing_schema.json()["error_code"] == "SCHEMA_DOES_NOT_EXIST"
    bad_type = world.get(f"{world.host()}{UC}/permissions/function/c1.s.f", token)
    assert (bad_type.status_code, bad_type.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    no_catalog = world.get(f"{world.host()}{UC}/schemas", token)
    assert (no_catalog.status_code, no_catalog.json()["error_code"]) == (
        400,
        "INVALID_PARAMETER_VALUE",
    )
    unknown_route = world.get(f"{world.host()}/api/2.0/clusters/list", token)
    assert (unknown_route.status_code, unknown_route.json()["error_code"]) == (
        404,
        "ENDPOINT_NOT_FOUND",
    )
    nobody = world.get(f"{world.fake.host}/ws/12345{UC}/catalogs", token)
    assert nobody.status_code == 404
    world.fake.unassign_metastore(world.ws)
    unassigned = world.get(f"{world.host()}{UC}/current-metastore-assignment", token)
    assert (unassigned.status_code, unassigned.json()["error_code"]) == (
        404,
        "METASTORE_DOES_NOT_EXIST",
    )


def test_paging_rules(world: World):
    world.fake.behaviour = attrs.evolve(world.fake.behaviour, uc_page_cap=2)
    token = world.token(world.ws)
    url = f"{world.host()}{UC}/catalogs"
    everything = world.get(url, token).json()
    assert len(everything["catalogs"]) == 5  # no max_results: all (legacy)
    assert "next_page_token" not in everything
    names, page_token, pages = [], None, 0
    while True:
        params: dict[str, object] = {"max_results": 0}
        if page_token:
            params["page_token"] = page_token
        page = world.get(url, token, **params).json()
        pages += 1
        names += [c["name"] for c in page["catalogs"]]
        page_token = page.get("next_page_token")
        if not page_token:
            break
    assert (names, pages) == ([f"c{i}" for i in range(5)], 3)
    # A cursor, not an offset: a catalog added before the cursor moves nothing after it.
    first = world.get(url, token, max_results=2).json()
    world.fake.add_catalog(world.ms, "c0a")
    rest = world.get(url, token, max_results=10, page_token=first["next_page_token"]).json()
    assert [c["name"] for c in first["catalogs"] + rest["catalogs"]] == ["c0", "c1", "c2", "c3"]
    assert world.get(url, token, max_results=-1).status_code == 400
    assert world.get(url, token, page_token="garbage").status_code == 400
    grants = f"{world.host()}{UC}/permissions/catalog/c1"
    assert world.get(grants, token, max_results=10).status_code == 400  # under 150
    assert world.get(grants, token, max_results=150).status_code == 200


def test_grants_paging_and_effective_group_expansion(world: World):
    fake = world.fake
    fake.behaviour = attrs.evolve(fake.behaviour, uc_page_cap=2)
    alice = fake.add_user("alice@example.com")
    team = fake.add_group("team", members=[alice])
    for name in ["alice@example.com", "team", "account users", world.creds.client_id]:
        fake.grant("catalog", "c1", name, ["USE_CATALOG"])
    fake.grant("schema", "c1.s", "team", ["SELECT"])
    token = world.token(world.ws)
    url = f"{world.host()}{UC}/permissions/catalog/c1"
    seen, page_token = [], None
    while True:
        params: dict[str, object] = {"max_results": 0}
        if page_token:
            params["page_token"] = page_token
        page = world.get(url, token, **params).json()
        seen += [a["principal"] for a in page["privilege_assignments"]]
        page_token = page.get("next_page_token")
        if not page_token:
            break
    assert sorted(seen) == sorted(
        ["alice@example.com", "team", "account users", world.creds.client_id]
    )
    assert len(seen) == 4

    effective = f"{world.host()}{UC}/effective-permissions/table/c1.s.t"
    direct_only = world.get(effective, token, principal="alice@example.com").json()
    assert direct_only["privilege_assignments"] == [
        {
            "principal": "alice@example.com",
            "privileges": [
                {
                    "privilege": "USE_CATALOG",
                    "inherited_from_type": "CATALOG",
                    "inherited_from_name": "c1",
                }
            ],
        }
    ]
    fake.behaviour = attrs.evolve(fake.behaviour, effective_permissions_expand_groups=True)
    expanded = world.get(effective, token, principal="alice@example.com").json()
    [entry] = expanded["privilege_assignments"]
    assert entry["principal"] == "alice@example.com"
    assert {(p["privilege"], p["inherited_from_name"]) for p in entry["privileges"]} == {
        ("SELECT", "c1.s"),
        ("USE_CATALOG", "c1"),
    }
    fake.remove_member(team, alice)
    after = world.get(effective, token, principal="alice@example.com").json()
    assert {p["privilege"] for p in after["privilege_assignments"][0]["privileges"]} == {
        "USE_CATALOG"
    }


def test_rate_limits_count_workspace_lists(world: World, clock):
    token = world.token(world.ws)
    world.fake.interceptor = ServerRateLimits(list=2, burst=2, clock=clock)
    url = f"{world.host()}{UC}/catalogs"
    statuses = [world.get(url, token).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = world.fake.log[-1]
    assert (limited.fault, limited.workspace_id, limited.op_class) == (
        "rate_limited",
        world.ws,
        OperationClass.LIST,
    )
    reply = world.get(url, token)
    assert reply.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert float(reply.headers["retry-after"]) > 0
    clock.advance(1.0)
    assert world.get(url, token).status_code == 200
    # GETs are another bucket.
    assert world.get(f"{world.host()}{UC}/catalogs/c1", token).status_code == 200


def test_routes_name_their_endpoint(world: World):
    seen = []
    world.fake.interceptor = lambda request: seen.append(request.route) and None
    token = world.token(world.ws)
    world.get(f"{world.host()}{UC}/effective-permissions/schema/c1.s", token)
    route = seen[-1]
    assert route.endpoint is Endpoint.UC_EFFECTIVE_PERMISSIONS
    assert route.workspace == world.ws
    assert route.params == {"securable_type": "schema", "full_name": "c1.s"}
    assert seen[0].endpoint is Endpoint.WORKSPACE_TOKEN


def test_behaviour_validates_page_cap():
    with pytest.raises(ValueError, match="uc_page_cap"):
        Behaviour(uc_page_cap=0)


def test_async_clients_reach_workspace_hosts(world: World):
    token = world.fake.issue_token(world.creds.client_id, workspace_id=world.ws)

    async def read() -> list[str]:
        async with httpx.AsyncClient(
            transport=world.fake.transport(),
            base_url=world.host(),
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            reply = await client.get(f"{UC}/schemas", params={"catalog_name": "c1"})
            return [s["full_name"] for s in reply.json()["schemas"]]

    assert asyncio.run(read()) == ["c1.s"]


def test_seeded_catalog_served_from_a_process_keeps_its_scale():
    fake = FakeAccount(require_auth=False)
    summary = fake.seed_unity_catalog(seed=3)
    server = fake.serve(process=True)
    with server:
        url = server.workspace_host(summary.workspace_ids[1])
        reply = httpx.get(
            f"{url}{UC}/tables",
            params={"catalog_name": "catalog_001", "schema_name": "schema_007", "max_results": 0},
        )
        assert reply.status_code == 200
        assert len(reply.json()["tables"]) == 50
        assert server.call("unity_catalog_counts")["tables"] == 50_000
