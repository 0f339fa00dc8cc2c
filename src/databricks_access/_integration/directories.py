"""Identity directories: the IdP as the approval rules need it.

An `IdentityDirectory` turns an IdP attribute value into owners (`owners_for`) and
answers whether a user belongs to an IdP group (`is_member`). `StaticDirectory` answers
from fixed mappings; `DatabricksDirectory` reads the account's own users and groups (for
IdP groups synced by SCIM).

The directories that read the account (`DatabricksDirectory` and its async twin) share one
I/O-free plan per question; only the two small drivers that answer its lookups exist twice.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import attrs

from databricks_access._account.models import Group
from databricks_access._account.scim import filter_eq
from databricks_access._clock import Clock, SystemClock
from databricks_access._durations import seconds
from databricks_access._errors import BadRequestError, ConfigError, ConfigProblem
from databricks_access._integration.owners import (
    Owner,
    OwnerKind,
    OwnerLike,
    identity_key,
    unique_owners,
)
from databricks_access._sansio import Effect, run_async, run_sync
from databricks_access._util.describe import shown

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = [
    "GROUP_ATTRIBUTES",
    "USER_ATTRIBUTES",
    "AsyncDatabricksDirectory",
    "AsyncIdentityDirectory",
    "DatabricksDirectory",
    "IdentityDirectory",
    "StaticDirectory",
]

T = TypeVar("T")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A membership walk visiting more groups than this is a runaway hierarchy: it stops and
# answers "not a member" (never "member").
_MAX_WALK = 1_000
_DEFAULT_TTL = 300.0

USER_ATTRIBUTES = frozenset({"username", "email", "emails", "emails.value", "mail", "user"})
"""IdP attributes (compared case-insensitively) whose value names a user by user name."""
GROUP_ATTRIBUTES = frozenset({"group", "groupname", "group_name", "displayname"})
"""IdP attributes (compared case-insensitively) whose value names an IdP group."""


@runtime_checkable
class IdentityDirectory(Protocol):
    """The identity provider, as the approval rules need it.

    Example:
        >>> class Okta:
        ...     def owners_for(self, attribute: str, value: str) -> Sequence[Owner]:
        ...         return [Owner.user(value)] if attribute == "email" else []
        ...     def is_member(self, user: str, idp_group: str) -> bool:
        ...         return False
        >>> isinstance(Okta(), IdentityDirectory)
        True
    """

    def owners_for(self, attribute: str, value: str) -> Sequence[Owner]:
        """The owners an IdP attribute value names: users or groups; empty if none.

        Raises:
            ConfigError: The directory does not know this attribute.
        """
        ...

    def is_member(self, user: str, idp_group: str) -> bool:
        """Whether the user (by user name) is a member of the IdP group, nested or not."""
        ...


@runtime_checkable
class AsyncIdentityDirectory(Protocol):
    """The async twin of `IdentityDirectory`, for `AsyncIntegration`."""

    async def owners_for(self, attribute: str, value: str) -> Sequence[Owner]:
        """The owners an IdP attribute value names: users or groups; empty if none."""
        ...

    async def is_member(self, user: str, idp_group: str) -> bool:
        """Whether the user (by user name) is a member of the IdP group, nested or not."""
        ...


def _attribute_kind(attribute: str) -> OwnerKind:
    """The kind of owner a standard attribute names, or ConfigError for another one."""
    lowered = attribute.strip().lower() if isinstance(attribute, str) else ""
    if lowered in USER_ATTRIBUTES:
        return OwnerKind.USER
    if lowered in GROUP_ATTRIBUTES:
        return OwnerKind.GROUP
    raise ConfigError(
        f"the directory does not know the attribute {shown(str(attribute))}; use one of "
        "email, userName (a user) or group, displayName (a group)",
        "idp_attribute",
    )


def _usable_name(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and not _CONTROL.search(value)


class StaticDirectory:
    """An identity directory from fixed mappings, for tests and small set-ups.

    `owners_for(attribute, value)` looks the value up in `attributes[attribute]` (both
    case-insensitively). For an attribute not listed there, the standard ones answer by
    themselves: `email`/`userName` name the user with that user name, and
    `group`/`displayName` the IdP group with that name; any other attribute is a
    `ConfigError`.

    `is_member(user, group)` follows `groups`: each IdP group lists its members, a user
    by user name, or a nested group as `group:<name>`. Nesting is followed, cycles
    included; names compare case-insensitively.

    Args:
        attributes: Attribute -> value -> the owners that value names.
        groups: IdP group name -> its members.

    Example:
        >>> directory = StaticDirectory(
        ...     attributes={"costCenter": {"cc-42": ["group:finance-approvers"]}},
        ...     groups={
        ...         "finance-approvers": ["ann@example.com", "group:finance-leads"],
        ...         "finance-leads": ["Bob@Example.com", "group:finance-approvers"],
        ...     },
        ... )
        >>> directory.owners_for("costcenter", "CC-42")
        (Owner(kind=<OwnerKind.GROUP: 'group'>, name='finance-approvers'),)
        >>> directory.owners_for("email", "ann@example.com")
        (Owner(kind=<OwnerKind.USER: 'user'>, name='ann@example.com'),)
        >>> directory.is_member("bob@example.com", "finance-approvers")
        True
    """

    __slots__ = ("_attributes", "_groups")

    def __init__(
        self,
        *,
        attributes: Mapping[str, Mapping[str, Sequence[OwnerLike]]] | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        problems: list[ConfigProblem] = []
        self._attributes: dict[str, dict[str, tuple[Owner, ...]]] = {}
        for attribute, values in (attributes or {}).items():
            table = self._attributes.setdefault(identity_key(attribute), {})
            for value, owners in values.items():
                parsed: list[Owner] = []
                for owner in [owners] if isinstance(owners, str) else owners:
                    try:
                        parsed.append(Owner.parse(owner))
                    except ConfigError as exc:
                        field = f"attributes[{attribute!r}][{value!r}]"
                        problems.extend(ConfigProblem(field, p.message) for p in exc.problems)
                table[identity_key(value)] = unique_owners(parsed)
        self._groups: dict[str, tuple[str, ...]] = {}
        for name, members in (groups or {}).items():
            if isinstance(members, str):
                problems.append(
                    ConfigProblem(f"groups[{name!r}]", "must be a list of members, not a string")
                )
                continue
            listed = tuple(members)
            if not all(isinstance(member, str) for member in listed):
                problems.append(ConfigProblem(f"groups[{name!r}]", "members must be strings"))
                continue
            self._groups[identity_key(name)] = listed
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        return f"StaticDirectory({len(self._attributes)} attributes, {len(self._groups)} groups)"

    def owners_for(self, attribute: str, value: str) -> tuple[Owner, ...]:
        """The owners the mapping lists, or the standard attributes' own answer."""
        table = (
            self._attributes.get(identity_key(attribute)) if isinstance(attribute, str) else None
        )
        if table is not None:
            return table.get(identity_key(value), ()) if isinstance(value, str) else ()
        kind = _attribute_kind(attribute)
        if not _usable_name(value):
            return ()
        return (Owner(kind, value),)

    def is_member(self, user: str, idp_group: str) -> bool:
        """Whether `user` is in `idp_group`, directly or through nested groups."""
        if not _usable_name(user) or not _usable_name(idp_group):
            return False
        wanted = identity_key(user)
        seen = {identity_key(idp_group)}
        queue = deque(seen)
        while queue:
            for member in self._groups.get(queue.popleft(), ()):
                prefix, colon, rest = member.partition(":")
                if colon and prefix.strip().lower() == OwnerKind.GROUP.value:
                    nested = identity_key(rest)
                    if nested not in seen:
                        seen.add(nested)
                        queue.append(nested)
                    continue
                if colon and prefix.strip().lower() == OwnerKind.USER.value:
                    member = rest  # noqa: PLW2901 - the explicit user form
                if identity_key(member) == wanted:
                    return True
        return False


