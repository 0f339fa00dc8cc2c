"""Sync and async clients kept in lockstep: same public methods, same signatures."""

from __future__ import annotations

import inspect

import databricks_access as da
from databricks_access._account import client as _client


def public_methods(cls):
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def signature_without_return(func):
    sig = inspect.signature(func)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


PAIRS = [
    (da.AccountClient, da.AsyncAccountClient),
    (da.Groups, da.AsyncGroups),
    (da.Users, da.AsyncUsers),
    (da.ServicePrincipals, da.AsyncServicePrincipals),
    (da.GroupManagers, da.AsyncGroupManagers),
    (_client.ServicePrincipalAccess, _client.AsyncServicePrincipalAccess),
    (_client.ServicePrincipalSecrets, _client.AsyncServicePrincipalSecrets),
    (da.Workspaces, da.AsyncWorkspaces),
    (da.WorkspaceAssignments, da.AsyncWorkspaceAssignments),
    (da.Pager, da.AsyncPager),
    (da.MembershipManager, da.AsyncMembershipManager),
    (da.LeaseTracker, da.AsyncLeaseTracker),
    (da.AccessRequests, da.AsyncAccessRequests),
]


def test_same_methods_and_signatures():
    for sync_cls, async_cls in PAIRS:
        sync_methods, async_methods = public_methods(sync_cls), public_methods(async_cls)
        assert set(sync_methods) == set(async_methods), (sync_cls, async_cls)
        for name, method in sync_methods.items():
            assert signature_without_return(method) == signature_without_return(
                async_methods[name]
            ), f"{sync_cls.__name__}.{name}"


def test_async_methods_are_awaitable_where_sync_ones_do_io():
    for sync_cls, async_cls in PAIRS:
        for name, method in public_methods(async_cls).items():
            returns_pager = "Pager" in str(
                inspect.signature(public_methods(sync_cls)[name]).return_annotation
            )
            if returns_pager:
                assert not inspect.iscoroutinefunction(method), f"{async_cls.__name__}.{name}"
            elif name != "close" or async_cls is da.AsyncAccountClient:
                # Every other public method of an async twin is a coroutine.
                assert inspect.iscoroutinefunction(method), f"{async_cls.__name__}.{name}"


def test_services_are_the_same_on_both_clients():
    names = [
        "groups",
        "users",
        "service_principals",
        "group_managers",
        "service_principal_access",
        "service_principal_secrets",
        "workspaces",
        "workspace_assignments",
    ]
    cfg = da.AccountConfig(
        host="https://accounts.cloud.databricks.com",
        account_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    )
    sync_client = da.AccountClient(cfg, secrets=da.StaticSecretStore("a", "b"))
    async_client = da.AsyncAccountClient(cfg, secrets=da.StaticSecretStore("a", "b"))
    for name in names:
        assert (
            type(getattr(async_client, name)).__name__
            == "Async" + type(getattr(sync_client, name)).__name__
        )
    sync_client.close()
