"""What only the PostgreSQL stores promise: the schema, claims across replicas, NOTIFY
wake-ups, reconnects, and several tracker processes sweeping one database.

The protocol itself is tested for every store (these included) in
`test_store_contract.py`. These tests need a PostgreSQL server (`postgres_server.py`
starts a throwaway one); without one they are skipped, or fail when `CI` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import databricks_access as da
from databricks_access import (
    AsyncLeaseStore,
    AuditEvent,
    ConfigError,
    EventKind,
    Lease,
    LeaseError,
    LeaseState,
    LeaseStore,
    Pair,
    PrincipalKind,
    PrincipalRef,
)
from databricks_access.testing import FakeAccount
from helpers.internals import CRASH_ENV, CRASH_EXIT_CODE, threaded
from helpers.postgres_server import postgres_server_fixture  # noqa: F401 - the server fixture

try:
    import psycopg
    from psycopg import sql

    from databricks_access import AsyncPostgresLeaseStore, PostgresLeaseStore
    from databricks_access._stores.postgres import (
        CHANNEL,
        SCHEMA_VERSION,
        _after,
        _Attempt,
        _dec,
        _enc,
        _lease_values,
        _relevant,
        _Retry,
    )
except ImportError as exc:  # pragma: no cover - only without the extra
    if os.environ.get("CI"):
        raise
    pytest.skip(f"psycopg is not installed: {exc}", allow_module_level=True)

ROOT = Path(__file__).parents[2]
CHILD = Path(__file__).parents[1] / "helpers" / "tracker_child.py"
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
START = dt.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
CLAIM_TTL = dt.timedelta(minutes=2)
ALICE = PrincipalRef(PrincipalKind.USER, "u-alice")
MEMBER = re.compile(r'members\[value eq "(\d+)"\]')
# Generous bound for "promptly": the promise is "not after the timeout", not a latency.
PROMPT = 10.0

_ids = itertools.count()


def lease(**changes) -> Lease:
    values = {
        "id": f"lease_{next(_ids)}",
        "principal": ALICE,
        "group_id": "g-readers",
        "state": LeaseState.ACTIVE,
        "granted_at": T0,
        "expires_at": T0 + HOUR,
        "requester": "alice",
        "reason": "INC-1",
        "updated_at": T0,
    }
    values.update(changes)
    return Lease(**values)


def drift() -> AuditEvent:
    return AuditEvent(kind=EventKind.DRIFT, at=T0)


@pytest.fixture
def schema(postgres_server):
    return postgres_server.new_schema()


@pytest.fixture
def store(postgres_server, schema):
    with PostgresLeaseStore(postgres_server.url, schema=schema) as opened:
        yield opened


@pytest.fixture
def raw(postgres_server):
    """A plain autocommit connection to the test database."""
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        yield conn


def q(template: str, schema: str) -> sql.Composed:
    """A statement with `{s}` replaced by the quoted schema."""
    return sql.SQL(template).format(s=sql.Identifier(schema))


# -- without a server -----------------------------------------------------------------------


def test_without_psycopg_the_module_imports_and_the_stores_name_the_extra():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None
        import databricks_access as da
        from databricks_access._stores import postgres as _postgres_store
        for cls in (da.PostgresLeaseStore, da.AsyncPostgresLeaseStore):
            try:
                cls("postgresql://jit@db.internal/jit")
            except da.ConfigError as exc:
                print(exc.fields, exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.splitlines()
    assert len(out) == 2
    for line in out:
        assert line.startswith("('conninfo',)")
        assert "pip install 'databricks-access[postgres]'" in line


@pytest.mark.parametrize("cls", ["sync", "async"])
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"schema": "1abc"}, "schema"),
        ({"schema": 'a"b'}, "schema"),
        ({"schema": "x" * 64}, "schema"),
        ({"min_size": 0}, "min_size"),
        ({"min_size": 3, "max_size": 2}, "max_size"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"conninfo": "host=x port"}, "conninfo"),
    ],
)
def test_bad_arguments_are_config_errors(cls, kwargs, field):
    kwargs = {"conninfo": "postgresql://u@localhost/db", **kwargs}
    factory = PostgresLeaseStore if cls == "sync" else AsyncPostgresLeaseStore
    with pytest.raises(ConfigError) as info:
        factory(kwargs.pop("conninfo"), **kwargs)
    assert info.value.fields == (field,)


def test_repr_and_errors_never_show_the_password():
    store = AsyncPostgresLeaseStore("postgresql://jit:s3cret@db.internal:5433/leases")
    assert repr(store) == (
        "AsyncPostgresLeaseStore('postgresql://jit@db.internal:5433/leases', "
        "schema='databricks_access')"
    )
    assert isinstance(store, AsyncLeaseStore)
    assert threaded(store) is store


def test_an_unreachable_server_is_a_lease_error():
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://jit:s3cret@127.0.0.1:{port}/leases"
    with pytest.raises(LeaseError, match="cannot connect") as info:
        PostgresLeaseStore(url, timeout=2)
    assert "s3cret" not in str(info.value)

    async def main():
        store = AsyncPostgresLeaseStore(url, timeout=2)
        with pytest.raises(LeaseError, match="cannot connect"):
            await store.get_lease("x")
        await store.close()

    asyncio.run(main())


@given(st.text())
def test_text_escaping_round_trips_and_holds_no_nul(text):
    stored = _enc(text)
    assert "\x00" not in stored
    assert _dec(stored) == text
    if "\x00" not in text and "\x1b" not in text:
        assert stored == text


def test_notifications_wake_only_for_this_schema_from_other_writers():
    own = "leases 0123abcd"
    assert _relevant("leases 99", "leases", own)
    assert not _relevant(own, "leases", own)
    assert not _relevant("other 99", "leases", own)
    assert not _relevant("leases", "leases", own)
    assert _relevant("", "leases", own)  # an administrator's bare NOTIFY


def test_conflicts_are_retried_and_lost_connections_once():
    tries = {"reconnects": 1, "conflicts": 0}
    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")
    for _ in range(5):
        assert _after(deadlock, _Attempt(), tries, closed=False) is _Retry.AGAIN
    with pytest.raises(psycopg.Error):
        _after(deadlock, _Attempt(), tries, closed=False)
    # A statement that failed on a healthy connection is not retried.
    with pytest.raises(psycopg.Error):
        _after(psycopg.errors.UndefinedTable("x"), _Attempt(), tries, closed=False)


NEEDS_SERVER = textwrap.dedent(
    """
    from helpers.postgres_server import postgres_server_fixture

    def test_needs_the_server(postgres_server):
        pass
    """
)


@pytest.mark.parametrize("ci", [False, True])
def test_without_postgresql_tests_skip_but_fail_on_ci(tmp_path, ci):
    (tmp_path / "test_needs_server.py").write_text(NEEDS_SERVER, encoding="utf-8")
    (tmp_path / "empty").mkdir()
    # The inner pytest picks its own temp dir: not the outer run's (a parent of its cwd).
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    env["DATABRICKS_ACCESS_TEST_POSTGRES_BIN"] = str(tmp_path / "empty")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    if ci:
        env["CI"] = "true"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ci:
        assert run.returncode == 1, run.stdout
        assert "PostgreSQL is required on CI" in run.stdout
    else:
        assert run.returncode == 0, run.stdout
        assert "1 skipped" in run.stdout
        assert "PostgreSQL server binaries (initdb, pg_ctl) were not found" in run.stdout


def _public(cls):
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def _parameters(func):
    return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]


def test_sync_and_async_stores_are_twins_of_the_protocols():
    sync, asynchronous = _public(PostgresLeaseStore), _public(AsyncPostgresLeaseStore)
    # The async store also opens explicitly (the sync one opens in its constructor).
    assert set(asynchronous) - set(sync) == {"open"}
    assert set(sync) <= set(asynchronous)
    for name, method in sync.items():
        assert _parameters(method) == _parameters(asynchronous[name]), name
        assert inspect.iscoroutinefunction(asynchronous[name]), name
    for protocol, cls in (
        (LeaseStore, PostgresLeaseStore),
        (AsyncLeaseStore, AsyncPostgresLeaseStore),
    ):
        for name, method in _public(protocol).items():
            assert _parameters(getattr(cls, name)) == _parameters(method), (cls, name)


# -- the schema -----------------------------------------------------------------------------


def test_a_new_schema_gets_every_table_and_the_version(store, raw, schema):
    tables = {
        row[0]
        for row in raw.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
    }
    assert tables == {"meta", "leases", "claims", "events", "requests"}
    version = raw.execute(q("SELECT value FROM {s}.meta", schema)).fetchone()[0]
    assert version == str(SCHEMA_VERSION)
    indexes = {
        row[0]
        for row in raw.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
    }
    assert {"leases_due", "leases_pair", "leases_group", "events_pending"} <= indexes
    assert store.schema == schema


def test_reopening_keeps_everything_and_does_not_migrate(postgres_server, store, schema):
    store.add_lease(item := lease(), drift())
    store.close()
    with PostgresLeaseStore(postgres_server.url, schema=schema) as again:
        assert again.get_lease(item.id) == item
        assert [e.event.kind for e in again.pending_events()] == [EventKind.DRIFT]


def test_replicas_creating_one_schema_at_once_all_succeed(postgres_server, schema):
    barrier = threading.Barrier(6)
    opened, errors = [], []

    def start():
        barrier.wait(PROMPT)
        try:
            opened.append(PostgresLeaseStore(postgres_server.url, schema=schema))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        assert len(opened) == 6
        opened[0].add_lease(item := lease())
        assert all(s.get_lease(item.id) == item for s in opened)
    finally:
        for s in opened:
            s.close()


def test_a_schema_from_a_newer_version_is_refused(postgres_server, store, raw, schema):
    store.close()
    raw.execute(q("UPDATE {s}.meta SET value = '99'", schema))
    with pytest.raises(LeaseError, match="newer databricks_access"):
        PostgresLeaseStore(postgres_server.url, schema=schema)


def test_a_schema_of_something_else_is_refused(postgres_server, raw, schema):
    raw.execute(q("CREATE SCHEMA {s}", schema))
    raw.execute(q("CREATE TABLE {s}.invoices (id int)", schema))
    with pytest.raises(LeaseError, match="not a databricks_access lease store"):
        PostgresLeaseStore(postgres_server.url, schema=schema)


def test_a_user_who_may_not_create_the_schema_gets_a_clear_error(postgres_server, raw, schema):
    role = f"limited_{schema}"
    raw.execute(f'CREATE ROLE "{role}" LOGIN')
    url = postgres_server.url.replace("postgres@", f"{role}@")
    with pytest.raises(LeaseError, match="privilege"):
        PostgresLeaseStore(url, schema=schema)


def test_an_older_schema_is_migrated_once_under_the_lock(postgres_server, store, monkeypatch):
    import databricks_access._stores.postgres as module  # noqa: PLC0415

    store.add_lease(item := lease())
    store.close()
    newer = SCHEMA_VERSION + 1
    monkeypatch.setattr(module, "SCHEMA_VERSION", newer)
    monkeypatch.setattr(
        module,
        "_MIGRATIONS",
        {**module._MIGRATIONS, SCHEMA_VERSION: ("ALTER TABLE {s}.leases ADD COLUMN note text",)},
    )
    opened = [PostgresLeaseStore(postgres_server.url, schema=store.schema) for _ in range(2)]
    try:
        assert all(s.get_lease(item.id) == item for s in opened)
        with opened[0]._pool.connection() as conn:
            version = conn.execute(q("SELECT value FROM {s}.meta", store.schema)).fetchone()[0]
            conn.execute(q("SELECT note FROM {s}.leases", store.schema))  # the new column
        assert version == str(newer)
    finally:
        for s in opened:
            s.close()


def test_a_version_1_schema_gets_lease_versions(postgres_server, store, raw):
    store.add_lease(item := lease())
    store.close()
    # What the previous release wrote: no version column, schema version 1.
    raw.execute(q("ALTER TABLE {s}.leases DROP COLUMN version", store.schema))
    raw.execute(
        q(
            "ALTER TABLE {s}.requests DROP COLUMN attempts, DROP COLUMN retry_at, "
            "DROP COLUMN last_error",
            store.schema,
        )
    )
    raw.execute(q("UPDATE {s}.meta SET value = '1'", store.schema))
    with PostgresLeaseStore(postgres_server.url, schema=store.schema) as reopened:
        assert reopened.get_lease(item.id) == item
        assert item.version == 0
        changed = attrs.evolve(item, state=LeaseState.REVOKING)
        reopened.update_lease(changed, expect=[LeaseState.ACTIVE])
        assert reopened.get_lease(item.id).version == 1
    version = raw.execute(q("SELECT value FROM {s}.meta", store.schema)).fetchone()[0]
    assert version == "2"


def test_a_version_1_schema_gets_the_request_retry_columns(postgres_server, store, raw):
    # The previous release's layout: requests without attempts, retry_at, last_error.
    store.close()
    raw.execute(
        q(
            "ALTER TABLE {s}.requests DROP COLUMN attempts, DROP COLUMN retry_at, "
            "DROP COLUMN last_error",
            store.schema,
        )
    )
    raw.execute(q("ALTER TABLE {s}.leases DROP COLUMN version", store.schema))
    raw.execute(q("UPDATE {s}.meta SET value = '1' WHERE key = 'schema_version'", store.schema))
    raw.execute(
        q(
            "INSERT INTO {s}.requests (id, principal_kind, principal_id, group_id, ttl_seconds, "
            "reason, requester, state, created_at, expires_at, updated_at, approvers, "
            "decided_by) VALUES ('req_1', 'user', 'u-1', 'g-1', 3600, 'INC-7', 'helpdesk', "
            "'approved', 1767258000000000, 1767344400000000, 1767258000000000, "
            "'[\"user:ann@example.com\"]', 'ann@example.com')",
            store.schema,
        )
    )
    opened = PostgresLeaseStore(postgres_server.url, schema=store.schema)
    try:
        found = opened.get_request("req_1")
        assert (found.state, found.decided_by, found.approvers) == (
            da.RequestState.APPROVED,
            "ann@example.com",
            ("user:ann@example.com",),
        )
        assert (found.attempts, found.retry_at, found.last_error) == (0, None, None)
        retrying = attrs.evolve(found, attempts=2, retry_at=found.expires_at, last_error="429")
        opened.update_request(retrying, expect=(da.RequestState.APPROVED,))
        assert opened.get_request("req_1") == retrying
        version = raw.execute(q("SELECT value FROM {s}.meta", store.schema)).fetchone()[0]
        assert version == str(SCHEMA_VERSION)
    finally:
        opened.close()


def test_a_meta_table_without_a_version_is_refused(postgres_server, store, raw):
    store.close()
    raw.execute(q("DELETE FROM {s}.meta", store.schema))
    with pytest.raises(LeaseError, match="without a schema version"):
        PostgresLeaseStore(postgres_server.url, schema=store.schema)


def test_rows_this_version_cannot_read_are_lease_errors(store, raw):
    store.add_lease(item := lease())
    store.add_event(drift())
    raw.execute(q("UPDATE {s}.leases SET state = 'frozen'", store.schema))
    raw.execute(q('UPDATE {s}.events SET payload = \'{{"kind": "nope"}}\'', store.schema))
    with pytest.raises(LeaseError, match="holds a lease this version cannot read"):
        store.get_lease(item.id)
    with pytest.raises(LeaseError, match="holds an event this version cannot read"):
        store.pending_events()


def test_text_that_is_not_unicode_is_a_lease_error(store):
    with pytest.raises(LeaseError, match="not valid Unicode"):
        store.add_lease(lease(reason="\ud800"))
    assert store.find_leases() == []


# -- transactions, locks and claims ---------------------------------------------------------


def test_update_many_sees_its_own_earlier_updates(store):
    item = lease()
    store.add_lease(item)
    revoking = attrs.evolve(item, state=LeaseState.REVOKING)
    revoked = attrs.evolve(item, state=LeaseState.REVOKED, version=1)
    got = store.update_leases(
        [
            (revoking, LeaseState.ACTIVE, AuditEvent(kind=EventKind.EXPIRED, at=T0)),
            (revoked, LeaseState.REVOKING, AuditEvent(kind=EventKind.REVOKED, at=T0)),
            (revoked, LeaseState.ACTIVE, drift()),
        ]
    )
    assert got == [True, True, False]
    assert store.get_lease(item.id) == attrs.evolve(revoked, version=2)
    kinds = [e.event.kind for e in store.pending_events()]
    assert kinds == [EventKind.EXPIRED, EventKind.REVOKED]


def test_due_leases_skip_rows_another_transaction_holds(store, postgres_server, schema):
    first, second = lease(expires_at=T0), lease(expires_at=T0 + MIN)
    store.add_lease(first)
    store.add_lease(second)
    with psycopg.connect(postgres_server.url) as other:  # a transaction is open until exit
        other.execute(q("SELECT 1 FROM {s}.leases WHERE id = %s FOR UPDATE", schema), (first.id,))
        start = time.monotonic()
        assert [x.id for x in store.due_leases(T0 + HOUR, stuck_before=T0)] == [second.id]
        assert time.monotonic() - start < PROMPT
        other.rollback()
    assert [x.id for x in store.due_leases(T0 + HOUR, stuck_before=T0)] == [first.id, second.id]


def test_claims_skip_a_pair_another_transaction_holds_without_waiting(
    store, postgres_server, schema
):
    p1, p2 = Pair("u-1", "g"), Pair("u-2", "g")
    assert store.claim_pairs([p1, p2], owner="me", now=T0, until=T0 + MIN) == [p1, p2]
    with psycopg.connect(postgres_server.url) as other:
        other.execute(q("SELECT 1 FROM {s}.claims WHERE principal_id = 'u-1' FOR UPDATE", schema))
        start = time.monotonic()
        # Renewing my own claims: the locked one is skipped, not waited for.
        assert store.claim_pairs([p1, p2], owner="me", now=T0, until=T0 + 2 * MIN) == [p2]
        assert time.monotonic() - start < PROMPT
        other.rollback()
    assert store.claim_pairs([p1, p2], owner="me", now=T0, until=T0 + 2 * MIN) == [p1, p2]


def test_claim_expiry_is_the_callers_clock_stored_exactly(store, raw, schema):
    until = dt.datetime(2031, 7, 1, 12, 0, 0, 123456, tzinfo=UTC)
    store.claim_pairs([Pair("u", "g")], owner="me", now=T0, until=until)
    ((owner, expires),) = raw.execute(q("SELECT owner, expires_at FROM {s}.claims", schema))
    assert owner == "me"
    assert expires == (until - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


def test_a_row_locked_past_the_timeout_is_a_lease_error(postgres_server, schema):
    with PostgresLeaseStore(postgres_server.url, schema=schema, timeout=1) as store:
        item = lease()
        store.add_lease(item)
        with psycopg.connect(postgres_server.url) as other:
            other.execute(
                q("SELECT 1 FROM {s}.leases WHERE id = %s FOR UPDATE", schema), (item.id,)
            )
            with pytest.raises(LeaseError, match="stayed locked"):
                store.update_lease(
                    attrs.evolve(item, state=LeaseState.REVOKING), expect=[LeaseState.ACTIVE]
                )
            other.rollback()
        assert store.get_lease(item.id) == item


def test_a_store_is_not_used_across_fork(store):
    with warnings.catch_warnings():  # 3.12+: fork() with threads (the pool's) warns
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report through the exit code, touch nothing else
        try:
            store.get_lease("x")
        except LeaseError as exc:
            os._exit(0 if "fork" in str(exc) else 1)
        os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get_lease("x") is None


# -- reconnects and the outcome of a lost COMMIT ------------------------------------------


class _DropAfterCommit:
    """A pooled connection whose transaction commits (or not), then loses the connection."""

    def __init__(self, conn, *, commit: bool) -> None:
        self._conn = conn
        self._commit = commit

    def __getattr__(self, name):
        return getattr(self._conn, name)

    @contextlib.contextmanager
    def transaction(self):
        with self._conn.transaction() as tx:
            yield tx
            if not self._commit:
                raise psycopg.Rollback
        self._conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly (simulated)")


def _drop_next_commit(store, monkeypatch, *, commit: bool) -> None:
    pool = store._pool
    real = pool.connection
    used = []

    @contextlib.contextmanager
    def connection(*args, **kwargs):
        with real(*args, **kwargs) as conn:
            if used:
                yield conn
            else:
                used.append(conn)
                yield _DropAfterCommit(conn, commit=commit)

    monkeypatch.setattr(pool, "connection", connection)


@pytest.mark.parametrize("committed", [True, False])
def test_a_commit_whose_connection_is_lost_is_looked_up_not_repeated(store, monkeypatch, committed):
    item = lease()
    store.wait_for_change(0)
    _drop_next_commit(store, monkeypatch, commit=committed)
    # Committed: txid_status says so and the call succeeds (a second insert would fail on
    # the duplicate id). Not committed: the server says aborted and the call runs again.
    store.add_lease(item, drift())
    assert store.get_lease(item.id) == item
    assert len(store.pending_events()) == 1
    assert store.wait_for_change(0) is True


def test_a_commit_of_unknown_outcome_is_a_lease_error(store, monkeypatch):
    monkeypatch.setattr(store, "_txid_status", lambda pool, xid: None)
    _drop_next_commit(store, monkeypatch, commit=True)
    with pytest.raises(LeaseError, match="unknown"):
        store.add_lease(lease())


def test_a_connection_killed_mid_transaction_is_rolled_back_and_run_again(store, raw, monkeypatch):
    item = lease()
    killed = []
    real = store._execute

    def execute(conn, step):
        result = real(conn, step)
        if step.sql == store._sql.insert_lease and not killed:
            # The lease row is written, its event not yet: the backend dies now.
            killed.append(conn.info.backend_pid)
            raw.execute("SELECT pg_terminate_backend(%s, 10000)", (killed[0],))
        return result

    monkeypatch.setattr(store, "_execute", execute)
    store.add_lease(item, drift())
    assert killed
    assert store.find_leases() == [item]
    assert len(store.pending_events()) == 1


def test_the_server_restarting_between_operations_loses_nothing(postgres_server, store):
    items = [lease() for _ in range(5)]
    for item in items:
        store.add_lease(item, drift())
    store.claim_pairs([Pair("u", "g")], owner="me", now=T0, until=T0 + MIN)
    store.wait_for_change(0)
    postgres_server.restart()
    # Reads and writes reconnect (every pooled connection died with the server).
    assert store.find_leases() == items
    store.update_lease(
        attrs.evolve(items[0], state=LeaseState.REVOKING), expect=[LeaseState.ACTIVE]
    )
    assert store.claim_pairs([Pair("u", "g")], owner="other", now=T0, until=T0 + MIN) == []
    assert len(store.pending_events()) == 5
    # The listener reconnects too: the wait says a change may have been missed, and the
    # next one from another store object is seen.
    assert store.wait_for_change(PROMPT) is True
    with PostgresLeaseStore(postgres_server.url, schema=store.schema) as other:
        store.wait_for_change(0)
        other.add_event(drift())
        assert store.wait_for_change(PROMPT) is True


def test_the_async_store_reconnects_after_a_restart(postgres_server, schema):
    async def main():
        async with AsyncPostgresLeaseStore(postgres_server.url, schema=schema) as store:
            await store.add_lease(item := lease())
            await store.wait_for_change(0)
            await asyncio.to_thread(postgres_server.restart)
            assert await store.get_lease(item.id) == item
            await store.add_event(drift())
            assert await store.wait_for_change(PROMPT) is True

    asyncio.run(main())


def test_a_lost_listener_is_reopened_and_waits_time_out_meanwhile(store, raw, monkeypatch):
    store.wait_for_change(0)
    raw.execute("SELECT pg_terminate_backend(%s, 10000)", (store._listener.info.backend_pid,))
    real = store._connect

    def refuse(**kwargs):
        raise psycopg.OperationalError("connection refused (simulated)")

    monkeypatch.setattr(store, "_connect", refuse)
    assert store.wait_for_change(PROMPT) is True  # changes may have been missed
    assert store._listener is None
    assert store.wait_for_change(0.2) is False  # the server "down": a timeout, no error
    monkeypatch.setattr(store, "_connect", real)
    assert store.wait_for_change(PROMPT) is True  # listening again
    assert store._listener is not None
    with PostgresLeaseStore(store._settings.conninfo, schema=store.schema) as other:
        store.wait_for_change(0)
        other.add_event(drift())
        assert store.wait_for_change(PROMPT) is True


def test_the_async_store_retries_what_is_safe_to_retry(postgres_server, schema):
    """The async twin of the lost-connection tests: killed mid-transaction, lost COMMIT."""

    async def main():
        async with AsyncPostgresLeaseStore(postgres_server.url, schema=schema) as store:
            killer = await psycopg.AsyncConnection.connect(postgres_server.url, autocommit=True)
            real_execute = store._execute
            killed = []

            async def execute(conn, step):
                result = await real_execute(conn, step)
                if step.sql == store._sql.insert_lease and not killed:
                    killed.append(conn.info.backend_pid)
                    await killer.execute("SELECT pg_terminate_backend(%s, 10000)", (killed[0],))
                return result

            store._execute = execute
            await store.add_lease(first := lease(), drift())
            del store._execute
            assert killed
            assert await store.find_leases() == [first]

            # A COMMIT whose connection is lost: committed (looked up), then aborted (rerun).
            for commit in (True, False):
                real_connection = store._pool.connection
                used = []

                @contextlib.asynccontextmanager
                async def connection(
                    *args, _real=real_connection, _used=used, _commit=commit, **kw
                ):
                    async with _real(*args, **kw) as conn:
                        if _used:
                            yield conn
                        else:
                            _used.append(conn)
                            yield _AsyncDropAfterCommit(conn, commit=_commit)

                store._pool.connection = connection
                await store.add_lease(lease(), drift())
                del store._pool.connection
            assert len(await store.find_leases()) == 3
            assert len(await store.pending_events()) == 3

            # The listener's backend dies: the next wait reconnects and says so.
            await store.wait_for_change(0)
            pid = store._listener.info.backend_pid
            await killer.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            assert await store.wait_for_change(PROMPT) is True
            await killer.close()

    asyncio.run(main())


class _AsyncDropAfterCommit:
    def __init__(self, conn, *, commit: bool) -> None:
        self._conn = conn
        self._commit = commit

    def __getattr__(self, name):
        return getattr(self._conn, name)

    @contextlib.asynccontextmanager
    async def transaction(self):
        async with self._conn.transaction() as tx:
            yield tx
            if not self._commit:
                raise psycopg.Rollback
        await self._conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly (simulated)")


# -- wake-ups across store objects and processes ------------------------------------------


def test_a_write_through_another_store_wakes_a_waiter(postgres_server, store):
    with PostgresLeaseStore(postgres_server.url, schema=store.schema) as other:
        store.wait_for_change(0)
        result = []
        waiting = threading.Event()

        def waiter():
            waiting.set()
            result.append(store.wait_for_change(60))

        thread = threading.Thread(target=waiter)
        start = time.monotonic()
        thread.start()
        waiting.wait(PROMPT)
        other.add_lease(lease(expires_at=T0))
        thread.join(PROMPT)
        assert result == [True]
        assert time.monotonic() - start < PROMPT
        # Its own writes do not wake the other store twice: one write, one wake-up.
        other.wait_for_change(0)
        assert other.wait_for_change(0.2) is False


def test_writes_in_another_schema_do_not_wake(postgres_server, store):
    with PostgresLeaseStore(postgres_server.url, schema=postgres_server.new_schema()) as other:
        store.wait_for_change(0)
        other.add_event(drift())
        assert store.wait_for_change(0.3) is False


def test_a_bare_notify_wakes_every_store(store, raw):
    store.wait_for_change(0)
    raw.execute(f"NOTIFY {CHANNEL}")
    assert store.wait_for_change(PROMPT) is True


WRITER = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from databricks_access import AuditEvent, EventKind, PostgresLeaseStore

    with PostgresLeaseStore(sys.argv[1], schema=sys.argv[2]) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        store.add_event(AuditEvent(kind=EventKind.DRIFT, at=dt.datetime.now(dt.timezone.utc)))
    """
)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_write_in_another_process_wakes_a_waiter(postgres_server, schema, flavour):
    PostgresLeaseStore(postgres_server.url, schema=schema).close()
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, postgres_server.url, schema],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        if flavour == "sync":
            with PostgresLeaseStore(postgres_server.url, schema=schema) as store:
                store.wait_for_change(0)
                child.stdin.write("go\n")
                child.stdin.flush()
                assert store.wait_for_change(60) is True
                assert len(store.pending_events()) == 1
        else:

            async def main():
                async with AsyncPostgresLeaseStore(postgres_server.url, schema=schema) as store:
                    await store.wait_for_change(0)
                    child.stdin.write("go\n")
                    child.stdin.flush()
                    assert await store.wait_for_change(60) is True
                    assert len(await store.pending_events()) == 1

            asyncio.run(main())
    finally:
        _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err


