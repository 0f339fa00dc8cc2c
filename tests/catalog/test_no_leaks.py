"""No secret or token in anything the catalog side produces: reprs, errors, logs, events."""

from __future__ import annotations

import logging

from tests.catalog.conftest import World

import databricks_access as da


def test_nothing_leaks_from_a_read_a_refusal_and_a_request(
    account: da.AccountClient, world: World, credentials, caplog, clock
):
    secret = credentials[1].get_credentials().client_secret
    locked = world.fake.add_workspace("locked", deployment_name="dbc-locked")
    world.fake.assign_metastore(locked, world.primary)
    texts: list[str] = []
    events: list[da.AuditEvent] = []
    with caplog.at_level(logging.DEBUG, logger="databricks_access"):
        reader = da.CatalogReader(account, include_tables=True)
        view = reader.read()
        report = reader.unlocks("analysts")
        explained = reader.explain_access("alice@example.com")
        texts += [repr(view), repr(report), report.to_json(), report.to_csv(), report._repr_html_()]
        texts += [repr(explained), explained.to_json(), explained._repr_html_()]
        texts += [str(e) for e in view.snapshot.errors] + [e.message for e in view.snapshot.errors]
        try:
            da.WorkspaceClient.for_workspace(account, locked).catalogs().collect()
        except da.DatabricksAccessError as exc:
            texts += [str(exc), repr(exc)]
        texts.append(str(da.diagnose(account, workspaces=True)))
        tracker = da.LeaseTracker(
            da.MembershipManager(account),
            store=da.MemoryLeaseStore(),
            clock=clock,
            events=da.CallableSink(events.append),
        )
        config = da.IntegrationConfig(
            name="x",
            accounts_url=account.config.host,
            account_id=account.config.account_id,
            integration_owners=["bob@example.com"],
        )
        requests = da.AccessRequests(
            tracker, da.Integration(config, client=account), catalog=reader
        )
        req = requests.submit(
            "alice@example.com", world.analysts, ttl=3600, reason="r", requester="a"
        )
        texts += [repr(req), req._repr_html_(), repr(requests), repr(reader)]
    texts += [repr(e) for e in events]
    texts += [record.getMessage() for record in caplog.records]
    joined = "\n".join(texts)
    assert secret not in joined
    assert "Bearer " not in joined
    assert "Basic " not in joined
