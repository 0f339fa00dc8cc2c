"""Who gets what: grants (by principal NAME) joined with the account's groups (by id).

Unity Catalog grants name principals: a group by display name, a user by user name
(email), a service principal by application id; `account users` is the built-in group of
every user and service principal. The account directory (an `Inventory`) maps those names
to principals and says which groups contain which, so:

- `unlocks(group)`: the grants to the group and to every group containing it
  (transitively: a member of G is a member of G's parents);
- `explain_access(principal)`: the grants to the principal, to every group it belongs to
  (nested ones too), and to `account users`, each with its group chain;

and in both, a grant on a catalog or schema reaches every schema and table below it
(metastore grants and ownership are not inherited). Names in grants that match nothing
are reported, never guessed at. Pure functions: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from databricks_access._account.models import (
    Group,
    PrincipalKind,
    PrincipalRef,
    ServicePrincipal,
    User,
)
from databricks_access._catalog._models import SecurableType
from databricks_access._catalog._reports import (
    AccessExplanation,
    GrantedPrivilege,
    UnlocksReport,
    UnmatchedPrincipal,
    sort_rows,
)
from databricks_access._catalog._snapshot import CatalogGrant, CatalogSnapshot, Securable
from databricks_access._discovery.discovery import Inventory
from databricks_access._errors import NotFoundError

__all__ = ["ACCOUNT_USERS", "AccessIndex"]

ACCOUNT_USERS = "account users"
OWNER = "OWNER"

PrincipalLike = User | ServicePrincipal | Group | PrincipalRef | str


def _shown(securable: Securable) -> str:
    return f"{securable.securable_type.value} {securable.full_name}"


def _fold(name: str) -> str:
    return name.casefold()


class AccessIndex:
    """A snapshot and a directory, indexed once for any number of questions."""

    def __init__(self, inventory: Inventory, snapshot: CatalogSnapshot) -> None:
        self.inventory = inventory
        self.snapshot = snapshot
        self._names: dict[str, PrincipalRef] = {}
        for user in inventory.users.values():
            if user.user_name:
                self._names.setdefault(_fold(user.user_name), user.ref)
        for sp in inventory.service_principals.values():
            if sp.application_id:
                self._names.setdefault(_fold(sp.application_id), sp.ref)
        for group in inventory.groups.values():
            if group.display_name:
                self._names.setdefault(_fold(group.display_name), group.ref)
        self._parents: dict[str, list[str]] = {}
        for group_id, members in inventory.members.items():
            for member in members:
                self._parents.setdefault(member.id, []).append(group_id)
        self._grants: dict[str, list[CatalogGrant]] = {}
        for grant in snapshot.grants:
            self._grants.setdefault(_fold(grant.principal), []).append(grant)
        self._children: dict[tuple[str, str], list[Securable]] = {}
        # Ownership: the privilege OWNER on what is owned, never inherited.
        self._owned: dict[str, list[Securable]] = {}
        for securable in snapshot.securables:
            if securable.owner:
                self._owned.setdefault(_fold(securable.owner), []).append(securable)
            parent = securable.parent
            if parent is not None:
                key = (securable.metastore_id, parent)
                self._children.setdefault(key, []).append(securable)
        self._metastore_names = {m.metastore_id: m.name for m in snapshot.metastores}

    # -- names ------------------------------------------------------------------------------

    def unmatched(self) -> tuple[UnmatchedPrincipal, ...]:
        """Names in the grants that match no account group, user or service principal."""
        found: dict[tuple[str, str | None], list[Securable]] = {}
        named = [(g.principal, g.principal_id, g.securable) for g in self.snapshot.grants]
        named += [(s.owner, None, s) for s in self.snapshot.securables if s.owner]
        for name, principal_id, securable in named:
            if name and (_fold(name) in self._names or _fold(name) == ACCOUNT_USERS):
                continue
            found.setdefault((name, principal_id), []).append(securable)
        return tuple(
            UnmatchedPrincipal(
                name=name,
                principal_id=pid,
                grants=len(securables),
                example=_shown(securables[0]),
            )
            for (name, pid), securables in sorted(
                found.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
            )
        )

    def _name_of(self, ref: PrincipalRef) -> str:
        principal = self.inventory.principal(ref.id)
        if isinstance(principal, User):
            return principal.user_name
        if isinstance(principal, ServicePrincipal):
            return principal.application_id
        if isinstance(principal, Group):
            return principal.display_name
        return ""

    def _group_name(self, group_id: str) -> str:
        group = self.inventory.groups.get(group_id)
        return group.display_name if group is not None and group.display_name else group_id

    def resolve_group(self, group: Group | str) -> Group:
        """The group of the directory with this id or display name (or the model's id)."""
        if isinstance(group, Group):
            group = group.id
        found = self.inventory.groups.get(group)
        if found is None:
            ref = self._names.get(_fold(group))
            if ref is not None and ref.kind is PrincipalKind.GROUP:
                found = self.inventory.groups.get(ref.id)
        if found is None:
            raise NotFoundError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"no account group has the id or name {group[:200]!r}",
            )
        return found

    def resolve_principal(self, principal: PrincipalLike) -> PrincipalRef:
        """A principal of the directory: a model, a reference, an id, or a name."""
        if isinstance(principal, (User, ServicePrincipal, Group)):
            return principal.ref
        if isinstance(principal, PrincipalRef):
            return principal
        known = self.inventory.principal(principal)
        if known is not None:
            return known.ref
        ref = self._names.get(_fold(principal))
        if ref is None:
            raise NotFoundError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"no account user, service principal or group is named {principal[:200]!r}",
            )
        return ref

    # -- group chains ---------------------------------------------------------------------

    def _containing(self, start: str) -> dict[str, tuple[str, ...]]:
        """Every group containing `start`, transitively, with the shortest chain of ids."""
        paths: dict[str, tuple[str, ...]] = {}
        pending: deque[tuple[str, tuple[str, ...]]] = deque(
            (parent, (parent,)) for parent in self._parents.get(start, ())
        )
        while pending:
            group_id, path = pending.popleft()
            if group_id in paths or group_id == start:
                continue
            paths[group_id] = path
            pending.extend((p, (*path, p)) for p in self._parents.get(group_id, ()))
        return paths

    def _rows(self, names: Mapping[str, tuple[str, ...]]) -> tuple[GrantedPrivilege, ...]:
        rows: list[GrantedPrivilege] = []
        for name, via in names.items():
            for grant in self._grants.get(_fold(name), ()):
                rows += self._expand(grant, via)
            rows += [
                self._row(owned, owned, OWNER, owned.owner or name, via)
                for owned in self._owned.get(_fold(name), ())
            ]
        return sort_rows(rows)

    def _row(
        self,
        target: Securable,
        on: Securable,
        privilege: str,
        granted_to: str,
        via: tuple[str, ...],
    ) -> GrantedPrivilege:
        return GrantedPrivilege(
            metastore_id=on.metastore_id,
            metastore_name=self._metastore_names.get(on.metastore_id, ""),
            securable_type=target.securable_type,
            securable=target.full_name,
            privilege=privilege,
            granted_on_type=on.securable_type,
            granted_on=on.full_name,
            granted_to=granted_to,
            via=via,
        )

    def _expand(self, grant: CatalogGrant, via: tuple[str, ...]) -> Iterable[GrantedPrivilege]:
        on = grant.securable
        inheriting = on.securable_type in {SecurableType.CATALOG, SecurableType.SCHEMA}
        targets = [on, *self._below(on)] if inheriting else [on]
        for privilege in grant.privileges:
            for target in targets:
                yield self._row(target, on, privilege, grant.principal, via)

    def _below(self, securable: Securable) -> list[Securable]:
        out: list[Securable] = []
        pending = list(self._children.get((securable.metastore_id, securable.full_name), ()))
        while pending:
            child = pending.pop()
            out.append(child)
            pending.extend(self._children.get((child.metastore_id, child.full_name), ()))
        return out

    # -- the answers ------------------------------------------------------------------------

    def _common(self) -> dict[str, object]:
        return {
            "unmatched": self.unmatched(),
            "metastores": self.snapshot.metastores,
            "errors": (*self.inventory.errors, *self.snapshot.errors),
            "include_tables": self.snapshot.include_tables,
            "generated_at": self.snapshot.generated_at,
        }

    def unlocks(self, group: Group | str) -> UnlocksReport:
        """What membership of `group` confers: its grants and its parents' grants."""
        found = self.resolve_group(group)
        names: dict[str, tuple[str, ...]] = {}
        if found.display_name:
            names[found.display_name] = ()
        for group_id, path in self._containing(found.id).items():
            name = self._group_name(group_id)
            names.setdefault(name, tuple(self._group_name(g) for g in path))
        return UnlocksReport(
            group_id=found.id,
            group_name=found.display_name,
            privileges=self._rows(names),
            **self._common(),  # type: ignore[arg-type]
        )

    def explain_access(self, principal: PrincipalLike) -> AccessExplanation:
        """Every privilege `principal` holds, with the group chain behind each."""
        ref = self.resolve_principal(principal)
        own = self._name_of(ref)
        names: dict[str, tuple[str, ...]] = {}
        if own:
            names[own] = ()
        containing = self._containing(ref.id)
        for group_id, path in containing.items():
            names.setdefault(self._group_name(group_id), tuple(self._group_name(g) for g in path))
        if ref.kind is not PrincipalKind.GROUP:
            names.setdefault(ACCOUNT_USERS, (ACCOUNT_USERS,))
        return AccessExplanation(
            principal=ref,
            principal_name=own or ref.id,
            groups=tuple(sorted(self._group_name(g) for g in containing)),
            privileges=self._rows(names),
            **self._common(),  # type: ignore[arg-type]
        )