def test_the_async_store_belongs_to_its_event_loop(postgres_server, schema):
    store = AsyncPostgresLeaseStore(postgres_server.url, schema=schema)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(store.add_lease(item := lease()))

        async def elsewhere():
            await store.get_lease(item.id)

        with pytest.raises(LeaseError, match="another event loop"):
            asyncio.run(elsewhere())
        assert first.run_until_complete(store.get_lease(item.id)) == item
    finally:
        first.run_until_complete(store.close())
        first.close()


# -- trackers on PostgreSQL ---------------------------------------------------------------


def test_an_async_tracker_runs_on_the_native_async_store(
    postgres_server, schema, fake, async_client_factory, clock
):
    user = fake.add_user("alice@example.com")
    group = fake.add_group("ops")

    async def main():
        async with (
            async_client_factory() as client,
            AsyncPostgresLeaseStore(postgres_server.url, schema=schema) as store,
        ):
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            assert tracker.store is store  # native: no worker threads
            granted = await tracker.grant(
                da.PrincipalRef("user", user), group, ttl=HOUR, requester="a", reason="INC-1"
            )
            assert user in fake.group_members(group)
            clock.advance(HOUR)
            report = await tracker.sweep()
            assert report.revoked == (granted.id,)
            assert (await store.get_lease(granted.id)).state is LeaseState.REVOKED
        assert user not in fake.group_members(group)

    asyncio.run(main())


