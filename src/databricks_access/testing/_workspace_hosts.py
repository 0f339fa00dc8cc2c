"""Workspace hosts: which workspace a request is for, and the workspace's OAuth endpoints.

One emulator answers as the accounts host and as every workspace host. A request is for
a workspace when:

- its `Host` names the workspace (`<deployment name>.<DNS zone of the accounts host>`,
  e.g. `dbc-1a2b3c4d.cloud.databricks.com`, or `<deployment name>.localhost`): that is
  what the in-process httpx transport sees, with realistic workspace URLs; or
- its path starts with `/ws/<workspace id>`: on loopback, where every host is
  `127.0.0.1:<port>`, the workspace's host is `http://127.0.0.1:<port>/ws/<id>`. Clients
  (the official SDK included) append API paths to the host, path and all.

Workspace tokens are issued for one workspace: the accounts host and other workspaces
refuse them, and workspaces refuse account tokens.
"""

from __future__ import annotations

from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    json_response,
    oauth_error,
    rest_error,
)
from databricks_access.testing._oauth import Caller, TokenRegistry, authenticate, token_endpoint
from databricks_access.testing._routing import Endpoint, RouteMatch, split_workspace_prefix
from databricks_access.testing._state import AccountState, Workspace

__all__ = [
    "authorize_workspace",
    "handle_workspace_oauth",
    "locate_workspace",
    "workspace_of",
    "workspace_url",
]

_ACCOUNT_LABELS = ("accounts.", "accounts-dod.")


def _netloc(url: str) -> str:
    return url.partition("://")[2].split("/", 1)[0].lower()


def workspace_url(state: AccountState, workspace: Workspace) -> str:
    """The URL of a workspace's host, as the emulator answers it now.

    `https://<deployment name>.<zone>` while the emulator answers as a real accounts
    host (in-process); `<accounts host>/ws/<id>` otherwise (served on loopback, or any
    custom host).
    """
    if _netloc(state.host).startswith(_ACCOUNT_LABELS):
        return f"https://{workspace.deployment_name.lower()}.{state.dns_zone}"
    return f"{state.host}/ws/{workspace.workspace_id}"


def locate_workspace(state: AccountState, host: str | None, path: str) -> tuple[int, str] | None:
    """The workspace a request is for and its path within that host, or None (accounts)."""
    prefixed = split_workspace_prefix(path)
    if prefixed is not None:
        return prefixed
    if not host:
        return None
    name = host.strip().lower().rsplit(":", 1)[0] if "]" not in host else ""
    for zone in (state.dns_zone, "localhost"):
        if name.endswith(f".{zone}"):
            workspace_id = state.workspace_by_deployment.get(name[: -len(zone) - 1])
            if workspace_id is not None:
                return workspace_id, path
    return None


def _metadata(state: AccountState, workspace: Workspace) -> FakeResponse:
    url = workspace_url(state, workspace)
    return json_response(
        200,
        {
            "oidc_endpoint": f"{url}/oidc",
            "account_id": state.account_id,
            "workspace_id": str(workspace.workspace_id),
            "cloud": state.cloud,
            "host": url,
        },
    )


def _discovery(state: AccountState, workspace: Workspace) -> FakeResponse:
    root = f"{workspace_url(state, workspace)}/oidc"
    return json_response(
        200,
        {
            "issuer": root,
            "authorization_endpoint": f"{root}/v1/authorize",
            "token_endpoint": f"{root}/v1/token",
            "jwks_uri": f"{root}/jwks.json",
            "response_types_supported": ["code"],
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "scopes_supported": ["all-apis", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        },
    )


def _assigned(state: AccountState, workspace_id: int, client_id: str | None) -> bool:
    sp = state.service_principal_by_client_id(client_id) if client_id else None
    return sp is not None and state.assigned_to(workspace_id, sp.id)


def handle_workspace_oauth(
    state: AccountState, tokens: TokenRegistry, request: FakeRequest, route: RouteMatch
) -> FakeResponse | None:
    """Answer a workspace's metadata, discovery or token request; None for other routes.

    Raises:
        Rejection: 404 for a workspace that does not exist; OAuth errors on the token
            endpoint.
    """
    workspace = workspace_of(state, route)
    if route.endpoint is Endpoint.WORKSPACE_HOST_METADATA:
        return _metadata(state, workspace)
    if route.endpoint is Endpoint.WORKSPACE_OIDC_DISCOVERY:
        return _discovery(state, workspace)
    if route.endpoint is not Endpoint.WORKSPACE_TOKEN:
        return None
    refuse = not state.behaviour.workspace_token_for_unassigned

    def check(client_id: str) -> None:
        if refuse and not _assigned(state, workspace.workspace_id, client_id):
            raise oauth_error(
                400,
                "invalid_request",
                f"Service principal {client_id} is not assigned to workspace "
                f"{workspace.workspace_id}.",
            )

    return token_endpoint(state, tokens, request, audience=workspace.workspace_id, check=check)


def workspace_of(state: AccountState, route: RouteMatch) -> Workspace:
    """The workspace a routed request is for.

    Raises:
        Rejection: 404 `ENDPOINT_NOT_FOUND` when no workspace has the id (the host
            answers nothing).
    """
    workspace = state.workspaces.get(route.workspace) if route.workspace is not None else None
    if workspace is None:
        raise rest_error(404, "ENDPOINT_NOT_FOUND", f"No workspace has the id {route.workspace}.")
    return workspace


def authorize_workspace(
    state: AccountState, tokens: TokenRegistry, request: FakeRequest, workspace: Workspace
) -> Caller:
    """Check a workspace API request's token, and that its principal may use the workspace.

    Raises:
        Rejection: 401 for a missing, unknown, expired or foreign token (one issued by the
            accounts host or another workspace); 403 `PERMISSION_DENIED` when the service
            principal is not assigned to the workspace, directly or through a group.
    """
    caller = authenticate(state, tokens, request, audience=workspace.workspace_id)
    if caller.client_id is not None and not _assigned(
        state, workspace.workspace_id, caller.client_id
    ):
        raise rest_error(
            403,
            "PERMISSION_DENIED",
            f"Service principal {caller.client_id} is not assigned to workspace "
            f"{workspace.workspace_id}.",
        )
    return caller
