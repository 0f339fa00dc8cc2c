"""Client-side rate limiting: one token bucket per operation class.

Databricks limits account API calls per operation class; waiting here costs the same
time as waiting for a 429's Retry-After, without the failed request and the storm of
retries it triggers in a bulk job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs

from databricks_access._flows import OpClass

__all__ = ["RateLimits", "Throttle"]


def _positive_or_none(
    _: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        from databricks_access._errors import ConfigError  # noqa: PLC0415

        raise ConfigError(
            f"must be a positive number of requests per second, not {value!r}", attribute.name
        )


@attrs.frozen(kw_only=True)
class RateLimits:
    """Requests per second allowed for each operation class; None means unlimited.

    `RateLimits.published()` gives the limits reported for the account SCIM API
    (GET 20/s, LIST 240/min, PATCH 2/s, other writes 5/s); they are not confirmed by
    Databricks, so they are opt-in::

        client = da.AccountClient(cfg, secrets=secrets, rate_limits=da.RateLimits.published())
    """

    get: float | None = attrs.field(default=None, validator=_positive_or_none)
    list: float | None = attrs.field(default=None, validator=_positive_or_none)
    patch: float | None = attrs.field(default=None, validator=_positive_or_none)
    write: float | None = attrs.field(default=None, validator=_positive_or_none)
    burst: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    """Seconds' worth of requests of one class that may start at once after a quiet
    spell (0: strictly spaced). Databricks' buckets are believed to hold one second's."""

    @classmethod
    def published(cls, scale: float = 1.0, *, burst: float = 1.0) -> RateLimits:
        """The reported account API limits, optionally scaled (0.8 keeps a margin)."""
        return cls(
            get=20.0 * scale, list=4.0 * scale, patch=2.0 * scale, write=5.0 * scale, burst=burst
        )

    def rate_for(self, op: OpClass) -> float | None:
        """The limit of one operation class (token and metadata calls are unlimited)."""
        return {
            OpClass.GET: self.get,
            OpClass.LIST: self.list,
            OpClass.PATCH: self.patch,
            OpClass.WRITE: self.write,
        }.get(op)


class Throttle:
    """Token buckets shared by every request of one client, thread-safe.

    `reserve(op)` takes a slot and says how long to wait before using it; the caller
    sleeps (sync or async) outside the lock, so waiting never blocks other classes.
    """

    def __init__(self, limits: RateLimits, monotonic: Callable[[], float]) -> None:
        self._limits = limits
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # Per class: the theoretical arrival time of the next request.
        self._arrival: dict[OpClass, float] = {}

    def reserve(self, op: OpClass) -> float:
        """Reserve the next slot of `op`'s class; returns seconds to wait (0 for none)."""
        rate = self._limits.rate_for(op)
        if rate is None:
            return 0.0
        interval = 1.0 / rate
        # GCRA: each class keeps a theoretical arrival time; `tolerance` allows a burst.
        tolerance = max(self._limits.burst - interval, 0.0)
        with self._lock:
            now = self._monotonic()
            arrival = max(self._arrival.get(op, now), now)
            self._arrival[op] = arrival + interval
            return max(arrival - tolerance - now, 0.0)

    def __repr__(self) -> str:
        return f"Throttle({self._limits!r})"
