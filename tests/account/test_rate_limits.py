"""Client-side rate limits: on by default, shared per account, and what they protect.

Time is the test's `ManualClock`: the client's throttle sleeps on it, and the
emulator's `ServerRateLimits` refill on it, so nothing here waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading

import attrs
import pytest

import databricks_access as da
from databricks_access._account import throttle as _throttle
from databricks_access._account.throttle import shared_throttle
from databricks_access._cli.parser import build_parser
from databricks_access._cli.session import _Session
from databricks_access.testing import FakeAccount, OperationClass, ServerRateLimits
from helpers.internals import OpClass, Throttle

PUBLISHED = da.RateLimits.published()


def _world(principals: int = 1000, groups: int = 20):
    """An account with the published server-side limits, on a manual clock."""
    clock = da.ManualClock()
    fake = FakeAccount(clock=lambda: clock.now().timestamp())
    creds = fake.add_service_principal("connector")
    seeded = fake.seed(users=principals, groups=groups, memberships=0, seed=3)
    fake.interceptor = ServerRateLimits(scale=1, clock=clock.monotonic)
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
    pairs = [
        (da.PrincipalRef(da.PrincipalKind.USER, uid), seeded.group_ids[i % groups])
        for i, uid in enumerate(seeded.user_ids)
    ]
    return clock, fake, config, secrets, pairs


def _missing(fake, pairs):
    return [(p.id, g) for p, g in pairs if p.id not in fake.group_members(g)]


def _present(fake, pairs):
    return [(p.id, g) for p, g in pairs if p.id in fake.group_members(g)]


# -- the defaults, under the published limits --------------------------------------------------


def test_defaults_lose_nothing_under_the_published_limits():
    clock, fake, config, secrets, pairs = _world()
    with da.AccountClient(config, secrets=secrets, transport=fake.transport(), clock=clock) as c:
        manager = da.MembershipManager(c)
        granted = manager.grant_many(pairs)
        assert _missing(fake, pairs) == []
        revoked = manager.revoke_many(pairs)
        assert _present(fake, pairs) == []
    assert granted.ok and revoked.ok
    # The throttle did the waiting: 2 x (20 groups x 1 PATCH of 50) at 2/s takes ~20 s.
    assert clock.monotonic() - 1000.0 >= 19.0


def test_async_defaults_lose_nothing_under_the_published_limits():
    clock, fake, config, secrets, pairs = _world()

    async def main():
        async with da.AsyncAccountClient(
            config, secrets=secrets, transport=fake.transport(), clock=clock
        ) as c:
            manager = da.AsyncMembershipManager(c)
            granted = await manager.grant_many(pairs)
            missing = _missing(fake, pairs)
            revoked = await manager.revoke_many(pairs)
            return granted, missing, revoked

    granted, missing, revoked = asyncio.run(main())
    assert missing == []
    assert _present(fake, pairs) == []
    assert granted.ok and revoked.ok


def test_without_the_limiter_bulk_changes_lose_pairs():
    """Why the throttle is on by default: the same job, unthrottled, meets the server's 429s.

    Before the throttle was on by default, this job lost pairs; since failed batches are
    bisected it usually recovers them with extra requests, and whatever it loses is
    reported, pair by pair.
    """
    clock, fake, config, secrets, pairs = _world()

    async def main():
        async with da.AsyncAccountClient(
            config, secrets=secrets, transport=fake.transport(), clock=clock, rate_limits=None
        ) as c:
            manager = da.AsyncMembershipManager(c)
            granted = await manager.grant_many(pairs)
            missing = _missing(fake, pairs)
            revoked = await manager.revoke_many(pairs)
            return granted, missing, revoked

    granted, missing, revoked = asyncio.run(main())
    # The server throttled the job: every 429 cost a retry (or, where the retries ran
    # out, a split of the batch), and a failure reported for every pair it lost.
    assert fake.faults["rate_limited"] > 0
    assert {(r.principal.id, r.group_id) for r in granted.failures} == set(missing)
    left = {(r.principal.id, r.group_id) for r in revoked.failures}
    assert left == set(_present(fake, pairs))


# -- on by default, overridable, switchable off ---------------------------------------------------


def test_config_and_clients_throttle_by_default(clock, fake, config, credentials):
    assert config.rate_limits == PUBLISHED
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as client:
        ops = fake.add_group("ops")
        clock.slept.clear()
        for i in range(6):
            client.groups.add_members(ops, [fake.add_user(f"u{i}@example.com")])
    # PATCH 2/s with a one-second burst less 50 ms: the second 50 ms behind the first,
    # then one every 0.5 s.
    assert clock.slept == pytest.approx([0.05, 0.5, 0.5, 0.5, 0.5])
    assert fake.faults.get("rate_limited", 0) == 0


@pytest.mark.parametrize("where", ["client", "config"])
def test_rate_limits_can_be_switched_off_or_overridden(clock, fake, credentials, where):
    ops = fake.add_group("ops")
    users = [fake.add_user(f"u{i}@example.com") for i in range(5)]
    for limits, expected in ((None, []), (da.RateLimits(patch=1.0), [1.0, 1.0, 1.0, 1.0])):
        cfg = da.AccountConfig(
            host=fake.host,
            account_id=fake.account_id,
            **({"rate_limits": limits} if where == "config" else {}),
        )
        extra = {"rate_limits": limits} if where == "client" else {}
        own_clock = da.ManualClock()  # a fresh clock: buckets are shared per clock
        with da.AccountClient(
            cfg, secrets=credentials, transport=fake.transport(), clock=own_clock, **extra
        ) as client:
            for uid in users:
                client.groups.add_members(ops, [uid])
        assert own_clock.slept == expected, limits
    assert fake.group_members(ops) == set(users)


def test_async_client_throttles_by_default(clock, fake, async_client_factory):
    ops = fake.add_group("ops")
    users = [fake.add_user(f"u{i}@example.com") for i in range(6)]

    async def main():
        async with async_client_factory() as client:
            await client.groups.get(ops)  # the token, first
            clock.slept.clear()
            for uid in users:
                await client.groups.add_members(ops, [uid])

    asyncio.run(main())
    assert clock.slept == pytest.approx([0.05, 0.5, 0.5, 0.5, 0.5])
    assert fake.group_members(ops) == set(users)
    assert fake.faults.get("rate_limited", 0) == 0


def test_bad_rate_limits_are_refused_before_any_request(fake, credentials):
    with pytest.raises(da.ConfigError) as info:
        da.AccountConfig(host=fake.host, account_id=fake.account_id, rate_limits={"patch": 1})
    assert info.value.fields == ("rate_limits",)
    cfg = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    with pytest.raises(da.ConfigError) as info:
        da.AccountClient(cfg, secrets=credentials, transport=fake.transport(), rate_limits=2.0)  # type: ignore[arg-type]
    assert info.value.fields == ("rate_limits",)
    with pytest.raises(da.ConfigError) as info:
        da.AsyncAccountClient(cfg, secrets=credentials, rate_limits="fast")  # type: ignore[arg-type]
    assert info.value.fields == ("rate_limits",)
    assert list(fake.log) == []


# -- shared by every client of one process on one account -----------------------------------------


def test_clients_of_one_account_share_the_limiter(fake, config, credentials):
    clock = da.ManualClock()
    ops = fake.add_group("ops")
    users = [fake.add_user(f"u{i}@example.com") for i in range(4)]
    with (
        da.AccountClient(config, secrets=credentials, transport=fake.transport(), clock=clock) as a,
        da.AccountClient(config, secrets=credentials, transport=fake.transport(), clock=clock) as b,
    ):
        a.groups.add_members(ops, [users[0]])
        b.groups.add_members(ops, [users[1]])
        a.groups.add_members(ops, [users[2]])  # the third PATCH of the account waits
        b.groups.add_members(ops, [users[3]])
    assert clock.slept == pytest.approx([0.05, 0.5, 0.5])
    assert fake.group_members(ops) == set(users)


def test_sync_and_async_clients_share_the_limiter(fake, config, credentials):
    clock = da.ManualClock()
    ops = fake.add_group("ops")
    users = [fake.add_user(f"u{i}@example.com") for i in range(3)]
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as a:
        a.groups.add_members(ops, users[:1])
        a.groups.add_members(ops, users[1:2])

    async def main():
        async with da.AsyncAccountClient(
            config, secrets=credentials, transport=fake.transport(), clock=clock
        ) as b:
            await b.groups.add_members(ops, users[2:])

    asyncio.run(main())
    assert clock.slept == pytest.approx([0.05, 0.5])
    assert fake.group_members(ops) == set(users)


def test_other_accounts_and_other_clocks_do_not_share():
    clock, other_clock = da.ManualClock(), da.ManualClock()
    host = "https://accounts.cloud.databricks.com"
    one, two = "0a1b2c3d-0000-4000-8000-000000000001", "0a1b2c3d-0000-4000-8000-000000000002"
    first = shared_throttle(PUBLISHED, host=host, account_id=one, clock=clock)
    same = shared_throttle(PUBLISHED, host=host, account_id=one, clock=clock)
    other_account = shared_throttle(PUBLISHED, host=host, account_id=two, clock=clock)
    other_time = shared_throttle(PUBLISHED, host=host, account_id=one, clock=other_clock)
    assert first is not None and same is not None
    assert other_account is not None and other_time is not None
    # The published burst less its 50 ms margin: the second 50 ms late, the third 0.5 s on.
    assert [first.reserve(OpClass.PATCH), same.reserve(OpClass.PATCH)] == pytest.approx([0, 0.05])
    assert same.reserve(OpClass.PATCH) == pytest.approx(0.55)
    assert other_account.reserve(OpClass.PATCH) == 0.0
    assert other_time.reserve(OpClass.PATCH) == 0.0
    assert shared_throttle(None, host=host, account_id=one, clock=clock) is None
    assert (
        shared_throttle(da.RateLimits.unlimited(), host=host, account_id=one, clock=clock) is None
    )


def test_each_client_keeps_its_own_rate_on_the_shared_slots():
    clock = da.ManualClock()
    host, account = "https://accounts.cloud.databricks.com", "0a1b2c3d-0000-4000-8000-000000000003"
    fast = shared_throttle(da.RateLimits(patch=2.0), host=host, account_id=account, clock=clock)
    slow = shared_throttle(da.RateLimits(patch=1.0), host=host, account_id=account, clock=clock)
    assert fast is not None and slow is not None
    assert [fast.reserve(OpClass.PATCH), slow.reserve(OpClass.PATCH)] == [0.0, 0.5]
    assert fast.reserve(OpClass.PATCH) == 1.5  # after the slow client's one-second slot


def test_the_shared_limiter_is_thread_safe():
    clock = da.ManualClock()
    throttle = Throttle(da.RateLimits(patch=4.0), clock.monotonic)
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker():
        start.wait()
        for _ in range(50):
            wait = throttle.reserve(OpClass.PATCH)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 reservations at one instant: 400 distinct slots, a quarter-second apart.
    assert sorted(waits) == [i * 0.25 for i in range(400)]


def test_a_429_holds_back_every_request_of_its_class(clock, fake, config, credentials):
    """The server's bucket is what counts: after its 429, our other requests wait too."""
    ops = fake.add_group("ops")
    users = [fake.add_user(f"u{i}@example.com") for i in range(2)]
    limits = ServerRateLimits(patch=2.0, clock=clock.monotonic)
    with (
        da.AccountClient(config, secrets=credentials, transport=fake.transport(), clock=clock) as a,
        da.AccountClient(config, secrets=credentials, transport=fake.transport(), clock=clock) as b,
    ):
        limits.take(da.testing.OperationClass.PATCH)  # another process spent the bucket
        limits.take(da.testing.OperationClass.PATCH)
        fake.interceptor = limits
        clock.slept.clear()
        a.groups.add_members(ops, users[:1])  # 429, Retry-After 0.5, then through
        assert fake.faults["rate_limited"] == 1
        b.groups.add_members(ops, users[1:])
    assert fake.faults["rate_limited"] == 1  # b waited its turn instead of provoking one
    assert fake.group_members(ops) == set(users)


