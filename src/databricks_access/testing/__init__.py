"""An in-process Databricks account emulator, for testing code that manages account access.

`FakeAccount` speaks the account API (OAuth M2M, SCIM Users / Groups /
ServicePrincipals with their roles and entitlements, service principal OAuth secrets,
workspaces, permission assignments, rule sets, direct group members) from memory, and
answers as every workspace host too (workspace OAuth and the Unity Catalog read API:
metastores, catalogs, schemas, tables, volumes, grants; see `FakeAccount.workspace_host`
and the Unity Catalog builders such as `FakeAccount.seed_unity_catalog`).
Plug it into httpx with `FakeAccount.transport()` or serve it on 127.0.0.1 with
`FakeAccount.serve()`, seed it with the builders, switch its uncertain behaviours with
`Behaviour`, inject faults and rate limits with `FaultPlan` and `ServerRateLimits`, and
inspect what your code sent through `FakeAccount.log` and `FakeAccount.counts`.

Example:
    >>> from databricks_access.testing import FakeAccount
    >>> fake = FakeAccount()
    >>> creds = fake.add_service_principal("connector")
    >>> "client_secret=***" in repr(creds)
    True
    >>> group = fake.add_group("data-readers", members=[creds.id])
    >>> transport = fake.transport()  # for httpx.Client(transport=...) or AsyncClient

It depends on nothing but httpx and attrs, and imports nothing else of the library.
See docs/testing.md ("Testing your connector with the emulator").
"""

from __future__ import annotations

from databricks_access.testing._account import FakeAccount, Interceptor
from databricks_access.testing._behaviour import Behaviour, EmptyPage, MemberAnswer, StaleReads
from databricks_access.testing._faults import Fault, FaultPlan, ServerRateLimits
from databricks_access.testing._http import (
    ConnectionFault,
    DropConnection,
    FakeRequest,
    FakeResponse,
    HoldConnection,
    PassThrough,
)
from databricks_access.testing._log import RequestRecord
from databricks_access.testing._oauth import ServicePrincipalCredentials
from databricks_access.testing._routing import Endpoint, OperationClass, RouteMatch
from databricks_access.testing._seed import SeedSummary
from databricks_access.testing._server import ServedAccount
from databricks_access.testing._transport import FakeTransport
from databricks_access.testing._unity_seed import CatalogSeedSummary
from databricks_access.testing._unity_state import Metastore, SecurableType

__all__ = [
    "Behaviour",
    "CatalogSeedSummary",
    "ConnectionFault",
    "DropConnection",
    "EmptyPage",
    "Endpoint",
    "FakeAccount",
    "FakeRequest",
    "FakeResponse",
    "FakeTransport",
    "Fault",
    "FaultPlan",
    "HoldConnection",
    "Interceptor",
    "MemberAnswer",
    "Metastore",
    "OperationClass",
    "PassThrough",
    "RequestRecord",
    "RouteMatch",
    "SecurableType",
    "SeedSummary",
    "ServedAccount",
    "ServerRateLimits",
    "ServicePrincipalCredentials",
    "StaleReads",
]

# Show the public names where users import them from (as httpx does).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and _value.__module__.startswith(f"{__name__}._"):
        _value.__module__ = __name__
del _name, _value
