"""AccessRequests on the lease tracker: the approval flow and its refusals."""

from __future__ import annotations

import asyncio
import datetime as dt

import attrs
import pytest

import databricks_access as da
from databricks_access import AccessRequests, AsyncAccessRequests, MemoryLeaseStore, RequestState

HOUR = dt.timedelta(hours=1)


class StubIntegration:
    """Approvers: bob (a user) and the IdP group 'data-owners' (carol is in it)."""

    custom_access_details = "Access is logged; ask #data-platform for help."

    def __init__(self):
        self.resolved = 0

    def approvers_for(self, group):
        self.resolved += 1
        return da.Approvers(
            (da.Owner.user("Bob@Example.com"), da.Owner.group("data-owners")),
            da.ApproverSource.INTEGRATION_OWNER,
        )

    def is_approver(self, identity, approvers):
        for owner in approvers.owners:
            if owner.matches_user(identity):
                return True
            if owner.kind is da.OwnerKind.GROUP and identity.casefold() == "carol@example.com":
                return True
        return False


@pytest.fixture
def requests(tracker):
    return AccessRequests(tracker, StubIntegration())


@pytest.fixture
def setup(fake):
    alice = fake.add_user("alice@example.com")
    group = fake.add_group("prod-readers")
    return alice, group


def submit(requests, group, **kw):
    return requests.submit(
        kw.pop("principal", "alice@example.com"),
        group,
        ttl=HOUR,
        reason="INC-9",
        requester=kw.pop("requester", "alice@example.com"),
    )


def test_submit_then_approve_grants_with_the_approver_on_the_lease(
    fake, requests, store, sink, setup
):
    alice, group = setup
    req = submit(requests, group)
    assert req.state is RequestState.PENDING
    assert req.approvers == ("user:Bob@Example.com", "group:data-owners")
    assert req.access_details == StubIntegration.custom_access_details
    assert fake.group_members(group) == set()
    approved = requests.approve(req.id, approver="bob@example.com")
    assert approved.state is RequestState.APPROVED
    assert approved.decided_by == "bob@example.com"
    lease = store.get_lease(approved.lease_id)
    assert lease.approver == "bob@example.com"
    assert lease.principal_name == "alice@example.com"  # carried from the request
    assert lease.request_id == req.id
    assert fake.group_members(group) == {alice}
    assert sink.kinds() == ["request_submitted", "request_approved", "granted"]


def test_an_idp_group_owner_approves_through_membership(fake, requests, setup):
    _, group = setup
    req = submit(requests, group)
    assert requests.approve(req.id, approver="carol@example.com").state is RequestState.APPROVED


@pytest.mark.parametrize(
    "approver", ["alice@example.com", "ALICE@example.com ", "Alice@Example.com"]
)
def test_self_approval_is_refused(fake, requests, setup, approver):
    _, group = setup
    req = submit(requests, group)
    with pytest.raises(da.ApprovalError, match="their own"):
        requests.approve(req.id, approver=approver)
    assert requests.get(req.id).state is RequestState.PENDING
    assert fake.group_members(group) == set()


def test_approving_a_request_for_oneself_made_by_someone_else_is_refused(fake, requests, setup):
    _, group = setup
    req = submit(requests, group, principal="alice@example.com", requester="helpdesk@example.com")
    with pytest.raises(da.ApprovalError, match="their own"):
        requests.approve(req.id, approver="alice@example.com")


def test_a_non_approver_is_refused_and_nothing_changes(fake, requests, store, sink, setup):
    _, group = setup
    req = submit(requests, group)
    with pytest.raises(da.ApprovalError, match="not an approver"):
        requests.approve(req.id, approver="mallory@example.com")
    assert requests.get(req.id).state is RequestState.PENDING
    assert store.find_leases() == []
    assert sink.kinds() == ["request_submitted"]


def test_deny_and_cancel(fake, requests, sink, setup):
    _, group = setup
    denied = requests.deny(
        submit(requests, group).id, approver="bob@example.com", reason="not needed"
    )
    assert denied.state is RequestState.DENIED
    assert denied.decision_reason == "not needed"
    with pytest.raises(da.ApprovalError, match="denied"):
        requests.approve(denied.id, approver="bob@example.com")
    other = submit(requests, group)
    with pytest.raises(da.ApprovalError, match=r"only alice@example\.com"):
        requests.cancel(other.id, by="bob@example.com")
    assert requests.cancel(other.id, by="Alice@example.com").state is RequestState.CANCELLED
    with pytest.raises(da.ApprovalError, match="not an approver"):
        requests.deny(submit(requests, group).id, approver="mallory@example.com", reason="x")
    assert "request_denied" in sink.kinds()
    assert "request_cancelled" in sink.kinds()


def test_pending_requests_expire(fake, tracker, clock, setup):
    _, group = setup
    requests = AccessRequests(tracker, StubIntegration(), pending_ttl=dt.timedelta(hours=4))
    req = submit(requests, group)
    later = submit(requests, group)
    clock.advance(dt.timedelta(hours=4))
    with pytest.raises(da.ApprovalError, match="expired"):
        requests.approve(req.id, approver="bob@example.com")
    report = requests.sweep()
    assert report.expired == (later.id,)
    assert [r.state for r in requests.list()] == [RequestState.EXPIRED, RequestState.EXPIRED]


def test_an_approval_interrupted_before_the_grant_is_finished_by_sweep(
    fake, requests, store, setup
):
    alice, group = setup
    req = submit(requests, group)
    # What a crash at the `after_approve` crash point leaves behind:
    approved = attrs.evolve(req, state=RequestState.APPROVED, decided_by="bob@example.com")
    store.update_request(approved, expect=(RequestState.PENDING,))
    report = requests.sweep()
    assert report.granted == (req.id,)
    final = requests.get(req.id)
    assert final.lease_id is not None
    assert fake.group_members(group) == {alice}
    assert requests.sweep().granted == ()


def test_bad_input_is_refused_before_anything_is_stored(fake, requests, store, setup):
    _, group = setup
    with pytest.raises(da.ConfigError, match="ttl"):
        requests.submit(
            "alice@example.com", group, ttl=dt.timedelta(days=30), reason="x", requester="a"
        )
    with pytest.raises(da.ConfigError, match="reason"):
        requests.submit("alice@example.com", group, ttl=HOUR, reason="", requester="a")
    with pytest.raises(da.ConfigError, match="request_id"):
        requests.approve("", approver="bob@example.com")
    with pytest.raises(da.ApprovalError, match="no access request"):
        requests.approve("req_missing", approver="bob@example.com")
    assert store.find_requests() == []


def test_async_requests(fake, async_client_factory, clock, setup):
    alice, group = setup
    store = MemoryLeaseStore()

    async def main():
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            requests = AsyncAccessRequests(tracker, StubIntegration())
            req = await requests.submit(
                "alice@example.com", group, ttl=HOUR, reason="r", requester="alice@example.com"
            )
            with pytest.raises(da.ApprovalError):
                await requests.approve(req.id, approver="alice@example.com")
            return await requests.approve(req.id, approver="bob@example.com")

    approved = asyncio.run(main())
    assert approved.lease_id is not None
    assert fake.group_members(group) == {alice}