# The lookups a plan asks its driver for, and what they answer.


@attrs.frozen
class _FindUser(Effect["_UserRecord | None"]):
    """-> `_UserRecord | None`: the user with this user name, and its direct groups."""

    name: str

    @property
    def key(self) -> tuple[str, str]:
        return ("user", identity_key(self.name))


@attrs.frozen
class _FindGroup(Effect["_GroupRecord | None"]):
    """-> `_GroupRecord | None`: the account group with this display name."""

    name: str

    @property
    def key(self) -> tuple[str, str]:
        return ("group", identity_key(self.name))


@attrs.frozen
class _ParentGroups(Effect[frozenset[str]]):
    """-> `frozenset[str]`: the ids of the groups this group is a direct member of."""

    group_id: str

    @property
    def key(self) -> tuple[str, str]:
        return ("parents", self.group_id)


_Lookup = _FindUser | _FindGroup | _ParentGroups


@attrs.frozen
class _UserRecord:
    user_name: str
    group_ids: frozenset[str]


@attrs.frozen
class _GroupRecord:
    id: str
    display_name: str


def _owners_plan(attribute: str, value: str) -> Generator[_Lookup, Any, tuple[Owner, ...]]:
    kind = _attribute_kind(attribute)
    if not _usable_name(value):
        return ()
    if kind is OwnerKind.USER:
        user: _UserRecord | None = yield _FindUser(value.strip())
        return () if user is None else (Owner.user(user.user_name),)
    group: _GroupRecord | None = yield _FindGroup(value.strip())
    return () if group is None else (Owner.group(group.display_name),)


