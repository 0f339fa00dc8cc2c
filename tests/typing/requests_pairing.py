"""Checked by mypy, never run: which integrations access requests accept.

`tests/test_typing.py` runs `mypy --strict` on this folder. A sync `AccessRequests` takes
a sync integration only; `AsyncAccessRequests` takes an async one, or a sync one (run in
worker threads). The mismatched pairing is marked as the error it must be: with
`warn_unused_ignores` (part of `--strict`), mypy fails if it ever type-checks.
"""

from __future__ import annotations

from typing_extensions import assert_type

import databricks_access as da


def sync_pairing(tracker: da.LeaseTracker, integration: da.Integration) -> None:
    requests = da.AccessRequests(tracker, integration)
    request = requests.submit(
        "alice@example.com", "123", ttl=3600, reason="INC-1", requester="alice@example.com"
    )
    assert_type(request, da.AccessRequest)
    assert_type(requests.approve(request.id, approver="bob@example.com"), da.AccessRequest)
    assert_type(requests.sweep(), da.RequestSweep)


async def async_pairing(tracker: da.AsyncLeaseTracker, integration: da.AsyncIntegration) -> None:
    requests = da.AsyncAccessRequests(tracker, integration)
    request = await requests.submit(
        "alice@example.com", "123", ttl=3600, reason="INC-1", requester="alice@example.com"
    )
    assert_type(request, da.AccessRequest)
    approved = await requests.approve(request.id, approver="bob@example.com")
    assert_type(approved, da.AccessRequest)
    assert_type(await requests.sweep(), da.RequestSweep)


def async_requests_with_a_sync_integration(
    tracker: da.AsyncLeaseTracker, integration: da.Integration
) -> da.AsyncAccessRequests:
    return da.AsyncAccessRequests(tracker, integration)  # its calls run in worker threads


def sync_requests_with_an_async_integration(
    tracker: da.LeaseTracker, integration: da.AsyncIntegration
) -> da.AccessRequests:
    return da.AccessRequests(tracker, integration)  # type: ignore[arg-type]


def sync_requests_on_an_async_tracker(
    tracker: da.AsyncLeaseTracker, integration: da.Integration
) -> da.AccessRequests:
    return da.AccessRequests(tracker, integration)  # type: ignore[arg-type]
