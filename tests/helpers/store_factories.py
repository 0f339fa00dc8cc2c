"""Every `LeaseStore` implementation, by name, for suites that run against all of them.

`tests/test_store_contract.py` runs once per entry. To add an implementation, add one
factory here: it receives a fresh temporary directory and the test's `request`, and
returns an open store. A factory that needs a server takes it from a fixture through
`request.getfixturevalue(...)` (the fixture skips when the server is not available).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

from databricks_access import LeaseStore, MemoryLeaseStore, SqliteLeaseStore
from helpers.postgres_server import BlockingAsyncStore


def memory_store(tmp: pathlib.Path, request: pytest.FixtureRequest) -> LeaseStore:
    return MemoryLeaseStore()


def sqlite_store(tmp: pathlib.Path, request: pytest.FixtureRequest) -> LeaseStore:
    return SqliteLeaseStore(tmp / "leases.db")


def postgres_store(tmp: pathlib.Path, request: pytest.FixtureRequest) -> LeaseStore:
    """A `PostgresLeaseStore` in a fresh schema of the session's server."""
    server = request.getfixturevalue("postgres_server")
    from databricks_access import PostgresLeaseStore  # noqa: PLC0415

    return PostgresLeaseStore(server.url, schema=server.new_schema())


def postgres_async_store(tmp: pathlib.Path, request: pytest.FixtureRequest) -> LeaseStore:
    """An `AsyncPostgresLeaseStore`, run natively on an event loop, behind sync calls."""
    server = request.getfixturevalue("postgres_server")
    from databricks_access import AsyncPostgresLeaseStore  # noqa: PLC0415

    store = BlockingAsyncStore(AsyncPostgresLeaseStore(server.url, schema=server.new_schema()))
    request.addfinalizer(store.shutdown)
    return store


STORE_FACTORIES: dict[str, Callable[[pathlib.Path, pytest.FixtureRequest], LeaseStore]] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
    "postgres": postgres_store,
    "postgres-async": postgres_async_store,
}
