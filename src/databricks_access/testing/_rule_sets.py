"""Access-control rule sets, with etag-based optimistic concurrency, and assignable roles.

A rule set belongs to the account (`accounts/{account}/ruleSets/default`), a group
(`accounts/{account}/groups/{group}/ruleSets/default`: who manages it) or a service
principal (`accounts/{account}/servicePrincipals/{application id}/ruleSets/default`: who
may use or manage it). `GET .../access-control/rule-sets?name=...` answers `{name, etag,
grant_rules}`; `PUT` takes `{"name", "rule_set": {"name", "grant_rules", "etag"}}` and
answers 409 `RESOURCE_CONFLICT` when the etag is stale. `GET
.../access-control/assignable-roles?resource=...` answers `{"roles": [{"name"}]}`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    Rejection,
    json_response,
    parse_json_body,
    rest_error,
)
from databricks_access.testing._state import (
    GROUP_MANAGER_ROLE,
    SP_MANAGER_ROLE,
    SP_USER_ROLE,
    AccountState,
    RuleSet,
)

__all__ = [
    "ASSIGNABLE_ROLES",
    "handle_assignable_roles",
    "handle_rule_sets",
    "rule_set_resource",
]

ASSIGNABLE_ROLES: Mapping[str, tuple[str, ...]] = {
    "account": ("roles/marketplace.admin", "roles/billing.admin"),
    "groups": (GROUP_MANAGER_ROLE,),
    "servicePrincipals": (SP_MANAGER_ROLE, SP_USER_ROLE),
}
"""The roles a rule set may grant, by kind of resource (the account's are unverified)."""


def _invalid(message: str) -> Rejection:
    return rest_error(400, "INVALID_PARAMETER_VALUE", message)


def _etag(resource: str, rule_set: RuleSet) -> str:
    return base64.b64encode(f"ruleset:{resource}:{rule_set.version}".encode()).decode()


def _resource(state: AccountState, name: object, *, suffix: bool, by_id: bool = False) -> str:
    """The resource a rule set name (or an assignable-roles resource) names.

    Returns `""` for the account, `groups/<group id>` or `servicePrincipals/<application
    id>`. A service principal is named by its application id; `by_id` also accepts its
    SCIM id (the assignable-roles endpoint documents `<SP_ID>`).
    """
    what = "rule set name" if suffix else "resource"
    if not isinstance(name, str) or not name:
        raise _invalid(f"The {what} is missing.")
    parts = name.split("/")
    if suffix:
        if parts[-2:] != ["ruleSets", "default"]:
            raise _invalid(f"Unsupported rule set name {name!r}: it must end in /ruleSets/default.")
        parts = parts[:-2]
    if len(parts) not in (2, 4) or parts[0] != "accounts":
        raise _invalid(
            f"Unsupported {what} {name!r}: expected accounts/<account id>, "
            "accounts/<account id>/groups/<group id> or "
            "accounts/<account id>/servicePrincipals/<application id>."
        )
    if parts[1] != state.account_id:
        raise _invalid(f"The {what} {name!r} belongs to another account.")
    if len(parts) == 2:
        return ""
    kind, key = parts[2], parts[3]
    if kind == "groups":
        if key not in state.groups:
            raise rest_error(404, "RESOURCE_DOES_NOT_EXIST", f"Group {key} does not exist.")
        return f"groups/{key}"
    if kind == "servicePrincipals":
        sp = state.service_principal_by_client_id(key)
        if sp is None and by_id:
            sp = state.service_principals.get(key)
        if sp is None:
            raise rest_error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Service principal {key} does not exist."
            )
        return f"servicePrincipals/{sp.application_id}"
    raise _invalid(
        f"Unsupported {what} {name!r}: rule sets exist on groups and service principals."
    )


def rule_set_resource(state: AccountState, name: str) -> str:
    """The resource a rule set name names (see `_resource`); raises `Rejection`."""
    return _resource(state, name, suffix=True)


def _kind(resource: str) -> str:
    return resource.partition("/")[0] or "account"


def _render(name: str, resource: str, rule_set: RuleSet) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "etag": _etag(resource, rule_set)}
    if rule_set.grant_rules:
        out["grant_rules"] = [
            {"role": role, "principals": list(principals)}
            for role, principals in rule_set.grant_rules
        ]
    return out


def _grant_rules(
    state: AccountState, resource: str, value: object
) -> list[tuple[str, tuple[str, ...]]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid("grant_rules must be a list.")
    allowed = ASSIGNABLE_ROLES[_kind(resource)]
    rules = []
    for rule in value:
        if not isinstance(rule, dict):
            raise _invalid("Every grant rule must be an object.")
        role = rule.get("role")
        if role not in allowed:
            target = "the account" if not resource else f"a {_kind(resource)[:-1]}"
            raise _invalid(f"The role {role!r} cannot be granted on {target}.")
        principals = rule.get("principals", [])
        if not isinstance(principals, list) or not all(isinstance(p, str) for p in principals):
            raise _invalid("principals must be a list of strings.")
        for principal in principals:
            if not state.rule_principal_exists(principal):
                raise _invalid(f"The principal {principal!r} does not exist.")
        rules.append((str(role), tuple(principals)))
    return rules


def handle_rule_sets(state: AccountState, request: FakeRequest) -> FakeResponse:
    """Answer `GET` or `PUT` on the rule-sets endpoint."""
    if request.method == "GET":
        name = request.params.get("name")
        resource = _resource(state, name, suffix=True)
        return json_response(200, _render(str(name), resource, state.rule_set(resource)))
    body = parse_json_body(request.body, _invalid)
    rule_set = body.get("rule_set") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(rule_set, dict):
        raise _invalid("The body must be {'name': ..., 'rule_set': {...}}.")
    name = body.get("name")
    resource = _resource(state, name, suffix=True)
    if rule_set.get("name", name) != name:
        raise _invalid("rule_set.name must match name.")
    etag = rule_set.get("etag")
    if not isinstance(etag, str) or not etag:
        raise _invalid("rule_set.etag is required: read the rule set first.")
    rules = _grant_rules(state, resource, rule_set.get("grant_rules"))
    if etag != _etag(resource, state.rule_set(resource)):
        raise rest_error(
            409,
            "RESOURCE_CONFLICT",
            "The rule set was changed since it was read (stale etag): read it again and retry.",
        )
    updated = state.set_grant_rules(resource, rules)
    return json_response(200, _render(str(name), resource, updated))


def handle_assignable_roles(state: AccountState, request: FakeRequest) -> FakeResponse:
    """Answer `GET .../access-control/assignable-roles?resource=...`."""
    resource = _resource(state, request.params.get("resource"), suffix=False, by_id=True)
    roles = ASSIGNABLE_ROLES[_kind(resource)]
    return json_response(200, {"roles": [{"name": role} for role in roles]})
