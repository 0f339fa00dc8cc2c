"""Who may approve access to a group: owners, resolvers and tag sources.

An `Owner` is an identity-provider (IdP) user or group. An `OwnerResolver` answers the
owners of an account group. Databricks account groups carry no tags, so the resource-owner
rule of an integration ("the group's tag `owner` names the approver by e-mail") reads its
tag value from a `TagSource` (`ResourceOwnerSetting` names the tag and the IdP attribute),
and an identity directory (`_integration.directories`) turns that value into owners:
`TagOwnerResolver`.

Identities compare case-insensitively (user names are e-mail addresses): names are
compared by their `casefold()` (`identity_key`) and shown as given.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import attrs

from databricks_access._account.models import Group
from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._util.describe import shown

if TYPE_CHECKING:
    from databricks_access._integration.directories import (
        AsyncIdentityDirectory,
        IdentityDirectory,
    )

__all__ = [
    "AsyncOwnerResolver",
    "AsyncTagOwnerResolver",
    "DisplayNamePatternTagSource",
    "MappingTagSource",
    "Owner",
    "OwnerKind",
    "OwnerLike",
    "OwnerResolver",
    "ResourceOwnerSetting",
    "StaticOwnerResolver",
    "TagOwnerResolver",
    "TagSource",
    "identity_key",
    "split_tag_value",
    "unique_owners",
]

T = TypeVar("T")

_MAX_NAME = 256
_MAX_TAG_KEY = 128
_MAX_ATTRIBUTE = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An IdP attribute: `email`, `userName`, `emails.value`, or a SCIM extension URN such as
# `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`.
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_.:$-]*")


def identity_key(name: str) -> str:
    """How identities compare: trimmed and case-folded (user names are e-mail addresses)."""
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
        return f"the {kind.value} name {shown(text)} contains a control character"
    if kind is OwnerKind.USER and any(char.isspace() for char in text):
        return f"the user name {shown(text)} contains whitespace; a user name is an e-mail"
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
            f"{shown(stripped)} is not an owner; write 'user:<user name>' for a user "
            "or 'group:<group name>' for an IdP group",
            "owner",
        )

    @property
    def key(self) -> tuple[OwnerKind, str]:
        """What owners compare by: the kind and the case-folded name."""
        return (self.kind, identity_key(self.name))

    def matches_user(self, identity: str) -> bool:
        """Whether this is a user owner with this user name (case-insensitively)."""
        return (
            self.kind is OwnerKind.USER
            and isinstance(identity, str)
            and bool(identity.strip())
            and identity_key(identity) == self.key[1]
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


def unique_owners(owners: Iterable[Owner]) -> tuple[Owner, ...]:
    """The owners without repeats, in their first order."""
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
                f"{shown(self.idp_attribute.strip())} is not an attribute name "
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
        wanted = identity_key(group.display_name)
        for name, value in mapping.items():
            if identity_key(name) == wanted:
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
            parsed[name] = unique_owners(entries)
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


# -- the tag resolver ------------------------------------------------------------------------------


class TagOwnerResolver:
    """Resource owners named by a group's tag, looked up in an identity directory.

    The tag `setting.tag_key` of the group (from `tags`) holds one or more names,
    separated by commas; each is looked up as `directory.owners_for(
    setting.idp_attribute, name)`. No tag, or names the directory does not know, mean no
    resource owner (the integration then falls back to its integration owners).

    Example:
        >>> import databricks_access as da
        >>> resolver = TagOwnerResolver(
        ...     ResourceOwnerSetting("owner", "email"),
        ...     MappingTagSource({"sales-readers": {"owner": "ann@example.com, bob@example.com"}}),
        ...     da.StaticDirectory(),
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
        return unique_owners(owners)


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
        return unique_owners(owners)
