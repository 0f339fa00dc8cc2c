"""The Unity Catalog read API of a workspace host.

Metastore assignment and summary, catalogs, schemas, tables and volumes (list and get),
direct and effective grants. Lists page by `max_results` / `page_token` ->
`next_page_token` as the SDK expects; items are sorted by name and the page token is an
opaque cursor (the last name served), so a page never repeats or skips an item that
existed before and after. Errors take the REST form with Unity Catalog's codes
(`CATALOG_DOES_NOT_EXIST`, ...) and a `details` entry naming the reason.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    Rejection,
    json_response,
)
from databricks_access.testing._routing import Endpoint, RouteMatch
from databricks_access.testing._state import AccountState
from databricks_access.testing._unity_state import (
    Metastore,
    ObjectDetails,
    SecurableType,
    UnityState,
    parent_securables,
)

__all__ = ["handle_unity"]

_CURSOR = "after:"
_GRANTS_MIN_PAGE = 150
_MISSING = {
    SecurableType.METASTORE: "METASTORE_DOES_NOT_EXIST",
    SecurableType.CATALOG: "CATALOG_DOES_NOT_EXIST",
    SecurableType.SCHEMA: "SCHEMA_DOES_NOT_EXIST",
    SecurableType.TABLE: "TABLE_DOES_NOT_EXIST",
    SecurableType.VOLUME: "RESOURCE_DOES_NOT_EXIST",
}
_LABEL = {
    SecurableType.METASTORE: "Metastore",
    SecurableType.CATALOG: "Catalog",
    SecurableType.SCHEMA: "Schema",
    SecurableType.TABLE: "Table",
    SecurableType.VOLUME: "Volume",
}


def uc_error(status: int, error_code: str, message: str) -> Rejection:
    """A Unity Catalog error: `error_code`, `message` and a `google.rpc.ErrorInfo` detail."""
    return Rejection(
        json_response(
            status,
            {
                "error_code": error_code,
                "message": message,
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": error_code,
                        "domain": "unity-catalog.databricks.com",
                    }
                ],
            },
        )
    )


def _invalid(message: str) -> Rejection:
    return uc_error(400, "INVALID_PARAMETER_VALUE", message)


def _missing(kind: SecurableType, name: str) -> Rejection:
    return uc_error(404, _MISSING[kind], f"{_LABEL[kind]} '{name}' does not exist.")


# ---- paging ----------------------------------------------------------------------------


def _page_size(request: FakeRequest, cap: int, minimum: int = 1) -> int | None:
    """The page length asked for: None for all (no `max_results`), else at most `cap`."""
    raw = request.params.get("max_results")
    if raw is None or raw == "":
        return None
    try:
        asked = int(raw)
    except ValueError:
        raise _invalid(f"max_results must be an integer, got {raw!r}.") from None
    if asked < 0:
        raise _invalid("max_results must not be negative.")
    if asked == 0:
        return cap
    if asked < minimum:
        raise _invalid(f"max_results must be 0 or at least {minimum}, got {asked}.")
    return min(asked, cap)


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR}{last}".encode()).decode()


def _after(token: str) -> str:
    try:
        decoded = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    if not decoded.startswith(_CURSOR):
        raise _invalid("The page_token is not valid.")
    return decoded.removeprefix(_CURSOR)


def _page(
    request: FakeRequest, names: Sequence[str], cap: int, minimum: int = 1
) -> tuple[Sequence[str], str | None]:
    """One page of sorted names, and the next page's token (None on the last page)."""
    size = _page_size(request, cap, minimum)
    token = request.params.get("page_token", "")
    start = bisect.bisect_right(names, _after(token)) if token else 0
    if size is None:
        return names[start:], None
    page = names[start : start + size]
    more = start + size < len(names)
    return page, (_token(page[-1]) if more and page else None)


def _listing(
    request: FakeRequest,
    key: str,
    objects: Mapping[str, ObjectDetails],
    render: Callable[[str, ObjectDetails], dict[str, Any]],
    cap: int,
) -> FakeResponse:
    page, next_token = _page(request, sorted(objects), cap)
    payload: dict[str, Any] = {key: [render(name, objects[name]) for name in page]}
    if next_token is not None:
        payload["next_page_token"] = next_token
    return json_response(200, payload)


# ---- rendering ---------------------------------------------------------------------------


def _common(metastore_id: str, details: ObjectDetails) -> dict[str, Any]:
    out: dict[str, Any] = {
        "owner": details.owner,
        "metastore_id": metastore_id,
        "created_at": details.created_at,
        "created_by": details.owner,
        "updated_at": details.created_at,
        "updated_by": details.owner,
    }
    if details.comment is not None:
        out["comment"] = details.comment
    return out


def _catalog(metastore_id: str, name: str, details: ObjectDetails) -> dict[str, Any]:
    return {
        "name": name,
        "full_name": name,
        "catalog_type": "MANAGED_CATALOG",
        "isolation_mode": "OPEN",
        "securable_type": "CATALOG",
        "browse_only": False,
        **_common(metastore_id, details),
    }