def test_a_running_tracker_survives_a_server_restart(postgres_server, schema, fake, client, clock):
    """Replica A runs `run()`; replica B grants; the server restarts; A still revokes."""
    users = [fake.add_user(f"user{n}@example.com") for n in range(3)]
    group = fake.add_group("ops")
    stop = threading.Event()
    errors = []
    with (
        PostgresLeaseStore(postgres_server.url, schema=schema) as store_a,
        PostgresLeaseStore(postgres_server.url, schema=schema) as store_b,
    ):
        manager = da.MembershipManager(client)
        replica_a = da.LeaseTracker(manager, store=store_a, clock=clock, owner="a")
        replica_b = da.LeaseTracker(manager, store=store_b, clock=clock, owner="b")

        def run():
            try:
                replica_a.run(stop, idle=1.0)
            except BaseException as exc:  # the loop must not die
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        try:
            granted = [
                replica_b.grant(
                    da.PrincipalRef("user", u), group, ttl=HOUR, requester="b", reason="x"
                )
                for u in users
            ]
            postgres_server.restart()
            clock.advance(HOUR)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                store_b.add_event(drift())  # a write: NOTIFY wakes replica A
                states = {store_b.get_lease(item.id).state for item in granted}
                if states == {LeaseState.REVOKED}:
                    break
                time.sleep(0.2)
        finally:
            stop.set()
            thread.join(PROMPT * 2)
        assert errors == []
        assert {store_b.get_lease(item.id).state for item in granted} == {LeaseState.REVOKED}
        assert fake.group_members(group) == set()
        kinds = [e.event.kind.value for e in store_b.pending_events(limit=100)]
        assert kinds.count("granted") == kinds.count("expired") == kinds.count("revoked") == 3


