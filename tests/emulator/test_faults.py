"""Fault injection: server-side rate limits, fault plans, and how the seam plays them."""

from __future__ import annotations

import asyncio
import pickle

import attrs
import httpx
import pytest

import databricks_access as da
from databricks_access.testing import (
    DropConnection,
    FakeAccount,
    FakeRequest,
    FakeResponse,
    Fault,
    FaultPlan,
    HoldConnection,
    OperationClass,
    PassThrough,
    ServerRateLimits,
    StaleReads,
)
from databricks_access.testing._faults import seconds_text

from .conftest import Clock, add_members

META = "/.well-known/databricks-config"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def open_fake(clock: Clock) -> FakeAccount:
    return FakeAccount(clock=clock, require_auth=False)


def _statuses(fake: FakeAccount, method: str, target: str, n: int, body: bytes = b"") -> list[int]:
    return [fake.dispatch(method, target, {}, body).status for _ in range(n)]


# ---- server-side rate limits ------------------------------------------------------------


def test_rate_limits_per_class_with_fractional_retry_after(open_fake: FakeAccount, clock: Clock):
    limits = ServerRateLimits(get=2, list=1, patch=None, write=None, clock=clock)
    open_fake.interceptor = limits
    group = open_fake.add_group("g")
    get = f"{open_fake.scim_path}/Groups/{group}"
    listing = f"{open_fake.scim_path}/Groups"
    assert _statuses(open_fake, "GET", get, 3) == [200, 200, 429]
    assert _statuses(open_fake, "GET", listing, 2) == [200, 429]
    # Unlimited classes and token/metadata requests are never refused.
    assert _statuses(open_fake, "PATCH", get, 5, b'{"Operations":[]}') == [400] * 5
    assert _statuses(open_fake, "GET", META, 5) == [200] * 5
    refused = open_fake.dispatch("GET", get)
    assert refused.status == 429
    assert dict(refused.headers)["retry-after"] == "0.5"
    assert refused.json()["schemas"] == [SCIM_ERROR]
    assert refused.json()["detail"].startswith("REQUEST_LIMIT_EXCEEDED")
    clock.advance(0.25)  # half a token: still refused, and told the rest
    assert dict(open_fake.dispatch("GET", get).headers)["retry-after"] == "0.25"
    clock.advance(0.25)
    assert _statuses(open_fake, "GET", get, 2) == [200, 429]
    assert open_fake.faults == {"rate_limited": 5}
    assert [r.fault for r in open_fake.log].count("rate_limited") == 5