def _schema(metastore_id: str, catalog: str, name: str, details: ObjectDetails) -> dict[str, Any]:
    return {
        "name": name,
        "catalog_name": catalog,
        "full_name": f"{catalog}.{name}",
        "catalog_type": "MANAGED_CATALOG",
        "browse_only": False,
        **_common(metastore_id, details),
    }


def _table(
    metastore_id: str, catalog: str, schema: str, name: str, details: ObjectDetails
) -> dict[str, Any]:
    out = {
        "name": name,
        "catalog_name": catalog,
        "schema_name": schema,
        "full_name": f"{catalog}.{schema}.{name}",
        "table_type": details.kind or "MANAGED",
        "browse_only": False,
        **_common(metastore_id, details),
    }
    if details.data_source_format is not None:
        out["data_source_format"] = details.data_source_format
    return out


def _volume(
    metastore_id: str, catalog: str, schema: str, name: str, details: ObjectDetails
) -> dict[str, Any]:
    return {
        "name": name,
        "catalog_name": catalog,
        "schema_name": schema,
        "full_name": f"{catalog}.{schema}.{name}",
        "volume_type": details.kind or "MANAGED",
        "browse_only": False,
        **_common(metastore_id, details),
    }


def _summary(state: AccountState, metastore: Metastore) -> dict[str, Any]:
    return {
        "metastore_id": metastore.metastore_id,
        "name": metastore.name,
        "owner": metastore.owner,
        "region": metastore.region,
        "cloud": state.cloud,
        "global_metastore_id": f"{state.cloud}:{metastore.region}:{metastore.metastore_id}",
        "created_at": metastore.created_at,
        "created_by": metastore.owner,
        "updated_at": metastore.created_at,
        "updated_by": metastore.owner,
        "privilege_model_version": "1.0",
        "delta_sharing_scope": "INTERNAL",
    }


# ---- lookups -----------------------------------------------------------------------------


def _required(request: FakeRequest, name: str) -> str:
    value = request.params.get(name, "")
    if not value:
        raise _invalid(f"Missing required field: {name}")
    return value.lower()


def _schemas_of(unity: UnityState, metastore_id: str, catalog: str) -> dict[str, ObjectDetails]:
    schemas = unity.schemas.get((metastore_id, catalog))
    if schemas is None:
        raise _missing(SecurableType.CATALOG, catalog)
    return schemas


def _objects_of(
    unity: UnityState, metastore_id: str, catalog: str, schema: str, *, volumes: bool
) -> dict[str, ObjectDetails]:
    schemas = _schemas_of(unity, metastore_id, catalog)
    if schema not in schemas:
        raise _missing(SecurableType.SCHEMA, f"{catalog}.{schema}")
    where = unity.volumes if volumes else unity.tables
    return where[(metastore_id, catalog, schema)]


def _securable(unity: UnityState, metastore_id: str, kind: SecurableType, full_name: str) -> str:
    """Check that a securable exists (the nearest missing ancestor answers 404)."""
    if kind is SecurableType.METASTORE:
        if full_name != metastore_id:
            raise _missing(kind, full_name)
        return full_name
    name = full_name.lower()
    parts = name.split(".")
    depth = {SecurableType.CATALOG: 1, SecurableType.SCHEMA: 2}.get(kind, 3)
    if len(parts) != depth or not all(parts):
        raise _invalid(f"Invalid {kind.value.lower()} full name '{full_name}'.")
    if parts[0] not in unity.catalogs.get(metastore_id, {}):
        raise _missing(SecurableType.CATALOG, parts[0])
    if depth >= 2 and parts[1] not in unity.schemas[(metastore_id, parts[0])]:
        raise _missing(SecurableType.SCHEMA, f"{parts[0]}.{parts[1]}")
    if depth == 3 and unity.find(metastore_id, kind, name) is None:
        raise _missing(kind, name)
    return name


# ---- grants ------------------------------------------------------------------------------


def _grantee_names(state: AccountState, principal: str) -> set[str]:
    """The names whose grants count for a principal: its own, and its groups' if expanded."""
    names = {principal.casefold()}
    if state.behaviour.effective_permissions_expand_groups:
        principal_id = state.principal_by_name(principal)
        if principal_id is not None:
            names |= {
                state.groups[g].display_name.casefold() for g in state.ancestors(principal_id)
            }
        names.add("account users")
    return names


def _permissions(
    state: AccountState, request: FakeRequest, metastore_id: str, kind: SecurableType, name: str
) -> FakeResponse:
    grants = state.unity.grants_on((metastore_id, kind, name))
    wanted = request.params.get("principal")
    principals = sorted(grants, key=str.casefold)
    if wanted is not None:
        principals = [p for p in principals if p.casefold() == wanted.casefold()]
    page, next_token = _page(request, principals, state.behaviour.uc_page_cap, _GRANTS_MIN_PAGE)
    payload: dict[str, Any] = {
        "privilege_assignments": [
            {"principal": principal, "privileges": list(grants[principal])} for principal in page
        ]
    }
    if next_token is not None:
        payload["next_page_token"] = next_token
    return json_response(200, payload)


