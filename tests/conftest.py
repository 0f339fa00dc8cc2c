from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import databricks_access as da
from databricks_access.testing import FakeAccount

# The command line run against the emulator (`account`, `cli`, `child`): shared by the
# CLI tests and the policy tests.
pytest_plugins = ("helpers.cli",)

# CI: bounded and deterministic-enough; dev: the defaults.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# -- the emulator, shared by the client, membership and lease tests ---------------------


ACCOUNT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture
def clock():
    return da.ManualClock()


@pytest.fixture
def fake(clock):
    return FakeAccount(account_id=ACCOUNT_ID, clock=lambda: clock.now().timestamp())


@pytest.fixture
def config(fake):
    return da.AccountConfig(host=fake.host, account_id=fake.account_id)


@pytest.fixture
def credentials(fake):
    sp = fake.add_service_principal("connector")
    return da.StaticSecretStore(sp.client_id, sp.client_secret)


@pytest.fixture
def client(fake, config, credentials, clock):
    with da.AccountClient(
        config, secrets=credentials, transport=fake.transport(), clock=clock
    ) as c:
        yield c


@pytest.fixture
def async_client_factory(fake, config, credentials, clock):
    def make():
        return da.AsyncAccountClient(
            config, secrets=credentials, transport=fake.transport(), clock=clock
        )

    return make


# -- the lease layer over the emulator, shared by the lease and request tests -----------


@pytest.fixture
def store():
    return da.MemoryLeaseStore()


@pytest.fixture
def sink():
    return da.MemorySink()


@pytest.fixture
def manager(client):
    return da.MembershipManager(client)


@pytest.fixture
def tracker(manager, store, sink, clock):
    return da.LeaseTracker(manager, store=store, events=sink, clock=clock)
