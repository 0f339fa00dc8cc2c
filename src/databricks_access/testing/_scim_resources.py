"""SCIM resources: their JSON, their filterable attributes, and `attributes=` projection."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import attrs

from databricks_access.testing._consistency import Snapshot
from databricks_access.testing._scim_filter import Attribute
from databricks_access.testing._state import (
    AccountState,
    Group,
    Kind,
    Principal,
    ServicePrincipal,
    User,
)

__all__ = [
    "FILTER_ATTRIBUTES",
    "LIST_SCHEMA",
    "PATCH_SCHEMA",
    "SCHEMAS",
    "Projection",
    "attribute_name",
    "indexed",
    "records",
    "render",
]

LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCHEMAS: Mapping[Kind, str] = {
    Kind.USER: "urn:ietf:params:scim:schemas:core:2.0:User",
    Kind.GROUP: "urn:ietf:params:scim:schemas:core:2.0:Group",
    Kind.SERVICE_PRINCIPAL: "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal",
}


def attribute_name(raw: str) -> str:
    """The top-level attribute an `attributes=` item names: URN prefix and sub-path dropped."""
    name = raw.strip()
    if name.lower().startswith("urn:"):
        name = name.rsplit(":", 1)[1]
    return name.split(".", 1)[0].casefold()


@attrs.frozen
class Projection:
    """Which top-level attributes a reply keeps (`attributes=`, `excludedAttributes=`).

    Attributes:
        attributes: The attributes asked for (lower case), or None for all.
        excluded: The attributes excluded (lower case).
        keep_id: Whether `id` is always returned, as the SCIM rules say.
    """

    attributes: frozenset[str] | None = None
    excluded: frozenset[str] = frozenset()
    keep_id: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, keep_id: bool) -> Projection:
        """Read the projection from the query parameters of a request."""

        def names(value: str | None) -> frozenset[str]:
            return frozenset(attribute_name(item) for item in (value or "").split(",") if item)

        asked = names(params.get("attributes"))
        return cls(asked or None, names(params.get("excludedAttributes")), keep_id)

    def wants(self, name: str) -> bool:
        """Whether the reply keeps this top-level attribute."""
        key = name.casefold()
        if key == "id" and self.keep_id:
            return True
        if self.attributes is not None and key not in self.attributes:
            return False
        return key not in self.excluded

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource with only the attributes this projection keeps."""
        return {name: value for name, value in resource.items() if self.wants(name)}


def _group_refs(state: AccountState, group_ids: Iterable[str]) -> list[dict[str, str]]:
    groups = state.groups
    return [
        {
            "value": group_id,
            "display": groups[group_id].display_name,
            "$ref": f"Groups/{group_id}",
            "type": "direct",
        }
        for group_id in group_ids
        if group_id in groups
    ]


def _member_refs(state: AccountState, member_ids: Iterable[str]) -> list[dict[str, str]]:
    refs = []
    for member_id in member_ids:
        principal = state.principal(member_id)
        if principal is not None:
            kind = state.kinds[member_id]
            refs.append(
                {
                    "value": member_id,
                    "display": principal.display_name,
                    "$ref": f"{kind.value}/{member_id}",
                }
            )
    return refs


