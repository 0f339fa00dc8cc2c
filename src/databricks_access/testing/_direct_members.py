"""The identity API's direct group members (beta): list, add, read and remove one member.

`/api/2.0/identity/accounts/{account}/groups/{group}/direct-members` (`GET` paged by
`page_size` <= 1000 and `page_token`; `POST` a `DirectGroupMember`), and
`.../direct-members/{principal}` (`GET`, `DELETE`). Memberships are the SCIM ones: a
member added here is a member in SCIM reads, and reads here are as stale as SCIM reads.
REST error form.
"""

from __future__ import annotations

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
from databricks_access.testing._state import AccountState, Kind

__all__ = ["handle_direct_members"]

_MAX_PAGE = 1000
_PRINCIPAL_TYPES = {
    Kind.USER: "USER",
    Kind.SERVICE_PRINCIPAL: "SERVICE_PRINCIPAL",
    Kind.GROUP: "GROUP",
}


def _invalid(message: str) -> Rejection:
    return rest_error(400, "INVALID_PARAMETER_VALUE", message)


def _number(value: str) -> int | str:
    return int(value) if value.isascii() and value.isdigit() else value


def _render(state: AccountState, group_id: str, principal_id: str) -> dict[str, Any]:
    parent = f"accounts/{state.account_id}/groups/{group_id}"
    principal = state.principal(principal_id)
    out: dict[str, Any] = {
        "name": f"{parent}/direct-members/{principal_id}",
        "parent": parent,
        "group_id": _number(group_id),
        "principal_id": _number(principal_id),
        "principal_type": _PRINCIPAL_TYPES[state.kinds[principal_id]],
        "membership_source": "INTERNAL",
    }
    if principal is not None:
        out["display_name"] = principal.display_name
        if principal.external_id is not None:
            out["external_id"] = principal.external_id
    return out


def _page_size(raw: str) -> int:
    if not raw:
        return _MAX_PAGE
    if not raw.isascii() or not raw.isdigit():
        raise _invalid(f"page_size must be a positive integer, got {raw!r}.")
    return min(max(int(raw), 1), _MAX_PAGE)


def _list(state: AccountState, request: FakeRequest, group_id: str) -> FakeResponse:
    size = _page_size(request.params.get("page_size", ""))
    token = request.params.get("page_token", "")
    if token and (not token.isascii() or not token.isdigit()):
        raise _invalid("The page_token is not valid.")
    offset = int(token) if token else 0
    members = [m for m in state.snapshot().members(group_id) if m in state.kinds]
    page = members[offset : offset + size]
    payload: dict[str, Any] = {}
    if page:
        payload["direct_group_members"] = [_render(state, group_id, m) for m in page]
    if offset + size < len(members):
        payload["next_page_token"] = str(offset + size)
    return json_response(200, payload)


def _create(state: AccountState, request: FakeRequest, group_id: str) -> FakeResponse:
    body = parse_json_body(request.body, _invalid)
    raw = body.get("principal_id") if isinstance(body, dict) else None
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).isdigit():
        raise _invalid("principal_id is required: the id of a user, service principal or group.")
    principal_id = str(raw)
    if principal_id not in state.kinds:
        raise rest_error(
            404, "RESOURCE_DOES_NOT_EXIST", f"Principal {principal_id} does not exist."
        )
    if principal_id == group_id:
        raise _invalid(f"Group {group_id} cannot be a member of itself.")
    if principal_id in state.members[group_id]:
        raise rest_error(
            409,
            "ALREADY_EXISTS",
            f"Principal {principal_id} is already a direct member of group {group_id}.",
        )
    state.add_member(group_id, principal_id, record=True)
    return json_response(200, _render(state, group_id, principal_id))


def handle_direct_members(
    state: AccountState, request: FakeRequest, route: RouteMatch
) -> FakeResponse:
    """Answer a request on the direct-members endpoints."""
    group_id = route.params["group_id"]
    if group_id not in state.groups:
        raise rest_error(404, "RESOURCE_DOES_NOT_EXIST", f"Group {group_id} does not exist.")
    if route.endpoint is Endpoint.DIRECT_MEMBERS:
        if request.method == "POST":
            return _create(state, request, group_id)
        return _list(state, request, group_id)
    principal_id = route.params["principal_id"]
    if principal_id not in state.members[group_id]:
        raise rest_error(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"Principal {principal_id} is not a direct member of group {group_id}.",
        )
    if request.method == "DELETE":
        state.remove_member(group_id, principal_id, record=True)
        return json_response(200, {})
    return json_response(200, _render(state, group_id, principal_id))
