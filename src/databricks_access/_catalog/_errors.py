"""The one error of its own the catalog side raises: a workspace that will not have us."""

from __future__ import annotations

from databricks_access._errors import ApiError, AuthenticationError, PermissionDeniedError

__all__ = ["WorkspaceNotAssignedError", "not_assigned"]

_TOKEN_PATH = "/oidc/v1/token"  # noqa: S105 - a path, not a credential
_ASSIGNMENT_PATH = "/api/2.1/unity-catalog/current-metastore-assignment"


class WorkspaceNotAssignedError(PermissionDeniedError):
    """HTTP 403 (or a refused token) from a workspace: the service principal is not assigned.

    The account's service principal reaches a workspace's API only when it is assigned
    to that workspace (as `USER` or `ADMIN`). Fix it in the account console (Workspaces →
    the workspace → Permissions → Add), or with the account client::

        client.workspace_assignments.set(workspace_id, service_principal, ["USER"])

    Attributes:
        workspace_id: The workspace, when known.
        host: The workspace host.
    """

    workspace_id: int | None = None
    host: str = ""

    @classmethod
    def from_error(
        cls, error: ApiError, *, host: str, workspace_id: int | None
    ) -> WorkspaceNotAssignedError:
        """The error for `error`, naming the workspace and how to fix it."""
        which = f"workspace {workspace_id} ({host})" if workspace_id is not None else host
        assign = (
            f"client.workspace_assignments.set({workspace_id}, <service principal>, ['USER'])"
            if workspace_id is not None
            else "client.workspace_assignments.set(<workspace id>, <service principal>, ['USER'])"
        )
        detail = (
            f"the service principal is not assigned to {which}: assign it in the account "
            f"console (Workspaces, then Permissions) or with {assign}"
        )
        if error.detail:
            detail += f"; the workspace said: {error.detail}"
        made = cls(
            403 if error.status_code in {401, 403} else error.status_code,
            error.error_code,
            detail,
            method=error.method,
            path=error.path,
        )
        made.workspace_id = workspace_id
        made.host = host
        return made


def not_assigned(error: BaseException) -> bool:
    """Whether an error says the principal cannot use the workspace at all.

    A 400, 401 or 403 from the workspace's token endpoint, or a 401 or 403 from the
    metastore assignment (the first request every walk sends). A 403 on one securable's
    grants is a missing privilege there, not a missing assignment: not matched.
    """
    if not isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return False
    if isinstance(error, WorkspaceNotAssignedError):
        return True
    path = error.path or ""
    if path.endswith(_TOKEN_PATH):
        # A token endpoint that refuses the principal outright (400 `invalid_request`
        # has been seen in place of a token that later meets 403s).
        return error.status_code in {400, 401, 403}
    return error.status_code in {401, 403} and path.endswith(_ASSIGNMENT_PATH)
