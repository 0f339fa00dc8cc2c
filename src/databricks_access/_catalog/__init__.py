"""What a group unlocks: Unity Catalog privileges behind every group, read through workspaces.

- `WorkspaceClient` / `AsyncWorkspaceClient`: one workspace's Unity Catalog read API, on
  the account's service principal (OAuth M2M at the workspace's own token endpoint).
- `CatalogReader` / `AsyncCatalogReader`: every metastore of the account read once, and
  the answers `unlocks(group)` and `explain_access(principal)`.
- `unlocks`, `explain_access` (and `aunlocks`, `aexplain_access`): one-call forms.
"""

from __future__ import annotations

from databricks_access._catalog._entry import aexplain_access, aunlocks, explain_access, unlocks
from databricks_access._catalog._errors import WorkspaceNotAssignedError
from databricks_access._catalog._hosts import WorkspaceHosts
from databricks_access._catalog._models import (
    CatalogInfo,
    MetastoreAssignment,
    MetastoreSummary,
    PrivilegeAssignment,
    SchemaInfo,
    SecurableType,
    TableInfo,
)
from databricks_access._catalog._reader import (
    AsyncCatalogReader,
    CatalogOptions,
    CatalogReader,
    CatalogView,
)
from databricks_access._catalog._reports import (
    AccessExplanation,
    GrantedPrivilege,
    UnlocksReport,
    UnmatchedPrincipal,
)
from databricks_access._catalog._snapshot import CatalogGrant, CatalogSnapshot, Metastore, Securable
from databricks_access._catalog._workspace import AsyncWorkspaceClient, WorkspaceClient

__all__ = [
    "AccessExplanation",
    "AsyncCatalogReader",
    "AsyncWorkspaceClient",
    "CatalogGrant",
    "CatalogInfo",
    "CatalogOptions",
    "CatalogReader",
    "CatalogSnapshot",
    "CatalogView",
    "GrantedPrivilege",
    "Metastore",
    "MetastoreAssignment",
    "MetastoreSummary",
    "PrivilegeAssignment",
    "SchemaInfo",
    "Securable",
    "SecurableType",
    "TableInfo",
    "UnlocksReport",
    "UnmatchedPrincipal",
    "WorkspaceClient",
    "WorkspaceHosts",
    "WorkspaceNotAssignedError",
    "aexplain_access",
    "aunlocks",
    "explain_access",
    "unlocks",
]

# Shown where users import them from: `databricks_access.CatalogReader`.
for _name in __all__:
    _value = globals()[_name]
    if getattr(_value, "__module__", "").startswith(f"{__name__}._"):
        _value.__module__ = "databricks_access"
del _name, _value