# -- several tracker processes on one database ----------------------------------------------


def seed(postgres_server, leases: int, groups: int):
    """An emulator with `leases` memberships over `groups` groups, each under a due lease."""
    fake = FakeAccount(log_size=None)
    sp = fake.add_service_principal("connector")
    group_ids = [fake.add_group(f"team-{g}") for g in range(groups)]
    schema = postgres_server.new_schema("sweep")
    rows, pairs = [], []
    for i in range(leases):
        user = fake.add_user(f"user{i}@example.com")
        group = group_ids[i % groups]
        fake.add_member(group, user)
        pairs.append((user, group))
        rows.append(
            Lease(
                id=f"lease_{i:05d}",
                principal=da.PrincipalRef("user", user),
                group_id=group,
                state=LeaseState.ACTIVE,
                granted_at=START,
                expires_at=START + HOUR,
                requester="seed",
                reason="seed",
                updated_at=START,
            )
        )
    with PostgresLeaseStore(postgres_server.url, schema=schema) as store:
        with store._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                store._sql.insert_lease, [[item.id, *_lease_values(item)] for item in rows]
            )
    return fake, sp, schema, group_ids, pairs


def spawn(url, fake, sp, postgres_server, schema, now, owner, crash=None, batch=100):
    spec = {
        "url": url,
        "account_id": fake.account_id,
        "client_id": sp.client_id,
        "client_secret": sp.client_secret,
        "store": f"postgres:{postgres_server.url}",
        "schema": schema,
        "now": now.isoformat(),
        "owner": owner,
        "action": "sweep",
        "batch": batch,
    }
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc):
    _, err = proc.communicate(timeout=110)
    return proc.returncode, err