# -- the integration config and the CLI -----------------------------------------------------------

INTEGRATION = {
    "name": "sales",
    "accounts_url": "https://accounts.cloud.databricks.com",
    "account_id": "0a1b2c3d-0000-4000-8000-00000000abcd",
}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, PUBLISHED),
        ("published", PUBLISHED),
        ("off", None),
        ({"patch": 1.5}, da.RateLimits(get=20.0, list=4.0, patch=1.5, write=5.0, burst=0.95)),
        ("patch=1, get=off", da.RateLimits(get=None, list=4.0, patch=1.0, write=5.0, burst=0.95)),
    ],
)
def test_integration_config_rate_limits(setting, expected):
    data = dict(INTEGRATION) if setting is None else {**INTEGRATION, "rate_limits": setting}
    cfg = da.IntegrationConfig.from_dict(data)
    assert cfg.rate_limits == expected
    assert cfg.account_config().rate_limits == expected
    assert da.IntegrationConfig.from_dict(cfg.to_dict()) == cfg
    assert ("rate_limits" in cfg.to_dict()) is (expected != PUBLISHED)


def test_integration_config_rate_limits_from_the_environment():
    env = {f"DATABRICKS_ACCESS_{k.upper()}": v for k, v in INTEGRATION.items()}
    assert da.IntegrationConfig.from_env(env).rate_limits == PUBLISHED
    env["DATABRICKS_ACCESS_RATE_LIMITS"] = "off"
    assert da.IntegrationConfig.from_env(env).rate_limits is None
    env["DATABRICKS_ACCESS_RATE_LIMITS"] = "patch=fast"
    with pytest.raises(da.ConfigError) as info:
        da.IntegrationConfig.from_env(env)
    assert info.value.fields == ("DATABRICKS_ACCESS_RATE_LIMITS",)


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("fast", "rate_limits"),
        (3, "rate_limits"),
        ({"patch": 0}, "rate_limits.patch"),
        ({"patch": "x"}, "rate_limits.patch"),
        ({"patch": True}, "rate_limits.patch"),
        ({"burst": -1}, "rate_limits.burst"),
        ({"burst": "off"}, "rate_limits.burst"),
        ({"pach": 1}, "rate_limits.pach"),
    ],
)
def test_integration_config_refuses_bad_rate_limits(setting, field):
    with pytest.raises(da.ConfigError) as info:
        da.IntegrationConfig.from_dict({**INTEGRATION, "rate_limits": setting})
    assert field in info.value.fields


