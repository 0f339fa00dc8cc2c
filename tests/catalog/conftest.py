"""Fixtures of the Unity Catalog tests: an emulated account with metastores and grants.

The world (`uc` fixture):

- metastore `primary` (workspaces `analytics` and `reporting` share it), with catalog
  `sales` (schemas `raw` and `curated`, tables in each) and catalog `hr` (schema `people`);
- metastore `secondary` (workspace `lab`), with catalog `lab` (schema `scratch`);
- groups: `analysts` contains `juniors`, which contains alice; bob is in `analysts`;
  `engineers` contains the service principal `etl`;
- grants: `analysts` USE_CATALOG + SELECT on catalog `sales`; `juniors` USE_SCHEMA on
  `sales.raw`; `engineers` ALL_PRIVILEGES on catalog `lab`; alice SELECT on
  `hr.people`; `account users` USE_CATALOG on `hr` (the metastore's own);
- the connector's service principal is assigned to every workspace (except `locked`,
  which it may not use, when a test asks for it).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

import databricks_access as da
from databricks_access.testing import FakeAccount

ACCOUNT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@attrs.frozen
class World:
    fake: FakeAccount
    primary: str
    secondary: str
    analytics: int
    reporting: int
    lab: int
    alice: str
    bob: str
    etl: str
    analysts: str
    juniors: str
    engineers: str
    connector: str


@pytest.fixture
def clock() -> da.ManualClock:
    return da.ManualClock()


@pytest.fixture
def fake(clock: da.ManualClock) -> FakeAccount:
    return FakeAccount(account_id=ACCOUNT_ID, clock=lambda: clock.now().timestamp())


@pytest.fixture
def credentials(fake: FakeAccount) -> tuple[str, da.StaticSecretStore]:
    sp = fake.add_service_principal("connector")
    return sp.id, da.StaticSecretStore(sp.client_id, sp.client_secret)


def build_world(fake: FakeAccount, connector: str) -> World:
    analytics = fake.add_workspace("analytics", deployment_name="dbc-analytics")
    reporting = fake.add_workspace("reporting", deployment_name="dbc-reporting")
    lab = fake.add_workspace("lab", deployment_name="dbc-lab")
    for workspace in (analytics, reporting, lab):
        fake.assign(workspace, connector, ["USER"])
    primary = fake.add_metastore("primary").metastore_id
    secondary = fake.add_metastore("secondary").metastore_id
    fake.assign_metastore(analytics, primary)
    fake.assign_metastore(reporting, primary)
    fake.assign_metastore(lab, secondary)

    alice = fake.add_user("alice@example.com")
    bob = fake.add_user("bob@example.com")
    etl = fake.add_service_principal("etl")
    juniors = fake.add_group("juniors", members=[alice])
    analysts = fake.add_group("analysts", members=[juniors, bob])
    engineers = fake.add_group("engineers", members=[etl.id])

    fake.add_catalog(primary, "sales")
    for schema in ("raw", "curated"):
        fake.add_schema(primary, "sales", schema)
        for table in ("orders", "customers"):
            fake.add_table(primary, "sales", schema, table)
    fake.add_catalog(primary, "hr")
    fake.add_schema(primary, "hr", "people")
    fake.add_table(primary, "hr", "people", "salaries")
    fake.add_catalog(secondary, "lab")
    fake.add_schema(secondary, "lab", "scratch")

    fake.grant("catalog", "sales", "analysts", ["USE_CATALOG", "SELECT"])
    fake.grant("schema", "sales.raw", "juniors", ["USE_SCHEMA"])
    fake.grant("catalog", "lab", "engineers", ["ALL_PRIVILEGES"])
    fake.grant("schema", "hr.people", "alice@example.com", ["SELECT"])
    fake.grant("catalog", "hr", "account users", ["USE_CATALOG"])
    return World(
        fake=fake,
        primary=primary,
        secondary=secondary,
        analytics=analytics,
        reporting=reporting,
        lab=lab,
        alice=alice,
        bob=bob,
        etl=etl.id,
        analysts=analysts,
        juniors=juniors,
        engineers=engineers,
        connector=connector,
    )


@pytest.fixture
def world(fake: FakeAccount, credentials: tuple[str, da.StaticSecretStore]) -> World:
    return build_world(fake, credentials[0])


@pytest.fixture
def config(fake: FakeAccount) -> da.AccountConfig:
    return da.AccountConfig(host=fake.host, account_id=fake.account_id, rate_limits=None)


@pytest.fixture
def account(
    fake: FakeAccount,
    config: da.AccountConfig,
    credentials: tuple[str, da.StaticSecretStore],
    clock: da.ManualClock,
) -> Iterator[da.AccountClient]:
    with da.AccountClient(
        config, secrets=credentials[1], transport=fake.transport(), clock=clock
    ) as client:
        yield client


@pytest.fixture
def async_account(
    fake: FakeAccount,
    config: da.AccountConfig,
    credentials: tuple[str, da.StaticSecretStore],
    clock: da.ManualClock,
) -> da.AsyncAccountClient:
    return da.AsyncAccountClient(
        config, secrets=credentials[1], transport=fake.transport(), clock=clock
    )


@pytest.fixture
def reader(account: da.AccountClient, world: World) -> da.CatalogReader:
    return da.CatalogReader(account, include_tables=True)
