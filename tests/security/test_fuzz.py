"""Fuzzing the edges where outside data comes in: no input makes the response parsers,
the error mapper, the SCIM filter and query builders or the configuration loaders raise
anything but the library's own errors (Hypothesis; the profile of `tests/conftest.py`
bounds the examples).

Lone surrogates are drawn on purpose: text that is not valid Unicode is where encoders
raise their own errors.
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any
from urllib.parse import parse_qsl, quote

import hypothesis.strategies as st
from hypothesis import example, given

import databricks_access as da
from databricks_access import AssignedPrincipal, ComplexValue, GrantRule, MemberRef, Name, filter_eq
from databricks_access._account.flows import Reply
from databricks_access._account.scim import encode_query
from databricks_access._hosts import check_host, normalize_host
from helpers.internals import (
    Comparison,
    check_id,
    error_from_reply,
    parse_error_body,
    parse_filter,
    parse_list,
    parse_retry_after,
    structure,
)

# Any code point, surrogates included.
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
VALID_TEXT = st.text(max_size=40)  # no surrogates: what a JSON document can hold

# JSON names the parsers look for, so that generated objects get past the first check.
KEYS = [
    "id", "displayName", "members", "groups", "roles", "entitlements", "value", "display",
    "$ref", "type", "primary", "userName", "name", "givenName", "familyName", "emails",
    "active", "externalId", "applicationId", "meta", "resourceType", "workspace_id",
    "workspace_name", "deployment_name", "workspace_status", "principal", "principal_id",
    "permissions", "user_name", "group_name", "service_principal_name", "etag",
    "grant_rules", "role", "principals", "Resources", "totalResults", "startIndex",
    "itemsPerPage", "schemas",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | VALID_TEXT
    | st.sampled_from(["Users/1", "Groups/2", "ServicePrincipals/3", "User", "Group"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | VALID_TEXT, inner, max_size=6)
    ),
    max_leaves=25,
)
OBJECTS = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8)
MODELS = [
    da.Group,
    da.User,
    da.ServicePrincipal,
    da.Workspace,
    da.PermissionAssignment,
    da.RuleSet,
    MemberRef,
    ComplexValue,
    Name,
    GrantRule,
    AssignedPrincipal,
]


def library_error_or(call) -> Any:
    """The call's result, or None when it raised one of the library's own errors."""
    outcome = outcome_of(call)
    return None if isinstance(outcome, da.DatabricksAccessError) else outcome


def outcome_of(call) -> Any:
    """The call's result, or the library error it raised; anything else propagates."""
    try:
        return call()
    except da.DatabricksAccessError as exc:
        return exc


# -- response parsers --------------------------------------------------------------------------


@given(data=JSON | OBJECTS, model=st.sampled_from(MODELS))
def test_structure_builds_the_model_or_says_the_reply_is_malformed(data, model):
    outcome = outcome_of(lambda: structure(data, model))
    if isinstance(outcome, da.DatabricksAccessError):
        assert isinstance(outcome, da.ServerError)
        assert outcome.error_code == "MALFORMED_RESPONSE"
        assert len(str(outcome)) < 400
    else:
        assert isinstance(outcome, model)


@given(
    data=JSON | OBJECTS | st.fixed_dictionaries({"Resources": st.lists(OBJECTS, max_size=4)}),
    model=st.sampled_from([da.Group, da.User, da.ServicePrincipal]),
)
def test_parse_list_reads_any_page_or_says_it_is_malformed(data, model):
    page = library_error_or(lambda: parse_list(data, model))
    if page is not None:
        assert all(isinstance(item, model) for item in page.items)
        assert page.total_results is None or isinstance(page.total_results, int)


