"""Per-request overhead: one `groups.get` of a ~1 KB group, many times."""

from __future__ import annotations

from collections.abc import Callable

import httpx

import databricks_access as da
from bench.harness import Row, Settings, interleaved, median, sdk_account_client, timed, workload
from databricks_access.testing import FakeAccount, OperationClass, ServicePrincipalCredentials


def _account() -> tuple[FakeAccount, ServicePrincipalCredentials, str, int]:
    """An account with one group whose JSON is about 1 KB (a dozen members)."""
    fake = FakeAccount()
    creds = fake.add_service_principal("bench")
    members = [fake.add_user(f"member{i:02d}@example.com", f"Member {i:02d}") for i in range(12)]
    gid = fake.add_group("bench-readers", members=members)
    size = len(
        fake.dispatch(
            "GET",
            f"{fake.scim_path}/Groups/{gid}",
            {"authorization": f"Bearer {fake.static_token()}"},
        ).body
    )
    fake.reset_log()
    return fake, creds, gid, size


def _secrets(creds: ServicePrincipalCredentials) -> da.StaticSecretStore:
    return da.StaticSecretStore(creds.client_id, creds.client_secret)


@workload(
    "get_overhead",
    title="groups.get in-process (fake.transport()), client us per call (emulator time "
    "removed); baseline: bare httpx",
    order=20,
)
def get_overhead(settings: Settings) -> Row:
    calls = settings.size(2_000, 200)
    reps = settings.reps(5)
    fake, creds, gid, size = _account()
    transport = fake.transport()
    url = f"{fake.host}{fake.scim_path}/Groups/{gid}"
    headers = {"Authorization": f"Bearer {fake.static_token()}"}
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)

    # The emulator has no rate limits here: the row measures CPU per request.
    with (
        da.AccountClient(
            config, secrets=_secrets(creds), transport=transport, rate_limits=None
        ) as client,
        httpx.Client(transport=transport) as bare,
    ):

        def ours() -> None:
            for _ in range(calls):
                client.groups.get(gid)

        def baseline() -> None:
            for _ in range(calls):
                bare.get(url, headers=headers).json()

        client.groups.get(gid)  # the token, fetched once, outside the measurement
        requests = {"ours": 0, "bare": 0}
        raw: dict[str, list[float]] = {"ours": [], "bare": []}

        def side(name: str, action: Callable[[], None]) -> Callable[[], float]:
            def measure() -> float:
                fake.reset_log()
                seconds = timed(action)
                requests[name] = sum(fake.counts.values())
                # The emulator's own time (routing, rendering the group) is the same work
                # for both sides: take it out, leaving the client's cost.
                emulator = sum(r.perf_finished - r.perf_started for r in fake.log)
                raw[name].append(seconds)
                return seconds - emulator

            return measure

        samples = interleaved({"ours": side("ours", ours), "bare": side("bare", baseline)}, reps)
        ours_s, bare_s = samples["ours"], samples["bare"]

    ours_us = median(ours_s) / calls * 1e6
    bare_us = median(bare_s) / calls * 1e6
    return Row(
        unit="us/call",
        ours=ours_us,
        baseline=bare_us,
        baseline_name="httpx",
        ours_requests=requests["ours"],
        baseline_requests=requests["bare"],
        target="ratio <= 1.2",
        met=ours_us / bare_us <= 1.2,
        details={
            "calls": calls,
            "repetitions": reps,
            "group_json_bytes": size,
            "samples_s": {"ours": ours_s, "bare_httpx": bare_s},
            "with_emulator_s": raw,
            "ratio_with_emulator": median(raw["ours"]) / median(raw["bare"]),
            "note": "client time only: the emulator's time per request (from its log) is "
            "subtracted from both sides",
        },
        ours_samples=[t / calls * 1e6 for t in ours_s],
        baseline_samples=[t / calls * 1e6 for t in bare_s],
    )


@workload("get_loopback", title="groups.get over loopback (server process), us per call", order=21)
def get_loopback(settings: Settings) -> Row:
    calls = settings.size(500, 50)
    reps = settings.reps(5)
    fake, creds, gid, size = _account()
    server = fake.serve(process=True)
    with server as url:
        config = da.AccountConfig(
            host=url, account_id=fake.account_id, allow_custom_host=True, allow_insecure_http=True
        )
        with (
            da.AccountClient(config, secrets=_secrets(creds), rate_limits=None) as client,
            sdk_account_client(url, fake.account_id, creds.client_id, creds.client_secret) as sdk,
        ):
            client.groups.get(gid)  # tokens and discovery, outside the measurement
            sdk.groups.get(gid)

            def ours() -> None:
                for _ in range(calls):
                    client.groups.get(gid)

            def theirs() -> None:
                for _ in range(calls):
                    sdk.groups.get(gid)

            requests = {"ours": 0, "sdk": 0}

            def side(name: str, action: Callable[[], None]) -> Callable[[], float]:
                def measure() -> float:
                    server.reset_log()
                    seconds = timed(action)
                    requests[name] = sum(server.counts.values())
                    return seconds

                return measure

            samples = interleaved({"ours": side("ours", ours), "sdk": side("sdk", theirs)}, reps)
            ours_s, sdk_s = samples["ours"], samples["sdk"]
            server_time = [
                r.perf_finished - r.perf_started
                for r in server.log
                if r.op_class is OperationClass.GET
            ]

    ours_us = median(ours_s) / calls * 1e6
    sdk_us = median(sdk_s) / calls * 1e6
    return Row(
        unit="us/call",
        ours=ours_us,
        baseline=sdk_us,
        baseline_name="sdk",
        ours_requests=requests["ours"],
        baseline_requests=requests["sdk"],
        target="reference",
        met=None,
        details={
            "calls": calls,
            "repetitions": reps,
            "group_json_bytes": size,
            "server_us_per_request": median(server_time) * 1e6 if server_time else None,
            "samples_s": {"ours": ours_s, "sdk": sdk_s},
        },
        ours_samples=[t / calls * 1e6 for t in ours_s],
        baseline_samples=[t / calls * 1e6 for t in sdk_s],
    )
