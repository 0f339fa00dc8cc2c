"""What a requested group unlocks, recorded on the access request for its approver.

`AccessRequests(..., catalog=reader)` asks the reader, at submission, for a one-line
summary of what the group unlocks (`UnlocksReport.summary`), and records it on the
request after the integration's access details (`access_details`, which the stores keep
and the request's repr, notebook HTML and the command line show) and in the
`request_submitted` event's detail (`unlocks`). A read that fails never blocks a
request: the request is stored without a summary and the failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import attrs

from databricks_access._account.models import Group
from databricks_access._errors import DatabricksAccessError
from databricks_access._sansio import Effect

if TYPE_CHECKING:
    from databricks_access._catalog._reader import AsyncCatalogReader, CatalogReader

__all__ = [
    "UNLOCKS_LABEL",
    "DescribeUnlocks",
    "adescribe",
    "describe",
    "summary_of",
    "with_summary",
]

logger = logging.getLogger("databricks_access")

UNLOCKS_LABEL = "Unlocks (Unity Catalog): "
_MAX_SUMMARY = 600


@attrs.frozen
class DescribeUnlocks(Effect["str | None"]):
    """Effect: the one-line summary of what `group` unlocks, or None."""

    group: Group | str


def with_summary(details: str | None, summary: str | None) -> str | None:
    """The access details with the summary on a line of its own after them."""
    if not summary:
        return details
    line = UNLOCKS_LABEL + summary
    return f"{details}\n\n{line}" if details else line


def summary_of(details: str | None) -> str | None:
    """The summary recorded in access details, or None."""
    if not details:
        return None
    for line in reversed(details.splitlines()):
        if line.startswith(UNLOCKS_LABEL):
            return line.removeprefix(UNLOCKS_LABEL)
    return None


def _shortened(text: str) -> str:
    return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 1] + "…"


def describe(reader: CatalogReader, group: Group | str) -> str | None:
    """What `group` unlocks, in a line; None (logged) when it cannot be read."""
    try:
        return _shortened(reader.unlocks(group).summary())
    except DatabricksAccessError as exc:
        logger.warning("could not read what group %s unlocks: %s", _name(group), exc)
        return None


async def adescribe(reader: AsyncCatalogReader | CatalogReader, group: Group | str) -> str | None:
    """The async twin of `describe` (a sync reader runs in a worker thread)."""
    from databricks_access._catalog._reader import CatalogReader  # noqa: PLC0415

    if isinstance(reader, CatalogReader):
        return await asyncio.to_thread(describe, reader, group)
    try:
        return _shortened((await reader.unlocks(group)).summary())
    except DatabricksAccessError as exc:
        logger.warning("could not read what group %s unlocks: %s", _name(group), exc)
        return None


def _name(group: Group | str) -> str:
    return group.display_name or group.id if isinstance(group, Group) else group
