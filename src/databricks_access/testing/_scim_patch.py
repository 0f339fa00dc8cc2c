"""SCIM PATCH (RFC 7644 section 3.5.2) as the account API plays it, and member lists.

A PATCH is atomic: every operation is checked against a working copy first, and the
account changes only when all of them pass. Operation names are case-insensitive. A
`remove` must carry no `value` (the real server refuses it, as unboundid's SCIM does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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

__all__ = ["UNPARSABLE", "checked_new_member", "invalid_syntax", "member_ids", "patch"]

UNPARSABLE = "Request is unparsable, syntactically incorrect, or violates schema."
_MEMBERS_FILTER = re.compile(r"\s*members\s*\[(?P<filter>.*)\]\s*\Z", re.IGNORECASE | re.DOTALL)


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


class _GroupPlan:
    """The working copy of a group that a PATCH edits before it is committed."""

    def __init__(self, state: AccountState, group: Group) -> None:
        self.state = state
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
        try:
            predicate = compile_filter(parse_filter(path_filter), self._member_attributes())
        except FilterError as exc:
            raise scim_error(400, f"Invalid filter in path: {exc}", "invalidFilter") from None
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
        elif name == "displayname":
            self.display_name = _string(value, "displayName")
            self.state.check_group_name(self.display_name, own_id=self.group.id)
        elif name == "externalid":
            self.external_id = _string(value, "externalId")
        else:
            raise _unsupported_path(name)

    def remove_attribute(self, name: str) -> None:
        if name == "members":
            self.members = {}
        elif name == "externalid":
            self.external_id = None
        else:
            raise _unsupported_path(name)

    def commit(self) -> None:
        state = self.state
        state.set_members(self.group.id, self.members, record=True)
        if self.display_name != self.group.display_name:
            state.rename_group(self.group, self.display_name)
        self.group.external_id = self.external_id


class _PrincipalPlan:
    """The working copy of a user or service principal that a PATCH edits."""

    def __init__(self, state: AccountState, principal: User | ServicePrincipal) -> None:
        self.state = state
        self.principal = principal
        self.changes: dict[str, object] = {}

    def set_attribute(self, name: str, value: object, _op: str) -> None:
        if name == "displayname":
            self.changes["display_name"] = _string(value, "displayName")
        elif name == "externalid":
            self.changes["external_id"] = _string(value, "externalId")
        elif name == "active":
            if not isinstance(value, bool):
                raise scim_error(400, "active must be true or false.", "invalidValue")
            self.changes["active"] = value
        elif name == "username" and isinstance(self.principal, User):
            user_name = _string(value, "userName")
            self.state.check_user_name(user_name, (), own_id=self.principal.id)
            self.changes["user_name"] = user_name
        elif name in ("username", "applicationid", "groups", "id"):
            raise scim_error(400, f"The attribute {name!r} cannot be changed.", "mutability")
        else:
            raise _unsupported_path(name)

    def remove_attribute(self, name: str) -> None:
        if name != "externalid":
            raise _unsupported_path(name)
        self.changes["external_id"] = None

    def commit(self) -> None:
        if isinstance(self.principal, User):
            self.state.update_user(self.principal, self.changes)
        else:
            for name, value in self.changes.items():
                setattr(self.principal, name, value)


def _string(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise scim_error(400, f"{name} must be a non-empty string.", "invalidValue")
    return value


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
    if op == "remove":
        if "value" in operation:
            raise invalid_syntax(
                'Unrecognized field "value" in a remove operation (only "path" is allowed).'
            )
        if path is None:
            raise scim_error(400, "A remove operation needs a path.", "noTarget")
        bracketed = _MEMBERS_FILTER.match(path)
        if bracketed is not None:
            if not isinstance(plan, _GroupPlan):
                raise _unsupported_path("members")
            plan.remove(bracketed.group("filter"))
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
    else:
        plan.set_attribute(_path_name(path), value, op)


def _path_name(path: str) -> str:
    name = path.strip()
    if name.lower().startswith("urn:"):
        name = name.rsplit(":", 1)[1]
    return name.casefold()


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
        if isinstance(path, str) and _MEMBERS_FILTER.match(path):
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
