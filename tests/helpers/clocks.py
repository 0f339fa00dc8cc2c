"""Clocks for concurrency tests."""

from __future__ import annotations

import asyncio
import time

import databricks_access as da


class WallClock(da.ManualClock):
    """A manual clock whose waits take a little real time and do not move it.

    With it, an operation that waits for another one's claim really waits (the other
    thread runs meanwhile) instead of fast-forwarding time past the claim's expiry.
    Monotonic time runs with real time; the wall clock moves only when told to.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()

    def monotonic(self) -> float:
        return super().monotonic() + (time.monotonic() - self._started)

    def sleep(self, seconds: float) -> None:
        self.slept.append(max(float(seconds), 0.0))
        time.sleep(min(max(float(seconds), 0.0), 0.02))

    async def asleep(self, seconds: float) -> None:
        self.slept.append(max(float(seconds), 0.0))
        await asyncio.sleep(min(max(float(seconds), 0.0), 0.02))
