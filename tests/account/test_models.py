"""Models <-> JSON: Hypothesis round trips, and every response shape of WIRE.md."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given

import databricks_access as da
from helpers.internals import parse_list, structure, unstructure

text = st.text(min_size=1, max_size=20)
ids = st.from_regex(r"[0-9]{1,16}", fullmatch=True)
maybe = st.none() | text
complex_values = st.builds(
    da.ComplexValue,
    value=text,
    display=maybe,
    primary=st.none() | st.booleans(),
    type=maybe,
    ref=maybe,
)


@st.composite
def member_refs(draw):
    member_id = draw(ids)
    kind = draw(st.sampled_from(list(da.PrincipalKind)))
    # A member read from JSON names its kind by `$ref` (or, without one, by `type`).
    ref = draw(st.sampled_from([None, f"{kind.scim_resource}/{member_id}"]))
    return da.MemberRef(id=member_id, display=draw(maybe), kind=kind, ref=ref)


users = st.builds(
    da.User,
    id=ids,
    user_name=text,
    display_name=maybe,
    active=st.booleans(),
    external_id=maybe,
    name=st.none() | st.builds(da.Name, given_name=maybe, family_name=maybe),
    emails=st.tuples(complex_values),
    groups=st.lists(complex_values, max_size=3).map(tuple),
    roles=st.lists(complex_values, max_size=2).map(tuple),
    entitlements=st.lists(complex_values, max_size=2).map(tuple),
)
groups = st.builds(
    da.Group,
    id=ids,
    display_name=text,
    external_id=maybe,
    members=st.lists(member_refs(), max_size=5).map(tuple),
    groups=st.lists(complex_values, max_size=2).map(tuple),
    resource_type=st.none() | st.sampled_from(["Group", "WorkspaceGroup"]),
)
service_principals = st.builds(
    da.ServicePrincipal, id=ids, application_id=text, display_name=maybe, active=st.booleans()
)
workspaces = st.builds(
    da.Workspace,
    workspace_id=st.integers(1, 2**53),
    workspace_name=text,
    deployment_name=maybe,
    workspace_status=maybe,
)
assignments = st.builds(
    da.PermissionAssignment,
    principal=st.builds(da.AssignedPrincipal, principal_id=st.integers(1, 2**53), user_name=maybe),
    permissions=st.lists(st.sampled_from(["USER", "ADMIN"]), max_size=2).map(tuple),
)
rule_sets = st.builds(
    da.RuleSet,
    name=text,
    etag=text,
    grant_rules=st.lists(
        st.builds(da.GrantRule, role=text, principals=st.lists(text, max_size=3).map(tuple)),
        max_size=3,
    ).map(tuple),
)


@pytest.mark.parametrize(
    "strategy",
    [users, groups, service_principals, workspaces, assignments, rule_sets],
    ids=lambda s: repr(s)[:30],
)
@given(data=st.data())
def test_model_to_json_to_model_round_trips(strategy, data):
    value = data.draw(strategy)
    assert structure(unstructure(value), type(value)) == value


def test_json_names_are_the_servers():
    group = structure(
        {"id": "1", "displayName": "ops", "externalId": "x", "meta": {"resourceType": "Group"}},
        da.Group,
    )
    assert unstructure(group) == {
        "id": "1",
        "displayName": "ops",
        "externalId": "x",
        "meta": {"resourceType": "Group"},
    }
    assert unstructure(da.ComplexValue(value="1", ref="Groups/1")) == {
        "value": "1",
        "$ref": "Groups/1",
    }


# -- the shapes WIRE.md lists ----------------------------------------------------------------


def test_a_group_without_a_members_key_has_members_not_fetched():
    # A listing leaves members out; only a read that asked for them can say "none".
    group = structure({"id": "7", "displayName": "empty"}, da.Group)
    assert group.members is None
    assert group.member_ids == frozenset()
    assert structure({"id": "7", "members": []}, da.Group).members == ()


def test_a_final_empty_object_page_is_an_empty_page():
    page = parse_list({}, da.Group)
    assert page.items == ()
    assert page.total_results is None


def test_list_response_fields():
    page = parse_list(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": "3",
            "startIndex": 2,
            "itemsPerPage": 1,
            "Resources": [{"id": "9", "displayName": "x"}],
        },
        da.Group,
    )
    assert (page.total_results, page.start_index, page.items_per_page) == (3, 2, 1)
    assert page.items[0].id == "9"


def test_user_groups_entries_may_carry_type_direct():
    user = structure(
        {
            "id": "1",
            "userName": "a@x.com",
            "groups": [{"value": "5", "type": "direct", "display": "ops"}],
        },
        da.User,
    )
    assert user.groups[0].type == "direct"
    assert user.groups[0].value == "5"


def test_member_kinds_from_ref_forms():
    group = structure(
        {
            "id": "1",
            "members": [
                {"value": "2", "$ref": "Users/2"},
                {
                    "value": "3",
                    "$ref": "https://accounts.cloud.databricks.com/api/2.0/accounts/x/scim/v2/ServicePrincipals/3",
                },
                {"value": "4", "$ref": "Groups/4"},
                {"value": "5", "type": "User"},
                {"value": 6},
            ],
        },
        da.Group,
    )
    assert [m.kind for m in group.members] == [
        da.PrincipalKind.USER,
        da.PrincipalKind.SERVICE_PRINCIPAL,
        da.PrincipalKind.GROUP,
        da.PrincipalKind.USER,
        None,
    ]
    assert group.members[4].id == "6"
    assert group.members[4].principal is None


def test_unknown_fields_and_nulls_never_break_a_parse():
    user = structure(
        {
            "id": 12,
            "userName": "a@x.com",
            "active": None,
            "brandNewField": {"nested": [1, 2]},
            "emails": None,
        },
        da.User,
    )
    assert user.id == "12"
    assert user.active is True
    assert user.emails == ()


def test_workspace_assignment_and_rule_set_shapes():
    ws = structure(
        {
            "workspace_id": 1234,
            "workspace_name": "prod",
            "deployment_name": "dbc-1",
            "workspace_status": "RUNNING",
            "extra": 1,
        },
        da.Workspace,
    )
    assert ws.workspace_id == 1234
    pa = structure(
        {
            "principal": {"principal_id": 5, "display_name": "ops", "group_name": "ops"},
            "permissions": ["ADMIN"],
        },
        da.PermissionAssignment,
    )
    assert pa.principal.kind is da.PrincipalKind.GROUP
    assert pa.principal.ref == da.PrincipalRef("group", "5")
    rules = structure(
        {
            "name": "n",
            "etag": "e",
            "grant_rules": [{"role": "roles/group.manager", "principals": ["users/a@x.com"]}],
        },
        da.RuleSet,
    )
    assert rules.grant_rules[0].principals == ("users/a@x.com",)
    assert structure({"name": "n", "etag": "e"}, da.RuleSet).grant_rules == ()


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ([1, 2], da.Group),
        ({"displayName": "no id"}, da.Group),
        ({"id": "1", "members": "not a list"}, da.Group),
        ({"id": "1", "members": [{"display": "no value"}]}, da.Group),
        ("text", da.User),
    ],
)
def test_wrong_shapes_are_server_errors_not_crashes(data, cls):
    with pytest.raises(da.ServerError, match="MALFORMED_RESPONSE"):
        structure(data, cls)


def test_principal_ref_accepts_the_kind_by_value():
    assert da.PrincipalRef("service_principal", "9").kind is da.PrincipalKind.SERVICE_PRINCIPAL
    assert str(da.PrincipalRef("group", "4")) == "Groups/4"
    with pytest.raises(ValueError, match="robot"):
        da.PrincipalRef("robot", "1")
