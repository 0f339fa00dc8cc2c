from __future__ import annotations

import doctest
import os

import pytest
from hypothesis import HealthCheck, settings

import databricks_access as da
from databricks_access.testing import FakeAccount

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


def run_doctests(module, optionflags: int = 0) -> doctest.TestResults:
    """Run the docstring examples of a module and of each name in its `__all__`.

    `doctest.testmod` skips objects whose `__module__` is not the module's own; the
    package shows its classes as `databricks_access.X`, so collect them by name instead.
    """
    runner = doctest.DocTestRunner(optionflags=optionflags)
    shallow, deep = doctest.DocTestFinder(recurse=False), doctest.DocTestFinder()
    globs = dict(vars(module))
    seen: set[str] = set()
    found = list(shallow.find(module, module.__name__, module=False, globs=globs))
    for name in getattr(module, "__all__", ()):
        found += deep.find(
            getattr(module, name), f"{module.__name__}.{name}", module=False, globs=globs
        )
    for test in found:
        if test.examples and test.name not in seen:
            seen.add(test.name)
            runner.run(test)
    return runner.summarize(verbose=False)


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
