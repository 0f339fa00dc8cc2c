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

__all__ = ["Endpoint", "OperationClass", "RouteMatch", "classify", "resolve"]


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


@attrs.frozen
class RouteMatch:
    """A resolved request path.

    Attributes:
        endpoint: The endpoint the path names.
        account_id: The account id in the path, or None where the path has none.
        params: The other variable segments, percent-decoded (`version`, `type`, `id`,
            `workspace_id`, `principal_id`, `sp_id`, `secret_id`, `group_id`).
    """

    endpoint: Endpoint
    account_id: str | None
    params: Mapping[str, str]


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
}


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


def classify(method: str, route: RouteMatch | None) -> OperationClass:
    """The operation class of a request, known before it is handled.

    Unknown routes are classed by method, so a fault plan or rate limit keyed by class
    applies to every request.
    """
    if route is not None:
        if route.endpoint is Endpoint.TOKEN:
            return OperationClass.TOKEN
        if method == "GET":
            return _READ_CLASS[route.endpoint]
    if method in ("GET", "HEAD", "OPTIONS"):
        return OperationClass.GET
    if method == "PATCH":
        return OperationClass.PATCH
    return OperationClass.WRITE
