"""diagnose / adiagnose against the emulator: every check, its verdicts and fixes."""

from __future__ import annotations

import asyncio
import inspect
import json

import httpx
import pytest

import databricks_access as da
from databricks_access import Check, Diagnosis, adiagnose, diagnose
from databricks_access._diagnose import diagnose as _diagnose
from databricks_access.testing import Behaviour, FakeAccount, FakeResponse, OperationClass
from helpers.doctests import run_doctests

CHECKS = ["config", "secret", "token", "scim", "account_admin", "group_manager"]


def grant_admin(fake, admins) -> None:
    """Give these principals (service principals, groups) the account admin role."""
    for principal_id in admins:
        fake.set_roles(principal_id, ["account_admin"])


@pytest.fixture
def connector(fake):
    """An account-admin service principal, and some users and groups."""
    sp = fake.add_service_principal("connector")
    ann = fake.add_user("ann@example.com")
    fake.add_group("data-readers", members=[ann])
    return sp


@pytest.fixture
def make_client(fake, config, clock):
    clients = []

    def make(secrets, *, admins=(), **kwargs):
        grant_admin(fake, admins)
        client = da.AccountClient(
            config, secrets=secrets, transport=fake.transport(), clock=clock, **kwargs
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def static(sp, secret=None):
    return da.StaticSecretStore(sp.client_id, secret or sp.client_secret)


def assert_no_secret(diagnosis: Diagnosis, *secrets: str) -> None:
    text = str(diagnosis) + repr(diagnosis)
    for secret in secrets:
        assert secret not in text


def test_doctests():
    assert run_doctests(_diagnose).failed == 0


def test_an_admin_service_principal_passes_every_check(make_client, connector, fake):
    client = make_client(static(connector), admins={connector.id})
    report = diagnose(client)
    assert [check.name for check in report.checks] == CHECKS
    assert report.ok, str(report)
    assert all(check.ok for check in report.checks)
    assert f"account {fake.account_id}" in report["config"].verdict
    assert "(aws)" in report["config"].verdict
    assert "obtained an access token (1 token request)" in report["token"].verdict
    assert "holds the account admin role" in report["account_admin"].verdict
    assert str(report).startswith("databricks_access diagnosis: no problem found\n[  ok] config:")
    assert_no_secret(report, connector.client_secret)


def test_diagnose_makes_one_fresh_token_request_and_writes_nothing(make_client, connector, fake):
    client = make_client(static(connector), admins={connector.id})
    client.users.find("ann@example.com")  # a token is cached already
    fake.reset_log()
    diagnose(client)
    token_requests = [r for r in fake.log if r.op_class is OperationClass.TOKEN]
    assert len(token_requests) == 1
    assert {r.method for r in fake.log} <= {"GET", "POST"}
    assert all(r.method == "GET" for r in fake.log if r.op_class is not OperationClass.TOKEN)


def test_a_non_admin_service_principal_fails_the_admin_check_with_a_fix(make_client, fake):
    reader = fake.add_service_principal("reader", admin=False)
    fake.add_group("data-readers")
    report = diagnose(make_client(static(reader)))
    assert not report.ok
    admin = report["account_admin"]
    assert admin.ok is False
    assert "does not hold the account admin role" in admin.verdict
    assert admin.fix is not None
    assert "Account admin" in admin.fix
    assert "reader" in admin.fix
    manager = report["group_manager"]
    assert manager.ok is False
    assert "does not manage the group data-readers" in manager.verdict
    assert "group_managers.set" in (manager.fix or "")
    assert [c.name for c in report.failed] == ["account_admin", "group_manager"]
    assert report["scim"].ok  # it may read
    assert_no_secret(report, reader.client_secret)


def test_a_group_manager_passes_the_group_manager_check(make_client, fake):
    reader = fake.add_service_principal("reader", admin=False)
    group = fake.add_group("managed")
    fake.set_group_managers(group, [f"servicePrincipals/{reader.client_id}"])
    client = make_client(static(reader))
    report = diagnose(client, group=group)
    assert report["account_admin"].ok is False
    assert report["group_manager"].ok is True
    assert "manages the group managed" in report["group_manager"].verdict
    by_model = diagnose(client, group=client.groups.get(group))
    assert by_model["group_manager"].ok is True


def test_an_unknown_group_leaves_the_manager_check_unknown(make_client, fake):
    reader = fake.add_service_principal("reader", admin=False)
    report = diagnose(make_client(static(reader)), group="424242")
    assert report["group_manager"].ok is None
    assert "could not be found" in report["group_manager"].verdict


def test_no_group_to_sample_skips_the_manager_check(make_client, fake):
    reader = fake.add_service_principal("reader", admin=False)
    report = diagnose(make_client(static(reader)))
    assert report["group_manager"].ok is None
    assert "no group to check" in report["group_manager"].verdict


def test_the_admin_role_through_a_group_counts(make_client, fake):
    reader = fake.add_service_principal("reader", admin=False)
    admins = fake.add_group("account-admins", members=[reader.id])
    outer = fake.add_group("platform", members=[admins])
    report = diagnose(make_client(static(reader), admins={outer}))
    assert report["account_admin"].ok is True
    assert "through the group platform" in report["account_admin"].verdict
    assert report["group_manager"].ok is True


def test_when_non_admins_may_not_read(make_client, fake):
    reader = fake.add_service_principal("reader", admin=False)
    fake.behaviour = Behaviour(non_admin_can_read=False)
    report = diagnose(make_client(static(reader)))
    assert report["token"].ok is True
    assert report["scim"].ok is False
    assert "refused to list users" in report["scim"].verdict
    assert "Account admin" in (report["scim"].fix or "")
    assert report["account_admin"].ok is False
    assert "not an account admin" in report["account_admin"].verdict
    assert report["group_manager"].ok is None


def test_a_wrong_secret_fails_the_token_check(make_client, connector):
    wrong = "dose-wrong-0123456789abcdef"
    report = diagnose(make_client(static(connector, wrong)))
    token = report["token"]
    assert token.ok is False
    assert "invalid_client" in token.verdict
    assert "expired" in (token.fix or "")
    assert [report[name].ok for name in ("scim", "account_admin", "group_manager")] == [None] * 3
    assert "skipped: no access token" in report["scim"].verdict
    assert str(report).startswith("databricks_access diagnosis: 1 problem found")
    assert_no_secret(report, wrong, connector.client_secret)


def test_missing_environment_variables_fail_the_secret_check(make_client):
    store = da.EnvSecretStore(environ={"DATABRICKS_CLIENT_ID": "app"})
    report = diagnose(make_client(store))
    secret = report["secret"]
    assert secret.ok is False
    assert "DATABRICKS_CLIENT_SECRET is not set" in secret.verdict
    assert secret.fix is not None
    assert all(report[name].ok is None for name in CHECKS[2:])


def test_an_ip_access_list_block_is_named(make_client, connector, fake):
    def blocked(request):
        if request.op_class is OperationClass.TOKEN:
            body = json.dumps({"error": "unknown", "error_description": "unknown"}).encode()
            return FakeResponse(403, (("content-type", "application/json"),), body)
        return None

    fake.interceptor = blocked
    report = diagnose(make_client(static(connector)))
    token = report["token"]
    assert token.ok is False
    assert "IP access list" in token.verdict
    assert "IP access list" in (token.fix or "")


def test_an_unreachable_host_fails_the_token_check(config, clock, connector):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with da.AccountClient(
        config, secrets=static(connector), transport=httpx.MockTransport(refuse), clock=clock
    ) as client:
        report = diagnose(client)
    assert report["token"].ok is False
    assert "could not reach the token endpoint" in report["token"].verdict
    assert "proxy" in (report["token"].fix or "")
    assert report["scim"].ok is None


def test_a_throttled_token_endpoint_says_so(make_client, connector, fake):
    def busy(request):
        if request.op_class is OperationClass.TOKEN:
            return FakeResponse(503, (), b"")
        return None

    fake.interceptor = busy
    report = diagnose(make_client(static(connector)))
    assert report["token"].ok is False
    assert "status.databricks.com" in (report["token"].fix or "")


def test_a_scim_failure_after_the_token(make_client, connector, fake):
    def scim_down(request):
        if request.op_class is OperationClass.LIST:
            return FakeResponse(404, (), b"")
        return None

    fake.interceptor = scim_down
    report = diagnose(make_client(static(connector), admins={connector.id}))
    assert report["token"].ok is True
    assert report["scim"].ok is False
    assert "account ID" in (report["scim"].fix or "")


def test_a_refused_token_at_the_scim_api_skips_the_rest(make_client, connector, fake):
    def refuse(request):
        if request.op_class is OperationClass.LIST:
            body = json.dumps({"error_code": "UNAUTHENTICATED", "message": "no"}).encode()
            return FakeResponse(401, (("content-type", "application/json"),), body)
        return None

    fake.interceptor = refuse
    report = diagnose(make_client(static(connector)))
    assert report["token"].ok is True
    assert report["scim"].ok is False
    assert "refused the access token" in report["scim"].verdict
    assert [report[name].ok for name in ("account_admin", "group_manager")] == [None, None]


def test_a_service_principal_missing_from_the_account(make_client, connector, fake):
    def hide(request):
        if request.op_class is OperationClass.LIST and "ServicePrincipals" in request.path:
            body = json.dumps({"totalResults": 0, "Resources": []}).encode()
            return FakeResponse(200, (("content-type", "application/json"),), body)
        return None

    fake.interceptor = hide
    report = diagnose(make_client(static(connector)))
    assert report["account_admin"].ok is False
    assert "no service principal of this account" in report["account_admin"].verdict
    assert "not only to a workspace" in (report["account_admin"].fix or "")


def test_a_client_id_that_is_not_an_application_id_skips_the_admin_check(make_client, fake):
    odd = fake.add_service_principal("odd", application_id="not-a-uuid", admin=False)
    report = diagnose(make_client(static(odd)))
    assert report["token"].ok is True
    assert report["account_admin"].ok is None
    assert "not an application id" in report["account_admin"].verdict


def test_a_client_with_its_own_auth_skips_the_secret_and_token_checks(config, clock, fake):
    fake.add_group("g")

    class Static(httpx.Auth):
        def auth_flow(self, request):
            request.headers["Authorization"] = f"Bearer {fake.static_token()}"
            yield request

    with da.AccountClient(config, auth=Static(), transport=fake.transport(), clock=clock) as client:
        report = diagnose(client)
    assert [report[name].ok for name in CHECKS] == [True, None, None, True, None, None]
    assert report.ok
    assert "Static" in report["secret"].verdict


def test_a_failing_third_party_store_is_reported_without_its_message(make_client):
    recognisable = "dose-LEAKED-3f9a7c1e"

    class Broken:
        def get_credentials(self, *, refresh: bool = False):
            raise RuntimeError(f"could not decrypt {recognisable}")

    report = diagnose(make_client(Broken()))
    assert report["secret"].ok is False
    assert "RuntimeError" in report["secret"].verdict
    assert recognisable not in str(report)


def test_a_recognisable_secret_never_appears_even_from_a_leaky_repr(make_client, connector):
    class Leaky:
        def get_credentials(self, *, refresh: bool = False):
            return da.ClientCredentials(connector.client_id, connector.client_secret)

        def __repr__(self) -> str:
            return f"Leaky(secret={connector.client_secret})"

    report = diagnose(make_client(Leaky(), admins={connector.id}))
    assert report.ok
    assert "Leaky(secret=***)" in report["secret"].verdict
    assert_no_secret(report, connector.client_secret)


def test_tls_verification_off_is_pointed_out(fake, clock, connector):
    config = da.AccountConfig(
        host=fake.host, account_id=fake.account_id, insecure_skip_tls_verify=True
    )
    with da.AccountClient(
        config, secrets=static(connector), transport=fake.transport(), clock=clock
    ) as client:
        report = diagnose(client)
    assert report["config"].ok is True
    assert "TLS certificate verification is OFF" in report["config"].verdict
    assert report["config"].fix is not None


def test_a_custom_host_is_named(clock, connector):
    fake = FakeAccount(host="http://127.0.0.1:8080", clock=lambda: clock.now().timestamp())
    sp = fake.add_service_principal("connector")
    config = da.AccountConfig(
        host=fake.host,
        account_id=fake.account_id,
        allow_custom_host=True,
        allow_insecure_http=True,
    )
    with da.AccountClient(
        config, secrets=static(sp), transport=fake.transport(), clock=clock
    ) as client:
        report = diagnose(client)
    assert "a custom host" in report["config"].verdict
    assert report.ok


def test_report_rendering_and_lookup():
    report = Diagnosis(
        (
            Check("config", True, "fine"),
            Check("token", False, "refused", "Check the secret."),
            Check("scim", None, "skipped: no access token"),
        )
    )
    assert str(report) == (
        "databricks_access diagnosis: 1 problem found\n"
        "[  ok] config: fine\n"
        "[FAIL] token: refused\n"
        "       fix: Check the secret.\n"
        "[skip] scim: skipped: no access token"
    )
    assert report.failed == (report["token"],)
    with pytest.raises(KeyError):
        report["nope"]


# -- async ---------------------------------------------------------------------------------------


@pytest.fixture
def make_async_client(fake, config, clock):
    def make(secrets, *, admins=()):
        grant_admin(fake, admins)
        transport = fake.transport()
        return da.AsyncAccountClient(config, secrets=secrets, transport=transport, clock=clock)

    return make


def test_adiagnose_matches_diagnose(make_async_client, make_client, connector, fake):
    reader = fake.add_service_principal("reader", admin=False)

    async def main():
        results = []
        for secrets, admins in (
            (static(connector), {connector.id}),
            (static(reader), set()),
            (static(connector, "dose-wrong-secret-000"), set()),
            (da.EnvSecretStore(environ={}), set()),
        ):
            async with make_async_client(secrets, admins=admins) as client:
                results.append(await adiagnose(client))
        return results

    asynchronous = asyncio.run(main())
    synchronous = [
        diagnose(make_client(static(connector), admins={connector.id})),
        diagnose(make_client(static(reader))),
        diagnose(make_client(static(connector, "dose-wrong-secret-000"))),
        diagnose(make_client(da.EnvSecretStore(environ={}))),
    ]
    for a, s in zip(asynchronous, synchronous, strict=True):
        assert [(c.name, c.ok) for c in a.checks] == [(c.name, c.ok) for c in s.checks]
        assert a.checks == s.checks
    assert asynchronous[0].ok
    assert asynchronous[1]["account_admin"].ok is False
    assert asynchronous[2]["token"].ok is False
    assert asynchronous[3]["secret"].ok is False
    assert_no_secret(asynchronous[0], connector.client_secret)


def test_sync_and_async_signatures_match():
    sync = inspect.signature(diagnose)
    asynchronous = inspect.signature(adiagnose)
    assert list(sync.parameters) == list(asynchronous.parameters)
    assert inspect.iscoroutinefunction(adiagnose)


def test_the_admin_check_follows_roles_changed_through_the_client(fake, config, clock):
    """Roles given or taken with the client are what the account-admin check then sees."""
    connector = fake.add_service_principal("connector")
    helper = fake.add_service_principal("helper")
    with (
        da.AccountClient(
            config, secrets=static(connector), transport=fake.transport(), clock=clock
        ) as client,
        da.AccountClient(
            config, secrets=static(helper), transport=fake.transport(), clock=clock
        ) as admin,
    ):
        assert diagnose(client)["account_admin"].ok is True
        admin.service_principals.remove_roles(connector.id, ["account_admin"])
        assert fake.roles(connector.id) == ()
        assert diagnose(client)["account_admin"].ok is False
        group = admin.groups.create("account-admins")
        admin.groups.add_members(group, [connector.id])
        admin.groups.add_roles(group, ["account_admin"])
        report = diagnose(client)
        assert report["account_admin"].ok is True
        assert "account-admins" in report["account_admin"].verdict

        async def main() -> Diagnosis:
            async with da.AsyncAccountClient(
                config, secrets=static(connector), transport=fake.transport(), clock=clock
            ) as async_client:
                return await adiagnose(async_client)

        assert asyncio.run(main())["account_admin"].ok is True
