"""A hostile or broken server: what it sends is checked, bounded and never trusted.

Each class of answer is tried through the public API, on the sync and the async client:
text no store can hold (lone surrogates), values of the wrong JSON type, JSON nested or
sized to exhaust the parser, tokens that would break or smuggle a header, lifetimes
that overflow, redirects. Each ends in a typed library error (or a safe value) with
nothing changed, and no credential in any message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

import databricks_access as da
from databricks_access._sqlite_store import SqliteLeaseStore
from databricks_access.testing import FakeRequest, FakeResponse

HOUR = dt.timedelta(hours=1)


# -- text no UTF-8 store can hold ---------------------------------------------------------


@pytest.mark.parametrize("name", ["ops\ud800", "\udfffops", "a\udc80\ud800b"])
def test_a_lone_surrogate_in_a_name_is_stored_by_sqlite(fake, client, clock, tmp_path, name):
    alice = fake.add_user("alice@example.com")
    group = fake.add_group(name)
    store = SqliteLeaseStore(tmp_path / "leases.db")
    tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
    named = client.groups.get(group)
    assert named.display_name == name
    lease = tracker.grant(
        da.PrincipalRef("user", alice), named, ttl=HOUR, requester="a", reason="r"
    )
    assert alice in fake.group_members(group)
    (stored,) = store.find_leases()
    assert stored.id == lease.id and stored.state is da.LeaseState.ACTIVE
    assert stored.group_name == "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in name)
    (event,) = [e.event for e in store.pending_events(limit=10)]
    assert event.kind is da.EventKind.GRANTED
    store.close()


def test_a_lone_surrogate_in_a_name_is_stored_by_sqlite_async(
    fake, async_client_factory, clock, tmp_path
):
    alice = fake.add_user("alice@example.com")
    group = fake.add_group("ops\ud800")

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            named = await client.groups.get(group)
            await tracker.grant(
                da.PrincipalRef("user", alice), named, ttl=HOUR, requester="a", reason="r"
            )

    store = SqliteLeaseStore(tmp_path / "leases.db")
    asyncio.run(main())
    (stored,) = store.find_leases()
    assert stored.group_name == "ops\ufffd"
    store.close()
    assert alice in fake.group_members(group)


# -- a discovery document naming a broken token endpoint -----------------------------------


@pytest.mark.parametrize("char", ["\t", "\r", "\n", "\r\n", " ", "\x00"])
def test_a_token_endpoint_from_discovery_with_a_control_character(
    fake, config, credentials, clock, char
):
    endpoint = f"{fake.host}/oidc/accounts/{fake.account_id}/v1/{char}token"

    def intercept(request: FakeRequest) -> FakeResponse | None:
        if request.path.endswith("/v1/token"):
            return FakeResponse(404, (), b"")
        if request.path.endswith("/.well-known/oauth-authorization-server"):
            body = json.dumps({"token_endpoint": endpoint}).encode()
            return FakeResponse(200, (("content-type", "application/json"),), body)
        return None

    fake.interceptor = intercept
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as client:
        with pytest.raises(da.DatabricksAccessError):
            client.groups.get(fake.add_group("ops"))
    assert not any(char in record.path for record in fake.log if char.strip())
