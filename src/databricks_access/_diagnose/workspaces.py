"""The workspace checks of `diagnose(client, workspaces=...)`: may the principal use each one?

One check per workspace, named `workspace:<id>`, reading the workspace's metastore
assignment with the account's credentials (a token from the workspace's own endpoint,
then one GET): `ok` when it answers; `FAIL` with the fix when the service principal is
not assigned to the workspace (403), or the workspace refuses the credentials; `skip`
when the host cannot be derived (configure it) or no metastore is assigned (404).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from databricks_access._account.models import Workspace
from databricks_access._catalog.errors import WorkspaceNotAssignedError
from databricks_access._catalog.hosts import HostMap, WorkspaceHosts
from databricks_access._catalog.workspace import AsyncWorkspaceClient, WorkspaceClient
from databricks_access._diagnose.diagnose import Check
from databricks_access._errors import DatabricksAccessError, NotFoundError

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = ["WorkspacesArg", "aworkspace_checks", "workspace_checks"]

WorkspacesArg = bool | HostMap | Iterable[int] | None
"""`True`: every workspace of the account; a mapping: those workspaces, at those hosts;
an iterable of ids: those workspaces (hosts derived); None or False: no workspace check."""

_MAX_WORKSPACES = 50


def _selection(listed: list[Workspace], which: WorkspacesArg) -> list[Workspace]:
    if which is True:
        return listed[:_MAX_WORKSPACES]
    ids = [int(k) for k in which] if isinstance(which, (Mapping, Iterable)) else []
    known = {w.workspace_id: w for w in listed}
    return [known.get(i, Workspace(workspace_id=i)) for i in ids][:_MAX_WORKSPACES]


def _verdict(workspace: Workspace, host: str | None, outcome: object) -> Check:
    name = f"workspace:{workspace.workspace_id}"
    wid = workspace.workspace_id
    label = workspace.workspace_name or str(wid)
    if host is None:
        return Check(
            name,
            ok=None,
            verdict=f"the host of workspace {label} cannot be derived from the workspace list",
            fix=f"Configure it: workspace_hosts={{{wid}: 'https://<host>'}}",
        )
    where = f"workspace {label} ({host})"
    if isinstance(outcome, WorkspaceNotAssignedError):
        return Check(
            name,
            ok=False,
            verdict=f"the service principal may not use {where}: it is not assigned to it",
            fix=(
                f"In the account console open Workspaces > {label} > Permissions and add the "
                "service principal as User, or run client.workspace_assignments.set("
                f"{wid}, <service principal>, ['USER'])."
            ),
        )
    if isinstance(outcome, NotFoundError):
        return Check(name, ok=None, verdict=f"{where} has no Unity Catalog metastore assigned")
    if isinstance(outcome, DatabricksAccessError):
        return Check(name, ok=False, verdict=f"{where} could not be read: {outcome}")
    return Check(name, ok=True, verdict=f"{where} answers; its metastore can be read")


def _hosts_of(client: AccountClient | AsyncAccountClient, which: WorkspacesArg) -> WorkspaceHosts:
    configured = which if isinstance(which, Mapping) else None
    return WorkspaceHosts(client.config, configured)


def workspace_checks(client: AccountClient, which: WorkspacesArg) -> tuple[Check, ...]:
    """One `workspace:<id>` check per selected workspace (none when `which` is falsy)."""
    if not which:
        return ()
    hosts = _hosts_of(client, which)
    checks = []
    for workspace in _selection(list(client.workspaces.list()), which):
        host = hosts.host_for(workspace)
        outcome: object = None
        if host is not None:
            ws = WorkspaceClient.for_workspace(client, workspace, host=host)
            try:
                outcome = ws.metastore_assignment()
            except DatabricksAccessError as exc:
                outcome = exc
        checks.append(_verdict(workspace, host, outcome))
    return tuple(checks)


async def aworkspace_checks(client: AsyncAccountClient, which: WorkspacesArg) -> tuple[Check, ...]:
    """The async twin of `workspace_checks`: every workspace at once."""
    if not which:
        return ()
    hosts = _hosts_of(client, which)
    selected = _selection(await client.workspaces.list().collect(), which)

    async def one(workspace: Workspace) -> Check:
        host = hosts.host_for(workspace)
        outcome: object = None
        if host is not None:
            ws = await AsyncWorkspaceClient.for_workspace(client, workspace, host=host)
            try:
                outcome = await ws.metastore_assignment()
            except DatabricksAccessError as exc:
                outcome = exc
            finally:
                await ws.close()
        return _verdict(workspace, host, outcome)

    return tuple(await asyncio.gather(*(one(w) for w in selected)))
