"""The clients' services for groups, group managers and workspaces, sync and async twins.

Each method is one line over the shared flows of `AccountApi`, run by the client's driver.
The `*Like` aliases and id helpers here are shared with `principals`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from databricks_access._account.access_api import rule_set_principal
from databricks_access._account.models import (
    Group,
    MemberRef,
    PermissionAssignment,
    PrincipalKind,
    PrincipalRef,
    RuleSet,
    ServicePrincipal,
    User,
    Workspace,
    WorkspacePermission,
)
from databricks_access._account.pagers import AsyncPager, Pager
from databricks_access._errors import ConfigError

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = [
    "AsyncGroupManagers",
    "AsyncGroups",
    "AsyncWorkspaceAssignments",
    "AsyncWorkspaces",
    "GroupManagers",
    "Groups",
    "WorkspaceAssignments",
    "Workspaces",
]


GroupLike = Group | str
UserLike = User | str
ServicePrincipalLike = ServicePrincipal | str
MemberLike = str | PrincipalRef | User | ServicePrincipal | Group
ManagerLike = str | User | ServicePrincipal | Group


def _group_id(group: GroupLike) -> str:
    return group.id if isinstance(group, Group) else group


def _user_id(user: UserLike) -> str:
    return user.id if isinstance(user, User) else user


def _sp_id(sp: ServicePrincipalLike) -> str:
    return sp.id if isinstance(sp, ServicePrincipal) else sp


def _application_id(sp: ServicePrincipalLike) -> str:
    return sp.application_id if isinstance(sp, ServicePrincipal) else sp


def _principal_id(principal: MemberLike) -> str:
    return principal if isinstance(principal, str) else principal.id


_USER = PrincipalKind.USER
_SP = PrincipalKind.SERVICE_PRINCIPAL
_GROUP = PrincipalKind.GROUP


def _member_ids(members: Iterable[MemberLike]) -> list[str]:
    if isinstance(members, (str, bytes)):
        raise ConfigError("must be a list of ids, not a single string", "principal_ids")
    return list(dict.fromkeys(m if isinstance(m, str) else m.id for m in members))


class Groups:
    """Account groups (`client.groups`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run  # the client owns its services
        self._driver = client._driver
        self._api = client._api

    def list(
        self,
        filter: str | None = None,  # noqa: A002 - the SCIM parameter's name
        attributes: Sequence[str] | None = None,
        excluded_attributes: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Pager[Group]:
        """Every group, fetched page by page as you iterate (members are not listed)."""
        return Pager(
            self._driver,
            self._api.list_groups(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    def get(self, group_id: GroupLike) -> Group:
        """One group with its direct members."""
        return self._run(self._api.get_group(_group_id(group_id)))

    def find(self, display_name: str) -> Group | None:
        """The group with exactly this display name, or None."""
        return self._run(self._api.find_group(display_name))

    def get_by_name(self, display_name: str) -> Group:
        """The group with exactly this display name; raises `NotFoundError` if there is none.

        Use it where the group is passed on (to `grant`, `submit`, ...): unlike `find`,
        it never hands `None` to the next call.

        Example::

            readers = client.groups.get_by_name("prod-data-readers")
            tracker.grant("alice@example.com", readers, ttl=timedelta(hours=1))
        """
        return self._run(self._api.get_group_by_name(display_name))

    def create(self, display_name: str) -> Group:
        """Create a group; raises `ConflictError` if the name is taken."""
        return self._run(self._api.create_group(display_name))

    def ensure(self, display_name: str) -> Group:
        """The group with this name, created if it does not exist."""
        return self._run(self._api.ensure_group(display_name))

    def delete(self, group_id: GroupLike) -> None:
        """Delete a group."""
        self._run(self._api.delete_group(_group_id(group_id)))

    def members(self, group_id: GroupLike) -> Pager[MemberRef]:
        """The group's direct members, each with its kind."""
        return Pager(self._driver, self._api.group_members(_group_id(group_id)))

    def add_members(self, group_id: GroupLike, principal_ids: Iterable[MemberLike]) -> None:
        """Add principals (ids or models) in one PATCH."""
        self._run(self._api.patch_members(_group_id(group_id), add=_member_ids(principal_ids)))

    def remove_members(self, group_id: GroupLike, principal_ids: Iterable[MemberLike]) -> None:
        """Remove principals (ids or models) in one PATCH."""
        self._run(self._api.patch_members(_group_id(group_id), remove=_member_ids(principal_ids)))

    def roles(self, group_id: GroupLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return self._run(self._api.roles(_GROUP, _group_id(group_id)))

    def add_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        self._run(self._api.add_roles(_GROUP, _group_id(group_id), roles))

    def remove_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        self._run(self._api.remove_roles(_GROUP, _group_id(group_id), roles))


class AsyncGroups:
    """Account groups (`client.groups`), async."""

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
    ) -> AsyncPager[Group]:
        """Every group, fetched page by page as you iterate (members are not listed)."""
        return AsyncPager(
            self._driver,
            self._api.list_groups(
                filter=filter,
                attributes=attributes,
                excluded_attributes=excluded_attributes,
                page_size=page_size,
            ),
        )

    async def get(self, group_id: GroupLike) -> Group:
        """One group with its direct members."""
        return await self._run(self._api.get_group(_group_id(group_id)))

    async def find(self, display_name: str) -> Group | None:
        """The group with exactly this display name, or None."""
        return await self._run(self._api.find_group(display_name))

    async def get_by_name(self, display_name: str) -> Group:
        """The group with exactly this display name; raises `NotFoundError` if there is none."""
        return await self._run(self._api.get_group_by_name(display_name))

    async def create(self, display_name: str) -> Group:
        """Create a group; raises `ConflictError` if the name is taken."""
        return await self._run(self._api.create_group(display_name))

    async def ensure(self, display_name: str) -> Group:
        """The group with this name, created if it does not exist."""
        return await self._run(self._api.ensure_group(display_name))

    async def delete(self, group_id: GroupLike) -> None:
        """Delete a group."""
        await self._run(self._api.delete_group(_group_id(group_id)))

    def members(self, group_id: GroupLike) -> AsyncPager[MemberRef]:
        """The group's direct members, each with its kind."""
        return AsyncPager(self._driver, self._api.group_members(_group_id(group_id)))

    async def add_members(self, group_id: GroupLike, principal_ids: Iterable[MemberLike]) -> None:
        """Add principals (ids or models) in one PATCH."""
        await self._run(
            self._api.patch_members(_group_id(group_id), add=_member_ids(principal_ids))
        )

    async def remove_members(
        self, group_id: GroupLike, principal_ids: Iterable[MemberLike]
    ) -> None:
        """Remove principals (ids or models) in one PATCH."""
        await self._run(
            self._api.patch_members(_group_id(group_id), remove=_member_ids(principal_ids))
        )

    async def roles(self, group_id: GroupLike) -> tuple[str, ...]:
        """The roles (`account_admin`, ...) it holds directly: one projected GET."""
        return await self._run(self._api.roles(_GROUP, _group_id(group_id)))

    async def add_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Give it roles (such as `account_admin`) in one PATCH; held ones are kept."""
        await self._run(self._api.add_roles(_GROUP, _group_id(group_id), roles))

    async def remove_roles(self, group_id: GroupLike, roles: Iterable[str]) -> None:
        """Take roles from it in one PATCH; roles it does not hold are ignored."""
        await self._run(self._api.remove_roles(_GROUP, _group_id(group_id), roles))


class GroupManagers:
    """Who manages each group, through account rule sets (`client.group_managers`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run
        self._api = client._api

    def get(self, group_id: GroupLike) -> RuleSet:
        """The group's rule set; managers hold `roles/group.manager`."""
        return self._run(self._api.get_rule_set(_group_id(group_id)))

    def set(self, group_id: GroupLike, principals: Iterable[ManagerLike]) -> RuleSet:
        """Make exactly `principals` the managers (etag-safe; other roles kept)."""
        names = [rule_set_principal(p) for p in principals]
        return self._run(self._api.set_group_managers(_group_id(group_id), names))


class AsyncGroupManagers:
    """Who manages each group, through account rule sets, async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run
        self._api = client._api

    async def get(self, group_id: GroupLike) -> RuleSet:
        """The group's rule set; managers hold `roles/group.manager`."""
        return await self._run(self._api.get_rule_set(_group_id(group_id)))

    async def set(self, group_id: GroupLike, principals: Iterable[ManagerLike]) -> RuleSet:
        """Make exactly `principals` the managers (etag-safe; other roles kept)."""
        names = [rule_set_principal(p) for p in principals]
        return await self._run(self._api.set_group_managers(_group_id(group_id), names))


class Workspaces:
    """The account's workspaces (`client.workspaces`)."""

    def __init__(self, client: AccountClient) -> None:
        self._driver = client._driver
        self._api = client._api

    def list(self) -> Pager[Workspace]:
        """Every workspace."""
        return Pager(self._driver, self._api.list_workspaces())


class AsyncWorkspaces:
    """The account's workspaces (`client.workspaces`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._driver = client._driver
        self._api = client._api

    def list(self) -> AsyncPager[Workspace]:
        """Every workspace."""
        return AsyncPager(self._driver, self._api.list_workspaces())


class WorkspaceAssignments:
    """Workspace permission assignments (`client.workspace_assignments`)."""

    def __init__(self, client: AccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    def list(self, workspace_id: int | str) -> Pager[PermissionAssignment]:
        """Every assignment of a workspace, following every page token."""
        return Pager(self._driver, self._api.list_assignments(workspace_id))

    def get(self, workspace_id: int | str) -> tuple[WorkspacePermission, ...]:
        """The permissions the workspace offers (`USER`, `ADMIN`), described."""
        return self._run(self._api.workspace_permissions(workspace_id))

    def set(
        self,
        workspace_id: int | str,
        principal: MemberLike,
        permissions: Sequence[str] = ("USER",),
    ) -> PermissionAssignment:
        """Assign a principal (id or model) to the workspace with exactly `permissions`."""
        return self._run(
            self._api.set_assignment(workspace_id, _principal_id(principal), permissions)
        )

    def remove(self, workspace_id: int | str, principal: MemberLike) -> None:
        """Take a principal's workspace assignment away."""
        self._run(self._api.remove_assignment(workspace_id, _principal_id(principal)))


class AsyncWorkspaceAssignments:
    """Workspace permission assignments (`client.workspace_assignments`), async."""

    def __init__(self, client: AsyncAccountClient) -> None:
        self._run = client._driver.run
        self._driver = client._driver
        self._api = client._api

    def list(self, workspace_id: int | str) -> AsyncPager[PermissionAssignment]:
        """Every assignment of a workspace, following every page token."""
        return AsyncPager(self._driver, self._api.list_assignments(workspace_id))

    async def get(self, workspace_id: int | str) -> tuple[WorkspacePermission, ...]:
        """The permissions the workspace offers (`USER`, `ADMIN`), described."""
        return await self._run(self._api.workspace_permissions(workspace_id))

    async def set(
        self,
        workspace_id: int | str,
        principal: MemberLike,
        permissions: Sequence[str] = ("USER",),
    ) -> PermissionAssignment:
        """Assign a principal (id or model) to the workspace with exactly `permissions`."""
        return await self._run(
            self._api.set_assignment(workspace_id, _principal_id(principal), permissions)
        )

    async def remove(self, workspace_id: int | str, principal: MemberLike) -> None:
        """Take a principal's workspace assignment away."""
        await self._run(self._api.remove_assignment(workspace_id, _principal_id(principal)))
