"""The account's resources as frozen, typed values.

Fields are snake_case; the JSON names live in `_converter.py`, not here. Every model
ignores fields it does not know and defaults the optional ones it does not receive, so a
new server field never breaks a parse.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import attrs

__all__ = [
    "AssignedPrincipal",
    "ComplexValue",
    "GrantRule",
    "Group",
    "ListPage",
    "MemberRef",
    "Name",
    "PermissionAssignment",
    "PrincipalKind",
    "PrincipalRef",
    "RuleSet",
    "ServicePrincipal",
    "ServicePrincipalSecret",
    "User",
    "Workspace",
    "WorkspacePermission",
]

T = TypeVar("T")


class PrincipalKind(enum.Enum):
    """What a principal is: a user, a service principal or a (nested) group."""

    USER = "user"
    SERVICE_PRINCIPAL = "service_principal"
    GROUP = "group"

    @property
    def scim_resource(self) -> str:
        """The SCIM collection of this kind: `Users`, `ServicePrincipals` or `Groups`."""
        return _SCIM_RESOURCE[self]

    @classmethod
    def from_ref(cls, ref: str | None) -> PrincipalKind | None:
        """The kind named by a SCIM `$ref` (`Users/123`, `.../ServicePrincipals/9`), if any."""
        if not ref:
            return None
        head, slash, _ = ref.partition("/")
        if slash and head in _BY_RESOURCE:  # the usual, relative form: fast path
            return _BY_RESOURCE[head]
        parts = ref.rstrip("/").split("/")
        # "$ref" may be relative ("Users/1") or a full URL ending in ".../Users/1".
        for part in reversed(parts[:-1] or parts):
            kind = _BY_RESOURCE.get(part)
            if kind is not None:
                return kind
        return None


_SCIM_RESOURCE = {
    PrincipalKind.USER: "Users",
    PrincipalKind.SERVICE_PRINCIPAL: "ServicePrincipals",
    PrincipalKind.GROUP: "Groups",
}
_BY_RESOURCE = {v: k for k, v in _SCIM_RESOURCE.items()}


def _kind(value: PrincipalKind | str) -> PrincipalKind:
    return value if isinstance(value, PrincipalKind) else PrincipalKind(value)


def render_html(obj: object) -> str:
    """The models' `_repr_html_`: the HTML module loads when a notebook shows one."""
    from databricks_access._util.html import render_html as render  # noqa: PLC0415

    return render(obj)


@attrs.frozen
class PrincipalRef:
    """A principal known by its kind and SCIM id, without its details.

    Example::

        da.PrincipalRef(da.PrincipalKind.USER, "1234567890123456")
    """

    kind: PrincipalKind = attrs.field(converter=_kind)
    id: str

    @property
    def ref(self) -> PrincipalRef:
        """This reference itself, so every principal-like value has a `ref`."""
        return self

    def __str__(self) -> str:
        return f"{self.kind.scim_resource}/{self.id}"


@attrs.frozen(kw_only=True)
class ComplexValue:
    """A SCIM multi-valued attribute entry (a member, a group, a role, an entitlement)."""

    value: str
    display: str | None = None
    primary: bool | None = None
    type: str | None = None
    ref: str | None = None


@attrs.frozen(kw_only=True)
class MemberRef:
    """A direct member of a group, with its kind read from the SCIM `$ref`.

    `kind` is None only when the server sent no usable `$ref`.
    """

    id: str
    display: str | None = None
    kind: PrincipalKind | None = None
    ref: str | None = None

    @property
    def principal(self) -> PrincipalRef | None:
        """The member as a `PrincipalRef`, when its kind is known."""
        return None if self.kind is None else PrincipalRef(self.kind, self.id)


@attrs.frozen(kw_only=True)
class Name:
    """A user's given and family names."""

    given_name: str | None = None
    family_name: str | None = None


@attrs.frozen(kw_only=True)
class User:
    """An account user. `user_name` is usually the email address."""

    _repr_html_ = render_html

    id: str
    user_name: str = ""
    display_name: str | None = None
    active: bool = True
    external_id: str | None = None
    name: Name | None = None
    emails: tuple[ComplexValue, ...] = ()
    groups: tuple[ComplexValue, ...] = ()
    roles: tuple[ComplexValue, ...] = ()
    entitlements: tuple[ComplexValue, ...] = ()

    @property
    def ref(self) -> PrincipalRef:
        """This user as a `PrincipalRef`."""
        return PrincipalRef(PrincipalKind.USER, self.id)


@attrs.frozen(kw_only=True)
class ServicePrincipal:
    """An account service principal, known to OAuth by its `application_id`."""

    _repr_html_ = render_html

    id: str
    application_id: str = ""
    display_name: str | None = None
    active: bool = True
    external_id: str | None = None
    groups: tuple[ComplexValue, ...] = ()
    roles: tuple[ComplexValue, ...] = ()
    entitlements: tuple[ComplexValue, ...] = ()

    @property
    def ref(self) -> PrincipalRef:
        """This service principal as a `PrincipalRef`."""
        return PrincipalRef(PrincipalKind.SERVICE_PRINCIPAL, self.id)


