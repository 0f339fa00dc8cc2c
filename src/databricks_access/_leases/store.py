"""The `LeaseStore` protocol (and its async twin): where the tracker keeps its state.

A store holds leases, per-pair claims, access requests and the audit-event outbox.
Every method is one transaction: a state change and its event are written together or
not at all, which is what lets a crashed tracker resume without losing either.

Implementations: `MemoryLeaseStore` (tests), `SqliteLeaseStore` (one file, the default),
`PostgresLeaseStore` (several replicas). `AsyncLeaseStore` is the same protocol with
awaitable methods; `threaded(store)` adapts any sync store by running it in threads, so
the async tracker never blocks its event loop on a database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

import attrs

from databricks_access._account.flows import Flow
from databricks_access._errors import LeaseError
from databricks_access._leases.values import (
    AccessRequest,
    AuditEvent,
    Lease,
    LeaseState,
    Pair,
    RequestState,
    StoredEvent,
)
from databricks_access._sansio import Effect, perform

__all__ = [
    "AsyncLeaseStore",
    "LeaseStore",
    "LeaseUpdate",
    "StaleStateError",
    "StoreCall",
    "ThreadedLeaseStore",
    "add_event",
    "add_lease",
    "add_request",
    "claim_pairs",
    "close",
    "due_leases",
    "find_leases",
    "find_requests",
    "get_lease",
    "get_request",
    "leases_on_pairs",
    "mark_delivered",
    "next_due",
    "pending_events",
    "release_pairs",
    "renew_pairs",
    "threaded",
    "update_lease",
    "update_leases",
    "update_request",
    "wait_for_change",
]

R = TypeVar("R")

LeaseUpdate = tuple[Lease, LeaseState, AuditEvent | None]
"""One compare-and-set update: the new lease, the state it must be in, its event."""


class StaleStateError(LeaseError):
    """A compare-and-set update found the record in another state than expected.

    Another tracker (or replica) changed it first; the caller re-reads and decides again.
    """


@runtime_checkable
class LeaseStore(Protocol):
    """Durable state of a `LeaseTracker`. Every method is atomic."""

    # -- leases --------------------------------------------------------------------------

    def add_lease(self, lease: Lease, event: AuditEvent | None = None) -> None:
        """Insert a new lease, and its event in the same transaction.

        Raises:
            LeaseError: a lease with this id exists, or the store cannot write.
        """
        ...

    def update_lease(
        self,
        lease: Lease,
        *,
        expect: Iterable[LeaseState],
        event: AuditEvent | None = None,
    ) -> None:
        """Replace the stored lease of `lease.id` by `lease` if nothing changed it meanwhile.

        The stored lease must be in a state of `expect` and still at `lease.version` (the
        version it was read at); it is stored with the version counted one up. The event
        is written in the same transaction.

        Raises:
            StaleStateError: the stored state is not in `expect`, the stored version is
                not `lease.version`, or the lease is gone.
        """
        ...

    def update_leases(self, updates: Sequence[LeaseUpdate]) -> list[bool]:
        """Apply many compare-and-set updates in ONE transaction.

        Each `(lease, expect, event)` replaces the stored lease if its state is `expect`
        and its version is `lease.version` (as `update_lease`), and writes its event with
        it; an update whose lease changed meanwhile (or is gone) writes nothing and
        answers False. Returns one bool per update, in order.
        """
        ...

    def get_lease(self, lease_id: str) -> Lease | None:
        """One lease, or None."""
        ...

    def find_leases(
        self,
        *,
        principal_id: str | None = None,
        group_id: str | None = None,
        states: Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """Leases matching every given criterion, oldest `granted_at` first."""
        ...

    def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """Every lease on any of `pairs` (in `states`, when given), oldest first.

        One query for a whole sweep batch, where `find_leases` would take one per pair.
        """
        ...

    def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """Leases the tracker must act on now, earliest due first.

        `ACTIVE` leases with `expires_at <= now`; `REVOKE_FAILED` leases whose `retry_at`
        (or, without one, `updated_at`) is `<= now`; `GRANTING` and `REVOKING` leases
        whose `updated_at <= stuck_before` (work a crashed tracker left half done).
        """
        ...

    def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """The earliest time at which `due_leases` would return something, or None.

        For `GRANTING`/`REVOKING` leases that time is `updated_at + stuck_after`.
        """
        ...

    # -- claims ----------------------------------------------------------------------------

    def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """Claim every pair that is free, expired (by `now`) or already `owner`'s.

        Never waits for a pair held by another owner: it is skipped. Returns the pairs
        claimed, in the order given. Claims expire at `until`.
        """
        ...

    def renew_pairs(self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime) -> list[Pair]:
        """Extend `owner`'s claims on `pairs` to `until`; returns those still `owner`'s.

        A claim is still `owner`'s while the store holds it under that owner, even past
        its expiry: nobody can have acted on the pair without taking the claim over. A
        pair released or taken over meanwhile is neither renewed nor claimed.
        """
        ...

    def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """Release `owner`'s claims on `pairs` (others' claims are left alone)."""
        ...

    # -- outbox ----------------------------------------------------------------------------

    def add_event(self, event: AuditEvent) -> None:
        """Append an event that comes with no state change (drift, say)."""
        ...

    def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """Events not yet delivered, in the order written."""
        ...

    def mark_delivered(self, seqs: Sequence[int]) -> None:
        """Mark events delivered; they are not returned by `pending_events` again."""
        ...

    # -- access requests -------------------------------------------------------------------

    def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """Insert a new access request and its event."""
        ...

    def update_request(
        self,
        request: AccessRequest,
        *,
        expect: Iterable[RequestState],
        event: AuditEvent | None = None,
    ) -> None:
        """Replace a request if its stored state is in `expect` (else `StaleStateError`)."""
        ...

    def get_request(self, request_id: str) -> AccessRequest | None:
        """One access request, or None."""
        ...

    def find_requests(
        self,
        *,
        states: Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """Requests matching every given criterion, oldest first."""
        ...

    # -- wake-ups --------------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Block until another writer (thread or process) changes the store, or timeout.

        Returns True when a change was seen. May return early; callers re-check.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class AsyncLeaseStore(Protocol):
    """`LeaseStore` with awaitable methods, for `AsyncLeaseTracker`."""

    async def add_lease(self, lease: Lease, event: AuditEvent | None = None) -> None:
        """See `LeaseStore.add_lease`."""
        ...

    async def update_lease(
        self,
        lease: Lease,
        *,
        expect: Iterable[LeaseState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `LeaseStore.update_lease`."""
        ...

    async def update_leases(self, updates: Sequence[LeaseUpdate]) -> list[bool]:
        """See `LeaseStore.update_leases`."""
        ...

    async def get_lease(self, lease_id: str) -> Lease | None:
        """See `LeaseStore.get_lease`."""
        ...

    async def find_leases(
        self,
        *,
        principal_id: str | None = None,
        group_id: str | None = None,
        states: Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """See `LeaseStore.find_leases`."""
        ...

    async def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """See `LeaseStore.leases_on_pairs`."""
        ...

    async def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """See `LeaseStore.due_leases`."""
        ...

    async def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """See `LeaseStore.next_due`."""
        ...

    async def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """See `LeaseStore.claim_pairs`."""
        ...

    async def renew_pairs(
        self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime
    ) -> list[Pair]:
        """See `LeaseStore.renew_pairs`."""
        ...

    async def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """See `LeaseStore.release_pairs`."""
        ...

    async def add_event(self, event: AuditEvent) -> None:
        """See `LeaseStore.add_event`."""
        ...

    async def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """See `LeaseStore.pending_events`."""
        ...

    async def mark_delivered(self, seqs: Sequence[int]) -> None:
        """See `LeaseStore.mark_delivered`."""
        ...

    async def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """See `LeaseStore.add_request`."""
        ...

    async def update_request(
        self,
        request: AccessRequest,
        *,
        expect: Iterable[RequestState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `LeaseStore.update_request`."""
        ...

    async def get_request(self, request_id: str) -> AccessRequest | None:
        """See `LeaseStore.get_request`."""
        ...

    async def find_requests(
        self,
        *,
        states: Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """See `LeaseStore.find_requests`."""
        ...

    async def wait_for_change(self, timeout: float) -> bool:
        """See `LeaseStore.wait_for_change`."""
        ...

    async def close(self) -> None:
        """See `LeaseStore.close`."""
        ...


class ThreadedLeaseStore:
    """An `AsyncLeaseStore` over a sync `LeaseStore`: every call runs in a worker thread."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"ThreadedLeaseStore({self.store!r})"

    async def add_lease(self, lease: Lease, event: AuditEvent | None = None) -> None:
        """See `LeaseStore.add_lease`."""
        await asyncio.to_thread(self.store.add_lease, lease, event)

    async def update_lease(
        self,
        lease: Lease,
        *,
        expect: Iterable[LeaseState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `LeaseStore.update_lease`."""
        expected = tuple(expect)
        await asyncio.to_thread(
            lambda: self.store.update_lease(lease, expect=expected, event=event)
        )

    async def update_leases(self, updates: Sequence[LeaseUpdate]) -> list[bool]:
        """See `LeaseStore.update_leases`."""
        return await asyncio.to_thread(self.store.update_leases, updates)

    async def get_lease(self, lease_id: str) -> Lease | None:
        """See `LeaseStore.get_lease`."""
        return await asyncio.to_thread(self.store.get_lease, lease_id)

    async def find_leases(
        self,
        *,
        principal_id: str | None = None,
        group_id: str | None = None,
        states: Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """See `LeaseStore.find_leases`."""
        wanted = None if states is None else tuple(states)
        return await asyncio.to_thread(
            lambda: self.store.find_leases(
                principal_id=principal_id, group_id=group_id, states=wanted, limit=limit
            )
        )

    async def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """See `LeaseStore.leases_on_pairs`."""
        wanted = None if states is None else tuple(states)
        return await asyncio.to_thread(
            lambda: self.store.leases_on_pairs(list(pairs), states=wanted)
        )

    async def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """See `LeaseStore.due_leases`."""
        return await asyncio.to_thread(
            lambda: self.store.due_leases(now, stuck_before=stuck_before, limit=limit)
        )

    async def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """See `LeaseStore.next_due`."""
        return await asyncio.to_thread(lambda: self.store.next_due(stuck_after=stuck_after))

    async def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """See `LeaseStore.claim_pairs`."""
        return await asyncio.to_thread(
            lambda: self.store.claim_pairs(pairs, owner=owner, now=now, until=until)
        )

    async def renew_pairs(
        self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime
    ) -> list[Pair]:
        """See `LeaseStore.renew_pairs`."""
        return await asyncio.to_thread(
            lambda: self.store.renew_pairs(pairs, owner=owner, until=until)
        )

    async def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """See `LeaseStore.release_pairs`."""
        await asyncio.to_thread(lambda: self.store.release_pairs(pairs, owner=owner))

    async def add_event(self, event: AuditEvent) -> None:
        """See `LeaseStore.add_event`."""
        await asyncio.to_thread(self.store.add_event, event)

    async def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """See `LeaseStore.pending_events`."""
        return await asyncio.to_thread(lambda: self.store.pending_events(limit=limit))

    async def mark_delivered(self, seqs: Sequence[int]) -> None:
        """See `LeaseStore.mark_delivered`."""
        await asyncio.to_thread(self.store.mark_delivered, seqs)

    async def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """See `LeaseStore.add_request`."""
        await asyncio.to_thread(self.store.add_request, request, event)

    async def update_request(
        self,
        request: AccessRequest,
        *,
        expect: Iterable[RequestState],
        event: AuditEvent | None = None,
    ) -> None:
        """See `LeaseStore.update_request`."""
        expected = tuple(expect)
        await asyncio.to_thread(
            lambda: self.store.update_request(request, expect=expected, event=event)
        )

    async def get_request(self, request_id: str) -> AccessRequest | None:
        """See `LeaseStore.get_request`."""
        return await asyncio.to_thread(self.store.get_request, request_id)

    async def find_requests(
        self,
        *,
        states: Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """See `LeaseStore.find_requests`."""
        wanted = None if states is None else tuple(states)
        return await asyncio.to_thread(
            lambda: self.store.find_requests(
                states=wanted, principal_id=principal_id, group_id=group_id, limit=limit
            )
        )

    async def wait_for_change(self, timeout: float) -> bool:
        """See `LeaseStore.wait_for_change`."""
        return await asyncio.to_thread(self.store.wait_for_change, timeout)

    async def close(self) -> None:
        """See `LeaseStore.close`."""
        await asyncio.to_thread(self.store.close)


def threaded(store: LeaseStore | AsyncLeaseStore) -> AsyncLeaseStore:
    """The store as an `AsyncLeaseStore`: async stores as they are, sync ones in threads."""
    if isinstance(store, AsyncLeaseStore) and asyncio.iscoroutinefunction(store.get_lease):
        return store
    return ThreadedLeaseStore(store)  # type: ignore[arg-type]


# -- store calls as flow effects ---------------------------------------------------------------
#
# A flow asks for a store call with `x = yield from find_leases(...)`: one wrapper per
# protocol method, with the same parameters (a test holds them 1:1), so the call and its
# answer are typed where the flow is written. The runner applies the call to its store,
# sync or async; an async store answers an awaitable, which the async runner awaits.


@attrs.frozen
class StoreCall(Effect[R]):
    """Effect: one call on the lease store, answered with its result."""

    call: Callable[[LeaseStore | AsyncLeaseStore], R | Awaitable[R]]


def _call(call: Callable[[LeaseStore | AsyncLeaseStore], R | Awaitable[R]]) -> Flow[R]:
    return perform(StoreCall(call))


def add_lease(lease: Lease, event: AuditEvent | None = None) -> Flow[None]:
    """See `LeaseStore.add_lease`."""
    return _call(lambda store: store.add_lease(lease, event))


def update_lease(
    lease: Lease,
    *,
    expect: Iterable[LeaseState],
    event: AuditEvent | None = None,
) -> Flow[None]:
    """See `LeaseStore.update_lease`."""
    return _call(lambda store: store.update_lease(lease, expect=expect, event=event))


def update_leases(updates: Sequence[LeaseUpdate]) -> Flow[list[bool]]:
    """See `LeaseStore.update_leases`."""
    return _call(lambda store: store.update_leases(updates))


def get_lease(lease_id: str) -> Flow[Lease | None]:
    """See `LeaseStore.get_lease`."""
    return _call(lambda store: store.get_lease(lease_id))


def find_leases(
    *,
    principal_id: str | None = None,
    group_id: str | None = None,
    states: Iterable[LeaseState] | None = None,
    limit: int | None = None,
) -> Flow[list[Lease]]:
    """See `LeaseStore.find_leases`."""
    return _call(
        lambda store: store.find_leases(
            principal_id=principal_id, group_id=group_id, states=states, limit=limit
        )
    )


def leases_on_pairs(
    pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
) -> Flow[list[Lease]]:
    """See `LeaseStore.leases_on_pairs`."""
    return _call(lambda store: store.leases_on_pairs(pairs, states=states))


def due_leases(
    now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
) -> Flow[list[Lease]]:
    """See `LeaseStore.due_leases`."""
    return _call(lambda store: store.due_leases(now, stuck_before=stuck_before, limit=limit))


def next_due(*, stuck_after: dt.timedelta) -> Flow[dt.datetime | None]:
    """See `LeaseStore.next_due`."""
    return _call(lambda store: store.next_due(stuck_after=stuck_after))


def claim_pairs(
    pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
) -> Flow[list[Pair]]:
    """See `LeaseStore.claim_pairs`."""
    return _call(lambda store: store.claim_pairs(pairs, owner=owner, now=now, until=until))


def renew_pairs(pairs: Sequence[Pair], *, owner: str, until: dt.datetime) -> Flow[list[Pair]]:
    """See `LeaseStore.renew_pairs`."""
    return _call(lambda store: store.renew_pairs(pairs, owner=owner, until=until))


def release_pairs(pairs: Sequence[Pair], *, owner: str) -> Flow[None]:
    """See `LeaseStore.release_pairs`."""
    return _call(lambda store: store.release_pairs(pairs, owner=owner))


def add_event(event: AuditEvent) -> Flow[None]:
    """See `LeaseStore.add_event`."""
    return _call(lambda store: store.add_event(event))


def pending_events(*, limit: int = 100) -> Flow[list[StoredEvent]]:
    """See `LeaseStore.pending_events`."""
    return _call(lambda store: store.pending_events(limit=limit))


def mark_delivered(seqs: Sequence[int]) -> Flow[None]:
    """See `LeaseStore.mark_delivered`."""
    return _call(lambda store: store.mark_delivered(seqs))


def add_request(request: AccessRequest, event: AuditEvent | None = None) -> Flow[None]:
    """See `LeaseStore.add_request`."""
    return _call(lambda store: store.add_request(request, event))


def update_request(
    request: AccessRequest,
    *,
    expect: Iterable[RequestState],
    event: AuditEvent | None = None,
) -> Flow[None]:
    """See `LeaseStore.update_request`."""
    return _call(lambda store: store.update_request(request, expect=expect, event=event))


def get_request(request_id: str) -> Flow[AccessRequest | None]:
    """See `LeaseStore.get_request`."""
    return _call(lambda store: store.get_request(request_id))


def find_requests(
    *,
    states: Iterable[RequestState] | None = None,
    principal_id: str | None = None,
    group_id: str | None = None,
    limit: int | None = None,
) -> Flow[list[AccessRequest]]:
    """See `LeaseStore.find_requests`."""
    return _call(
        lambda store: store.find_requests(
            states=states, principal_id=principal_id, group_id=group_id, limit=limit
        )
    )


def wait_for_change(timeout: float) -> Flow[bool]:
    """See `LeaseStore.wait_for_change`."""
    return _call(lambda store: store.wait_for_change(timeout))


def close() -> Flow[None]:
    """See `LeaseStore.close`."""
    return _call(lambda store: store.close())
