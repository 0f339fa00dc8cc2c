"""SCIM PATCH (RFC 7644 section 3.5.2) as the account API plays it, and member lists.

A PATCH is atomic: every operation is checked against a working copy first, and the
account changes only when all of them pass. Operation names are case-insensitive. A
`remove` must carry no `value` (the real server refuses it, as unboundid's SCIM does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from databricks_access.testing._behaviour import MemberAnswer
from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    Rejection,
    json_response,
    parse_json_body,
    scim_error,
)
from databricks_access.testing._scim_filter import (
    Attribute,
    FilterError,
    compile_filter,
    parse_filter,
)
from databricks_access.testing._scim_resources import PATCH_SCHEMA
from databricks_access.testing._state import (
    AccountState,
    ConflictError,
    Group,
    Principal,
    ServicePrincipal,
    User,
)

__all__ = [
    "INVALID_FILTER",
    "UNPARSABLE",
    "active_flag",
    "checked_new_member",
    "invalid_syntax",
    "member_ids",
    "patch",
    "value_list",
]

R = TypeVar("R")

INVALID_FILTER = "InvalidFilter"
"""The `scimType` of an invalid filter, cased as the live service sends it."""
UNPARSABLE = "Request is unparsable, syntactically incorrect, or violates schema."
# `attr[filter]` or `attr[filter].sub`: `members[value eq "1"]`, `emails[type eq "work"].value`.
_FILTERED_PATH = re.compile(
    r"\s*(?P<attr>[A-Za-z][A-Za-z0-9_$-]*)\s*\[(?P<filter>.*)\]"
    r"(?:\.(?P<sub>[A-Za-z][A-Za-z0-9_$-]*))?\s*\Z",
    re.DOTALL,
)


def invalid_syntax(detail: str = UNPARSABLE) -> Rejection:
    """A 400 `invalidSyntax` SCIM error."""
    return scim_error(400, detail, "invalidSyntax")


def member_ids(value: object) -> list[str]:
    """The ids in a `members` value: a list of `{"value": "<id>"}` objects (or one object).

    Raises:
        Rejection: 400 `invalidSyntax` for any other shape (a bare id string, say).
    """
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise invalid_syntax()
    ids = []
    for item in items:
        member = item.get("value") if isinstance(item, dict) else None
        if not isinstance(member, str):
            raise invalid_syntax()
        ids.append(member)
    return ids


def value_list(value: object, name: str) -> list[str]:
    """The values of a multi-valued attribute (`roles`, `entitlements`): `[{"value": ...}]`.

    One object alone is accepted as a list of one. Duplicates are dropped, order kept.

    Raises:
        Rejection: 400 `invalidValue` for any other shape.
    """
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise scim_error(400, f"{name} must be a list of {{'value': ...}} objects.", "invalidValue")
    values: dict[str, None] = {}
    for item in items:
        text = item.get("value") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text:
            raise scim_error(400, f"Every entry of {name} needs a string value.", "invalidValue")
        values[text] = None
    return list(values)


_TRUTH = {"true": True, "false": False}


def active_flag(value: object) -> bool:
    """The `active` flag in any of the forms clients send.

    A JSON boolean, the strings `"true"` / `"false"` (any case), or a list holding one
    `{"value": ...}` of either (identity providers send `[{"value": "false"}]`).

    Raises:
        Rejection: 400 `invalidValue` for anything else.
    """
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0].get("value")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUTH:
        return _TRUTH[value.strip().lower()]
    raise scim_error(400, "active must be true or false.", "invalidValue")


def checked_new_member(state: AccountState, group_id: str, member_id: str) -> bool:
    """Check one id about to be added to a group; False if it must be skipped silently.

    Raises:
        Rejection: the id names no principal and the behaviour answers that with an
            error, or it names the group itself.
    """
    if member_id == group_id:
        raise scim_error(400, f"Group {group_id} cannot be a member of itself.", "invalidValue")
    if member_id in state.kinds:
        return True
    answer = state.behaviour.add_unknown_member
    if answer is MemberAnswer.BAD_REQUEST:
        raise scim_error(400, f"No principal with id {member_id} exists.", "invalidValue")
    if answer is MemberAnswer.NOT_FOUND:
        raise scim_error(404, f"Principal with id {member_id} is not found")
    return False


class _Plan:
    """What every PATCH working copy has: roles and entitlements, edited as value lists."""

    def __init__(self, state: AccountState, principal: Principal) -> None:
        self.state = state
        self.values: dict[str, list[str]] = {
            "roles": list(principal.roles),
            "entitlements": list(principal.entitlements),
        }

    def set_values(self, name: str, value: object, op: str) -> None:
        values = value_list(value, name)
        if op == "add":
            current = self.values[name]
            current.extend(v for v in values if v not in current)
        else:
            self.values[name] = values

    def remove_values(self, name: str, path_filter: str) -> None:
        predicate = _compiled(path_filter, {"value": Attribute[str](lambda v: v, case_exact=True)})
        kept = [v for v in self.values[name] if not predicate(v)]
        if len(kept) == len(self.values[name]):
            answer = self.state.behaviour.remove_missing_value
            if answer is MemberAnswer.BAD_REQUEST:
                raise scim_error(400, f"No value of {name} matches the path filter.", "noTarget")
        self.values[name] = kept

    def commit_values(self, principal: Principal) -> None:
        principal.roles[:] = self.values["roles"]
        principal.entitlements[:] = self.values["entitlements"]


def _compiled(path_filter: str, attributes: Mapping[str, Attribute[R]]) -> Callable[[R], bool]:
    try:
        return compile_filter(parse_filter(path_filter), attributes)
    except FilterError as exc:
        raise scim_error(400, f"Invalid filter in path: {exc}", INVALID_FILTER) from None


_VALUE_LISTS = ("roles", "entitlements")


class _GroupPlan(_Plan):
    """The working copy of a group that a PATCH edits before it is committed."""

    def __init__(self, state: AccountState, group: Group) -> None:
        super().__init__(state, group)
        self.group = group
        self.members = dict(state.members[group.id])
        self.display_name = group.display_name
        self.external_id = group.external_id

    def add(self, ids: list[str]) -> None:
        answer = self.state.behaviour.add_existing_member
        for member_id in ids:
            if not checked_new_member(self.state, self.group.id, member_id):
                continue
            if member_id in self.members:
                if answer is MemberAnswer.BAD_REQUEST:
                    raise scim_error(
                        400, f"Principal {member_id} is already a member.", "invalidValue"
                    )
                if answer is MemberAnswer.CONFLICT:
                    raise scim_error(
                        409, f"Principal {member_id} is already a member.", "uniqueness"
                    )
                continue
            self.members[member_id] = None

    def replace(self, ids: list[str]) -> None:
        self.members = {}
        for member_id in ids:
            if checked_new_member(self.state, self.group.id, member_id):
                self.members[member_id] = None

    def remove(self, path_filter: str) -> None:
        predicate = _compiled(path_filter, self._member_attributes())
        matched = [member_id for member_id in self.members if predicate(member_id)]
        if not matched:
            answer = self.state.behaviour.remove_missing_member
            if answer is MemberAnswer.BAD_REQUEST:
                raise scim_error(400, "No member matches the path filter.", "noTarget")
            if answer is MemberAnswer.NOT_FOUND:
                raise scim_error(404, "No member matches the path filter.")
        for member_id in matched:
            del self.members[member_id]

    def _member_attributes(self) -> Mapping[str, Attribute[str]]:
        display = self.state.display
        return {
            "value": Attribute[str](lambda member_id: member_id, case_exact=True),
            "display": Attribute[str](display),
        }

    def set_attribute(self, name: str, value: object, op: str) -> None:
        if name == "members":
            if op == "add":
                self.add(member_ids(value))
            else:
                self.replace(member_ids(value))
        elif name in _VALUE_LISTS:
            self.set_values(name, value, op)
        elif name == "displayname":
            self.display_name = _string(value, "displayName")
            self.state.check_group_name(self.display_name, own_id=self.group.id)
        elif name == "externalid":
            self.external_id = _string(value, "externalId")
        else:
            raise _unsupported_path(name)

    def set_filtered(self, name: str, path_filter: str, sub: str | None, _value: object) -> None:
        raise _unsupported_path(f"{name}[{path_filter}]" + (f".{sub}" if sub else ""))

    def remove_attribute(self, name: str) -> None:
        if name == "members":
            self.members = {}
        elif name in _VALUE_LISTS:
            self.values[name] = []
        elif name == "externalid":
            self.external_id = None
        else:
            raise _unsupported_path(name)

    def remove_filtered(self, name: str, path_filter: str) -> None:
        if name == "members":
            self.remove(path_filter)
        elif name in _VALUE_LISTS:
            self.remove_values(name, path_filter)
        else:
            raise _unsupported_path(name)

    def commit(self) -> None:
        state = self.state
        state.set_members(self.group.id, self.members, record=True)
        if self.display_name != self.group.display_name:
            state.rename_group(self.group, self.display_name)
        self.group.external_id = self.external_id
        self.commit_values(self.group)


_Email = tuple[int, str]  # (position, address): position 0 is the primary one


def _email_attributes() -> Mapping[str, Attribute[_Email]]:
    return {
        "value": Attribute[_Email](lambda email: email[1]),
        "type": Attribute[_Email](lambda _email: "work"),
        "primary": Attribute[_Email](lambda email: email[0] == 0),
    }


class _PrincipalPlan(_Plan):
    """The working copy of a user or service principal that a PATCH edits."""

    def __init__(self, state: AccountState, principal: User | ServicePrincipal) -> None:
        super().__init__(state, principal)
        self.principal = principal
        self.changes: dict[str, object] = {}

    def _user(self, name: str) -> User:
        if not isinstance(self.principal, User):
            raise _unsupported_path(name)
        return self.principal

    def _name_part(self, field: str) -> object:
        user = self._user("name")
        return self.changes.get(field, getattr(user, field))

    def set_attribute(self, name: str, value: object, op: str) -> None:
        if name in _VALUE_LISTS:
            self.set_values(name, value, op)
        elif name == "displayname":
            self.changes["display_name"] = _string(value, "displayName")
        elif name == "externalid":
            self.changes["external_id"] = _string(value, "externalId")
        elif name == "active":
            self.changes["active"] = active_flag(value)
        elif name == "username" and isinstance(self.principal, User):
            user_name = _string(value, "userName")
            self.state.check_user_name(user_name, (), own_id=self.principal.id)
            self.changes["user_name"] = user_name
        elif name == "name":
            self._user(name)
            if not isinstance(value, dict):
                raise scim_error(400, "name must be an object.", "invalidValue")
            parts = {str(key).casefold(): item for key, item in value.items()}
            for key, field in (("givenname", "given_name"), ("familyname", "family_name")):
                if key in parts:
                    self.changes[field] = _optional_string(parts[key], f"name.{key}")
        elif name in ("name.givenname", "name.familyname"):
            self._user(name)
            field = "given_name" if name == "name.givenname" else "family_name"
            self.changes[field] = _string(value, name)
        elif name in ("emails", "emails.value"):
            self._set_emails(_email_values(value), op)
        elif name in ("username", "applicationid", "groups", "id"):
            raise scim_error(400, f"The attribute {name!r} cannot be changed.", "mutability")
        else:
            raise _unsupported_path(name)

    def _emails(self) -> list[str]:
        user = self._user("emails")
        current = self.changes.get("emails", user.emails)
        return list(current) if isinstance(current, tuple) else []

    def _set_emails(self, emails: list[str], op: str) -> None:
        current = self._emails()
        merged = current + [e for e in emails if e not in current] if op == "add" else emails
        self.changes["emails"] = tuple(merged)

    def set_filtered(self, name: str, path_filter: str, sub: str | None, value: object) -> None:
        if name != "emails" or sub not in (None, "value"):
            raise _unsupported_path(f"{name}[{path_filter}]" + (f".{sub}" if sub else ""))
        predicate = _compiled(path_filter, _email_attributes())
        current = self._emails()
        new = _email_values(value) if sub is None else [_string(value, "emails.value")]
        matched = [
            address for position, address in enumerate(current) if predicate((position, address))
        ]
        if not matched:
            self._set_emails(new, "add")
            return
        # The matched entries take the new value(s), in the place of the first one.
        at = current.index(matched[0])
        kept = [address for address in current if address not in matched]
        kept[at:at] = [address for address in new if address not in kept]
        self.changes["emails"] = tuple(kept)

    def remove_attribute(self, name: str) -> None:
        if name in _VALUE_LISTS:
            self.values[name] = []
        elif name == "externalid":
            self.changes["external_id"] = None
        elif name in ("name.givenname", "name.familyname"):
            self._user(name)
            self.changes["given_name" if name == "name.givenname" else "family_name"] = None
        elif name == "name":
            self._user(name)
            self.changes["given_name"] = self.changes["family_name"] = None
        else:
            raise _unsupported_path(name)

    def remove_filtered(self, name: str, path_filter: str) -> None:
        if name in _VALUE_LISTS:
            self.remove_values(name, path_filter)
        elif name == "emails":
            predicate = _compiled(path_filter, _email_attributes())
            current = self._emails()
            self.changes["emails"] = tuple(
                address
                for position, address in enumerate(current)
                if not predicate((position, address))
            )
        else:
            raise _unsupported_path(name)

    def commit(self) -> None:
        if isinstance(self.principal, User):
            emails = self.changes.get("emails")
            if isinstance(emails, tuple):
                self.state.check_user_name(
                    str(self.changes.get("user_name", self.principal.user_name)),
                    emails,
                    own_id=self.principal.id,
                )
            self.state.update_user(self.principal, self.changes)
        else:
            for name, value in self.changes.items():
                setattr(self.principal, name, value)
        self.commit_values(self.principal)


def _email_values(value: object) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise scim_error(400, "emails must be a list.", "invalidValue")
    emails = []
    for item in items:
        email = item.get("value") if isinstance(item, dict) else None
        if not isinstance(email, str) or not email:
            raise scim_error(400, "Every email needs a string value.", "invalidValue")
        emails.append(email)
    return emails


def _string(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise scim_error(400, f"{name} must be a non-empty string.", "invalidValue")
    return value


def _optional_string(value: object, name: str) -> str | None:
    return None if value is None else _string(value, name)


def _unsupported_path(name: str) -> Rejection:
    return scim_error(400, f"The path {name!r} is not supported.", "invalidPath")


def _apply(plan: _GroupPlan | _PrincipalPlan, operation: object) -> None:
    if not isinstance(operation, dict):
        raise invalid_syntax()
    op = operation.get("op")
    if not isinstance(op, str) or op.lower() not in ("add", "remove", "replace"):
        raise invalid_syntax(f"Unsupported patch operation {op!r}.")
    op = op.lower()
    path = operation.get("path")
    if path is not None and (not isinstance(path, str) or not path.strip()):
        raise scim_error(400, "The path must be a non-empty string.", "invalidPath")
    filtered = _FILTERED_PATH.match(_strip_urn(path)) if path is not None else None
    if op == "remove":
        if "value" in operation:
            raise invalid_syntax(
                'Unrecognized field "value" in a remove operation (only "path" is allowed).'
            )
        if path is None:
            raise scim_error(400, "A remove operation needs a path.", "noTarget")
        if filtered is not None:
            if filtered.group("sub"):
                raise _unsupported_path(path)
            plan.remove_filtered(filtered.group("attr").casefold(), filtered.group("filter"))
        else:
            plan.remove_attribute(_path_name(path))
        return
    if "value" not in operation:
        raise scim_error(400, f"An {op} operation needs a value.", "invalidValue")
    value = operation["value"]
    if path is None:
        if not isinstance(value, dict):
            raise invalid_syntax()
        for name, item in value.items():
            plan.set_attribute(_path_name(str(name)), item, op)
    elif filtered is not None:
        plan.set_filtered(
            filtered.group("attr").casefold(),
            filtered.group("filter"),
            (filtered.group("sub") or "").casefold() or None,
            value,
        )
    else:
        plan.set_attribute(_path_name(path), value, op)


def _strip_urn(path: str) -> str:
    name = path.strip()
    if name.lower().startswith("urn:"):
        # The schema URN ends at the last colon before any filter.
        head, bracket, rest = name.partition("[")
        name = head.rsplit(":", 1)[1] + bracket + rest
    return name


def _path_name(path: str) -> str:
    return _strip_urn(path).casefold()


def _check_member_limit(state: AccountState, operations: list[Any]) -> None:
    """Refuse a group PATCH naming more members than `behaviour.patch_member_limit`."""
    limit = state.behaviour.patch_member_limit
    if limit is None:
        return
    named = 0
    for operation in operations:
        if not isinstance(operation, dict):
            continue
        path = operation.get("path")
        value = operation.get("value")
        filtered = _FILTERED_PATH.match(_strip_urn(path)) if isinstance(path, str) else None
        if filtered is not None and filtered.group("attr").casefold() == "members":
            named += 1
        elif isinstance(path, str) and path.strip().casefold() == "members":
            named += len(value) if isinstance(value, list) else 1
        elif path is None and isinstance(value, dict):
            members = {str(k).casefold(): v for k, v in value.items()}.get("members")
            named += len(members) if isinstance(members, list) else 0
    if named > limit:
        raise scim_error(
            state.behaviour.patch_member_limit_status,
            f"Too many members in one request: {named} (at most {limit}).",
            "tooMany",
        )


def patch(state: AccountState, request: FakeRequest, principal: Principal) -> FakeResponse:
    """`PATCH {Type}/{id}` with a SCIM PatchOp body."""
    body: Any = parse_json_body(request.body, invalid_syntax)
    if not isinstance(body, dict):
        raise invalid_syntax()
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or PATCH_SCHEMA not in schemas):
        raise invalid_syntax(f"The schemas must include {PATCH_SCHEMA}.")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("Operations must be a non-empty list.")
    if isinstance(principal, Group):
        _check_member_limit(state, operations)
    plan: _GroupPlan | _PrincipalPlan = (
        _GroupPlan(state, principal)
        if isinstance(principal, Group)
        else _PrincipalPlan(state, principal)
    )
    try:
        for operation in operations:
            _apply(plan, operation)
    except ConflictError as exc:
        raise scim_error(409, str(exc)) from None
    plan.commit()
    if state.behaviour.patch_status == 204:
        return FakeResponse(204)
    return json_response(200, {})
