"""The host normaliser, account IDs and AccountConfig."""

from __future__ import annotations

import doctest
import math
import pickle
import re
import string
from typing import Any

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from databricks_access import (
    AccountConfig,
    Cloud,
    ConfigError,
    ConfigProblem,
    DatabricksAccessError,
)
from databricks_access._account import config as _config
from databricks_access._account.config import (
    check_account_id,
    check_endpoint,
    check_host,
    cloud_for_host,
    normalize_host,
)
from helpers.doctests import run_doctests

ACCOUNT_ID = "0a1b2c3d-0000-4000-8000-00000000abcd"
AWS = "https://accounts.cloud.databricks.com"


def problems_of(value: str, **flags: Any) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigError) as info:
        normalize_host(value, **flags)
    return info.value.problems


# --- every cloud suffix -------------------------------------------------------------------

CLOUD_HOSTS = [
    ("accounts.cloud.databricks.com", Cloud.AWS),
    ("accounts.azuredatabricks.net", Cloud.AZURE),
    ("accounts.gcp.databricks.com", Cloud.GCP),
    ("accounts.cloud.databricks.us", Cloud.AWS_GOV),
    ("accounts-dod.cloud.databricks.mil", Cloud.AWS_DOD),
    ("accounts.azuredatabricks.us", Cloud.AZURE_GOV),
    ("accounts.azuredatabricks.cn", Cloud.AZURE_CHINA),
    ("accounts.databricks.azure.cn", Cloud.AZURE_CHINA),
]


@pytest.mark.parametrize(("name", "cloud"), CLOUD_HOSTS)
def test_every_cloud_suffix_is_accepted(name, cloud):
    assert normalize_host(f"https://{name}") == f"https://{name}"
    assert cloud_for_host(f"https://{name}") is cloud
    assert cloud_for_host(name) is cloud


def test_cloud_values_are_lower_case():
    assert {c.value for c in Cloud} == {
        "aws",
        "azure",
        "gcp",
        "aws_gov",
        "aws_dod",
        "azure_gov",
        "azure_china",
        "custom",
    }


@pytest.mark.parametrize(
    "host",
    ["http://localhost:8080", "https://proxy.example.com", "https://[::1]:9", "127.0.0.1"],
)
def test_other_hosts_are_custom(host):
    assert cloud_for_host(host) is Cloud.CUSTOM


@pytest.mark.parametrize("host", ["", "https://user:pw@accounts.cloud.databricks.com", "a b"])
def test_cloud_for_host_refuses_what_cannot_be_parsed(host):
    with pytest.raises(ConfigError):
        cloud_for_host(host)


# --- accepted forms and their normalisation -----------------------------------------------

NORMALISED = [
    # pasted console URLs
    ("https://accounts.cloud.databricks.com/", AWS),
    ("https://accounts.cloud.databricks.com/login", AWS),
    ("https://accounts.cloud.databricks.com/login/", AWS),
    ("https://accounts.cloud.databricks.com/?o=1234567890", AWS),
    ("https://accounts.cloud.databricks.com?o=1", AWS),
    ("https://accounts.cloud.databricks.com#workspaces", AWS),
    ("https://accounts.cloud.databricks.com/a/../../b?x=1#f", AWS),
    ("https://accounts.cloud.databricks.com/login?next=https://evil.example", AWS),
    # bare hosts
    ("accounts.cloud.databricks.com", AWS),
    ("accounts.cloud.databricks.com/login", AWS),
    ("accounts.cloud.databricks.com?o=1", AWS),
    # case and surrounding whitespace
    ("HTTPS://ACCOUNTS.Cloud.Databricks.COM", AWS),
    ("  https://accounts.cloud.databricks.com\n", AWS),
    ("\u3000https://accounts.cloud.databricks.com\u00a0", AWS),
    # the explicit default port is dropped
    ("https://accounts.cloud.databricks.com:443", AWS),
    ("https://accounts.cloud.databricks.com:443/login", AWS),
    ("accounts.cloud.databricks.com:443", AWS),
    # an empty port means the default (RFC 3986)
    ("https://accounts.cloud.databricks.com:/", AWS),
    # deeper subdomains and xn-- labels are still under the suffix
    ("https://a.b.accounts.azuredatabricks.net", "https://a.b.accounts.azuredatabricks.net"),
    ("https://xn--80ak6aa92e.cloud.databricks.com", "https://xn--80ak6aa92e.cloud.databricks.com"),
]


