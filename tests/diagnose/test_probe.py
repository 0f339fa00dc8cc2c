"""The account probe against the emulator: every configured behaviour is measured back.

Each test builds an emulated account with one `Behaviour` (or fault), runs the probe on
it with an injected clock, and checks the report against what was configured and the
emulator's own state and request log (never the probe's word for it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import respx

import databricks_access as da
from databricks_access import _clock
from databricks_access._cli import app as _cli
from databricks_access._cli import session as _cli_session
from databricks_access.testing import (
    Behaviour,
    FakeAccount,
    FakeRequest,
    Fault,
    FaultPlan,
    MemberAnswer,
    OperationClass,
    ServerRateLimits,
    StaleReads,
)

SANDBOX = re.compile(r"^databricks-access-probe-[0-9a-f]{8}$")
API = (OperationClass.GET, OperationClass.LIST, OperationClass.PATCH, OperationClass.WRITE)


@attrs.define
class Account:
    clock: da.ManualClock
    fake: FakeAccount
    client_id: str
    client_secret: str
    users: list[str]

    @property
    def config(self) -> da.AccountConfig:
        return da.AccountConfig(host=self.fake.host, account_id=self.fake.account_id)

    def client(self) -> da.AccountClient:
        return da.AccountClient(
            self.config,
            secrets=da.StaticSecretStore(self.client_id, self.client_secret),
            transport=self.fake.transport(),
            clock=self.clock,
        )

    def aclient(self) -> da.AsyncAccountClient:
        return da.AsyncAccountClient(
            self.config,
            secrets=da.StaticSecretStore(self.client_id, self.client_secret),
            transport=self.fake.transport(),
            clock=self.clock,
        )

    def refs(self, count: int | None = None) -> list[da.PrincipalRef]:
        return [da.PrincipalRef("user", u) for u in self.users[:count]]

    def api_log(self):
        return [r for r in self.fake.log if r.op_class in API]

    def sandbox_names(self) -> list[str]:
        """The names of every group the probe asked to create (from the request log)."""
        return [
            json.loads(r.body)["displayName"]
            for r in self.fake.log
            if r.method == "POST" and r.path.endswith("/Groups")
        ]


def account(behaviour: Behaviour | None = None, *, users: int = 3, interceptor=None) -> Account:
    clock = da.ManualClock()
    fake = FakeAccount(
        clock=lambda: clock.now().timestamp(), behaviour=behaviour, interceptor=interceptor
    )
    sp = fake.add_service_principal("probe")
    ids = [fake.add_user(f"user{i}@example.com") for i in range(users)]
    fake.add_group("bystanders", members=ids[:1])
    return Account(clock, fake, sp.client_id, sp.client_secret, ids)


def run(acct: Account, principals=None, *, mode: str = "sync", **options) -> da.ProbeReport:
    named = acct.refs() if principals is None else principals
    if mode == "sync":
        with acct.client() as client:
            return da.probe(client, named, **options)

    async def main() -> da.ProbeReport:
        async with acct.aclient() as client:
            return await da.aprobe(client, named, **options)

    return asyncio.run(main())


def assert_only_the_sandbox_was_written(acct: Account) -> None:
    """Every write went to the one sandbox group, which is gone; bystanders are intact."""
    names = acct.sandbox_names()
    assert len(names) == 1
    assert SANDBOX.match(names[0])
    assert acct.fake.find_group(names[0]) is None
    writes = [r for r in acct.api_log() if r.method in ("PATCH", "DELETE", "PUT")]
    assert writes
    paths = {r.path for r in writes}
    assert len(paths) == 1
    (path,) = paths
    assert "/Groups/" in path
    bystanders = acct.fake.find_group("bystanders")
    assert bystanders is not None
    assert acct.fake.group_members(bystanders) == {acct.users[0]}


MODES = ["sync", "async"]


# -- an ordinary account ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_an_ordinary_account_is_measured_and_the_sandbox_is_deleted(mode):
    acct = account(users=5)
    report = run(acct, acct.refs(), mode=mode)
    assert report.batch.largest_accepted == 5
    assert report.batch.smallest_refused is None
    assert report.read_lag.at_least == 0.0
    assert report.read_lag.at_most == pytest.approx(1.0)
    assert report.member_answers.add_existing == 200
    assert report.member_answers.remove_missing == 200
    assert report.total_results.present is True
    assert report.plus_in_filter.read_as_space is None
    assert report.transient == ()
    assert report.sandbox_deleted
    assert report.requests_sent == len(acct.api_log())
    assert_only_the_sandbox_was_written(acct)
    for fact in report.facts():
        assert fact.how, fact
    assert "at least 5" in report.summary()


def test_requests_are_spaced_and_the_default_count_is_small():
    acct = account(users=1)
    report = run(acct, acct.refs())
    sent = acct.api_log()
    # create, write, one read, list, add existing, remove, remove absent, delete
    assert len(sent) == report.requests_sent == 8
    by_name = account(users=1)
    assert run(by_name, ["user0@example.com"]).requests_sent == len(by_name.api_log()) == 9
    starts = [r.started for r in sent]
    assert all(b - a >= 1.0 - 1e-6 for a, b in itertools.pairwise(starts))


def test_the_plan_lists_what_an_ordinary_run_sends():
    acct = account(users=4)
    with acct.client() as client:
        plan = da.probe(client, ["user3@example.com", *acct.refs(3)], plan=True)
        assert acct.fake.log == ()
        da.probe(client, ["user3@example.com", *acct.refs(3)])
    planned = [(p.method, p.target.partition("?")[0]) for p in plan.requests]
    group_id = acct.fake.log[-1].path.rsplit("/", 1)[1]
    sent = [(r.method, r.path.replace(group_id, "{sandbox}")) for r in acct.api_log()]
    assert sent == planned
    assert plan.most_requests >= len(sent)
    assert "user3@example.com" in str(plan)


# -- plan: nothing is sent --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_plan_sends_nothing(mode):
    acct = account()
    plan = run(acct, ["user1@example.com", *acct.refs(1)], mode=mode, plan=True, rate_limits=True)
    assert isinstance(plan, da.ProbePlan)
    assert acct.fake.log == ()
    steps = {r.step for r in plan.requests}
    assert {"resolve", "sandbox", "read_lag", "batch", "rate_limits", "cleanup"} <= steps
    assert plan.requests[-1].method == "DELETE"
    assert SANDBOX.match(plan.sandbox_group)


@pytest.mark.parametrize(
    ("principals", "field"),
    [
        ([], "principals"),
        ("user0@example.com", "principals"),
        ([da.PrincipalRef("group", "123")], "principals"),
        ([""], "principals"),
        (["alice"], "principals"),
        ([object()], "principals"),
    ],
)
def test_bad_input_is_refused_before_any_request(principals, field):
    acct = account()
    with acct.client() as client, pytest.raises(da.ConfigError) as caught:
        da.probe(client, principals)
    assert field in str(caught.value)
    assert acct.fake.log == ()


@pytest.mark.parametrize(
    ("option", "value"),
    [("spacing", 0.1), ("max_lag", 0), ("rate_limit_seconds", 600), ("rate_limits", "yes")],
)
def test_bad_options_are_refused_before_any_request(option, value):
    acct = account()
    with acct.client() as client, pytest.raises(da.ConfigError) as caught:
        da.probe(client, acct.refs(), **{option: value})
    assert option in str(caught.value)
    assert acct.fake.log == ()


# -- hostile accounts: each configured behaviour is recovered ------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [400, 413])
def test_a_batch_limit_of_20_is_found_exactly(mode, status):
    acct = account(Behaviour(patch_member_limit=20, patch_member_limit_status=status), users=25)
    report = run(acct, acct.refs(), mode=mode)
    assert report.batch.exact == 20
    assert report.batch.refused_status == status
    assert report.batch_size_or_default() == 20
    assert_only_the_sandbox_was_written(acct)
    # Every PATCH the emulator accepted was within the limit.
    accepted = [r for r in acct.api_log() if r.method == "PATCH" and r.status < 300]
    assert all(len(json.loads(r.body)["Operations"]) <= 20 for r in accepted)


def test_a_limit_beyond_the_named_principals_is_a_lower_bound():
    acct = account(Behaviour(patch_member_limit=20), users=6)
    report = run(acct, acct.refs())
    assert report.batch.largest_accepted == 6
    assert report.batch.smallest_refused is None
    assert "lower bound" in report.batch.uncertainty
    assert report.batch_size_or_default() == 100


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lag", [7.0, 600.0])
def test_read_lag_is_bracketed(mode, lag):
    acct = account(Behaviour(stale_reads=StaleReads(lag_seconds=lag)))
    report = run(acct, acct.refs(), mode=mode)
    measured = report.read_lag
    assert measured.at_least is not None
    assert measured.at_most is not None
    assert measured.at_least < lag <= measured.at_most
    assert measured.at_most - measured.at_least <= 30.0
    assert report.suggested_consistency_window() >= dt.timedelta(seconds=lag)
    assert_only_the_sandbox_was_written(acct)


def test_a_lag_longer_than_the_bound_is_reported_as_more_than_it():
    acct = account(Behaviour(stale_reads=StaleReads(lag_seconds=2000)))
    report = run(acct, acct.refs(), max_lag=900)
    assert report.read_lag.at_most is None
    assert 800 <= report.read_lag.at_least < 2000
    assert "more than" in report.summary()
    assert report.suggested_consistency_window() >= dt.timedelta(seconds=1600)


@pytest.mark.parametrize(
    ("add_existing", "remove_missing", "statuses"),
    [
        (MemberAnswer.OK, MemberAnswer.OK, (200, 200)),
        (MemberAnswer.CONFLICT, MemberAnswer.NOT_FOUND, (409, 404)),
        (MemberAnswer.BAD_REQUEST, MemberAnswer.BAD_REQUEST, (400, 400)),
    ],
)
def test_answers_for_existing_and_absent_members(add_existing, remove_missing, statuses):
    acct = account(
        Behaviour(add_existing_member=add_existing, remove_missing_member=remove_missing)
    )
    report = run(acct)
    assert (report.member_answers.add_existing, report.member_answers.remove_missing) == statuses
    assert_only_the_sandbox_was_written(acct)


def test_a_204_patch_is_reported_as_it_was_answered():
    report = run(account(Behaviour(patch_status=204)))
    assert report.member_answers.add_existing == 204


def test_list_replies_without_total_results():
    report = run(account(Behaviour(list_total_results=False)))
    assert report.total_results.present is False


def test_a_plus_in_a_filter_is_read_as_a_space():
    acct = account()
    plus = acct.fake.add_user("first+probe@example.com")
    report = run(acct, ["first+probe@example.com"])
    assert report.plus_in_filter.read_as_space is True
    assert report.plus_in_filter.encoded_found is True
    assert report.plus_in_filter.raw_found is False
    raw = [r for r in acct.fake.log if r.path.endswith("/Users") and "+" in r.query]
    assert raw, "the raw '+' was sent as is"
    assert acct.fake.groups_of(plus) == frozenset()


@pytest.mark.parametrize("mode", MODES)
def test_an_add_answered_503_but_applied_is_seen_as_applied(mode):
    acct = account(users=4)
    FaultPlan([Fault.error(503, applied=True, method="PATCH", nth=1)]).install(acct.fake)
    acct.fake.behaviour = attrs.evolve(
        acct.fake.behaviour, add_existing_member=MemberAnswer.CONFLICT
    )
    report = run(acct, acct.refs(), mode=mode)
    (transient,) = report.transient
    assert (transient.step, transient.status, transient.applied) == ("read_lag", 503, True)
    # The rest is measured all the same.
    assert report.member_answers.add_existing == 409
    assert report.batch.largest_accepted == 4
    assert "applied" in report.summary()
    assert_only_the_sandbox_was_written(acct)


def test_a_sandbox_not_yet_visible_to_writes_and_reads_is_waited_for():
    acct = account()
    group_path = r"/Groups/[^/]+$"
    FaultPlan(
        [
            Fault.error(404, method="PATCH", path=group_path, nth=(1, 2)),
            Fault.error(404, method="GET", path=group_path, nth=1),
        ]
    ).install(acct.fake)
    report = run(acct)
    assert report.read_lag.reads == 2
    assert report.read_lag.at_least is not None
    assert report.read_lag.at_most is not None
    assert report.member_answers.add_existing == 200
    assert report.sandbox_deleted
    assert_only_the_sandbox_was_written(acct)


def test_every_patch_answered_503_but_applied_is_survived_and_reported():
    acct = account(Behaviour(stale_reads=StaleReads(lag_seconds=3)), users=4)
    FaultPlan([Fault.error(503, applied=True, method="PATCH")]).install(acct.fake)
    report = run(acct, acct.refs())
    assert report.transient[0].applied is True
    assert report.read_lag.at_least < 3 <= report.read_lag.at_most
    assert report.member_answers.add_existing is None
    assert "429/5xx every time" in report.member_answers.how
    assert {t.status for t in report.transient} == {503}
    assert "not measured" in report.summary()
    assert report.sandbox_deleted
    assert_only_the_sandbox_was_written(acct)


def test_a_transient_answer_to_a_later_patch_is_sent_again():
    acct = account()
    FaultPlan([Fault.error(503, retry_after=2, method="PATCH", nth=2)]).install(acct.fake)
    report = run(acct)
    (transient,) = report.transient
    assert (transient.step, transient.status, transient.retry_after) == ("add_existing", 503, 2)
    assert transient.applied is None
    assert report.member_answers.add_existing == 200


@pytest.mark.parametrize("mode", MODES)
def test_rate_limits_are_measured_up_to_the_first_429(mode):
    acct = account()
    limits = ServerRateLimits(get=10, list=3, patch=1.5, write=None, clock=acct.clock.monotonic)
    acct.fake.interceptor = limits
    report = run(acct, acct.refs(1), mode=mode, rate_limits=True)
    runs = {r.op: r for r in report.rate_limits}
    for op, rate in (("get", 10), ("list", 3), ("patch", 1.5)):
        measured = runs[op]
        assert measured.limited_status == 429
        assert measured.retry_after is not None
        low, high = measured.rate_range
        assert low <= rate < high
        assert measured.estimated_rate == pytest.approx((low + high) / 2)
    # Each run stopped at its first 429.
    limited = [r for r in acct.fake.log if r.fault == "rate_limited"]
    assert len(limited) == 3
    assert "Retry-After" in report.summary()
    assert_only_the_sandbox_was_written(acct)


def test_the_emulator_plays_measured_rate_limits():
    acct = account()
    acct.fake.interceptor = ServerRateLimits(get=10, list=3, patch=1.5, clock=acct.clock.monotonic)
    first = run(acct, acct.refs(1), rate_limits=True)
    played = ServerRateLimits.from_probe(first, clock=acct.clock.monotonic)
    for measured in first.rate_limits:
        low, high = measured.rate_range
        assert low <= getattr(played, measured.op) < high
    assert played.status == 429
    assert played.write == 5.0  # not probed: the published default


def test_throttling_as_a_500_without_retry_after():
    acct = account()
    acct.fake.interceptor = ServerRateLimits(status=500, clock=acct.clock.monotonic)
    report = run(acct, acct.refs(1), rate_limits=True)
    assert {r.limited_status for r in report.rate_limits} == {500}
    assert all(r.retry_after is None for r in report.rate_limits)
    assert "no Retry-After" in report.summary()


def test_a_server_error_in_a_rate_limit_run_ends_that_run_only():
    acct = account()
    FaultPlan([Fault.error(503, method="GET", path=r"/Groups/[^/]+$", nth=3)]).install(acct.fake)
    report = run(acct, acct.refs(1), rate_limits=True)
    runs = {r.op: r for r in report.rate_limits}
    assert runs["get"].accepted == 1
    assert runs["get"].limited_status is None
    assert runs["get"].stopped_by == 503
    assert "a 503 answer ended the run" in report.summary()
    assert runs["list"].accepted == 40
    assert [(t.step, t.status) for t in report.transient] == [("rate_limits_get", 503)]
    assert_only_the_sandbox_was_written(acct)


def test_rate_limits_are_opt_in():
    acct = account()
    report = run(acct)
    assert report.rate_limits == ()
    assert acct.fake.faults == {}


# -- interrupted probes leave nothing behind ----------------------------------------------------


class InterruptOn:
    """An interceptor raising KeyboardInterrupt at the n-th API request of `method`."""

    def __init__(self, method: str, nth: int) -> None:
        self.method, self.nth, self.seen = method, nth, 0

    def __call__(self, request: FakeRequest):
        if request.method == self.method and request.op_class in API:
            self.seen += 1
            if self.seen == self.nth:
                raise KeyboardInterrupt


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("method", "nth"), [("PATCH", 1), ("PATCH", 4), ("GET", 2), ("DELETE", 1)])
def test_an_interrupted_probe_deletes_its_sandbox(mode, method, nth):
    acct = account(users=4)
    acct.fake.interceptor = InterruptOn(method, nth)
    with pytest.raises(KeyboardInterrupt):
        run(acct, acct.refs(), mode=mode)
    (name,) = acct.sandbox_names()
    assert acct.fake.find_group(name) is None
    assert acct.fake.log[-1].method == "DELETE"


def test_a_cancelled_async_probe_deletes_its_sandbox():
    acct = account(users=4)

    def cancel(request: FakeRequest) -> None:
        if request.method == "PATCH" and request.op_class in API:
            acct.fake.interceptor = None
            raise asyncio.CancelledError

    acct.fake.interceptor = cancel
    with pytest.raises(asyncio.CancelledError):
        run(acct, acct.refs(), mode="async")
    (name,) = acct.sandbox_names()
    assert acct.fake.find_group(name) is None


@pytest.mark.parametrize("mode", MODES)
def test_an_error_in_the_middle_deletes_the_sandbox(mode):
    acct = account()
    FaultPlan([Fault.error(403, method="PATCH", nth=1)]).install(acct.fake)
    with pytest.raises(da.PermissionDeniedError):
        run(acct, mode=mode)
    (name,) = acct.sandbox_names()
    assert acct.fake.find_group(name) is None


def test_a_create_whose_answer_was_lost_is_found_by_name_and_deleted():
    acct = account()
    FaultPlan([Fault.drop(applied=True, method="POST", path=r"/Groups$")]).install(acct.fake)
    with pytest.raises(da.TransportError):
        run(acct)
    (name,) = acct.sandbox_names()
    assert acct.fake.find_group(name) is None
    assert acct.fake.log[-1].method == "DELETE"


# -- the report -----------------------------------------------------------------------------


def hostile() -> Behaviour:
    return Behaviour(
        patch_member_limit=20,
        stale_reads=StaleReads(lag_seconds=600),
        add_existing_member=MemberAnswer.CONFLICT,
        remove_missing_member=MemberAnswer.BAD_REQUEST,
        list_total_results=False,
    )


def test_the_report_round_trips_through_json_and_holds_no_secret():
    acct = account(hostile(), users=25)
    report = run(acct)
    text = report.to_json()
    assert da.ProbeReport.from_json(text) == report
    assert json.loads(text)["schema_version"] == 1
    with acct.client() as client:
        token = client.auth.token if hasattr(client.auth, "token") else None
    for secret in (acct.client_secret, acct.client_id, *acct.users):
        assert secret not in text
        assert secret not in report.summary()
        assert secret not in repr(report)
    assert token is None or token not in text


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("not json", "probe_report"),
        ("[]", "probe_report"),
        ('{"schema_version": 99}', "schema_version"),
        ('{"schema_version": 1, "host": 3}', "probe_report"),
    ],
)
def test_a_bad_report_is_refused_naming_the_field(text, field):
    with pytest.raises(da.ConfigError) as caught:
        da.ProbeReport.from_json(text)
    assert field in str(caught.value)


def test_the_emulator_plays_a_report_and_the_probe_measures_it_back():
    first = run(account(hostile(), users=25))
    behaviour = Behaviour.from_probe(first)
    assert behaviour.patch_member_limit == 20
    assert behaviour.add_existing_member is MemberAnswer.CONFLICT
    assert behaviour.remove_missing_member is MemberAnswer.BAD_REQUEST
    assert behaviour.list_total_results is False
    assert behaviour.stale_reads.lag_seconds == first.read_lag.at_most
    second = run(account(behaviour, users=25))
    assert second.batch == first.batch
    assert second.member_answers == first.member_answers
    assert second.total_results == first.total_results
    assert second.read_lag.at_least < behaviour.stale_reads.lag_seconds <= second.read_lag.at_most


def test_a_report_that_measured_nothing_changes_no_behaviour():
    report = da.ProbeReport(generated_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), host="h")
    base = Behaviour(page_cap=7)
    assert Behaviour.from_probe(report, base) == base
    assert report.batch_size_or_default() == 100
    assert report.suggested_consistency_window() == dt.timedelta(minutes=5)
    assert report.disagreements() == []
    assert "not measured" in report.summary()


def test_the_library_takes_its_settings_from_a_report():
    acct = account(hostile(), users=25)
    report = run(acct)
    group = acct.fake.add_group("team")
    with acct.client() as client:
        manager = da.MembershipManager(client, batch_size=report.batch_size_or_default())
        tracker = da.LeaseTracker(
            manager,
            store=da.MemoryLeaseStore(),
            consistency_window=report.suggested_consistency_window(),
        )
        acct.fake.reset_log()
        batch = manager.grant_many([(ref, group) for ref in acct.refs()])
        assert len(batch.results) == 25
        # 25 members in PATCHes of at most 20: two, both accepted.
        patches = [r for r in acct.fake.log if r.method == "PATCH"]
        assert [r.status for r in patches] == [200, 200]
        assert acct.fake.group_members(group) == set(acct.users)
        other = acct.fake.add_group("other")
        lease = tracker.grant(
            acct.refs(1)[0], other, ttl=dt.timedelta(hours=1), requester="r", reason="probe"
        )
        assert lease.state is da.LeaseState.ACTIVE
        assert tracker.flows.s.consistency_window >= 600


@pytest.mark.parametrize("mode", MODES)
def test_diagnose_says_when_the_defaults_disagree_with_a_report(mode):
    acct = account(hostile(), users=25)
    report = run(acct)
    if mode == "sync":
        with acct.client() as client:
            diagnosis = da.diagnose(client, probe_report=report)
    else:

        async def main():
            async with acct.aclient() as client:
                return await da.adiagnose(client, probe_report=report)

        diagnosis = asyncio.run(main())
    check = diagnosis["probe_report"]
    assert check.ok is False
    assert "batch size 100" in check.verdict
    assert "consistency window" in check.verdict
    assert "batch_size=20" in (check.fix or "")

    agreeing = run(account())
    with acct.client() as client:
        assert da.diagnose(client, probe_report=agreeing)["probe_report"].ok is True
        with pytest.raises(da.ConfigError, match="probe_report"):
            da.diagnose(client, probe_report="probe.json")  # type: ignore[arg-type]


def test_probe_and_aprobe_are_twins():
    def shape(func):
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    assert shape(da.probe) == shape(da.aprobe)
    assert inspect.iscoroutinefunction(da.aprobe)
    for name in ("probe", "aprobe", "ProbeReport", "ProbePlan", "PlannedProbeRequest"):
        assert getattr(da, name).__doc__


def test_the_probe_page_runs(tmp_path, monkeypatch):
    host = "accounts.cloud.databricks.com"
    fake = FakeAccount(account_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", host=f"https://{host}")
    sp = fake.add_service_principal("connector")
    alice = fake.add_user("alice@example.com")
    fake.add_user("bob@example.com")
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", sp.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", sp.client_secret)
    monkeypatch.chdir(tmp_path)
    # The page's client uses the system clock: make its pauses instant.
    monkeypatch.setattr(_clock, "SystemClock", da.ManualClock)
    page = (Path(__file__).resolve().parents[2] / "docs" / "probe.md").read_text("utf-8")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    transport = fake.transport()
    with respx.mock(assert_all_called=False) as router:
        router.route(host=host).mock(side_effect=transport.handle_request)
        for block in re.findall(r"```python\n(.*?)```", page, re.DOTALL):
            exec(compile(block, "docs/probe.md", "exec"), namespace)  # noqa: S102
    report = namespace["report"]
    assert isinstance(report, da.ProbeReport)
    assert report.sandbox_deleted
    assert report.batch.largest_accepted == 2
    assert (tmp_path / "probe.json").exists()
    assert isinstance(namespace["fake"], FakeAccount)
    posts = [r for r in fake.log if r.method == "POST" and r.path.endswith("/Groups")]
    (name,) = [json.loads(r.body)["displayName"] for r in posts]
    assert fake.find_group(name) is None
    assert fake.groups_of(alice) == frozenset()


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    acct = account(hostile(), users=25)
    config = tmp_path / "integration.json"
    config.write_text(
        json.dumps(
            {
                "name": "probe-test",
                "accounts_url": acct.fake.host,
                "account_id": acct.fake.account_id,
                "secret_store": "env",
                "lease_store": f"sqlite:///{tmp_path / 'leases.db'}",
            }
        ),
        encoding="utf-8",
    )
    # The command's client, on the emulator and the injected clock.
    monkeypatch.setattr(_cli_session._Session, "client", property(lambda _self: acct.client()))
    env = {"DATABRICKS_CLIENT_ID": acct.client_id, "DATABRICKS_CLIENT_SECRET": acct.client_secret}

    def invoke(*args: str):
        capsys.readouterr()
        try:
            code = _cli.main([*args, "--config", str(config)], environ=env)
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    invoke.acct = acct  # type: ignore[attr-defined]
    invoke.tmp_path = tmp_path  # type: ignore[attr-defined]
    return invoke


def test_cli_plan_sends_nothing(cli):
    code, out, _ = cli("probe", "--principal", "user0@example.com", "--plan")
    assert code == 0
    assert "DELETE" in out
    assert "user0@example.com" in out
    assert cli.acct.fake.log == ()


def test_cli_sends_nothing_without_yes(cli):
    code, out, err = cli("probe", "--principal", "user0@example.com")
    assert code == 2
    assert "POST" in out
    assert "--yes" in err
    assert cli.acct.fake.log == ()


def test_cli_refuses_to_run_without_a_principal(cli):
    code, _, err = cli("probe", "--yes")
    assert code == 2
    assert "--principal" in err
    assert cli.acct.fake.log == ()


@pytest.mark.parametrize(
    ("args", "option"),
    [(["--principal", "alice"], "--principal"), (["--max-lag", "7200"], "--max-lag")],
)
def test_cli_bad_input_names_the_option_and_sends_nothing(cli, args, option):
    base = ["--principal", "user0@example.com"] if option != "--principal" else []
    code, _, err = cli("probe", *base, *args, "--yes")
    assert code == 2
    assert err.startswith(f"error: {option}:")
    assert cli.acct.fake.log == ()


def test_cli_runs_writes_the_report_and_doctor_reads_it(cli):
    report_file: Path = cli.tmp_path / "probe.json"
    names = [f"--principal=user{i}@example.com" for i in range(25)]
    code, out, _ = cli("probe", *names, "--yes", "--output", str(report_file))
    assert code == 0, out
    report = da.ProbeReport.from_json(report_file.read_text(encoding="utf-8"))
    assert report.batch.exact == 20
    assert "exactly 20" in out
    assert_only_the_sandbox_was_written(cli.acct)
    assert cli.acct.client_secret not in report_file.read_text(encoding="utf-8") + out

    code, out, _ = cli("doctor", "--probe-report", str(report_file))
    assert "[FAIL] probe_report" in out
    code, _, err = cli("doctor", "--probe-report", str(cli.tmp_path / "missing.json"))
    assert code == 1
    assert "cannot read the probe report" in err


def test_cli_help_names_the_probe(cli):
    code, out, _ = cli("probe", "--help")
    assert code == 0
    assert "--plan" in out
    assert "--yes" in out
    assert "--rate-limits" in out


# -- the emulator's new switches, on their own ----------------------------------------------


def test_the_patch_member_limit_counts_every_member_a_patch_names():
    acct = account(Behaviour(patch_member_limit=2, patch_member_limit_status=413), users=3)
    group = acct.fake.add_group("limited")
    path = f"{acct.fake.scim_path}/Groups/{group}"
    schema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    token = {"Authorization": f"Bearer {acct.fake.static_token()}"}

    def patch(operations) -> int:
        body = json.dumps({"schemas": [schema], "Operations": operations}).encode()
        return acct.fake.dispatch("PATCH", path, token, body).status

    three = [{"value": u} for u in acct.users]
    assert patch([{"op": "add", "path": "members", "value": three}]) == 413
    assert patch([{"op": "add", "value": {"members": three}}]) == 413
    assert acct.fake.group_members(group) == set()
    assert patch([{"op": "add", "path": "members", "value": three[:2]}]) == 200
    removes = [{"op": "remove", "path": f'members[value eq "{u}"]'} for u in acct.users]
    assert patch(removes) == 413
    assert patch(removes[:2]) == 200
    assert acct.fake.group_members(group) == set()


@pytest.mark.parametrize("status", [200, 429, 500])
def test_the_limit_status_must_be_a_client_error(status):
    with pytest.raises(ValueError, match="patch_member_limit_status"):
        Behaviour(patch_member_limit=5, patch_member_limit_status=status)


def test_the_client_pages_lists_without_total_results():
    acct = account(Behaviour(list_total_results=False, page_cap=2), users=5)
    with acct.client() as client:
        users = client.users.list().collect()
    assert {u.id for u in users} >= set(acct.users)
    listed = [r for r in acct.fake.log if r.path.endswith("/Users")]
    assert len(listed) >= 3  # paged until an empty page, with no totalResults to stop on


def test_the_real_entry_point_plans_without_sending(tmp_path):
    fake = FakeAccount()
    sp = fake.add_service_principal("probe")
    with fake.serve() as url:
        config = tmp_path / "integration.json"
        config.write_text(
            json.dumps(
                {
                    "name": "probe-test",
                    "accounts_url": url,
                    "account_id": fake.account_id,
                    "allow_custom_host": True,
                    "allow_insecure_http": True,
                    "secret_store": "env",
                }
            ),
            encoding="utf-8",
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABRICKS_", "COV_CORE_"))
        }
        env |= {"DATABRICKS_CLIENT_ID": sp.client_id, "DATABRICKS_CLIENT_SECRET": sp.client_secret}
        argv = ["probe", "--principal", "a@example.com", "--plan", "--config", str(config)]
        done = subprocess.run(
            [sys.executable, "-m", "databricks_access", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "DELETE" in done.stdout
    assert fake.log == ()
