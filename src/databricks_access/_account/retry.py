"""The retry policy: pure functions of what happened, no I/O and no sleeping.

The drivers ask `RetryPolicy.delay(...)` after each failed attempt and wait what it
says, or give up when it says None.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime

import attrs

from databricks_access._durations import seconds
from databricks_access._errors import (
    ApiError,
    ConfigError,
    DatabricksAccessError,
    RateLimitedError,
    ServerError,
    TransportError,
)

__all__ = ["RetryPolicy", "parse_retry_after"]

# Statuses retried whatever the method: the server says "not now", nothing happened.
_ALWAYS = frozenset({429, 503})
_IDEMPOTENT_ONLY = frozenset({500, 502, 504})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header, or None when it is unusable.

    Accepts whole or fractional seconds (`"2"`, `"1.58"`) and HTTP dates. Negative,
    non-finite and unparsable values give None; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds
    import email.utils  # noqa: PLC0415 - an HTTP date is rare: load the email package then

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    reference = now if now is not None else datetime.now(when.tzinfo)
    return max((when - reference).total_seconds(), 0.0)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how long to retry a failed request.

    Attributes:
        max_attempts: Attempts in all, the first included.
        base_delay: The first backoff step in seconds; it doubles each attempt.
        max_delay: The largest backoff step.
        max_retry_after: The longest server-requested wait honoured; longer waits are
            capped to it (a server asking for an hour does not stall a sweep).
        deadline: Seconds from the first attempt after which no retry starts.
        retry_after_jitter: A server-requested wait is lengthened by up to this
            fraction of itself, at random (up to `max_retry_after`), so that clients
            told the same `Retry-After` (replicas, threads) do not come back in lockstep.
            It is never shortened, except a wait already capped at `max_retry_after`,
            which is spread below the cap instead.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    deadline: float = 120.0
    retry_after_jitter: float = attrs.field(
        default=0.2, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )

    def __attrs_post_init__(self) -> None:
        max_attempts: object = self.max_attempts
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigError(
                f"must be an integer of at least 1, not {max_attempts!r}", "max_attempts"
            )
        for name in ("base_delay", "max_delay", "max_retry_after", "deadline"):
            object.__setattr__(self, name, seconds(getattr(self, name), name))

    def retryable(self, error: DatabricksAccessError, *, idempotent: bool) -> bool:
        """Whether a request that failed with `error` may be sent again.

        429, 503 and throttling in any form are always retried: the server did nothing.
        Other 5xx and network failures only for idempotent requests, since a POST that
        timed out may have succeeded.
        """
        if isinstance(error, RateLimitedError):
            return True
        if isinstance(error, ApiError):
            if error.status_code in _ALWAYS:
                return True
            return idempotent and (
                error.status_code in _IDEMPOTENT_ONLY or isinstance(error, ServerError)
            )
        if isinstance(error, TransportError):
            return idempotent or error.request_not_sent
        return False

    def delay(
        self,
        *,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
        deadline: float | None = None,
    ) -> float | None:
        """The wait before attempt `attempt + 1`, or None to give up.

        Args:
            attempt: How many attempts have been made (1 after the first failure).
            elapsed: Seconds since the first attempt started.
            retry_after: The server's requested wait, when it sent one.
            rand: A source of floats in [0, 1), injectable for tests.
            deadline: A shorter deadline for this request, if any.
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            spread = self.retry_after_jitter * rand()
            if retry_after >= self.max_retry_after:
                # Already less than asked: spread below the cap, never past it.
                wait = self.max_retry_after * (1.0 - spread)
            else:
                wait = min(retry_after * (1.0 + spread), self.max_retry_after)
        else:
            # Full jitter: spreads retries of many clients evenly over the window.
            ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
            wait = ceiling * rand()
        limit = self.deadline if deadline is None else min(deadline, self.deadline)
        if elapsed + wait > limit:
            return None
        return wait
