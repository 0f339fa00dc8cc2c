"""SCIM specifics that involve no I/O: filters, query strings, ids in paths, paging, patches."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

import attrs

from databricks_access._account.models import ListPage
from databricks_access._errors import ConfigError

__all__ = [
    "PATCH_OP_SCHEMA",
    "ScimPaging",
    "add_members_body",
    "check_id",
    "check_workspace_id",
    "encode_query",
    "filter_eq",
    "quote_filter_value",
    "remove_members_body",
]

PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# A SCIM attribute path: `userName`, `name.givenName`, `emails.value`.
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_$-]*(\.[A-Za-z][A-Za-z0-9_$-]*)*")
# SCIM ids of account resources are numeric; other safe ids (the emulator's, UUIDs) are
# allowed, but nothing that a path or URL parser could read as structure.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MAX_ID = 128
# Text that reads as a name, not an id: a word of three letters or more that is not hex
# (ids are numbers, UUIDs or hex), or a space. `prod-data-readers`, `Data Readers`.
_NAME_LIKE = re.compile(r"[A-Za-z]*[g-zG-Z][A-Za-z]*")
_WORKSPACE_ID = re.compile(r"[0-9]{1,20}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_id(value: object, field: str) -> str:
    """Return `value` if it is a safe resource id, else raise `ConfigError` naming `field`.

    Refuses `/`, `..`, `?`, `#`, `%` and anything else that could change the request's
    path once placed in a URL.
    """
    if not isinstance(value, str):
        raise ConfigError(f"must be a string id, not {type(value).__name__}", field)
    if value.isdigit() and value.isascii() and len(value) <= _MAX_ID:
        return value  # the common case, a SCIM id: nothing a name or a path could be
    shown = repr(value if len(value) <= 80 else value[:77] + "...")
    if _looks_like_a_name(value):
        if "group" in field:
            hint = "for a group's display name, use client.groups.get_by_name(name)"
        else:
            hint = "for a user name or an application id, use client.resolve_principal(name)"
        raise ConfigError(f"{shown} is not an id but looks like a name; {hint}", field)
    if not _ID.fullmatch(value) or value.strip(".") == "":
        raise ConfigError(f"{shown} is not a valid id", field)
    return value


def _looks_like_a_name(value: str) -> bool:
    if not value.strip() or "/" in value or "%" in value or not value.isprintable():
        return False
    words = re.split(r"[^A-Za-z]+", value)
    return " " in value.strip() or any(
        len(word) >= 3 and _NAME_LIKE.fullmatch(word) for word in words
    )


def check_workspace_id(value: object, field: str = "workspace_id") -> str:
    """A workspace id (a number, or ASCII digits) as text; `ConfigError` naming `field`.

    `str.isdigit()` would let `"²"` or Arabic-Indic digits through into the URL.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"must be a number, not {type(value).__name__}", field)
    text = str(value) if isinstance(value, str) or 0 <= value < 10**20 else ""
    if not _WORKSPACE_ID.fullmatch(text):
        shown = repr(text if len(text) <= 40 else text[:37] + "...")
        raise ConfigError(f"{shown} is not a workspace id (ASCII digits only)", field)
    return text


def quote_filter_value(value: str, field: str = "value") -> str:
    r"""A filter value as a quoted SCIM string, with `\\` and `"` escaped.

    User data placed this way can never end the string early and alter the filter.
    """
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {type(value).__name__}", field)
    if _CONTROL.search(value):
        raise ConfigError("must not contain control characters", field)
    if not value:
        raise ConfigError("must not be empty", field)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("must be valid Unicode text (no lone surrogates)", field) from None
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_eq(attribute: str, value: str) -> str:
    r"""A SCIM filter `attribute eq "value"`, safe for any value.

    Example::

        >>> filter_eq("displayName", 'ops "admins"')
        'displayName eq "ops \\"admins\\""'
    """
    if not isinstance(attribute, str) or not _ATTRIBUTE.fullmatch(attribute):
        raise ConfigError(f"{attribute!r} is not a SCIM attribute name", "attribute")
    return f"{attribute} eq {quote_filter_value(value, attribute)}"


def encode_query(params: Iterable[tuple[str, str]]) -> str:
    """Percent-encode query parameters, spaces as `%20` and `+` as `%2B`.

    Databricks decodes `+` as a space, so a literal `+` (in `alice+test@example.com`)
    must travel as `%2B`, and spaces are never sent as `+`.
    """
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in params)


def add_members_body(member_ids: Sequence[str]) -> dict[str, Any]:
    """One PatchOp adding every member in a single operation."""
    return {
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": m} for m in member_ids]}
        ],
    }


def remove_members_body(member_ids: Sequence[str]) -> dict[str, Any]:
    """One PatchOp with a `remove` per member; removes carry no `value` (the server refuses it)."""
    return {
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [
            {"op": "remove", "path": f"members[value eq {quote_filter_value(m)}]"}
            for m in member_ids
        ],
    }


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=_HasId)


@attrs.define
class ScimPaging(Generic[R]):
    """Where a SCIM listing stands: the next `startIndex` and the ids already seen.

    Advances by the number of resources received (servers may send fewer than asked),
    stops on an empty page or when `totalResults` is reached (no extra empty request),
    drops duplicates (results can shift while paging), and stops when a page brings
    nothing new, so a server that ignores `startIndex` or lies in `totalResults` cannot
    make the listing loop forever.
    """

    page_size: int
    next_start: int = 1
    done: bool = False
    pages: int = 0
    seen: set[str] = attrs.field(factory=set)

    def params(self) -> list[tuple[str, str]]:
        """The paging parameters of the next request."""
        return [("startIndex", str(self.next_start)), ("count", str(self.page_size))]

    def accept(self, page: ListPage[R]) -> list[R]:
        """Take a page; returns its new resources and updates the state."""
        self.pages += 1
        items = page.items
        if not items:
            self.done = True
            return []
        fresh: list[R] = []
        for item in items:
            if item.id not in self.seen:
                self.seen.add(item.id)
                fresh.append(item)
        self.next_start += len(items)
        total = page.total_results
        if not fresh or (total is not None and self.next_start - 1 >= total):
            self.done = True
        return fresh