def _membership_plan(user: str, idp_group: str) -> Generator[_Lookup, Any, bool]:
    """Walk up from the user's direct groups: cheaper than listing members downwards."""
    if not _usable_name(user) or not _usable_name(idp_group):
        return False
    target: _GroupRecord | None = yield _FindGroup(idp_group.strip())
    if target is None:
        return False
    record: _UserRecord | None = yield _FindUser(user.strip())
    if record is None:
        return False
    seen = set(record.group_ids)
    queue = deque(sorted(seen))
    while queue and len(seen) <= _MAX_WALK:
        group_id = queue.popleft()
        if group_id == target.id:
            return True
        parents: frozenset[str] = yield _ParentGroups(group_id)
        for parent in sorted(parents - seen):
            seen.add(parent)
            queue.append(parent)
    return False


def _pick_group(found: Iterable[Group], name: str) -> _GroupRecord | None:
    """The exact display-name match, else the only case-insensitive one."""
    candidates = [g for g in found if identity_key(g.display_name) == identity_key(name)]
    exact = [g for g in candidates if g.display_name == name]
    chosen = exact or (candidates if len(candidates) == 1 else [])
    return _GroupRecord(chosen[0].id, chosen[0].display_name) if chosen else None


class _TtlCache:
    """Answers kept for `ttl` seconds on the injected clock's monotonic time."""

    def __init__(self, ttl: float, clock: Clock) -> None:
        self._ttl = seconds(ttl, "ttl")
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def get(self, key: tuple[str, str]) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if self._clock.monotonic() >= entry[0]:
                del self._entries[key]
                return False, None
            return True, entry[1]

    def put(self, key: tuple[str, str], value: object) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock.monotonic() + self._ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _DirectoryBase:
    def __init__(self, clock: Clock, ttl: float) -> None:
        self._cache = _TtlCache(ttl, clock)
        self.lookups = 0
        """Lookups answered by the account (not the cache), for tests and tuning."""

    def refresh(self) -> None:
        """Forget every cached answer: the next questions read the account again."""
        self._cache.clear()


