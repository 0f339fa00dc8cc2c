"""The token endpoint fails, throttles, and the secret rotates mid-run: the work completes.

Twelve hours of leases on a `ManualClock` (tokens expire every hour and are refreshed
ahead of time), while half of the token requests meet 503s, 429s with Retry-After or dropped
connections, every issued token is revoked once, and the service principal's secret is
rotated every three hours — the new secret added, the secret store updated, the old
secret removed at once. Three secret stores: one that hands out the new secret only
when asked with `refresh=True` (a vault client's cache), and a `FileSecretStore` whose
file is replaced atomically or rewritten in place.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter

import pytest

import databricks_access as da
from databricks_access import LeaseState, MemoryLeaseStore
from databricks_access.testing import FakeAccount, Fault, FaultPlan, OperationClass

START = dt.datetime(2026, 7, 1, 6, 0, tzinfo=dt.timezone.utc)
ACCOUNT_ID = "70c3e7a1-0000-4000-8000-00000000b0b0"


class PublishedOnRefresh:
    """A cached secret store: a rotated secret is seen only when `refresh=True` is asked."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id = client_id
        self._source = secret
        self._cached = secret
        self.calls: Counter[bool] = Counter()

    def rotate(self, secret: str) -> None:
        self._source = secret  # written to the vault; this process's cache is older

    def get_credentials(self, *, refresh: bool = False) -> da.ClientCredentials:
        self.calls[refresh] += 1
        if refresh:
            self._cached = self._source
        return da.ClientCredentials(self.client_id, self._cached)


class SecretFile:
    """A `FileSecretStore` whose file is rewritten: atomically, or in place."""

    def __init__(self, path, client_id: str, secret: str, *, atomic: bool) -> None:
        self.path = path
        self.client_id = client_id
        self.atomic = atomic
        self.rotate(secret)
        self.store = da.FileSecretStore(path)

    def rotate(self, secret: str) -> None:
        text = json.dumps({"client_id": self.client_id, "client_secret": secret, "note": "x"})
        if self.atomic:
            staged = self.path.with_suffix(".tmp")
            staged.write_text(text)
            staged.replace(self.path)
        else:
            with self.path.open("r+" if self.path.exists() else "w") as handle:
                handle.seek(0)
                handle.write(text)
                handle.truncate()


def token_weather() -> FaultPlan:
    """Half of all token requests fail, never more than two in a row (by schedule)."""
    token = OperationClass.TOKEN
    return FaultPlan(
        [
            Fault.server_error(503, op_class=token, nth=range(1, 1000, 3)),
            Fault.too_many_requests(retry_after=3, op_class=token, nth=range(2, 1000, 6)),
            Fault.drop(op_class=token, nth=range(5, 1000, 6)),
        ]
    )


@pytest.mark.parametrize("kind", ["refresh-only", "file-atomic", "file-in-place"])
def test_rotation_and_a_failing_token_endpoint_do_not_stop_the_work(tmp_path, kind):
    clock = da.ManualClock(START)
    fake = FakeAccount(account_id=ACCOUNT_ID, clock=lambda: clock.now().timestamp())
    sp = fake.add_service_principal("rotating")
    if kind == "refresh-only":
        holder = PublishedOnRefresh(sp.client_id, sp.client_secret)
        store, rotate = holder, holder.rotate
    else:
        secret_file = SecretFile(
            tmp_path / "creds.json", sp.client_id, sp.client_secret, atomic=kind == "file-atomic"
        )
        store, rotate = secret_file.store, secret_file.rotate
    users = [fake.add_user(f"u{i}@example.com") for i in range(6)]
    group = fake.add_group("ops")
    token_weather().install(fake)
    rng = random.Random(5)
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    leases = MemoryLeaseStore()
    current = sp.client_secret
    rotations = 0
    with da.AccountClient(
        config, secrets=store, transport=fake.transport(sleep=clock.sleep), clock=clock
    ) as client:
        client._driver._rand = random.Random(6).random
        tracker = da.LeaseTracker(da.MembershipManager(client), store=leases, clock=clock)
        for hour in range(12):
            if hour and hour % 3 == 0:
                new = fake.add_secret(sp.client_id)
                rotate(new)
                fake.remove_secret(sp.client_id, current)
                current = new
                rotations += 1
            if hour == 7:
                fake.revoke_tokens()  # every token dies: the next request gets a 401
            for _ in range(3):
                tracker.grant(
                    da.PrincipalRef("user", rng.choice(users)),
                    group,
                    ttl=dt.timedelta(minutes=rng.randint(10, 150)),
                    requester="ops",
                    reason="rotation",
                )
                clock.advance(dt.timedelta(minutes=5))
                tracker.sweep()
            clock.advance(dt.timedelta(minutes=45))
            tracker.sweep()
        clock.advance(dt.timedelta(hours=3))
        tracker.sweep()
        token_requests = client.auth.token_requests

    assert rotations == 3
    states = Counter(lease.state for lease in leases.find_leases())
    assert states == {LeaseState.REVOKED: 36}
    assert fake.group_members(group) == set()
    tokens = [r for r in fake.log if r.op_class is OperationClass.TOKEN]
    refused = sum(r.status == 401 for r in tokens)
    print(
        f"\n[{kind}] token requests: {token_requests} sent, statuses "
        f"{dict(Counter(r.status for r in tokens))}, faults {dict(fake.faults)}, "
        f"401 refusals after rotation: {refused}"
    )
    assert fake.faults["503"] and fake.faults["429"] and fake.faults["drop"]
    assert sum(r.status == 200 for r in tokens) >= 12  # one per hour at least
    if kind == "refresh-only":
        # Each rotation is met once with invalid_client, then read again with refresh.
        assert refused == rotations
        assert holder.calls[True] == rotations


