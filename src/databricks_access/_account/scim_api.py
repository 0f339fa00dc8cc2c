"""The SCIM groundwork of the account API: listings, value checks, and `ScimApi`. No I/O here.

`ScimApi` knows the paths of one account and holds the flows every SCIM resource shares:
list, get, find, create, patch and delete, and roles and `active` on any principal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from databricks_access._account.config import AccountConfig
from databricks_access._account.flows import Call, Flow, OpClass, collect, request
from databricks_access._account.models import Group, PrincipalKind, ServicePrincipal, User
from databricks_access._account.scim import (
    PATCH_OP_SCHEMA,
    ScimPaging,
    check_id,
    encode_query,
    filter_eq,
    quote_filter_value,
)
from databricks_access._account.serde import malformed, parse_list, structure
from databricks_access._errors import BadRequestError, ConfigError

__all__ = ["ScimApi", "ScimListing", "TokenListing"]


T = TypeVar("T")
R = TypeVar("R", User, Group, ServicePrincipal)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DEFAULT_PAGE = 100
_MAX_PAGE_20 = 10_000
_MAX_PAGE_21 = 100


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


def _names(values: Iterable[str], field: str) -> list[str]:
    """Role or entitlement names: a collection of non-empty strings, duplicates dropped."""
    if isinstance(values, (str, bytes)):
        raise ConfigError("must be a list of names, not a single string", field)
    try:
        items = list(values)
    except TypeError:
        raise ConfigError("must be a list of names", field) from None
    return list(dict.fromkeys(_text(item, field) for item in items))


def _complex(values: Iterable[str]) -> list[dict[str, str]]:
    return [{"value": value} for value in values]


def _patch_body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP_SCHEMA], "Operations": operations}


def _projection(
    params: list[tuple[str, str]],
    attributes: Sequence[str] | None,
    excluded_attributes: Sequence[str] | None,
) -> None:
    if attributes:
        params.append(("attributes", ",".join(attributes)))
    if excluded_attributes:
        params.append(("excludedAttributes", ",".join(excluded_attributes)))


class ScimApi:
    """The paths of one account and the flows every SCIM resource shares. Pure."""

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


_ID_FIELDS = {
    PrincipalKind.USER: "user_id",
    PrincipalKind.SERVICE_PRINCIPAL: "service_principal_id",
    PrincipalKind.GROUP: "group_id",
}