@given(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
@example(body=b"\xff\xfe\x00")
@example(body=b'{"error_code": 1e999}')
@example(body=b'{"error_code": [1], "message": {"a": 1}}')
def test_a_reply_body_is_json_or_a_malformed_response(body):
    value = library_error_or(lambda: Reply(status=200, content=body).json())
    del value


# -- the error mapper ------------------------------------------------------------------------------


@given(
    status=st.integers(min_value=-1, max_value=1000),
    body=st.binary(max_size=300)
    | JSON.map(lambda v: json.dumps(v).encode())
    | OBJECTS.map(lambda v: json.dumps(v).encode())
    | ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
)
@example(status=500, body=b"REQUEST_LIMIT_EXCEEDED: slow down", retry_after=None)
@example(status=429, body=b"", retry_after=None)
@example(status=404, body=b"<html>" + b"x" * 10_000, retry_after=None)
def test_every_reply_maps_to_an_api_error(status, body, retry_after):
    error = error_from_reply(status, body, method="GET", path="/x", retry_after=retry_after)
    assert isinstance(error, da.ApiError)
    assert error.status_code == status
    assert len(error.detail) <= 500
    assert str(error) and repr(error)
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own error, round-tripped
    assert type(again) is type(error)
    assert (again.status_code, again.error_code, again.detail) == (
        error.status_code,
        error.error_code,
        error.detail,
    )
    code, detail = parse_error_body(body)
    assert code is None or isinstance(code, str)
    assert isinstance(detail, str)


@given(value=st.none() | ANY_TEXT | st.sampled_from(["1.5", "-1", "1e400", "nan", "0x10"]))
def test_retry_after_is_a_usable_wait_or_none(value):
    wait = parse_retry_after(value)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


# -- SCIM filters, ids and queries -----------------------------------------------------------------


@given(value=ANY_TEXT)
@example(value='ops" or displayName co "')
@example(value="\\")
@example(value='\\"')
@example(value="a\ud800b")
def test_a_filter_value_reads_back_as_exactly_itself(value):
    text = outcome_of(lambda: filter_eq("displayName", value))
    if isinstance(text, da.DatabricksAccessError):
        assert isinstance(text, da.ConfigError)
        assert text.fields == ("displayName",)
        return
    assert parse_filter(text) == Comparison("displayname", "eq", value)
    assert quote(text)  # the filter can be sent: it encodes


@given(attribute=ANY_TEXT, value=VALID_TEXT.filter(str.isprintable).filter(bool))
def test_a_filter_attribute_is_an_attribute_name_or_refused(attribute, value):
    text = library_error_or(lambda: filter_eq(attribute, value))
    if text is not None:
        assert text.startswith(f"{attribute} eq ")
        assert (
            attribute.replace(".", "").replace("_", "").replace("-", "").replace("$", "").isalnum()
        )


@given(value=ANY_TEXT | st.sampled_from(["..", ".", "a/b", "%2F", "1?x", "1#", "1 2", "١٢٣"]))
def test_an_id_is_safe_in_a_path_or_refused(value):
    checked = library_error_or(lambda: check_id(value, "group_id"))
    if checked is not None:
        assert checked == value
        assert quote(value, safe=":") == value  # nothing a URL parser reads as structure
        assert value.strip(".") and value[0] != "."


@given(pairs=st.lists(st.tuples(VALID_TEXT.filter(bool), VALID_TEXT), max_size=5))
@example(pairs=[("filter", 'userName eq "alice+test@example.com"'), ("count", "1")])
def test_a_query_decodes_to_exactly_what_was_encoded(pairs):
    assert parse_qsl(encode_query(pairs), keep_blank_values=True) == pairs


# -- configuration loaders ----------------------------------------------------------------------

ANYTHING = (
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT | st.binary(max_size=10)
)
HOSTS = ANY_TEXT | st.sampled_from(
    [
        "https://accounts.cloud.databricks.com",
        "accounts.azuredatabricks.net/login",
        "http://127.0.0.1:8080",
        "https://[::1]:443",
        "https://a@b.cloud.databricks.com",
    ]
)


@given(
    host=HOSTS | ANYTHING,
    account_id=st.sampled_from(["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]) | ANYTHING,
    options=st.dictionaries(
        st.sampled_from(
            [
                "scim_version",
                "timeout",
                "connect_timeout",
                "deadline",
                "max_attempts",
                "token_endpoint",
                "allow_custom_host",
                "allow_insecure_http",
                "insecure_skip_tls_verify",
            ]
        ),
        ANYTHING | HOSTS,
        max_size=4,
    ),
)
def test_account_config_is_valid_or_a_config_error(host, account_id, options):
    config = library_error_or(lambda: da.AccountConfig(host=host, account_id=account_id, **options))
    if config is not None:
        assert config.host.startswith(
            ("https://", "http://127.", "http://localhost", "http://[::1]")
        )
        assert config.host == normalize_host(
            config.host,
            allow_custom_host=config.allow_custom_host,
            allow_insecure_http=config.allow_insecure_http,
        )
        assert isinstance(config.insecure_skip_tls_verify, bool)


@given(host=HOSTS | ANYTHING)
def test_check_host_never_raises(host):
    normalised, problems = check_host(host, allow_custom_host=True, allow_insecure_http=True)
    assert (normalised is None) == bool(problems)


INTEGRATION_KEYS = [
    "name",
    "accounts_url",
    "account_id",
    "custom_access_details",
    "integration_owners",
    "resource_owner",
    "lease_store",
    "secret_store",
    "allow_custom_host",
    "allow_insecure_http",
]
INTEGRATION = st.dictionaries(
    st.sampled_from(INTEGRATION_KEYS) | VALID_TEXT,
    JSON
    | HOSTS
    | st.lists(VALID_TEXT, max_size=3)
    | st.fixed_dictionaries({"tag_key": JSON, "idp_attribute": JSON}),
    max_size=8,
)


@given(data=INTEGRATION | JSON)
@example(data={"name": "x", "accounts_url": "accounts.cloud.databricks.com"})
def test_integration_config_from_dict_is_valid_or_a_config_error(data):
    config = library_error_or(lambda: da.IntegrationConfig.from_dict(data))
    if config is not None:
        assert da.IntegrationConfig.from_dict(config.to_dict()) == config


@given(text=ANY_TEXT.map(lambda t: "{" + t) | INTEGRATION.map(json.dumps))
@example(text="{" * 100_000)
@example(text='{"name": "a", "name": "b"}')
def test_integration_config_from_json_is_valid_or_a_config_error(text):
    library_error_or(lambda: da.IntegrationConfig.from_json(text))


@given(
    environ=st.dictionaries(
        st.sampled_from(
            [
                f"DATABRICKS_ACCESS_{key.upper()}"
                for key in INTEGRATION_KEYS
                if key != "resource_owner"
            ]
            + [
                "DATABRICKS_ACCESS_RESOURCE_OWNER_TAG_KEY",
                "DATABRICKS_ACCESS_RESOURCE_OWNER_IDP_ATTRIBUTE",
                "DATABRICKS_ACCESS_OTHER",
            ]
        ),
        ANY_TEXT | HOSTS,
        max_size=8,
    )
)
def test_integration_config_from_env_is_valid_or_a_config_error(environ):
    library_error_or(lambda: da.IntegrationConfig.from_env(environ))


@given(text=ANY_TEXT | JSON.map(json.dumps) | OBJECTS.map(json.dumps))
@example(text='{"client_id": "a", "client_secret": "\\ud800"}')
def test_a_secret_file_parses_or_is_a_secret_store_error(text):
    store = da.FileSecretStore("/nonexistent/creds.json")
    credentials = outcome_of(lambda: store._parse_json(text))
    if isinstance(credentials, da.DatabricksAccessError):
        assert isinstance(credentials, da.SecretStoreError)
        assert "/nonexistent/creds.json" in str(credentials)
    else:
        assert credentials.client_id and credentials.client_secret
