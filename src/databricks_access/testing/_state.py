"""The state of an emulated account: principals, memberships, workspaces, rule sets.

Plain dicts and small records, indexed for the lookups the API needs; JSON is built only
when a resource is read. The uniqueness rules (and their exact conflict messages) live
here, so the API and the builders enforce the same ones.
"""

from __future__ import annotations

import enum
import random
import uuid
from collections.abc import Callable, Iterable

import attrs

from databricks_access.testing._behaviour import Behaviour
from databricks_access.testing._consistency import Change, MembershipHistory, Snapshot
from databricks_access.testing._unity_state import UnityState

__all__ = [
    "ACCOUNT_ADMIN",
    "AccountState",
    "ConflictError",
    "Group",
    "Kind",
    "OAuthSecret",
    "Principal",
    "RuleSet",
    "ServicePrincipal",
    "User",
    "Workspace",
    "cloud_of",
]

GROUP_MANAGER_ROLE = "roles/group.manager"
SP_USER_ROLE = "roles/servicePrincipal.user"
SP_MANAGER_ROLE = "roles/servicePrincipal.manager"
ACCOUNT_ADMIN = "account_admin"


class Kind(enum.Enum):
    """The kinds of principal; the value is the SCIM collection (and `$ref` prefix)."""

    USER = "Users"
    GROUP = "Groups"
    SERVICE_PRINCIPAL = "ServicePrincipals"

    @property
    def resource_type(self) -> str:
        """The SCIM resource type name (`User`, `Group`, `ServicePrincipal`)."""
        return self.value[:-1]


@attrs.define(eq=False)
class User:
    """A user of the account."""

    id: str
    ordinal: int
    user_name: str
    display_name: str
    emails: tuple[str, ...] = ()
    given_name: str | None = None
    family_name: str | None = None
    active: bool = True
    external_id: str | None = None
    roles: list[str] = attrs.Factory(list)
    entitlements: list[str] = attrs.Factory(list)


@attrs.define(eq=False)
class OAuthSecret:
    """One OAuth secret of a service principal; the value is shown only when created.

    Attributes:
        id: The secret's id (what `DELETE .../secrets/{id}` names).
        value: The secret itself.
        created: Epoch seconds of its creation.
        expires: Epoch seconds of its expiry, or None for never.
    """

    id: str
    value: str = attrs.field(repr=False)
    created: float
    expires: float | None = None


@attrs.define(eq=False)
class ServicePrincipal:
    """A service principal, with its OAuth secrets, roles and entitlements."""

    id: str
    ordinal: int
    application_id: str
    display_name: str
    active: bool = True
    external_id: str | None = None
    roles: list[str] = attrs.Factory(list)
    entitlements: list[str] = attrs.Factory(list)
    secrets: list[OAuthSecret] = attrs.Factory(list)

    @property
    def admin(self) -> bool:
        """Whether it holds the account admin role (`roles: [{"value": "account_admin"}]`)."""
        return ACCOUNT_ADMIN in self.roles

    @admin.setter
    def admin(self, admin: bool) -> None:
        if admin and ACCOUNT_ADMIN not in self.roles:
            self.roles.append(ACCOUNT_ADMIN)
        elif not admin and ACCOUNT_ADMIN in self.roles:
            self.roles.remove(ACCOUNT_ADMIN)


@attrs.define(eq=False)
class Group:
    """An account group (its members are kept by `AccountState`)."""

    id: str
    ordinal: int
    display_name: str
    external_id: str | None = None
    roles: list[str] = attrs.Factory(list)
    entitlements: list[str] = attrs.Factory(list)


Principal = User | ServicePrincipal | Group


@attrs.define(eq=False)
class Workspace:
    """A workspace of the account."""

    workspace_id: int
    name: str
    deployment_name: str
    status: str
    created: float


@attrs.define(eq=False)
class RuleSet:
    """The default rule set of a resource: grant rules as (role, principals) pairs."""

    version: int = 0
    grant_rules: tuple[tuple[str, tuple[str, ...]], ...] = ()


