"""An access request records what its group unlocks, for the approver to see."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.catalog.conftest import World

import databricks_access as da


def _integration(account: da.AccountClient) -> da.Integration:
    config = da.IntegrationConfig(
        name="uc-test",
        accounts_url=account.config.host,
        account_id=account.config.account_id,
        integration_owners=["bob@example.com"],
        custom_access_details="Ask in #data-access.",
    )
    return da.Integration(config, client=account)


def test_the_approver_sees_what_the_group_unlocks(account: da.AccountClient, world: World, clock):
    events: list[da.AuditEvent] = []
    tracker = da.LeaseTracker(
        da.MembershipManager(account),
        store=da.MemoryLeaseStore(),
        clock=clock,
        events=da.CallableSink(events.append),
    )
    requests = da.AccessRequests(tracker, _integration(account), catalog=da.CatalogReader(account))
    req = requests.submit(
        "alice@example.com",
        world.analysts,
        ttl=dt.timedelta(hours=1),
        reason="INC-1",
        requester="alice",
    )
    assert req.access_details is not None
    assert req.access_details.startswith("Ask in #data-access.")
    assert "Unlocks (Unity Catalog): " in req.access_details
    assert (
        "USE_CATALOG, SELECT" in req.access_details or "SELECT, USE_CATALOG" in req.access_details
    )
    assert "catalog sales" in req.access_details
    # Stored: what an approver reads later shows it, in the repr and the notebook table.
    stored = requests.get(req.id)
    assert stored.access_details == req.access_details
    assert "catalog sales" in repr(stored)
    assert "catalog sales" in stored._repr_html_()
    # And the audit trail has it.
    submitted = [e for e in events if e.kind is da.EventKind.REQUEST_SUBMITTED]
    assert len(submitted) == 1
    assert "catalog sales" in str(submitted[0].detail["unlocks"])


def test_without_a_reader_nothing_is_read(account: da.AccountClient, world: World, clock):
    tracker = da.LeaseTracker(
        da.MembershipManager(account), store=da.MemoryLeaseStore(), clock=clock
    )
    requests = da.AccessRequests(tracker, _integration(account))
    before = len([r for r in world.fake.log if r.workspace_id is not None])
    req = requests.submit(
        "alice@example.com", world.analysts, ttl=3600, reason="INC-2", requester="alice"
    )
    assert req.access_details == "Ask in #data-access."
    assert len([r for r in world.fake.log if r.workspace_id is not None]) == before


def test_a_failed_read_never_blocks_the_request(account: da.AccountClient, world: World, clock):
    for workspace in (world.analytics, world.reporting, world.lab):
        world.fake.assign(workspace, world.connector, [])  # no longer assigned anywhere
    tracker = da.LeaseTracker(
        da.MembershipManager(account), store=da.MemoryLeaseStore(), clock=clock
    )
    requests = da.AccessRequests(tracker, _integration(account), catalog=da.CatalogReader(account))
    req = requests.submit("bob@example.com", world.juniors, ttl=3600, reason="x", requester="bob")
    assert req.state is da.RequestState.PENDING
    # Nothing could be read: the summary says so rather than inventing access.
    assert req.access_details is not None
    assert "no Unity Catalog privileges" in req.access_details


def test_async_requests_record_it_too(async_account: da.AsyncAccountClient, world: World, clock):
    async def main() -> da.AccessRequest:
        tracker = da.AsyncLeaseTracker(
            da.AsyncMembershipManager(async_account), store=da.MemoryLeaseStore(), clock=clock
        )
        config = da.IntegrationConfig(
            name="uc-test",
            accounts_url=async_account.config.host,
            account_id=async_account.config.account_id,
            integration_owners=["bob@example.com"],
        )
        reader = da.AsyncCatalogReader(async_account)
        requests = da.AsyncAccessRequests(
            tracker, da.AsyncIntegration(config, client=async_account), catalog=reader
        )
        try:
            return await requests.submit(
                "alice@example.com", world.juniors, ttl=3600, reason="y", requester="alice"
            )
        finally:
            await reader.close()
            await async_account.close()

    req = asyncio.run(main())
    assert req.access_details is not None
    assert req.access_details.startswith("Unlocks (Unity Catalog): ")
    assert "USE_SCHEMA on schema sales.raw" in req.access_details
