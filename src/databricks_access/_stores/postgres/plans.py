"""The PostgreSQL lease store's plans: each protocol method's transaction, written once.

A method's transaction is a generator that yields `_Exec` steps and receives their
`_Result`s; the sync and the async store each run it on the kernel (`_sansio.py`) with a
small driver, which owns the connection, the transaction, the NOTIFY and the retries. A
failed statement is thrown back into the generator: a constraint violation becomes a
`LeaseError` there, anything else passes through to the driver's retries. Arguments are
checked when the plan is made, before any connection is taken.

Each protocol method has its plan under its own name: `PostgresLeaseStore.add_lease`
runs `plans.add_lease(lease, event)`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

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
from databricks_access._sansio import Effect
from databricks_access._stores.postgres.sql import (
    _dec,
    _enc,
    _event_payload,
    _lease,
    _lease_values,
    _request,
    _request_values,
    _Sql,
)
from databricks_access._stores.rows import INT64, MAX_US, MIN_US, US, UTC, Row, from_micros, micros

# psycopg is the optional extra: without it this module still imports, and building a
# store raises the `ConfigError` of `settings._MISSING`.
with contextlib.suppress(ImportError):
    from psycopg import errors as pg_errors

T = TypeVar("T")


def _check_limit(limit: int | None) -> int | None:
    """The SQL LIMIT for a `limit` argument (None: no limit)."""
    if limit is not None and limit < 0:
        raise ConfigError(f"must be zero or more, not {limit}", field="limit")
    return limit


def _pair_arrays(pairs: Iterable[Pair]) -> tuple[list[str], list[str]]:
    principals: list[str] = []
    groups: list[str] = []
    for pair in pairs:
        principals.append(_enc(pair.principal_id))
        groups.append(_enc(pair.group_id))
    return principals, groups


def _unique(pairs: Sequence[Pair]) -> list[Pair]:
    return list(dict.fromkeys(pairs))


@attrs.frozen
class _Exec(Effect["_Result"]):
    """Run one statement (or one statement per parameter set, for `many`)."""

    sql: str
    params: Sequence[object] | Mapping[str, object] | None = None
    many: Sequence[Sequence[object]] | None = None
    write: bool = False


@attrs.frozen
class _Result:
    """What a statement answered: its rows (per statement, for `many`) and row count."""

    rows: list[Row]
    rowcount: int
    sets: list[list[Row]] = attrs.field(factory=list)


Work = Generator[_Exec, _Result, T]


@attrs.frozen
class _Call(Generic[T]):
    """One method's transaction: its work (None: nothing to do, the answer is `value`)."""

    work: Callable[[_Sql], Work[T]] | None
    doing: str
    write: bool = False
    value: Any = None


def _leases(st: _Sql, rows: list[Row]) -> list[Lease]:
    try:
        return [_lease(row) for row in rows]
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise LeaseError(f"{st.where} holds a lease this version cannot read: {exc!r}") from exc


def _requests(st: _Sql, rows: list[Row]) -> list[AccessRequest]:
    try:
        return [_request(row) for row in rows]
    except (KeyError, ValueError, TypeError, OverflowError, json.JSONDecodeError) as exc:
        raise LeaseError(
            f"{st.where} holds an access request this version cannot read: {exc!r}"
        ) from exc


def _stored_events(st: _Sql, rows: list[Row]) -> list[StoredEvent]:
    try:
        return [StoredEvent(int(seq), AuditEvent.from_json(json.loads(text))) for seq, text in rows]
    except (KeyError, ValueError, TypeError) as exc:
        raise LeaseError(f"{st.where} holds an event this version cannot read: {exc!r}") from exc


def _stale(
    what: str, found: list[Row], expected: Sequence[str], version: int | None = None
) -> StaleStateError:
    if not found:
        return StaleStateError(f"{what} does not exist")
    if version is not None and found[0][0] in expected:
        return StaleStateError(
            f"{what} changed meanwhile (version {found[0][1]}, read at {version})"
        )
    wanted = ", ".join(expected) or "nothing"
    return StaleStateError(f"{what} is {found[0][0]}, expected one of: {wanted}")