@pytest.mark.parametrize(("value", "expected"), NORMALISED)
def test_accepted_forms_are_normalised(value, expected):
    assert normalize_host(value) == expected
    assert check_host(value) == (expected, ())


CUSTOM = [
    ("https://proxy.example.com", "https://proxy.example.com"),
    ("https://Proxy.Example.com:8443/x", "https://proxy.example.com:8443"),
    ("https://proxy.example.com:443", "https://proxy.example.com"),
    ("proxy.internal:9000", "https://proxy.internal:9000"),
    ("https://fake_account:8000", "https://fake_account:8000"),
    ("https://10.0.0.1:8443", "https://10.0.0.1:8443"),
    ("https://[2001:DB8::0001]:8443/", "https://[2001:db8::1]:8443"),
    ("https://localhost", "https://localhost"),
    ("https://cloud.databricks.com", "https://cloud.databricks.com"),
]


@pytest.mark.parametrize(("value", "expected"), CUSTOM)
def test_custom_hosts_need_the_flag(value, expected):
    assert normalize_host(value, allow_custom_host=True) == expected
    problems = problems_of(value)
    assert "allow_custom_host=True" in problems[-1].message
    assert "not a Databricks accounts host" in problems[-1].message


# --- http and loopback ----------------------------------------------------------------------

