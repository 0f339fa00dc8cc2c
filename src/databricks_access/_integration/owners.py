"""Who may approve access to a group: owners, resolvers, tag sources and identity directories.

An `Owner` is an identity-provider (IdP) user or group. An `OwnerResolver` answers the
owners of an account group. Databricks account groups carry no tags, so the resource-owner
rule of an integration ("the group's tag `owner` names the approver by e-mail") reads its
tag value from a `TagSource`, and an `IdentityDirectory` turns that value into owners
(`owners_for`) and answers whether a user belongs to an IdP group (`is_member`).

Identities compare case-insensitively (user names are e-mail addresses): names are
compared by their `casefold()` and shown as given.

The directories that read the account (`DatabricksDirectory` and its async twin) share one
I/O-free plan per question; only the two small drivers that answer its lookups exist twice.
"""

from __future__ import annotations

import enum
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
from databricks_access._sansio import Effect, run_async, run_sync

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = [
    "GROUP_ATTRIBUTES",
    "USER_ATTRIBUTES",
    "AsyncDatabricksDirectory",
    "AsyncIdentityDirectory",
    "AsyncOwnerResolver",
    "AsyncTagOwnerResolver",
    "DatabricksDirectory",
    "DisplayNamePatternTagSource",
    "IdentityDirectory",
    "MappingTagSource",
    "Owner",
    "OwnerKind",
    "OwnerLike",
    "OwnerResolver",
    "ResourceOwnerSetting",
    "StaticDirectory",
    "StaticOwnerResolver",
    "TagOwnerResolver",
    "TagSource",
    "split_tag_value",
]

T = TypeVar("T")

_MAX_NAME = 256
_MAX_TAG_KEY = 128
_MAX_ATTRIBUTE = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An IdP attribute: `email`, `userName`, `emails.value`, or a SCIM extension URN such as
# `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`.
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_.:$-]*")
# A membership walk visiting more groups than this is a runaway hierarchy: it stops and
# answers "not a member" (never "member").
_MAX_WALK = 1_000
_DEFAULT_TTL = 300.0

USER_ATTRIBUTES = frozenset({"username", "email", "emails", "emails.value", "mail", "user"})
"""IdP attributes (compared case-insensitively) whose value names a user by user name."""
GROUP_ATTRIBUTES = frozenset({"group", "groupname", "group_name", "displayname"})
"""IdP attributes (compared case-insensitively) whose value names an IdP group."""


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _key(name: str) -> str:
    return name.strip().casefold()


# -- owners ----------------------------------------------------------------------------------


class OwnerKind(enum.Enum):
    """What an owner is: an IdP user (by user name, an e-mail) or an IdP group (by name)."""

    USER = "user"
    GROUP = "group"


def _owner_kind(value: OwnerKind | str) -> OwnerKind:
    if isinstance(value, OwnerKind):
        return value
    if isinstance(value, str):
        for kind in OwnerKind:
            if kind.value == value.strip().lower():
                return kind
    raise ConfigError(f"the kind must be 'user' or 'group', not {value!r}", "owner")


def _name_problem(kind: OwnerKind, name: object) -> str | None:
    if not isinstance(name, str):
        return f"the name must be a string, not {type(name).__name__}"
    text = name.strip()
    if not text:
        return f"the {kind.value} name is empty"
    if len(text) > _MAX_NAME:
        return f"the {kind.value} name is longer than {_MAX_NAME} characters"
    if _CONTROL.search(text):
        return f"the {kind.value} name {_shown(text)} contains a control character"
    if kind is OwnerKind.USER and any(char.isspace() for char in text):
        return f"the user name {_shown(text)} contains whitespace; a user name is an e-mail"
    return None


