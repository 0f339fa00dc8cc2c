"""A throwaway PostgreSQL server for the tests: one cluster per test session.

`initdb` and `pg_ctl` come from `/usr/lib/postgresql/<version>/bin` (or the `PATH`),
run as the `postgres` user when the tests run as root (they refuse to run as root). The
cluster lives in a temporary directory, listens on a free port on 127.0.0.1 with trust
authentication, and is stopped (`-m immediate`) and deleted at the end of the session.

Without PostgreSQL (or psycopg) the tests that need it are skipped with the reason, but
when the environment variable `CI` is set they fail instead: CI installs PostgreSQL, so a
missing server there is a broken build, not a skip.

Use the `postgres_server` fixture (import `postgres_server_fixture` into a test module to
make it visible there); `server.new_schema()` names a fresh schema for one test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from typing_extensions import Self

T = TypeVar("T")

_PG_USER = "postgres"
_DATABASE = "databricks_access_test"
_names = itertools.count()


def _bin_dir() -> pathlib.Path | None:
    """The newest installed PostgreSQL's bin directory, or the one `initdb` on PATH is in.

    `DATABRICKS_ACCESS_TEST_POSTGRES_BIN` names another directory (the tests of this
    module point it at an empty one to see the skip and the CI failure).
    """
    chosen = os.environ.get("DATABRICKS_ACCESS_TEST_POSTGRES_BIN")
    if chosen is not None:
        path = pathlib.Path(chosen)
        return path if (path / "initdb").exists() and (path / "pg_ctl").exists() else None
    found = sorted(
        pathlib.Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for candidate in reversed(found):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb is not None:
        path = pathlib.Path(initdb).resolve().parent
        if (path / "pg_ctl").exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable(reason: str) -> None:
    """Skip the test for want of PostgreSQL; on CI (`CI` set), fail it instead."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required on CI: {reason}")
    pytest.skip(reason)