LOOPBACK = [
    ("http://localhost:8080", "http://localhost:8080"),
    ("http://LOCALHOST:8080/api", "http://localhost:8080"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.255.0.9", "http://127.255.0.9"),
    ("http://127.0.0.1:80", "http://127.0.0.1"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
]


@pytest.mark.parametrize(("value", "expected"), LOOPBACK)
def test_http_loopback_needs_both_flags(value, expected):
    both: dict[str, Any] = {"allow_custom_host": True, "allow_insecure_http": True}
    assert normalize_host(value, **both) == expected

    only_http = problems_of(value, allow_insecure_http=True)
    assert [p.message for p in only_http] == [only_http[0].message]
    assert "allow_custom_host=True" in only_http[0].message

    only_custom = problems_of(value, allow_custom_host=True)
    assert len(only_custom) == 1
    assert "uses http; only https is accepted" in only_custom[0].message
    assert "allow_insecure_http=True" in only_custom[0].message

    assert len(problems_of(value)) == 2


@pytest.mark.parametrize(
    "value",
    [
        "http://accounts.cloud.databricks.com",
        "http://accounts.cloud.databricks.com:80/login",
        "http://example.com",
        "http://10.0.0.1",
        "http://[::2]",
        "http://localhost.example.com",
        "http://0.0.0.0",
    ],
)
def test_http_is_refused_for_anything_not_loopback(value):
    problems = problems_of(value, allow_custom_host=True, allow_insecure_http=True)
    assert len(problems) == 1
    message = str(problems[0])
    assert re.match(r"host: 'http://[^']+' uses http; only https is accepted \(", message)
    assert "loopback" in message


def test_http_message_names_the_host():
    (problem,) = problems_of("http://accounts.cloud.databricks.com/login")
    assert str(problem) == (
        "host: 'http://accounts.cloud.databricks.com' uses http; only https is accepted "
        "(http only for a loopback emulator on localhost, 127.0.0.0/8 or [::1], "
        "with allow_insecure_http=True and allow_custom_host=True)"
    )


# --- refused ----------------------------------------------------------------------------------

REFUSED = [
    # ports on Databricks hosts
    ("https://accounts.cloud.databricks.com:8443", "has a port"),
    ("accounts.azuredatabricks.net:80", "has a port"),
    # label-boundary tricks
    ("https://evilcloud.databricks.com.attacker.io", "not a Databricks accounts host"),
    ("https://xcloud.databricks.com", "not a Databricks accounts host"),
    ("https://cloud.databricks.com", "not a Databricks accounts host"),
    ("https://accounts.cloud.databricks.com.evil.io", "not a Databricks accounts host"),
    ("https://accountsazuredatabricks.net", "not a Databricks accounts host"),
    ("https://databricks.azure.cn", "not a Databricks accounts host"),
    ("https://evil.io#.cloud.databricks.com", "not a Databricks accounts host"),
    ("https://evil.io?.cloud.databricks.com", "not a Databricks accounts host"),
    ("https://evil.io/.cloud.databricks.com", "not a Databricks accounts host"),
    ("https://accounts.cloud.databricks.com.", "ends with a dot"),
    # other schemes
    ("ftp://accounts.cloud.databricks.com", "uses scheme 'ftp'"),
    ("wss://accounts.cloud.databricks.com", "uses scheme 'wss'"),
    ("1https://accounts.cloud.databricks.com", "malformed scheme"),
    ("https:accounts.cloud.databricks.com", "malformed scheme"),
    ("//accounts.cloud.databricks.com", "has no host name"),
    # empty and whitespace
    ("", "is empty"),
    ("   ", "is empty"),
    ("\n\t", "is empty"),
    ("https://accounts.cloud.databricks.com /login", "contains whitespace"),
    ("https://accounts .cloud.databricks.com", "contains whitespace"),
    # control characters and backslashes
    ("https://accounts.cloud.databricks.com\x00.evil.io", "control character (U+0000)"),
    ("https://accounts.cloud.databricks.com\x7f", "control character (U+007F)"),
    ("https://evil.io\\@accounts.cloud.databricks.com", "backslash"),
    ("https://evil.io\\.cloud.databricks.com", "backslash"),
    # IDN and unicode tricks
    ("https://\u0430ccounts.cloud.databricks.com", "non-ASCII character (U+0430)"),
    ("https://accounts\uff0ecloud.databricks.com", "non-ASCII character (U+FF0E)"),
    ("https://evil.io\uff0f.cloud.databricks.com", "non-ASCII character (U+FF0F)"),
    ("https://evil.io\u200b.cloud.databricks.com", "non-ASCII character (U+200B)"),
    ("https://accounts.cloud.databricks.com/l\u00f6gin", "non-ASCII character (U+00F6)"),
    ("https://b\u00fccher.example", "xn--"),
    # malformed names, ports and addresses
    ("https://", "has no host name"),
    ("https://:443", "has no host name"),
    ("https://a..cloud.databricks.com", "not a valid host name"),
    ("https://-a.cloud.databricks.com", "not a valid host name"),
    ("https://a-.cloud.databricks.com", "not a valid host name"),
    ("https://a%2e.cloud.databricks.com", "not a valid host name"),
    ("https://" + "a" * 64 + ".cloud.databricks.com", "not a valid host name"),
    ("https://accounts.cloud.databricks.com:x", "a port is a number 1-65535"),
    ("https://accounts.cloud.databricks.com:0", "a port is a number 1-65535"),
    ("https://accounts.cloud.databricks.com:65536", "a port is a number 1-65535"),
    ("https://accounts.cloud.databricks.com:1:2", "a port is a number 1-65535"),
    ("https://127.1", "not a valid IPv4 address"),
    ("https://2130706433", "not a valid IPv4 address"),
    ("https://0x7f.0.0.1", "not a valid IPv4 address"),
    ("https://127.000.000.001", "not a valid IPv4 address"),
    ("https://[::1", "unclosed '['"),
    ("https://[::1]x", "characters after the IPv6 address"),
    ("https://[fe80::1%25eth0]", "zone identifier"),
    ("https://[::g]", "not a valid IPv6 address"),
]


@pytest.mark.parametrize(("value", "expected"), REFUSED)
def test_refused_forms(value, expected):
    problems = problems_of(value)
    assert all(p.field == "host" for p in problems)
    assert any(expected in p.message for p in problems), problems
    # The flags never rescue a malformed value or a port on a Databricks host.
    if "Databricks" not in expected:
        with pytest.raises(ConfigError):
            normalize_host(value, allow_custom_host=True, allow_insecure_http=True)


def test_a_refused_value_has_no_normalised_form():
    assert check_host("https://xcloud.databricks.com")[0] is None


@pytest.mark.parametrize(
    "value",
    [
        "https://user:hunter2secret@accounts.cloud.databricks.com",
        "https://hunter2secret@accounts.cloud.databricks.com/login",
        "user:hunter2secret@accounts.cloud.databricks.com",
        "https://accounts.cloud.databricks.com:hunter2secret@evil.io",
        "http://u:hunter2secret@localhost:8080",
        "https://u:hunter2secret@@evil.io:99",
    ],
)
def test_userinfo_is_refused_and_never_echoed(value):
    all_flags: list[dict[str, Any]] = [{}, {"allow_custom_host": True, "allow_insecure_http": True}]
    for flags in all_flags:
        with pytest.raises(ConfigError) as info:
            normalize_host(value, **flags)
        assert "user information" in info.value.problems[0].message
        assert "hunter2secret" not in str(info.value)
        assert "hunter2secret" not in repr(info.value)
        assert all("hunter2secret" not in p.message for p in info.value.problems)


def test_several_problems_of_one_host_are_all_reported():
    problems = problems_of("http://user:pw@example.com:8080/x")
    messages = [p.message for p in problems]
    assert len(messages) == 3
    assert "user information" in messages[0]
    assert "uses http" in messages[1]
    assert "not a Databricks accounts host" in messages[2]


def test_error_names_the_field():
    with pytest.raises(ConfigError) as info:
        normalize_host("http://example.com", field="accounts_url")
    assert set(info.value.fields) == {"accounts_url"}
    assert str(info.value).count("accounts_url: ") == 2
    assert isinstance(info.value, DatabricksAccessError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 42, b"https://accounts.cloud.databricks.com"])
def test_non_strings_are_problems(value):
    url, problems = check_host(value)
    assert url is None
    assert "must be a string" in problems[0].message


def test_long_values_are_shortened_in_messages():
    (problem,) = problems_of("https://" + "a" * 300 + ".example.com")
    assert len(problem.message) < 400
    assert "..." in problem.message


# --- token endpoints ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "flags", "expected"),
    [
        (
            f"https://accounts.cloud.databricks.com/oidc/accounts/{ACCOUNT_ID}/v1/token",
            {},
            f"https://accounts.cloud.databricks.com/oidc/accounts/{ACCOUNT_ID}/v1/token",
        ),
        (
            "HTTPS://Accounts.Cloud.Databricks.com:443/oauth/token?tenant=x",
            {},
            "https://accounts.cloud.databricks.com/oauth/token?tenant=x",
        ),
        (
            "http://127.0.0.1:8080/oauth/token",
            {"allow_custom_host": True, "allow_insecure_http": True},
            "http://127.0.0.1:8080/oauth/token",
        ),
    ],
)
def test_endpoints_keep_their_path(value, flags, expected):
    assert check_endpoint(value, **flags) == (expected, ())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://accounts.cloud.databricks.com", "has no path"),
        ("https://accounts.cloud.databricks.com/", "has no path"),
        ("https://accounts.cloud.databricks.com/?x=1", "has no path"),
        ("https://accounts.cloud.databricks.com/oauth/token#x", "fragment"),
        ("https://evil.io/oauth/token", "not a Databricks accounts host"),
        ("http://accounts.cloud.databricks.com/oauth/token", "uses http"),
        ("https://u:p@accounts.cloud.databricks.com/oauth/token", "user information"),
    ],
)
def test_endpoint_problems(value, expected):
    url, problems = check_endpoint(value)
    assert url is None
    assert problems[0].field == "token_endpoint"
    assert any(expected in p.message for p in problems)


