"""Time, injected: every decision takes `now` from a `Clock`, and tests never sleep."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock", "utc"]

utc = dt.timezone.utc


@runtime_checkable
class Clock(Protocol):
    """Where the library reads the time and how it waits.

    `now()` is wall-clock time (timezone-aware, UTC) for leases and events;
    `monotonic()` measures intervals (retries, token lifetimes, rate limits).
    """

    def now(self) -> dt.datetime:
        """The current time, timezone-aware in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for `seconds`."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for `seconds`."""
        ...


class SystemClock:
    """The real clock: `datetime.now(UTC)`, `time.monotonic`, `time.sleep`."""

    def now(self) -> dt.datetime:
        """The current time in UTC."""
        return dt.datetime.now(utc)

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """`time.sleep(seconds)`; negative values do not wait."""
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """`asyncio.sleep(seconds)`; negative values still yield to the loop."""
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to, for tests.

    Sleeping advances the clock by the time slept and returns at once, so code that
    waits (retries, expiry loops) runs instantly and deterministically::

        clock = da.ManualClock()
        tracker = da.LeaseTracker(manager, store=store, clock=clock)
        lease = tracker.grant(user, group, ttl=timedelta(hours=1), requester="me", reason="test")
        clock.advance(timedelta(hours=1, seconds=1))
        tracker.sweep()   # revokes the lease
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        start = start or dt.datetime(2026, 1, 1, tzinfo=utc)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._lock = threading.Lock()
        self._now = start.astimezone(utc)
        self._mono = 1_000.0
        self.slept: list[float] = []
        """Every wait requested through `sleep`/`asleep`, in order."""

    def now(self) -> dt.datetime:
        """The clock's current time."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Seconds, advancing with `advance` and with every sleep."""
        with self._lock:
            return self._mono

    def advance(self, by: dt.timedelta | float) -> None:
        """Move the clock forward by a timedelta or a number of seconds."""
        seconds = by.total_seconds() if isinstance(by, dt.timedelta) else float(by)
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += dt.timedelta(seconds=seconds)
            self._mono += seconds

    def jump(self, by: dt.timedelta | float) -> None:
        """Step the wall clock alone, forwards or backwards, as NTP or an operator does.

        Monotonic time does not move: this is how a test plays a clock step.
        """
        seconds = by.total_seconds() if isinstance(by, dt.timedelta) else float(by)
        with self._lock:
            self._now += dt.timedelta(seconds=seconds)

    def set(self, when: dt.datetime) -> None:
        """Jump forward to `when` (timezone-aware)."""
        self.advance(when.astimezone(utc) - self.now())

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance the clock by it, without waiting."""
        seconds = max(float(seconds), 0.0)
        self.slept.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Record the wait, advance the clock, and yield once to the event loop."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now().isoformat()})"
