"""Who may approve, in every pairing of access requests and integration.

Each case submits a request and has somebody approve it through real integrations
(`Integration`, `AsyncIntegration`) on the emulator, then reads the emulator's group
membership and the store's rows: the library's own answer is not the evidence.

The pairings: sync requests with a sync integration, async with async, async with sync
(run in worker threads), and sync requests with an async integration, which is refused
when it is built: its answers would be coroutines, never awaited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import attrs
import pytest

import databricks_access as da
from databricks_access.testing import FakeAccount

HOUR = dt.timedelta(hours=1)
OWNERS = ["bob@example.com", "alice@example.com", "rita@example.com"]
PAIRINGS = ["sync/sync", "async/async", "async/sync", "sync/async"]


@attrs.define
class Env:
    fake: FakeAccount
    client: da.AccountClient
    async_client_factory: Callable[[], da.AsyncAccountClient]
    clock: da.ManualClock
    ids: dict[str, str]
    config: da.IntegrationConfig


@pytest.fixture
def env(fake, client, async_client_factory, clock):
    ids = {name: fake.add_user(f"{name}@example.com") for name in ("alice", "bob", "rita", "mal")}
    ids["readers"] = fake.add_group("prod-readers")
    config = da.IntegrationConfig(
        name="jit",
        accounts_url=fake.host,
        account_id=fake.account_id,
        integration_owners=OWNERS,
    )
    return Env(fake, client, async_client_factory, clock, ids, config)


@attrs.frozen
class Outcome:
    """What one attempt left: the approval's answer or error, and the store."""

    result: da.AccessRequest | Exception
    store: da.MemoryLeaseStore

    @property
    def error(self) -> Exception:
        assert isinstance(self.result, Exception), self.result
        return self.result


def attempt(env: Env, pairing: str, *, principal, requester: str, approver: str) -> Outcome:
    """Submit a request for `principal` to prod-readers, then have `approver` approve it."""
    store = da.MemoryLeaseStore()
    group = env.ids["readers"]
    if pairing.startswith("sync/"):
        tracker = da.LeaseTracker(da.MembershipManager(env.client), store=store, clock=env.clock)
        if pairing == "sync/async":
            try:
                da.AccessRequests(tracker, da.AsyncIntegration(env.config))  # type: ignore[arg-type]
            except da.ConfigError as exc:
                return Outcome(exc, store)
            pytest.fail("a sync AccessRequests took an AsyncIntegration")
        requests = da.AccessRequests(tracker, da.Integration(env.config, client=env.client))
        req = requests.submit(principal(env), group, ttl=HOUR, reason="INC-1", requester=requester)
        try:
            return Outcome(requests.approve(req.id, approver=approver), store)
        except da.ApprovalError as exc:
            return Outcome(exc, store)

    async def main() -> da.AccessRequest | Exception:
        async with env.async_client_factory() as aclient:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(aclient), store=store, clock=env.clock
            )
            integration: da.AsyncIntegration | da.Integration = (
                da.AsyncIntegration(env.config, client=aclient)
                if pairing == "async/async"
                else da.Integration(env.config, client=env.client)
            )
            requests = da.AsyncAccessRequests(tracker, integration)
            req = await requests.submit(
                principal(env), group, ttl=HOUR, reason="INC-1", requester=requester
            )
            try:
                return await requests.approve(req.id, approver=approver)
            except da.ApprovalError as exc:
                return exc

    return Outcome(asyncio.run(main()), store)


def by_name(env: Env) -> str:
    return "alice@example.com"


def by_ref(env: Env) -> da.PrincipalRef:
    return da.PrincipalRef(da.PrincipalKind.USER, env.ids["alice"])


def by_model(env: Env) -> da.User:
    return env.client.users.get(env.ids["alice"])


