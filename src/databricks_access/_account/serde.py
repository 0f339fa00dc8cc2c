"""The one place where JSON names meet the models.

A private cattrs converter, built on first use so that importing the package does not
import cattrs. Unknown keys are ignored; `null` is treated like a missing key, so the
model's default applies; a reply of the wrong shape becomes a `ServerError` with the
code `MALFORMED_RESPONSE` instead of a cattrs or `KeyError` escaping to the caller.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from databricks_access._account.models import (
    AssignedPrincipal,
    ComplexValue,
    GrantRule,
    Group,
    ListPage,
    MemberRef,
    Name,
    PermissionAssignment,
    PrincipalKind,
    RuleSet,
    ServicePrincipal,
    ServicePrincipalSecret,
    User,
    Workspace,
    WorkspacePermission,
)
from databricks_access._errors import ServerError

if TYPE_CHECKING:
    import cattrs

__all__ = ["MALFORMED", "malformed", "parse_list", "structure", "unstructure"]

T = TypeVar("T")

MALFORMED = "MALFORMED_RESPONSE"

# SCIM resources speak camelCase; the REST endpoints (workspaces, rule sets) speak
# snake_case, which is already our field name. Only exceptions are listed.
_SCIM_CLASSES: tuple[type, ...] = (User, ServicePrincipal, Group, Name)
_RENAMES: dict[type, dict[str, str]] = {ComplexValue: {"ref": "$ref"}}

# Member "type" values some servers send instead of (or beside) "$ref".
_MEMBER_TYPES = {
    "user": PrincipalKind.USER,
    "serviceprincipal": PrincipalKind.SERVICE_PRINCIPAL,
    "service_principal": PrincipalKind.SERVICE_PRINCIPAL,
    "group": PrincipalKind.GROUP,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def malformed(what: str) -> ServerError:
    """The error for a reply that is not of the documented shape."""
    return ServerError(200, MALFORMED, f"unexpected response shape: {what}")


def _mapping(data: object, cls: type) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    return data


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _strict_str(value: object, _: type) -> str:
    if type(value) is str:
        return value
    if type(value) is int:  # a numeric id sent as a number: the same id
        return str(value)
    raise TypeError(f"expected text, got {_kind(value)}")


def _strict_int(value: object, _: type) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    raise TypeError(f"expected an integer, got {_kind(value)}")


def _strict_bool(value: object, _: type) -> bool:
    if type(value) is bool:
        return value
    if type(value) is str and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise TypeError(f"expected true or false, got {_kind(value)}")


def _strict_float(value: object, _: type) -> float:
    if type(value) in {int, float} and math.isfinite(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    raise TypeError(f"expected a number, got {_kind(value)}")


def _member_from_json(data: object, _: type) -> MemberRef:
    # On every group read, once per member: kept lean.
    if type(data) is not dict:
        data = _mapping(data, MemberRef)
    value = data.get("value")
    if type(value) is not str:
        if value is None or isinstance(value, (bool, dict, list)):
            raise TypeError("a member has no value")
        value = str(value)
    ref = data.get("$ref")
    if type(ref) is not str:
        ref = None
    kind = PrincipalKind.from_ref(ref)
    if kind is None:
        member_type = data.get("type")
        if isinstance(member_type, str):
            kind = _MEMBER_TYPES.get(member_type.lower())
    display = data.get("display")
    return MemberRef(
        id=value,
        display=display if type(display) is str else None,
        kind=kind,
        ref=ref,
    )


def _members_from_json(data: object, _: type) -> tuple[MemberRef, ...]:
    if not isinstance(data, list):
        raise TypeError(f"members is a {type(data).__name__}, not a list")
    return tuple([_member_from_json(item, MemberRef) for item in data])


def _member_to_json(member: MemberRef) -> dict[str, Any]:
    out: dict[str, Any] = {"value": member.id}
    if member.display is not None:
        out["display"] = member.display
    if member.ref is not None:
        out["$ref"] = member.ref
    elif member.kind is not None:
        out["type"] = member.kind.scim_resource[:-1]  # "User", "ServicePrincipal", "Group"
    return out


@functools.cache
def _converter() -> cattrs.Converter:
    import cattrs  # noqa: PLC0415 - kept off the package's import path
    from cattrs.gen import (  # noqa: PLC0415
        make_dict_structure_fn,
        make_dict_unstructure_fn,
        override,
    )

    conv = cattrs.Converter(forbid_extra_keys=False)
    # Scalars strictly: cattrs would turn `{"a": 1}` into the text "{'a': 1}" and "false"
    # into True. A wrong type from the server is a malformed response.
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(float, _strict_float)
    # Registered first: the generated hooks below bind the hooks of their field types.
    conv.register_structure_hook(MemberRef, _member_from_json)
    conv.register_unstructure_hook(MemberRef, _member_to_json)
    # Every group read parses its members: one tight loop instead of a dispatch per item.
    members_type = tuple[MemberRef, ...]
    conv.register_structure_hook_func(lambda t: t == members_type, _members_from_json)
    # Leaves before the classes that hold them (see above).
    classes = (
        Name,
        ComplexValue,
        AssignedPrincipal,
        GrantRule,
        User,
        ServicePrincipal,
        Group,
        Workspace,
        PermissionAssignment,
        WorkspacePermission,
        ServicePrincipalSecret,
        RuleSet,
    )
    generated: dict[type, tuple[Callable[[Any, Any], Any], Callable[[Any], Any]]] = {}
    for cls in classes:
        names = {f.name: _camel(f.name) for f in _fields(cls)} if cls in _SCIM_CLASSES else {}
        names.update(_RENAMES.get(cls, {}))
        overrides = {field: override(rename=json_name) for field, json_name in names.items()}
        structure_fn = make_dict_structure_fn(cls, conv, **overrides)  # type: ignore[arg-type]
        unstructure_fn = make_dict_unstructure_fn(
            cls,
            conv,
            _cattrs_omit_if_default=True,
            **overrides,  # type: ignore[arg-type]
        )
        conv.register_structure_hook(cls, _without_nulls(structure_fn, cls))
        conv.register_unstructure_hook(cls, unstructure_fn)
        generated[cls] = (_without_nulls(structure_fn, cls), unstructure_fn)

    # Kept from the loop: `get_structure_hook` only exists from cattrs 24.1 on.
    group_structure, group_unstructure = generated[Group]

    def group_from_json(data: object, cls: type) -> Group:
        raw = _mapping(data, Group)
        meta = raw.get("meta")
        if isinstance(meta, Mapping) and isinstance(meta.get("resourceType"), str):
            # `meta.resourceType` becomes the flat field (its JSON name: resourceType).
            raw = {**raw, "resourceType": meta["resourceType"]}
        group: Group = group_structure(raw, cls)
        return group

    def group_to_json(group: Group) -> dict[str, Any]:
        out: dict[str, Any] = group_unstructure(group)
        resource_type = out.pop("resourceType", None)
        if resource_type is not None:
            out["meta"] = {"resourceType": resource_type}
        return out

    conv.register_structure_hook(Group, group_from_json)
    conv.register_unstructure_hook(Group, group_to_json)
    return conv


def _fields(cls: type) -> tuple[Any, ...]:
    import attrs  # noqa: PLC0415

    return tuple(attrs.fields(cls))


def _without_nulls(fn: Callable[[Any, Any], T], cls: type) -> Callable[[Any, Any], T]:
    def structure_hook(data: object, target: Any) -> T:
        raw = _mapping(data, cls)
        return fn({k: v for k, v in raw.items() if v is not None}, target)

    return structure_hook


def structure(data: object, cls: type[T]) -> T:
    """Build a model from parsed JSON, or raise `ServerError` (`MALFORMED_RESPONSE`)."""
    try:
        return _converter().structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - cattrs raises groups, TypeError, KeyError, ...
        raise malformed(f"{cls.__name__}: {_describe(exc)}") from None


def unstructure(value: object) -> Any:
    """Turn a model into the JSON the server speaks (defaults omitted)."""
    return _converter().unstructure(value)


def parse_list(data: object, item: type[T]) -> ListPage[T]:
    """Parse a SCIM list response; `{}` (a final page seen in the wild) is an empty page."""
    if data is None:
        return ListPage()
    if not isinstance(data, Mapping):
        raise malformed(f"list response is a {type(data).__name__}, not an object")
    resources = data.get("Resources") or []
    if not isinstance(resources, list):
        raise malformed("Resources is not a list")
    return ListPage(
        items=tuple(structure(r, item) for r in resources),
        total_results=_int_or_none(data.get("totalResults")),
        start_index=_int_or_none(data.get("startIndex")) or 1,
        items_per_page=_int_or_none(data.get("itemsPerPage")),
    )


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _describe(exc: BaseException) -> str:
    # cattrs' validation groups nest the real causes; name the first leaf, briefly.
    inner = getattr(exc, "exceptions", None)
    while inner:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    text = f"{type(exc).__name__}: {exc}"
    return text[:200]