def test_rate_limit_buckets_refill_to_burst_only(clock: Clock):
    limits = ServerRateLimits(get=10, burst=3, clock=clock)
    assert [limits.take(OperationClass.GET) for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    clock.advance(100)  # a long quiet spell refills to the burst, not beyond
    waits = [limits.take(OperationClass.GET) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.1)
    limits.reset()
    assert limits.take(OperationClass.GET) == 0.0
    assert limits.take(OperationClass.TOKEN) == 0.0
    assert limits.rate(OperationClass.META) is None


def test_rate_limits_defaults_scale_and_rest_form(open_fake: FakeAccount, clock: Clock):
    limits = ServerRateLimits(clock=clock, scale=0.5)
    assert (limits.rate(OperationClass.GET), limits.rate(OperationClass.LIST)) == (10.0, 2.0)
    assert (limits.rate(OperationClass.PATCH), limits.rate(OperationClass.WRITE)) == (1.0, 2.5)
    open_fake.interceptor = limits
    workspaces = f"/api/2.0/accounts/{open_fake.account_id}/workspaces"
    assert _statuses(open_fake, "GET", workspaces, 3) == [200, 200, 429]
    refused = open_fake.dispatch("GET", workspaces)
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_rate_limits_as_the_scim_500_form(open_fake: FakeAccount, clock: Clock):
    open_fake.interceptor = ServerRateLimits(patch=1, status=500, clock=clock)
    group = open_fake.add_group("g")
    path = f"{open_fake.scim_path}/Groups/{group}"
    body = b'{"Operations":[]}'
    open_fake.dispatch("PATCH", path, {}, body)
    refused = open_fake.dispatch("PATCH", path, {}, body)
    assert refused.status == 500
    assert "retry-after" not in dict(refused.headers)
    assert refused.json() == {
        "schemas": [SCIM_ERROR],
        "detail": "REQUEST_LIMIT_EXCEEDED: Too many requests. Please wait a moment and try again.",
        "status": "500",
    }


@pytest.mark.parametrize(
    "kwargs",
    [{"get": 0}, {"list": -1}, {"burst": 0}, {"scale": 0}, {"status": 503}],
)
def test_rate_limits_validate(kwargs):
    with pytest.raises(ValueError):
        ServerRateLimits(**kwargs)


def test_retry_after_text():
    assert [seconds_text(s) for s in (0, 1, 1.5, 1.58, 0.0004, 2.0001)] == [
        "0",
        "1",
        "1.5",
        "1.58",
        "0.001",
        "2.001",
    ]


# ---- fault plans: selection -------------------------------------------------------------


def test_nth_request_of_a_method(open_fake: FakeAccount):
    FaultPlan([Fault.error(503, method="GET", nth=3)]).install(open_fake)
    assert _statuses(open_fake, "GET", META, 5) == [200, 200, 503, 200, 200]


def test_request_numbers_count_every_request(open_fake: FakeAccount):
    plan = FaultPlan([Fault.server_error(500, requests=range(5, 8))]).install(open_fake)
    statuses = [open_fake.dispatch("POST" if i % 2 else "GET", META).status for i in range(1, 10)]
    assert statuses == [404, 200, 404, 200, 500, 500, 500, 200, 404]
    assert plan.seen == 9


def test_path_op_class_and_times(open_fake: FakeAccount):
    group = open_fake.add_group("g")
    other = open_fake.add_group("h")
    FaultPlan([Fault.error(502, op_class="get", path=rf"/Groups/{group}$", times=2)]).install(
        open_fake
    )
    base = open_fake.scim_path
    assert _statuses(open_fake, "GET", f"{base}/Groups/{other}", 2) == [200, 200]
    assert _statuses(open_fake, "GET", f"{base}/Groups", 1) == [200]  # a list
    assert _statuses(open_fake, "GET", f"{base}/Groups/{group}", 3) == [502, 502, 200]


def test_several_classes_and_methods(open_fake: FakeAccount):
    fault = Fault.error(500, op_class=["get", OperationClass.LIST], method=("get", "POST"))
    assert fault.op_class == {OperationClass.GET, OperationClass.LIST}
    assert fault.method == {"GET", "POST"}
    assert Fault.drop(nth=[1, 3]).nth == {1, 3}
    assert Fault.drop(requests=4).requests == {4}


def test_probability_is_deterministic_under_a_seed(open_fake: FakeAccount):
    def run(seed: int) -> list[int]:
        fake = FakeAccount(require_auth=False)
        FaultPlan([Fault.server_error(503, probability=0.3)], seed=seed).install(fake)
        return _statuses(fake, "GET", META, 200)

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert 20 < first.count(503) < 100


def test_first_answering_fault_wins_and_latencies_add_up(open_fake: FakeAccount):
    plan = FaultPlan(
        [
            Fault.latency(0.1),
            Fault.error(429, retry_after=2, nth=1),
            Fault.error(503, nth=[1, 2]),
            Fault.latency(0.05, nth=2),
        ]
    ).install(open_fake)
    first = open_fake.dispatch("GET", META)
    second = open_fake.dispatch("GET", META)
    third = open_fake.dispatch("GET", META)
    assert (first.status, first.delay, first.fault) == (429, 0.1, "429+latency")
    assert dict(first.headers)["retry-after"] == "2"
    assert (second.status, second.delay, second.fault) == (503, pytest.approx(0.15), "503+latency")
    assert (third.status, third.delay) == (200, 0.1)
    assert [r.fault for r in open_fake.log] == ["429+latency", "503+latency", "latency"]
    assert open_fake.faults == {"latency": 3, "429": 1, "503": 1}
    assert plan.injected == {"latency": 3, "429": 1, "503": 1}


def test_fault_plans_with_rate_limits(open_fake: FakeAccount, clock: Clock):
    limits = ServerRateLimits(get=1, clock=clock)
    group = open_fake.add_group("g")
    path = f"{open_fake.scim_path}/Groups/{group}"
    plan = FaultPlan([Fault.error(500, nth=1)], rate_limits=limits).install(open_fake)
    # The faulted request takes no token; the next takes it; the third is limited.
    assert _statuses(open_fake, "GET", path, 3) == [500, 200, 429]
    assert plan.injected == {"500": 1, "rate_limited": 1}
    assert "rate_limits=ServerRateLimits(" in repr(plan)


# ---- fault plans: the answers -----------------------------------------------------------


def test_error_forms_by_endpoint(open_fake: FakeAccount):
    FaultPlan(
        [
            Fault.too_many_requests(retry_after=1.5, requests=1),
            Fault.too_many_requests(requests=2),
            Fault.request_limit_exceeded(requests=3),
            Fault.error(503, body=b"upstream unavailable", requests=4),
            Fault.error(429, retry_after=None, body=b"", requests=5),
            Fault.error(418, detail="TEAPOT: short and stout", requests=6),
        ]
    ).install(open_fake)
    scim = f"{open_fake.scim_path}/Users"
    rest = f"/api/2.0/accounts/{open_fake.account_id}/workspaces"
    first = open_fake.dispatch("GET", scim)
    assert first.json() == {
        "schemas": [SCIM_ERROR],
        "detail": "REQUEST_LIMIT_EXCEEDED: Too many requests. Please wait a moment and try again.",
        "status": "429",
    }
    assert dict(first.headers)["retry-after"] == "1.5"
    second = open_fake.dispatch("GET", rest)
    assert second.json() == {
        "error_code": "REQUEST_LIMIT_EXCEEDED",
        "message": "Too many requests. Please wait a moment and try again.",
    }
    assert dict(second.headers)["retry-after"] == "1"
    third = open_fake.dispatch("GET", rest)  # always the SCIM form, never a Retry-After
    assert third.status == 500
    assert third.json()["detail"].startswith("REQUEST_LIMIT_EXCEEDED: ")
    assert third.json()["status"] == "500"
    assert "retry-after" not in dict(third.headers)
    fourth = open_fake.dispatch("GET", scim)
    assert (fourth.status, fourth.body, dict(fourth.headers)) == (503, b"upstream unavailable", {})
    fifth = open_fake.dispatch("GET", scim)
    assert (fifth.status, fifth.body) == (429, b"")
    sixth = open_fake.dispatch("GET", rest)
    assert sixth.json() == {"error_code": "HTTP_418", "message": "short and stout"}
    assert open_fake.faults == {
        "429": 3,
        "request_limit_exceeded": 1,
        "503": 1,
        "418": 1,
    }


def test_a_faulted_write_changes_nothing(open_fake: FakeAccount):
    user = open_fake.add_user("a@example.com")
    group = open_fake.add_group("g")
    FaultPlan([Fault.server_error(503, op_class="patch", nth=1)]).install(open_fake)
    path = f"{open_fake.scim_path}/Groups/{group}"
    body = httpx.Request("PATCH", "http://x", json=add_members(user)).read()
    assert open_fake.dispatch("PATCH", path, {}, body).status == 503
    assert open_fake.group_members(group) == frozenset()
    assert open_fake.dispatch("PATCH", path, {}, body).status == 200
    assert open_fake.group_members(group) == {user}


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.drop(), httpx.RemoteProtocolError), (Fault.timeout(hold=60), httpx.ReadTimeout)],
)
def test_lost_answers_in_process(open_fake: FakeAccount, fault, error):
    user = open_fake.add_user("a@example.com")
    group = open_fake.add_group("g")
    applied = attrs.evolve(fault, applied=True)
    FaultPlan([attrs.evolve(fault, nth=1), attrs.evolve(applied, nth=2)]).install(open_fake)
    with httpx.Client(transport=open_fake.transport(), base_url=open_fake.host) as http:
        path = f"{open_fake.scim_path}/Groups/{group}"
        with pytest.raises(error):
            http.patch(path, json=add_members(user))
        assert open_fake.group_members(group) == frozenset()  # never reached the account
        with pytest.raises(error):
            http.patch(path, json=add_members(user))
        assert open_fake.group_members(group) == {user}  # the write happened; the answer didn't
    assert [r.status for r in open_fake.log] == [0, 0]
    assert [r.fault for r in open_fake.log] == [fault.label] * 2


