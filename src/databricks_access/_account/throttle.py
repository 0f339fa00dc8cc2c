"""Client-side rate limiting: one token bucket per operation class, shared per account.

Databricks limits account API calls per operation class; waiting here costs the same
time as waiting for a 429's Retry-After, without the failed request and the storm of
retries it triggers in a bulk job. The limits are on by default, at the published
figures. Every client of one process on one account shares one set of buckets (the
account's limit is the account's, however many clients a connector opens), measured on
the clients' clock: clients on different clocks (a test's `ManualClock`) never share.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import attrs

from databricks_access._account.flows import OpClass

if TYPE_CHECKING:
    from databricks_access._clock import Clock

__all__ = ["PUBLISHED_BURST", "RateLimits", "Throttle", "shared_throttle"]

PUBLISHED_BURST = 0.95
"""Seconds of burst the published limits allow: one second's bucket less 50 ms of margin."""


def _positive_or_none(
    _: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        from databricks_access._errors import ConfigError  # noqa: PLC0415

        raise ConfigError(
            f"must be a positive number of requests per second, not {value!r}", attribute.name
        )


@attrs.frozen(kw_only=True)
class RateLimits:
    """Requests per second allowed for each operation class; None means unlimited.

    Clients throttle at `RateLimits.published()` by default: the limits reported for the
    account SCIM API (GET 20/s, LIST 240/min, PATCH 2/s, other writes 5/s). Override
    them per client or per `AccountConfig`, or switch them off with `None` (or
    `RateLimits.unlimited()`)::

        client = da.AccountClient(cfg, secrets=secrets, rate_limits=da.RateLimits(patch=1.5))
        client = da.AccountClient(cfg, secrets=secrets, rate_limits=None)  # no throttle
    """

    get: float | None = attrs.field(default=None, validator=_positive_or_none)
    list: float | None = attrs.field(default=None, validator=_positive_or_none)
    patch: float | None = attrs.field(default=None, validator=_positive_or_none)
    write: float | None = attrs.field(default=None, validator=_positive_or_none)
    burst: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    """Seconds' worth of requests of one class that may start at once after a quiet
    spell (0: strictly spaced). Databricks' buckets are believed to hold one second's."""

    @classmethod
    def published(cls, scale: float = 1.0, *, burst: float = PUBLISHED_BURST) -> RateLimits:
        """The reported account API limits (the default), optionally scaled (0.8 keeps a margin).

        The default `burst` is 0.95 s, not the server's full second: the client counts a
        slot from when it grants it, the server from when the request arrives, and a
        request that leaves some milliseconds late (its claims renewed first, a thread
        scheduled late) would make the next one early by the server's count. Leaving
        50 ms of the server's bucket unused absorbs that, at an unchanged rate.
        """
        return cls(
            get=20.0 * scale, list=4.0 * scale, patch=2.0 * scale, write=5.0 * scale, burst=burst
        )

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No client-side limit on any class (the same as passing `rate_limits=None`)."""
        return cls()

    @classmethod
    def from_setting(cls, value: object) -> RateLimits | None:
        """Limits from a configuration value; None means no throttle.

        Accepts a `RateLimits`, None, `"published"` (the default figures), `"off"`, a
        mapping or text of per-class figures (`{"patch": 1.5}`, `"patch=1.5,get=10"`)
        whose missing classes keep the published figure (`"off"` leaves one unlimited).

        Raises:
            ConfigError: naming `rate_limits` (or `rate_limits.<key>`) and the problem.

        Example:
            >>> RateLimits.from_setting("patch=1, burst=0").patch
            1.0
            >>> RateLimits.from_setting("off") is None
            True
        """
        from databricks_access._errors import ConfigError, ConfigProblem  # noqa: PLC0415

        if value is None or isinstance(value, RateLimits):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _OFF:
                return None
            if text in {"published", "default", "on"}:
                return cls.published()
            entries: dict[object, object] = {}
            for part in (p for p in text.split(",") if p.strip()):
                key, sep, figure = part.partition("=")
                if not sep:
                    raise ConfigError(
                        "must be 'published', 'off' or figures like 'patch=1.5,get=10'",
                        "rate_limits",
                    )
                entries[key.strip()] = figure.strip()
            value = entries
        if not isinstance(value, Mapping):
            raise ConfigError(
                "must be 'published', 'off' or a table of per-class figures "
                f"(get, list, patch, write, burst), not {type(value).__name__}",
                "rate_limits",
            )
        figures: dict[str, float | None] = {}
        for key, raw in value.items():
            if key not in _SETTING_KEYS:
                shown = key if isinstance(key, str) and len(key) <= 40 else "?"
                raise ConfigError(
                    f"is not a known key; the keys are: {', '.join(_SETTING_KEYS)}",
                    f"rate_limits.{shown}",
                )
            if key != "burst" and (
                raw is None or (isinstance(raw, str) and raw.strip().lower() in _OFF)
            ):
                figures[key] = None
                continue
            try:
                number = float(raw)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(raw, bool) or not math.isfinite(number):
                raise ConfigError("must be a number (or 'off')", f"rate_limits.{key}")
            figures[key] = number
        try:
            return attrs.evolve(cls.published(), **cast("dict[str, Any]", figures))
        except ConfigError as exc:
            raise ConfigError(
                [ConfigProblem(f"rate_limits.{p.field}", p.message) for p in exc.problems]
            ) from None
        except ValueError:  # the burst validator
            raise ConfigError("must be zero or more seconds", "rate_limits.burst") from None

    @property
    def enabled(self) -> bool:
        """Whether any class is limited."""
        return any(rate is not None for rate in (self.get, self.list, self.patch, self.write))

    def rate_for(self, op: OpClass) -> float | None:
        """The limit of one operation class (token and metadata calls are unlimited)."""
        if op is OpClass.GET:
            return self.get
        if op is OpClass.LIST:
            return self.list
        if op is OpClass.PATCH:
            return self.patch
        if op is OpClass.WRITE:
            return self.write
        return None


_SETTING_KEYS = ("get", "list", "patch", "write", "burst")
_OFF = frozenset({"off", "none", "unlimited"})


class _Timeline:
    """The state every throttle of one account shares: per class, the next free slot."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrival: dict[OpClass, float] = {}


class Throttle:
    """Token buckets for the requests of one client, thread-safe and task-safe.

    `reserve(op)` takes a slot and says how long to wait before using it; the caller
    sleeps (sync or async) outside the lock, so waiting never blocks other classes or
    the event loop. Throttles built by `shared_throttle` for one account share their
    slots; each still spaces its own requests by its own limits.
    """

    def __init__(
        self,
        limits: RateLimits,
        monotonic: Callable[[], float],
        *,
        timeline: _Timeline | None = None,
    ) -> None:
        self._limits = limits
        self._monotonic = monotonic
        self._timeline = timeline or _Timeline()

    @property
    def limits(self) -> RateLimits:
        """The limits this throttle spaces requests by."""
        return self._limits

    def reserve(self, op: OpClass) -> float:
        """Reserve the next slot of `op`'s class; returns seconds to wait (0 for none)."""
        rate = self._limits.rate_for(op)
        if rate is None:
            return 0.0
        interval = 1.0 / rate
        # GCRA: each class keeps a theoretical arrival time; `tolerance` allows a burst.
        tolerance = max(self._limits.burst - interval, 0.0)
        timeline = self._timeline
        with timeline.lock:
            now = self._monotonic()
            arrival = max(timeline.arrival.get(op, now), now)
            timeline.arrival[op] = arrival + interval
            return max(arrival - tolerance - now, 0.0)

    def defer(self, op: OpClass, seconds: float) -> None:
        """The server said to wait `seconds` for `op`'s class: no slot starts sooner."""
        rate = self._limits.rate_for(op)
        if rate is None or not seconds > 0:
            return
        # The server's bucket is empty until then: no burst either, only spaced slots.
        tolerance = max(self._limits.burst - 1.0 / rate, 0.0)
        timeline = self._timeline
        with timeline.lock:
            resume = self._monotonic() + seconds + tolerance
            if timeline.arrival.get(op, resume) <= resume:
                timeline.arrival[op] = resume

    def __repr__(self) -> str:
        return f"Throttle({self._limits!r})"


# -- the process-wide registry -----------------------------------------------------------------

_registry_lock = threading.Lock()
# The system clock is one clock: its timelines live as long as the process.
_system: dict[tuple[str, str], _Timeline] = {}
# Any other clock (a test's ManualClock): timelines live as long as the clock does.
_by_clock: weakref.WeakKeyDictionary[object, dict[tuple[str, str], _Timeline]] = (
    weakref.WeakKeyDictionary()
)


def _forget_after_fork() -> None:
    # A child process is a new process: its own limits, and no lock held by a thread
    # that did not survive the fork.
    global _registry_lock  # noqa: PLW0603
    _registry_lock = threading.Lock()
    _system.clear()
    _by_clock.clear()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_forget_after_fork)


def shared_throttle(
    limits: RateLimits | None, *, host: str, account_id: str, clock: Clock
) -> Throttle | None:
    """The throttle of a client of `account_id` on `host` whose time comes from `clock`.

    Clients of one account on one clock share their slots, so two clients of one process
    together stay within the account's limits. None when `limits` limit nothing.
    """
    if limits is None or not limits.enabled:
        return None
    from databricks_access._clock import SystemClock  # noqa: PLC0415 - asyncio, when used

    key = (host, account_id)
    with _registry_lock:
        timelines: dict[tuple[str, str], _Timeline] | None
        if type(clock) is SystemClock:
            timelines = _system
        else:
            try:
                timelines = _by_clock.setdefault(clock, {})
            except TypeError:  # a clock that cannot be weakly referenced: not shared
                timelines = None
        timeline = _Timeline() if timelines is None else timelines.setdefault(key, _Timeline())
    return Throttle(limits, clock.monotonic, timeline=timeline)
