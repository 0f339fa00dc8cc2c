"""Many calls at once: token requests on a cold client, and throughput on a warm one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import databricks_access as da
from bench.harness import (
    Row,
    Settings,
    interleaved,
    median,
    sdk_account_client,
    timed,
    workload,
)
from databricks_access.testing import FakeAccount, OperationClass


@workload(
    "token_stampede",
    title="token requests for N concurrent cold groups.get (ours: asyncio.gather; sdk: N threads)",
    order=30,
)
def token_stampede(settings: Settings) -> Row:
    calls = settings.size(200, 20)
    reps = settings.reps(3)
    fake = FakeAccount()
    creds = fake.add_service_principal("bench")
    gid = fake.add_group(
        "bench-readers", members=[fake.add_user(f"u{i}@example.com") for i in range(5)]
    )
    server = fake.serve(process=True)
    tokens: dict[str, list[int]] = {"ours": [], "sdk": []}
    requests: dict[str, list[int]] = {"ours": [], "sdk": []}
    seconds: dict[str, list[float]] = {"ours": [], "sdk": []}
    with server as url:
        config = da.AccountConfig(
            host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
        )
        secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)

        async def ours() -> None:
            # The emulator has no rate limits here: our throttle is off, like the SDK's.
            async with da.AsyncAccountClient(config, secrets=secrets, rate_limits=None) as client:
                groups = await asyncio.gather(*(client.groups.get(gid) for _ in range(calls)))
            assert all(g.id == gid for g in groups)

        def theirs() -> None:
            with sdk_account_client(
                url, fake.account_id, creds.client_id, creds.client_secret
            ) as sdk:
                start = threading.Barrier(calls)
                failures: list[BaseException] = []

                def call() -> None:
                    start.wait()
                    try:
                        assert sdk.groups.get(gid).id == gid
                    except BaseException as exc:
                        failures.append(exc)

                threads = [threading.Thread(target=call) for _ in range(calls)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                if failures:
                    raise failures[0]

        sides = (("ours", lambda: asyncio.run(ours())), ("sdk", theirs))
        for rep in range(reps):  # interleaved, each side first in turn
            for side, action in sides if rep % 2 == 0 else sides[::-1]:
                server.reset_log()
                seconds[side].append(timed(action))
                counts = server.counts
                tokens[side].append(counts[OperationClass.TOKEN])
                requests[side].append(sum(counts.values()))

    ours_tokens = median([float(t) for t in tokens["ours"]])
    sdk_tokens = median([float(t) for t in tokens["sdk"]])
    return Row(
        unit="token requests",
        ours=ours_tokens,
        baseline=sdk_tokens,
        baseline_name="sdk",
        ours_requests=max(requests["ours"]),
        baseline_requests=max(requests["sdk"]),
        target="ours == 1",
        met=all(t == 1 for t in tokens["ours"]),
        details={
            "concurrent_calls": calls,
            "repetitions": reps,
            "token_requests": tokens,
            "requests": requests,
            "wall_s": seconds,
            "wall_s_median": {side: median(times) for side, times in seconds.items()},
        },
        ours_samples=[float(t) for t in tokens["ours"]],
        baseline_samples=[float(t) for t in tokens["sdk"]],
    )


@workload(
    "concurrent_reads",
    title="N concurrent groups.get on a warm client over loopback, ms per batch "
    "(ours: asyncio.gather; sdk: one client, a pool of N threads)",
    order=31,
)
def concurrent_reads(settings: Settings) -> Row:
    calls = settings.size(200, 20)
    reps = settings.reps(7)
    fake = FakeAccount()
    creds = fake.add_service_principal("bench")
    gid = fake.add_group(
        "bench-readers", members=[fake.add_user(f"u{i}@example.com") for i in range(5)]
    )
    server = fake.serve(process=True)
    requests: dict[str, list[int]] = {"ours": [], "sdk": []}
    with server as url:
        config = da.AccountConfig(
            host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
        )
        secrets = da.StaticSecretStore(creds.client_id, creds.client_secret)
        # One event loop for every repetition: a warm client keeps its connections per loop.
        loop = asyncio.new_event_loop()
        # The emulator has no rate limits here: our throttle is off, like the SDK's.
        client = da.AsyncAccountClient(config, secrets=secrets, rate_limits=None)

        async def batch() -> None:
            groups = await asyncio.gather(*(client.groups.get(gid) for _ in range(calls)))
            assert all(g.id == gid for g in groups)

        with (
            sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk,
            ThreadPoolExecutor(max_workers=calls) as pool,
        ):

            def theirs() -> None:
                assert all(
                    g.id == gid for g in pool.map(lambda _: sdk.groups.get(gid), range(calls))
                )

            # Warm both: the token, the SDK's discovery, the connections, the threads.
            loop.run_until_complete(batch())
            theirs()

            def side(name: str, action: Callable[[], None]) -> Callable[[], float]:
                def measure() -> float:
                    server.reset_log()
                    seconds = timed(action)
                    requests[name].append(sum(server.counts.values()))
                    return seconds

                return measure

            try:
                samples = interleaved(
                    {
                        "ours": side("ours", lambda: loop.run_until_complete(batch())),
                        "sdk": side("sdk", theirs),
                    },
                    reps,
                )
            finally:
                loop.run_until_complete(client.close())
                loop.close()

    ours_ms = median(samples["ours"]) * 1000
    sdk_ms = median(samples["sdk"]) * 1000
    return Row(
        unit="ms",
        ours=ours_ms,
        baseline=sdk_ms,
        baseline_name=f"sdk {calls} threads",
        ours_requests=max(requests["ours"]),
        baseline_requests=max(requests["sdk"]),
        target="ratio <= 0.8",
        met=ours_ms / sdk_ms <= 0.8,
        details={
            "concurrent_calls": calls,
            "repetitions": reps,
            "requests": requests,
            "samples_s": samples,
        },
        ours_samples=[t * 1000 for t in samples["ours"]],
        baseline_samples=[t * 1000 for t in samples["sdk"]],
    )