@attrs.frozen(eq=False)
class Owner:
    """An IdP user or group who may approve access.

    Owners compare case-insensitively by kind and name (`casefold`), and keep the name
    as given for display. `str(owner)` is the parseable form `user:<name>` or
    `group:<name>`.

    Args:
        kind: `OwnerKind.USER` (or `"user"`) for a user named by user name (e-mail);
            `OwnerKind.GROUP` (or `"group"`) for an IdP group named by its name.
        name: The user name or group name; surrounding whitespace is removed.

    Raises:
        ConfigError: The kind or name is invalid (a user name with whitespace, an empty
            name, a control character, more than 256 characters).

    Example:
        >>> alice = Owner("user", "Alice@Example.com")
        >>> alice == Owner.parse("user:alice@example.com"), str(alice)
        (True, 'user:Alice@Example.com')
        >>> Owner.parse("group:Data Owners").kind
        <OwnerKind.GROUP: 'group'>
        >>> Owner.parse("bob@example.com")  # a bare e-mail is a user
        Owner(kind=<OwnerKind.USER: 'user'>, name='bob@example.com')
    """

    kind: OwnerKind = attrs.field(converter=_owner_kind)
    name: str

    def __attrs_post_init__(self) -> None:
        problem = _name_problem(self.kind, self.name)
        if problem is not None:
            raise ConfigError(problem, "owner")
        object.__setattr__(self, "name", self.name.strip())

    @classmethod
    def user(cls, name: str) -> Owner:
        """An owner that is an IdP user, by user name (e-mail)."""
        return cls(OwnerKind.USER, name)

    @classmethod
    def group(cls, name: str) -> Owner:
        """An owner that is an IdP group, by name."""
        return cls(OwnerKind.GROUP, name)

    @classmethod
    def parse(cls, text: OwnerLike) -> Owner:
        """An owner from `user:<name>`, `group:<name>`, a bare e-mail, or an `Owner`.

        The prefix is case-insensitive. A bare value is a user only when it contains `@`
        (an e-mail); any other bare value is ambiguous and refused.

        Raises:
            ConfigError: The text is not one of these forms (field `owner`).
        """
        if isinstance(text, Owner):
            return text
        if not isinstance(text, str):
            raise ConfigError(
                f"an owner must be a string like 'user:a@example.com' or "
                f"'group:data-owners', not {type(text).__name__}",
                "owner",
            )
        prefix, colon, rest = text.strip().partition(":")
        if colon and prefix.strip().lower() in {kind.value for kind in OwnerKind}:
            return cls(prefix.strip().lower(), rest)
        stripped = text.strip()
        if "@" in stripped and not colon:
            return cls(OwnerKind.USER, stripped)
        raise ConfigError(
            f"{_shown(stripped)} is not an owner; write 'user:<user name>' for a user "
            "or 'group:<group name>' for an IdP group",
            "owner",
        )

    @property
    def key(self) -> tuple[OwnerKind, str]:
        """What owners compare by: the kind and the case-folded name."""
        return (self.kind, _key(self.name))

    def matches_user(self, identity: str) -> bool:
        """Whether this is a user owner with this user name (case-insensitively)."""
        return (
            self.kind is OwnerKind.USER
            and isinstance(identity, str)
            and bool(identity.strip())
            and _key(identity) == self.key[1]
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Owner):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


OwnerLike = Owner | str
"""An `Owner`, or its text form (`user:a@x.com`, `group:data-owners`, a bare e-mail)."""


def _dedupe(owners: Iterable[Owner]) -> tuple[Owner, ...]:
    return tuple(dict.fromkeys(owners))


# -- the resource owner setting ----------------------------------------------------------------


def _text_problem(value: object, what: str, limit: int) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    text = value.strip()
    if not text:
        return f"is empty; give the {what}"
    if len(text) > limit:
        return f"is longer than {limit} characters"
    if _CONTROL.search(text):
        return "contains a control character"
    return None


@attrs.frozen
class ResourceOwnerSetting:
    """Which tag of a group names its owner, and which IdP attribute that value is.

    Args:
        tag_key: The tag whose value names the owner (`owner`, `data-steward`).
        idp_attribute: The IdP attribute the tag value is compared with: `email` or
            `userName` for a user, `group` or `displayName` for an IdP group, or any
            attribute a custom `IdentityDirectory` understands.

    Raises:
        ConfigError: A field is empty, too long, or malformed; problems name
            `resource_owner.tag_key` and `resource_owner.idp_attribute`.

    Example:
        >>> ResourceOwnerSetting("owner", "email")
        ResourceOwnerSetting(tag_key='owner', idp_attribute='email')
    """

    tag_key: str
    idp_attribute: str

    def __attrs_post_init__(self) -> None:
        problems: list[ConfigProblem] = []
        problem = _text_problem(self.tag_key, "tag key", _MAX_TAG_KEY)
        if problem is not None:
            problems.append(ConfigProblem("resource_owner.tag_key", problem))
        problem = _text_problem(self.idp_attribute, "IdP attribute", _MAX_ATTRIBUTE)
        if problem is None and not _ATTRIBUTE.fullmatch(self.idp_attribute.strip()):
            problem = (
                f"{_shown(self.idp_attribute.strip())} is not an attribute name "
                "(letters, digits, '_', '.', ':', '-'; like email or userName)"
            )
        if problem is not None:
            problems.append(ConfigProblem("resource_owner.idp_attribute", problem))
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "tag_key", self.tag_key.strip())
        object.__setattr__(self, "idp_attribute", self.idp_attribute.strip())