def removals(fake):
    """Per pair, the (start, end) of every PATCH that removed it."""
    seen = defaultdict(list)
    for record in fake.log:
        if record.method != "PATCH" or record.status >= 300:
            continue
        group = record.path.rstrip("/").rsplit("/", 1)[-1]
        for op in json.loads(record.body)["Operations"]:
            if op["op"].lower() == "remove":
                (user,) = MEMBER.findall(op["path"])
                seen[(user, group)].append((record.perf_started, record.perf_finished))
    return seen


def assert_never_concurrent(intervals):
    ordered = sorted(intervals)
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert end <= start, "two PATCHes for one pair were in flight at once"


def final_state(postgres_server, schema, count):
    with PostgresLeaseStore(postgres_server.url, schema=schema) as store:
        states = {item.state for item in store.find_leases()}
        kinds = [e.event.kind.value for e in store.pending_events(limit=3 * count)]
        with store._pool.connection() as conn:
            claims = conn.execute(q("SELECT count(*) FROM {s}.claims", schema)).fetchone()[0]
    return states, kinds, claims


@pytest.mark.slow
def test_four_replicas_sweep_5000_leases_removing_each_pair_once(postgres_server):
    count = 5000
    fake, sp, schema, groups, pairs = seed(postgres_server, count, 20)
    due = START + HOUR + dt.timedelta(seconds=1)
    with fake.serve() as url:
        procs = [
            spawn(url, fake, sp, postgres_server, schema, due, f"replica-{n}") for n in range(4)
        ]
        shares = []
        for proc in procs:
            code, err = finish(proc)
            assert code == 0, err
            shares += [int(n) for n in re.findall(r"^ended (\d+)$", err, re.MULTILINE)]
    assert sum(shares) == count
    assert sum(1 for share in shares if share > 0) >= 2  # the replicas shared the work
    seen = removals(fake)
    assert set(seen) == set(pairs)
    assert all(len(v) == 1 for v in seen.values())
    for group in groups:
        assert fake.group_members(group) == set()
    states, kinds, claims = final_state(postgres_server, schema, count)
    assert states == {LeaseState.REVOKED}
    assert kinds.count("expired") == count
    assert kinds.count("revoked") == count
    assert claims == 0  # every claim released


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_revoking_write:2", "after_revoke_patch:3"])
def test_a_killed_replica_is_finished_by_another_once_its_claims_expire(postgres_server, point):
    count = 1000
    fake, sp, schema, groups, pairs = seed(postgres_server, count, 20)
    due = START + HOUR + dt.timedelta(seconds=1)
    with fake.serve() as url:
        victim = spawn(url, fake, sp, postgres_server, schema, due, "victim", crash=point)
        survivors = [
            spawn(url, fake, sp, postgres_server, schema, due, f"survivor-{n}") for n in range(2)
        ]
        code, err = finish(victim)
        assert code == CRASH_EXIT_CODE, err
        for proc in survivors:
            code, err = finish(proc)
            assert code == 0, err
        # The victim's claims hold until they expire by the injected clock: a replica
        # whose clock is past the claim TTL finishes its work.
        later = due + CLAIM_TTL + dt.timedelta(seconds=1)
        code, err = finish(spawn(url, fake, sp, postgres_server, schema, later, "restart"))
        assert code == 0, err
    seen = removals(fake)
    assert set(seen) == set(pairs)
    assert all(1 <= len(v) <= 2 for v in seen.values())
    if point.startswith("after_revoke_patch"):
        assert any(len(v) == 2 for v in seen.values())  # the crashed batch was sent again
    else:
        assert all(len(v) == 1 for v in seen.values())
    for intervals in seen.values():
        assert_never_concurrent(intervals)
    for group in groups:
        assert fake.group_members(group) == set()
    states, kinds, claims = final_state(postgres_server, schema, count)
    assert states == {LeaseState.REVOKED}
    assert kinds.count("expired") == count
    assert kinds.count("revoked") == count
    assert claims == 0


def test_store_objects_satisfy_both_protocols(store):
    assert isinstance(store, LeaseStore)
    assert repr(store).startswith("PostgresLeaseStore('postgresql://")


# -- docs/replicas.md -----------------------------------------------------------------------

DOC = ROOT / "docs" / "replicas.md"


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_replicas_page_examples_compile():
    examples = doc_blocks("py")
    assert len(examples) == 2
    for block in examples:
        compile(block, "docs/replicas.md", "exec")


def test_the_replicas_page_queries_run(store, raw):
    store.add_lease(lease(expires_at=T0))
    store.claim_pairs([Pair("u", "g")], owner="replica-1", now=T0, until=T0 + MIN)
    store.add_event(drift())
    queries = doc_blocks("sql")[-1].replace("databricks_access", store.schema)
    answers = []
    for statement in filter(None, (part.strip() for part in queries.split(";"))):
        cursor = raw.execute(statement)
        answers.append(cursor.fetchall() if cursor.description else None)
    assert answers[1] == [("active", 1)]
    assert answers[2][0][:2] == ("replica-1", 1)
    assert answers[3] == [(1,)]
