"""Workspaces, workspace permission assignments and the permissions a workspace offers.

REST endpoints, REST error form.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    Rejection,
    json_response,
    parse_json_body,
    rest_error,
)
from databricks_access.testing._routing import Endpoint, RouteMatch
from databricks_access.testing._state import AccountState, Kind, Workspace

__all__ = ["PERMISSIONS", "handle_workspaces", "normalised_permissions"]

PERMISSIONS = ("USER", "ADMIN")
_PAGE_MARK = "offset:"
_DESCRIPTIONS = {
    "USER": "Can access the workspace.",
    "ADMIN": "Can access the workspace and has workspace admin privileges.",
}


def _invalid(message: str) -> Rejection:
    return rest_error(400, "INVALID_PARAMETER_VALUE", message)


def normalised_permissions(permissions: object) -> tuple[str, ...]:
    """The stored form of a permission list: `ADMIN` wins over `USER`, others are dropped.

    As the API documents, unsupported values count as absent, and an empty result
    deletes the assignment.
    """
    if not isinstance(permissions, list):
        return ()
    if "ADMIN" in permissions:
        return ("ADMIN",)
    return ("USER",) if "USER" in permissions else ()


def _render_workspace(state: AccountState, workspace: Workspace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "account_id": state.account_id,
        "workspace_id": workspace.workspace_id,
        "workspace_name": workspace.name,
        "deployment_name": workspace.deployment_name,
        "workspace_status": workspace.status,
        "workspace_status_message": f"Workspace is {workspace.status.lower()}.",
        "creation_time": int(workspace.created * 1000),
        "pricing_tier": "PREMIUM",
        "cloud": state.cloud,
    }
    if state.cloud == "aws":
        out["aws_region"] = "us-east-1"
    else:
        out["location"] = "eastus" if state.cloud == "azure" else "us-central1"
    return out


def _render_assignment(
    state: AccountState, principal_id: str, permissions: tuple[str, ...]
) -> dict[str, Any]:
    principal: dict[str, Any] = {"principal_id": int(principal_id)}
    kind = state.kinds[principal_id]
    if kind is Kind.USER:
        user = state.users[principal_id]
        principal["display_name"] = user.display_name
        principal["user_name"] = user.user_name
    elif kind is Kind.GROUP:
        group = state.groups[principal_id]
        principal["display_name"] = group.display_name
        principal["group_name"] = group.display_name
    else:
        sp = state.service_principals[principal_id]
        principal["display_name"] = sp.display_name
        principal["service_principal_name"] = sp.application_id
    return {"principal": principal, "permissions": list(permissions)}


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PAGE_MARK}{offset}".encode()).decode()


def _offset(token: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    digits = decoded.removeprefix(_PAGE_MARK)
    if not decoded.startswith(_PAGE_MARK) or not digits.isascii() or not digits.isdigit():
        raise _invalid("The page_token is not valid.")
    return int(digits)


def _workspace(state: AccountState, raw_id: str) -> Workspace:
    if not raw_id.isascii() or not raw_id.isdigit():
        raise _invalid(f"The workspace id {raw_id!r} is not a number.")
    workspace = state.workspaces.get(int(raw_id))
    if workspace is None:
        raise rest_error(404, "RESOURCE_DOES_NOT_EXIST", f"Workspace {raw_id} does not exist.")
    return workspace


def _list_assignments(
    state: AccountState, request: FakeRequest, workspace: Workspace
) -> FakeResponse:
    token = request.params.get("page_token", "")
    offset = _offset(token) if token else 0
    size = state.behaviour.assignments_page_size
    assigned = list(state.assignments[workspace.workspace_id].items())
    page = assigned[offset : offset + size]
    payload: dict[str, Any] = {}
    if page:
        payload["permission_assignments"] = [
            _render_assignment(state, principal_id, permissions)
            for principal_id, permissions in page
        ]
    if offset + size < len(assigned):
        payload["next_page_token"] = _page_token(offset + size)
    return json_response(200, payload)


def _update_assignment(
    state: AccountState, request: FakeRequest, workspace: Workspace, principal_id: str
) -> FakeResponse:
    assigned = state.assignments[workspace.workspace_id]
    if request.method == "DELETE":
        assigned.pop(principal_id, None)
        return json_response(200, {})
    body = parse_json_body(request.body, _invalid)
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    permissions = normalised_permissions(body.get("permissions"))
    if permissions:
        assigned[principal_id] = permissions
    else:
        assigned.pop(principal_id, None)
    return json_response(200, _render_assignment(state, principal_id, permissions))


def handle_workspaces(state: AccountState, request: FakeRequest, route: RouteMatch) -> FakeResponse:
    """Answer a request on a workspace endpoint."""
    if route.endpoint is Endpoint.WORKSPACES:
        return json_response(200, [_render_workspace(state, w) for w in state.workspaces.values()])
    workspace = _workspace(state, route.params["workspace_id"])
    if route.endpoint is Endpoint.WORKSPACE:
        return json_response(200, _render_workspace(state, workspace))
    if route.endpoint is Endpoint.ASSIGNMENTS:
        return _list_assignments(state, request, workspace)
    if route.endpoint is Endpoint.WORKSPACE_PERMISSIONS:
        return json_response(
            200,
            {
                "permissions": [
                    {"permission_level": level, "description": _DESCRIPTIONS[level]}
                    for level in PERMISSIONS
                ]
            },
        )
    principal_id = route.params["principal_id"]
    if principal_id not in state.kinds:
        raise rest_error(
            404, "RESOURCE_DOES_NOT_EXIST", f"Principal {principal_id} does not exist."
        )
    return _update_assignment(state, request, workspace, principal_id)