def test_the_cli_client_throttles_as_configured(tmp_path, fake, credentials):
    path = tmp_path / "config.json"
    for setting, expected in ((None, PUBLISHED), ("off", None)):
        data = {
            **INTEGRATION,
            "accounts_url": fake.host,
            "account_id": fake.account_id,
            "allow_custom_host": True,
            "allow_insecure_http": True,
        }
        if setting is not None:
            data["rate_limits"] = setting
        path.write_text(json.dumps(data), encoding="utf-8")
        args = build_parser().parse_args(["--config", str(path), "leases"])
        env = {
            "DATABRICKS_CLIENT_ID": credentials.get_credentials().client_id,
            "DATABRICKS_CLIENT_SECRET": credentials.get_credentials().client_secret,
        }
        with _Session(args, env) as session:
            throttle = session.client._driver._throttle
            assert (throttle.limits if throttle else None) == expected


def test_a_forked_child_starts_with_its_own_limits():
    clock = da.ManualClock()
    host, account = "https://accounts.cloud.databricks.com", "0a1b2c3d-0000-4000-8000-000000000004"
    parent = shared_throttle(PUBLISHED, host=host, account_id=account, clock=clock)
    assert parent is not None
    assert [parent.reserve(OpClass.PATCH) for _ in range(3)] == pytest.approx([0, 0.05, 0.55])
    _throttle._forget_after_fork()  # what os.register_at_fork runs in a child
    child = shared_throttle(PUBLISHED, host=host, account_id=account, clock=clock)
    assert child is not None
    assert child.reserve(OpClass.PATCH) == 0.0


