"""`MemoryLeaseStore`: the `LeaseStore` that lives in memory, for tests and demos.

It keeps the exact semantics of the durable stores (compare-and-set updates, events
written with their change, claims that expire by the caller's clock, index-driven due
queries) so a test written against it holds for `SqliteLeaseStore` too. Nothing
survives the process.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from typing_extensions import Self

from databricks_access._errors import ConfigError, LeaseError
from databricks_access._leases.store import StaleStateError
from databricks_access._leases.values import (
    AccessRequest,
    AuditEvent,
    Lease,
    LeaseState,
    Pair,
    RequestState,
    StoredEvent,
)

__all__ = ["MemoryLeaseStore"]

_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_US = dt.timedelta(microseconds=1)
_MIN_US = (dt.datetime.min.replace(tzinfo=_UTC) - _EPOCH) // _US
_MAX_US = (dt.datetime.max.replace(tzinfo=_UTC) - _EPOCH) // _US
_INT64 = 2**63

# States with a due time, each kept in its own sorted list (the in-memory twin of the
# SQLite store's (state, due_at) index). GRANTING/REVOKING are due `stuck_after` late.
_DUE_NOW = (LeaseState.ACTIVE, LeaseState.REVOKE_FAILED)
_STUCK = (LeaseState.GRANTING, LeaseState.REVOKING)

_DueEntry = tuple[int, int, str]  # (due, in microseconds; insertion order; lease id)


def _micros(value: dt.datetime, what: str) -> int:
    """Microseconds since the epoch of an aware datetime; LeaseError for a naive one."""
    if value.utcoffset() is None:
        raise LeaseError(f"{what} must be a timezone-aware UTC datetime, not {value!r}")
    micros = (value - _EPOCH) // _US
    if not _MIN_US <= micros <= _MAX_US:
        raise LeaseError(f"{what} is out of range once converted to UTC: {value!r}")
    return micros


def _from_micros(micros: int) -> dt.datetime:
    """The UTC datetime of a microsecond count, clamped to the representable range."""
    return _EPOCH + dt.timedelta(microseconds=min(max(micros, _MIN_US), _MAX_US))


def _in_utc(value: dt.datetime, what: str) -> dt.datetime:
    """An aware datetime in UTC, as the durable stores give it back."""
    _micros(value, what)
    return value if value.tzinfo is _UTC else value.astimezone(_UTC)


_LEASE_TIMES = ("granted_at", "expires_at", "updated_at", "retry_at", "ended_at")
_REQUEST_TIMES = ("created_at", "expires_at", "updated_at", "retry_at")


def _lease_in_utc(lease: Lease) -> tuple[Lease, int | None]:
    """The lease with its times in UTC (LeaseError for naive ones), and its due time."""
    changes: dict[str, Any] = {}
    for name in _LEASE_TIMES:
        value = getattr(lease, name)
        if value is not None:
            value_utc = _in_utc(value, f"lease {lease.id!r}: {name}")
            if value_utc is not value:
                changes[name] = value_utc
    for name in ("extensions", "attempts", "version"):
        if not -_INT64 <= getattr(lease, name) < _INT64:
            raise LeaseError(f"lease {lease.id!r}: {name} does not fit in a 64-bit integer")
    if changes:
        lease = attrs.evolve(lease, **changes)
    due = lease.due_at()
    return lease, None if due is None else _micros(due, f"lease {lease.id!r}: due time")


def _request_in_utc(request: AccessRequest) -> AccessRequest:
    if not math.isfinite(request.ttl_seconds):
        ttl = request.ttl_seconds
        raise LeaseError(f"request {request.id!r}: ttl_seconds must be a finite number, not {ttl}")
    changes: dict[str, Any] = {}
    for name in _REQUEST_TIMES:
        value = getattr(request, name)
        if value is None:
            continue
        value_utc = _in_utc(value, f"request {request.id!r}: {name}")
        if value_utc is not value:
            changes[name] = value_utc
    if not -_INT64 <= request.attempts < _INT64:
        raise LeaseError(f"request {request.id!r}: attempts does not fit in a 64-bit integer")
    return attrs.evolve(request, **changes) if changes else request


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ConfigError(f"must be zero or more, not {limit}", field="limit")


def _snapshot(event: AuditEvent | None) -> AuditEvent | None:
    # Through JSON, as a durable store keeps it: what comes back is what SQLite returns.
    # Done before any change, so an event that cannot be stored fails the whole call.
    if event is None:
        return None
    try:
        return AuditEvent.from_json(json.loads(json.dumps(event.to_json())))
    except (TypeError, ValueError) as exc:
        raise LeaseError(f"the {event.kind.value} event cannot be stored as JSON: {exc}") from exc


class MemoryLeaseStore:
    """A `LeaseStore` in memory: thread-safe, exact, and gone with the process.

    Use it in tests and demos; `SqliteLeaseStore` is the durable default. Every method
    is atomic under one lock, and `wait_for_change` wakes as soon as any thread writes
    through this object::

        store = da.MemoryLeaseStore()
        tracker = da.LeaseTracker(manager, store=store, clock=da.ManualClock())

    After `close()`, every method raises `LeaseError`, as with the durable stores.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._leases: dict[str, Lease] = {}
        self._order: dict[str, int] = {}
        self._due_entry: dict[str, tuple[LeaseState, _DueEntry]] = {}
        self._due: dict[LeaseState, list[_DueEntry]] = {s: [] for s in (*_DUE_NOW, *_STUCK)}
        self._by_principal: dict[str, dict[str, None]] = {}
        self._by_group: dict[str, dict[str, None]] = {}
        self._claims: dict[Pair, tuple[str, int]] = {}
        self._pending: dict[int, AuditEvent] = {}
        self._next_seq = 1
        self._requests: dict[str, AccessRequest] = {}
        self._request_order: dict[str, int] = {}
        # Every write bumps `_version`; `_seen` is the version the last wait returned at.
        self._version = 0
        self._seen = 0

    def __repr__(self) -> str:
        with self._lock:
            state = "closed" if self._closed else f"leases={len(self._leases)}"
            return f"MemoryLeaseStore({state}, pending_events={len(self._pending)})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers (call with the lock held) -------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LeaseError("the in-memory lease store is closed")

    def _changed_now(self) -> None:
        self._version += 1
        self._changed.notify_all()

    def _append_event(self, event: AuditEvent | None) -> None:
        """Append an event already passed through `_snapshot`."""
        if event is not None:
            self._pending[self._next_seq] = event
            self._next_seq += 1

    def _index(self, lease: Lease, due: int | None) -> None:
        self._by_principal.setdefault(lease.principal.id, {})[lease.id] = None
        self._by_group.setdefault(lease.group_id, {})[lease.id] = None
        if due is not None and lease.state in self._due:
            entry = (due, self._order[lease.id], lease.id)
            bisect.insort(self._due[lease.state], entry)
            self._due_entry[lease.id] = (lease.state, entry)

    def _unindex(self, lease: Lease) -> None:
        for index, key in (
            (self._by_principal, lease.principal.id),
            (self._by_group, lease.group_id),
        ):
            ids = index[key]
            del ids[lease.id]
            if not ids:
                del index[key]
        found = self._due_entry.pop(lease.id, None)
        if found is not None:
            state, entry = found
            entries = self._due[state]
            del entries[bisect.bisect_left(entries, entry)]

    # -- leases ----------------------------------------------------------------------------

    def add_lease(self, lease: Lease, event: AuditEvent | None = None) -> None:
        """Insert a new lease, and its event in the same step.

        Raises:
            LeaseError: a lease with this id exists, or a time is naive.
        """
        event = _snapshot(event)
        lease, due = _lease_in_utc(lease)
        with self._lock:
            self._check_open()
            if lease.id in self._leases:
                raise LeaseError(f"a lease with id {lease.id!r} already exists")
            self._leases[lease.id] = lease
            self._order[lease.id] = len(self._order)
            self._index(lease, due)
            self._append_event(event)
            self._changed_now()

    def update_lease(
        self,
        lease: Lease,
        *,
        expect: Iterable[LeaseState],
        event: AuditEvent | None = None,
    ) -> None:
        """Replace the stored lease of `lease.id` if its state is in `expect`, with its event.

        Raises:
            StaleStateError: the stored state is not in `expect`, or the lease is gone.
        """
        event = _snapshot(event)
        expected = frozenset(expect)
        lease, due = _lease_in_utc(lease)
        with self._lock:
            self._check_open()
            old = self._leases.get(lease.id)
            if old is None:
                raise StaleStateError(f"lease {lease.id!r} does not exist")
            if old.state not in expected:
                wanted = ", ".join(sorted(s.value for s in expected)) or "nothing"
                raise StaleStateError(
                    f"lease {lease.id!r} is {old.state.value}, expected one of: {wanted}"
                )
            if old.version != lease.version:
                raise StaleStateError(
                    f"lease {lease.id!r} changed meanwhile (version {old.version}, "
                    f"read at {lease.version})"
                )
            lease = attrs.evolve(lease, version=lease.version + 1)
            self._unindex(old)
            self._leases[lease.id] = lease
            self._index(lease, due)
            self._append_event(event)
            self._changed_now()

    def update_leases(
        self, updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]]
    ) -> list[bool]:
        """Apply many compare-and-set updates at once; False for each stale one."""
        prepared = [
            (*_lease_in_utc(lease), expect, _snapshot(event)) for lease, expect, event in updates
        ]
        results: list[bool] = []
        with self._lock:
            self._check_open()
            for lease, due, expect, event in prepared:
                old = self._leases.get(lease.id)
                if old is None or old.state is not expect or old.version != lease.version:
                    results.append(False)
                    continue
                lease = attrs.evolve(lease, version=lease.version + 1)  # noqa: PLW2901
                self._unindex(old)
                self._leases[lease.id] = lease
                self._index(lease, due)
                self._append_event(event)
                results.append(True)
            if any(results):
                self._changed_now()
        return results

    def get_lease(self, lease_id: str) -> Lease | None:
        """One lease, or None."""
        with self._lock:
            self._check_open()
            return self._leases.get(lease_id)

    def leases_on_pairs(
        self, pairs: Sequence[Pair], *, states: Iterable[LeaseState] | None = None
    ) -> list[Lease]:
        """Every lease on any of `pairs` (in `states`, when given), oldest first."""
        wanted = None if states is None else frozenset(states)
        targets = {(pair.principal_id, pair.group_id) for pair in pairs}
        with self._lock:
            self._check_open()
            found = [
                lease
                for principal_id in {p for p, _ in targets}
                for lease in map(self._leases.__getitem__, self._by_principal.get(principal_id, {}))
                if (lease.principal.id, lease.group_id) in targets
                and (wanted is None or lease.state in wanted)
            ]
            found.sort(key=lambda lease: (lease.granted_at, self._order[lease.id]))
        return found

    def find_leases(
        self,
        *,
        principal_id: str | None = None,
        group_id: str | None = None,
        states: Iterable[LeaseState] | None = None,
        limit: int | None = None,
    ) -> list[Lease]:
        """Leases matching every given criterion, oldest `granted_at` first.

        Ties keep the order in which the leases were added. `limit=None` means all.
        """
        _check_limit(limit)
        wanted = None if states is None else frozenset(states)
        with self._lock:
            self._check_open()
            if principal_id is not None:
                ids: Iterable[str] = self._by_principal.get(principal_id, {})
            elif group_id is not None:
                ids = self._by_group.get(group_id, {})
            else:
                ids = self._leases
            found = [
                lease
                for lease in map(self._leases.__getitem__, ids)
                if (group_id is None or lease.group_id == group_id)
                and (wanted is None or lease.state in wanted)
            ]
            found.sort(key=lambda lease: (lease.granted_at, self._order[lease.id]))
        return found if limit is None else found[:limit]

    def due_leases(
        self, now: dt.datetime, *, stuck_before: dt.datetime, limit: int = 1000
    ) -> list[Lease]:
        """Leases the tracker must act on now, earliest due first.

        `ACTIVE` leases with `expires_at <= now`; `REVOKE_FAILED` leases whose `retry_at`
        (or, without one, `updated_at`) is `<= now`; `GRANTING` and `REVOKING` leases whose
        `updated_at <= stuck_before`. A stuck lease is due `now - stuck_before` after its
        `updated_at` (as `next_due` counts it); ties keep the order the leases were added.
        """
        _check_limit(limit)
        now_us = _micros(now, "now")
        stuck_us = _micros(stuck_before, "stuck_before")
        shift = now_us - stuck_us
        keyed: list[tuple[int, int, str]] = []
        with self._lock:
            self._check_open()
            for state in (*_DUE_NOW, *_STUCK):
                bound, offset = (now_us, 0) if state in _DUE_NOW else (stuck_us, shift)
                for due, order, lease_id in self._due[state][:limit]:
                    if due > bound:
                        break
                    keyed.append((due + offset, order, lease_id))
            keyed.sort()
            return [self._leases[lease_id] for _, _, lease_id in keyed[:limit]]

    def next_due(self, *, stuck_after: dt.timedelta) -> dt.datetime | None:
        """The earliest time at which `due_leases` would return something, or None.

        For `GRANTING`/`REVOKING` leases that time is `updated_at + stuck_after`.
        """
        shift = stuck_after // _US
        with self._lock:
            self._check_open()
            firsts = [
                entries[0][0] + (shift if state in _STUCK else 0)
                for state, entries in self._due.items()
                if entries
            ]
        return _from_micros(min(firsts)) if firsts else None

    # -- claims ----------------------------------------------------------------------------

    def claim_pairs(
        self, pairs: Sequence[Pair], *, owner: str, now: dt.datetime, until: dt.datetime
    ) -> list[Pair]:
        """Claim every pair that is free, expired (`expires_at <= now`) or already `owner`'s.

        Never waits: a pair held by another owner is skipped. Returns the pairs claimed,
        in the order given; the claims expire at `until`.
        """
        now_us = _micros(now, "now")
        until_us = _micros(until, "until")
        claimed: list[Pair] = []
        with self._lock:
            self._check_open()
            for pair in pairs:
                held = self._claims.get(pair)
                if held is None or held[0] == owner or held[1] <= now_us:
                    self._claims[pair] = (owner, until_us)
                    claimed.append(pair)
            if claimed:
                self._changed_now()
        return claimed

    def renew_pairs(self, pairs: Sequence[Pair], *, owner: str, until: dt.datetime) -> list[Pair]:
        """Extend `owner`'s claims on `pairs` to `until`; returns those still `owner`'s."""
        until_us = _micros(until, "until")
        renewed: list[Pair] = []
        with self._lock:
            self._check_open()
            for pair in pairs:
                held = self._claims.get(pair)
                if held is not None and held[0] == owner:
                    self._claims[pair] = (owner, until_us)
                    renewed.append(pair)
        return renewed

    def release_pairs(self, pairs: Sequence[Pair], *, owner: str) -> None:
        """Release `owner`'s claims on `pairs` (others' claims are left alone)."""
        with self._lock:
            self._check_open()
            released = False
            for pair in pairs:
                held = self._claims.get(pair)
                if held is not None and held[0] == owner:
                    del self._claims[pair]
                    released = True
            if released:
                self._changed_now()

    # -- outbox ----------------------------------------------------------------------------

    def add_event(self, event: AuditEvent) -> None:
        """Append an event that comes with no state change (drift, say)."""
        stored = _snapshot(event)
        with self._lock:
            self._check_open()
            self._append_event(stored)
            self._changed_now()

    def pending_events(self, *, limit: int = 100) -> list[StoredEvent]:
        """Events not yet delivered, in the order written (at most `limit`)."""
        _check_limit(limit)
        with self._lock:
            self._check_open()
            out: list[StoredEvent] = []
            for seq, event in self._pending.items():
                if len(out) >= limit:
                    break
                out.append(StoredEvent(seq, event))
            return out

    def mark_delivered(self, seqs: Sequence[int]) -> None:
        """Mark events delivered; unknown or already delivered sequence numbers are ignored."""
        with self._lock:
            self._check_open()
            removed = [seq for seq in seqs if self._pending.pop(seq, None) is not None]
            if removed:
                self._changed_now()

    # -- access requests -------------------------------------------------------------------

    def add_request(self, request: AccessRequest, event: AuditEvent | None = None) -> None:
        """Insert a new access request and its event.

        Raises:
            LeaseError: a request with this id exists, or a time is naive.
        """
        event = _snapshot(event)
        request = _request_in_utc(request)
        with self._lock:
            self._check_open()
            if request.id in self._requests:
                raise LeaseError(f"an access request with id {request.id!r} already exists")
            self._requests[request.id] = request
            self._request_order[request.id] = len(self._request_order)
            self._append_event(event)
            self._changed_now()

    def update_request(
        self,
        request: AccessRequest,
        *,
        expect: Iterable[RequestState],
        event: AuditEvent | None = None,
    ) -> None:
        """Replace a request if its stored state is in `expect`, with its event.

        Raises:
            StaleStateError: the stored state is not in `expect`, or the request is gone.
        """
        event = _snapshot(event)
        expected = frozenset(expect)
        request = _request_in_utc(request)
        with self._lock:
            self._check_open()
            old = self._requests.get(request.id)
            if old is None:
                raise StaleStateError(f"access request {request.id!r} does not exist")
            if old.state not in expected:
                wanted = ", ".join(sorted(s.value for s in expected)) or "nothing"
                raise StaleStateError(
                    f"access request {request.id!r} is {old.state.value}, expected one of: {wanted}"
                )
            self._requests[request.id] = request
            self._append_event(event)
            self._changed_now()

    def get_request(self, request_id: str) -> AccessRequest | None:
        """One access request, or None."""
        with self._lock:
            self._check_open()
            return self._requests.get(request_id)

    def find_requests(
        self,
        *,
        states: Iterable[RequestState] | None = None,
        principal_id: str | None = None,
        group_id: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRequest]:
        """Requests matching every given criterion, oldest `created_at` first.

        Ties keep the order in which the requests were added. `limit=None` means all.
        """
        _check_limit(limit)
        wanted = None if states is None else frozenset(states)
        with self._lock:
            self._check_open()
            found = [
                request
                for request in self._requests.values()
                if (wanted is None or request.state in wanted)
                and (principal_id is None or request.principal.id == principal_id)
                and (group_id is None or request.group_id == group_id)
            ]
            found.sort(key=lambda r: (r.created_at, self._request_order[r.id]))
        return found if limit is None else found[:limit]

    # -- wake-ups --------------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Block until the store changes, or `timeout` seconds pass.

        Every write through this object counts, from any thread (the tracker's loop in
        one thread wakes when another grants). A change made since the previous
        `wait_for_change` returned counts too, so a write that lands between a caller's
        last read and its wait is never missed; the price is an early return after the
        caller's own writes, which callers handle by re-checking.

        Returns:
            True when a change was seen, False when the timeout passed without one
            (or the store was closed while waiting).
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            self._check_open()
            while self._version == self._seen and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            if self._closed:
                return False
            self._seen = self._version
            return True

    def close(self) -> None:
        """Close the store: later calls raise `LeaseError`; waiting threads return False."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()