# (case, principal, requester, approver, refusal: None when the approval must succeed)
CASES = [
    ("approver", by_name, "alice@example.com", "bob@example.com", None),
    ("approver-for-a-model", by_model, "helpdesk@example.com", "Bob@Example.com", None),
    ("non-approver", by_name, "alice@example.com", "mal@example.com", "not an approver"),
    ("principal-by-name", by_name, "helpdesk@example.com", "alice@example.com", "their own"),
    ("principal-by-name-respelled", by_name, "helpdesk@example.com", " ALICE@example.com", "their own"),
    ("principal-by-ref", by_ref, "helpdesk@example.com", "alice@example.com", "their own"),
    ("principal-by-ref-respelled", by_ref, "helpdesk@example.com", "Alice@Example.COM", "their own"),
    ("principal-by-model", by_model, "helpdesk@example.com", "alice@example.com", "their own"),
    ("requester", by_name, "rita@example.com", "rita@example.com", "their own"),
    ("requester-respelled", by_ref, "rita@example.com", "RITA@example.com", "their own"),
]  # fmt: skip


@pytest.mark.parametrize("pairing", PAIRINGS)
@pytest.mark.parametrize(
    ("principal", "requester", "approver", "refusal"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_who_may_approve(env, pairing, principal, requester, approver, refusal):
    outcome = attempt(env, pairing, principal=principal, requester=requester, approver=approver)
    members = env.fake.group_members(env.ids["readers"])
    if pairing == "sync/async":
        # Refused when built, whoever would have approved: nothing was asked or stored.
        assert isinstance(outcome.error, da.ConfigError)
        assert outcome.error.fields == ("integration",)
        assert "AsyncAccessRequests" in str(outcome.error)
        assert members == frozenset()
        assert outcome.store.find_requests() == []
        return
    (stored,) = outcome.store.find_requests()
    if refusal is None:
        assert members == {env.ids["alice"]}
        assert stored.state is da.RequestState.APPROVED
        (lease,) = outcome.store.find_leases()
        assert lease.state is da.LeaseState.ACTIVE
        assert (lease.approver, lease.request_id) == (approver, stored.id)
        assert stored.lease_id == lease.id
    else:
        assert isinstance(outcome.error, da.ApprovalError)
        assert refusal in str(outcome.error)
        assert members == frozenset()
        assert stored.state is da.RequestState.PENDING
        assert stored.decided_by is None
        assert outcome.store.find_leases() == []


# -- answers that are not a plain yes ---------------------------------------------------------


class SyncAnswers:
    """A sync integration whose `is_approver` answers `answer`, whatever is asked."""

    custom_access_details = None

    def __init__(self, inner: da.Integration, answer: object) -> None:
        self.inner = inner
        self.answer = answer

    def approvers_for(self, group: da.Group | str) -> da.Approvers:
        return self.inner.approvers_for(group)

    def is_approver(self, identity: str, approvers: da.Approvers) -> bool:
        return self.answer  # type: ignore[return-value]


class AsyncAnswers:
    """The async twin of `SyncAnswers`."""

    custom_access_details = None

    def __init__(self, inner: da.Integration, answer: object) -> None:
        self.inner = inner
        self.answer = answer

    async def approvers_for(self, group: da.Group | str) -> da.Approvers:
        return self.inner.approvers_for(group)

    async def is_approver(self, identity: str, approvers: da.Approvers) -> bool:
        return self.answer  # type: ignore[return-value]


TRUTHY = ["yes", 1, 1.0, ["bob"], object()]


@pytest.mark.parametrize("answer", TRUTHY, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("side", ["sync", "async/async", "async/sync"])
def test_only_exactly_true_is_a_yes(env, side, answer):
    group = env.ids["readers"]
    store = da.MemoryLeaseStore()
    inner = da.Integration(env.config, client=env.client)
    if side == "sync":
        tracker = da.LeaseTracker(da.MembershipManager(env.client), store=store, clock=env.clock)
        requests = da.AccessRequests(tracker, SyncAnswers(inner, answer))
        req = requests.submit("alice@example.com", group, ttl=HOUR, reason="r", requester="a")
        with pytest.raises(da.ApprovalError, match="not an approver"):
            requests.approve(req.id, approver="mal@example.com")
    else:

        async def main() -> None:
            async with env.async_client_factory() as aclient:
                tracker = da.AsyncLeaseTracker(
                    da.AsyncMembershipManager(aclient), store=store, clock=env.clock
                )
                answers = (
                    AsyncAnswers(inner, answer)
                    if side == "async/async"
                    else SyncAnswers(inner, answer)
                )
                requests = da.AsyncAccessRequests(tracker, answers)
                req = await requests.submit(
                    "alice@example.com", group, ttl=HOUR, reason="r", requester="a"
                )
                with pytest.raises(da.ApprovalError, match="not an approver"):
                    await requests.approve(req.id, approver="mal@example.com")

        asyncio.run(main())
    assert env.fake.group_members(group) == frozenset()
    assert [r.state for r in store.find_requests()] == [da.RequestState.PENDING]
    assert store.find_leases() == []


class Disguised:
    """Sync-looking methods that hand back an async integration's coroutines."""

    custom_access_details = None

    def __init__(self, inner: da.AsyncIntegration, sync: da.Integration) -> None:
        self.inner = inner
        self.sync = sync

    def approvers_for(self, group: da.Group | str) -> da.Approvers:
        return self.sync.approvers_for(group)

    def is_approver(self, identity: str, approvers: da.Approvers) -> bool:
        return self.inner.is_approver(identity, approvers)  # type: ignore[return-value]


@pytest.mark.parametrize("side", ["sync", "async"])
def test_a_coroutine_where_a_sync_answer_belongs_is_refused_not_taken_for_a_yes(env, side):
    group = env.ids["readers"]
    store = da.MemoryLeaseStore()
    integration = Disguised(
        da.AsyncIntegration(env.config), da.Integration(env.config, client=env.client)
    )
    if side == "sync":
        tracker = da.LeaseTracker(da.MembershipManager(env.client), store=store, clock=env.clock)
        requests = da.AccessRequests(tracker, integration)
        req = requests.submit("alice@example.com", group, ttl=HOUR, reason="r", requester="a")
        with pytest.raises(da.ConfigError, match="AsyncAccessRequests") as caught:
            requests.approve(req.id, approver="mal@example.com")
    else:

        async def main() -> pytest.ExceptionInfo[da.ConfigError]:
            async with env.async_client_factory() as aclient:
                tracker = da.AsyncLeaseTracker(
                    da.AsyncMembershipManager(aclient), store=store, clock=env.clock
                )
                requests = da.AsyncAccessRequests(tracker, integration)
                req = await requests.submit(
                    "alice@example.com", group, ttl=HOUR, reason="r", requester="a"
                )
                with pytest.raises(da.ConfigError, match="AsyncAccessRequests") as caught:
                    await requests.approve(req.id, approver="mal@example.com")
                return caught

        caught = asyncio.run(main())
    # The coroutine was closed, never awaited (warnings are errors here), and is no yes.
    assert caught.value.fields == ("integration",)
    assert env.fake.group_members(group) == frozenset()
    assert [r.state for r in store.find_requests()] == [da.RequestState.PENDING]


class Mixed:
    custom_access_details = None

    def approvers_for(self, group: da.Group | str) -> da.Approvers:
        raise AssertionError("never asked")

    async def is_approver(self, identity: str, approvers: da.Approvers) -> bool:
        raise AssertionError("never asked")


class NoDetails:
    def approvers_for(self, group: da.Group | str) -> da.Approvers:
        raise AssertionError("never asked")

    def is_approver(self, identity: str, approvers: da.Approvers) -> bool:
        raise AssertionError("never asked")


@pytest.mark.parametrize(
    "integration",
    [Mixed(), NoDetails(), object(), None],
    ids=["mixed", "no-details", "object", "none"],
)
def test_something_that_is_no_integration_is_refused_when_built(env, integration):
    store = da.MemoryLeaseStore()
    tracker = da.LeaseTracker(da.MembershipManager(env.client), store=store, clock=env.clock)
    with pytest.raises(da.ConfigError) as caught:
        da.AccessRequests(tracker, integration)
    assert caught.value.fields == ("integration",)

    async def main() -> None:
        async with env.async_client_factory() as aclient:
            atracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(aclient), store=store, clock=env.clock
            )
            with pytest.raises(da.ConfigError) as caught:
                da.AsyncAccessRequests(atracker, integration)
            assert caught.value.fields == ("integration",)

    asyncio.run(main())


# -- identities beyond user names -------------------------------------------------------------


def run_pairing(env: Env, pairing: str, script) -> da.MemoryLeaseStore:
    """Run `script(requests)` (a coroutine function for async) in one pairing."""
    store = da.MemoryLeaseStore()
    if pairing == "sync/sync":
        tracker = da.LeaseTracker(da.MembershipManager(env.client), store=store, clock=env.clock)
        script(da.AccessRequests(tracker, da.Integration(env.config, client=env.client)))
        return store

    async def main() -> None:
        async with env.async_client_factory() as aclient:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(aclient), store=store, clock=env.clock
            )
            await script(
                da.AsyncAccessRequests(tracker, da.AsyncIntegration(env.config, client=aclient))
            )

    asyncio.run(main())
    return store


@pytest.mark.parametrize("pairing", ["sync/sync", "async/async"])
def test_a_service_principal_cannot_approve_its_own_request_by_application_id(env, pairing):
    bot = env.fake.add_service_principal("etl-bot", admin=False)
    group = env.ids["readers"]

    def flow(requests):
        ref = da.PrincipalRef(da.PrincipalKind.SERVICE_PRINCIPAL, bot.id)
        result = requests.submit(ref, group, ttl=HOUR, reason="r", requester="rita@example.com")
        if asyncio.iscoroutine(result):

            async def go():
                req = await result
                with pytest.raises(da.ApprovalError, match="their own"):
                    await requests.approve(req.id, approver=bot.client_id.upper())
                return await requests.approve(req.id, approver="bob@example.com")

            return go()
        with pytest.raises(da.ApprovalError, match="their own"):
            requests.approve(result.id, approver=bot.client_id.upper())
        return requests.approve(result.id, approver="bob@example.com")

    store = run_pairing(env, pairing, flow)
    (req,) = store.find_requests()
    assert req.principal_name == bot.client_id  # the account's name for it, stored
    assert env.fake.group_members(group) == {bot.id}


@pytest.mark.parametrize("pairing", ["sync/sync", "async/async"])
def test_a_member_of_a_principal_group_cannot_approve_adding_it(env, pairing):
    carol = env.fake.add_user("carol@example.com")
    inner = env.fake.add_group("on-call", members=[carol])
    team = env.fake.add_group("team", members=[inner])  # carol is in it, one level down
    env.config = attrs.evolve(env.config, integration_owners=[*OWNERS, "carol@example.com"])
    group = env.ids["readers"]

    def flow(requests):
        ref = da.PrincipalRef(da.PrincipalKind.GROUP, team)
        result = requests.submit(ref, group, ttl=HOUR, reason="r", requester="rita@example.com")
        if asyncio.iscoroutine(result):

            async def go():
                req = await result
                with pytest.raises(da.ApprovalError, match="member of the group"):
                    await requests.approve(req.id, approver="carol@example.com")
                return await requests.approve(req.id, approver="bob@example.com")

            return go()
        with pytest.raises(da.ApprovalError, match="member of the group"):
            requests.approve(result.id, approver="carol@example.com")
        return requests.approve(result.id, approver="bob@example.com")

    run_pairing(env, pairing, flow)
    assert env.fake.group_members(group) == {team}


@pytest.mark.parametrize("pairing", ["sync/sync", "async/async"])
def test_an_approver_group_that_holds_the_principal(env, pairing):
    # The approvers are the members of the IdP group data-owners (here: an account group,
    # through the default directory). Alice is in it and asks for access: she may not
    # approve her own request; Carol, in the same group, may.
    carol = env.fake.add_user("carol@example.com")
    env.fake.add_group("data-owners", members=[env.ids["alice"], carol])
    env.config = attrs.evolve(env.config, integration_owners=["group:data-owners"])
    group = env.ids["readers"]

    def flow(requests):
        result = requests.submit(
            "alice@example.com", group, ttl=HOUR, reason="r", requester="alice@example.com"
        )
        if asyncio.iscoroutine(result):

            async def go():
                req = await result
                with pytest.raises(da.ApprovalError, match="their own"):
                    await requests.approve(req.id, approver="alice@example.com")
                with pytest.raises(da.ApprovalError, match="not an approver"):
                    await requests.approve(req.id, approver="mal@example.com")
                return await requests.approve(req.id, approver="carol@example.com")

            return go()
        with pytest.raises(da.ApprovalError, match="their own"):
            requests.approve(result.id, approver="alice@example.com")
        with pytest.raises(da.ApprovalError, match="not an approver"):
            requests.approve(result.id, approver="mal@example.com")
        return requests.approve(result.id, approver="carol@example.com")

    store = run_pairing(env, pairing, flow)
    assert env.fake.group_members(group) == {env.ids["alice"]}
    (lease,) = store.find_leases()
    assert lease.approver == "carol@example.com"


def test_a_tracker_of_the_other_kind_is_refused_when_built(env):
    store = da.MemoryLeaseStore()
    sync_tracker = da.LeaseTracker(da.MembershipManager(env.client), store=store, clock=env.clock)

    async def main() -> None:
        async with env.async_client_factory() as aclient:
            async_tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(aclient), store=store, clock=env.clock
            )
            integration = da.Integration(env.config, client=env.client)
            with pytest.raises(da.ConfigError, match="AsyncAccessRequests") as caught:
                da.AccessRequests(async_tracker, integration)  # type: ignore[arg-type]
            assert caught.value.fields == ("tracker",)
            with pytest.raises(da.ConfigError, match="AccessRequests") as caught:
                da.AsyncAccessRequests(sync_tracker, integration)  # type: ignore[arg-type]
            assert caught.value.fields == ("tracker",)

    asyncio.run(main())


@pytest.mark.parametrize("pairing", ["sync/sync", "async/async"])
def test_the_principal_cannot_approve_by_an_e_mail_alias(env, pairing):
    # Dana's user name is not the address she approves with, but the account lists it.
    dana = env.fake.add_user("dana@example.com", emails=["dana@example.com", "d.ross@corp.test"])
    env.config = attrs.evolve(env.config, integration_owners=[*OWNERS, "d.ross@corp.test"])
    group = env.ids["readers"]

    def flow(requests):
        ref = da.PrincipalRef(da.PrincipalKind.USER, dana)
        result = requests.submit(ref, group, ttl=HOUR, reason="r", requester="helpdesk")
        if asyncio.iscoroutine(result):

            async def go():
                req = await result
                with pytest.raises(da.ApprovalError, match="their own"):
                    await requests.approve(req.id, approver="D.Ross@corp.test")

            return go()
        with pytest.raises(da.ApprovalError, match="their own"):
            requests.approve(result.id, approver="D.Ross@corp.test")
        return None

    store = run_pairing(env, pairing, flow)
    assert env.fake.group_members(group) == frozenset()
    assert [r.state for r in store.find_requests()] == [da.RequestState.PENDING]