def test_a_token_outage_fails_grants_cleanly_and_defers_revocations(fake, clock):
    sp = fake.add_service_principal("c")
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    bob = da.PrincipalRef("user", fake.add_user("bob@example.com"))
    ops = fake.add_group("ops")
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    store, sink = MemoryLeaseStore(), da.MemorySink()
    with da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
    ) as client:
        tracker = da.LeaseTracker(
            da.MembershipManager(client), store=store, clock=clock, events=sink
        )
        lease = tracker.grant(alice, ops, ttl=60 * 30, requester="a", reason="r")
        fake.interceptor = FaultPlan([Fault.server_error(503, op_class="token")])
        fake.revoke_tokens()
        client.auth.invalidate()
        # The token endpoint is down: a grant fails before anything is written.
        with pytest.raises(da.ServerError):
            tracker.grant(bob, ops, ttl=60 * 30, requester="b", reason="r")
        assert [x.id for x in store.find_leases()] == [lease.id]
        assert fake.group_members(ops) == {alice.id}
        # A due lease cannot be removed meanwhile: REVOKE_FAILED, retried.
        clock.advance(dt.timedelta(minutes=30))
        assert tracker.sweep().failed == (lease.id,)
        assert fake.group_members(ops) == {alice.id}
        fake.interceptor = None
        clock.advance(dt.timedelta(minutes=5))
        assert tracker.sweep().revoked == (lease.id,)
    assert fake.group_members(ops) == set()
    assert sink.kinds() == ["granted", "expired", "revoke_failed", "revoked"]


def test_a_secret_removed_for_good_is_an_authentication_error(fake, clock):
    sp = fake.add_service_principal("c")
    ops = fake.add_group("ops")
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    holder = PublishedOnRefresh(sp.client_id, sp.client_secret)
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    store = MemoryLeaseStore()
    with da.AccountClient(
        config, secrets=holder, transport=fake.transport(), clock=clock
    ) as client:
        tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
        fake.remove_secret(sp.client_id, sp.client_secret)
        with pytest.raises(da.AuthenticationError, match="invalid_client") as info:
            tracker.grant(alice, ops, ttl=3600, requester="a", reason="r")
        assert sp.client_secret not in str(info.value)
        assert holder.calls == {False: 1, True: 1}  # re-read once, bypassing the cache
        assert store.find_leases() == []
        # A new secret published later is picked up without a restart.
        holder.rotate(fake.add_secret(sp.client_id))
        lease = tracker.grant(alice, ops, ttl=3600, requester="a", reason="r")
    assert lease.state is LeaseState.ACTIVE
    assert fake.group_members(ops) == {alice.id}


def test_a_failed_refresh_ahead_of_expiry_keeps_the_still_valid_token(fake, clock, caplog):
    sp = fake.add_service_principal("c")
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    ops = fake.add_group("ops")
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    store = MemoryLeaseStore()
    with da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
        rate_limits=None,  # only retry waits would sleep
    ) as client:
        tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
        first = tracker.grant(alice, ops, ttl=3600, requester="a", reason="r")
        # 45 minutes on, the token is due for a refresh (stale) but valid for 15 more.
        clock.advance(dt.timedelta(minutes=45))
        fake.interceptor = FaultPlan([Fault.server_error(503, op_class="token")])
        clock.slept.clear()
        with caplog.at_level("WARNING", logger="databricks_access"):
            tracker.extend(first.id, by=600)
            tracker.revoke(first.id)
            second = tracker.grant(alice, ops, ttl=3600, requester="a", reason="r")
        assert second.state is LeaseState.ACTIVE
        assert clock.slept == []  # one refresh attempt per request, no retry waits
        assert "using the current one" in caplog.text
        # Once the token has expired there is nothing to fall back on: the error shows.
        clock.advance(dt.timedelta(minutes=15))
        with pytest.raises(da.ServerError):
            client.groups.get(ops)
        fake.interceptor = None
        assert client.groups.get(ops).id == ops
    assert fake.group_members(ops) == {alice.id}


def test_the_async_client_keeps_a_still_valid_token_too(fake, clock, async_client_factory):
    import asyncio  # noqa: PLC0415

    ops = fake.add_group("ops")

    async def main():
        async with async_client_factory() as client:
            await client.groups.get(ops)
            clock.advance(dt.timedelta(minutes=45))
            fake.interceptor = FaultPlan([Fault.too_many_requests(op_class="token")])
            group = await client.groups.get(ops)
            clock.advance(dt.timedelta(minutes=15))
            with pytest.raises(da.RateLimitedError):
                await client.groups.get(ops)
            return group

    assert asyncio.run(main()).id == ops
