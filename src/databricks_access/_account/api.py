"""Every account API operation, as a flow or a listing. No I/O here.

`AccountApi` knows the paths of one account; its methods return flows (`Flow[T]`) for
single operations and listing factories for paged ones. `AccountClient` and
`AsyncAccountClient` run them through their drivers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from databricks_access._account.config import AccountConfig
from databricks_access._account.flows import Call, Flow, OpClass, collect, request
from databricks_access._account.models import (
    AssignedPrincipal,
    GrantRule,
    Group,
    MemberRef,
    PermissionAssignment,
    PrincipalKind,
    PrincipalRef,
    RuleSet,
    ServicePrincipal,
    ServicePrincipalSecret,
    User,
    Workspace,
    WorkspacePermission,
)
from databricks_access._account.scim import (
    PATCH_OP_SCHEMA,
    ScimPaging,
    add_members_body,
    check_id,
    check_workspace_id,
    encode_query,
    filter_eq,
    quote_filter_value,
    remove_members_body,
)
from databricks_access._account.serde import malformed, parse_list, structure
from databricks_access._errors import (
    BadRequestError,
    ConfigError,
    ConflictError,
    NotFoundError,
)

__all__ = [
    "GROUP_MANAGER_ROLE",
    "SERVICE_PRINCIPAL_MANAGER_ROLE",
    "SERVICE_PRINCIPAL_USER_ROLE",
    "WORKSPACE_PERMISSIONS",
    "AccountApi",
    "Principal",
    "ScimListing",
    "TokenListing",
]

T = TypeVar("T")
R = TypeVar("R", User, Group, ServicePrincipal)

GROUP_MANAGER_ROLE = "roles/group.manager"
SERVICE_PRINCIPAL_USER_ROLE = "roles/servicePrincipal.user"
SERVICE_PRINCIPAL_MANAGER_ROLE = "roles/servicePrincipal.manager"
WORKSPACE_PERMISSIONS = ("USER", "ADMIN")
_GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
_SP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DEFAULT_PAGE = 100
_MAX_PAGE_20 = 10_000
_MAX_PAGE_21 = 100
_RULE_SET_RETRIES = 5
_MAX_SECRET_LIFETIME = 730 * 24 * 3600

Principal = User | ServicePrincipal | Group | PrincipalRef | str
"""Anything that names a principal: a model, a reference, a user name or an application id."""


@attrs.define
class ScimListing(Generic[R]):
    """One SCIM listing in progress: `ScimPaging` state plus the request to repeat."""

    path: str
    params: list[tuple[str, str]]
    item: type[R]
    paging: ScimPaging[R]

    def next_page(self) -> Flow[list[R]] | None:
        """The flow of the next page, or None when the listing is complete."""
        return None if self.paging.done else self._page()

    def _page(self) -> Flow[list[R]]:
        query = encode_query([*self.params, *self.paging.params()])
        reply = yield from request(
            Call(method="GET", path=self.path, query=query, op=OpClass.LIST, idempotent=True)
        )
        return self.paging.accept(parse_list(reply.json(), self.item))


@attrs.define
class TokenListing(Generic[T]):
    """A REST listing paged by `next_page_token`: the items are under `key`."""

    path: str
    key: str
    item: type[T]
    next_token: str | None = None
    done: bool = False
    seen_tokens: set[str] = attrs.field(factory=set)

    def next_page(self) -> Flow[list[T]] | None:
        """The flow of the next page, or None when no page token is left."""
        return None if self.done else self._page()

    def _page(self) -> Flow[list[T]]:
        query = encode_query([("page_token", self.next_token)]) if self.next_token else ""
        reply = yield from request(
            Call(method="GET", path=self.path, query=query, op=OpClass.LIST, idempotent=True)
        )
        data = reply.json() or {}
        if not isinstance(data, dict):
            raise malformed(f"the {self.key} page is not an object")
        raw = data.get(self.key) or []
        if not isinstance(raw, list):
            raise malformed(f"{self.key} is not a list")
        token = data.get("next_page_token")
        # A token seen before would page forever: treat it as the end.
        if isinstance(token, str) and token and token not in self.seen_tokens:
            self.seen_tokens.add(token)
            self.next_token = token
        else:
            self.done = True
        return [structure(item, self.item) for item in raw]


@attrs.define
class _SinglePage(Generic[T]):
    flow: Callable[[], Flow[list[T]]]
    done: bool = False

    def next_page(self) -> Flow[list[T]] | None:
        if self.done:
            return None
        self.done = True
        return self.flow()


_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _members_read(value: R, attributes: str = "") -> R:
    """A group read whose answer included its members: no `members` key means none.

    A group with no members has no `members` key at all (WIRE.md), so after a read that
    asked for them, absent means empty, not "not fetched".
    """
    asked = not attributes or "members" in attributes.split(",")
    if isinstance(value, Group) and value.members is None and asked:
        return attrs.evolve(value, members=())
    return value


def _is_uuid(value: str) -> bool:
    return bool(_UUID.fullmatch(value))


def _text(value: object, field: str) -> str:
    """A non-empty string without control characters, else `ConfigError` naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty string", field)
    if _CONTROL.search(value):
        raise ConfigError("must not contain control characters", field)
    return value