# -- resolvers -----------------------------------------------------------------------------------


@runtime_checkable
class OwnerResolver(Protocol):
    """Answers who owns an account group (the resource owners who approve access to it).

    An empty answer means "no resource owner": the integration then falls back to its
    integration owners. A resolver may raise or be slow; `Integration` bounds it and
    falls back, reporting the problem, so a failing resolver never grants anything.

    Example:
        >>> class Everyone:
        ...     def resolve(self, group: Group) -> Sequence[Owner]:
        ...         return [Owner.group("platform-team")]
        >>> isinstance(Everyone(), OwnerResolver)
        True
    """

    def resolve(self, group: Group) -> Sequence[Owner]:
        """The owners of `group`; empty when it has none."""
        ...


@runtime_checkable
class AsyncOwnerResolver(Protocol):
    """The async twin of `OwnerResolver`, for `AsyncIntegration`."""

    async def resolve(self, group: Group) -> Sequence[Owner]:
        """The owners of `group`; empty when it has none."""
        ...


def _group_entry(mapping: Mapping[str, T], group: Group) -> T | None:
    """The entry for a group: by id first, then by display name (case-insensitively)."""
    if group.id in mapping:
        return mapping[group.id]
    if group.display_name:
        wanted = _key(group.display_name)
        for name, value in mapping.items():
            if _key(name) == wanted:
                return value
    return None


class StaticOwnerResolver:
    """Owners from a fixed mapping, keyed by group id or group display name.

    A group is looked up by its id first, then by its display name (case-insensitively).
    Owners may be given as `Owner` values or their text form (`user:a@x.com`,
    `group:data-owners`, a bare e-mail).

    Args:
        mapping: Group id or display name -> its owners.

    Raises:
        ConfigError: An owner is malformed (the problem names the key).

    Example:
        >>> resolver = StaticOwnerResolver({"sales-readers": ["user:ann@example.com"]})
        >>> resolver.resolve(Group(id="42", display_name="Sales-Readers"))
        (Owner(kind=<OwnerKind.USER: 'user'>, name='ann@example.com'),)
        >>> resolver.resolve(Group(id="7", display_name="other"))
        ()
    """

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, Sequence[OwnerLike]]) -> None:
        problems: list[ConfigProblem] = []
        parsed: dict[str, tuple[Owner, ...]] = {}
        for name, owners in mapping.items():
            if isinstance(owners, str):
                owners = [owners]  # noqa: PLW2901 - one owner given bare
            entries: list[Owner] = []
            for owner in owners:
                try:
                    entries.append(Owner.parse(owner))
                except ConfigError as exc:
                    problems.extend(
                        ConfigProblem(f"mapping[{name!r}]", p.message) for p in exc.problems
                    )
            parsed[name] = _dedupe(entries)
        if problems:
            raise ConfigError(problems)
        self._mapping = parsed

    def __repr__(self) -> str:
        return f"StaticOwnerResolver({len(self._mapping)} groups)"

    def resolve(self, group: Group) -> tuple[Owner, ...]:
        """The owners listed for this group's id or display name; empty if none."""
        return _group_entry(self._mapping, group) or ()


# -- tag sources ---------------------------------------------------------------------------------


@runtime_checkable
class TagSource(Protocol):
    """Where a group's tag values come from (Databricks account groups carry no tags).

    Example:
        >>> class FromCatalog:
        ...     def tag_value(self, group: Group, tag_key: str) -> str | None:
        ...         return "ann@example.com" if tag_key == "owner" else None
        >>> isinstance(FromCatalog(), TagSource)
        True
    """

    def tag_value(self, group: Group, tag_key: str) -> str | None:
        """The value of the tag `tag_key` on `group`, or None when it is not set."""
        ...


def split_tag_value(value: str) -> tuple[str, ...]:
    """The names in a tag value: a tag may name several owners, separated by commas.

    Example:
        >>> split_tag_value(" ann@example.com, group-a ,,")
        ('ann@example.com', 'group-a')
    """
    return tuple(part.strip() for part in value.split(",") if part.strip())