def test_dispatch_raises_the_connection_fault(open_fake: FakeAccount):
    open_fake.interceptor = FaultPlan([Fault.timeout(hold=2.5)])
    with pytest.raises(HoldConnection) as caught:
        open_fake.dispatch("GET", META)
    assert caught.value.seconds == 2.5
    assert not caught.value.applied
    open_fake.interceptor = FaultPlan([Fault.drop(applied=True)])
    with pytest.raises(DropConnection):
        open_fake.dispatch("GET", META)
    assert open_fake.faults == {"timeout": 1, "drop": 1}


def test_latency_uses_the_injected_sleep(open_fake: FakeAccount):
    FaultPlan([Fault.latency(0.25, method="GET")]).install(open_fake)
    slept: list[float] = []

    async def async_sleep(seconds: float) -> None:
        slept.append(-seconds)

    transport = open_fake.transport(sleep=slept.append, async_sleep=async_sleep)
    with httpx.Client(transport=transport, base_url=open_fake.host) as http:
        assert http.get(META).status_code == 200
        assert http.post(META).status_code == 404  # not a GET: no latency

    async def read() -> int:
        async with httpx.AsyncClient(transport=transport, base_url=open_fake.host) as http:
            return (await http.get(META)).status_code

    assert asyncio.run(read()) == 200
    assert slept == [0.25, -0.25]