def _optional_text(value: object, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _names(values: Iterable[str], field: str) -> list[str]:
    """Role or entitlement names: a collection of non-empty strings, duplicates dropped."""
    if isinstance(values, (str, bytes)):
        raise ConfigError("must be a list of names, not a single string", field)
    try:
        items = list(values)
    except TypeError:
        raise ConfigError("must be a list of names", field) from None
    return list(dict.fromkeys(_text(item, field) for item in items))


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("must be True or False", field)
    return value


def _shared_fields(
    external_id: str | None, roles: Iterable[str], entitlements: Iterable[str]
) -> dict[str, object]:
    """The create body's fields that users, service principals and groups share."""
    fields: dict[str, object] = {}
    if external_id is not None:
        fields["externalId"] = _text(external_id, "external_id")
    if role_names := _names(roles, "roles"):
        fields["roles"] = _complex(role_names)
    if entitlement_names := _names(entitlements, "entitlements"):
        fields["entitlements"] = _complex(entitlement_names)
    return fields


def _complex(values: Iterable[str]) -> list[dict[str, str]]:
    return [{"value": value} for value in values]


def _patch_body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP_SCHEMA], "Operations": operations}


def _workspace_id(workspace_id: object) -> str:
    text = str(workspace_id)
    if isinstance(workspace_id, bool) or not isinstance(workspace_id, (int, str)):
        raise ConfigError(f"{workspace_id!r} is not a workspace id", "workspace_id")
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{workspace_id!r} is not a workspace id", "workspace_id")
    return text


def _projection(
    params: list[tuple[str, str]],
    attributes: Sequence[str] | None,
    excluded_attributes: Sequence[str] | None,
) -> None:
    if attributes:
        params.append(("attributes", ",".join(attributes)))
    if excluded_attributes:
        params.append(("excludedAttributes", ",".join(excluded_attributes)))