def render(
    state: AccountState,
    principal: Principal,
    memberships: Snapshot,
    projection: Projection,
    *,
    members: bool = True,
) -> dict[str, Any]:
    """The JSON of a resource, projected.

    Args:
        state: The account.
        principal: The resource.
        memberships: The memberships this read sees (stale or true).
        projection: The attributes to keep.
        members: Whether a group may carry `members` at all (a group list may not).
    """
    out: dict[str, Any]
    if isinstance(principal, User):
        out = {
            "schemas": [SCHEMAS[Kind.USER]],
            "id": principal.id,
            "userName": principal.user_name,
            "displayName": principal.display_name,
            "active": principal.active,
        }
        name = {
            key: value
            for key, value in (
                ("givenName", principal.given_name),
                ("familyName", principal.family_name),
            )
            if value is not None
        }
        if name:
            out["name"] = name
        if principal.emails:
            out["emails"] = [
                {"value": email, "type": "work", "primary": index == 0}
                for index, email in enumerate(principal.emails)
            ]
    elif isinstance(principal, ServicePrincipal):
        out = {
            "schemas": [SCHEMAS[Kind.SERVICE_PRINCIPAL]],
            "id": principal.id,
            "applicationId": principal.application_id,
            "displayName": principal.display_name,
            "active": principal.active,
        }
    else:
        out = {
            "schemas": [SCHEMAS[Kind.GROUP]],
            "id": principal.id,
            "displayName": principal.display_name,
            "meta": {"resourceType": "Group"},
        }
        if members and projection.wants("members"):
            refs = _member_refs(state, memberships.members(principal.id))
            if refs:  # an empty group has no `members` key at all
                out["members"] = refs
    if principal.external_id is not None:
        out["externalId"] = principal.external_id
    if projection.wants("groups"):
        refs = _group_refs(state, memberships.parents(principal.id))
        if refs:
            out["groups"] = refs
    if principal.roles:
        # Roles assigned directly (as the console and the API assign them).
        out["roles"] = [{"value": role, "type": "direct"} for role in principal.roles]
    if principal.entitlements:
        out["entitlements"] = [{"value": value} for value in principal.entitlements]
    projected = projection.apply(out)
    if isinstance(principal, ServicePrincipal) and "applicationId" not in projected:
        # The live service returns a service principal's applicationId whatever the
        # projection asks for.
        projected = {"applicationId": principal.application_id, **projected}
    return projected


def _emails(user: User) -> tuple[str, ...]:
    return user.emails


FILTER_ATTRIBUTES: Mapping[Kind, Mapping[str, Attribute[Any]]] = {
    Kind.USER: {
        "id": Attribute[User](lambda user: user.id, case_exact=True),
        "username": Attribute[User](lambda user: user.user_name),
        "displayname": Attribute[User](lambda user: user.display_name),
        "externalid": Attribute[User](lambda user: user.external_id, case_exact=True),
        "active": Attribute[User](lambda user: user.active),
        "emails": Attribute[User](_emails),
        "emails.value": Attribute[User](_emails),
        "name.givenname": Attribute[User](lambda user: user.given_name),
        "name.familyname": Attribute[User](lambda user: user.family_name),
    },
    Kind.GROUP: {
        "id": Attribute[Group](lambda group: group.id, case_exact=True),
        "displayname": Attribute[Group](lambda group: group.display_name),
        "externalid": Attribute[Group](lambda group: group.external_id, case_exact=True),
    },
    Kind.SERVICE_PRINCIPAL: {
        "id": Attribute[ServicePrincipal](lambda sp: sp.id, case_exact=True),
        "applicationid": Attribute[ServicePrincipal](lambda sp: sp.application_id),
        "displayname": Attribute[ServicePrincipal](lambda sp: sp.display_name),
        "externalid": Attribute[ServicePrincipal](lambda sp: sp.external_id, case_exact=True),
        "active": Attribute[ServicePrincipal](lambda sp: sp.active),
    },
}
"""The attributes a filter (and `sortBy`) may name, by kind, lower case."""


def records(state: AccountState, kind: Kind) -> Mapping[str, Principal]:
    """The resources of one kind by id, in creation order."""
    if kind is Kind.USER:
        return state.users
    if kind is Kind.GROUP:
        return state.groups
    return state.service_principals


def indexed(state: AccountState, kind: Kind) -> Callable[[str, str], Collection[str] | None]:
    """An index lookup for `eq` filters on unique attributes of one kind."""
    by_id = records(state, kind)
    unique_names = {
        Kind.USER: ("username", state.user_by_name),
        Kind.GROUP: ("displayname", state.group_by_name),
        Kind.SERVICE_PRINCIPAL: ("applicationid", state.sp_by_application_id),
    }
    indexed_attribute, index = unique_names[kind]

    def lookup(attribute: str, value: str) -> Collection[str] | None:
        if attribute == "id":
            return (value,) if value in by_id else ()
        if attribute != indexed_attribute:
            return None
        found = index.get(value.casefold())
        return () if found is None else (found,)

    return lookup