# --- the property: normalize_host returns a clean origin or raises ConfigError ---------------

_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
)
_LOOPBACK_NAME = re.compile(r"localhost|127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\]")

url_pieces = st.sampled_from(
    [
        "https://",
        "http://",
        "HTTPS://",
        "ftp://",
        "//",
        "user:pw@",
        "@",
        "accounts",
        "accounts-dod",
        ".cloud.databricks.com",
        ".azuredatabricks.net",
        ".gcp.databricks.com",
        ".cloud.databricks.us",
        ".cloud.databricks.mil",
        ".azuredatabricks.us",
        ".azuredatabricks.cn",
        ".databricks.azure.cn",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "[2001:db8::1]",
        "example.com",
        ".",
        "..",
        ":",
        ":443",
        ":8080",
        ":0",
        "/",
        "/login",
        "?o=1",
        "#frag",
        "\\",
        " ",
        "\t",
        "\x00",
        "\u0430",
        "\uff0e",
        "-",
        "_",
        "x",
    ]
)
url_like = st.lists(url_pieces, max_size=8).map("".join)
# Mostly well-formed URLs, so that accepted results are common too.
structured = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["", "https://", "http://", "HTTP://", "https://u@"]),
    st.sampled_from(["accounts", "a-b.c_d", "xn--80ak6aa92e", "LOCALHOST", "127.0.0.9"]),
    st.sampled_from(["", ".cloud.databricks.com", ".databricks.azure.cn", ".example.org"]),
    st.sampled_from(["", ":443", ":80", ":1", ":65535", ":65536"]),
    st.sampled_from(["", "/", "/login", "/?o=1", "#x", "?a=b/c"]),
)
any_text = st.one_of(st.text(), st.text(alphabet=string.printable), url_like, structured)


