"""Group rule sets (who manages a group), with etag-based optimistic concurrency.

`GET .../access-control/rule-sets?name=accounts/{account}/groups/{group}/ruleSets/default`
answers `{name, etag, grant_rules}`; `PUT` takes `{"name", "rule_set": {"name",
"grant_rules", "etag"}}` and answers 409 `RESOURCE_CONFLICT` when the etag is stale.
"""

from __future__ import annotations

import base64
from typing import Any

from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    Rejection,
    json_response,
    parse_json_body,
    rest_error,
)
from databricks_access.testing._state import GROUP_MANAGER_ROLE, AccountState, RuleSet

__all__ = ["handle_rule_sets"]


def _invalid(message: str) -> Rejection:
    return rest_error(400, "INVALID_PARAMETER_VALUE", message)


def _etag(group_id: str, rule_set: RuleSet) -> str:
    return base64.b64encode(f"ruleset:{group_id}:{rule_set.version}".encode()).decode()


def _group_id(state: AccountState, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise _invalid("The rule set name is missing.")
    parts = name.split("/")
    shape_ok = (
        len(parts) == 6
        and parts[0] == "accounts"
        and parts[2] == "groups"
        and parts[4:] == ["ruleSets", "default"]
    )
    if not shape_ok:
        raise _invalid(
            f"Unsupported rule set name {name!r}: expected "
            "accounts/<account id>/groups/<group id>/ruleSets/default."
        )
    if parts[1] != state.account_id:
        raise _invalid(f"The rule set {name!r} belongs to another account.")
    if parts[3] not in state.groups:
        raise rest_error(404, "RESOURCE_DOES_NOT_EXIST", f"Group {parts[3]} does not exist.")
    return parts[3]


def _render(name: str, group_id: str, rule_set: RuleSet) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "etag": _etag(group_id, rule_set)}
    if rule_set.grant_rules:
        out["grant_rules"] = [
            {"role": role, "principals": list(principals)}
            for role, principals in rule_set.grant_rules
        ]
    return out


def _grant_rules(state: AccountState, value: object) -> list[tuple[str, tuple[str, ...]]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid("grant_rules must be a list.")
    rules = []
    for rule in value:
        if not isinstance(rule, dict):
            raise _invalid("Every grant rule must be an object.")
        role = rule.get("role")
        if role != GROUP_MANAGER_ROLE:
            raise _invalid(f"The role {role!r} cannot be granted on a group.")
        principals = rule.get("principals", [])
        if not isinstance(principals, list) or not all(isinstance(p, str) for p in principals):
            raise _invalid("principals must be a list of strings.")
        for principal in principals:
            if not state.rule_principal_exists(principal):
                raise _invalid(f"The principal {principal!r} does not exist.")
        rules.append((role, tuple(principals)))
    return rules


def handle_rule_sets(state: AccountState, request: FakeRequest) -> FakeResponse:
    """Answer `GET` or `PUT` on the rule-sets endpoint."""
    if request.method == "GET":
        name = request.params.get("name")
        group_id = _group_id(state, name)
        return json_response(200, _render(str(name), group_id, state.rule_set(group_id)))
    body = parse_json_body(request.body, _invalid)
    rule_set = body.get("rule_set") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(rule_set, dict):
        raise _invalid("The body must be {'name': ..., 'rule_set': {...}}.")
    name = body.get("name")
    group_id = _group_id(state, name)
    if rule_set.get("name", name) != name:
        raise _invalid("rule_set.name must match name.")
    etag = rule_set.get("etag")
    if not isinstance(etag, str) or not etag:
        raise _invalid("rule_set.etag is required: read the rule set first.")
    rules = _grant_rules(state, rule_set.get("grant_rules"))
    if etag != _etag(group_id, state.rule_set(group_id)):
        raise rest_error(
            409,
            "RESOURCE_CONFLICT",
            "The rule set was changed since it was read (stale etag): read it again and retry.",
        )
    updated = state.set_grant_rules(group_id, rules)
    return json_response(200, _render(str(name), group_id, updated))
