"""The dispatch core, the httpx transport (sync and async), the log, counts, interceptor."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from databricks_access.testing import (
    Endpoint,
    FakeAccount,
    FakeRequest,
    FakeResponse,
    FakeTransport,
    OperationClass,
)

from .conftest import Clock, add_members


def test_transport_serves_sync_and_async_clients(fake):
    user = fake.add_user("alice@example.com")
    group = fake.add_group("readers")
    transport = fake.transport()
    assert isinstance(transport, httpx.BaseTransport)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    assert isinstance(transport, FakeTransport)
    headers = {"Authorization": f"Bearer {fake.static_token()}"}

    with httpx.Client(transport=transport, base_url="https://anything.example") as client:
        reply = client.patch(
            f"{fake.scim_path}/Groups/{group}", json=add_members(user), headers=headers
        )
        assert reply.status_code == 200

    async def read() -> list[str]:
        async with httpx.AsyncClient(transport=transport, base_url=fake.host) as client:
            replies = await asyncio.gather(
                *(client.get(f"{fake.scim_path}/Groups/{group}", headers=headers) for _ in range(5))
            )
        return [m["value"] for r in replies for m in r.json()["members"]]

    assert asyncio.run(read()) == [user] * 5
    assert asyncio.run(read()) == [user] * 5  # the transport survives another event loop


def test_dispatch_without_httpx(fake):
    fake.require_auth = False
    reply = fake.dispatch("get", f"{fake.scim_path}/Users?count=1", {"X-Any": "1"})
    assert isinstance(reply, FakeResponse)
    assert reply.status == 200
    assert ("content-type", "application/json") in reply.headers
    assert reply.json()["totalResults"] == 0


def test_dispatch_accepts_an_absolute_url(fake):
    reply = fake.dispatch(
        "GET", "https://accounts.cloud.databricks.com/.well-known/databricks-config"
    )
    assert reply.status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/2.0/accounts/{account}/nothing"),
        ("POST", "/api/2.0/accounts/{account}/workspaces"),
        ("DELETE", "/api/2.0/accounts/{account}/scim/v2/Users"),
        ("GET", "/api/2.2/accounts/{account}/scim/v2/Users"),
        ("GET", "/api/2.0/accounts/{account}/scim/v2/Things"),
        ("GET", "relative/path"),
        ("GET", "/api/2.0/accounts/{account}/workspaces/"),
    ],
)
def test_unknown_routes_are_404_in_rest_form(fake, method, path):
    reply = fake.dispatch(method, path.format(account=fake.account_id))
    assert reply.status == 404
    assert reply.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert reply.json()["message"].startswith("No API found for")


def test_request_log_records_both_clocks(clock: Clock):
    ticks = iter(range(100))
    fake = FakeAccount(clock=clock, timer=lambda: float(next(ticks)), require_auth=False)
    fake.dispatch("POST", f"{fake.scim_path}/Groups?x=1", {}, b'{"displayName":"g"}')
    (record,) = fake.log
    assert (record.method, record.path, record.query) == ("POST", f"{fake.scim_path}/Groups", "x=1")
    assert record.body == b'{"displayName":"g"}'
    assert record.status == 201
    assert record.op_class is OperationClass.WRITE
    assert record.started == record.finished == clock.now
    assert (record.perf_started, record.perf_finished) == (0.0, 1.0)


def test_operation_classes_and_counts(fake, api, scim):
    user = fake.add_user("a@example.com")
    group = fake.add_group("g")
    workspace = fake.add_workspace("w")
    creds = fake.add_service_principal("etl")
    api.get("/.well-known/databricks-config")
    api.post(
        f"/oidc/accounts/{fake.account_id}/v1/token",
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, creds.client_secret),
    )
    api.get(f"{scim}/Users")
    api.get(f"{scim}/Users/{user}")
    api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    api.post(f"{scim}/Groups", json={"displayName": "h"})
    api.get(f"/api/2.0/accounts/{fake.account_id}/workspaces")
    api.get(f"/api/2.0/accounts/{fake.account_id}/workspaces/{workspace}")
    api.put(
        f"/api/2.0/accounts/{fake.account_id}/workspaces/{workspace}/permissionassignments/principals/{group}",
        json={"permissions": ["USER"]},
    )
    api.get(
        f"/api/2.0/preview/accounts/{fake.account_id}/access-control/rule-sets",
        params={"name": f"accounts/{fake.account_id}/groups/{group}/ruleSets/default"},
    )
    assert [r.op_class.value for r in fake.log] == [
        "meta",
        "token",
        "list",
        "get",
        "patch",
        "write",
        "list",
        "get",
        "write",
        "get",
    ]
    counts = fake.counts
    assert counts == {
        OperationClass.META: 1,
        OperationClass.TOKEN: 1,
        OperationClass.LIST: 2,
        OperationClass.GET: 3,
        OperationClass.PATCH: 1,
        OperationClass.WRITE: 2,
    }
    assert counts["patch"] == 1
    counts[OperationClass.PATCH] = 99  # a copy
    assert fake.counts[OperationClass.PATCH] == 1
    fake.reset_log()
    assert fake.log == ()
    assert sum(fake.counts.values()) == 0


def test_failed_requests_are_counted_and_logged(fake, api, scim):
    api.get(f"{scim}/Users/1")
    api.get(f"{scim}/Users", headers={"Authorization": ""})
    assert [r.status for r in fake.log] == [404, 401]
    assert fake.counts[OperationClass.GET] == 1
    assert fake.counts[OperationClass.LIST] == 1


def test_log_is_bounded_but_counts_are_not():
    fake = FakeAccount(log_size=3)
    for _ in range(5):
        fake.dispatch("GET", "/.well-known/databricks-config")
    assert len(fake.log) == 3
    assert fake.counts[OperationClass.META] == 5


def test_interceptor_answers_first_and_sees_the_class(fake, api, scim):
    user = fake.add_user("a@example.com")
    group = fake.add_group("g")
    seen: list[tuple[OperationClass, Endpoint | None]] = []

    def interceptor(request: FakeRequest) -> FakeResponse | None:
        seen.append((request.op_class, request.route.endpoint if request.route else None))
        if request.op_class is OperationClass.PATCH:
            return FakeResponse(503, (("retry-after", "2"),), b"")
        return None

    fake.interceptor = interceptor
    reply = api.patch(f"{scim}/Groups/{group}", json=add_members(user))
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "2"
    assert fake.group_members(group) == frozenset()
    assert api.get(f"{scim}/Groups/{group}").status_code == 200
    assert seen == [
        (OperationClass.PATCH, Endpoint.SCIM_RESOURCE),
        (OperationClass.GET, Endpoint.SCIM_RESOURCE),
    ]
    assert [r.status for r in fake.log] == [503, 200]
    assert fake.counts[OperationClass.PATCH] == 1


def test_fake_request_params_use_form_decoding():
    request = FakeRequest("GET", "/x", "a=1+2&b=%2B&a=3&c", {}, b"", OperationClass.GET, None)
    assert request.params == {"a": "1 2", "b": "+", "c": ""}


def test_dispatch_is_thread_safe(fake):
    fake.require_auth = False
    users = [fake.add_user(f"u{i}@example.com") for i in range(40)]
    group = fake.add_group("g")
    path = f"{fake.scim_path}/Groups/{group}"

    def add(chunk: list[str]) -> None:
        for user in chunk:
            body = (
                b'{"Operations":[{"op":"add","path":"members","value":[{"value":"%s"}]}]}'
                % user.encode()
            )
            assert fake.dispatch("PATCH", path, {}, body).status == 200
            assert fake.dispatch("GET", path).status == 200

    threads = [threading.Thread(target=add, args=(users[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.group_members(group) == set(users)
    assert fake.counts[OperationClass.PATCH] == 40


def test_repr_shows_sizes_not_secrets(fake):
    creds = fake.add_service_principal("etl")
    text = repr(fake)
    assert fake.account_id in text
    assert "service_principals=1" in text
    assert creds.client_secret not in text


def test_default_account_id_is_deterministic():
    assert FakeAccount().account_id == FakeAccount().account_id
    assert FakeAccount(rng_seed=1).account_id != FakeAccount().account_id
    assert FakeAccount(account_id="abc-123").account_id == "abc-123"


def test_builders_validate_ids(fake):
    group = fake.add_group("g")
    with pytest.raises(ValueError, match="No principal"):
        fake.add_group("h", members=["nope"])
    with pytest.raises(ValueError, match="No principal"):
        fake.add_member(group, "nope")
    with pytest.raises(ValueError, match="No group"):
        fake.add_member("nope", group)
    with pytest.raises(ValueError, match="No group"):
        fake.group_members("nope")
    with pytest.raises(ValueError, match="No principal"):
        fake.delete_principal("nope")
    with pytest.raises(ValueError, match="client id"):
        fake.add_secret("nope")
    assert fake.find_group("h") is None
    assert fake.groups_of("nope") == frozenset()