@given(
    value=any_text,
    allow_custom_host=st.booleans(),
    allow_insecure_http=st.booleans(),
)
@example(value="accounts.cloud.databricks.com", allow_custom_host=False, allow_insecure_http=False)
@example(value="http://[::1]:80", allow_custom_host=True, allow_insecure_http=True)
def test_normalize_host_returns_an_origin_or_raises(value, allow_custom_host, allow_insecure_http):
    flags: dict[str, Any] = {
        "allow_custom_host": allow_custom_host,
        "allow_insecure_http": allow_insecure_http,
    }
    try:
        result = normalize_host(value, **flags)
    except ConfigError as exc:
        problems = exc.problems
        assert problems
        assert all(p.field == "host" for p in problems)
        return
    match = _ORIGIN.fullmatch(result)
    assert match is not None, result
    if match["scheme"] == "http":
        assert allow_insecure_http
        assert allow_custom_host
        assert _LOOPBACK_NAME.fullmatch(match["host"])
    if match["port"] is not None:
        assert allow_custom_host
        assert 1 <= int(match["port"]) <= 65535
        assert int(match["port"]) != (443 if match["scheme"] == "https" else 80)
    if not allow_custom_host:
        assert cloud_for_host(result) is not Cloud.CUSTOM
    assert normalize_host(result, **flags) == result


@given(value=any_text)
def test_check_host_agrees_with_normalize_host(value):
    url, problems = check_host(value, allow_custom_host=True)
    assert (url is None) == bool(problems)
    if url is not None:
        assert normalize_host(value, allow_custom_host=True) == url


# --- account IDs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ACCOUNT_ID, ACCOUNT_ID),
        (ACCOUNT_ID.upper(), ACCOUNT_ID),
        (f"  {ACCOUNT_ID}\n", ACCOUNT_ID),
        ("AbCdEf01-2345-6789-ABCD-ef0123456789", "abcdef01-2345-6789-abcd-ef0123456789"),
    ],
)
def test_valid_account_ids_are_normalised(value, expected):
    assert check_account_id(value) == (expected, ())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("nope", "is not a UUID"),
        ("1234567890123456", "workspace ID"),
        (ACCOUNT_ID.replace("-", ""), "is not a UUID"),
        (f"{{{ACCOUNT_ID}}}", "is not a UUID"),
        (f"urn:uuid:{ACCOUNT_ID}", "is not a UUID"),
        (ACCOUNT_ID[:-1] + "g", "is not a UUID"),
        (ACCOUNT_ID + "0", "is not a UUID"),
        (ACCOUNT_ID.replace("-", " "), "is not a UUID"),
        (None, "must be a string"),
        (12345, "must be a string"),
    ],
)
def test_invalid_account_ids(value, expected):
    normalised, (problem,) = check_account_id(value, field="accounts_id")
    assert normalised is None
    assert problem.field == "accounts_id"
    assert expected in problem.message


# --- AccountConfig -------------------------------------------------------------------------------


def make(**overrides: Any) -> AccountConfig:
    values: dict[str, Any] = {"host": AWS, "account_id": ACCOUNT_ID} | overrides
    return AccountConfig(**values)


def test_defaults_and_derived_values():
    cfg = make(host="Accounts.Cloud.Databricks.com/login", account_id=ACCOUNT_ID.upper())
    assert cfg.host == AWS
    assert cfg.account_id == ACCOUNT_ID
    assert cfg.cloud is Cloud.AWS
    assert cfg.scim_version == "2.0"
    assert (cfg.timeout, cfg.connect_timeout, cfg.deadline) == (30.0, 10.0, 120.0)
    assert cfg.max_attempts == 6
    assert cfg.token_endpoint is None
    assert cfg.allow_custom_host is False
    assert cfg.allow_insecure_http is False
    assert cfg.insecure_skip_tls_verify is False
    assert cfg.scim_base == f"/api/2.0/accounts/{ACCOUNT_ID}/scim/v2"
    assert cfg.account_api_base == f"/api/2.0/accounts/{ACCOUNT_ID}"
    assert cfg.oidc_base == f"/oidc/accounts/{ACCOUNT_ID}"
    assert cfg.default_token_url == f"{AWS}/oidc/accounts/{ACCOUNT_ID}/v1/token"
    assert cfg.token_url == cfg.default_token_url