class MappingTagSource:
    """Tags from a fixed mapping: group id or display name -> {tag key: value}.

    A group is looked up by its id first, then by its display name (case-insensitively);
    tag keys compare exactly. An empty value counts as not set.

    Example:
        >>> tags = MappingTagSource({"sales-readers": {"owner": "ann@example.com"}})
        >>> tags.tag_value(Group(id="1", display_name="sales-readers"), "owner")
        'ann@example.com'
        >>> tags.tag_value(Group(id="1", display_name="sales-readers"), "steward") is None
        True
    """

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, Mapping[str, str]]) -> None:
        self._mapping = {name: dict(tags) for name, tags in mapping.items()}

    def __repr__(self) -> str:
        return f"MappingTagSource({len(self._mapping)} groups)"

    def tag_value(self, group: Group, tag_key: str) -> str | None:
        """The tag's value for this group, or None."""
        tags = _group_entry(self._mapping, group)
        value = None if tags is None else tags.get(tag_key)
        if not isinstance(value, str) or not value.strip():
            return None
        return value.strip()


def _group_name_for(tag_key: str) -> str:
    """The regex group name standing for a tag key: non-word characters become `_`."""
    return re.sub(r"\W", "_", tag_key)


class DisplayNamePatternTagSource:
    """Tag values read from the group's display name with a regular expression.

    The pattern is searched (`re.search`) in the display name; anchor it with `^` and
    `$` as needed. The tag value is, in this order:

    1. the named group called like the tag key (characters other than letters, digits
       and `_` in the key read as `_`: tag `data-steward` is `(?P<data_steward>...)`);
    2. else the first group of the pattern;
    3. else the whole match.

    No match, or an empty value, means the tag is not set.

    Args:
        pattern: The regular expression, as text or compiled.

    Raises:
        ConfigError: The pattern does not compile (field `pattern`).

    Example:
        >>> tags = DisplayNamePatternTagSource(r"^team-(?P<owner>[a-z0-9-]+)-readers$")
        >>> tags.tag_value(Group(id="1", display_name="team-payments-readers"), "owner")
        'payments'
        >>> tags.tag_value(Group(id="2", display_name="admins"), "owner") is None
        True
    """

    __slots__ = ("_pattern",)

    def __init__(self, pattern: str | re.Pattern[str]) -> None:
        if isinstance(pattern, re.Pattern):
            self._pattern: re.Pattern[str] = pattern
            return
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError("must be a non-empty regular expression", "pattern")
        try:
            self._pattern = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"is not a valid regular expression: {exc}", "pattern") from None

    @property
    def pattern(self) -> re.Pattern[str]:
        """The compiled pattern."""
        return self._pattern

    def __repr__(self) -> str:
        return f"DisplayNamePatternTagSource({self._pattern.pattern!r})"

    def tag_value(self, group: Group, tag_key: str) -> str | None:
        """The tag value read from `group.display_name`, or None."""
        match = self._pattern.search(group.display_name or "")
        if match is None:
            return None
        name = _group_name_for(tag_key)
        if name in self._pattern.groupindex:
            value = match.group(name)
        elif self._pattern.groups:
            value = match.group(1)
        else:
            value = match.group(0)
        if not isinstance(value, str) or not value.strip():
            return None
        return value.strip()