class DatabricksDirectory(_DirectoryBase):
    """The account's own users and groups as the identity directory.

    For accounts whose IdP groups are synced into Databricks (SCIM provisioning), the
    account is the directory:

    - `owners_for("email" | "userName", name)`: the account user with that user name
      (case-insensitively), as a user owner shown with the account's spelling.
    - `owners_for("group" | "displayName", name)`: the account group with that display
      name (exact, else the only case-insensitive match), as a group owner.
    - `is_member(user, group_name)`: whether the user is a direct or nested member of the
      account group with that display name. The walk goes up from the user's own
      groups, visits each group once (cycles are harmless) and stops after 1,000 groups.

    Answers are cached for `ttl` seconds on the injected clock (failures are not), so
    directory changes show without a restart once the TTL passes; `refresh()` forgets
    them at once.

    Example::

        directory = da.DatabricksDirectory(client, ttl=300)
        directory.is_member("ann@example.com", "finance-approvers")

    Args:
        client: The account client to read with.
        ttl: Seconds an answer is reused (0 disables the cache).
        clock: The clock the TTL is measured on; default the client's.

    Raises:
        ConfigError: From `owners_for`, for an attribute other than the standard ones.
    """

    def __init__(
        self, client: AccountClient, *, ttl: float = _DEFAULT_TTL, clock: Clock | None = None
    ) -> None:
        super().__init__(clock or getattr(client, "clock", None) or SystemClock(), ttl)
        self._client = client

    def __repr__(self) -> str:
        return f"DatabricksDirectory({self._client!r})"

    def owners_for(self, attribute: str, value: str) -> tuple[Owner, ...]:
        """The account user or group the value names, as an owner; empty if none."""
        return self._run(_owners_plan(attribute, value))

    def is_member(self, user: str, idp_group: str) -> bool:
        """Whether the user is a (direct or nested) member of the named account group."""
        return self._run(_membership_plan(user, idp_group))

    def _run(self, plan: Generator[_Lookup, Any, T]) -> T:
        return run_sync(plan, self._lookup)

    def _lookup(self, step: _Lookup) -> object:
        hit, answer = self._cache.get(step.key)
        if not hit:
            answer = self._fetch(step)
            self.lookups += 1
            self._cache.put(step.key, answer)
        return answer

    def _fetch(self, step: _Lookup) -> object:
        client = self._client
        if isinstance(step, _FindUser):
            user = client.users.find(step.name)
            if user is None:
                return None
            if not user.groups:  # a list may leave groups out: read the record
                user = client.users.get(user.id)
            return _UserRecord(user.user_name or step.name, frozenset(g.value for g in user.groups))
        if isinstance(step, _FindGroup):
            try:
                found = client.groups.list(
                    filter=filter_eq("displayName", step.name), attributes=["id", "displayName"]
                ).collect()
            except BadRequestError:
                # A filter the server refuses (a "+" in the name): `find` narrows it.
                exact = client.groups.find(step.name)
                found = [] if exact is None else [exact]
            return _pick_group(found, step.name)
        return frozenset(g.value for g in client.groups.get(step.group_id).groups)


class AsyncDatabricksDirectory(_DirectoryBase):
    """The async twin of `DatabricksDirectory`, on an `AsyncAccountClient`.

    Example::

        directory = da.AsyncDatabricksDirectory(client)
        await directory.is_member("ann@example.com", "finance-approvers")
    """

    def __init__(
        self,
        client: AsyncAccountClient,
        *,
        ttl: float = _DEFAULT_TTL,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock or getattr(client, "clock", None) or SystemClock(), ttl)
        self._client = client

    def __repr__(self) -> str:
        return f"AsyncDatabricksDirectory({self._client!r})"

    async def owners_for(self, attribute: str, value: str) -> tuple[Owner, ...]:
        """The account user or group the value names, as an owner; empty if none."""
        return await self._run(_owners_plan(attribute, value))

    async def is_member(self, user: str, idp_group: str) -> bool:
        """Whether the user is a (direct or nested) member of the named account group."""
        return await self._run(_membership_plan(user, idp_group))

    async def _run(self, plan: Generator[_Lookup, Any, T]) -> T:
        return await run_async(plan, self._lookup)

    async def _lookup(self, step: _Lookup) -> object:
        hit, answer = self._cache.get(step.key)
        if not hit:
            answer = await self._fetch(step)
            self.lookups += 1
            self._cache.put(step.key, answer)
        return answer

    async def _fetch(self, step: _Lookup) -> object:
        client = self._client
        if isinstance(step, _FindUser):
            user = await client.users.find(step.name)
            if user is None:
                return None
            if not user.groups:
                user = await client.users.get(user.id)
            return _UserRecord(user.user_name or step.name, frozenset(g.value for g in user.groups))
        if isinstance(step, _FindGroup):
            try:
                found = await client.groups.list(
                    filter=filter_eq("displayName", step.name), attributes=["id", "displayName"]
                ).collect()
            except BadRequestError:
                exact = await client.groups.find(step.name)
                found = [] if exact is None else [exact]
            return _pick_group(found, step.name)
        group = await client.groups.get(step.group_id)
        return frozenset(g.value for g in group.groups)
