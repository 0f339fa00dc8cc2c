"""The async client's connections: requests in flight bounded, connections reused."""

from __future__ import annotations

import asyncio

import databricks_access as da
from databricks_access._account import drivers
from databricks_access._account.transport import PooledConnectionsTransport
from databricks_access.testing import FakeAccount


def test_many_concurrent_reads_share_the_bounded_pool():
    fake = FakeAccount()
    creds = fake.add_service_principal("pool")
    gid = fake.add_group("readers")
    with fake.serve() as url:
        config = da.AccountConfig(
            host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
        )
        secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)

        async def main() -> list[da.Group]:
            async with da.AsyncAccountClient(config, secrets=secrets, rate_limits=None) as client:
                first = await asyncio.gather(*(client.groups.get(gid) for _ in range(50)))
                transport = client._driver.http.connections  # type: ignore[attr-defined]
                assert isinstance(transport, PooledConnectionsTransport)
                opened = transport.connections_opened
                # Ten requests in flight; the token request went out on one more.
                assert opened <= drivers.ASYNC_POOL + 1
                assert transport.idle_connections <= drivers.ASYNC_POOL
                again = await asyncio.gather(*(client.groups.get(gid) for _ in range(50)))
                assert transport.connections_opened == opened  # all reused
                return [*first, *again]

        groups = asyncio.run(main())
    assert [g.id for g in groups] == [gid] * 100
