"""MembershipManager against the emulator, including its uncertain-behaviour switches."""

from __future__ import annotations

import asyncio

import pytest

import databricks_access as da
from databricks_access.testing import Behaviour, FakeAccount, MemberAnswer, StaleReads

ADDED, ALREADY = da.GrantOutcome.ADDED, da.GrantOutcome.ALREADY_MEMBER
REMOVED, ABSENT = da.RevokeOutcome.REMOVED, da.RevokeOutcome.NOT_MEMBER


def methods(fake):
    return [(r.method, r.op_class.value) for r in fake.log if r.op_class.value != "token"]


def test_grant_then_grant_again(fake, client):
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client)
    first = manager.grant("alice@example.com", ops)
    assert first.outcome is ADDED
    assert first.principal == da.PrincipalRef(da.PrincipalKind.USER, alice)
    assert fake.group_members(ops) == {alice}
    second = manager.grant("alice@example.com", ops)
    assert second.outcome is ALREADY
    assert fake.group_members(ops) == {alice}


def test_single_grant_reads_the_principal_not_the_group(fake, client):
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client)
    fake.reset_log()
    manager.grant(da.PrincipalRef("user", alice), ops)
    records = [r for r in fake.log if r.op_class.value != "token"]
    assert [(r.method, r.path.rsplit("/", 2)[-2]) for r in records] == [
        ("GET", "Users"),
        ("PATCH", "Groups"),
    ]
    assert (
        "attributes=id%2Cgroups" in records[0].query or "attributes=id,groups" in records[0].query
    )


def test_revoke_then_revoke_again(fake, client):
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops", members=[alice])
    manager = da.MembershipManager(client)
    assert manager.revoke(alice_ref := da.PrincipalRef("user", alice), ops).outcome is REMOVED
    assert fake.group_members(ops) == set()
    assert manager.revoke(alice_ref, ops).outcome is ABSENT


@pytest.mark.parametrize(
    "add_answer", [MemberAnswer.OK, MemberAnswer.BAD_REQUEST, MemberAnswer.CONFLICT]
)
@pytest.mark.parametrize(
    "remove_answer", [MemberAnswer.OK, MemberAnswer.BAD_REQUEST, MemberAnswer.NOT_FOUND]
)
def test_idempotent_whatever_the_server_answers(fake, client, add_answer, remove_answer):
    fake.behaviour = Behaviour(add_existing_member=add_answer, remove_missing_member=remove_answer)
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client)
    ref = da.PrincipalRef("user", alice)
    assert [manager.grant(ref, ops).outcome for _ in range(2)] == [ADDED, ALREADY]
    assert fake.group_members(ops) == {alice}
    assert [manager.revoke(ref, ops).outcome for _ in range(2)] == [REMOVED, ABSENT]
    assert fake.group_members(ops) == set()


def test_revoke_from_a_missing_group_is_an_error(fake, client):
    fake.behaviour = Behaviour(remove_missing_member=MemberAnswer.NOT_FOUND)
    alice = fake.add_user("alice@example.com")
    manager = da.MembershipManager(client)
    with pytest.raises(da.NotFoundError):
        manager.revoke(da.PrincipalRef("user", alice), "4242424242")


def test_every_kind_of_principal(fake, client):
    alice = fake.add_user("alice@example.com")
    bot = fake.add_service_principal("bot")
    inner = fake.add_group("inner")
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client)
    manager.grant("alice@example.com", ops)
    manager.grant(bot.client_id, ops)  # the application id
    manager.grant(da.PrincipalRef(da.PrincipalKind.GROUP, inner), ops)  # a nested group
    assert fake.group_members(ops) == {alice, bot.id, inner}
    group = client.groups.get(ops)
    assert {m.kind for m in group.members} == {
        da.PrincipalKind.USER,
        da.PrincipalKind.SERVICE_PRINCIPAL,
        da.PrincipalKind.GROUP,
    }
    assert manager.revoke(da.PrincipalRef("group", inner), ops).outcome is REMOVED


def test_names_are_resolved_once_per_manager(fake, client):
    fake.add_user("alice@example.com")
    ops, dev = fake.add_group("ops"), fake.add_group("dev")
    manager = da.MembershipManager(client)
    manager.grant("alice@example.com", ops)
    fake.reset_log()
    manager.grant("ALICE@example.com", dev)
    assert [m for m in methods(fake) if m[1] == "list"] == []


