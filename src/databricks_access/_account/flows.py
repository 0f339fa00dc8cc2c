"""Sans-IO flows: each API operation is a generator that yields what to send.

A flow yields a `Call` and receives a `Reply`, or yields `Concurrently(...)` and receives
the outcomes of several sub-flows, or yields a typed `Effect` (the kernel: `_sansio.py`).
Multi-step operations compose with `yield from`.
The drivers in `_drivers.py` run the same flows on `httpx.Client` and `httpx.AsyncClient`;
nothing here performs I/O, so flows are tested by feeding them replies.

An error reply is thrown into the flow at its `yield` as the matching `ApiError`, so a
flow that expects one (a 409 on create, a 404 on remove) catches it like any exception.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

import attrs

from databricks_access._errors import DatabricksAccessError, ServerError
from databricks_access._sansio import Effect
from databricks_access._util.json import JsonBoundsError, loads

__all__ = [
    "Call",
    "Concurrently",
    "Flow",
    "Listing",
    "OpClass",
    "Reply",
    "Step",
    "WaitForSlot",
    "collect",
    "concurrently",
    "request",
]

T = TypeVar("T")


class OpClass(enum.Enum):
    """The rate-limit class of a request, as Databricks counts them."""

    GET = "get"
    LIST = "list"
    PATCH = "patch"
    WRITE = "write"
    TOKEN = "token"  # noqa: S105 - an operation class, not a credential
    META = "meta"


@attrs.frozen(kw_only=True)
class Call:
    """A request to send: the flow's side of the conversation.

    Attributes:
        method: The HTTP method.
        path: The percent-encoded path on the account host.
        query: The percent-encoded query string, without `?`.
        body: A JSON-serialisable body, or None.
        op: The rate-limit class.
        idempotent: Whether sending it twice is harmless (retries of 5xx and timeouts).
        authenticate: Whether to attach the bearer token.
        deadline: Seconds after which no retry starts, when shorter than the policy's
            (the lease tracker keeps retries inside its claim on the membership).
        retries: Whether a failed attempt may be sent again; False hands every answer
            to the flow as the server gave it (the account probe measures them).
        throttled: Whether the client-side rate limits pace it; only the account probe's
            opt-in rate-limit runs, which look for the server's own limits, send without.
        slot_reserved: The first attempt's throttle slot was reserved (and waited for)
            beforehand, by the flow; retries take slots as usual.
    """

    method: str
    path: str
    query: str = ""
    body: object = None
    op: OpClass
    idempotent: bool
    authenticate: bool = True
    deadline: float | None = None
    retries: bool = True
    throttled: bool = True
    slot_reserved: bool = False

    @property
    def target(self) -> str:
        """Path and query, as sent on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path


@attrs.frozen(kw_only=True)
class Reply:
    """A successful (2xx) reply: status, headers and the raw body."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON; an empty body is None.

        Raises:
            ServerError: with code `MALFORMED_RESPONSE` when the body is not JSON.
        """
        if not self.content.strip():
            return None
        try:
            # Bounded in size, and in depth by the parser only: see `loads`.
            return loads(self.content, max_depth=None)
        except JsonBoundsError as exc:
            raise ServerError(
                self.status, "MALFORMED_RESPONSE", f"the response body: {exc}"
            ) from None
        except ValueError:
            raise ServerError(
                self.status, "MALFORMED_RESPONSE", "the response body is not valid JSON"
            ) from None


@attrs.frozen
class WaitForSlot(Effect[float]):
    """Reserve the next client-side throttle slot of `op`'s class and wait for it.

    The driver answers the seconds waited (0 without a throttle). The request that
    follows is sent with `slot_reserved=True`, so it takes no second slot: a flow can
    act on what changed while it waited (the lease tracker folds in what fell due).
    """

    op: OpClass


@attrs.frozen
class Concurrently:
    """Run sub-flows at the same time, at most `limit` at once.

    The flow receives a list, in the order given, holding each sub-flow's result or the
    `DatabricksAccessError` it raised (other exceptions propagate).
    """

    flows: tuple[Flow[object], ...]
    limit: int = 4


Step = Call | Concurrently | Effect[Any]
"""What a flow yields: a `Call`, `Concurrently`, or an `Effect` for the run's handler."""
Flow = Generator[Step, Any, T]
"""A flow: yields steps, receives their outcomes, returns a value."""


def request(call: Call) -> Flow[Reply]:
    """Send one call and return its reply (used with `yield from` inside flows)."""
    reply = yield call
    return cast("Reply", reply)


def concurrently(flows: Sequence[Flow[T]], limit: int = 4) -> Flow[list[T | DatabricksAccessError]]:
    """Run `flows` concurrently (bounded by `limit`), returning results or errors in order."""
    if not flows:
        return []
    outcomes = yield Concurrently(tuple(flows), max(1, limit))
    return cast("list[T | DatabricksAccessError]", outcomes)


class Listing(Protocol[T]):
    """A paged listing in progress: hands out the flow of each next page until done."""

    def next_page(self) -> Generator[Step, Any, list[T]] | None:
        """The flow fetching the next page's new items, or None when the listing is done."""
        ...


def collect(listing: Listing[T]) -> Flow[list[T]]:
    """Fetch every page of a listing, inside another flow."""
    items: list[T] = []
    while (page := listing.next_page()) is not None:
        items.extend((yield from page))
    return items
