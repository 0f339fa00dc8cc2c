"""Every duration the library takes is bounded: finite, not negative, at most ten years.

The class, not the instance: each entry point that takes a duration (a lease's `ttl`,
`extend(by=)`, the tracker's and the manager's settings, `AccountConfig` timeouts, a
request's `pending_ttl`, a secret store's cache and timeout, the SQLite store's
timeout) is given each hostile value; each must raise `ConfigError` naming its field,
never `OverflowError`, with nothing stored and nothing sent. Lifetimes a server sends
(`expires_in`) are bounded too.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

import databricks_access as da
from databricks_access import MemoryLeaseStore
from databricks_access._durations import MAX_SECONDS, seconds
from helpers.internals import human

HOUR = dt.timedelta(hours=1)
UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
HOSTILE = {
    "1e20": 1e20,
    "10**12": 10**12,
    "10**30": 10**30,
    "10**400": 10**400,
    "1e300": 1e300,
    "inf": float("inf"),
    "-inf": float("-inf"),
    "nan": float("nan"),
    "timedelta.max": dt.timedelta.max,
    "timedelta.min": dt.timedelta.min,
    "negative": -5,
    "text-too-long": "999999999999d",
    "text-garbage": "soon",
    "bool": True,
    "none-of-these": [1],
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_seconds_refuses_every_hostile_value_with_a_config_error(name):
    with pytest.raises(da.ConfigError) as info:
        seconds(HOSTILE[name], "ttl")
    assert info.value.fields == ("ttl",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90m", 5400.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("0.5s", 0.5),
        (dt.timedelta(hours=12), 43200.0),
        (7, 7.0),
        (2.5, 2.5),
        (MAX_SECONDS, MAX_SECONDS),
    ],
)
def test_seconds_takes_a_timedelta_a_number_or_text(value, expected):
    assert seconds(value, "ttl") == expected


def test_durations_are_shown_as_people_write_them():
    assert [human(s) for s in (43200, 5400, 45, 0.25, 0, 90061)] == [
        "12h",
        "1h30m",
        "45s",
        "0.25s",
        "0s",
        "1d1h1m1s",
    ]
    for text in ("12h", "1h30m", "1d1h1m1s", "0.25s"):
        assert human(da.parse_duration(text)) == text


def test_parse_duration_is_public_and_refuses_with_config_error():
    assert da.parse_duration("1h30m") == dt.timedelta(minutes=90)
    for bad in ("90", "h", "1x", "", "1m1h", "-1h"):
        with pytest.raises(da.ConfigError):
            da.parse_duration(bad)


def test_a_ttl_error_shows_the_duration_as_written(client, clock):
    tracker = da.LeaseTracker(da.MembershipManager(client), store=MemoryLeaseStore(), clock=clock)
    with pytest.raises(da.ConfigError, match=r"ttl: must be at most 12h, not 13h"):
        tracker.grant(da.PrincipalRef("user", "1"), "2", ttl="13h", requester="a", reason="r")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_account_config_timeouts_are_bounded(name):
    for field in ("timeout", "connect_timeout", "deadline"):
        with pytest.raises(da.ConfigError) as info:
            da.AccountConfig(
                host="https://accounts.cloud.databricks.com",
                account_id=UUID,
                **{field: HOSTILE[name]},
            )
        assert info.value.fields == (field,)


def test_account_config_takes_a_timedelta_or_text():
    cfg = da.AccountConfig(
        host="https://accounts.cloud.databricks.com",
        account_id=UUID,
        timeout=dt.timedelta(seconds=45),
        deadline="2m",
    )
    assert (cfg.timeout, cfg.deadline) == (45.0, 120.0)


@pytest.fixture
def world(fake, client, clock):
    store = MemoryLeaseStore()
    tracker = da.LeaseTracker(da.MembershipManager(client), store=store, clock=clock)
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    ops = fake.add_group("ops")
    lease = tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
    return tracker, store, lease, fake, ops, alice


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_extend_by_a_hostile_duration_changes_nothing(world, name):
    tracker, store, lease, fake, _ops, _alice = world
    before = (store.find_leases(), len(store.pending_events(limit=100)), len(fake.log))
    with pytest.raises(da.ConfigError) as info:
        tracker.extend(lease.id, by=HOSTILE[name])
    assert info.value.fields == ("by",)
    assert (store.find_leases(), len(store.pending_events(limit=100)), len(fake.log)) == (before)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_grant_with_a_hostile_ttl_sends_and_stores_nothing(world, name):
    tracker, store, _lease, fake, ops, alice = world
    before = (store.find_leases(), len(fake.log))
    with pytest.raises(da.ConfigError) as info:
        tracker.grant(alice, ops, ttl=HOSTILE[name], requester="a", reason="r")
    assert info.value.fields == ("ttl",)
    assert (store.find_leases(), len(fake.log)) == before


@pytest.mark.parametrize("name", ["1e20", "10**30", "timedelta.max", "inf"])
def test_extend_by_a_hostile_duration_async(fake, async_client_factory, clock, name):
    store = MemoryLeaseStore()
    alice = da.PrincipalRef("user", fake.add_user("alice@example.com"))
    ops = fake.add_group("ops")

    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=store, clock=clock
            )
            lease = await tracker.grant(alice, ops, ttl=HOUR, requester="a", reason="r")
            before = store.find_leases()
            with pytest.raises(da.ConfigError) as info:
                await tracker.extend(lease.id, by=HOSTILE[name])
            assert info.value.fields == ("by",)
            assert store.find_leases() == before
            with pytest.raises(da.ConfigError):
                await tracker.grant(alice, ops, ttl=HOSTILE[name], requester="a", reason="r")
            assert store.find_leases() == before

    asyncio.run(main())


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda m, v: da.LeaseTracker(m, store=MemoryLeaseStore(), max_ttl=v), "max_ttl"),
        (lambda m, v: da.LeaseTracker(m, store=MemoryLeaseStore(), claim_ttl=v), "claim_ttl"),
        (
            lambda m, v: da.LeaseTracker(m, store=MemoryLeaseStore(), consistency_window=v),
            "consistency_window",
        ),
        (
            lambda m, v: da.LeaseTracker(m, store=MemoryLeaseStore(), revoke_retry_interval=v),
            "revoke_retry_interval",
        ),
        (lambda m, v: da.MembershipManager(m.client, consistency_window=v), "consistency_window"),
    ],
)
@pytest.mark.parametrize("name", ["10**30", "timedelta.max", "1e300", "nan"])
def test_settings_durations_are_bounded(client, make, field, name):
    with pytest.raises(da.ConfigError) as info:
        make(da.MembershipManager(client), HOSTILE[name])
    assert field in info.value.fields


@pytest.mark.parametrize("name", ["10**400", "1e300", "inf", "timedelta.max"])
def test_store_and_secret_store_timeouts_are_bounded(tmp_path, name):
    with pytest.raises(da.ConfigError) as info:
        da.SqliteLeaseStore(tmp_path / "leases.db", timeout=HOSTILE[name])
    assert info.value.fields == ("timeout",)
    assert not (tmp_path / "leases.db").exists()


def token_server(expires_in: str):
    """An httpx handler: the token endpoint answers with `expires_in`; the rest 200."""
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/token"):
            sent.append("token")
            body = f'{{"access_token":"tok-1","token_type":"Bearer","expires_in":{expires_in}}}'
            return httpx.Response(200, content=body.encode(), headers=JSON_HEADERS)
        return httpx.Response(200, json={})

    return handle, sent


JSON_HEADERS = {"content-type": "application/json"}


@pytest.mark.parametrize("expires_in", ["1e308", '"1e308"', "1" + "0" * 400, "86401"])
def test_a_token_lifetime_from_the_server_is_capped_at_a_day(expires_in):
    clock = da.ManualClock()
    config = da.AccountConfig(host="https://accounts.cloud.databricks.com", account_id=UUID)
    auth = da.OAuthM2M(config, da.StaticSecretStore("id", "secret"), clock=clock)
    handle, sent = token_server(expires_in)
    with httpx.Client(transport=httpx.MockTransport(handle), auth=auth) as http:
        http.get("https://accounts.cloud.databricks.com/api/x")
        clock.advance(dt.timedelta(hours=23))
        http.get("https://accounts.cloud.databricks.com/api/x")
        assert sent == ["token"]  # trusted for most of a day...
        clock.advance(dt.timedelta(hours=2))
        http.get("https://accounts.cloud.databricks.com/api/x")
    assert sent == ["token", "token"]  # ...but not for ever


@pytest.mark.parametrize(
    "expires_in", ["1e400", '"inf"', '"-inf"', '"nan"', "-1", "0", '"soon"', "null", "true", "[1]"]
)
def test_an_unusable_token_lifetime_counts_as_an_hour(expires_in):
    clock = da.ManualClock()
    config = da.AccountConfig(host="https://accounts.cloud.databricks.com", account_id=UUID)
    auth = da.OAuthM2M(config, da.StaticSecretStore("id", "secret"), clock=clock)
    handle, sent = token_server(expires_in)
    with httpx.Client(transport=httpx.MockTransport(handle), auth=auth) as http:
        http.get("https://accounts.cloud.databricks.com/api/x")
        clock.advance(dt.timedelta(minutes=20))
        http.get("https://accounts.cloud.databricks.com/api/x")
        assert sent == ["token"]
        clock.advance(dt.timedelta(minutes=41))
        http.get("https://accounts.cloud.databricks.com/api/x")
    assert sent == ["token", "token"]


@pytest.mark.parametrize("name", ["10**30", "timedelta.max", "inf", "nan", "negative"])
def test_retry_policy_durations_are_bounded(name):
    for field in ("base_delay", "max_delay", "max_retry_after", "deadline"):
        with pytest.raises(da.ConfigError) as info:
            da.RetryPolicy(**{field: HOSTILE[name]})
        assert info.value.fields == (field,)


@pytest.mark.parametrize("name", ["10**30", "inf", "negative"])
def test_run_idle_is_bounded(client, clock, name):
    tracker = da.LeaseTracker(da.MembershipManager(client), store=MemoryLeaseStore(), clock=clock)
    with pytest.raises(da.ConfigError) as info:
        tracker.run(idle=HOSTILE[name])
    assert info.value.fields == ("idle",)


@pytest.mark.parametrize("name", ["10**30", "inf", "negative"])
def test_run_idle_is_bounded_async(async_client_factory, clock, name):
    async def main() -> None:
        async with async_client_factory() as client:
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=MemoryLeaseStore(), clock=clock
            )
            with pytest.raises(da.ConfigError) as info:
                await tracker.run(idle=HOSTILE[name])
            assert info.value.fields == ("idle",)

    asyncio.run(main())


@pytest.mark.parametrize("name", ["10**400", "1e300", "inf", "negative", "timedelta.max"])
def test_a_directory_cache_ttl_is_bounded(client, name):
    with pytest.raises(da.ConfigError) as info:
        da.DatabricksDirectory(client, ttl=HOSTILE[name])
    assert info.value.fields == ("ttl",)
