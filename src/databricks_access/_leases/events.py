"""Where audit events go once they are durable in the store's outbox.

The tracker writes each event in the same transaction as the state change it records,
then delivers pending events to its `EventSink` and marks them delivered. Delivery is
at least once: after a crash, events written but not yet marked are delivered again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from databricks_access._errors import ConfigError
from databricks_access._leases.values import AuditEvent
from databricks_access._util.files import open_private_append, shared

__all__ = ["CallableSink", "EventSink", "JsonLinesSink", "MemorySink"]


@runtime_checkable
class EventSink(Protocol):
    """Receives audit events. Raising makes the tracker keep the event and retry later."""

    def emit(self, event: AuditEvent) -> None:
        """Take one event."""
        ...


class CallableSink:
    """An `EventSink` from a function: `da.CallableSink(print)`, or a logger's method."""

    def __init__(self, func: Callable[[AuditEvent], object]) -> None:
        self._func = func

    def emit(self, event: AuditEvent) -> None:
        """Call the function with the event."""
        self._func(event)

    def __repr__(self) -> str:
        return f"CallableSink({self._func!r})"


class MemorySink:
    """Keeps events in a list (`sink.events`), for tests and notebooks."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        """Append the event."""
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        """The kinds of the events received, in order (`["granted", "expired", ...]`)."""
        with self._lock:
            return [e.kind.value for e in self.events]

    def __repr__(self) -> str:
        return f"MemorySink({len(self.events)} events)"


class JsonLinesSink:
    """Appends each event as one JSON line to a file, flushed and synced to disk.

    Example::

        tracker = da.LeaseTracker(manager, store=store, events=da.JsonLinesSink("audit.jsonl"))
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        problem = shared(self.path)
        if problem is not None:
            raise ConfigError(f"the audit file {problem}", "path")
        self._fsync = fsync
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        """Append the event as a JSON line."""
        line = json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True) + "\n"
        # Created 0600: the audit trail is nobody else's to read or to edit.
        with self._lock, open_private_append(self.path) as handle:
            handle.write(line)
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())

    def __repr__(self) -> str:
        return f"JsonLinesSink({str(self.path)!r})"