class PostgresServer:
    """One running cluster: its URL, and the commands to restart and stop it."""

    def __init__(self, bin_dir: pathlib.Path, root: pathlib.Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.port = port
        self.url = f"postgresql://{_PG_USER}@127.0.0.1:{port}/{_DATABASE}"
        self.admin_url = f"postgresql://{_PG_USER}@127.0.0.1:{port}/postgres"
        self.running = False

    def _as_postgres(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", _PG_USER, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr.strip()}")

    def init(self) -> None:
        self._check(
            self._as_postgres(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                _PG_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ),
            "initdb",
        )

    def start(self) -> None:
        options = " ".join(
            [
                f"-k {self.sockets}",
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                "-c max_connections=300",
                # A throwaway cluster: durability is not what these tests measure.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        log = self.root / "server.log"
        self._check(
            self._as_postgres(
                "pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start"
            ),
            f"pg_ctl start (log: {log})",
        )
        self.running = True

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is dropped; the data stays."""
        self._check(
            self._as_postgres(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-m",
                "fast",
                "-w",
                "restart",
            ),
            "pg_ctl restart",
        )

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def psql(self, sql: str, *, url: str | None = None) -> str:
        """Run SQL through psql; its output (tuples only, unaligned)."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), url or self.url, "-X", "-q", "-t", "-A", "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self._check(result, f"psql {sql!r}")
        return result.stdout.strip()

    def new_schema(self, prefix: str = "t") -> str:
        """A schema name no test used before (the store creates it)."""
        return f"{prefix}_{os.getpid()}_{next(_names)}"


def _start() -> PostgresServer:
    try:
        import psycopg  # noqa: F401, PLC0415 - only to know whether the extra is installed
        import psycopg_pool  # noqa: F401, PLC0415
    except ImportError as exc:
        unavailable(f"psycopg is not installed (pip install 'databricks-access[postgres]'): {exc}")
    bin_dir = _bin_dir()
    if bin_dir is None:
        unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found in "
            "/usr/lib/postgresql/*/bin or on PATH (apt-get install postgresql)"
        )
        raise AssertionError  # unreachable: skip and fail raise
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(_PG_USER)
        except KeyError:
            unavailable(f"running as root, and there is no {_PG_USER!r} user to run initdb as")
            raise AssertionError from None
        if shutil.which("runuser") is None:
            unavailable("running as root, and runuser is not available to run initdb as postgres")
    root = pathlib.Path(tempfile.mkdtemp(prefix="da-postgres-"))
    root.chmod(0o755)
    (root / "sockets").mkdir()
    if os.geteuid() == 0:
        for path in (root, root / "sockets"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    last: Exception | None = None
    for _ in range(3):
        server = PostgresServer(bin_dir, root, _free_port())
        try:
            if not server.data.exists():
                server.init()
            server.start()
            server.psql(f"CREATE DATABASE {_DATABASE}", url=server.admin_url)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:  # a port taken meanwhile
            last = exc
            server.stop()
            time.sleep(0.2)
            continue
        return server
    shutil.rmtree(root, ignore_errors=True)
    unavailable(f"could not start a PostgreSQL server: {last}")
    raise AssertionError  # unreachable


_SERVER: list[PostgresServer] = []


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, removed at the end)."""
    # Several test modules import this fixture; they share one server.
    if not _SERVER:
        _SERVER.append(_start())
    server = _SERVER[0]
    try:
        yield server
    finally:
        if server.running:
            server.stop()
            with contextlib.suppress(OSError):
                shutil.rmtree(server.root)


# -- the async store, behind sync calls -----------------------------------------------------


class BlockingAsyncStore:
    """A sync `LeaseStore` over an `AsyncLeaseStore`, for running the sync contract suite.

    Every call runs as a coroutine on one event loop in a thread of its own, so the async
    store runs natively (its own pool, its own listener), and calls from several test
    threads run concurrently on that loop. `shutdown()` closes the store and the loop.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"BlockingAsyncStore({self.store!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def shutdown(self) -> None:
        if self._loop.is_closed():
            return
        self.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def add_lease(self, lease, event=None):
        return self._call(self.store.add_lease(lease, event))

    def update_lease(self, lease, *, expect, event=None):
        return self._call(self.store.update_lease(lease, expect=expect, event=event))

    def update_leases(self, updates):
        return self._call(self.store.update_leases(updates))

    def get_lease(self, lease_id):
        return self._call(self.store.get_lease(lease_id))

    def leases_on_pairs(self, pairs, *, states=None):
        return self._call(self.store.leases_on_pairs(pairs, states=states))

    def find_leases(self, *, principal_id=None, group_id=None, states=None, limit=None):
        return self._call(
            self.store.find_leases(
                principal_id=principal_id, group_id=group_id, states=states, limit=limit
            )
        )

    def due_leases(self, now, *, stuck_before, limit=1000):
        return self._call(self.store.due_leases(now, stuck_before=stuck_before, limit=limit))

    def next_due(self, *, stuck_after):
        return self._call(self.store.next_due(stuck_after=stuck_after))

    def claim_pairs(self, pairs, *, owner, now, until):
        return self._call(self.store.claim_pairs(pairs, owner=owner, now=now, until=until))

    def renew_pairs(self, pairs, *, owner, until):
        return self._call(self.store.renew_pairs(pairs, owner=owner, until=until))

    def release_pairs(self, pairs, *, owner):
        return self._call(self.store.release_pairs(pairs, owner=owner))

    def add_event(self, event):
        return self._call(self.store.add_event(event))

    def pending_events(self, *, limit=100):
        return self._call(self.store.pending_events(limit=limit))

    def mark_delivered(self, seqs):
        return self._call(self.store.mark_delivered(seqs))

    def add_request(self, request, event=None):
        return self._call(self.store.add_request(request, event))

    def update_request(self, request, *, expect, event=None):
        return self._call(self.store.update_request(request, expect=expect, event=event))

    def get_request(self, request_id):
        return self._call(self.store.get_request(request_id))

    def find_requests(self, *, states=None, principal_id=None, group_id=None, limit=None):
        return self._call(
            self.store.find_requests(
                states=states, principal_id=principal_id, group_id=group_id, limit=limit
            )
        )

    def wait_for_change(self, timeout):
        return self._call(self.store.wait_for_change(timeout))

    def close(self):
        if not self._loop.is_closed():
            self._call(self.store.close())
