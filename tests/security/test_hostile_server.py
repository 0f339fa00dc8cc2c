"""A hostile or broken server: what it sends is checked, bounded and never trusted.

Each class of answer is tried through the public API, on the sync and the async client:
text no store can hold (lone surrogates), values of the wrong JSON type, JSON nested or
sized to exhaust the parser, tokens that would break or smuggle a header, lifetimes
that overflow, redirects. Each ends in a typed library error (or a safe value) with
nothing changed, and no credential in any message.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import databricks_access as da
from databricks_access import SqliteLeaseStore
from databricks_access._account.drivers import SyncDriver
from databricks_access._account.flows import Call
from databricks_access._util.json import loads
from databricks_access.testing import FakeRequest, FakeResponse
from helpers.internals import OpClass, parse_error_body

HOUR = dt.timedelta(hours=1)


# -- text no UTF-8 store can hold ---------------------------------------------------------


@pytest.mark.parametrize("name", ["ops\ud800", "\udfffops", "a\udc80\ud800b"])
def test_a_lone_surrogate_in_a_name_is_stored_by_sqlite(fake, client, clock, tmp_path, name):
    alice = fake.add_user("alice@example.com")
    group = fake.add_group(name)
    store = SqliteLeaseStore(tmp_path / "leases.db")
    tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
    named = client.groups.get(group)
    assert named.display_name == name
    lease = tracker.grant(
        da.PrincipalRef("user", alice), named, ttl=HOUR, requester="a", reason="r"
    )
    assert alice in fake.group_members(group)
    (stored,) = store.find_leases()
    assert stored.id == lease.id and stored.state is da.LeaseState.ACTIVE
    assert stored.group_name == "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in name)
    (event,) = [e.event for e in store.pending_events(limit=10)]
    assert event.kind is da.EventKind.GRANTED
    store.close()


def test_a_lone_surrogate_in_a_name_is_stored_by_sqlite_async(
    fake, async_client_factory, clock, tmp_path
):
    alice = fake.add_user("alice@example.com")
    group = fake.add_group("ops\ud800")

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            named = await client.groups.get(group)
            await tracker.grant(
                da.PrincipalRef("user", alice), named, ttl=HOUR, requester="a", reason="r"
            )

    store = SqliteLeaseStore(tmp_path / "leases.db")
    asyncio.run(main())
    (stored,) = store.find_leases()
    assert stored.group_name == "ops\ufffd"
    store.close()
    assert alice in fake.group_members(group)


# -- a discovery document naming a broken token endpoint -----------------------------------


@pytest.mark.parametrize("char", ["\t", "\r", "\n", "\r\n", " ", "\x00"])
def test_a_token_endpoint_from_discovery_with_a_control_character(
    fake, config, credentials, clock, char
):
    endpoint = f"{fake.host}/oidc/accounts/{fake.account_id}/v1/{char}token"

    def intercept(request: FakeRequest) -> FakeResponse | None:
        if request.path.endswith("/v1/token"):
            return FakeResponse(404, (), b"")
        if request.path.endswith("/.well-known/oauth-authorization-server"):
            body = json.dumps({"token_endpoint": endpoint}).encode()
            return FakeResponse(200, (("content-type", "application/json"),), body)
        return None

    fake.interceptor = intercept
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as client:
        with pytest.raises(da.DatabricksAccessError):
            client.groups.get(fake.add_group("ops"))
    assert not any(char in record.path for record in fake.log if char.strip())


# -- JSON nested or sized to exhaust the parser ----------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
MODERATE = b'{"id": "1", "displayName": ' + b"[" * 500 + b"]" * 500 + b"}"


def _typed_outcome(outcome: object, group: str) -> None:
    """A deep reply ends typed: a malformed response, or (where the interpreter's parser
    takes that depth, as Python 3.13's does for `DEEP_OBJECT`) the group with the deep
    member it does not know ignored. Never a bare `RecursionError`.
    """
    if isinstance(outcome, da.ServerError):
        assert outcome.error_code == "MALFORMED_RESPONSE"
    else:
        assert isinstance(outcome, da.Group)
        assert outcome.id == group


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, MODERATE], ids=["array", "object", "500"])
def test_a_deep_api_reply_is_a_malformed_response(fake, client, body):
    group = fake.add_group("ops")
    fake.interceptor = _answer_gets(body)
    try:
        outcome: object = client.groups.get(group)
    except da.ServerError as exc:
        outcome = exc
    if body is not DEEP_OBJECT:
        assert isinstance(outcome, da.ServerError)
    _typed_outcome(outcome, group)


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, MODERATE], ids=["array", "object", "500"])
def test_a_deep_api_reply_is_a_malformed_response_async(fake, async_client_factory, body):
    group = fake.add_group("ops")
    fake.interceptor = _answer_gets(body)

    async def main() -> object:
        async with async_client_factory() as client:
            try:
                return await client.groups.get(group)
            except da.ServerError as exc:
                return exc

    outcome = asyncio.run(main())
    if body is not DEEP_OBJECT:
        assert isinstance(outcome, da.ServerError)
    _typed_outcome(outcome, group)


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, MODERATE, b"x" * 10_000_000])
def test_a_deep_or_huge_error_body_is_parsed_without_raising(fake, client, body):
    group = fake.add_group("ops")
    fake.interceptor = _answer_gets(body, status=404)
    with pytest.raises(da.NotFoundError) as info:
        client.groups.get(group)
    assert len(info.value.detail) <= 500
    assert parse_error_body(body)[1] == info.value.detail


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_a_deep_token_reply_is_a_typed_error(fake, config, credentials, clock, body):
    def intercept(request: FakeRequest) -> FakeResponse | None:
        if request.path.endswith("/v1/token"):
            return FakeResponse(200, JSON, body)
        return None

    fake.interceptor = intercept
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as client:
        with pytest.raises(da.ServerError):
            client.groups.get(fake.add_group("ops"))


def test_deep_json_from_files_and_documents_is_a_typed_error(tmp_path):
    path = tmp_path / "creds.json"
    path.write_bytes(DEEP_OBJECT)
    with pytest.raises(da.SecretStoreError):
        da.FileSecretStore(path).get_credentials()
    with pytest.raises(da.ConfigError):
        da.IntegrationConfig.from_json(DEEP_OBJECT.decode())
    with pytest.raises(ValueError, match="nested deeper"):
        da.Inventory.from_json(DEEP_OBJECT)
    assert loads('{"a": [1]}') == {"a": [1]}


def test_a_deep_unknown_field_in_an_api_reply_is_ignored(fake, client):
    group = fake.add_group("ops")
    body = b'{"id": "%s", "displayName": "ops", "x": ' % group.encode()
    fake.interceptor = _answer_gets(body + b"[" * 500 + b"]" * 500 + b"}")
    assert client.groups.get(group).display_name == "ops"


def _answer_gets(body: bytes, status: int = 200):
    def intercept(request: FakeRequest) -> FakeResponse | None:
        if request.method == "GET" and "/scim/" in request.path:
            return FakeResponse(status, JSON, body)
        return None

    return intercept


JSON = (("content-type", "application/json"),)


# -- tokens that would break or smuggle a header ---------------------------------------------

TOKEN = "eyJhbGciOi" + "5ec12e7" * 6


@pytest.mark.parametrize("tail", [" ", "\n", "\x00", "\r\n", "\r\nX-Evil: 1", "\t", "é"])
def test_a_token_that_cannot_be_a_header_is_refused_on_receipt(
    fake, config, credentials, clock, tail
):
    body = json.dumps({"access_token": TOKEN + tail, "token_type": "Bearer", "expires_in": 3600})

    def intercept(request: FakeRequest) -> FakeResponse | None:
        if request.path.endswith("/v1/token"):
            return FakeResponse(200, JSON, body.encode())
        return None

    fake.interceptor = intercept
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as client:
        with pytest.raises(da.ServerError) as info:
            client.groups.get(fake.add_group("ops"))
    assert info.value.error_code == "MALFORMED_RESPONSE"
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert not [r for r in fake.log if "/scim/" in r.path]  # the token was never sent


def test_a_token_that_cannot_be_a_header_is_refused_on_receipt_async(fake, async_client_factory):
    body = json.dumps({"access_token": TOKEN + "\r\n", "expires_in": 3600}).encode()
    fake.interceptor = lambda r: (
        FakeResponse(200, JSON, body) if r.path.endswith("/v1/token") else None
    )

    async def main() -> None:
        async with async_client_factory() as client:
            with pytest.raises(da.ServerError) as info:
                await client.groups.get(fake.add_group("ops"))
            assert TOKEN not in str(info.value)

    asyncio.run(main())


def test_a_header_the_http_library_refuses_is_never_quoted():
    request = httpx.Request("GET", "https://accounts.cloud.databricks.com/x")
    exc = httpx.LocalProtocolError(f"Illegal header value b'Bearer {TOKEN} '")
    call = Call(method="GET", path="/x", op=OpClass.GET, idempotent=True)
    error = SyncDriver._transport_error(call, request, exc)
    assert TOKEN not in str(error)
    assert isinstance(error, da.TransportError)


# -- a proxy that echoes the request ---------------------------------------------------------

BASIC = base64.b64encode(b"client-id:" + TOKEN.encode()).decode()


@pytest.mark.parametrize("status", [400, 403, 407, 502])
@pytest.mark.parametrize(
    "page",
    [
        f"<pre>POST /token HTTP/1.1\r\nAuthorization: Basic {BASIC}\r\n</pre>",
        f"bad request: authorization=Basic {BASIC}",
        f'{{"error": "invalid_request", "error_description": "header was Basic {BASIC}"}}',
        f"BAD_REQUEST: echo Bearer {TOKEN}",
        f'{{"message": "got client_secret={TOKEN}"}}',
    ],
)
def test_credentials_echoed_by_a_proxy_never_reach_an_error(fake, client, status, page):
    fake.interceptor = _answer_gets(page.encode(), status=status)
    with pytest.raises(da.ApiError) as info:
        client.groups.get(fake.add_group("ops"))
    for text in (str(info.value), repr(info.value), info.value.detail):
        assert BASIC not in text and TOKEN not in text, text


# -- values of the wrong JSON type -------------------------------------------------------------

WRONG_TYPES = [
    {"id": {"a": 1}, "displayName": "ops"},
    {"id": ["1"], "displayName": "ops"},
    {"id": True, "displayName": "ops"},
    {"id": 1.5, "displayName": "ops"},
    {"id": "1", "displayName": {"a": 1}},
    {"id": "1", "displayName": ["ops"]},
    {"id": "1", "displayName": 7.0},
    {"id": "1", "displayName": "ops", "externalId": {"x": 1}},
    {"id": "1", "displayName": "ops", "roles": [{"value": {"a": 1}}]},
]


@pytest.mark.parametrize("body", WRONG_TYPES, ids=lambda b: json.dumps(b)[:40])
def test_a_wrong_json_type_from_the_server_is_a_malformed_response(fake, client, body):
    fake.interceptor = _answer_gets(json.dumps(body).encode())
    with pytest.raises(da.ServerError) as info:
        client.groups.get(fake.add_group("ops"))
    assert info.value.error_code == "MALFORMED_RESPONSE"


@pytest.mark.parametrize("body", WRONG_TYPES[:3], ids=lambda b: json.dumps(b)[:40])
def test_a_wrong_json_type_from_the_server_is_a_malformed_response_async(
    fake, async_client_factory, body
):
    fake.interceptor = _answer_gets(json.dumps(body).encode())

    async def main() -> None:
        async with async_client_factory() as client:
            with pytest.raises(da.ServerError) as info:
                await client.groups.get(fake.add_group("ops"))
            assert info.value.error_code == "MALFORMED_RESPONSE"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("field", "value"),
    [("active", "false"), ("active", 1), ("active", "yes"), ("active", {})],
)
def test_a_boolean_is_never_guessed(fake, client, field, value):
    user = fake.add_user("alice@example.com")
    body = {"id": user, "userName": "alice@example.com", field: value}
    fake.interceptor = _answer_gets(json.dumps(body).encode())
    if value == "false":
        assert client.users.get(user).active is False  # the text form, read exactly
        return
    with pytest.raises(da.ServerError):
        client.users.get(user)


def test_a_numeric_id_sent_as_a_number_is_the_same_id(fake, client):
    fake.interceptor = _answer_gets(b'{"id": 123, "displayName": "ops"}')
    assert client.groups.get(fake.add_group("ops")).id == "123"


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TRICKY = st.text(alphabet='[]{}"\\/ua0', max_size=8)
_DOCS = st.recursive(
    st.none() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY, inner, max_size=3),
    max_leaves=40,
)


@given(doc=_DOCS, limit=st.integers(min_value=1, max_value=8), ascii_only=st.booleans())
def test_the_depth_bound_matches_the_real_depth(doc, limit, ascii_only):
    text = json.dumps(doc, ensure_ascii=ascii_only)
    deep = _depth(doc) > limit
    try:
        assert loads(text, max_depth=limit) == doc
        assert loads(text.encode(), max_depth=limit) == doc
        refused = False
    except ValueError:
        refused = True
    assert refused is deep