def test_scim_2_1():
    assert make(scim_version="2.1").scim_base == f"/api/2.1/accounts/{ACCOUNT_ID}/scim/v2"


def test_token_endpoint_is_normalised_and_used():
    cfg = make(token_endpoint="HTTPS://Accounts.Cloud.Databricks.com/oauth/token")
    assert cfg.token_endpoint == f"{AWS}/oauth/token"
    assert cfg.token_url == f"{AWS}/oauth/token"


def test_emulator_config():
    cfg = make(
        host="http://127.0.0.1:8765/",
        token_endpoint="http://127.0.0.1:8765/oidc/v1/token",
        allow_custom_host=True,
        allow_insecure_http=True,
    )
    assert cfg.host == "http://127.0.0.1:8765"
    assert cfg.cloud is Cloud.CUSTOM
    assert cfg.default_token_url == f"http://127.0.0.1:8765/oidc/accounts/{ACCOUNT_ID}/v1/token"


def test_token_endpoint_follows_the_same_host_rules():
    with pytest.raises(ConfigError) as info:
        make(token_endpoint="https://evil.io/oauth/token")
    assert info.value.fields == ("token_endpoint",)
    assert make(
        token_endpoint="https://evil.io/oauth/token", allow_custom_host=True
    ).token_endpoint == ("https://evil.io/oauth/token")


def test_ints_are_accepted_as_seconds():
    cfg = make(timeout=5, connect_timeout=1, deadline=60)
    assert cfg.timeout == 5.0
    assert isinstance(cfg.timeout, float)
    assert isinstance(cfg.deadline, float)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 0),
        ("timeout", -1.0),
        ("timeout", math.inf),
        ("timeout", math.nan),
        ("timeout", "30"),
        ("timeout", True),
        ("timeout", None),
        ("connect_timeout", 0.0),
        ("deadline", -math.inf),
        ("max_attempts", 0),
        ("max_attempts", -3),
        ("max_attempts", 1.5),
        ("max_attempts", True),
        ("scim_version", "2"),
        ("scim_version", 2.0),
        ("allow_custom_host", "false"),
        ("allow_insecure_http", 1),
        ("insecure_skip_tls_verify", None),
    ],
)
def test_invalid_options(field, value):
    with pytest.raises(ConfigError) as info:
        make(**{field: value})
    assert info.value.fields == (field,)


def test_every_problem_is_reported_together():
    with pytest.raises(ConfigError) as info:
        AccountConfig(
            host="http://user:secretpw@example.com",
            account_id="nope",
            scim_version="3.0",  # type: ignore[arg-type]
            timeout=0,
            connect_timeout=-1,
            deadline=math.nan,
            max_attempts=0,
            token_endpoint="ftp://x",
        )
    exc = info.value
    assert exc.fields == (
        "host",
        "host",
        "host",
        "account_id",
        "scim_version",
        "timeout",
        "connect_timeout",
        "deadline",
        "max_attempts",
        "token_endpoint",
        "token_endpoint",
        "token_endpoint",
    )
    text = str(exc)
    assert text.startswith("12 configuration problems:\n")
    for field in set(exc.fields):
        assert f"  - {field}: " in text
    assert "secretpw" not in text


def test_config_is_frozen_hashable_and_pickles():
    cfg = make()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.host = "https://other.cloud.databricks.com"  # type: ignore[misc]
    assert hash(cfg) == hash(make())
    assert cfg == make(host="accounts.cloud.databricks.com/")
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # noqa: S301 - our own bytes


def test_evolve_validates_again():
    cfg = make()
    assert attrs.evolve(cfg, host="accounts.gcp.databricks.com").cloud is Cloud.GCP
    with pytest.raises(ConfigError):
        attrs.evolve(cfg, host="https://evil.io")


