"""The SCIM filter subset: parsing, evaluation, query encodings, and robustness."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databricks_access.testing import FakeAccount
from databricks_access.testing._scim_filter import (
    Comparison,
    FilterError,
    Junction,
    count_nodes,
    parse_filter,
)


def q(value: str) -> str:
    """A filter literal, escaped as a careful client does."""
    return json.dumps(value)


@pytest.fixture
def people(fake: FakeAccount) -> dict[str, str]:
    return {
        "alice": fake.add_user("alice@example.com", "Alice Smith", external_id="A1"),
        "alice+test": fake.add_user("alice+test@example.com", "Alice Test"),
        "bob": fake.add_user("bob@example.com", "Bob Jones", active=False),
        "quote": fake.add_user('quo"te@example.com', 'Say "hi" \\ bye'),
    }


def names(api, scim, text: str, kind: str = "Users") -> list[str]:
    reply = api.get(f"{scim}/{kind}", params={"filter": text})
    assert reply.status_code == 200, reply.text
    return [r.get("userName", r.get("displayName")) for r in reply.json().get("Resources", [])]


def test_parse_tree():
    node = parse_filter('userName eq "a" or displayName co "b" and active eq true')
    assert node == Junction(
        "or",
        (
            Comparison("username", "eq", "a"),
            Junction(
                "and", (Comparison("displayname", "co", "b"), Comparison("active", "eq", True))
            ),
        ),
    )
    assert count_nodes(node) == 5


def test_parentheses_and_case_insensitive_keywords():
    node = parse_filter('(UserName EQ "a" OR userName Eq "b") AND Active eq FALSE')
    assert isinstance(node, Junction)
    assert node.operator == "and"
    assert node.operands[1] == Comparison("active", "eq", False)


def test_urn_prefixed_attribute():
    node = parse_filter('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"')
    assert node == Comparison("username", "eq", "a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "alice@example.com"', ["alice@example.com"]),
        ('USERNAME eq "ALICE@EXAMPLE.COM"', ["alice@example.com"]),
        (
            'userName ne "alice@example.com"',
            ["alice+test@example.com", "bob@example.com", 'quo"te@example.com'],
        ),
        ('displayName co "ice"', ["alice@example.com", "alice+test@example.com"]),
        ('displayName sw "bob"', ["bob@example.com"]),
        ('displayName sw "Alice" and displayName co "Test"', ["alice+test@example.com"]),
        (
            'userName eq "bob@example.com" or displayName eq "Alice Smith"',
            ["alice@example.com", "bob@example.com"],
        ),
        (
            '(userName eq "bob@example.com" or userName eq "x") and active eq false',
            ["bob@example.com"],
        ),
        ("active eq true", ["alice@example.com", "alice+test@example.com", 'quo"te@example.com']),
        ('emails.value eq "bob@example.com"', ["bob@example.com"]),
        ('emails co "+test"', ["alice+test@example.com"]),
        ('externalId eq "A1"', ["alice@example.com"]),
        ('externalId eq "a1"', []),
        ('userName eq "nobody@example.com"', []),
        ('userName eq "alice@example.com" and active eq false', []),
        ('name.givenName eq "x"', []),
    ],
)
def test_operators(api, scim, people, text, expected):
    assert names(api, scim, text) == expected


def test_id_filter(api, scim, people):
    assert names(api, scim, f'id eq "{people["bob"]}"') == ["bob@example.com"]
    assert names(api, scim, 'id eq "1"') == []


def test_escaped_quotes_and_backslashes(api, scim, people):
    assert names(api, scim, "userName eq " + q('quo"te@example.com')) == ['quo"te@example.com']
    literal = r'displayName eq "Say \"hi\" \\ bye"'
    assert parse_filter(literal) == Comparison("displayname", "eq", 'Say "hi" \\ bye')
    assert names(api, scim, literal) == ['quo"te@example.com']


def test_an_injected_display_name_cannot_change_the_filter(api, scim, people):
    hostile = 'x" or userName ne "'
    assert names(api, scim, f"displayName eq {q(hostile)}") == []


def test_plus_in_a_user_name_sent_as_percent_2b(fake, scim, people):
    headers = {"Authorization": f"Bearer {fake.static_token()}"}
    text = 'userName eq "alice+test@example.com"'
    for encoded in (quote_plus(text), quote(text, safe="")):  # spaces as + or %20, plus as %2B
        assert "%2B" in encoded
        reply = fake.dispatch("GET", f"{scim}/Users?filter={encoded}", headers)
        assert reply.status == 200
        assert [r["userName"] for r in reply.json()["Resources"]] == ["alice+test@example.com"]


def test_a_raw_plus_in_the_query_is_a_space(fake, scim, people):
    headers = {"Authorization": f"Bearer {fake.static_token()}"}
    reply = fake.dispatch(
        "GET", f'{scim}/Users?filter=userName+eq+"alice+test@example.com"', headers
    )
    assert reply.status == 200
    assert reply.json()["totalResults"] == 0  # it asked for "alice test@example.com"


def test_httpx_params_encoding(api, scim, people):
    # httpx encodes spaces as + and + as %2B, as the official SDK's requests does.
    assert names(api, scim, 'userName eq "alice+test@example.com"') == ["alice+test@example.com"]


def test_group_and_service_principal_filters(fake, api, scim):
    fake.add_group("Data Readers")
    fake.add_group("data-writers")
    creds = fake.add_service_principal("etl")
    assert names(api, scim, 'displayName eq "data readers"', "Groups") == ["Data Readers"]
    assert names(api, scim, 'displayName sw "data"', "Groups") == ["Data Readers", "data-writers"]
    sps = api.get(
        f"{scim}/ServicePrincipals", params={"filter": f'applicationId eq "{creds.client_id}"'}
    ).json()
    assert [r["id"] for r in sps["Resources"]] == [creds.id]


def test_empty_filter_means_no_filter(api, scim, people):
    assert len(names(api, scim, "   ")) == 4


@pytest.mark.parametrize(
    "text",
    [
        "userName pr",
        'userName gt "a"',
        'userName ew "a"',
        'not (userName eq "a")',
        'emails[type eq "work"]',
        'userName eq "a',
        "userName eq a",
        "userName eq 12",
        "userName eq null",
        '(userName eq "a"',
        'userName eq "a")',
        'userName eq "a" and',
        'userName eq "a" extra',
        'or userName eq "a"',
        'eq "a"',
        '"userName" eq "a"',
        "userName",
        "()",
        'shoeSize eq "42"',
        "active co true",
        'userName eq "\\x"',
        '1userName eq "a"',
        "(" * 100 + 'userName eq "a"' + ")" * 100,
    ],
)
def test_invalid_filters_are_400_invalid_filter(api, scim, people, text):
    reply = api.get(f"{scim}/Users", params={"filter": text})
    assert reply.status_code == 400
    body = reply.json()
    assert body["scimType"] == "InvalidFilter"
    assert body["status"] == "400"


def test_group_filters_on_user_attributes_are_400(api, scim):
    assert api.get(f"{scim}/Groups", params={"filter": 'userName eq "a"'}).status_code == 400


def test_scim_2_1_accepts_only_eq(fake, api, people):
    path = f"/api/2.1/accounts/{fake.account_id}/scim/v2/Users"
    ok = api.get(path, params={"filter": 'userName eq "bob@example.com" or userName eq "x"'})
    assert ok.status_code == 200
    assert ok.json()["totalResults"] == 1
    for text in ('displayName co "a"', 'userName ne "a"', 'displayName sw "A"'):
        reply = api.get(path, params={"filter": text})
        assert reply.status_code == 400
        assert reply.json()["scimType"] == "InvalidFilter"


def test_scim_2_1_limits_filter_nodes(fake, api, people):
    path = f"/api/2.1/accounts/{fake.account_id}/scim/v2/Users"
    small = " or ".join(f'userName eq "u{i}"' for i in range(199))  # 199 comparisons + 1 junction
    large = " or ".join(f'userName eq "u{i}"' for i in range(200))
    assert api.get(path, params={"filter": small}).status_code == 200
    assert api.get(path, params={"filter": large}).status_code == 400


def test_long_chains_do_not_recurse(fake, scim, people):
    text = " or ".join(f'userName eq "u{i}"' for i in range(5_000))
    headers = {"Authorization": f"Bearer {fake.static_token()}"}
    assert fake.dispatch("GET", f"{scim}/Users?filter={quote(text)}", headers).status == 200


def test_parser_errors_are_filter_errors():
    for text in ("", "(", '"', "userName eq", 'userName eq "\\ud800" and'):
        with pytest.raises(FilterError):
            parse_filter(text)


_WORDS = [
    "eq",
    "ne",
    "co",
    "sw",
    "and",
    "or",
    "not",
    "pr",
    "true",
    "false",
    "userName",
    "displayName",
    "emails",
    "active",
    "id",
    " ",
    "\t",
    "é",
    "\x00",
]
_FILTER_ALPHABET = st.sampled_from([*'()"\\ []+%.:,', *_WORDS])


@given(st.text(max_size=60) | st.lists(_FILTER_ALPHABET, max_size=25).map("".join))
def test_fuzzed_filters_answer_200_or_400(text):
    fake = FakeAccount(require_auth=False)
    fake.add_user("alice@example.com")
    reply = fake.dispatch("GET", f"{fake.scim_path}/Users?filter={quote(text, safe='')}")
    assert reply.status in (200, 400)
    if reply.status == 400:
        assert reply.json()["scimType"] == "InvalidFilter"
    for version in ("2.0", "2.1"):
        path = f"/api/{version}/accounts/{fake.account_id}/scim/v2/Groups"
        assert fake.dispatch("GET", f"{path}?filter={quote(text, safe='')}").status in (200, 400)


@given(st.text(max_size=80))
def test_fuzzed_raw_query_strings_never_crash(query):
    fake = FakeAccount(require_auth=False)
    fake.add_user("alice@example.com")
    reply = fake.dispatch("GET", f"{fake.scim_path}/Users?{query}")
    assert reply.status in (200, 400)
    assert isinstance(reply.json(), dict)


@given(st.text(max_size=40))
def test_quoted_literals_round_trip(value):
    node = parse_filter(f"displayName eq {json.dumps(value)}")
    assert node == Comparison("displayname", "eq", value)
