"""The clients' services for users and service principals, sync and async twins.

`Users` and `ServicePrincipals`, the rule sets that say who may use or manage a service
principal (`ServicePrincipalAccess`), and its OAuth secrets (`ServicePrincipalSecrets`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from databricks_access._account.access_api import rule_set_principal
from databricks_access._account.models import (
    RuleSet,
    ServicePrincipal,
    ServicePrincipalSecret,
    User,
)
from databricks_access._account.pagers import AsyncPager, Pager
from databricks_access._account.services import (
    _SP,
    _USER,
    ManagerLike,
    ServicePrincipalLike,
    UserLike,
    _application_id,
    _sp_id,
    _user_id,
)

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = [
    "AsyncServicePrincipalAccess",
    "AsyncServicePrincipalSecrets",
    "AsyncServicePrincipals",
    "AsyncUsers",
    "ServicePrincipalAccess",
    "ServicePrincipalSecrets",
    "ServicePrincipals",
    "Users",
]


class Users:
    """Account users (`client.users`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Pager[User]:
        """Every user, fetched page by page."""
        return Pager(
            self._driver,
            self._api.list_users(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    def get(self, user_id: str) -> User:
        """One user by SCIM id."""
        return self._run(self._api.get_user(user_id))

    def find(self, user_name: str) -> User | None:
        """The user with this user name (case-insensitive), or None."""
        return self._run(self._api.find_user(user_name))

    def create(
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
    ) -> User:
        """Create a user; raises `ConflictError` if the user name or an email is taken."""
        return self._run(
            self._api.create_user(
                user_name,
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    def update(
        self,
        user_id: UserLike,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        self._run(
            self._api.update_user(
                _user_id(user_id),
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
            )
        )

    def deactivate(self, user_id: UserLike) -> None:
        """Deactivate a user (`active: false`): it keeps its memberships but cannot sign in."""
        self._run(self._api.deactivate(_USER, _user_id(user_id)))

    def delete(self, user_id: UserLike) -> None:
        """Delete a user."""
        self._run(self._api.delete_user(_user_id(user_id)))

    def roles(self, user_id: UserLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return self._run(self._api.roles(_USER, _user_id(user_id)))

    def add_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        self._run(self._api.add_roles(_USER, _user_id(user_id), roles))

    def remove_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        self._run(self._api.remove_roles(_USER, _user_id(user_id), roles))


class AsyncUsers:
    """Account users (`client.users`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncPager[User]:
        """Every user, fetched page by page."""
        return AsyncPager(
            self._driver,
            self._api.list_users(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    async def get(self, user_id: str) -> User:
        """One user by SCIM id."""
        return await self._run(self._api.get_user(user_id))

    async def find(self, user_name: str) -> User | None:
        """The user with this user name (case-insensitive), or None."""
        return await self._run(self._api.find_user(user_name))

    async def create(
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
    ) -> User:
        """Create a user; raises `ConflictError` if the user name or an email is taken."""
        return await self._run(
            self._api.create_user(
                user_name,
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    async def update(
        self,
        user_id: UserLike,
        *,
        display_name: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        emails: Sequence[str] | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        await self._run(
            self._api.update_user(
                _user_id(user_id),
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                emails=emails,
                active=active,
                external_id=external_id,
            )
        )

    async def deactivate(self, user_id: UserLike) -> None:
        """Deactivate a user (`active: false`): it keeps its memberships but cannot sign in."""
        await self._run(self._api.deactivate(_USER, _user_id(user_id)))

    async def delete(self, user_id: UserLike) -> None:
        """Delete a user."""
        await self._run(self._api.delete_user(_user_id(user_id)))

    async def roles(self, user_id: UserLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return await self._run(self._api.roles(_USER, _user_id(user_id)))

    async def add_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        await self._run(self._api.add_roles(_USER, _user_id(user_id), roles))

    async def remove_roles(self, user_id: UserLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        await self._run(self._api.remove_roles(_USER, _user_id(user_id), roles))


class ServicePrincipals:
    """Account service principals (`client.service_principals`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Pager[ServicePrincipal]:
        """Every service principal, fetched page by page."""
        return Pager(
            self._driver,
            self._api.list_service_principals(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    def get(self, service_principal_id: str) -> ServicePrincipal:
        """One service principal by SCIM id."""
        return self._run(self._api.get_service_principal(service_principal_id))

    def find(self, application_id: str) -> ServicePrincipal | None:
        """The service principal with this application id, or None."""
        return self._run(self._api.find_service_principal(application_id))

    def create(
        self,
        display_name: str,
        *,
        application_id: str | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> ServicePrincipal:
        """Create a service principal (Databricks draws the application id unless given).

        Its OAuth secrets are made separately, in the account console or the API.
        """
        return self._run(
            self._api.create_service_principal(
                display_name,
                application_id=application_id,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    def update(
        self,
        service_principal_id: ServicePrincipalLike,
        *,
        display_name: str | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        self._run(
            self._api.update_service_principal(
                _sp_id(service_principal_id),
                display_name=display_name,
                active=active,
                external_id=external_id,
            )
        )

    def deactivate(self, service_principal_id: ServicePrincipalLike) -> None:
        """Deactivate a service principal (`active: false`): it can get no more tokens."""
        self._run(self._api.deactivate(_SP, _sp_id(service_principal_id)))

    def delete(self, service_principal_id: ServicePrincipalLike) -> None:
        """Delete a service principal."""
        self._run(self._api.delete_service_principal(_sp_id(service_principal_id)))

    def roles(self, service_principal_id: ServicePrincipalLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return self._run(self._api.roles(_SP, _sp_id(service_principal_id)))

    def add_roles(self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        self._run(self._api.add_roles(_SP, _sp_id(service_principal_id), roles))

    def remove_roles(
        self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]
    ) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        self._run(self._api.remove_roles(_SP, _sp_id(service_principal_id), roles))


class AsyncServicePrincipals:
    """Account service principals (`client.service_principals`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    def list(
        self,
        filter: str | None = None,  # noqa: A002
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncPager[ServicePrincipal]:
        """Every service principal, fetched page by page."""
        return AsyncPager(
            self._driver,
            self._api.list_service_principals(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    async def get(self, service_principal_id: str) -> ServicePrincipal:
        """One service principal by SCIM id."""
        return await self._run(self._api.get_service_principal(service_principal_id))

    async def find(self, application_id: str) -> ServicePrincipal | None:
        """The service principal with this application id, or None."""
        return await self._run(self._api.find_service_principal(application_id))

    async def create(
        self,
        display_name: str,
        *,
        application_id: str | None = None,
        active: bool = True,
        external_id: str | None = None,
        roles: Iterable[str] = (),
        entitlements: Iterable[str] = (),
    ) -> ServicePrincipal:
        """Create a service principal (Databricks draws the application id unless given).

        Its OAuth secrets are made separately, in the account console or the API.
        """
        return await self._run(
            self._api.create_service_principal(
                display_name,
                application_id=application_id,
                active=active,
                external_id=external_id,
                roles=roles,
                entitlements=entitlements,
            )
        )

    async def update(
        self,
        service_principal_id: ServicePrincipalLike,
        *,
        display_name: str | None = None,
        active: bool | None = None,
        external_id: str | None = None,
    ) -> None:
        """Change the attributes given (one PATCH); those left None are kept."""
        await self._run(
            self._api.update_service_principal(
                _sp_id(service_principal_id),
                display_name=display_name,
                active=active,
                external_id=external_id,
            )
        )

    async def deactivate(self, service_principal_id: ServicePrincipalLike) -> None:
        """Deactivate a service principal (`active: false`): it can get no more tokens."""
        await self._run(self._api.deactivate(_SP, _sp_id(service_principal_id)))

    async def delete(self, service_principal_id: ServicePrincipalLike) -> None:
        """Delete a service principal."""
        await self._run(self._api.delete_service_principal(_sp_id(service_principal_id)))

    async def roles(self, service_principal_id: ServicePrincipalLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return await self._run(self._api.roles(_SP, _sp_id(service_principal_id)))

    async def add_roles(
        self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]
    ) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        await self._run(self._api.add_roles(_SP, _sp_id(service_principal_id), roles))

    async def remove_roles(
        self, service_principal_id: ServicePrincipalLike, roles: Iterable[str]
    ) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        await self._run(self._api.remove_roles(_SP, _sp_id(service_principal_id), roles))


class ServicePrincipalAccess:
    """Who may use or manage each service principal, through its rule set.

    `roles/servicePrincipal.user` lets a principal act as the service principal;
    `roles/servicePrincipal.manager` lets it manage it (`client.service_principal_access`).
    """

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run
        self._api = client._api

    def get(self, service_principal: ServicePrincipalLike) -> RuleSet:
        """The rule set of a service principal (a model, or its application id)."""
        return self._run(
            self._api.get_service_principal_rule_set(_application_id(service_principal))
        )

    def set(
        self,
        service_principal: ServicePrincipalLike,
        *,
        users: Iterable[ManagerLike] | None = None,
        managers: Iterable[ManagerLike] | None = None,
    ) -> RuleSet:
        """Make exactly these its users and/or managers; etag-safe.

        A role left None keeps its holders, and every other role is kept.
        """
        return self._run(
            self._api.set_service_principal_access(
                _application_id(service_principal),
                users=None if users is None else [rule_set_principal(p) for p in users],
                managers=None if managers is None else [rule_set_principal(p) for p in managers],
            )
        )


class AsyncServicePrincipalAccess:
    """Who may use or manage each service principal, through its rule set, async.

    `roles/servicePrincipal.user` lets a principal act as the service principal;
    `roles/servicePrincipal.manager` lets it manage it (`client.service_principal_access`).
    """

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run
        self._api = client._api

    async def get(self, service_principal: ServicePrincipalLike) -> RuleSet:
        """The rule set of a service principal (a model, or its application id)."""
        return await self._run(
            self._api.get_service_principal_rule_set(_application_id(service_principal))
        )

    async def set(
        self,
        service_principal: ServicePrincipalLike,
        *,
        users: Iterable[ManagerLike] | None = None,
        managers: Iterable[ManagerLike] | None = None,
    ) -> RuleSet:
        """Make exactly these its users and/or managers; etag-safe.

        A role left None keeps its holders, and every other role is kept.
        """
        return await self._run(
            self._api.set_service_principal_access(
                _application_id(service_principal),
                users=None if users is None else [rule_set_principal(p) for p in users],
                managers=None if managers is None else [rule_set_principal(p) for p in managers],
            )
        )


class ServicePrincipalSecrets:
    """The OAuth secrets of service principals (`client.service_principal_secrets`).

    A service principal holds at most five; rotate by creating the new one, moving the
    connector to it, then deleting the old one.
    """

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    def create(
        self,
        service_principal: ServicePrincipalLike,
        lifetime: dt.timedelta | float | None = None,
    ) -> ServicePrincipalSecret:
        """A new secret (default lifetime: 730 days); its `secret` value is shown only here.

        Never retried blindly: a retried create could leave a second secret behind.
        """
        return self._run(self._api.create_secret(_sp_id(service_principal), lifetime))

    def list(self, service_principal: ServicePrincipalLike) -> Pager[ServicePrincipalSecret]:
        """Its secrets, without their values, following every page token."""
        return Pager(self._driver, self._api.list_secrets(_sp_id(service_principal)))

    def delete(self, service_principal: ServicePrincipalLike, secret_id: str) -> None:
        """Delete one secret (tokens already issued with it live on until they expire)."""
        self._run(self._api.delete_secret(_sp_id(service_principal), secret_id))


class AsyncServicePrincipalSecrets:
    """The OAuth secrets of service principals (`client.service_principal_secrets`), async.

    A service principal holds at most five; rotate by creating the new one, moving the
    connector to it, then deleting the old one.
    """

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    async def create(
        self,
        service_principal: ServicePrincipalLike,
        lifetime: dt.timedelta | float | None = None,
    ) -> ServicePrincipalSecret:
        """A new secret (default lifetime: 730 days); its `secret` value is shown only here.

        Never retried blindly: a retried create could leave a second secret behind.
        """
        return await self._run(self._api.create_secret(_sp_id(service_principal), lifetime))

    def list(self, service_principal: ServicePrincipalLike) -> AsyncPager[ServicePrincipalSecret]:
        """Its secrets, without their values, following every page token."""
        return AsyncPager(self._driver, self._api.list_secrets(_sp_id(service_principal)))

    async def delete(self, service_principal: ServicePrincipalLike, secret_id: str) -> None:
        """Delete one secret (tokens already issued with it live on until they expire)."""
        await self._run(self._api.delete_secret(_sp_id(service_principal), secret_id))
