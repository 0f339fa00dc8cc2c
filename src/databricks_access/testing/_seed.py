"""Seeding an emulated account with many principals at once, deterministically."""

from __future__ import annotations

import random

import attrs

from databricks_access.testing._oauth import ServicePrincipalCredentials, new_secret
from databricks_access.testing._state import AccountState

__all__ = ["SeedSummary", "seed_account"]


@attrs.frozen
class SeedSummary:
    """What `FakeAccount.seed` created, in creation order (secrets are random, ids are not).

    Attributes:
        user_ids: The ids of the users (`{prefix}user00000@example.com`, ...).
        group_ids: The ids of the groups (`{prefix}group-0000`, ...).
        service_principals: The credentials of the service principals (`{prefix}sp-000`,
            ...), all account admins.
        workspace_ids: The ids of the workspaces (`{prefix}workspace-00`, ...).
        memberships: The number of (group, user) memberships created.
    """

    user_ids: tuple[str, ...]
    group_ids: tuple[str, ...]
    service_principals: tuple[ServicePrincipalCredentials, ...] = attrs.field(repr=False)
    workspace_ids: tuple[int, ...]
    memberships: int


def seed_account(
    state: AccountState,
    *,
    users: int,
    groups: int,
    memberships: int | None,
    service_principals: int,
    workspaces: int,
    assignments_per_workspace: int,
    seed: int,
    prefix: str,
) -> SeedSummary:
    """Create principals, memberships and workspaces; see `FakeAccount.seed`."""
    counts = {
        "users": users,
        "groups": groups,
        "service_principals": service_principals,
        "workspaces": workspaces,
        "assignments_per_workspace": assignments_per_workspace,
    }
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    pairs = users * groups
    wanted = min(2 * users, pairs) if memberships is None else memberships
    if not 0 <= wanted <= pairs:
        raise ValueError(f"memberships must be between 0 and users * groups ({pairs})")

    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    saved, state.rng = state.rng, rng  # ids drawn from the seed: same seed, same ids
    try:
        user_ids = tuple(
            state.add_user(f"{prefix}user{i:05d}@example.com", f"{prefix}User {i:05d}").id
            for i in range(users)
        )
        group_ids = tuple(state.add_group(f"{prefix}group-{i:04d}").id for i in range(groups))
        for index in rng.sample(range(pairs), wanted):
            group_index, user_index = divmod(index, users)
            state.add_member(group_ids[group_index], user_ids[user_index], record=False)
        credentials = []
        for i in range(service_principals):
            sp = state.add_service_principal(f"{prefix}sp-{i:03d}", admin=True)
            secret = state.add_secret(sp, new_secret())
            credentials.append(ServicePrincipalCredentials(sp.id, sp.application_id, secret.value))
        workspace_ids = []
        for i in range(workspaces):
            workspace = state.add_workspace(f"{prefix}workspace-{i:02d}")
            workspace_ids.append(workspace.workspace_id)
            chosen = rng.sample(group_ids, min(assignments_per_workspace, len(group_ids)))
            for group_id in chosen:
                state.assignments[workspace.workspace_id][group_id] = ("USER",)
    finally:
        state.rng = saved
    return SeedSummary(user_ids, group_ids, tuple(credentials), tuple(workspace_ids), wanted)