def seed_pairs(fake, principals=1000, groups=20):
    users = [fake.add_user(f"user{i}@example.com") for i in range(principals)]
    group_ids = [fake.add_group(f"team-{g}") for g in range(groups)]
    pairs = [(da.PrincipalRef("user", u), group_ids[i % groups]) for i, u in enumerate(users)]
    return users, group_ids, pairs


def test_grant_many_1000_into_20_groups_in_at_most_60_requests(fake, client):
    users, groups, pairs = seed_pairs(fake)
    manager = da.MembershipManager(client)
    fake.reset_log()
    batch = manager.grant_many(pairs)
    assert batch.ok
    assert {r.outcome for r in batch.results} == {ADDED}
    total = sum(fake.counts.values())
    assert total <= 60, total
    assert fake.counts["patch"] == 20
    assert fake.counts["get"] == 20
    for i, user in enumerate(users):
        assert user in fake.group_members(groups[i % 20])
    again = manager.grant_many(pairs)
    assert {r.outcome for r in again.results} == {ALREADY}


def test_batches_are_capped(fake, client):
    users = [fake.add_user(f"u{i}@example.com") for i in range(250)]
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client)
    batch = manager.grant_many([(da.PrincipalRef("user", u), ops) for u in users])
    assert [len(r.body["Operations"][0]["value"]) for r in batch.requests] == [100, 100, 50]
    assert fake.group_members(ops) == set(users)
    removal = manager.revoke_many([(da.PrincipalRef("user", u), ops) for u in users], dry_run=False)
    assert [len(r.body["Operations"]) for r in removal.requests] == [100, 100, 50]
    assert all("value" not in op for r in removal.requests for op in r.body["Operations"])
    assert fake.group_members(ops) == set()


def test_partial_failure_names_the_failed_pairs_and_keeps_the_rest(fake, client):
    alice, bob = fake.add_user("alice@example.com"), fake.add_user("bob@example.com")
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client)
    batch = manager.grant_many(
        [(da.PrincipalRef("user", alice), ops), (da.PrincipalRef("user", bob), "99999999")]
    )
    assert not batch.ok
    (failure,) = batch.failures
    assert failure.group_id == "99999999"
    assert isinstance(failure.error, da.NotFoundError)
    assert batch.results[0].outcome is ADDED
    assert fake.group_members(ops) == {alice}


def test_a_server_refusing_existing_members_does_not_sink_the_batch(fake, client):
    fake.behaviour = Behaviour(add_existing_member=MemberAnswer.BAD_REQUEST)
    users = [fake.add_user(f"u{i}@example.com") for i in range(5)]
    ops = fake.add_group("ops", members=users[:2])
    manager = da.MembershipManager(client)
    batch = manager.grant_many([(da.PrincipalRef("user", u), ops) for u in users])
    assert batch.ok
    assert [r.outcome for r in batch.results] == [ALREADY, ALREADY, ADDED, ADDED, ADDED]
    assert fake.group_members(ops) == set(users)


def test_dry_run_sends_only_reads_and_returns_the_exact_plan(fake, client):
    users, groups, pairs = seed_pairs(fake, principals=30, groups=3)
    fake.add_member(groups[0], users[0])
    manager = da.MembershipManager(client)
    fake.reset_log()
    plan = manager.grant_many(pairs, dry_run=True)
    assert plan.dry_run
    assert {m for m, _ in methods(fake)} == {"GET"}
    assert len(plan.requests) == 3
    first = plan.requests[0]
    assert first.method == "PATCH"
    assert first.path.endswith(f"/Groups/{groups[0]}")
    assert first.body["Operations"][0]["op"] == "add"
    assert plan.results[0].outcome is ALREADY
    assert plan.results[1].outcome is ADDED
    assert fake.group_members(groups[1]) == set()
    # Applying the plan sends exactly the planned requests.
    fake.reset_log()
    applied = manager.grant_many(pairs)
    patches = [r for r in fake.log if r.method == "PATCH"]
    assert len(patches) == len(plan.requests) == len(applied.requests)


def test_membership_is_never_changed_with_put(fake, client):
    _, _, pairs = seed_pairs(fake, principals=10, groups=2)
    manager = da.MembershipManager(client)
    manager.grant_many(pairs)
    manager.revoke_many(pairs)
    manager.grant(pairs[0][0], pairs[0][1])
    assert "PUT" not in {r.method for r in fake.log}


