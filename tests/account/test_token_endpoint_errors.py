"""What a failing token fetch reports: throttled discovery, refused credentials."""

from __future__ import annotations

import asyncio

import pytest

import databricks_access as da
from databricks_access.testing import Behaviour, FakeAccount, Fault, FaultPlan

DISCOVERY = r"oauth-authorization-server$"


@pytest.fixture
def moved(fake: FakeAccount) -> FakeAccount:
    """The token endpoint is not at the default path: only discovery finds it."""
    fake.behaviour = Behaviour(token_path="/oidc/accounts/{account_id}/oauth/token")
    return fake


def _discoveries(fake: FakeAccount) -> list[int]:
    return [r.status for r in fake.log if r.path.endswith("oauth-authorization-server")]


def test_a_throttled_discovery_read_is_retried(moved, client, clock):
    FaultPlan([Fault.too_many_requests(retry_after=2, path=DISCOVERY, nth=(1, 2))]).install(moved)
    gid = moved.add_group("g")
    assert client.groups.get(gid).id == gid
    assert _discoveries(moved) == [429, 429, 200]
    assert clock.monotonic() >= 4.0  # it waited as asked, on the injected clock


def test_a_throttled_discovery_read_is_retried_async(moved, async_client_factory):
    FaultPlan([Fault.too_many_requests(retry_after=1, path=DISCOVERY, nth=1)]).install(moved)
    gid = moved.add_group("g")

    async def main() -> str:
        async with async_client_factory() as client:
            return (await client.groups.get(gid)).id

    assert asyncio.run(main()) == gid
    assert _discoveries(moved) == [429, 200]


def test_throttling_that_outlasts_the_retries_is_reported_as_throttling(moved, client):
    FaultPlan([Fault.too_many_requests(retry_after=1, path=DISCOVERY)]).install(moved)
    gid = moved.add_group("g")
    with pytest.raises(da.RateLimitedError) as info:
        client.groups.get(gid)
    assert info.value.status_code == 429
    assert "404" not in str(info.value)
    assert "ENDPOINT_NOT_FOUND" not in str(info.value)


def test_throttling_that_outlasts_the_retries_is_reported_async(moved, async_client_factory):
    FaultPlan([Fault.too_many_requests(retry_after=1, path=DISCOVERY)]).install(moved)
    gid = moved.add_group("g")

    async def main() -> None:
        async with async_client_factory() as client:
            await client.groups.get(gid)

    with pytest.raises(da.RateLimitedError):
        asyncio.run(main())


def test_a_refused_secret_says_so_once(fake, config, clock):
    sp = fake.add_service_principal("c")
    store = da.StaticSecretStore(sp.client_id, "wrong")
    with (
        da.AccountClient(config, secrets=store, transport=fake.transport(), clock=clock) as client,
        pytest.raises(da.AuthenticationError) as info,
    ):
        client.groups.get(fake.add_group("g"))
    message = str(info.value)
    assert "Client authentication failed: check the client id" in message
    assert ".:" not in message
    assert "wrong" not in message


def test_a_scim_throttle_that_outlasts_the_retries_names_its_code_once(fake, client):
    gid = fake.add_group("g")
    detail = "REQUEST_LIMIT_EXCEEDED: Workspace 1234 exceeded the concurrent limit"
    FaultPlan([Fault.error(500, detail=detail, path=r"/Groups/")]).install(fake)
    with pytest.raises(da.RateLimitedError) as info:
        client.groups.get(gid)
    assert str(info.value).count("REQUEST_LIMIT_EXCEEDED") == 1
    assert info.value.detail == "Workspace 1234 exceeded the concurrent limit"
