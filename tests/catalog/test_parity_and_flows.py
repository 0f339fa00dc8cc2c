"""Sync and async in lockstep; the flows fed replies directly (grants paging, odd replies)."""

from __future__ import annotations

import inspect
import json

import pytest

import databricks_access as da
from databricks_access._account.flows import Call, Reply
from databricks_access._catalog._api import UnityCatalogApi


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def _signature(func: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [
        (da.WorkspaceClient, da.AsyncWorkspaceClient),
        (da.CatalogReader, da.AsyncCatalogReader),
    ],
)
def test_same_methods_and_signatures(sync_cls: type, async_cls: type):
    sync_methods, async_methods = _public(sync_cls), _public(async_cls)
    assert set(sync_methods) == set(async_methods)
    for name, method in sync_methods.items():
        if name == "for_workspace":  # the account client differs in kind, nothing else
            continue
        assert _signature(method) == _signature(async_methods[name]), name
    assert _signature(da.unlocks) == _signature(da.aunlocks)
    assert _signature(da.explain_access) == _signature(da.aexplain_access)


def _drive(flow, replies: list[object]) -> tuple[object, list[Call]]:
    calls: list[Call] = []
    outcome = None
    try:
        step = next(flow)
        while True:
            assert isinstance(step, Call)
            calls.append(step)
            body = replies.pop(0)
            outcome = Reply(status=200, content=json.dumps(body).encode())
            step = flow.send(outcome)
    except StopIteration as stop:
        return stop.value, calls


def test_grants_follow_every_page_and_stop_on_a_repeated_token():
    flow = UnityCatalogApi().grants(da.SecurableType.SCHEMA, "sales.raw")
    value, calls = _drive(
        flow,
        [
            {
                "privilege_assignments": [{"principal": "a", "privileges": ["SELECT"]}],
                "next_page_token": "t1",
            },
            {"privilege_assignments": [], "next_page_token": "t2"},  # empty, yet more follow
            {
                "privilege_assignments": [{"principal": "b", "privileges": ["MODIFY"], "extra": 1}],
                "next_page_token": "t1",
            },
        ],
    )
    assert [(p.principal, p.privileges) for p in value] == [("a", ("SELECT",)), ("b", ("MODIFY",))]
    assert [c.query for c in calls] == ["", "page_token=t1", "page_token=t2"]
    assert calls[0].path == "/api/2.1/unity-catalog/permissions/schema/sales.raw"
    assert all(c.method == "GET" and c.idempotent for c in calls)


def test_deleted_principals_and_nulls_parse():
    flow = UnityCatalogApi().grants(da.SecurableType.CATALOG, "a b/c")
    value, calls = _drive(
        flow,
        [
            {
                "privilege_assignments": [
                    {"principal": None, "principal_id": "42", "privileges": ["USE_CATALOG"]}
                ],
                "next_page_token": None,
            }
        ],
    )
    assert value == [
        da.PrivilegeAssignment(principal="", principal_id="42", privileges=("USE_CATALOG",))
    ]
    assert calls[0].path == "/api/2.1/unity-catalog/permissions/catalog/a%20b%2Fc"


def test_a_listing_sends_max_results_and_pages_until_no_token():
    listing = UnityCatalogApi().schemas("sales")
    pages = []
    replies = [
        {"schemas": [{"name": "raw", "catalog_name": "sales"}], "next_page_token": "x"},
        {"schemas": [], "next_page_token": ""},
    ]
    while (page := listing.next_page()) is not None:
        value, calls = _drive(page, [replies.pop(0)])
        pages.append((value, calls[0].query))
    assert pages[0][1] == "catalog_name=sales&include_browse=true&max_results=0"
    assert pages[1][1] == "catalog_name=sales&include_browse=true&max_results=0&page_token=x"
    assert pages[0][0][0].qualified == "sales.raw"


def test_a_malformed_reply_is_a_server_error():
    flow = UnityCatalogApi().grants(da.SecurableType.TABLE, "a.b.c")
    with pytest.raises(da.ServerError, match="privilege_assignments"):
        _drive(flow, [{"privilege_assignments": {"not": "a list"}}])