def test_bad_input_sends_nothing(fake, client):
    alice = fake.add_user("alice@example.com")
    manager = da.MembershipManager(client)
    fake.reset_log()
    with pytest.raises(da.ConfigError, match="group"):
        manager.grant_many([(da.PrincipalRef("user", alice), "../etc")])
    with pytest.raises(da.ConfigError, match="pairs"):
        manager.grant_many([da.PrincipalRef("user", alice)])
    with pytest.raises(da.ConfigError, match="principal"):
        manager.grant("not a user name", "123")
    assert [r for r in fake.log if r.op_class.value != "token"] == []


def test_results_flag_reads_that_may_be_stale(clock, config):
    fake = FakeAccount(
        account_id=config.account_id,
        clock=lambda: clock.now().timestamp(),
        behaviour=Behaviour(stale_reads=StaleReads(lag_requests=50)),
    )
    sp = fake.add_service_principal("connector")
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    with da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
    ) as client:
        manager = da.MembershipManager(client)
        ref = da.PrincipalRef("user", alice)
        first = manager.grant(ref, ops)
        assert not first.possibly_stale
        removed = manager.revoke(ref, ops)
        # The read still shows no membership: the outcome is flagged, the state is right.
        assert removed.possibly_stale
        assert fake.group_members(ops) == set()
        clock.advance(301)
        assert not manager.grant(ref, ops).possibly_stale
        assert fake.group_members(ops) == {alice}


def test_batch_results_flag_pairs_written_within_the_window(clock, config):
    fake = FakeAccount(account_id=config.account_id, clock=lambda: clock.now().timestamp())
    sp = fake.add_service_principal("connector")
    users = [da.PrincipalRef("user", fake.add_user(f"u{i}@example.com")) for i in range(3)]
    ops, eng = fake.add_group("ops"), fake.add_group("eng")
    with da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
    ) as client:
        manager = da.MembershipManager(client)
        first = manager.grant_many([(users[0], ops), (users[1], ops)])
        assert [r.possibly_stale for r in first.results] == [False, False]
        # Written a moment ago by this manager: flagged; a pair it never wrote: not.
        again = manager.revoke_many([(users[0], ops), (users[2], ops), (users[1], eng)])
        assert [r.possibly_stale for r in again.results] == [True, False, False]
        assert fake.group_members(ops) == {users[1].id}
        clock.advance(301)
        later = manager.grant_many([(users[0], ops), (users[1], ops)])
        assert [r.possibly_stale for r in later.results] == [False, False]
        assert fake.group_members(ops) == {users[0].id, users[1].id}


def test_batch_results_flag_pairs_written_within_the_window_async(clock, config):
    fake = FakeAccount(account_id=config.account_id, clock=lambda: clock.now().timestamp())
    sp = fake.add_service_principal("connector")
    users = [da.PrincipalRef("user", fake.add_user(f"u{i}@example.com")) for i in range(3)]
    ops, eng = fake.add_group("ops"), fake.add_group("eng")

    async def main():
        async with da.AsyncAccountClient(
            config,
            secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
            transport=fake.transport(),
            clock=clock,
        ) as client:
            manager = da.AsyncMembershipManager(client)
            first = await manager.grant_many([(users[0], ops), (users[1], ops)])
            again = await manager.revoke_many([(users[0], ops), (users[2], ops), (users[1], eng)])
            clock.advance(301)
            later = await manager.grant_many([(users[0], ops), (users[1], ops)])
            return first, again, later

    first, again, later = asyncio.run(main())
    assert [r.possibly_stale for r in first.results] == [False, False]
    assert [r.possibly_stale for r in again.results] == [True, False, False]
    assert [r.possibly_stale for r in later.results] == [False, False]
    assert fake.group_members(ops) == {users[0].id, users[1].id}


def test_async_manager_matches_the_sync_one(fake, async_client_factory):
    users, groups, pairs = seed_pairs(fake, principals=40, groups=4)

    async def main():
        async with async_client_factory() as client:
            manager = da.AsyncMembershipManager(client)
            batch = await manager.grant_many(pairs)
            single = await manager.revoke(pairs[0][0], pairs[0][1])
            return batch, single

    batch, single = asyncio.run(main())
    assert batch.ok
    assert len(batch.requests) == 4
    assert single.outcome is REMOVED
    assert users[0] not in fake.group_members(groups[0])
    assert users[1] in fake.group_members(groups[1])


# -- blind bulk changes: no read first ----------------------------------------------------------

APPLIED_GRANT, APPLIED_REVOKE = da.GrantOutcome.APPLIED, da.RevokeOutcome.APPLIED