@attrs.frozen(kw_only=True)
class ServicePrincipalSecret:
    """An OAuth secret of a service principal.

    `secret`, the value, is set only in the answer to its creation (Databricks shows it
    once): store it at once. It is kept out of `repr` and comparisons.
    """

    id: str
    secret: str | None = attrs.field(default=None, repr=False, eq=False)
    secret_hash: str | None = None
    status: str | None = None
    create_time: str | None = None
    update_time: str | None = None
    expire_time: str | None = None


@attrs.frozen(kw_only=True)
class Group:
    """An account group.

    `members` tells "not fetched" from "empty": it is None when the read did not include
    the members (`list()`, `find()`, `get_by_name()`: group listings carry no members),
    and a tuple when it did (`get()`, `create()`), empty for a group without members.
    `client.groups.get(group)` reads them; `client.groups.members(group)` lists them.
    """

    _repr_html_ = render_html

    id: str
    display_name: str = ""
    external_id: str | None = None
    members: tuple[MemberRef, ...] | None = attrs.field(
        default=None, metadata={"html_none": "not fetched: client.groups.get(id) reads them"}
    )
    groups: tuple[ComplexValue, ...] = ()
    roles: tuple[ComplexValue, ...] = ()
    entitlements: tuple[ComplexValue, ...] = ()
    resource_type: str | None = None

    @property
    def ref(self) -> PrincipalRef:
        """This group as a `PrincipalRef` (a group can be a member of another)."""
        return PrincipalRef(PrincipalKind.GROUP, self.id)

    @property
    def member_ids(self) -> frozenset[str]:
        """The SCIM ids of the direct members (empty when they were not fetched)."""
        return frozenset(m.id for m in self.members or ())


@attrs.frozen(kw_only=True)
class Workspace:
    """A workspace of the account."""

    _repr_html_ = render_html

    workspace_id: int
    workspace_name: str = ""
    deployment_name: str | None = None
    workspace_status: str | None = None
    cloud: str | None = None
    aws_region: str | None = None
    location: str | None = None


@attrs.frozen(kw_only=True)
class AssignedPrincipal:
    """The principal of a workspace permission assignment; one of the names is set."""

    principal_id: int
    display_name: str | None = None
    user_name: str | None = None
    group_name: str | None = None
    service_principal_name: str | None = None

    @property
    def kind(self) -> PrincipalKind | None:
        """The principal's kind, from whichever name the server filled in."""
        if self.user_name:
            return PrincipalKind.USER
        if self.group_name:
            return PrincipalKind.GROUP
        if self.service_principal_name:
            return PrincipalKind.SERVICE_PRINCIPAL
        return None

    @property
    def ref(self) -> PrincipalRef | None:
        """The principal as a `PrincipalRef`, when its kind is known."""
        kind = self.kind
        return None if kind is None else PrincipalRef(kind, str(self.principal_id))


@attrs.frozen(kw_only=True)
class PermissionAssignment:
    """A principal's permissions (`USER`, `ADMIN`) on one workspace."""

    _repr_html_ = render_html

    principal: AssignedPrincipal
    permissions: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class WorkspacePermission:
    """A permission a workspace offers its principals (`USER`, `ADMIN`), described."""

    permission_level: str
    description: str | None = None


@attrs.frozen(kw_only=True)
class GrantRule:
    """One role of a rule set and the principals holding it (`users/a@x.com`, ...)."""

    role: str
    principals: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class RuleSet:
    """An access-control rule set (who manages a group), with its etag."""

    _repr_html_ = render_html

    name: str
    etag: str = ""
    grant_rules: tuple[GrantRule, ...] = ()


@attrs.frozen(kw_only=True)
class ListPage(Generic[T]):
    """One page of a SCIM list response."""

    items: tuple[T, ...] = ()
    total_results: int | None = None
    start_index: int = 1
    items_per_page: int | None = None


# Resolve the string annotations now, while this module's namespace is the one they
# refer to (the package re-exports these classes under `databricks_access`).
# attrs' stubs before 23.2 bind `resolve_types` to instances, not classes: one typed view.
_resolve_types = cast("Callable[[type[Any]], object]", attrs.resolve_types)
_MODELS: tuple[type[Any], ...] = (
    PrincipalRef,
    ComplexValue,
    MemberRef,
    Name,
    User,
    ServicePrincipal,
    ServicePrincipalSecret,
    Group,
    Workspace,
    AssignedPrincipal,
    PermissionAssignment,
    WorkspacePermission,
    GrantRule,
    RuleSet,
    ListPage,
)
for _cls in _MODELS:
    _resolve_types(_cls)
del _cls
