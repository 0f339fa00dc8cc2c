"""Every account API operation, as a flow or a listing. No I/O here.

`AccountApi` knows the paths of one account; its methods return flows (`Flow[T]`) for
single operations and listing factories for paged ones. `AccountClient` and
`AsyncAccountClient` run them through their drivers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import attrs

from databricks_access._config import AccountConfig
from databricks_access._converter import malformed, parse_list, structure
from databricks_access._errors import (
    BadRequestError,
    ConfigError,
    ConflictError,
    NotFoundError,
)
from databricks_access._flows import Call, Flow, OpClass, collect, request
from databricks_access._models import (
    GrantRule,
    Group,
    MemberRef,
    PermissionAssignment,
    PrincipalKind,
    PrincipalRef,
    RuleSet,
    ServicePrincipal,
    User,
    Workspace,
)
from databricks_access._scim import (
    ScimPaging,
    add_members_body,
    check_id,
    check_workspace_id,
    encode_query,
    filter_eq,
    quote_filter_value,
    remove_members_body,
)

__all__ = ["GROUP_MANAGER_ROLE", "AccountApi", "Principal", "ScimListing", "TokenListing"]

T = TypeVar("T")
R = TypeVar("R", User, Group, ServicePrincipal)

GROUP_MANAGER_ROLE = "roles/group.manager"
_GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
_DEFAULT_PAGE = 100
_MAX_PAGE_20 = 10_000
_MAX_PAGE_21 = 100
_RULE_SET_RETRIES = 5

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
class TokenListing:
    """Workspace permission assignments, paged by `next_page_token`."""

    path: str
    next_token: str | None = None
    done: bool = False
    seen_tokens: set[str] = attrs.field(factory=set)

    def next_page(self) -> Flow[list[PermissionAssignment]] | None:
        """The flow of the next page, or None when no page token is left."""
        return None if self.done else self._page()

    def _page(self) -> Flow[list[PermissionAssignment]]:
        query = encode_query([("page_token", self.next_token)]) if self.next_token else ""
        reply = yield from request(
            Call(method="GET", path=self.path, query=query, op=OpClass.LIST, idempotent=True)
        )
        data = reply.json() or {}
        if not isinstance(data, dict):
            raise malformed("permission assignments are not an object")
        raw = data.get("permission_assignments") or []
        if not isinstance(raw, list):
            raise malformed("permission_assignments is not a list")
        token = data.get("next_page_token")
        # A token seen before would page forever: treat it as the end.
        if isinstance(token, str) and token and token not in self.seen_tokens:
            self.seen_tokens.add(token)
            self.next_token = token
        else:
            self.done = True
        return [structure(item, PermissionAssignment) for item in raw]


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


def _is_uuid(value: str) -> bool:
    return bool(_UUID.fullmatch(value))


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
        self, resource: str, item: type[R], resource_id: str, field: str, attributes: str = ""
    ) -> Flow[R]:
        path = f"{self.scim}/{resource}/{check_id(resource_id, field)}"
        query = encode_query([("attributes", attributes)]) if attributes else ""
        reply = yield from request(
            Call(method="GET", path=path, query=query, op=OpClass.GET, idempotent=True)
        )
        data = reply.json()
        if isinstance(data, dict) and "id" not in data:
            # A projected read (`attributes=members`) has been seen to drop `id`.
            data = {**data, "id": resource_id}
        return structure(data, item)

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

    def find_group(self, display_name: str) -> Flow[Group | None]:
        """The group with exactly this display name, or None."""
        return self._find(
            "Groups", Group, "displayName", display_name, lambda g: g.display_name == display_name
        )

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
        return structure(reply.json(), Group)

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
            return list(group.members)

        return lambda: _SinglePage(page)

    def group_member_ids(self, group_id: str) -> Flow[frozenset[str]]:
        """The ids of a group's direct members: one GET projected to `members`."""
        group = yield from self._get("Groups", Group, group_id, "group_id", "id,members")
        return group.member_ids

    def principal_group_ids(self, principal: PrincipalRef) -> Flow[frozenset[str]]:
        """The groups a principal is a direct member of: one GET projected to `groups`.

        The cheapest membership read there is for one principal: its own record.
        """
        record: User | ServicePrincipal | Group
        if principal.kind is PrincipalKind.USER:
            record = yield from self._get("Users", User, principal.id, "principal", "id,groups")
        elif principal.kind is PrincipalKind.SERVICE_PRINCIPAL:
            record = yield from self._get(
                "ServicePrincipals", ServicePrincipal, principal.id, "principal", "id,groups"
            )
        else:
            record = yield from self._get("Groups", Group, principal.id, "principal", "id,groups")
        return frozenset(g.value for g in record.groups)

    def patch_members(
        self,
        group_id: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        *,
        deadline: float | None = None,
    ) -> Flow[None]:
        """One PATCH adding and removing members (ids), whatever their number."""
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

    def list_assignments(self, workspace_id: int | str) -> Callable[[], TokenListing]:
        """A workspace's permission assignments, following every `next_page_token`."""
        text = check_workspace_id(workspace_id)
        path = f"{self.account}/workspaces/{text}/permissionassignments"
        return lambda: TokenListing(path)

    # -- group managers (rule sets) --------------------------------------------------------

    def _rule_set_name(self, group_id: str) -> str:
        gid = check_id(group_id, "group_id")
        return f"accounts/{self.config.account_id}/groups/{gid}/ruleSets/default"

    def get_rule_set(self, group_id: str) -> Flow[RuleSet]:
        """A group's rule set, with its etag."""
        name = self._rule_set_name(group_id)
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

    def set_group_managers(self, group_id: str, principals: Iterable[str]) -> Flow[RuleSet]:
        """Make `principals` the group's managers, keeping other roles; etag-safe.

        On a 409 (someone changed the rule set meanwhile) it re-reads and tries again.
        """
        wanted = tuple(dict.fromkeys(principals))
        for principal in wanted:
            if not isinstance(principal, str) or "/" not in principal:
                raise ConfigError(
                    f"{principal!r} is not a rule set principal such as 'users/a@x.com', "
                    "'servicePrincipals/<application-id>' or 'groups/<name>'",
                    "principals",
                )
        name = self._rule_set_name(group_id)
        for attempt in range(_RULE_SET_RETRIES):
            current = yield from self.get_rule_set(group_id)
            rules = [r for r in current.grant_rules if r.role != GROUP_MANAGER_ROLE]
            if wanted:
                rules.append(GrantRule(role=GROUP_MANAGER_ROLE, principals=wanted))
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