class ConflictError(ValueError):
    """A name or application id is taken; the message is the real server's text."""


def cloud_of(host: str) -> str:
    """The cloud an accounts host belongs to (`aws`, `azure` or `gcp`); `aws` if unknown."""
    name = host.partition("://")[2].split("/", 1)[0].split(":", 1)[0].lower()
    if name.endswith((".azuredatabricks.net", ".azuredatabricks.us", ".azuredatabricks.cn")):
        return "azure"
    if name.endswith(".databricks.azure.cn"):
        return "azure"
    if name.endswith(".gcp.databricks.com"):
        return "gcp"
    return "aws"


def _dns_zone(host: str, cloud: str) -> str:
    name = host.partition("://")[2].split("/", 1)[0].split(":", 1)[0].lower()
    for label in ("accounts.", "accounts-dod."):
        if name.startswith(label):
            return name.removeprefix(label)
    return {"azure": "azuredatabricks.net", "gcp": "gcp.databricks.com"}.get(
        cloud, "cloud.databricks.com"
    )


def _key(text: str) -> str:
    return text.casefold()


class AccountState:
    """Everything the emulated account holds. Not thread-safe: the caller locks.

    Args:
        account_id: The account id.
        host: The accounts host URL the emulator answers as (scheme and host).
        behaviour: The initial behaviour switches.
        clock: Epoch seconds.
        rng: Draws ids and application ids, so an emulator is deterministic under a seed.
    """

    def __init__(
        self,
        account_id: str,
        host: str,
        behaviour: Behaviour,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.account_id = account_id
        self.host = host
        self.cloud = cloud_of(host)
        # The DNS zone of workspace hosts (`cloud.databricks.com`): fixed at creation, so a
        # served emulator still recognises realistic workspace hosts.
        self.dns_zone = _dns_zone(host, self.cloud)
        self.clock = clock
        self.rng = rng
        self._behaviour = behaviour
        self.history = MembershipHistory(behaviour.stale_reads)
        self.requests = 0
        self._ordinal = 0
        self._secret_serial = 0
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.service_principals: dict[str, ServicePrincipal] = {}
        self.kinds: dict[str, Kind] = {}
        self.user_by_name: dict[str, str] = {}
        self.user_by_email: dict[str, str] = {}
        self.group_by_name: dict[str, str] = {}
        self.sp_by_application_id: dict[str, str] = {}
        # Insertion-ordered sets (dicts to None): deterministic member order in replies.
        self.members: dict[str, dict[str, None]] = {}
        self.parents: dict[str, dict[str, None]] = {}
        self.workspaces: dict[int, Workspace] = {}
        self.workspace_by_deployment: dict[str, int] = {}
        self.assignments: dict[int, dict[str, tuple[str, ...]]] = {}
        # Keyed by resource: "groups/<id>", "servicePrincipals/<application id>", "".
        self.rule_sets: dict[str, RuleSet] = {}
        self.unity = UnityState()

    @property
    def behaviour(self) -> Behaviour:
        """The behaviour switches in force."""
        return self._behaviour

    @behaviour.setter
    def behaviour(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self.history.configure(behaviour.stale_reads)

    # ---- ids -------------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh 16-digit numeric id, unique across all principals."""
        while True:
            candidate = str(self.rng.randrange(1_000_000_000_000_000, 10_000_000_000_000_000))
            if candidate not in self.kinds:
                return candidate

    def new_uuid(self) -> str:
        """A fresh random (version 4) UUID drawn from the emulator's generator."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _next_ordinal(self) -> int:
        self._ordinal += 1
        return self._ordinal

    # ---- principals ------------------------------------------------------------------

    def principal(self, principal_id: str) -> Principal | None:
        """The principal with this id, of any kind."""
        kind = self.kinds.get(principal_id)
        if kind is Kind.USER:
            return self.users[principal_id]
        if kind is Kind.GROUP:
            return self.groups[principal_id]
        if kind is Kind.SERVICE_PRINCIPAL:
            return self.service_principals[principal_id]
        return None

    def check_user_name(self, user_name: str, emails: Iterable[str], own_id: str = "") -> None:
        """Raise `ConflictError` if another user holds this user name or one of the emails."""
        holder = self.user_by_name.get(_key(user_name))
        if holder is not None and holder != own_id:
            raise ConflictError(f"User with username {user_name} already exists.")
        for email in emails:
            holder = self.user_by_email.get(_key(email))
            if holder is not None and holder != own_id:
                raise ConflictError(f"User with email {email} already exists in this account")

    def check_group_name(self, display_name: str, own_id: str = "") -> None:
        """Raise `ConflictError` if another group holds this display name."""
        holder = self.group_by_name.get(_key(display_name))
        if holder is not None and holder != own_id:
            raise ConflictError(f"Group with name {display_name} already exists.")

    def check_application_id(self, application_id: str) -> None:
        """Raise `ConflictError` if a service principal holds this application id."""
        if _key(application_id) in self.sp_by_application_id:
            raise ConflictError(
                f"Service principal with application ID {application_id} already exists."
            )

    def add_user(
        self,
        user_name: str,
        display_name: str | None = None,
        *,
        emails: Iterable[str] | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        active: bool = True,
        external_id: str | None = None,
    ) -> User:
        """Create a user; its emails default to the user name."""
        mails = tuple(emails) if emails is not None else (user_name,)
        self.check_user_name(user_name, mails)
        user = User(
            id=self.new_id(),
            ordinal=self._next_ordinal(),
            user_name=user_name,
            display_name=display_name if display_name is not None else user_name,
            emails=mails,
            given_name=given_name,
            family_name=family_name,
            active=active,
            external_id=external_id,
        )
        self.users[user.id] = user
        self.kinds[user.id] = Kind.USER
        self._index_user(user)
        return user

    def _index_user(self, user: User) -> None:
        self.user_by_name[_key(user.user_name)] = user.id
        for email in user.emails:
            self.user_by_email[_key(email)] = user.id

    def _unindex_user(self, user: User) -> None:
        self.user_by_name.pop(_key(user.user_name), None)
        for email in user.emails:
            if self.user_by_email.get(_key(email)) == user.id:
                del self.user_by_email[_key(email)]

    def update_user(self, user: User, changes: dict[str, object]) -> None:
        """Apply attribute changes to a user, keeping the indexes right.

        `changes` holds `User` field names; the caller has validated their types and
        checked uniqueness with `check_user_name`.
        """
        self._unindex_user(user)
        for name, value in changes.items():
            setattr(user, name, value)
        self._index_user(user)

    def add_group(self, display_name: str, *, external_id: str | None = None) -> Group:
        """Create an empty group."""
        self.check_group_name(display_name)
        group = Group(self.new_id(), self._next_ordinal(), display_name, external_id)
        self.groups[group.id] = group
        self.kinds[group.id] = Kind.GROUP
        self.group_by_name[_key(display_name)] = group.id
        self.members[group.id] = {}
        return group

    def rename_group(self, group: Group, display_name: str) -> None:
        """Change a group's display name; the caller checked uniqueness."""
        self.group_by_name.pop(_key(group.display_name), None)
        group.display_name = display_name
        self.group_by_name[_key(display_name)] = group.id

    def add_service_principal(
        self,
        display_name: str,
        application_id: str | None = None,
        *,
        active: bool = True,
        external_id: str | None = None,
        admin: bool = False,
    ) -> ServicePrincipal:
        """Create a service principal without secrets."""
        app_id = application_id if application_id is not None else self.new_uuid()
        self.check_application_id(app_id)
        sp = ServicePrincipal(
            id=self.new_id(),
            ordinal=self._next_ordinal(),
            application_id=app_id,
            display_name=display_name,
            active=active,
            external_id=external_id,
            roles=[ACCOUNT_ADMIN] if admin else [],
        )
        self.service_principals[sp.id] = sp
        self.kinds[sp.id] = Kind.SERVICE_PRINCIPAL
        self.sp_by_application_id[_key(app_id)] = sp.id
        return sp

    def add_secret(
        self, sp: ServicePrincipal, value: str, lifetime: float | None = None
    ) -> OAuthSecret:
        """Give a service principal an OAuth secret (the caller draws the value)."""
        self._secret_serial += 1
        now = self.clock()
        secret = OAuthSecret(
            id=f"{self._secret_serial:08d}",
            value=value,
            created=now,
            expires=None if lifetime is None else now + lifetime,
        )
        sp.secrets.append(secret)
        return secret

    def service_principal_by_client_id(self, client_id: str) -> ServicePrincipal | None:
        """The service principal whose application id is this OAuth client id."""
        sp_id = self.sp_by_application_id.get(_key(client_id))
        return None if sp_id is None else self.service_principals[sp_id]

    def delete(self, principal_id: str, *, record: bool) -> None:
        """Delete a principal of any kind, with its memberships, assignments, rule set."""
        kind = self.kinds.pop(principal_id)
        for group_id in list(self.parents.get(principal_id, {})):
            self.remove_member(group_id, principal_id, record=record)
        if kind is Kind.USER:
            self._unindex_user(self.users.pop(principal_id))
        elif kind is Kind.SERVICE_PRINCIPAL:
            sp = self.service_principals.pop(principal_id)
            del self.sp_by_application_id[_key(sp.application_id)]
            self.rule_sets.pop(f"servicePrincipals/{sp.application_id}", None)
        else:
            for member_id in list(self.members[principal_id]):
                self.remove_member(principal_id, member_id, record=record)
            group = self.groups.pop(principal_id)
            del self.group_by_name[_key(group.display_name)]
            del self.members[principal_id]
            self.rule_sets.pop(f"groups/{principal_id}", None)
        self.parents.pop(principal_id, None)
        for assigned in self.assignments.values():
            assigned.pop(principal_id, None)

    def holds_role(self, principal_id: str, role: str) -> bool:
        """Whether a principal holds a role itself or through a group (nested too)."""
        seen: set[str] = set()
        pending = [principal_id]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            principal = self.principal(current)
            if principal is not None and role in principal.roles:
                return True
            pending.extend(self.parents.get(current, {}))
        return False

    def ancestors(self, principal_id: str) -> set[str]:
        """The ids of every group a principal belongs to, directly or through groups."""
        found: set[str] = set()
        pending = list(self.parents.get(principal_id, {}))
        while pending:
            group_id = pending.pop()
            if group_id not in found:
                found.add(group_id)
                pending.extend(self.parents.get(group_id, {}))
        return found

    def assigned_to(self, workspace_id: int, principal_id: str) -> bool:
        """Whether a principal is assigned to a workspace, itself or through a group."""
        assigned = self.assignments.get(workspace_id, {})
        if principal_id in assigned:
            return True
        return any(group_id in assigned for group_id in self.ancestors(principal_id))

    def principal_name(self, principal_id: str) -> str:
        """The name grants use for a principal: user name, application id or group name."""
        kind = self.kinds[principal_id]
        if kind is Kind.USER:
            return self.users[principal_id].user_name
        if kind is Kind.SERVICE_PRINCIPAL:
            return self.service_principals[principal_id].application_id
        return self.groups[principal_id].display_name

    def principal_by_name(self, name: str) -> str | None:
        """The id of the principal grants name so (user name, application id, group)."""
        key = _key(name)
        return (
            self.user_by_name.get(key)
            or self.sp_by_application_id.get(key)
            or self.group_by_name.get(key)
        )

    def display(self, principal_id: str) -> str:
        """The display name of a principal (its user name if it has no display name)."""
        principal = self.principal(principal_id)
        if principal is None:
            return ""
        return principal.display_name

    # ---- memberships -----------------------------------------------------------------

    def add_member(self, group_id: str, member_id: str, *, record: bool) -> bool:
        """Add a principal to a group; True if it was not a member before."""
        members = self.members[group_id]
        if member_id in members:
            return False
        members[member_id] = None
        self.parents.setdefault(member_id, {})[group_id] = None
        if record:
            self._record(group_id, member_id, added=True)
        return True

    def remove_member(self, group_id: str, member_id: str, *, record: bool) -> bool:
        """Remove a principal from a group; True if it was a member before."""
        members = self.members[group_id]
        if member_id not in members:
            return False
        del members[member_id]
        del self.parents[member_id][group_id]
        if record:
            self._record(group_id, member_id, added=False)
        return True

    def set_members(self, group_id: str, member_ids: Iterable[str], *, record: bool) -> None:
        """Make these the members of a group: others leave, new ones join (in order)."""
        wanted = dict.fromkeys(member_ids)
        for member_id in [m for m in self.members[group_id] if m not in wanted]:
            self.remove_member(group_id, member_id, record=record)
        for member_id in wanted:
            self.add_member(group_id, member_id, record=record)

    def _record(self, group_id: str, member_id: str, *, added: bool) -> None:
        self.history.record(Change(self.requests, self.clock(), group_id, member_id, added))

    def fresh(self) -> Snapshot:
        """The true memberships, as a write's own response shows them."""
        return Snapshot(self.members, self.parents, ())

    def snapshot(self) -> Snapshot:
        """The memberships the current read sees: stale if the behaviour says so."""
        return self.history.snapshot(
            self.members, self.parents, request=self.requests, now=self.clock()
        )

    # ---- workspaces and rule sets ----------------------------------------------------

    def add_workspace(
        self,
        name: str,
        *,
        workspace_id: int | None = None,
        deployment_name: str | None = None,
        status: str = "RUNNING",
    ) -> Workspace:
        """Create a workspace with no permission assignments."""
        if workspace_id is None:
            workspace_id = self.rng.randrange(1_000_000_000_000_000, 10_000_000_000_000_000)
            while workspace_id in self.workspaces:
                workspace_id += 1
        elif workspace_id in self.workspaces:
            raise ConflictError(f"Workspace with id {workspace_id} already exists.")
        workspace = Workspace(
            workspace_id=workspace_id,
            name=name,
            deployment_name=deployment_name or f"dbc-{workspace_id % 100_000_000:08x}",
            status=status,
            created=self.clock(),
        )
        self.workspaces[workspace_id] = workspace
        self.workspace_by_deployment.setdefault(workspace.deployment_name.lower(), workspace_id)
        self.assignments[workspace_id] = {}
        return workspace

    def rule_set(self, resource: str) -> RuleSet:
        """The default rule set of a resource (created empty on first use).

        `resource` is the rule set's resource within the account: `groups/<group id>`,
        `servicePrincipals/<application id>`, or `""` for the account itself.
        """
        return self.rule_sets.setdefault(resource, RuleSet())

    def set_grant_rules(
        self, resource: str, grant_rules: Iterable[tuple[str, Iterable[str]]]
    ) -> RuleSet:
        """Replace a resource's grant rules, moving its etag on."""
        rule_set = self.rule_set(resource)
        rule_set.version += 1
        rule_set.grant_rules = tuple((role, tuple(who)) for role, who in grant_rules)
        return rule_set

    def rule_principal_exists(self, principal: str) -> bool:
        """Whether a rule-set principal names a principal of the account.

        Rule-set principals are `users/<user name>`, `servicePrincipals/<application id>`
        or `groups/<display name>`.
        """
        prefix, _, name = principal.partition("/")
        index = {
            "users": self.user_by_name,
            "servicePrincipals": self.sp_by_application_id,
            "groups": self.group_by_name,
        }.get(prefix)
        return index is not None and _key(name) in index
