"""Who may reach what: workspace permission assignments and rule sets, as flows. No I/O.

Rule sets name who manages a group (`roles/group.manager`) and who may use or manage a
service principal; each write is etag-safe and keeps the roles it does not touch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from databricks_access._account.flows import Call, Flow, OpClass, request
from databricks_access._account.models import (
    AssignedPrincipal,
    GrantRule,
    Group,
    PermissionAssignment,
    RuleSet,
    ServicePrincipal,
    User,
    Workspace,
    WorkspacePermission,
)
from databricks_access._account.scim import check_id, check_workspace_id, encode_query
from databricks_access._account.scim_api import ScimApi, TokenListing, _is_uuid, _SinglePage
from databricks_access._account.serde import malformed, structure
from databricks_access._errors import ConfigError, ConflictError

__all__ = [
    "GROUP_MANAGER_ROLE",
    "SERVICE_PRINCIPAL_MANAGER_ROLE",
    "SERVICE_PRINCIPAL_USER_ROLE",
    "WORKSPACE_PERMISSIONS",
    "AccessApi",
    "rule_set_principal",
]


GROUP_MANAGER_ROLE = "roles/group.manager"
SERVICE_PRINCIPAL_USER_ROLE = "roles/servicePrincipal.user"
SERVICE_PRINCIPAL_MANAGER_ROLE = "roles/servicePrincipal.manager"
WORKSPACE_PERMISSIONS = ("USER", "ADMIN")


_RULE_SET_RETRIES = 5


def _workspace_id(workspace_id: object) -> str:
    text = str(workspace_id)
    if isinstance(workspace_id, bool) or not isinstance(workspace_id, (int, str)):
        raise ConfigError(f"{workspace_id!r} is not a workspace id", "workspace_id")
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{workspace_id!r} is not a workspace id", "workspace_id")
    return text


class AccessApi(ScimApi):
    """Workspaces, their permission assignments, and rule sets, as flows. Pure."""

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