# -- identity directories -------------------------------------------------------------------------


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
        f"the directory does not know the attribute {_shown(str(attribute))}; use one of "
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
            table = self._attributes.setdefault(_key(attribute), {})
            for value, owners in values.items():
                parsed: list[Owner] = []
                for owner in [owners] if isinstance(owners, str) else owners:
                    try:
                        parsed.append(Owner.parse(owner))
                    except ConfigError as exc:
                        field = f"attributes[{attribute!r}][{value!r}]"
                        problems.extend(ConfigProblem(field, p.message) for p in exc.problems)
                table[_key(value)] = _dedupe(parsed)
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
            self._groups[_key(name)] = listed
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        return f"StaticDirectory({len(self._attributes)} attributes, {len(self._groups)} groups)"

    def owners_for(self, attribute: str, value: str) -> tuple[Owner, ...]:
        """The owners the mapping lists, or the standard attributes' own answer."""
        table = self._attributes.get(_key(attribute)) if isinstance(attribute, str) else None
        if table is not None:
            return table.get(_key(value), ()) if isinstance(value, str) else ()
        kind = _attribute_kind(attribute)
        if not _usable_name(value):
            return ()
        return (Owner(kind, value),)

    def is_member(self, user: str, idp_group: str) -> bool:
        """Whether `user` is in `idp_group`, directly or through nested groups."""
        if not _usable_name(user) or not _usable_name(idp_group):
            return False
        wanted = _key(user)
        seen = {_key(idp_group)}
        queue = deque(seen)
        while queue:
            for member in self._groups.get(queue.popleft(), ()):
                prefix, colon, rest = member.partition(":")
                if colon and prefix.strip().lower() == OwnerKind.GROUP.value:
                    nested = _key(rest)
                    if nested not in seen:
                        seen.add(nested)
                        queue.append(nested)
                    continue
                if colon and prefix.strip().lower() == OwnerKind.USER.value:
                    member = rest  # noqa: PLW2901 - the explicit user form
                if _key(member) == wanted:
                    return True
        return False


# The lookups a plan asks its driver for, and what they answer.


@attrs.frozen
class _FindUser(Effect["_UserRecord | None"]):
    """-> `_UserRecord | None`: the user with this user name, and its direct groups."""

    name: str

    @property
    def key(self) -> tuple[str, str]:
        return ("user", _key(self.name))


@attrs.frozen
class _FindGroup(Effect["_GroupRecord | None"]):
    """-> `_GroupRecord | None`: the account group with this display name."""

    name: str

    @property
    def key(self) -> tuple[str, str]:
        return ("group", _key(self.name))


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
    candidates = [g for g in found if _key(g.display_name) == _key(name)]
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


# -- the tag resolver ------------------------------------------------------------------------------


class TagOwnerResolver:
    """Resource owners named by a group's tag, looked up in an identity directory.

    The tag `setting.tag_key` of the group (from `tags`) holds one or more names,
    separated by commas; each is looked up as `directory.owners_for(
    setting.idp_attribute, name)`. No tag, or names the directory does not know, mean no
    resource owner (the integration then falls back to its integration owners).

    Example:
        >>> resolver = TagOwnerResolver(
        ...     ResourceOwnerSetting("owner", "email"),
        ...     MappingTagSource({"sales-readers": {"owner": "ann@example.com, bob@example.com"}}),
        ...     StaticDirectory(),
        ... )
        >>> [str(o) for o in resolver.resolve(Group(id="9", display_name="sales-readers"))]
        ['user:ann@example.com', 'user:bob@example.com']
    """

    __slots__ = ("_directory", "_setting", "_tags")

    def __init__(
        self, setting: ResourceOwnerSetting, tags: TagSource, directory: IdentityDirectory
    ) -> None:
        self._setting = setting
        self._tags = tags
        self._directory = directory

    def __repr__(self) -> str:
        return f"TagOwnerResolver({self._setting!r}, {self._tags!r}, {self._directory!r})"

    def resolve(self, group: Group) -> tuple[Owner, ...]:
        """The owners the group's tag names; empty without a tag or a known name."""
        value = self._tags.tag_value(group, self._setting.tag_key)
        owners: list[Owner] = []
        for name in split_tag_value(value or ""):
            owners.extend(self._directory.owners_for(self._setting.idp_attribute, name))
        return _dedupe(owners)


class AsyncTagOwnerResolver:
    """The async twin of `TagOwnerResolver`, over an `AsyncIdentityDirectory`.

    The tag source stays synchronous: it is an in-memory lookup.
    """

    __slots__ = ("_directory", "_setting", "_tags")

    def __init__(
        self, setting: ResourceOwnerSetting, tags: TagSource, directory: AsyncIdentityDirectory
    ) -> None:
        self._setting = setting
        self._tags = tags
        self._directory = directory

    def __repr__(self) -> str:
        return f"AsyncTagOwnerResolver({self._setting!r}, {self._tags!r}, {self._directory!r})"

    async def resolve(self, group: Group) -> tuple[Owner, ...]:
        """The owners the group's tag names; empty without a tag or a known name."""
        value = self._tags.tag_value(group, self._setting.tag_key)
        owners: list[Owner] = []
        for name in split_tag_value(value or ""):
            owners.extend(await self._directory.owners_for(self._setting.idp_attribute, name))
        return _dedupe(owners)
