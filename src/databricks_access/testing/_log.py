"""The request log and the per-operation-class counters of an emulator."""

from __future__ import annotations

from collections import Counter, deque

import attrs

from databricks_access.testing._routing import OperationClass

__all__ = ["RequestLog", "RequestRecord"]


@attrs.frozen
class RequestRecord:
    """One request the emulator answered.

    Times are taken twice: from the injected clock (epoch seconds, what the account's
    logic sees) and from a monotonic timer (`time.perf_counter` by default), which
    measures real latency when the emulator serves over a socket.

    Attributes:
        method: The HTTP method.
        path: The raw path, as sent.
        query: The raw query string.
        body: The request body (a token request's `client_secret` is replaced by `***`).
        status: The status code answered.
        op_class: The operation class of the request.
        started: The injected clock when the request arrived.
        finished: The injected clock when the answer was ready.
        perf_started: The timer when the request arrived.
        perf_finished: The timer when the answer was ready.
        fault: The injected fault this request met (`"429"`, `"rate_limited"`,
            `"latency"`, `"drop"`, ...; several joined by `+`), or None. A request that
            got no answer (a dropped or held connection) has status 0.
        workspace_id: The workspace whose host the request was sent to; None for the
            accounts host.
    """

    method: str
    path: str
    query: str
    body: bytes = attrs.field(repr=False)
    status: int
    op_class: OperationClass
    started: float
    finished: float
    perf_started: float
    perf_finished: float
    fault: str | None = None
    workspace_id: int | None = None


class RequestLog:
    """The most recent requests (bounded), and counts of every request by class.

    Args:
        size: How many records to keep; None keeps all. Counts are never truncated.
    """

    def __init__(self, size: int | None) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self._counts: Counter[OperationClass] = Counter()
        self._faults: Counter[str] = Counter()

    def add(self, record: RequestRecord) -> None:
        """Log one request."""
        self._records.append(record)
        self._counts[record.op_class] += 1
        if record.fault is not None:
            self._faults.update(record.fault.split("+"))

    def records(self) -> tuple[RequestRecord, ...]:
        """The logged requests, oldest first."""
        return tuple(self._records)

    def counts(self) -> Counter[OperationClass]:
        """A copy of the counts by operation class."""
        return Counter(self._counts)

    def faults(self) -> Counter[str]:
        """A copy of the counts of injected faults by name."""
        return Counter(self._faults)

    def clear(self) -> None:
        """Forget the records and the counts."""
        self._records.clear()
        self._counts.clear()
        self._faults.clear()