# -- send-time skew ------------------------------------------------------------------------


def _refused_under_skew(limits: da.RateLimits, seed: int, *, skew: float = 0.04) -> int:
    """PATCHes the server's bucket refuses when each leaves up to `skew` s after its slot.

    The client counts a slot from when it grants it; the server from when the request
    arrives. A model of a busy sender: after a quiet spell, 40 PATCHes back to back, each
    sent a random 0-`skew` s after the moment its slot opens.
    """
    rng = random.Random(seed)
    now = [0.0]
    throttle = Throttle(limits, lambda: now[0])
    server = ServerRateLimits(clock=lambda: now[0])
    arrivals = []
    granted = 0.0
    for _ in range(40):
        now[0] = granted
        granted += throttle.reserve(OpClass.PATCH)
        arrivals.append(granted + rng.uniform(0.0, skew))
    refused = 0
    for at in sorted(arrivals):
        now[0] = at
        refused += server.take(OperationClass.PATCH) > 0
    return refused


def test_the_default_limits_leave_a_margin_for_send_time_skew():
    # At the server's own bucket (one second's burst) a late sender meets 429s...
    full = attrs.evolve(PUBLISHED, burst=1.0)
    assert sum(_refused_under_skew(full, seed) for seed in range(20)) > 0
    # ...the default keeps 50 ms of the bucket unused, and meets none.
    assert PUBLISHED.burst == da.RateLimits.published().burst < 1.0
    assert all(_refused_under_skew(PUBLISHED, seed) == 0 for seed in range(20))
    # The margin costs no rate: 40 PATCHes at 2/s still take under 19.1 s.
    now = [0.0]
    throttle = Throttle(PUBLISHED, lambda: now[0])
    for _ in range(40):
        now[0] += throttle.reserve(OpClass.PATCH)
    assert now[0] == pytest.approx(0.05 + 38 * 0.5)


def test_clients_say_what_they_throttle_at(fake, config, credentials):
    with (
        da.AccountClient(config, secrets=credentials, transport=fake.transport()) as default,
        da.AccountClient(
            config, secrets=credentials, transport=fake.transport(), rate_limits=None
        ) as unlimited,
    ):
        assert default.rate_limits == PUBLISHED
        assert unlimited.rate_limits is None
    custom = da.RateLimits(patch=1.0)
    unlimited_async = da.AsyncAccountClient(config, secrets=credentials, rate_limits=None)
    custom_async = da.AsyncAccountClient(config, secrets=credentials, rate_limits=custom)
    assert unlimited_async.rate_limits is None
    assert custom_async.rate_limits == custom
    asyncio.run(unlimited_async.close())
    asyncio.run(custom_async.close())