def test_positional_arguments_are_refused():
    with pytest.raises(TypeError):
        AccountConfig(AWS, ACCOUNT_ID)  # type: ignore[call-arg]


def test_repr_shows_fields():
    text = repr(make(insecure_skip_tls_verify=True))
    assert text.startswith("AccountConfig(host='https://accounts.cloud.databricks.com', ")
    assert f"account_id='{ACCOUNT_ID}'" in text
    assert "insecure_skip_tls_verify=True" in text


# --- from_env -----------------------------------------------------------------------------------


def test_from_env():
    cfg = AccountConfig.from_env(
        {"DATABRICKS_HOST": "accounts.azuredatabricks.net/", "DATABRICKS_ACCOUNT_ID": ACCOUNT_ID}
    )
    assert cfg == AccountConfig(host="https://accounts.azuredatabricks.net", account_id=ACCOUNT_ID)


def test_from_env_accounts_url_fallback():
    env = {
        "DATABRICKS_HOST": " ",
        "DATABRICKS_ACCOUNTS_URL": "https://accounts.gcp.databricks.com",
        "DATABRICKS_ACCOUNT_ID": ACCOUNT_ID,
    }
    assert AccountConfig.from_env(env).cloud is Cloud.GCP


def test_from_env_prefers_databricks_host():
    env = {
        "DATABRICKS_HOST": AWS,
        "DATABRICKS_ACCOUNTS_URL": "https://accounts.gcp.databricks.com",
        "DATABRICKS_ACCOUNT_ID": ACCOUNT_ID,
    }
    assert AccountConfig.from_env(env).host == AWS


def test_from_env_reads_os_environ(monkeypatch):
    monkeypatch.setenv("DATABRICKS_HOST", "http://localhost:9999")
    monkeypatch.setenv("DATABRICKS_ACCOUNT_ID", ACCOUNT_ID.upper())
    monkeypatch.delenv("DATABRICKS_ACCOUNTS_URL", raising=False)
    cfg = AccountConfig.from_env(allow_custom_host=True, allow_insecure_http=True, max_attempts=2)
    assert cfg.host == "http://localhost:9999"
    assert cfg.account_id == ACCOUNT_ID
    assert cfg.max_attempts == 2


def test_from_env_never_reads_tls_or_flags_from_the_environment():
    env = {
        "DATABRICKS_HOST": AWS,
        "DATABRICKS_ACCOUNT_ID": ACCOUNT_ID,
        "DATABRICKS_INSECURE_SKIP_TLS_VERIFY": "true",
        "DATABRICKS_ALLOW_CUSTOM_HOST": "true",
        "INSECURE_SKIP_TLS_VERIFY": "true",
    }
    cfg = AccountConfig.from_env(env)
    assert cfg.insecure_skip_tls_verify is False
    assert cfg.allow_custom_host is False


def test_from_env_reports_every_missing_variable():
    with pytest.raises(ConfigError) as info:
        AccountConfig.from_env({"DATABRICKS_ACCOUNT_ID": ""})
    assert info.value.fields == ("DATABRICKS_HOST", "DATABRICKS_ACCOUNT_ID")
    assert "is not set (nor DATABRICKS_ACCOUNTS_URL)" in str(info.value)
    assert "DATABRICKS_ACCOUNT_ID: is not set" in str(info.value)


def test_from_env_names_the_variable_of_a_bad_value():
    with pytest.raises(ConfigError) as info:
        AccountConfig.from_env(
            {"DATABRICKS_ACCOUNTS_URL": "http://evil.io", "DATABRICKS_ACCOUNT_ID": "nope"},
            timeout=-1,
        )
    assert info.value.fields == (
        "DATABRICKS_ACCOUNTS_URL",
        "DATABRICKS_ACCOUNTS_URL",
        "DATABRICKS_ACCOUNT_ID",
        "timeout",
    )


def test_from_env_missing_host_with_a_bad_option():
    with pytest.raises(ConfigError) as info:
        AccountConfig.from_env({"DATABRICKS_ACCOUNT_ID": ACCOUNT_ID}, max_attempts=0)
    assert info.value.fields == ("DATABRICKS_HOST", "max_attempts")


# --- the examples in the docstrings run ---------------------------------------------------------


def test_docstring_examples():
    result = run_doctests(_config, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
