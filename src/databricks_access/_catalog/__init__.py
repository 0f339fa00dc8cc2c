"""What a group unlocks: Unity Catalog privileges behind every group, read through workspaces.

- `WorkspaceClient` / `AsyncWorkspaceClient`: one workspace's Unity Catalog read API, on
  the account's service principal (OAuth M2M at the workspace's own token endpoint).
- `CatalogReader` / `AsyncCatalogReader`: every metastore of the account read once, and
  the answers `unlocks(group)` and `explain_access(principal)`.
- `unlocks`, `explain_access` (and `aunlocks`, `aexplain_access`): one-call forms.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from databricks_access._catalog._snapshot import (
        CatalogGrant,
        CatalogSnapshot,
        Metastore,
        Securable,
    )
    from databricks_access._catalog._workspace import AsyncWorkspaceClient, WorkspaceClient

# Public name -> the module defining it. Loaded on first use: importing one module of this
# package (the request summary's, say) does not load the workspace clients and readers.
_EXPORTS: dict[str, str] = {
    "aexplain_access": "_entry",
    "aunlocks": "_entry",
    "explain_access": "_entry",
    "unlocks": "_entry",
    "WorkspaceNotAssignedError": "_errors",
    "WorkspaceHosts": "_hosts",
    "CatalogInfo": "_models",
    "MetastoreAssignment": "_models",
    "MetastoreSummary": "_models",
    "PrivilegeAssignment": "_models",
    "SchemaInfo": "_models",
    "SecurableType": "_models",
    "TableInfo": "_models",
    "AsyncCatalogReader": "_reader",
    "CatalogOptions": "_reader",
    "CatalogReader": "_reader",
    "CatalogView": "_reader",
    "AccessExplanation": "_reports",
    "GrantedPrivilege": "_reports",
    "UnlocksReport": "_reports",
    "UnmatchedPrincipal": "_reports",
    "CatalogGrant": "_snapshot",
    "CatalogSnapshot": "_snapshot",
    "Metastore": "_snapshot",
    "Securable": "_snapshot",
    "AsyncWorkspaceClient": "_workspace",
    "WorkspaceClient": "_workspace",
}

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


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    if getattr(value, "__module__", "").startswith(f"{__name__}."):
        # Shown where users import them from: `databricks_access.CatalogReader`.
        with contextlib.suppress(AttributeError, TypeError):
            value.__module__ = "databricks_access"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
