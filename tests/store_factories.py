"""Every `LeaseStore` implementation, by name, for suites that run against all of them.

`tests/test_store_contract.py` runs once per entry. To add an implementation (say
PostgreSQL), add one factory here: it receives a fresh temporary directory and returns
an open store; raise `pytest.skip(...)` inside it when its server is not available.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from databricks_access._memory_store import MemoryLeaseStore
from databricks_access._sqlite_store import SqliteLeaseStore
from databricks_access._store import LeaseStore


def memory_store(tmp: pathlib.Path) -> LeaseStore:
    return MemoryLeaseStore()


def sqlite_store(tmp: pathlib.Path) -> LeaseStore:
    return SqliteLeaseStore(tmp / "leases.db")


STORE_FACTORIES: dict[str, Callable[[pathlib.Path], LeaseStore]] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
}
