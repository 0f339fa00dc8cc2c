"""Files that hold leases, audit events or secrets stay private to their owner.

The class: every file the library creates (the SQLite store and its `-wal`/`-shm`
files, the JSON-lines audit file) is created 0600 under a permissive umask; every such
file that exists already and that the group or others may write is refused before
anything is read or written; a secret file readable by others is reported in the log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import stat

import pytest

import databricks_access as da

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def loose_umask():
    previous = os.umask(0o000)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_store_and_its_wal_files_are_created_private(
    fake, client, clock, tmp_path, loose_umask
):
    path = tmp_path / "leases.db"
    store = da.SqliteLeaseStore(path)
    audit = tmp_path / "audit.jsonl"
    tracker = da.LeaseTracker(
        da.MembershipManager(client), store=store, clock=clock, events=da.JsonLinesSink(audit)
    )
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    tracker.grant(alice, fake.add_group("ops"), ttl=HOUR, requester="a", reason="r")
    tracker.deliver_events()
    created = [path, tmp_path / "leases.db-wal", tmp_path / "leases.db-shm", audit]
    assert all(p.exists() for p in created), [p.name for p in created if not p.exists()]
    assert {p.name: mode(p) for p in created} == {p.name: 0o600 for p in created}
    assert json.loads(audit.read_text().splitlines()[0])["kind"] == "granted"
    store.close()


def test_the_audit_file_is_created_private_async(
    fake, async_client_factory, clock, tmp_path, loose_umask
):
    audit = tmp_path / "audit.jsonl"
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    ops = fake.add_group("ops")

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client),
                store=da.MemoryLeaseStore(),
                clock=clock,
                events=da.JsonLinesSink(audit),
            )
            await tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
            await tracker.deliver_events()

    asyncio.run(main())
    assert mode(audit) == 0o600


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
@pytest.mark.parametrize("loose", [0o666, 0o664, 0o646])
def test_a_planted_shared_store_is_refused(tmp_path, suffix, loose):
    path = tmp_path / "leases.db"
    da.SqliteLeaseStore(path).close()
    target = tmp_path / f"leases.db{suffix}"
    target.touch()
    target.chmod(loose)
    before = path.read_bytes()
    with pytest.raises(da.ConfigError) as info:
        da.SqliteLeaseStore(path)
    assert info.value.fields == ("path",)
    assert "chmod 600" in str(info.value)
    assert path.read_bytes() == before
    with pytest.raises(da.ConfigError):
        da.SqliteLeaseStore(path, read_only=True)


def test_a_planted_shared_audit_file_is_refused(tmp_path):
    audit = tmp_path / "audit.jsonl"
    audit.write_text("")
    audit.chmod(0o666)
    with pytest.raises(da.ConfigError) as info:
        da.JsonLinesSink(audit)
    assert info.value.fields == ("path",)
    assert audit.read_text() == ""


def test_a_secret_file_readable_by_others_is_reported_once(tmp_path, caplog):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"client_id": "id", "client_secret": "s3cr3t-value"}))
    path.chmod(0o644)
    store = da.FileSecretStore(path)
    with caplog.at_level(logging.WARNING, logger="databricks_access"):
        store.get_credentials()
        store.get_credentials(refresh=True)
    warnings = [r for r in caplog.records if "readable by other users" in r.getMessage()]
    assert len(warnings) == 1
    assert "s3cr3t-value" not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="databricks_access"):
        da.FileSecretStore(path).get_credentials()
    assert "readable by other users" not in caplog.text
