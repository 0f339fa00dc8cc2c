"""Fixtures of the lease tests: a principal and a group in the emulated account."""

from __future__ import annotations

import pytest

import databricks_access as da


@pytest.fixture
def alice(fake):
    return da.PrincipalRef("user", fake.add_user("alice@example.com"))


@pytest.fixture
def ops(fake):
    return fake.add_group("ops")
