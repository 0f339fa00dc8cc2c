"""The SCIM endpoints: Users, Groups and ServicePrincipals (list, get, create, put, delete).

PATCH lives in `_scim_patch`. Both API versions are served: 2.1 caps pages at 100 and
accepts only `eq` comparisons (joined by `and`/`or`, at most 200 nodes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from databricks_access.testing._behaviour import EmptyPage
from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    json_response,
    parse_json_body,
    scim_error,
)
from databricks_access.testing._routing import Endpoint, RouteMatch
from databricks_access.testing._scim_filter import (
    FilterError,
    candidates,
    compile_filter,
    count_nodes,
    operators,
    parse_filter,
)
from databricks_access.testing._scim_patch import (
    INVALID_FILTER,
    active_flag,
    checked_new_member,
    invalid_syntax,
    member_ids,
    patch,
    value_list,
)
from databricks_access.testing._scim_resources import (
    FILTER_ATTRIBUTES,
    LIST_SCHEMA,
    Projection,
    indexed,
    records,
    render,
)
from databricks_access.testing._state import (
    AccountState,
    ConflictError,
    Kind,
    Principal,
    ServicePrincipal,
    User,
)

__all__ = ["handle_scim"]

_V21_PAGE_CAP = 100
_V21_MAX_NODES = 200


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise scim_error(400, f"{name} must be an integer, got {raw!r}.", "invalidValue") from None


def _matching(
    state: AccountState, kind: Kind, params: Mapping[str, str], v21: bool
) -> list[Principal]:
    by_id = records(state, kind)
    text = params.get("filter", "")
    if not text.strip():
        return list(by_id.values())
    try:
        node = parse_filter(text)
        predicate = compile_filter(node, FILTER_ATTRIBUTES[kind])
    except FilterError as exc:
        raise scim_error(400, f"Invalid filter {text!r}: {exc}", INVALID_FILTER) from None
    if v21 and (operators(node) - {"eq"} or count_nodes(node) > _V21_MAX_NODES):
        raise scim_error(
            400,
            f"Invalid filter {text!r}: this API supports only exact-match (eq) filters "
            f"of at most {_V21_MAX_NODES} nodes.",
            INVALID_FILTER,
        )
    ids = candidates(node, indexed(state, kind))
    pool: Iterable[Principal] = (
        by_id.values()
        if ids is None
        else sorted((by_id[i] for i in ids if i in by_id), key=lambda p: p.ordinal)
    )
    return [principal for principal in pool if predicate(principal)]


def _sort(found: list[Principal], kind: Kind, params: Mapping[str, str]) -> list[Principal]:
    sort_by = params.get("sortBy", "").strip()
    if not sort_by:
        return found
    name = sort_by.rsplit(":", 1)[1] if sort_by.lower().startswith("urn:") else sort_by
    attribute = FILTER_ATTRIBUTES[kind].get(name.casefold())
    if attribute is None:
        raise scim_error(400, f"Cannot sort by {sort_by!r}.", "invalidValue")
    read = attribute.read

    def key(principal: Principal) -> str:
        value = read(principal)
        if isinstance(value, tuple):
            value = value[0] if value else None
        return "" if value is None else str(value).casefold()

    descending = params.get("sortOrder", "").strip().lower() == "descending"
    return sorted(found, key=key, reverse=descending)


def _list(state: AccountState, request: FakeRequest, kind: Kind, v21: bool) -> FakeResponse:
    params = request.params
    behaviour = state.behaviour
    cap = min(behaviour.page_cap, _V21_PAGE_CAP) if v21 else behaviour.page_cap
    start = max(_int_param(params, "startIndex", 1), 1)
    count = min(max(_int_param(params, "count", cap), 0), cap)
    found = _sort(_matching(state, kind, params, v21), kind, params)
    page = found[start - 1 : start - 1 + count]
    projection = Projection.from_params(params, keep_id=behaviour.projection_keeps_id)
    with_members = behaviour.group_list_members
    needs_memberships = projection.wants("groups") or (
        kind is Kind.GROUP and with_members and projection.wants("members")
    )
    # Only reads that show memberships draw a stale snapshot (and its random lag).
    memberships = state.snapshot() if needs_memberships and page else state.fresh()
    resources = [
        render(state, principal, memberships, projection, members=with_members)
        for principal in page
    ]
    if not resources and behaviour.empty_page is EmptyPage.EMPTY_OBJECT:
        return json_response(200, {})
    payload: dict[str, Any] = {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(found),
        "startIndex": start,
        "itemsPerPage": len(resources),
    }
    if not behaviour.list_total_results:
        del payload["totalResults"]
    if resources or behaviour.empty_page is EmptyPage.EMPTY_RESOURCES:
        payload["Resources"] = resources
    return json_response(200, payload)


def _object_body(request: FakeRequest) -> dict[str, Any]:
    body = parse_json_body(request.body, invalid_syntax)
    if not isinstance(body, dict):
        raise invalid_syntax()
    # SCIM attribute names are case-insensitive.
    return {str(name).casefold(): value for name, value in body.items()}


def _text(fields: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = fields.get(name.casefold())
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise scim_error(400, f"{name} must be a non-empty string.", "invalidValue")
    return value


def _flag(fields: Mapping[str, Any], name: str) -> bool:
    value = fields.get(name.casefold())
    return True if value is None else active_flag(value)


def _values(fields: Mapping[str, Any], name: str) -> list[str]:
    value = fields.get(name.casefold())
    return [] if value is None else value_list(value, name)


def _parent_groups(state: AccountState, fields: Mapping[str, Any]) -> list[str]:
    """The groups a new user or service principal joins (`groups: [{"value": id}]`)."""
    value = fields.get("groups")
    if value is None:
        return []
    group_ids = member_ids(value)
    for group_id in group_ids:
        if group_id not in state.groups:
            raise scim_error(400, f"No group with id {group_id} exists.", "invalidValue")
    return group_ids


def _emails(fields: Mapping[str, Any], default: str) -> tuple[str, ...]:
    value = fields.get("emails")
    if value is None:
        return (default,)
    if not isinstance(value, list):
        raise scim_error(400, "emails must be a list.", "invalidValue")
    emails = []
    for item in value:
        email = item.get("value") if isinstance(item, dict) else None
        if not isinstance(email, str) or not email:
            raise scim_error(400, "Every email needs a string value.", "invalidValue")
        emails.append(email)
    return tuple(emails)


def _person_name(fields: Mapping[str, Any]) -> tuple[str | None, str | None]:
    name = fields.get("name")
    if name is None:
        return None, None
    if not isinstance(name, dict):
        raise scim_error(400, "name must be an object.", "invalidValue")
    parts = {str(key).casefold(): value for key, value in name.items()}
    return _text(parts, "givenName"), _text(parts, "familyName")


def _new_members(state: AccountState, group_id: str, fields: Mapping[str, Any]) -> list[str]:
    value = fields.get("members")
    if value is None:
        return []
    return [m for m in member_ids(value) if checked_new_member(state, group_id, m)]


def _create(state: AccountState, request: FakeRequest, kind: Kind) -> Principal:
    fields = _object_body(request)
    # Everything is read and checked before anything is created.
    roles, entitlements = _values(fields, "roles"), _values(fields, "entitlements")
    created: Principal
    if kind is Kind.GROUP:
        display_name = _text(fields, "displayName", required=True) or ""
        state.check_group_name(display_name)
        members = _new_members(state, "", fields)
        external_id = _text(fields, "externalId")
        created = state.add_group(display_name, external_id=external_id)
        state.set_members(created.id, members, record=True)
    else:
        parents = _parent_groups(state, fields)
        active = _flag(fields, "active")
        external_id = _text(fields, "externalId")
        if kind is Kind.USER:
            user_name = _text(fields, "userName", required=True) or ""
            given_name, family_name = _person_name(fields)
            created = state.add_user(
                user_name,
                _text(fields, "displayName"),
                emails=_emails(fields, user_name),
                given_name=given_name,
                family_name=family_name,
                active=active,
                external_id=external_id,
            )
        else:
            application_id = _text(fields, "applicationId")
            created = state.add_service_principal(
                _text(fields, "displayName") or application_id or "",
                application_id,
                active=active,
                external_id=external_id,
            )
            if not created.display_name:
                created.display_name = created.application_id
        for group_id in parents:
            state.add_member(group_id, created.id, record=True)
    created.roles[:] = roles
    created.entitlements[:] = entitlements
    return created


def _replace(state: AccountState, request: FakeRequest, principal: Principal) -> None:
    fields = _object_body(request)
    # A PUT replaces the roles and entitlements too: absent means none.
    roles, entitlements = _values(fields, "roles"), _values(fields, "entitlements")
    if isinstance(principal, User):
        user_name = _text(fields, "userName", required=True) or ""
        emails = _emails(fields, user_name)
        state.check_user_name(user_name, emails, own_id=principal.id)
        given_name, family_name = _person_name(fields)
        state.update_user(
            principal,
            {
                "user_name": user_name,
                "display_name": _text(fields, "displayName") or user_name,
                "emails": emails,
                "given_name": given_name,
                "family_name": family_name,
                "active": _flag(fields, "active"),
                "external_id": _text(fields, "externalId"),
            },
        )
    elif isinstance(principal, ServicePrincipal):
        application_id = _text(fields, "applicationId")
        if application_id is not None and application_id != principal.application_id:
            raise scim_error(400, "applicationId cannot be changed.", "mutability")
        display_name = _text(fields, "displayName") or principal.application_id
        active = _flag(fields, "active")
        external_id = _text(fields, "externalId")
        principal.display_name, principal.active = display_name, active
        principal.external_id = external_id
    else:
        display_name = _text(fields, "displayName", required=True) or ""
        state.check_group_name(display_name, own_id=principal.id)
        members = _new_members(state, principal.id, fields)
        external_id = _text(fields, "externalId")
        state.set_members(principal.id, members, record=True)
        if display_name != principal.display_name:
            state.rename_group(principal, display_name)
        principal.external_id = external_id
    principal.roles[:] = roles
    principal.entitlements[:] = entitlements


def _not_found(kind: Kind, resource_id: str) -> Exception:
    return scim_error(404, f"{kind.resource_type} with id {resource_id} is not found")


def handle_scim(state: AccountState, request: FakeRequest, route: RouteMatch) -> FakeResponse:
    """Answer a request on a SCIM endpoint (the route is a SCIM one)."""
    kind = Kind(route.params["type"])
    v21 = route.params["version"] == "2.1"
    method = request.method
    try:
        if route.endpoint is Endpoint.SCIM_COLLECTION:
            if method == "GET":
                return _list(state, request, kind, v21)
            created = _create(state, request, kind)
            return json_response(201, render(state, created, state.fresh(), Projection()))
        resource_id = route.params["id"]
        principal = records(state, kind).get(resource_id)
        if principal is None:
            raise _not_found(kind, resource_id)
        if method == "GET":
            projection = Projection.from_params(
                request.params, keep_id=state.behaviour.projection_keeps_id
            )
            return json_response(200, render(state, principal, state.snapshot(), projection))
        if method == "PATCH":
            return patch(state, request, principal)
        if method == "PUT":
            _replace(state, request, principal)
            return json_response(200, render(state, principal, state.fresh(), Projection()))
        state.delete(principal.id, record=True)
        return FakeResponse(204)
    except ConflictError as exc:
        raise scim_error(409, str(exc)) from None