def add_lease(lease: Lease, event: AuditEvent | None) -> _Call[None]:
    values = [_enc(lease.id), *_lease_values(lease)]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        try:
            yield _Exec(st.insert_lease, values, write=True)
        except pg_errors.UniqueViolation as exc:
            raise LeaseError(f"a lease with id {lease.id!r} already exists") from exc
        if payload is not None:
            yield _Exec(st.insert_event, (payload,), write=True)

    return _Call(work, f"add lease {lease.id!r}", write=True)


def update_lease(
    lease: Lease, expect: Iterable[LeaseState], event: AuditEvent | None
) -> _Call[None]:
    expected = sorted({state.value for state in expect})
    values = [*_lease_values(lease, next_version=True), _enc(lease.id), lease.version, expected]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        if expected and (yield _Exec(st.update_lease, values, write=True)).rowcount:
            if payload is not None:
                yield _Exec(st.insert_event, (payload,), write=True)
            return
        found = (yield _Exec(st.lease_state, (_enc(lease.id),))).rows
        raise _stale(f"lease {lease.id!r}", found, expected, lease.version)

    return _Call(work, f"update lease {lease.id!r}", write=True)


def update_leases(
    updates: Sequence[tuple[Lease, LeaseState, AuditEvent | None]],
) -> _Call[list[bool]]:
    ids = [_enc(lease.id) for lease, _, _ in updates]
    rows = [
        [lease_id, expect.value, lease.version, *_lease_values(lease, next_version=True)]
        for lease_id, (lease, expect, _) in zip(ids, updates, strict=True)
    ]
    payloads = [None if event is None else _event_payload(event) for _, _, event in updates]
    if not rows:
        return _Call(None, "update no leases", value=[])
    distinct = len(set(ids)) == len(ids)

    def work(st: _Sql) -> Work[list[bool]]:
        if distinct:
            # One statement for the whole batch: each row is its own compare-and-set.
            columns = [list(column) for column in zip(*rows, strict=True)]
            updated = {row[0] for row in (yield _Exec(st.update_batch, columns, write=True)).rows}
            applied = [lease_id in updated for lease_id in ids]
        else:
            # The same lease twice: one statement per update, in order (pipelined), so
            # each compare-and-set sees the ones before it.
            many = [[*row[3:], row[0], row[2], row[1]] for row in rows]
            result = yield _Exec(st.update_cas, many=many, write=True)
            applied = [bool(found) for found in result.sets]
        written = [p for ok, p in zip(applied, payloads, strict=True) if ok and p is not None]
        if written:
            yield _Exec(st.insert_events, (written,), write=True)
        return applied

    return _Call(work, f"update {len(rows)} leases", write=True)


def get_lease(lease_id: str) -> _Call[Lease | None]:
    def work(st: _Sql) -> Work[Lease | None]:
        rows = (yield _Exec(st.get_lease, (_enc(lease_id),))).rows
        return _leases(st, rows)[0] if rows else None

    return _Call(work, "read a lease")


def leases_on_pairs(
    pairs: Sequence[Pair], states: Iterable[LeaseState] | None
) -> _Call[list[Lease]]:
    wanted = None if states is None else sorted({state.value for state in states})
    if wanted == [] or not pairs:
        return _Call(None, "read the leases of pairs", value=[])
    principals, groups = _pair_arrays(_unique(pairs))
    params: dict[str, object] = {"p": principals, "g": groups, "states": wanted}

    def work(st: _Sql) -> Work[list[Lease]]:
        statement = st.leases_on_pairs if wanted is None else st.leases_on_pairs_in
        return _leases(st, (yield _Exec(statement, params)).rows)

    return _Call(work, f"read the leases of {len(principals)} pair(s)")


