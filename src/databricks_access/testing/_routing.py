"""Which endpoint a request is for, and which operation class it belongs to.

Paths are matched segment by segment, exactly as sent: nothing is normalised, so `..`,
`//` or an encoded `%2F` can never make a path resolve to another resource. Each segment
is percent-decoded on its own; a decoded id containing `/` simply names nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from urllib.parse import unquote

import attrs

__all__ = [
    "Endpoint",
    "OperationClass",
    "RouteMatch",
    "classify",
    "resolve",
    "resolve_workspace",
    "split_workspace_prefix",
]


class OperationClass(str, enum.Enum):
    """The class of an operation, as rate limits and client-side throttles count them.

    The value is the plain name (`"get"`, `"list"`, ...), so `counts["patch"]` works.
    """

    TOKEN = "token"  # noqa: S105 - a class name, not a secret
    """An OAuth token request."""
    META = "meta"
    """The host metadata and OIDC discovery documents."""
    GET = "get"
    """A read of one resource."""
    LIST = "list"
    """A read of a collection (one page of it)."""
    PATCH = "patch"
    """A SCIM PATCH (membership changes)."""
    WRITE = "write"
    """Any other write: POST, PUT, DELETE."""

    def __str__(self) -> str:
        return self.value


class Endpoint(enum.Enum):
    """The endpoints the emulator serves."""

    HOST_METADATA = "host_metadata"
    OIDC_DISCOVERY = "oidc_discovery"
    TOKEN = "token"  # noqa: S105 - an endpoint name, not a secret
    SCIM_COLLECTION = "scim_collection"
    SCIM_RESOURCE = "scim_resource"
    WORKSPACES = "workspaces"
    WORKSPACE = "workspace"
    ASSIGNMENTS = "assignments"
    ASSIGNMENT = "assignment"
    RULE_SETS = "rule_sets"
    ASSIGNABLE_ROLES = "assignable_roles"
    WORKSPACE_PERMISSIONS = "workspace_permissions"
    SECRETS = "secrets"
    SECRET = "secret"  # noqa: S105 - an endpoint name, not a secret
    DIRECT_MEMBERS = "direct_members"
    DIRECT_MEMBER = "direct_member"
    WORKSPACE_HOST_METADATA = "workspace_host_metadata"
    WORKSPACE_OIDC_DISCOVERY = "workspace_oidc_discovery"
    WORKSPACE_TOKEN = "workspace_token"  # noqa: S105 - an endpoint name, not a secret
    UC_METASTORE_ASSIGNMENT = "uc_metastore_assignment"
    UC_METASTORE_SUMMARY = "uc_metastore_summary"
    UC_CATALOGS = "uc_catalogs"
    UC_CATALOG = "uc_catalog"
    UC_SCHEMAS = "uc_schemas"
    UC_SCHEMA = "uc_schema"
    UC_TABLES = "uc_tables"
    UC_TABLE = "uc_table"
    UC_VOLUMES = "uc_volumes"
    UC_VOLUME = "uc_volume"
    UC_PERMISSIONS = "uc_permissions"
    UC_EFFECTIVE_PERMISSIONS = "uc_effective_permissions"


@attrs.frozen
class RouteMatch:
    """A resolved request path.

    Attributes:
        endpoint: The endpoint the path names.
        account_id: The account id in the path, or None where the path has none.
        params: The other variable segments, percent-decoded (`version`, `type`, `id`,
            `workspace_id`, `principal_id`, `sp_id`, `secret_id`, `group_id`, and on
            workspace hosts `name`, `securable_type`, `full_name`).
        workspace: The workspace whose host the request was sent to, or None for the
            accounts host.
    """

    endpoint: Endpoint
    account_id: str | None
    params: Mapping[str, str]
    workspace: int | None = None


_SCIM_TYPES = frozenset({"Users", "Groups", "ServicePrincipals"})
_CONSTRAINED: Mapping[str, frozenset[str]] = {
    "version": frozenset({"2.0", "2.1"}),
    "type": _SCIM_TYPES,
}

_Pattern = tuple[Endpoint, frozenset[str], tuple[str, ...]]

_ACCOUNT_API = ("api", "2.0", "accounts", "{account_id}")
_IDENTITY_GROUP = (
    "api",
    "2.0",
    "identity",
    "accounts",
    "{account_id}",
    "groups",
    "{group_id}",
    "direct-members",
)
_PATTERNS: tuple[_Pattern, ...] = (
    (Endpoint.HOST_METADATA, frozenset({"GET"}), (".well-known", "databricks-config")),
    (
        Endpoint.OIDC_DISCOVERY,
        frozenset({"GET"}),
        ("oidc", "accounts", "{account_id}", ".well-known", "oauth-authorization-server"),
    ),
    (
        Endpoint.SCIM_COLLECTION,
        frozenset({"GET", "POST"}),
        ("api", "{version}", "accounts", "{account_id}", "scim", "v2", "{type}"),
    ),
    (
        Endpoint.SCIM_RESOURCE,
        frozenset({"GET", "PATCH", "PUT", "DELETE"}),
        ("api", "{version}", "accounts", "{account_id}", "scim", "v2", "{type}", "{id}"),
    ),
    (Endpoint.WORKSPACES, frozenset({"GET"}), (*_ACCOUNT_API, "workspaces")),
    (Endpoint.WORKSPACE, frozenset({"GET"}), (*_ACCOUNT_API, "workspaces", "{workspace_id}")),
    (
        Endpoint.ASSIGNMENTS,
        frozenset({"GET"}),
        (*_ACCOUNT_API, "workspaces", "{workspace_id}", "permissionassignments"),
    ),
    (
        Endpoint.ASSIGNMENT,
        frozenset({"PUT", "DELETE"}),
        (
            *_ACCOUNT_API,
            "workspaces",
            "{workspace_id}",
            "permissionassignments",
            "principals",
            "{principal_id}",
        ),
    ),
    (
        Endpoint.WORKSPACE_PERMISSIONS,
        frozenset({"GET"}),
        (*_ACCOUNT_API, "workspaces", "{workspace_id}", "permissionassignments", "permissions"),
    ),
    (
        Endpoint.RULE_SETS,
        frozenset({"GET", "PUT"}),
        ("api", "2.0", "preview", "accounts", "{account_id}", "access-control", "rule-sets"),
    ),
    (
        Endpoint.ASSIGNABLE_ROLES,
        frozenset({"GET"}),
        (
            "api",
            "2.0",
            "preview",
            "accounts",
            "{account_id}",
            "access-control",
            "assignable-roles",
        ),
    ),
    (
        Endpoint.SECRETS,
        frozenset({"GET", "POST"}),
        (*_ACCOUNT_API, "servicePrincipals", "{sp_id}", "credentials", "secrets"),
    ),
    (
        Endpoint.SECRET,
        frozenset({"DELETE"}),
        (*_ACCOUNT_API, "servicePrincipals", "{sp_id}", "credentials", "secrets", "{secret_id}"),
    ),
    (
        Endpoint.DIRECT_MEMBERS,
        frozenset({"GET", "POST"}),
        _IDENTITY_GROUP,
    ),
    (
        Endpoint.DIRECT_MEMBER,
        frozenset({"GET", "DELETE"}),
        (*_IDENTITY_GROUP, "{principal_id}"),
    ),
)

_UC = ("api", "2.1", "unity-catalog")
_WORKSPACE_PATTERNS: tuple[_Pattern, ...] = (
    (Endpoint.WORKSPACE_HOST_METADATA, frozenset({"GET"}), (".well-known", "databricks-config")),
    (
        Endpoint.WORKSPACE_OIDC_DISCOVERY,
        frozenset({"GET"}),
        ("oidc", ".well-known", "oauth-authorization-server"),
    ),
    (Endpoint.WORKSPACE_TOKEN, frozenset({"POST"}), ("oidc", "v1", "token")),
    (Endpoint.UC_METASTORE_ASSIGNMENT, frozenset({"GET"}), (*_UC, "current-metastore-assignment")),
    (Endpoint.UC_METASTORE_SUMMARY, frozenset({"GET"}), (*_UC, "metastore_summary")),
    (Endpoint.UC_CATALOGS, frozenset({"GET"}), (*_UC, "catalogs")),
    (Endpoint.UC_CATALOG, frozenset({"GET"}), (*_UC, "catalogs", "{name}")),
    (Endpoint.UC_SCHEMAS, frozenset({"GET"}), (*_UC, "schemas")),
    (Endpoint.UC_SCHEMA, frozenset({"GET"}), (*_UC, "schemas", "{name}")),
    (Endpoint.UC_TABLES, frozenset({"GET"}), (*_UC, "tables")),
    (Endpoint.UC_TABLE, frozenset({"GET"}), (*_UC, "tables", "{name}")),
    (Endpoint.UC_VOLUMES, frozenset({"GET"}), (*_UC, "volumes")),
    (Endpoint.UC_VOLUME, frozenset({"GET"}), (*_UC, "volumes", "{name}")),
    (
        Endpoint.UC_PERMISSIONS,
        frozenset({"GET"}),
        (*_UC, "permissions", "{securable_type}", "{full_name}"),
    ),
    (
        Endpoint.UC_EFFECTIVE_PERMISSIONS,
        frozenset({"GET"}),
        (*_UC, "effective-permissions", "{securable_type}", "{full_name}"),
    ),
)

_READ_CLASS: Mapping[Endpoint, OperationClass] = {
    Endpoint.HOST_METADATA: OperationClass.META,
    Endpoint.OIDC_DISCOVERY: OperationClass.META,
    Endpoint.SCIM_COLLECTION: OperationClass.LIST,
    Endpoint.SCIM_RESOURCE: OperationClass.GET,
    Endpoint.WORKSPACES: OperationClass.LIST,
    Endpoint.WORKSPACE: OperationClass.GET,
    Endpoint.ASSIGNMENTS: OperationClass.LIST,
    Endpoint.RULE_SETS: OperationClass.GET,
    Endpoint.ASSIGNABLE_ROLES: OperationClass.GET,
    Endpoint.WORKSPACE_PERMISSIONS: OperationClass.GET,
    Endpoint.SECRETS: OperationClass.LIST,
    Endpoint.DIRECT_MEMBERS: OperationClass.LIST,
    Endpoint.DIRECT_MEMBER: OperationClass.GET,
    Endpoint.WORKSPACE_HOST_METADATA: OperationClass.META,
    Endpoint.WORKSPACE_OIDC_DISCOVERY: OperationClass.META,
    Endpoint.UC_METASTORE_ASSIGNMENT: OperationClass.GET,
    Endpoint.UC_METASTORE_SUMMARY: OperationClass.GET,
    Endpoint.UC_CATALOGS: OperationClass.LIST,
    Endpoint.UC_CATALOG: OperationClass.GET,
    Endpoint.UC_SCHEMAS: OperationClass.LIST,
    Endpoint.UC_SCHEMA: OperationClass.GET,
    Endpoint.UC_TABLES: OperationClass.LIST,
    Endpoint.UC_TABLE: OperationClass.GET,
    Endpoint.UC_VOLUMES: OperationClass.LIST,
    Endpoint.UC_VOLUME: OperationClass.GET,
    Endpoint.UC_PERMISSIONS: OperationClass.GET,
    Endpoint.UC_EFFECTIVE_PERMISSIONS: OperationClass.GET,
}

_WORKSPACE_PREFIX = "ws"


def _split(path: str) -> tuple[str, ...] | None:
    if not path.startswith("/"):
        return None
    return tuple(path[1:].split("/"))


def _match(pattern: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for expected, raw in zip(pattern, segments, strict=True):
        if not raw:
            return None
        value = unquote(raw)
        if expected.startswith("{"):
            name = expected[1:-1]
            allowed = _CONSTRAINED.get(name)
            if allowed is not None and value not in allowed:
                return None
            params[name] = value
        elif value != expected:
            return None
    return params


def resolve(method: str, path: str, token_path: str) -> RouteMatch | None:
    """Find the endpoint for a method and a raw path (without the query).

    Args:
        method: The HTTP method, upper case.
        path: The raw request path, percent-encoded as sent.
        token_path: The token endpoint's path template (`{account_id}` is a variable).

    Returns:
        The match, or None when no endpoint serves this method on this path.
    """
    segments = _split(path)
    if segments is None:
        return None
    token_pattern = _split(token_path)
    if method == "POST" and token_pattern is not None:
        params = _match(token_pattern, segments)
        if params is not None:
            account_id = params.pop("account_id", None)
            return RouteMatch(Endpoint.TOKEN, account_id, params)
    for endpoint, methods, pattern in _PATTERNS:
        if method not in methods:
            continue
        params = _match(pattern, segments)
        if params is not None:
            account_id = params.pop("account_id", None)
            return RouteMatch(endpoint, account_id, params)
    return None


def split_workspace_prefix(path: str) -> tuple[int, str] | None:
    """The workspace id and the rest of a path sent to a loopback workspace host.

    A served emulator answers as workspace `<id>` under the path prefix `/ws/<id>`
    (`http://127.0.0.1:<port>/ws/<id>` is the workspace's host). Returns None when the
    path has no such prefix.
    """
    segments = path.split("/", 3)
    if len(segments) < 3 or segments[0] or segments[1] != _WORKSPACE_PREFIX:
        return None
    digits = segments[2]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
        return None
    rest = "/" + segments[3] if len(segments) == 4 else "/"
    return int(digits), rest


def resolve_workspace(method: str, path: str, workspace_id: int) -> RouteMatch | None:
    """Find the endpoint of a request sent to a workspace host.

    Args:
        method: The HTTP method, upper case.
        path: The raw path within the workspace host (without any `/ws/<id>` prefix).
        workspace_id: The workspace the host belongs to.

    Returns:
        The match (its `workspace` set), or None when the workspace serves no such
        endpoint.
    """
    segments = _split(path)
    if segments is None:
        return None
    for endpoint, methods, pattern in _WORKSPACE_PATTERNS:
        if method not in methods:
            continue
        params = _match(pattern, segments)
        if params is not None:
            return RouteMatch(endpoint, None, params, workspace_id)
    return None


def classify(method: str, route: RouteMatch | None) -> OperationClass:
    """The operation class of a request, known before it is handled.

    Unknown routes are classed by method, so a fault plan or rate limit keyed by class
    applies to every request.
    """
    if route is not None:
        if route.endpoint in (Endpoint.TOKEN, Endpoint.WORKSPACE_TOKEN):
            return OperationClass.TOKEN
        if method == "GET":
            return _READ_CLASS[route.endpoint]
    if method in ("GET", "HEAD", "OPTIONS"):
        return OperationClass.GET
    if method == "PATCH":
        return OperationClass.PATCH
    return OperationClass.WRITE
