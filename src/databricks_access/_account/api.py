"""Every account API operation, as a flow or a listing. No I/O here.

`AccountApi` knows the paths of one account; its methods return flows (`Flow[T]`) for
single operations and listing factories for paged ones. Its layers: `scim_api.ScimApi`
(paths and the generic SCIM flows), `access_api.AccessApi` (workspaces and rule sets),
and here groups, users, service principals and their secrets. `AccountClient` and
`AsyncAccountClient` run them through their drivers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from databricks_access._account.access_api import AccessApi
from databricks_access._account.flows import Call, Flow, OpClass, request
from databricks_access._account.models import (
    Group,
    MemberRef,
    PrincipalKind,
    PrincipalRef,
    ServicePrincipal,
    ServicePrincipalSecret,
    User,
)
from databricks_access._account.scim import add_members_body, check_id, remove_members_body
from databricks_access._account.scim_api import (
    ScimListing,
    TokenListing,
    _complex,
    _is_uuid,
    _members_read,
    _names,
    _SinglePage,
    _text,
)
from databricks_access._account.serde import structure
from databricks_access._errors import ConfigError, ConflictError, NotFoundError

__all__ = ["AccountApi", "Principal"]


_GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
_SP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
_MAX_SECRET_LIFETIME = 730 * 24 * 3600


Principal = User | ServicePrincipal | Group | PrincipalRef | str
"""Anything that names a principal: a model, a reference, a user name or an application id."""


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


class AccountApi(AccessApi):
    """The account API of one account, as flows. Pure: safe to share between clients."""

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