def test_interceptors_may_pass_through_with_a_delay_and_a_name(open_fake: FakeAccount):
    def slow(request: FakeRequest) -> PassThrough:
        return PassThrough(0.5, "slow")

    open_fake.interceptor = slow
    reply = open_fake.dispatch("GET", META)
    assert (reply.status, reply.delay) == (200, 0.5)
    assert open_fake.log[-1].fault == "slow"
    open_fake.interceptor = lambda request: FakeResponse(418)
    open_fake.dispatch("GET", META)
    assert open_fake.log[-1].fault == "intercepted"


# ---- stale reads windows ----------------------------------------------------------------


def test_stale_reads_for_a_window_of_requests(open_fake: FakeAccount):
    user = open_fake.add_user("a@example.com")
    group = open_fake.add_group("g")
    original = StaleReads(lag_requests=0, seed=3)
    open_fake.behaviour = attrs.evolve(open_fake.behaviour, stale_reads=original)
    FaultPlan([Fault.stale_reads(StaleReads(lag_requests=100), requests=range(2, 4))]).install(
        open_fake
    )
    path = f"{open_fake.scim_path}/Groups/{group}"
    body = httpx.Request("PATCH", "http://x", json=add_members(user)).read()
    assert open_fake.dispatch("PATCH", path, {}, body).status == 200  # request 1
    assert "members" not in open_fake.dispatch("GET", path).json()  # 2: stale
    assert open_fake.behaviour.stale_reads.lag_requests == 100
    assert "members" not in open_fake.dispatch("GET", path).json()  # 3: stale
    assert open_fake.dispatch("GET", path).json()["members"][0]["value"] == user  # 4: fresh
    assert open_fake.behaviour.stale_reads == original
    assert [r.fault for r in open_fake.log] == [None, "stale_reads", "stale_reads", None]


def test_stale_reads_need_the_plan_installed(open_fake: FakeAccount):
    open_fake.interceptor = FaultPlan([Fault.stale_reads(StaleReads(lag_requests=1))])
    with pytest.raises(RuntimeError, match="install"):
        open_fake.dispatch("GET", META)


# ---- validation, pickling ---------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Fault.error(200),
        lambda: Fault.server_error(404),
        lambda: Fault.latency(-1),
        lambda: Fault.drop(probability=1.5),
        lambda: Fault.drop(times=-1),
        lambda: Fault.drop(nth=["x"]),
        lambda: Fault.drop(op_class="nope"),
        lambda: Fault.too_many_requests(retry_after=-1),
    ],
)
def test_faults_validate(build):
    with pytest.raises(ValueError):
        build()


