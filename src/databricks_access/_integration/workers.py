"""Blocking calls run in daemon threads, so a stuck one can be abandoned.

The integrations call owner resolvers and identity directories that the user supplies;
one may never answer. `Workers` runs such a call in a daemon thread and waits a bounded
time; `bounded` bounds an awaitable the same way, telling our timeout apart from one
raised inside the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MAX_BUSY", "BusyError", "TimedOutError", "Workers", "bounded"]

T = TypeVar("T")


class TimedOutError(Exception):
    """A bounded call did not answer in time (internal)."""


class BusyError(Exception):
    """Too many earlier calls are still running in worker threads (internal)."""


# Worker threads still running (stuck resolvers); beyond this, calls are refused rather
# than piling up threads that never end.
MAX_BUSY = 8

_Outcome = tuple[bool, Any]


class Workers:
    """Runs blocking calls in daemon threads, so a stuck call can be abandoned.

    A daemon thread, not an executor: a resolver that never returns must not block the
    interpreter's exit, nor `asyncio.run`'s shutdown of its default executor.
    """

    def __init__(self, limit: int = MAX_BUSY) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._limit = limit

    def _start(self, call: Callable[[], Any], deliver: Callable[[_Outcome], None]) -> None:
        with self._lock:
            if self._busy >= self._limit:
                raise BusyError
            self._busy += 1

        def work() -> None:
            try:
                try:
                    outcome: _Outcome = (True, call())
                except Exception as exc:  # noqa: BLE001 - delivered to the caller
                    outcome = (False, exc)
                deliver(outcome)
            finally:
                with self._lock:
                    self._busy -= 1

        threading.Thread(target=work, name="databricks-access-owners", daemon=True).start()

    def call(self, call: Callable[[], T], timeout: float | None) -> T:
        """`call()` in a worker thread, waiting at most `timeout` real seconds."""
        if timeout is None:
            return call()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def deliver(outcome: _Outcome) -> None:
            if outcome[0]:
                future.set_result(outcome[1])
            else:
                future.set_exception(outcome[1])

        self._start(call, deliver)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the call itself raised a TimeoutError
            raise TimedOutError from None

    async def acall(self, call: Callable[[], T]) -> T:
        """`call()` in a worker thread, awaited (bound it with `bounded`)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        def settle(outcome: _Outcome) -> None:
            if waiter.done():
                return  # abandoned (timed out or cancelled)
            if outcome[0]:
                waiter.set_result(outcome[1])
            else:
                waiter.set_exception(outcome[1])

        def deliver(outcome: _Outcome) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, outcome)

        self._start(call, deliver)
        return await waiter


async def bounded(awaitable: Any, timeout: float | None) -> Any:
    """Await with a timeout, telling our timeout apart from one raised inside."""
    if timeout is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.wait_for(task, timeout)
    except asyncio.TimeoutError:
        if task.cancelled():
            raise TimedOutError from None
        raise