def test_blind_grant_many_sends_one_patch_per_group_and_nothing_else(fake, client):
    users, groups, pairs = seed_pairs(fake)
    fake.add_member(groups[0], users[0])  # already a member: blind mode cannot tell
    manager = da.MembershipManager(client)
    client.workspaces.list().collect()  # the token, outside the count
    fake.reset_log()
    batch = manager.grant_many(pairs, blind=True)
    assert batch.ok
    assert {r.outcome for r in batch.results} == {APPLIED_GRANT}
    assert methods(fake) == [("PATCH", "patch")] * 20
    for i, user in enumerate(users):
        assert user in fake.group_members(groups[i % 20])
    assert len(batch.requests) == 20


def test_blind_revoke_many_removes_members_and_non_members_alike(fake, client):
    users, groups, pairs = seed_pairs(fake, principals=30, groups=3)
    for i, user in enumerate(users[:20]):
        fake.add_member(groups[i % 3], user)
    manager = da.MembershipManager(client)
    fake.reset_log()
    batch = manager.revoke_many(pairs, blind=True)
    assert batch.ok
    assert {r.outcome for r in batch.results} == {APPLIED_REVOKE}
    assert {m for m, _ in methods(fake)} == {"PATCH"}
    assert all(fake.group_members(g) == set() for g in groups)


def test_blind_revoke_from_a_missing_group_fails_its_pairs_only(fake, client):
    alice, bob = fake.add_user("alice@example.com"), fake.add_user("bob@example.com")
    ops = fake.add_group("ops", members=[alice])
    manager = da.MembershipManager(client)
    batch = manager.revoke_many(
        [(da.PrincipalRef("user", alice), ops), (da.PrincipalRef("user", bob), "99999999")],
        blind=True,
    )
    assert [r.outcome for r in batch.results] == [APPLIED_REVOKE, da.RevokeOutcome.FAILED]
    assert isinstance(batch.failures[0].error, da.NotFoundError)
    assert fake.group_members(ops) == set()


def test_blind_grant_into_a_missing_group_fails_its_pairs_only(fake, client):
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client)
    batch = manager.grant_many(
        [(da.PrincipalRef("user", alice), ops), (da.PrincipalRef("user", alice), "99999999")],
        blind=True,
    )
    assert [r.outcome for r in batch.results] == [APPLIED_GRANT, da.GrantOutcome.FAILED]
    assert fake.group_members(ops) == {alice}


def test_blind_dry_run_sends_nothing_and_plans_the_batches(fake, client):
    users = [fake.add_user(f"u{i}@example.com") for i in range(25)]
    ops = fake.add_group("ops")
    manager = da.MembershipManager(client, batch_size=10)
    fake.reset_log()
    plan = manager.grant_many([(da.PrincipalRef("user", u), ops) for u in users], True, blind=True)
    assert methods(fake) == []
    assert [len(r.body["Operations"][0]["value"]) for r in plan.requests] == [10, 10, 5]
    assert {r.outcome for r in plan.results} == {APPLIED_GRANT}
    assert fake.group_members(ops) == set()
    done = manager.grant_many([(da.PrincipalRef("user", u), ops) for u in users], blind=True)
    assert len([m for m, _ in methods(fake) if m == "PATCH"]) == len(done.requests) == 3
    assert fake.group_members(ops) == set(users)


def test_blind_must_be_a_flag(fake, client):
    alice = fake.add_user("alice@example.com")
    ops = fake.add_group("ops")
    fake.reset_log()
    with pytest.raises(da.ConfigError, match="blind"):
        da.MembershipManager(client).grant_many([(da.PrincipalRef("user", alice), ops)], blind=1)
    assert methods(fake) == []
    assert fake.group_members(ops) == set()


def test_async_blind_bulk_changes(fake, async_client_factory):
    users, groups, pairs = seed_pairs(fake, principals=40, groups=4)
    fake.add_member(groups[1], users[1])

    async def main():
        async with async_client_factory() as client:
            manager = da.AsyncMembershipManager(client)
            await client.workspaces.list().collect()  # the token
            fake.reset_log()
            granted = await manager.grant_many(pairs, blind=True)
            members = {g: fake.group_members(g) for g in groups}
            revoked = await manager.revoke_many(pairs, blind=True)
            return granted, members, revoked

    granted, members, revoked = asyncio.run(main())
    assert {r.outcome for r in granted.results} == {APPLIED_GRANT}
    assert {r.outcome for r in revoked.results} == {APPLIED_REVOKE}
    assert methods(fake) == [("PATCH", "patch")] * 8
    for i, user in enumerate(users):
        assert user in members[groups[i % 4]]
    assert all(fake.group_members(g) == set() for g in groups)