def test_plans_and_limits_pickle_with_their_state(open_fake: FakeAccount, clock: Clock):
    plan = FaultPlan(
        [Fault.error(503, nth=2), Fault.latency(0.1, path="/x$")],
        seed=5,
        rate_limits=ServerRateLimits(get=1, clock=clock),
    )
    plan.install(open_fake)
    open_fake.dispatch("GET", META)
    copy = pickle.loads(pickle.dumps(open_fake))  # noqa: S301 - our own bytes
    assert copy.dispatch("GET", META).status == 503  # the copy remembers the first request
    assert open_fake.dispatch("GET", META).status == 503
    assert copy.interceptor.seen == 2
    assert copy.interceptor.faults == plan.faults


# ---- the library against faults ---------------------------------------------------------


def test_our_client_rides_out_throttling_and_lost_answers(open_fake: FakeAccount):
    open_fake.require_auth = True
    creds = open_fake.add_service_principal("connector")
    group = open_fake.add_group("g")
    FaultPlan(
        [
            Fault.request_limit_exceeded(op_class="get", nth=1),
            Fault.too_many_requests(retry_after=1.5, op_class="get", nth=2),
            Fault.drop(op_class="get", nth=3),
            Fault.server_error(503, op_class="token", nth=1),
        ]
    ).install(open_fake)
    clock = da.ManualClock()
    config = da.AccountConfig(host=open_fake.host, account_id=open_fake.account_id)
    secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
    with da.AccountClient(
        config, secrets=secrets, transport=open_fake.transport(), clock=clock
    ) as client:
        assert client.groups.get(group).id == group
    assert [(r.op_class.value, r.status) for r in open_fake.log] == [
        ("token", 503),
        ("token", 200),
        ("get", 500),
        ("get", 429),
        ("get", 0),
        ("get", 200),
    ]


# ---- one plan, every way of serving -----------------------------------------------------


def _scenario() -> FaultPlan:
    return FaultPlan(
        [
            Fault.too_many_requests(retry_after=0.5, method="GET", nth=2),
            Fault.request_limit_exceeded(requests=3),
            Fault.drop(requests=4),
            Fault.timeout(hold=10, requests=5),
            Fault.latency(0.01, requests=6),
            Fault.server_error(503, probability=0.5, requests=range(7, 16)),
        ],
        seed=3,
        rate_limits=ServerRateLimits(get=8, burst=8, clock=Clock()),  # a frozen clock
    )


def _play(client: httpx.Client, path: str) -> list[object]:
    outcomes: list[object] = []
    for _ in range(20):
        try:
            outcomes.append(client.get(path).status_code)
        except httpx.RemoteProtocolError:
            outcomes.append("dropped")
        except httpx.ReadTimeout:
            outcomes.append("timed out")
    return outcomes


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_the_same_plan_plays_alike_in_process_and_over_loopback(process):
    local = FakeAccount(require_auth=False)
    path = f"{local.scim_path}/Groups/{local.add_group('g')}"
    _scenario().install(local)
    transport = local.transport(sleep=lambda _seconds: None)
    with httpx.Client(transport=transport, base_url=local.host) as client:
        expected = _play(client, path)
    assert expected[:6] == [200, 429, 500, "dropped", "timed out", 200]
    assert 503 in expected[6:15]
    assert expected[-1] == 429  # the GET bucket ran dry (its clock never moves)

    served = FakeAccount(require_auth=False)
    served.add_group("g")  # the same id: ids are drawn from the same seed
    _scenario().install(served)
    timeout = httpx.Timeout(5.0, read=0.3)  # much shorter than the held connection
    with (
        served.serve(process=process) as url,
        httpx.Client(base_url=url, timeout=timeout) as client,
    ):
        assert _play(client, path) == expected
    assert [(r.status, r.fault) for r in served.log] == [(r.status, r.fault) for r in local.log]
    assert served.faults == local.faults