class AccountApi:
    """The account API of one account, as flows. Pure: safe to share between clients."""

    def __init__(self, config: AccountConfig) -> None:
        self.config = config
        self.scim = f"/api/{config.scim_version}/accounts/{config.account_id}/scim/v2"
        self.account = f"/api/2.0/accounts/{config.account_id}"
        self.rule_sets = f"/api/2.0/preview/accounts/{config.account_id}/access-control/rule-sets"
        self.max_page = _MAX_PAGE_21 if config.scim_version == "2.1" else _MAX_PAGE_20

    # -- SCIM generic ----------------------------------------------------------------------

    def _listing(
        self,
        resource: str,
        item: type[R],
        *,
        filter: str | None,  # noqa: A002 - the SCIM parameter's name
        attributes: Sequence[str] | None,
        excluded_attributes: Sequence[str] | None,
        page_size: int | None,
    ) -> Callable[[], ScimListing[R]]:
        size = _DEFAULT_PAGE if page_size is None else page_size
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= self.max_page:
            raise ConfigError(f"must be an integer from 1 to {self.max_page}", "page_size")
        params: list[tuple[str, str]] = []
        if filter is not None:
            if not isinstance(filter, str) or not filter.strip():
                raise ConfigError("must be a non-empty SCIM filter", "filter")
            params.append(("filter", filter))
        _projection(params, attributes, excluded_attributes)
        path = f"{self.scim}/{resource}"
        return lambda: ScimListing(path, params, item, ScimPaging(size))

    def _get(
        self,
        resource: str,
        item: type[R],
        resource_id: str,
        field: str,
        attributes: str = "",
        *,
        deadline: float | None = None,
    ) -> Flow[R]:
        path = f"{self.scim}/{resource}/{check_id(resource_id, field)}"
        query = encode_query([("attributes", attributes)]) if attributes else ""
        reply = yield from request(
            Call(
                method="GET",
                path=path,
                query=query,
                op=OpClass.GET,
                idempotent=True,
                deadline=deadline,
            )
        )
        data = reply.json()
        if isinstance(data, dict) and "id" not in data:
            # A projected read (`attributes=members`) has been seen to drop `id`.
            data = {**data, "id": resource_id}
        return _members_read(structure(data, item), attributes)

    def _find(
        self,
        resource: str,
        item: type[R],
        attribute: str,
        value: str,
        matches: Callable[[R], bool],
    ) -> Flow[R | None]:
        listing = self._listing(
            resource,
            item,
            filter=filter_eq(attribute, value),
            attributes=None,
            excluded_attributes=None,
            page_size=None,
        )()
        try:
            found = yield from collect(listing)
        except BadRequestError:
            if "+" not in value:
                raise
            # Some servers reject a filter value holding "+": narrow by the parts around
            # it instead, and keep only the exact match below.
            head, _, tail = value.partition("+")
            tail = tail.rpartition("+")[2]
            clauses = [
                f"{attribute} {op} {quote_filter_value(part, attribute)}"
                for op, part in (("sw", head), ("co", tail))
                if part
            ]
            listing = self._listing(
                resource,
                item,
                filter=" and ".join(clauses),
                attributes=None,
                excluded_attributes=None,
                page_size=None,
            )()
            found = yield from collect(listing)
        exact = [r for r in found if matches(r)]
        return exact[0] if exact else None

    def _create(self, resource: str, item: type[R], body: dict[str, Any]) -> Flow[R]:
        reply = yield from request(
            Call(
                method="POST",
                path=f"{self.scim}/{resource}",
                body=body,
                op=OpClass.WRITE,
                idempotent=False,
            )
        )
        return structure(reply.json(), item)

    def _patch(
        self, resource: str, resource_id: str, operations: list[dict[str, Any]]
    ) -> Flow[None]:
        if not operations:
            return
        yield from request(
            Call(
                method="PATCH",
                path=f"{self.scim}/{resource}/{resource_id}",
                body=_patch_body(operations),
                op=OpClass.PATCH,
                idempotent=True,
            )
        )

    def _delete(self, resource: str, resource_id: str, field: str) -> Flow[None]:
        yield from request(
            Call(
                method="DELETE",
                path=f"{self.scim}/{resource}/{check_id(resource_id, field)}",
                op=OpClass.WRITE,
                idempotent=True,
            )
        )

    # -- roles on any principal --------------------------------------------------------------

    def roles(self, kind: PrincipalKind, principal_id: str) -> Flow[tuple[str, ...]]:
        """The roles (`account_admin`, ...) a principal holds directly: one projected GET."""
        record: User | ServicePrincipal | Group
        if kind is PrincipalKind.USER:
            record = yield from self._get("Users", User, principal_id, "user_id", "id,roles")
        elif kind is PrincipalKind.SERVICE_PRINCIPAL:
            record = yield from self._get(
                "ServicePrincipals",
                ServicePrincipal,
                principal_id,
                "service_principal_id",
                "id,roles",
            )
        else:
            record = yield from self._get("Groups", Group, principal_id, "group_id", "id,roles")
        return tuple(dict.fromkeys(role.value for role in record.roles if role.value))

    def add_roles(self, kind: PrincipalKind, principal_id: str, roles: Iterable[str]) -> Flow[None]:
        """Give a principal roles, in one PATCH (a role it holds already is kept)."""
        check_id(principal_id, _ID_FIELDS[kind])
        names = _names(roles, "roles")
        operations = [{"op": "add", "path": "roles", "value": _complex(names)}] if names else []
        return self._patch(kind.scim_resource, principal_id, operations)

    def remove_roles(
        self, kind: PrincipalKind, principal_id: str, roles: Iterable[str]
    ) -> Flow[None]:
        """Take roles from a principal, in one PATCH (one `remove` per role, no `value`).

        A server that refuses to remove a role not held (400 `noTarget`) fails the whole
        PATCH: then the roles are read, and only those held are removed.
        """
        check_id(principal_id, _ID_FIELDS[kind])
        return self._remove_roles(kind, principal_id, _names(roles, "roles"))

    def _remove_roles(self, kind: PrincipalKind, principal_id: str, names: list[str]) -> Flow[None]:
        def operations(which: Iterable[str]) -> list[dict[str, Any]]:
            return [
                {"op": "remove", "path": f"roles[value eq {quote_filter_value(name, 'roles')}]"}
                for name in which
            ]

        try:
            yield from self._patch(kind.scim_resource, principal_id, operations(names))
        except BadRequestError as exc:
            if (exc.error_code or "").lower() != "notarget":
                raise
            held = yield from self.roles(kind, principal_id)
            yield from self._patch(
                kind.scim_resource, principal_id, operations(n for n in names if n in held)
            )

    def deactivate(self, kind: PrincipalKind, principal_id: str) -> Flow[None]:
        """Set `active` to false (the principal can no longer sign in or get tokens)."""
        check_id(principal_id, _ID_FIELDS[kind])
        operations = [{"op": "replace", "path": "active", "value": False}]
        return self._patch(kind.scim_resource, principal_id, operations)

    # -- groups ----------------------------------------------------------------------------

    def list_groups(
        self,
        *,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Callable[[], ScimListing[Group]]:
        """Groups, paged."""
        return self._listing(
            "Groups",
            Group,
            filter=filter,
            attributes=attributes,
            excluded_attributes=excluded_attributes,
            page_size=page_size,
        )

    def get_group(self, group_id: str) -> Flow[Group]:
        """One group with its members."""
        return self._get("Groups", Group, group_id, "group_id")

    def group_summary(self, group_id: str) -> Flow[Group]:
        """One group's id and display name: one GET projected to them (no members)."""
        group = yield from self._get("Groups", Group, group_id, "group_id", "id,displayName")
        return group

    def find_group(self, display_name: str) -> Flow[Group | None]:
        """The group with exactly this display name, or None."""
        return self._find(
            "Groups", Group, "displayName", display_name, lambda g: g.display_name == display_name
        )

    def get_group_by_name(self, display_name: str) -> Flow[Group]:
        """The group with exactly this display name; `NotFoundError` when there is none."""
        group = yield from self.find_group(display_name)
        if group is None:
            raise NotFoundError(404, None, f"no group with display name {display_name!r}")
        return group

    def create_group(self, display_name: str) -> Flow[Group]:
        """Create a group; a name in use raises `ConflictError` (never retried blindly)."""
        if not isinstance(display_name, str) or not display_name.strip():
            raise ConfigError("must be a non-empty string", "display_name")
        reply = yield from request(
            Call(
                method="POST",
                path=f"{self.scim}/Groups",
                body={"schemas": [_GROUP_SCHEMA], "displayName": display_name},
                op=OpClass.WRITE,
                idempotent=False,
            )
        )
        return _members_read(structure(reply.json(), Group))

    def ensure_group(self, display_name: str) -> Flow[Group]:
        """The group of this name, created if missing (a concurrent create is tolerated)."""
        existing = yield from self.find_group(display_name)
        if existing is not None:
            return existing
        try:
            return (yield from self.create_group(display_name))
        except ConflictError:
            existing = yield from self.find_group(display_name)
            if existing is None:
                raise
            return existing

    def delete_group(self, group_id: str) -> Flow[None]:
        """Delete a group."""
        yield from request(
            Call(
                method="DELETE",
                path=f"{self.scim}/Groups/{check_id(group_id, 'group_id')}",
                op=OpClass.WRITE,
                idempotent=True,
            )
        )

    def group_members(self, group_id: str) -> Callable[[], _SinglePage[MemberRef]]:
        """The direct members of a group (one projected GET)."""
        check_id(group_id, "group_id")

        def page() -> Flow[list[MemberRef]]:
            group = yield from self._get("Groups", Group, group_id, "group_id", "id,members")
            return list(group.members or ())

        return lambda: _SinglePage(page)

    def group_member_ids(
        self, group_id: str, *, deadline: float | None = None
    ) -> Flow[frozenset[str]]:
        """The ids of a group's direct members: one GET projected to `members`."""
        group = yield from self._get(
            "Groups", Group, group_id, "group_id", "id,members", deadline=deadline
        )
        return group.member_ids

    def principal_group_ids(
        self, principal: PrincipalRef, *, deadline: float | None = None
    ) -> Flow[frozenset[str]]:
        """The groups a principal is a direct member of: one GET projected to `groups`.

        The cheapest membership read there is for one principal: its own record.
        """
        record: User | ServicePrincipal | Group
        if principal.kind is PrincipalKind.USER:
            record = yield from self._get(
                "Users", User, principal.id, "principal", "id,groups", deadline=deadline
            )
        elif principal.kind is PrincipalKind.SERVICE_PRINCIPAL:
            record = yield from self._get(
                "ServicePrincipals",
                ServicePrincipal,
                principal.id,
                "principal",
                "id,groups",
                deadline=deadline,
            )
        else:
            record = yield from self._get(
                "Groups", Group, principal.id, "principal", "id,groups", deadline=deadline
            )
        return frozenset(g.value for g in record.groups)

    def patch_members(
        self,
        group_id: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        *,
        deadline: float | None = None,
        slot_reserved: bool = False,
    ) -> Flow[None]:
        """One PATCH adding and removing members (ids), whatever their number.

        `slot_reserved`: the caller already waited for this PATCH's throttle slot.
        """
        check_id(group_id, "group_id")
        for member in (*add, *remove):
            check_id(member, "principal_id")
        operations: list[dict[str, Any]] = []
        if add:
            operations += add_members_body(add)["Operations"]
        if remove:
            operations += remove_members_body(remove)["Operations"]
        if not operations:
            return
        body = {"schemas": add_members_body(())["schemas"], "Operations": operations}
        yield from request(
            Call(
                method="PATCH",
                path=f"{self.scim}/Groups/{group_id}",
                body=body,
                op=OpClass.PATCH,
                idempotent=True,
                deadline=deadline,
                slot_reserved=slot_reserved,
            )
        )

    # -- users and service principals ------------------------------------------------------

    def list_users(
        self,
        *,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Callable[[], ScimListing[User]]:
        """Users, paged."""
        return self._listing(
            "Users",
            User,
            filter=filter,
            attributes=attributes,
            excluded_attributes=excluded_attributes,
            page_size=page_size,
        )

    def get_user(self, user_id: str) -> Flow[User]:
        """One user."""
        return self._get("Users", User, user_id, "user_id")

    def find_user(self, user_name: str) -> Flow[User | None]:
        """The user with this user name (compared case-insensitively), or None."""
        wanted = user_name.casefold() if isinstance(user_name, str) else user_name
        return self._find(
            "Users", User, "userName", user_name, lambda u: u.user_name.casefold() == wanted
        )

    def create_user(
        self,
        user_name: str,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> Flow[User]:
        """Create a user; a user name in use raises `ConflictError` (never retried blindly)."""
        body: dict[str, Any] = {
            "schemas": [_USER_SCHEMA],
            "userName": _text(user_name, "user_name"),
        }
        if display_name is not None:
            body["displayName"] = _text(display_name, "display_name")
        name = {
            key: _text(value, field)
            for key, field, value in (
                ("givenName", "given_name", given_name),
                ("familyName", "family_name", family_name),
            )
            if value is not None
        }
        if name:
            body["name"] = name
        if emails is not None:
            addresses = _names(emails, "emails")
            body["emails"] = [
                {"value": email, "type": "work", "primary": i == 0}
                for i, email in enumerate(addresses)
            ]
        body["active"] = _flag(active, "active")
        body.update(_shared_fields(external_id, roles, entitlements))
        return self._create("Users", User, body)

    def update_user(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> Flow[None]:
        """Change the given attributes of a user (one PATCH); the others are kept."""
        check_id(user_id, "user_id")
        operations: list[dict[str, Any]] = []
        for path, field, value in (
            ("displayName", "display_name", display_name),
            ("name.givenName", "given_name", given_name),
            ("name.familyName", "family_name", family_name),
            ("externalId", "external_id", external_id),
        ):
            if value is not None:
                operations.append({"op": "replace", "path": path, "value": _text(value, field)})
        if emails is not None:
            addresses = _names(emails, "emails")
            entries = [
                {"value": email, "type": "work", "primary": i == 0}
                for i, email in enumerate(addresses)
            ]
            operations.append({"op": "replace", "path": "emails", "value": entries})
        if active is not None:
            operations.append({"op": "replace", "path": "active", "value": _flag(active, "active")})
        if not operations:
            raise ConfigError("name at least one attribute to change", "update")
        return self._patch("Users", user_id, operations)

    def delete_user(self, user_id: str) -> Flow[None]:
        """Delete a user (its memberships and workspace assignments go with it)."""
        return self._delete("Users", user_id, "user_id")

    def list_service_principals(
        self,
        *,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Callable[[], ScimListing[ServicePrincipal]]:
        """Service principals, paged."""
        return self._listing(
            "ServicePrincipals",
            ServicePrincipal,
            filter=filter,
            attributes=attributes,
            excluded_attributes=excluded_attributes,
            page_size=page_size,
        )

    def get_service_principal(self, sp_id: str) -> Flow[ServicePrincipal]:
        """One service principal by SCIM id."""
        return self._get("ServicePrincipals", ServicePrincipal, sp_id, "service_principal_id")

    def find_service_principal(self, application_id: str) -> Flow[ServicePrincipal | None]:
        """The service principal with this application id (a UUID), or None."""
        if not isinstance(application_id, str) or not _is_uuid(application_id):
            raise ConfigError(f"{application_id!r} is not a UUID", "application_id")
        wanted = application_id.lower()
        return self._find(
            "ServicePrincipals",
            ServicePrincipal,
            "applicationId",
            application_id,
            lambda sp: sp.application_id.lower() == wanted,
        )

    def create_service_principal(
        self,
        display_name: str,
        *,
        application_id: str | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> Flow[ServicePrincipal]:
        """Create a service principal; Databricks draws its application id unless given.

        An application id in use raises `ConflictError` (never retried blindly).
        """
        body: dict[str, Any] = {
            "schemas": [_SP_SCHEMA],
            "displayName": _text(display_name, "display_name"),
            "active": _flag(active, "active"),
        }
        if application_id is not None:
            if not isinstance(application_id, str) or not _is_uuid(application_id):
                raise ConfigError(f"{application_id!r} is not a UUID", "application_id")
            body["applicationId"] = application_id
        body.update(_shared_fields(external_id, roles, entitlements))
        return self._create("ServicePrincipals", ServicePrincipal, body)

    def update_service_principal(
        self,
        sp_id: str,
        *,
        display_name: str | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> Flow[None]:
        """Change the given attributes of a service principal (one PATCH)."""
        check_id(sp_id, "service_principal_id")
        operations: list[dict[str, Any]] = []
        if display_name is not None:
            operations.append(
                {
                    "op": "replace",
                    "path": "displayName",
                    "value": _text(display_name, "display_name"),
                }
            )
        if external_id is not None:
            operations.append(
                {"op": "replace", "path": "externalId", "value": _text(external_id, "external_id")}
            )
        if active is not None:
            operations.append({"op": "replace", "path": "active", "value": _flag(active, "active")})
        if not operations:
            raise ConfigError("name at least one attribute to change", "update")
        return self._patch("ServicePrincipals", sp_id, operations)

    def delete_service_principal(self, sp_id: str) -> Flow[None]:
        """Delete a service principal (its secrets, memberships and assignments go too)."""
        return self._delete("ServicePrincipals", sp_id, "service_principal_id")

    # -- service principal OAuth secrets ---------------------------------------------------

    def _secrets_path(self, sp_id: str) -> str:
        sid = check_id(sp_id, "service_principal_id")
        return f"{self.account}/servicePrincipals/{sid}/credentials/secrets"

    def create_secret(
        self, sp_id: str, lifetime: dt.timedelta | float | None = None
    ) -> Flow[ServicePrincipalSecret]:
        """A new OAuth secret for a service principal; its value is in the result only."""
        path = self._secrets_path(sp_id)
        body: dict[str, Any] = {}
        if isinstance(lifetime, dt.timedelta):
            lifetime = lifetime.total_seconds()
        if lifetime is not None:
            if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
                raise ConfigError("must be a timedelta or a number of seconds", "lifetime")
            if not 1 <= lifetime <= _MAX_SECRET_LIFETIME:
                raise ConfigError(
                    f"must be from 1 to {_MAX_SECRET_LIFETIME} seconds (730 days)", "lifetime"
                )
            body["lifetime"] = f"{int(lifetime)}s"
        return self._post_secret(path, body)

    def _post_secret(self, path: str, body: dict[str, Any]) -> Flow[ServicePrincipalSecret]:
        reply = yield from request(
            Call(method="POST", path=path, body=body, op=OpClass.WRITE, idempotent=False)
        )
        return structure(reply.json(), ServicePrincipalSecret)

    def list_secrets(self, sp_id: str) -> Callable[[], TokenListing[ServicePrincipalSecret]]:
        """A service principal's OAuth secrets (without their values), every page."""
        path = self._secrets_path(sp_id)
        return lambda: TokenListing(path, "secrets", ServicePrincipalSecret)

    def delete_secret(self, sp_id: str, secret_id: str) -> Flow[None]:
        """Delete one OAuth secret; tokens already issued with it live on until they expire."""
        path = f"{self._secrets_path(sp_id)}/{check_id(secret_id, 'secret_id')}"
        return self._send_delete(path)

    def _send_delete(self, path: str) -> Flow[None]:
        yield from request(Call(method="DELETE", path=path, op=OpClass.WRITE, idempotent=True))

    # -- principals ------------------------------------------------------------------------

    def resolve_principal(self, principal: Principal) -> Flow[PrincipalRef]:
        """A `PrincipalRef` for a model, a reference, a user name or an application id."""
        if isinstance(principal, PrincipalRef):
            check_id(principal.id, "principal")
            return principal
        if isinstance(principal, (User, ServicePrincipal, Group)):
            check_id(principal.id, "principal")
            return principal.ref
        if not isinstance(principal, str) or not principal.strip():
            raise ConfigError(
                "must be a user name, an application id, a model or a PrincipalRef",
                "principal",
            )
        if _is_uuid(principal):
            sp = yield from self.find_service_principal(principal)
            if sp is None:
                raise NotFoundError(
                    404, None, f"no service principal with application id {principal}"
                )
            return sp.ref
        if "@" in principal:
            user = yield from self.find_user(principal)
            if user is None:
                raise NotFoundError(404, None, f"no user with user name {principal!r}")
            return user.ref
        raise ConfigError(
            f"{principal[:80]!r} is neither a user name (an email) nor an application id "
            "(a UUID); pass a model or a PrincipalRef for anything else",
            "principal",
        )

    # -- workspaces ------------------------------------------------------------------------

    def list_workspaces(self) -> Callable[[], _SinglePage[Workspace]]:
        """The account's workspaces (one request: the API returns a bare array)."""

        def page() -> Flow[list[Workspace]]:
            reply = yield from request(
                Call(
                    method="GET",
                    path=f"{self.account}/workspaces",
                    op=OpClass.LIST,
                    idempotent=True,
                )
            )
            data = reply.json() or []
            if not isinstance(data, list):
                raise malformed("workspaces are not a list")
            return [structure(item, Workspace) for item in data]

        return lambda: _SinglePage(page)

    def list_assignments(
        self, workspace_id: int | str
    ) -> Callable[[], TokenListing[PermissionAssignment]]:
        """A workspace's permission assignments, following every `next_page_token`."""
        text = check_workspace_id(workspace_id)
        path = f"{self.account}/workspaces/{text}/permissionassignments"
        return lambda: TokenListing(path, "permission_assignments", PermissionAssignment)

    def workspace_permissions(
        self, workspace_id: int | str
    ) -> Flow[tuple[WorkspacePermission, ...]]:
        """The permissions a workspace offers (`USER`, `ADMIN`), with their descriptions."""
        text = _workspace_id(workspace_id)
        reply = yield from request(
            Call(
                method="GET",
                path=f"{self.account}/workspaces/{text}/permissionassignments/permissions",
                op=OpClass.GET,
                idempotent=True,
            )
        )
        data = reply.json() or {}
        if not isinstance(data, dict):
            raise malformed("workspace permissions are not an object")
        raw = data.get("permissions") or []
        if not isinstance(raw, list):
            raise malformed("permissions is not a list")
        return tuple(structure(item, WorkspacePermission) for item in raw)

    def set_assignment(
        self, workspace_id: int | str, principal_id: str, permissions: Sequence[str]
    ) -> Flow[PermissionAssignment]:
        """Assign a principal to a workspace with exactly these permissions (one PUT)."""
        text = _workspace_id(workspace_id)
        pid = _numeric_principal(principal_id)
        if isinstance(permissions, (str, bytes)):
            raise ConfigError("must be a list such as ['USER'], not a single string", "permissions")
        wanted = list(dict.fromkeys(permissions))
        if not wanted or any(p not in WORKSPACE_PERMISSIONS for p in wanted):
            raise ConfigError(
                f"must be a non-empty list of {', '.join(WORKSPACE_PERMISSIONS)} "
                "(to take every permission away, remove the assignment)",
                "permissions",
            )
        reply = yield from request(
            Call(
                method="PUT",
                path=f"{self.account}/workspaces/{text}/permissionassignments/principals/{pid}",
                body={"permissions": wanted},
                op=OpClass.WRITE,
                idempotent=True,
            )
        )
        data = reply.json()
        if isinstance(data, dict) and isinstance(data.get("principal"), dict):
            return structure(data, PermissionAssignment)
        # An answer without the assignment: it is what was asked for.
        return PermissionAssignment(
            principal=AssignedPrincipal(principal_id=int(pid)), permissions=tuple(wanted)
        )

    def remove_assignment(self, workspace_id: int | str, principal_id: str) -> Flow[None]:
        """Take a principal's assignment to a workspace away (one DELETE)."""
        text = _workspace_id(workspace_id)
        pid = _numeric_principal(principal_id)
        yield from request(
            Call(
                method="DELETE",
                path=f"{self.account}/workspaces/{text}/permissionassignments/principals/{pid}",
                op=OpClass.WRITE,
                idempotent=True,
            )
        )

    # -- group managers (rule sets) --------------------------------------------------------

    def _rule_set_name(self, group_id: str) -> str:
        gid = check_id(group_id, "group_id")
        return f"accounts/{self.config.account_id}/groups/{gid}/ruleSets/default"

    def _sp_rule_set_name(self, application_id: str) -> str:
        if not isinstance(application_id, str) or not _is_uuid(application_id):
            raise ConfigError(f"{application_id!r} is not a UUID", "application_id")
        return (
            f"accounts/{self.config.account_id}/servicePrincipals/{application_id}/ruleSets/default"
        )

    def _read_rule_set(self, name: str) -> Flow[RuleSet]:
        reply = yield from request(
            Call(
                method="GET",
                path=self.rule_sets,
                query=encode_query([("name", name), ("etag", "")]),
                op=OpClass.GET,
                idempotent=True,
            )
        )
        return structure(reply.json(), RuleSet)

    def get_rule_set(self, group_id: str) -> Flow[RuleSet]:
        """A group's rule set, with its etag."""
        return self._read_rule_set(self._rule_set_name(group_id))

    def get_service_principal_rule_set(self, application_id: str) -> Flow[RuleSet]:
        """A service principal's rule set (who may use or manage it), with its etag."""
        return self._read_rule_set(self._sp_rule_set_name(application_id))

    def set_group_managers(self, group_id: str, principals: Iterable[str]) -> Flow[RuleSet]:
        """Make `principals` the group's managers, keeping other roles; etag-safe.

        On a 409 (someone changed the rule set meanwhile) it re-reads and tries again.
        """
        name = self._rule_set_name(group_id)
        return self._set_role_holders(name, {GROUP_MANAGER_ROLE: _rule_principals(principals)})

    def set_service_principal_access(
        self,
        application_id: str,
        *,
        users: Iterable[str] | None = None,
        managers: Iterable[str] | None = None,
    ) -> Flow[RuleSet]:
        """Make these the holders of `servicePrincipal.user` / `.manager`; etag-safe.

        A role left as None keeps its holders; other roles are kept too.
        """
        name = self._sp_rule_set_name(application_id)
        holders: dict[str, tuple[str, ...]] = {}
        if users is not None:
            holders[SERVICE_PRINCIPAL_USER_ROLE] = _rule_principals(users)
        if managers is not None:
            holders[SERVICE_PRINCIPAL_MANAGER_ROLE] = _rule_principals(managers)
        if not holders:
            raise ConfigError("name the users, the managers or both", "users")
        return self._set_role_holders(name, holders)

    def _set_role_holders(self, name: str, holders: dict[str, tuple[str, ...]]) -> Flow[RuleSet]:
        for attempt in range(_RULE_SET_RETRIES):
            current = yield from self._read_rule_set(name)
            rules = [r for r in current.grant_rules if r.role not in holders]
            rules += [GrantRule(role=role, principals=who) for role, who in holders.items() if who]
            body = {
                "name": name,
                "rule_set": {
                    "name": name,
                    "etag": current.etag,
                    "grant_rules": [
                        {"role": r.role, "principals": list(r.principals)} for r in rules
                    ],
                },
            }
            try:
                reply = yield from request(
                    Call(
                        method="PUT",
                        path=self.rule_sets,
                        body=body,
                        op=OpClass.WRITE,
                        idempotent=True,
                    )
                )
            except ConflictError:
                if attempt == _RULE_SET_RETRIES - 1:
                    raise
                continue
            return structure(reply.json(), RuleSet)
        raise AssertionError("unreachable")  # pragma: no cover


def _rule_principals(principals: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(principals))
    for principal in wanted:
        if not isinstance(principal, str) or "/" not in principal:
            raise ConfigError(
                f"{principal!r} is not a rule set principal such as 'users/a@x.com', "
                "'servicePrincipals/<application-id>' or 'groups/<name>'",
                "principals",
            )
    return wanted


def _numeric_principal(principal_id: object) -> str:
    text = check_id(principal_id, "principal")
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{text!r} is not a numeric principal id", "principal")
    return text


_ID_FIELDS = {
    PrincipalKind.USER: "user_id",
    PrincipalKind.SERVICE_PRINCIPAL: "service_principal_id",
    PrincipalKind.GROUP: "group_id",
}


def rule_set_principal(principal: User | ServicePrincipal | Group | str) -> str:
    """The rule set spelling of a principal; strings pass through unchanged.

    `users/<user name>`, `servicePrincipals/<application id>` or `groups/<display name>`.
    """
    if isinstance(principal, User):
        return f"users/{principal.user_name}"
    if isinstance(principal, ServicePrincipal):
        return f"servicePrincipals/{principal.application_id}"
    if isinstance(principal, Group):
        return f"groups/{principal.display_name}"
    return principal
