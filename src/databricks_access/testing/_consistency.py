"""Stale reads of memberships, played from a bounded history of membership changes.

Every membership change made through the API is recorded as an effective transition
(a member that really joined or really left). A stale read picks a point in that history
(the newest change old enough to be visible) and rolls back every change after it: for
each (group, member) pair touched since, the state before the earliest of those changes
is the state at that point. The result is a consistent snapshot, like a lagging replica.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from databricks_access.testing._behaviour import StaleReads

__all__ = ["Change", "MembershipHistory", "Snapshot"]


class Change(NamedTuple):
    """One effective membership change."""

    request: int
    """The emulator's request counter when the change was made."""
    time: float
    """The injected clock when the change was made."""
    group_id: str
    member_id: str
    added: bool


class Snapshot:
    """Memberships as a lagging replica sees them: the true state with recent changes undone.

    Args:
        members: The true members by group id.
        parents: The true groups by member id.
        undone: The changes to roll back, oldest first.
    """

    def __init__(
        self,
        members: Mapping[str, Mapping[str, None]],
        parents: Mapping[str, Mapping[str, None]],
        undone: Iterable[Change],
    ) -> None:
        self._members = members
        self._parents = parents
        # (group, member) -> was it a membership at the snapshot's point in time?
        self._by_group: dict[str, dict[str, bool]] = {}
        self._by_member: dict[str, dict[str, bool]] = {}
        for change in reversed(list(undone)):
            was = not change.added
            self._by_group.setdefault(change.group_id, {})[change.member_id] = was
            self._by_member.setdefault(change.member_id, {})[change.group_id] = was

    @staticmethod
    def _view(current: Mapping[str, None], past: Mapping[str, bool] | None) -> list[str]:
        if not past:
            return list(current)
        kept = [key for key in current if past.get(key, True)]
        kept.extend(key for key, was in past.items() if was and key not in current)
        return kept

    def members(self, group_id: str) -> list[str]:
        """The member ids of a group, as this snapshot sees them."""
        return self._view(self._members.get(group_id, {}), self._by_group.get(group_id))

    def parents(self, member_id: str) -> list[str]:
        """The ids of the groups a principal is a direct member of, as this snapshot sees them."""
        return self._view(self._parents.get(member_id, {}), self._by_member.get(member_id))


class MembershipHistory:
    """The bounded record of membership changes, and the stale-read policy over it.

    Args:
        settings: The stale-read settings.
    """

    def __init__(self, settings: StaleReads) -> None:
        self._changes: deque[Change] = deque(maxlen=settings.history)
        self.configure(settings)

    def configure(self, settings: StaleReads) -> None:
        """Apply new settings: resize the history and restart the random lag from its seed."""
        self._settings = settings
        self._rng = random.Random(settings.seed)  # noqa: S311 - test determinism, not security
        if self._changes.maxlen != settings.history:
            self._changes = deque(self._changes, maxlen=settings.history)

    def record(self, change: Change) -> None:
        """Remember one effective change."""
        self._changes.append(change)

    def snapshot(
        self,
        members: Mapping[str, Mapping[str, None]],
        parents: Mapping[str, Mapping[str, None]],
        *,
        request: int,
        now: float,
    ) -> Snapshot:
        """The memberships one read sees (the true state when reads are not stale).

        Args:
            members: The true members by group id.
            parents: The true groups by member id.
            request: The emulator's current request counter.
            now: The injected clock's current time.
        """
        settings = self._settings
        if not settings.enabled or not self._changes:
            return Snapshot(members, parents, ())
        lag_requests: float = settings.lag_requests
        lag_seconds = settings.lag_seconds
        if not settings.monotonic:
            lag_requests = self._rng.randint(0, settings.lag_requests)
            lag_seconds = self._rng.uniform(0.0, settings.lag_seconds)
        undone: list[Change] = []
        for change in reversed(self._changes):
            too_recent = (lag_requests > 0 and change.request > request - lag_requests) or (
                lag_seconds > 0 and change.time > now - lag_seconds
            )
            if not too_recent:
                break
            undone.append(change)
        undone.reverse()
        return Snapshot(members, parents, undone)
