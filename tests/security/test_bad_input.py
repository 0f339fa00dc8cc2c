"""Bad input, table-driven: every case names its input and the typed error it must raise,
and proves that nothing changed on the emulator — no write request ever; no request at
all for input refused before sending (`sends="nothing"`), only reads for bad server
replies (`sends="reads"`) — and that no lease, no event and no membership appeared.

Also here: SCIM filter injection (the exact filter sent, and that a crafted display
name can only ever match a group of exactly that name), hosts whose path is dropped,
a server lying in `totalResults`, and unusable `Retry-After` values.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import attrs
import pytest

import databricks_access as da
from databricks_access import MemoryLeaseStore
from databricks_access.testing import FakeRequest, FakeResponse, OperationClass
from helpers.internals import Comparison, parse_filter

HOUR = dt.timedelta(hours=1)
UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
GOOD_HOST = "https://accounts.cloud.databricks.com"
SECRET = "dose" + "5ec12e7" * 6
JSON = (("content-type", "application/json"),)
WRITES = {OperationClass.PATCH, OperationClass.WRITE}


class World:
    """One emulated account with a tracker, an active lease, and a few groups."""

    def __init__(self, fake, client, clock, tmp_path) -> None:
        self.fake, self.client, self.clock, self.tmp_path = fake, client, clock, tmp_path
        self.store = MemoryLeaseStore()
        self.tracker = da.LeaseTracker(da.MembershipManager(client), store=self.store, clock=clock)
        self.alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
        self.ops = fake.add_group("ops")
        fake.add_group("ops-admins")
        self.lease = self.tracker.grant(self.alice, self.ops, ttl=HOUR, requester="a", reason="r")

    def grant(self, principal: Any = None, group: Any = None, **kw: Any) -> da.Lease:
        args = {"ttl": HOUR, "requester": "alice", "reason": "INC-1"} | kw
        return self.tracker.grant(
            self.alice if principal is None else principal,
            self.ops if group is None else group,
            **args,
        )

    def client_on(self, secrets) -> da.AccountClient:
        """A new client (no token yet) reading its credentials from `secrets`."""
        return da.AccountClient(
            self.client.config, secrets=secrets, transport=self.fake.transport(), clock=self.clock
        )

    def secret_file(self, text: str) -> da.FileSecretStore:
        path = self.tmp_path / "creds.json"
        path.write_text(text)
        return da.FileSecretStore(path)

    def answer(self, where: Callable[[FakeRequest], bool], response: FakeResponse) -> None:
        """Let the emulator answer matching requests with `response`."""

        def intercept(request: FakeRequest) -> FakeResponse | None:
            return response if where(request) else None

        self.fake.interceptor = intercept

    def answer_gets(self, body: bytes, status: int = 200) -> None:
        self.answer(
            lambda r: r.method == "GET" and "/scim/" in r.path, FakeResponse(status, JSON, body)
        )

    def snapshot(self) -> tuple[object, ...]:
        groups = sorted(self.fake._state.groups)
        return (
            self.store.find_leases(),
            [e.event for e in self.store.pending_events(limit=10_000)],
            self.store.find_requests(),
            [self.fake.group_members(g) for g in groups],
        )


@attrs.frozen
class Case:
    name: str
    call: Callable[[World], object]
    error: type[Exception]
    field: str | None = None  # for ConfigError: a field the error must name
    sends: str = "nothing"  # "nothing", or "reads" for bad server replies
    hidden: str | None = None  # text that must not appear in the message

    def __str__(self) -> str:
        return self.name


def config(**kw: Any) -> da.AccountConfig:
    return da.AccountConfig(**({"host": GOOD_HOST, "account_id": UUID} | kw))


def integration(**kw: Any) -> da.IntegrationConfig:
    base = {"name": "sales", "accounts_url": GOOD_HOST, "account_id": UUID}
    return da.IntegrationConfig(**(base | kw))


HOSTS = [
    ("host-http", "http://accounts.cloud.databricks.com"),
    ("host-other-domain", "https://accounts.cloud.databricks.com.evil.example"),
    ("host-lookalike-label", "https://evilcloud.databricks.com"),
    ("host-userinfo-trick", "https://accounts.cloud.databricks.com@evil.example"),
    ("host-port", "https://accounts.cloud.databricks.com:8443"),
    ("host-backslash", "https://evil.example\\@accounts.cloud.databricks.com"),
    ("host-fragment-trick", "https://evil.example#.cloud.databricks.com"),
    ("host-percent-encoded", "https://evil.example%2F.cloud.databricks.com"),
    ("host-metadata-ip", "https://169.254.169.254"),
    ("host-javascript", "javascript:alert(1)"),
    ("host-non-ascii", "https://accounts.cloud.databricks.com\u2025evil"),
    ("host-control-char", "https://accounts.cloud.databricks.com\r\nX-Evil: 1"),
    ("host-empty", ""),
    ("host-bytes", b"https://accounts.cloud.databricks.com"),
    ("host-file-scheme", "file:///etc/passwd"),
]

CASES = [
    # -- hosts and account ids ------------------------------------------------------------
    *(Case(name, lambda w, h=host: config(host=h), da.ConfigError, "host") for name, host in HOSTS),
    Case(
        "host-userinfo-password",
        lambda w: config(host="https://admin:hunter2@accounts.cloud.databricks.com"),
        da.ConfigError,
        "host",
        hidden="hunter2",
    ),
    Case(
        "token-endpoint-other-host",
        lambda w: config(token_endpoint="https://evil.example/oidc/v1/token"),
        da.ConfigError,
        "token_endpoint",
    ),
    Case(
        "account-id-traversal",
        lambda w: config(account_id="../../etc"),
        da.ConfigError,
        "account_id",
    ),
    Case(
        "account-id-workspace-number",
        lambda w: config(account_id="1234567890123456"),
        da.ConfigError,
        "account_id",
    ),
    Case(
        "account-id-with-path",
        lambda w: config(account_id=UUID + "/../x"),
        da.ConfigError,
        "account_id",
    ),
    Case("account-id-none", lambda w: config(account_id=None), da.ConfigError, "account_id"),
    Case(
        "accounts-url-http-in-integration",
        lambda w: integration(accounts_url="http://accounts.cloud.databricks.com"),
        da.ConfigError,
        "accounts_url",
    ),
    # -- ids that would change a request's path ---------------------------------------------
    Case("group-slash-dotdot", lambda w: w.grant(group="123/../456"), da.ConfigError, "group"),
    Case("group-dotdot", lambda w: w.grant(group=".."), da.ConfigError, "group"),
    Case("group-query", lambda w: w.grant(group="123?attributes=members"), da.ConfigError, "group"),
    Case("group-fragment", lambda w: w.grant(group="123#x"), da.ConfigError, "group"),
    Case("group-encoded-slash", lambda w: w.grant(group="123%2F456"), da.ConfigError, "group"),
    Case("group-empty", lambda w: w.grant(group=""), da.ConfigError, "group"),
    Case("group-int", lambda w: w.grant(group=123), da.ConfigError, "group"),
    Case("group-bytes", lambda w: w.grant(group=b"\xff\xfe"), da.ConfigError, "group"),
    Case("group-lone-surrogate", lambda w: w.grant(group="12\udc80"), da.ConfigError, "group"),
    Case("group-huge", lambda w: w.grant(group="1" * 1_000_000), da.ConfigError, "group"),
    Case(
        "principal-slash",
        lambda w: w.grant(principal=da.PrincipalRef("user", "1/2")),
        da.ConfigError,
        "principal",
    ),
    Case(
        "principal-not-a-name",
        lambda w: w.grant(principal="DROP TABLE users"),
        da.ConfigError,
        "principal",
    ),
    Case(
        "get-group-traversal", lambda w: w.client.groups.get("../Users"), da.ConfigError, "group_id"
    ),
    Case(
        "get-user-encoded-dots", lambda w: w.client.users.get("%2e%2e"), da.ConfigError, "user_id"
    ),
    Case(
        "get-service-principal-slash",
        lambda w: w.client.service_principals.get("a/b"),
        da.ConfigError,
        "service_principal_id",
    ),
    Case(
        "add-member-traversal",
        lambda w: w.client.groups.add_members(w.ops, ["1/../2"]),
        da.ConfigError,
        "principal_id",
    ),
    Case(
        "remove-member-query",
        lambda w: w.client.groups.remove_members(w.ops, ["x?y"]),
        da.ConfigError,
        "principal_id",
    ),
    Case(
        "add-members-one-string",
        lambda w: w.client.groups.add_members(w.ops, "12345"),
        da.ConfigError,
        "principal_ids",
    ),
    Case(
        "delete-group-fragment", lambda w: w.client.groups.delete("1#"), da.ConfigError, "group_id"
    ),
    Case(
        "assignments-traversal",
        lambda w: w.client.workspace_assignments.list("1/../2").collect(),
        da.ConfigError,
        "workspace_id",
    ),
    Case(
        "manager-without-kind",
        lambda w: w.client.group_managers.set(w.ops, ["alice@example.com"]),
        da.ConfigError,
        "principals",
    ),
    Case(
        "service-principal-not-a-uuid",
        lambda w: w.client.service_principals.find("not-a-uuid"),
        da.ConfigError,
        "application_id",
    ),
    # -- display names and filters ---------------------------------------------------------
    Case("find-empty", lambda w: w.client.groups.find(""), da.ConfigError, "displayName"),
    Case("find-nul", lambda w: w.client.groups.find("a\x00b"), da.ConfigError, "displayName"),
    Case("find-newline", lambda w: w.client.groups.find("ops\nor"), da.ConfigError, "displayName"),
    Case("find-none", lambda w: w.client.groups.find(None), da.ConfigError, "displayName"),
    Case(
        "find-lone-surrogate",
        lambda w: w.client.groups.find("ops\ud800"),
        da.ConfigError,
        "displayName",
    ),
    Case(
        "user-name-lone-surrogate",
        lambda w: w.grant(principal="al\udfffice@example.com"),
        da.ConfigError,
        "userName",
    ),
    Case("find-user-bytes", lambda w: w.client.users.find(b"a@x.com"), da.ConfigError, "userName"),
    Case("create-blank", lambda w: w.client.groups.create("   "), da.ConfigError, "display_name"),
    Case(
        "list-empty-filter",
        lambda w: w.client.groups.list(filter="").collect(),
        da.ConfigError,
        "filter",
    ),
    Case(
        "list-page-zero",
        lambda w: w.client.groups.list(page_size=0).collect(),
        da.ConfigError,
        "page_size",
    ),
    Case(
        "list-page-huge",
        lambda w: w.client.groups.list(page_size=10**9).collect(),
        da.ConfigError,
        "page_size",
    ),
    # -- lease values --------------------------------------------------------------------------
    Case("requester-empty", lambda w: w.grant(requester=""), da.ConfigError, "requester"),
    Case(
        "requester-1mb", lambda w: w.grant(requester="x" * 1_048_576), da.ConfigError, "requester"
    ),
    Case("requester-bytes", lambda w: w.grant(requester=b"alice"), da.ConfigError, "requester"),
    Case("reason-nul", lambda w: w.grant(reason="INC\x00-1"), da.ConfigError, "reason"),
    Case("reason-lone-surrogate", lambda w: w.grant(reason="INC-\ud800"), da.ConfigError, "reason"),
    Case("approver-empty", lambda w: w.grant(approver=""), da.ConfigError, "approver"),
    Case("ttl-negative", lambda w: w.grant(ttl=-1), da.ConfigError, "ttl"),
    Case("ttl-zero", lambda w: w.grant(ttl=0), da.ConfigError, "ttl"),
    Case("ttl-below-minimum", lambda w: w.grant(ttl=59), da.ConfigError, "ttl"),
    Case("ttl-enormous", lambda w: w.grant(ttl=10**12), da.ConfigError, "ttl"),
    Case("ttl-timedelta-max", lambda w: w.grant(ttl=dt.timedelta.max), da.ConfigError, "ttl"),
    Case(
        "ttl-negative-timedelta",
        lambda w: w.grant(ttl=dt.timedelta(days=-1)),
        da.ConfigError,
        "ttl",
    ),
    Case("ttl-nan", lambda w: w.grant(ttl=float("nan")), da.ConfigError, "ttl"),
    Case("ttl-infinite", lambda w: w.grant(ttl=float("inf")), da.ConfigError, "ttl"),
    Case("ttl-text", lambda w: w.grant(ttl="3600"), da.ConfigError, "ttl"),
    Case("ttl-bool", lambda w: w.grant(ttl=True), da.ConfigError, "ttl"),
    Case("ttl-none", lambda w: w.grant(ttl=None), da.ConfigError, "ttl"),
    Case("extend-zero", lambda w: w.tracker.extend(w.lease.id, by=0), da.ConfigError, "by"),
    Case("extend-negative", lambda w: w.tracker.extend(w.lease.id, by=-5), da.ConfigError, "by"),
    Case(
        "extend-nan", lambda w: w.tracker.extend(w.lease.id, by=float("nan")), da.ConfigError, "by"
    ),
    Case("extend-text", lambda w: w.tracker.extend(w.lease.id, by="an hour"), da.ConfigError, "by"),
    Case("extend-huge", lambda w: w.tracker.extend(w.lease.id, by=1e20), da.ConfigError, "by"),
    Case(
        "extend-huge-int", lambda w: w.tracker.extend(w.lease.id, by=10**30), da.ConfigError, "by"
    ),
    Case(
        "extend-timedelta-max",
        lambda w: w.tracker.extend(w.lease.id, by=dt.timedelta.max),
        da.ConfigError,
        "by",
    ),
    Case("config-timeout-huge", lambda w: config(timeout=1e300), da.ConfigError, "timeout"),
    Case("config-timeout-huge-int", lambda w: config(timeout=10**400), da.ConfigError, "timeout"),
    Case("extend-unknown-lease", lambda w: w.tracker.extend("lease_nope", by=60), da.LeaseError),
    Case("extend-empty-id", lambda w: w.tracker.extend("", by=60), da.ConfigError, "lease_id"),
    Case("revoke-huge-id", lambda w: w.tracker.revoke("x" * 101), da.ConfigError, "lease_id"),
    Case("revoke-none", lambda w: w.tracker.revoke(None), da.ConfigError, "lease_id"),
    # -- integration settings ------------------------------------------------------------------
    Case(
        "access-details-401-chars",
        lambda w: integration(custom_access_details="x" * 401),
        da.ConfigError,
        "custom_access_details",
    ),
    Case(
        "resource-owner-without-integration-owner",
        lambda w: integration(resource_owner={"tag_key": "owner", "idp_attribute": "email"}),
        da.ConfigError,
        "integration_owners",
    ),
    Case("integration-name-path", lambda w: integration(name="../x"), da.ConfigError, "name"),
    # -- secrets ------------------------------------------------------------------------------
    Case(
        "secret-file-missing-field",
        lambda w: w.client_on(w.secret_file('{"client_id": "app"}')).groups.get(w.ops),
        da.SecretStoreError,
    ),
    Case(
        "secret-file-not-json",
        lambda w: w.client_on(w.secret_file(f"client_id=app\nclient_secret={SECRET}\n")).groups.get(
            w.ops
        ),
        da.SecretStoreError,
        hidden=SECRET,
    ),
    Case(
        "secret-file-array",
        lambda w: w.client_on(w.secret_file(json.dumps(["app", SECRET]))).groups.get(w.ops),
        da.SecretStoreError,
        hidden=SECRET,
    ),
    Case(
        "secret-file-secret-a-number",
        lambda w: w.client_on(
            w.secret_file('{"client_id": "app", "client_secret": 12345}')
        ).groups.get(w.ops),
        da.SecretStoreError,
    ),
    Case(
        "secret-env-missing",
        lambda w: w.client_on(
            da.EnvSecretStore(environ={"DATABRICKS_CLIENT_ID": "app"})
        ).groups.get(w.ops),
        da.SecretStoreError,
    ),
    Case(
        "secret-file-lone-surrogate-escape",
        lambda w: w.client_on(
            w.secret_file('{"client_id": "app", "client_secret": "x\\ud800"}')
        ).groups.get(w.ops),
        da.SecretStoreError,
    ),
    Case(
        "secret-env-undecodable-byte",
        lambda w: w.client_on(
            da.EnvSecretStore(
                environ={"DATABRICKS_CLIENT_ID": "app", "DATABRICKS_CLIENT_SECRET": "s\udcff"}
            )
        ).groups.get(w.ops),
        da.SecretStoreError,
    ),
    Case(
        "secret-static-lone-surrogate",
        lambda w: da.StaticSecretStore("app", "x\ud800"),
        da.ConfigError,
        "client_secret",
    ),
    Case(
        "secret-empty", lambda w: da.StaticSecretStore("app", ""), da.ConfigError, "client_secret"
    ),
    # -- server replies ------------------------------------------------------------------------
    Case(
        "reply-not-json",
        lambda w: (w.answer_gets(b"<html>maintenance</html>"), w.grant())[1],
        da.ServerError,
        sends="reads",
    ),
    Case(
        "reply-truncated",
        lambda w: (w.answer_gets(b'{"id": "1", "groups": [{"val'), w.grant())[1],
        da.ServerError,
        sends="reads",
    ),
    Case(
        "reply-a-list",
        lambda w: (w.answer_gets(b"[1, 2, 3]"), w.client.groups.get(w.ops))[1],
        da.ServerError,
        sends="reads",
    ),
    Case(
        "reply-members-a-string",
        lambda w: (
            w.answer_gets(b'{"id": "1", "displayName": "x", "members": "all"}'),
            w.client.groups.get(w.ops),
        )[1],
        da.ServerError,
        sends="reads",
    ),
    Case(
        "reply-groups-wrong-shape",
        lambda w: (w.answer_gets(b'{"id": "1", "userName": "a", "groups": {"a": 1}}'), w.grant())[
            1
        ],
        da.ServerError,
        sends="reads",
    ),
    Case(
        "reply-resources-not-a-list",
        lambda w: (
            w.answer_gets(b'{"totalResults": 1, "Resources": {"id": "1"}}'),
            w.client.groups.list().collect(),
        )[1],
        da.ServerError,
        sends="reads",
    ),
    Case(
        "reply-huge-error",
        lambda w: (
            w.answer_gets(b'{"detail": "' + b"x" * 5_000_000 + b'"}', status=404),
            w.grant(),
        )[1],
        da.NotFoundError,
        sends="reads",
    ),
    Case(
        "reply-binary-error",
        lambda w: (w.answer_gets(bytes(range(256)) * 10, status=400), w.grant())[1],
        da.BadRequestError,
        sends="reads",
    ),
    Case(
        "token-without-access-token",
        lambda w: (
            w.answer(
                lambda r: r.op_class is OperationClass.TOKEN,
                FakeResponse(200, JSON, b'{"token_type": "Bearer", "expires_in": 3600}'),
            ),
            w.client_on(da.StaticSecretStore("app", SECRET)).groups.get(w.ops),
        )[1],
        da.ServerError,
        sends="reads",
        hidden=SECRET,
    ),
    Case(
        "token-of-another-type",
        lambda w: (
            w.answer(
                lambda r: r.op_class is OperationClass.TOKEN,
                FakeResponse(200, JSON, b'{"access_token": "t", "token_type": "mac"}'),
            ),
            w.client_on(da.StaticSecretStore("app", SECRET)).groups.get(w.ops),
        )[1],
        da.ServerError,
        sends="reads",
    ),
]


@pytest.fixture
def world(fake, client, clock, tmp_path):
    return World(fake, client, clock, tmp_path)


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_raises_its_typed_error_and_changes_nothing(world, case):
    before = world.snapshot()
    world.fake.reset_log()
    with pytest.raises(case.error) as info:
        case.call(world)
    error = info.value
    assert isinstance(error, da.DatabricksAccessError)
    if case.field is not None:
        assert isinstance(error, da.ConfigError)
        assert case.field in error.fields, error.fields
    if case.hidden is not None:
        assert case.hidden not in str(error) and case.hidden not in repr(error)
    if isinstance(error, da.ApiError):
        assert len(error.detail) <= 500
    world.fake.interceptor = None
    log = world.fake.log
    assert not [r for r in log if r.op_class in WRITES], "a write request was sent"
    if case.sends == "nothing":
        assert log == (), [(r.method, r.path) for r in log]
    assert world.snapshot() == before, "a lease, event or membership changed"


# -- filter injection ------------------------------------------------------------------------

CRAFTED = [
    'ops" or displayName co "',
    'ops" or "1" eq "1',
    'ops") or (displayName sw "',
    "ops\\",
    'ops\\" or displayName sw "o',
    "*",
    "ops%22",
    "ops+admins",
    "ops admins",
    "o'ps",
    "ops\u202e",
]


@pytest.mark.parametrize("name", CRAFTED)
def test_a_crafted_display_name_can_only_match_itself(fake, client, name):
    fake.add_group("ops")
    fake.add_group("ops-admins")
    fake.reset_log()
    assert client.groups.find(name) is None  # no group has that exact name
    (sent,) = [r for r in fake.log if r.op_class is OperationClass.LIST]
    filters = parse_qs(sent.query)["filter"]
    assert filters == [da.filter_eq("displayName", name)]
    assert parse_filter(filters[0]) == Comparison("displayname", "eq", name)
    crafted = fake.add_group(name)
    found = client.groups.find(name)
    assert found is not None and (found.id, found.display_name) == (crafted, name)


def test_a_path_in_the_host_is_dropped_not_followed():
    cfg = config(host="https://accounts.cloud.databricks.com/../../admin/?next=/x#frag")
    assert cfg.host == GOOD_HOST
    assert cfg.scim_base == f"/api/2.0/accounts/{UUID}/scim/v2"


def test_extra_fields_in_a_secret_file_are_ignored(world):
    sp = world.fake.add_service_principal("extra")
    store = world.secret_file(
        json.dumps(
            {
                "client_id": sp.client_id,
                "client_secret": sp.client_secret,
                "note": "rotated",
                "x": [1],
            }
        )
    )
    with world.client_on(store) as client:
        assert client.groups.get(world.ops).id == world.ops


# -- a lying server ---------------------------------------------------------------------------


def test_a_lying_total_results_cannot_make_a_listing_loop(world):
    page = {
        "totalResults": 10**9,
        "startIndex": 1,
        "itemsPerPage": 2,
        "Resources": [{"id": "1", "displayName": "a"}, {"id": "2", "displayName": "b"}],
    }
    world.answer(
        lambda r: r.op_class is OperationClass.LIST,
        FakeResponse(200, JSON, json.dumps(page).encode()),
    )
    world.fake.reset_log()
    groups = world.client.groups.list().collect()
    assert [g.id for g in groups] == ["1", "2"]
    assert len(world.fake.log) == 2  # the second page brought nothing new: stop


@pytest.mark.parametrize(
    "value", ["-5", "1e12", "soon", "nan", "inf", "-inf", "", "Wed, 21 Oct 2015 07:28:00 GMT"]
)
def test_unusable_retry_after_values_are_ignored_or_capped(world, value):
    answered = []

    def throttle(request: FakeRequest) -> FakeResponse | None:
        if request.method == "GET" and len(answered) < 2:
            answered.append(value)
            return FakeResponse(429, (("retry-after", value),), b"")
        return None

    world.fake.interceptor = throttle
    world.clock.slept.clear()
    assert world.client.groups.get(world.ops).id == world.ops
    assert len(answered) == 2
    assert len(world.clock.slept) == 2
    # Ignored (a short backoff instead), or capped at the policy's longest wait.
    assert all(0 <= wait <= 60 for wait in world.clock.slept), world.clock.slept