def _effective(
    state: AccountState, request: FakeRequest, metastore_id: str, kind: SecurableType, name: str
) -> FakeResponse:
    unity = state.unity
    wanted = request.params.get("principal")
    counted = _grantee_names(state, wanted) if wanted is not None else None
    found: dict[str, list[dict[str, str]]] = {}
    chain = [(kind, name, False)] + [(k, n, True) for k, n in parent_securables(kind, name)]
    for securable_kind, securable_name, inherited in chain:
        for principal, privileges in unity.grants_on(
            (metastore_id, securable_kind, securable_name)
        ).items():
            if counted is not None and wanted is not None:
                if principal.casefold() not in counted:
                    continue
                principal = wanted  # noqa: PLW2901 - reported under the principal asked about
            entries = found.setdefault(principal, [])
            for privilege in privileges:
                entry = {"privilege": privilege}
                if inherited:
                    entry["inherited_from_type"] = securable_kind.value
                    entry["inherited_from_name"] = securable_name
                if entry not in entries:
                    entries.append(entry)
    principals = sorted(found, key=str.casefold)
    page, next_token = _page(request, principals, state.behaviour.uc_page_cap, _GRANTS_MIN_PAGE)
    payload: dict[str, Any] = {
        "privilege_assignments": [
            {"principal": principal, "privileges": found[principal]} for principal in page
        ]
    }
    if next_token is not None:
        payload["next_page_token"] = next_token
    return json_response(200, payload)


# ---- dispatch ----------------------------------------------------------------------------


def handle_unity(
    state: AccountState, request: FakeRequest, route: RouteMatch, workspace_id: int
) -> FakeResponse:
    """Answer a Unity Catalog request on a workspace host (auth already checked)."""
    unity = state.unity
    assigned = unity.assigned.get(workspace_id)
    if assigned is None:
        raise uc_error(
            404, "METASTORE_DOES_NOT_EXIST", "No metastore assigned for the current workspace."
        )
    metastore_id, default_catalog = assigned
    metastore = unity.metastores[metastore_id]
    cap = state.behaviour.uc_page_cap
    endpoint = route.endpoint
    if endpoint is Endpoint.UC_METASTORE_ASSIGNMENT:
        out: dict[str, Any] = {"workspace_id": workspace_id, "metastore_id": metastore_id}
        if default_catalog is not None:
            out["default_catalog_name"] = default_catalog
        return json_response(200, out)
    if endpoint is Endpoint.UC_METASTORE_SUMMARY:
        return json_response(200, _summary(state, metastore))
    if endpoint is Endpoint.UC_CATALOGS:
        catalogs = unity.catalogs[metastore_id]
        return _listing(
            request, "catalogs", catalogs, lambda n, d: _catalog(metastore_id, n, d), cap
        )
    if endpoint is Endpoint.UC_CATALOG:
        name = _securable(unity, metastore_id, SecurableType.CATALOG, route.params["name"])
        return json_response(200, _catalog(metastore_id, name, unity.catalogs[metastore_id][name]))
    if endpoint is Endpoint.UC_SCHEMAS:
        catalog = _required(request, "catalog_name")
        schemas = _schemas_of(unity, metastore_id, catalog)
        return _listing(
            request, "schemas", schemas, lambda n, d: _schema(metastore_id, catalog, n, d), cap
        )
    if endpoint is Endpoint.UC_SCHEMA:
        name = _securable(unity, metastore_id, SecurableType.SCHEMA, route.params["name"])
        catalog, schema = name.split(".")
        details = unity.schemas[(metastore_id, catalog)][schema]
        return json_response(200, _schema(metastore_id, catalog, schema, details))
    if endpoint in (Endpoint.UC_TABLES, Endpoint.UC_VOLUMES):
        volumes = endpoint is Endpoint.UC_VOLUMES
        catalog = _required(request, "catalog_name")
        schema = _required(request, "schema_name")
        objects = _objects_of(unity, metastore_id, catalog, schema, volumes=volumes)
        render = _volume if volumes else _table
        return _listing(
            request,
            "volumes" if volumes else "tables",
            objects,
            lambda n, d: render(metastore_id, catalog, schema, n, d),
            cap,
        )
    if endpoint in (Endpoint.UC_TABLE, Endpoint.UC_VOLUME):
        kind = SecurableType.VOLUME if endpoint is Endpoint.UC_VOLUME else SecurableType.TABLE
        name = _securable(unity, metastore_id, kind, route.params["name"])
        catalog, schema, leaf = name.split(".")
        where = unity.volumes if kind is SecurableType.VOLUME else unity.tables
        details = where[(metastore_id, catalog, schema)][leaf]
        render = _volume if kind is SecurableType.VOLUME else _table
        return json_response(200, render(metastore_id, catalog, schema, leaf, details))
    try:
        kind = SecurableType.parse(route.params["securable_type"])
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    name = _securable(unity, metastore_id, kind, route.params["full_name"])
    if endpoint is Endpoint.UC_PERMISSIONS:
        return _permissions(state, request, metastore_id, kind, name)
    return _effective(state, request, metastore_id, kind, name)
