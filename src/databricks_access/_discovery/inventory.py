"""What discovery finds: the `Inventory`, who can reach what (`Access`), and its failures.

An `Inventory` answers questions without a request (effective groups, who can access a
workspace, standing members), renders itself as records (CSV/JSON tables) and HTML, and
round-trips through JSON (`to_json`/`from_json`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from databricks_access._account.models import (
    Group,
    MemberRef,
    PermissionAssignment,
    PrincipalKind,
    PrincipalRef,
    ServicePrincipal,
    User,
    Workspace,
)
from databricks_access._account.serde import structure, unstructure
from databricks_access._errors import ApiError, ConfigError, DatabricksAccessError
from databricks_access._leases.results import DriftItem
from databricks_access._leases.values import TERMINAL_STATES, Lease, LeaseState
from databricks_access._util.html import render_table
from databricks_access._util.json import loads

if TYPE_CHECKING:
    from databricks_access._catalog.snapshot import CatalogSnapshot

__all__ = ["Access", "DiscoveryFailure", "Inventory", "PrincipalLike", "RecordKind"]


_FORMAT = "databricks_access.inventory/1"


RecordKind = Literal[
    "groups",
    "users",
    "service_principals",
    "memberships",
    "workspaces",
    "assignments",
    "managers",
    "roles",
    "errors",
]
"""The tables `Inventory.records` produces."""

PrincipalLike = PrincipalRef | User | ServicePrincipal | Group | str
"""A principal: a model, a reference, or a SCIM id."""


@attrs.frozen(kw_only=True)
class DiscoveryFailure:
    """One item discovery could not read; the rest of the inventory is complete.

    Attributes:
        stage: What was being read: `members` (a group's members), `managers` (a group's
            rule set) or `assignments` (a workspace's permission assignments).
        item: The group id or workspace id.
        message: What went wrong.
        status_code: The HTTP status, when the server answered.
        error_code: The server's error code, when it sent one.
    """

    stage: str
    item: str
    message: str
    status_code: int | None = None
    error_code: str | None = None

    @classmethod
    def from_error(cls, stage: str, item: str, error: DatabricksAccessError) -> DiscoveryFailure:
        """The failure of `item` at `stage`, from the error it raised."""
        if isinstance(error, ApiError):
            code = None if error.error_code is None else str(error.error_code)
            return cls(
                stage=stage,
                item=item,
                message=str(error),
                status_code=error.status_code,
                error_code=code,
            )
        return cls(stage=stage, item=item, message=f"{type(error).__name__}: {error}")


@attrs.frozen(kw_only=True)
class Access:
    """A principal's access to a workspace, and the assignment it comes from.

    Attributes:
        workspace_id: The workspace.
        principal: The user or service principal.
        permissions: The permissions of the assignment (`USER`, `ADMIN`).
        via: The groups the access flows through: empty when the principal is assigned
            directly; else the assigned group first, then each nested group down to the
            one the principal is a direct member of (the shortest such path).
        display: The principal's display name (or user name), when known.
    """

    workspace_id: int
    principal: PrincipalRef
    permissions: tuple[str, ...]
    via: tuple[str, ...] = ()
    display: str | None = None

    @property
    def direct(self) -> bool:
        """Whether the principal itself is assigned to the workspace."""
        return not self.via

    @property
    def group_id(self) -> str | None:
        """The assigned group the access comes through, or None for a direct assignment."""
        return self.via[0] if self.via else None

    def to_dict(self) -> dict[str, object]:
        """A flat, JSON-ready record (a row for `pandas.DataFrame`)."""
        return {
            "workspace_id": self.workspace_id,
            "principal_id": self.principal.id,
            "principal_kind": self.principal.kind.value,
            "principal_name": self.display,
            "permissions": ",".join(self.permissions),
            "via": "/".join(self.via),
        }


def _principal_id(principal: PrincipalLike) -> str:
    if isinstance(principal, str):
        return principal
    return principal.id


def _display(principal: User | ServicePrincipal | Group | None) -> str | None:
    if isinstance(principal, User):
        return principal.display_name or principal.user_name or None
    if isinstance(principal, ServicePrincipal):
        return principal.display_name or principal.application_id or None
    if isinstance(principal, Group):
        return principal.display_name or None
    return None


def _values(mapping: object) -> Mapping[str, Any]:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"expected a JSON object, not {type(mapping).__name__}")
    return mapping


@attrs.frozen(kw_only=True, repr=False)
class Inventory:
    """Who holds what in one account, as read by `discover`.

    Mappings are keyed by SCIM id (principals, groups) or workspace id, in the order the
    account listed them. A key missing from `members`, `managers` or `assignments` means
    that part was not read (not requested, or failed: see `errors`); an empty tuple
    means there is none.

    Example::

        inventory = da.discover(client)
        inventory.effective_groups(alice)              # every group, nested ones too
        inventory.who_can_access(workspace_id)         # who, with what, through which group
        pandas.DataFrame(inventory.records("memberships"))

    Attributes:
        generated_at: When the discovery started (UTC); what it read is at least this recent.
        groups: The groups; `members` of each is filled when members were read.
        members: Each group's direct members (users, service principals, groups).
        users: The users, with `roles`.
        service_principals: The service principals, with `roles`.
        workspaces: The workspaces.
        assignments: Each workspace's permission assignments.
        managers: Each group's managers, as rule-set principals (`users/a@x.com`,
            `servicePrincipals/<application id>`, `groups/<name>`).
        roles: The account roles (`account_admin`, ...) of each principal holding any.
        errors: What could not be read; everything else is complete.
        unity_catalog: Unity Catalog's securables and grants, when the discovery was
            asked for them (`unity_catalog=`); not kept by `to_dict`.
    """

    generated_at: dt.datetime
    groups: Mapping[str, Group]
    members: Mapping[str, tuple[MemberRef, ...]]
    users: Mapping[str, User]
    service_principals: Mapping[str, ServicePrincipal]
    workspaces: Mapping[int, Workspace]
    assignments: Mapping[int, tuple[PermissionAssignment, ...]]
    managers: Mapping[str, tuple[str, ...]]
    roles: Mapping[str, tuple[str, ...]]
    errors: tuple[DiscoveryFailure, ...] = ()
    unity_catalog: CatalogSnapshot | None = attrs.field(default=None, eq=False)
    _parents: Mapping[str, tuple[str, ...]] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        parents: dict[str, list[str]] = {}
        for group_id, members in self.members.items():
            for member in members:
                parents.setdefault(member.id, []).append(group_id)
        object.__setattr__(self, "_parents", {k: tuple(v) for k, v in parents.items()})

    def __repr__(self) -> str:
        return (
            f"Inventory(groups={len(self.groups)}, users={len(self.users)}, "
            f"service_principals={len(self.service_principals)}, "
            f"workspaces={len(self.workspaces)}, errors={len(self.errors)}, "
            f"generated_at={self.generated_at.isoformat()!r})"
        )

    # -- questions -------------------------------------------------------------------------

    def principal(self, principal_id: str) -> User | ServicePrincipal | Group | None:
        """The user, service principal or group with this SCIM id, if discovered."""
        return (
            self.users.get(principal_id)
            or self.service_principals.get(principal_id)
            or self.groups.get(principal_id)
        )

    def effective_groups(self, principal: PrincipalLike) -> frozenset[str]:
        """The ids of every group the principal belongs to, directly or through nesting.

        Nesting is followed transitively and cycles are harmless; a group is in its own
        answer only when it belongs to itself through a cycle. An unknown principal
        belongs to no group.
        """
        start = _principal_id(principal)
        found: set[str] = set()
        pending = deque(self._parents.get(start, ()))
        while pending:
            group_id = pending.popleft()
            if group_id in found:
                continue
            found.add(group_id)
            pending.extend(self._parents.get(group_id, ()))
        return frozenset(found)

    def who_can_access(self, workspace: Workspace | int) -> list[Access]:
        """Every user and service principal with access to a workspace, and why.

        Principals assigned directly, and members of assigned groups, nested groups
        followed transitively (cycles are harmless). A principal reached through several
        assignments appears once for each, with that assignment's permissions and the
        shortest group path.

        Raises:
            KeyError: The workspace's assignments, or the members of a group they reach,
                were not discovered (see `errors`): the answer would be incomplete.
        """
        workspace_id = workspace.workspace_id if isinstance(workspace, Workspace) else workspace
        assignments = self.assignments.get(workspace_id)
        if assignments is None:
            raise KeyError(
                f"the assignments of workspace {workspace_id} were not discovered "
                "(not requested, or their listing failed: see Inventory.errors)"
            )
        found: list[Access] = []
        for assignment in assignments:
            assigned = assignment.principal
            principal_id = str(assigned.principal_id)
            kind = assigned.kind or self._kind_of(principal_id)
            if kind is None:
                continue
            permissions = tuple(assignment.permissions)
            if kind is not PrincipalKind.GROUP:
                display = _display(self.principal(principal_id)) or assigned.display_name
                found.append(
                    Access(
                        workspace_id=workspace_id,
                        principal=PrincipalRef(kind, principal_id),
                        permissions=permissions,
                        display=display,
                    )
                )
                continue
            found.extend(self._through_group(workspace_id, principal_id, permissions))
        return found

    def _through_group(
        self, workspace_id: int, group_id: str, permissions: tuple[str, ...]
    ) -> list[Access]:
        found: list[Access] = []
        reached: set[str] = set()
        visited = {group_id}
        pending: deque[tuple[str, tuple[str, ...]]] = deque([(group_id, (group_id,))])
        while pending:
            current, path = pending.popleft()
            if current not in self.members and current in self.groups:
                raise KeyError(
                    f"the members of group {current} were not discovered "
                    "(not requested, or their read failed: see Inventory.errors)"
                )
            for member in self.members.get(current, ()):
                kind = member.kind or self._kind_of(member.id)
                if kind is PrincipalKind.GROUP:
                    if member.id not in visited:
                        visited.add(member.id)
                        pending.append((member.id, (*path, member.id)))
                elif kind is not None and member.id not in reached:
                    reached.add(member.id)
                    found.append(
                        Access(
                            workspace_id=workspace_id,
                            principal=PrincipalRef(kind, member.id),
                            permissions=permissions,
                            via=path,
                            display=_display(self.principal(member.id)) or member.display,
                        )
                    )
        return found

    def _kind_of(self, principal_id: str) -> PrincipalKind | None:
        if principal_id in self.users:
            return PrincipalKind.USER
        if principal_id in self.service_principals:
            return PrincipalKind.SERVICE_PRINCIPAL
        if principal_id in self.groups:
            return PrincipalKind.GROUP
        return None

    def standing_members(
        self,
        managed_groups: Iterable[Group | str],
        leases: Iterable[Lease],
        *,
        consistency_window: dt.timedelta = dt.timedelta(minutes=5),
    ) -> list[DriftItem]:
        """Members of managed groups that no lease accounts for: standing privileges.

        The zero-standing-privilege report, from the inventory instead of fresh reads.
        A membership is accounted for by a lease on the same (principal, group) that is
        granting, active or being revoked, or that was revoked less than
        `consistency_window` before `generated_at` (membership reads can be stale),
        exactly as `LeaseTracker.reconcile` counts.

        Args:
            managed_groups: The groups under lease management (models or ids).
            leases: The leases, e.g. `store.find_leases()` or `tracker.leases()`.
            consistency_window: How long a revoked membership may still be read.

        Returns:
            One `DriftItem` (kind `standing`) per unaccounted direct member.

        Raises:
            KeyError: A group's members were not discovered (see `errors`).
        """
        group_ids = list(dict.fromkeys(g.id if isinstance(g, Group) else g for g in managed_groups))
        missing = [g for g in group_ids if g not in self.members]
        if missing:
            raise KeyError(
                f"the members of group(s) {', '.join(missing)} were not discovered "
                "(not requested, or their read failed: see Inventory.errors)"
            )
        horizon = self.generated_at - consistency_window
        covered: set[tuple[str, str]] = set()
        for lease in leases:
            recently_revoked = (
                lease.state is LeaseState.REVOKED
                and lease.ended_at is not None
                and lease.ended_at >= horizon
            )
            if lease.state not in TERMINAL_STATES or recently_revoked:
                covered.add((lease.principal.id, lease.group_id))
        return [
            DriftItem(
                kind="standing",
                group_id=group_id,
                principal=member.principal,
                principal_id=member.id,
                display=member.display or _display(self.principal(member.id)),
            )
            for group_id in group_ids
            for member in self.members[group_id]
            if (member.id, group_id) not in covered
        ]

    # -- plain data ------------------------------------------------------------------------

    def records(self, kind: RecordKind) -> list[dict[str, object]]:
        """One table of the inventory as a list of flat dicts, ready for `pandas.DataFrame`.

        Kinds: `groups`, `users`, `service_principals`, `memberships` (group, member),
        `workspaces`, `assignments` (workspace, principal, permission), `managers`
        (group, manager), `roles` (principal, role), `errors`. Values are strings,
        numbers, booleans or None.

        Example::

            import pandas as pd
            memberships = pd.DataFrame(inventory.records("memberships"))
        """
        builders = {
            "groups": self._group_records,
            "users": self._user_records,
            "service_principals": self._sp_records,
            "memberships": self._membership_records,
            "workspaces": self._workspace_records,
            "assignments": self._assignment_records,
            "managers": self._manager_records,
            "roles": self._role_records,
            "errors": self._error_records,
        }
        builder = builders.get(kind)
        if builder is None:
            raise ConfigError(f"must be one of {', '.join(builders)}, not {kind!r}", "kind")
        return builder()

    def _group_records(self) -> list[dict[str, object]]:
        return [
            {
                "group_id": group.id,
                "group_name": group.display_name,
                "members": len(self.members[group.id]) if group.id in self.members else None,
                "managers": len(self.managers[group.id]) if group.id in self.managers else None,
                "roles": ",".join(self.roles.get(group.id, ())),
            }
            for group in self.groups.values()
        ]

    def _user_records(self) -> list[dict[str, object]]:
        return [
            {
                "user_id": user.id,
                "user_name": user.user_name,
                "display_name": user.display_name,
                "active": user.active,
                "roles": ",".join(self.roles.get(user.id, ())),
            }
            for user in self.users.values()
        ]

    def _sp_records(self) -> list[dict[str, object]]:
        return [
            {
                "service_principal_id": sp.id,
                "application_id": sp.application_id,
                "display_name": sp.display_name,
                "active": sp.active,
                "roles": ",".join(self.roles.get(sp.id, ())),
            }
            for sp in self.service_principals.values()
        ]

    def _membership_records(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for group_id, members in self.members.items():
            group = self.groups.get(group_id)
            for member in members:
                kind = member.kind or self._kind_of(member.id)
                rows.append(
                    {
                        "group_id": group_id,
                        "group_name": group.display_name if group else None,
                        "member_id": member.id,
                        "member_kind": kind.value if kind else None,
                        "member_name": _display(self.principal(member.id)) or member.display,
                    }
                )
        return rows

    def _workspace_records(self) -> list[dict[str, object]]:
        return [
            {
                "workspace_id": w.workspace_id,
                "workspace_name": w.workspace_name,
                "deployment_name": w.deployment_name,
                "status": w.workspace_status,
                "assignments": len(self.assignments[w.workspace_id])
                if w.workspace_id in self.assignments
                else None,
            }
            for w in self.workspaces.values()
        ]

    def _assignment_records(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for workspace_id, assignments in self.assignments.items():
            workspace = self.workspaces.get(workspace_id)
            for assignment in assignments:
                assigned = assignment.principal
                principal_id = str(assigned.principal_id)
                kind = assigned.kind or self._kind_of(principal_id)
                name = (
                    assigned.display_name
                    or assigned.user_name
                    or assigned.group_name
                    or assigned.service_principal_name
                )
                rows.extend(
                    {
                        "workspace_id": workspace_id,
                        "workspace_name": workspace.workspace_name if workspace else None,
                        "principal_id": principal_id,
                        "principal_kind": kind.value if kind else None,
                        "principal_name": name,
                        "permission": permission,
                    }
                    for permission in assignment.permissions
                )
        return rows

    def _manager_records(self) -> list[dict[str, object]]:
        return [
            {
                "group_id": group_id,
                "group_name": self.groups[group_id].display_name
                if group_id in self.groups
                else None,
                "manager": manager,
            }
            for group_id, managers in self.managers.items()
            for manager in managers
        ]

    def _role_records(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for principal_id, roles in self.roles.items():
            kind = self._kind_of(principal_id)
            rows.extend(
                {
                    "principal_id": principal_id,
                    "principal_kind": kind.value if kind else None,
                    "principal_name": _display(self.principal(principal_id)),
                    "role": role,
                }
                for role in roles
            )
        return rows

    def _error_records(self) -> list[dict[str, object]]:
        return [attrs.asdict(error) for error in self.errors]

    def to_dict(self) -> dict[str, Any]:
        """The whole inventory as JSON-ready data; `Inventory.from_dict` reads it back.

        Models are in the account API's own JSON form (camelCase SCIM resources,
        snake_case REST ones), so the data is also readable without this library.
        """
        return {
            "format": _FORMAT,
            "generated_at": self.generated_at.isoformat(),
            "groups": [unstructure(attrs.evolve(g, members=None)) for g in self.groups.values()],
            "members": {
                group_id: [unstructure(m) for m in members]
                for group_id, members in self.members.items()
            },
            "users": [unstructure(u) for u in self.users.values()],
            "service_principals": [unstructure(sp) for sp in self.service_principals.values()],
            "workspaces": [unstructure(w) for w in self.workspaces.values()],
            "assignments": {
                str(workspace_id): [unstructure(a) for a in assignments]
                for workspace_id, assignments in self.assignments.items()
            },
            "managers": {group_id: list(m) for group_id, m in self.managers.items()},
            "roles": {principal_id: list(r) for principal_id, r in self.roles.items()},
            "errors": [attrs.asdict(error) for error in self.errors],
        }

    def to_json(self, **options: Any) -> str:
        """The inventory as a JSON string (`json.dumps` options accepted, e.g. `indent=2`)."""
        return json.dumps(self.to_dict(), **options)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inventory:
        """Rebuild an inventory written by `to_dict`.

        Raises:
            ValueError: The data is not an inventory of a known format.
        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise ValueError(f"not an inventory of format {_FORMAT!r}")
        try:
            members = {
                str(group_id): tuple(structure(m, MemberRef) for m in raw)
                for group_id, raw in _values(data["members"]).items()
            }
            groups = {}
            for raw in data["groups"]:
                group = structure(raw, Group)
                groups[group.id] = attrs.evolve(group, members=members.get(group.id))
            users = [structure(raw, User) for raw in data["users"]]
            sps = [structure(raw, ServicePrincipal) for raw in data["service_principals"]]
            workspaces = [structure(raw, Workspace) for raw in data["workspaces"]]
            return cls(
                generated_at=dt.datetime.fromisoformat(str(data["generated_at"])),
                groups=groups,
                members=members,
                users={u.id: u for u in users},
                service_principals={sp.id: sp for sp in sps},
                workspaces={w.workspace_id: w for w in workspaces},
                assignments={
                    int(workspace_id): tuple(structure(a, PermissionAssignment) for a in raw)
                    for workspace_id, raw in _values(data["assignments"]).items()
                },
                managers={str(k): tuple(map(str, v)) for k, v in _values(data["managers"]).items()},
                roles={str(k): tuple(map(str, v)) for k, v in _values(data["roles"]).items()},
                errors=tuple(DiscoveryFailure(**e) for e in data["errors"]),
            )
        except (KeyError, TypeError, DatabricksAccessError) as exc:
            raise ValueError(f"not a valid inventory: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Inventory:
        """Rebuild an inventory from `to_json` output."""
        data = loads(text)
        if not isinstance(data, Mapping):
            raise ValueError("not a valid inventory: the JSON is not an object")  # noqa: TRY004 - from_dict raises ValueError too
        return cls.from_dict(data)

    def _repr_html_(self) -> str:
        summary = [
            {"": "groups", "count": len(self.groups)},
            {"": "users", "count": len(self.users)},
            {"": "service principals", "count": len(self.service_principals)},
            {"": "memberships", "count": sum(len(m) for m in self.members.values())},
            {"": "workspaces", "count": len(self.workspaces)},
            {"": "assignments", "count": sum(len(a) for a in self.assignments.values())},
            {"": "principals with roles", "count": len(self.roles)},
            {"": "errors", "count": len(self.errors)},
        ]
        parts = [
            '<div class="databricks-access">',
            render_table(
                summary,
                caption=f"Inventory generated at {self.generated_at.isoformat(timespec='seconds')}",
            ),
            render_table(self._group_records(), caption="Groups", limit=20),
        ]
        if self.errors:
            parts.append(render_table(self._error_records(), caption="Errors", limit=20))
        parts.append("</div>")
        return "".join(parts)
