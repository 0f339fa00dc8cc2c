"""Fixtures for the emulator's own tests: an account, an injected clock, an API client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from databricks_access.testing import FakeAccount

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Clock:
    """An injected clock: epoch seconds that move only when told."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def add_members(*ids: str) -> dict[str, Any]:
    return patch_body({"op": "add", "path": "members", "value": [{"value": i} for i in ids]})


def remove_member(member_id: str) -> dict[str, Any]:
    return patch_body({"op": "remove", "path": f'members[value eq "{member_id}"]'})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeAccount:
    return FakeAccount(clock=clock)


@pytest.fixture
def api(fake: FakeAccount) -> Iterator[httpx.Client]:
    """An httpx client on the emulator, authenticated as the account owner."""
    with httpx.Client(
        transport=fake.transport(),
        base_url=fake.host,
        headers={"Authorization": f"Bearer {fake.static_token()}"},
    ) as client:
        yield client


@pytest.fixture
def scim(fake: FakeAccount) -> str:
    return fake.scim_path