def find_leases(
    principal_id: str | None,
    group_id: str | None,
    states: Iterable[LeaseState] | None,
    limit: int | None,
) -> _Call[list[Lease]]:
    _check_limit(limit)
    where: list[str] = []
    params: list[object] = []
    if principal_id is not None:
        where.append("principal_id = %s")
        params.append(_enc(principal_id))
    if group_id is not None:
        where.append("group_id = %s")
        params.append(_enc(group_id))
    if states is not None:
        wanted = sorted({state.value for state in states})
        if not wanted:
            return _Call(None, "find leases", value=[])
        where.append("state = ANY(%s::text[])")
        params.append(wanted)
    tail = (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY granted_at, rid LIMIT %s"
    params.append(limit)

    def work(st: _Sql) -> Work[list[Lease]]:
        return _leases(st, (yield _Exec(st.select_leases + tail, params)).rows)

    return _Call(work, "find leases")


def due_leases(now: dt.datetime, stuck_before: dt.datetime, limit: int) -> _Call[list[Lease]]:
    _check_limit(limit)
    now_us = micros(now, "now")
    stuck_us = micros(stuck_before, "stuck_before")
    params = {"now": now_us, "stuck": stuck_us, "shift": now_us - stuck_us, "limit": limit}

    def work(st: _Sql) -> Work[list[Lease]]:
        return _leases(st, (yield _Exec(st.due_leases, params)).rows)

    return _Call(work, "find due leases")


def next_due(stuck_after: dt.timedelta) -> _Call[dt.datetime | None]:
    shift = stuck_after // US

    def work(st: _Sql) -> Work[dt.datetime | None]:
        ((*now_due, granting, revoking),) = (yield _Exec(st.next_due)).rows
        times = [t for t in now_due if t is not None]
        times += [t + shift for t in (granting, revoking) if t is not None]
        return from_micros(min(max(min(times), MIN_US), MAX_US)) if times else None

    return _Call(work, "find the next due lease")


def claim_pairs(
    pairs: Sequence[Pair], owner: str, now: dt.datetime, until: dt.datetime
) -> _Call[list[Pair]]:
    if not pairs:
        return _Call(None, "claim no pairs", value=[])
    now_us = micros(now, "now")
    until_us = micros(until, "until")
    unique = _unique(pairs)

    def work(st: _Sql) -> Work[list[Pair]]:
        principals, groups = _pair_arrays(unique)
        params = {"owner": _enc(owner), "until": until_us, "now": now_us}
        inserted = yield _Exec(st.claim_free, {**params, "p": principals, "g": groups}, write=True)
        held = {Pair(_dec(p), _dec(g)) for p, g in inserted.rows}
        rest = [pair for pair in unique if pair not in held]
        if rest:
            principals, groups = _pair_arrays(rest)
            taken = yield _Exec(st.claim_held, {**params, "p": principals, "g": groups}, write=True)
            held.update(Pair(_dec(p), _dec(g)) for p, g in taken.rows)
        return [pair for pair in pairs if pair in held]

    return _Call(work, f"claim {len(unique)} pair(s)", write=True)


def renew_pairs(pairs: Sequence[Pair], owner: str, until: dt.datetime) -> _Call[list[Pair]]:
    if not pairs:
        return _Call(None, "renew no claims", value=[])
    until_us = micros(until, "until")
    unique = _unique(pairs)
    principals, groups = _pair_arrays(unique)
    params = {"p": principals, "g": groups, "owner": _enc(owner), "until": until_us}

    def work(st: _Sql) -> Work[list[Pair]]:
        renewed = yield _Exec(st.renew, params, write=True)
        held = {Pair(_dec(p), _dec(g)) for p, g in renewed.rows}
        return [pair for pair in pairs if pair in held]

    return _Call(work, f"renew {len(unique)} claim(s)", write=True)


def release_pairs(pairs: Sequence[Pair], owner: str) -> _Call[None]:
    if not pairs:
        return _Call(None, "release no pairs")
    principals, groups = _pair_arrays(_unique(pairs))
    params = {"p": principals, "g": groups, "owner": _enc(owner)}

    def work(st: _Sql) -> Work[None]:
        yield _Exec(st.release, params, write=True)

    return _Call(work, f"release {len(principals)} pair(s)", write=True)


def add_event(event: AuditEvent) -> _Call[None]:
    payload = _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        yield _Exec(st.insert_event, (payload,), write=True)

    return _Call(work, "add an event", write=True)


def pending_events(limit: int) -> _Call[list[StoredEvent]]:
    _check_limit(limit)

    def work(st: _Sql) -> Work[list[StoredEvent]]:
        return _stored_events(st, (yield _Exec(st.pending_events, (limit,))).rows)

    return _Call(work, "read pending events")


def mark_delivered(seqs: Sequence[int]) -> _Call[None]:
    # Sequence numbers are positive 64-bit integers; anything else is unknown: ignored.
    wanted = [seq for seq in dict.fromkeys(seqs) if isinstance(seq, int) and 0 < seq < INT64]
    if not wanted:
        return _Call(None, "mark no events delivered")
    # The delivery time is a record for people (the system clock's), not a decision.
    params = (micros(dt.datetime.now(UTC), "delivery time"), wanted)

    def work(st: _Sql) -> Work[None]:
        yield _Exec(st.mark_delivered, params, write=True)

    return _Call(work, f"mark {len(wanted)} event(s) delivered", write=True)


def add_request(request: AccessRequest, event: AuditEvent | None) -> _Call[None]:
    values = [_enc(request.id), *_request_values(request)]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        try:
            yield _Exec(st.insert_request, values, write=True)
        except pg_errors.UniqueViolation as exc:
            raise LeaseError(f"an access request with id {request.id!r} already exists") from exc
        if payload is not None:
            yield _Exec(st.insert_event, (payload,), write=True)

    return _Call(work, f"add access request {request.id!r}", write=True)


def update_request(
    request: AccessRequest, expect: Iterable[RequestState], event: AuditEvent | None
) -> _Call[None]:
    expected = sorted({state.value for state in expect})
    values = [*_request_values(request), _enc(request.id), expected]
    payload = None if event is None else _event_payload(event)

    def work(st: _Sql) -> Work[None]:
        if expected and (yield _Exec(st.update_request, values, write=True)).rowcount:
            if payload is not None:
                yield _Exec(st.insert_event, (payload,), write=True)
            return
        found = (yield _Exec(st.request_state, (_enc(request.id),))).rows
        raise _stale(f"access request {request.id!r}", found, expected)

    return _Call(work, f"update access request {request.id!r}", write=True)


def get_request(request_id: str) -> _Call[AccessRequest | None]:
    def work(st: _Sql) -> Work[AccessRequest | None]:
        rows = (yield _Exec(st.get_request, (_enc(request_id),))).rows
        return _requests(st, rows)[0] if rows else None

    return _Call(work, "read an access request")


def find_requests(
    states: Iterable[RequestState] | None,
    principal_id: str | None,
    group_id: str | None,
    limit: int | None,
) -> _Call[list[AccessRequest]]:
    _check_limit(limit)
    where: list[str] = []
    params: list[object] = []
    if states is not None:
        wanted = sorted({state.value for state in states})
        if not wanted:
            return _Call(None, "find access requests", value=[])
        where.append("state = ANY(%s::text[])")
        params.append(wanted)
    if principal_id is not None:
        where.append("principal_id = %s")
        params.append(_enc(principal_id))
    if group_id is not None:
        where.append("group_id = %s")
        params.append(_enc(group_id))
    tail = (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at, rid LIMIT %s"
    params.append(limit)

    def work(st: _Sql) -> Work[list[AccessRequest]]:
        return _requests(st, (yield _Exec(st.select_requests + tail, params)).rows)

    return _Call(work, "find access requests")
