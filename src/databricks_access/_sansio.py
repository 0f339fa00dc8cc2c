"""The sans-IO kernel: typed effects, and the one loop that runs every flow.

A flow is a generator that yields what it needs done and receives the answer: an HTTP
`Call`, a store call, a sleep. Every such request besides HTTP is an `Effect[R]`, a
frozen object whose type says what its answer is, so `x = yield from perform(effect)`
gives `x` the type `R`. Nothing here performs I/O: a runner hands each step to its
handler, sync or async, and sends the answer back.

A handler's exception is thrown into the flow at its `yield`, so the flow's own cleanup
(releasing a claim, recording a failure) runs before the exception propagates.

`_resume` is the only place a flow is resumed. The loop around it comes in the two
colours a handler can have (`run_sync`, `run_async`) and, for a flow that runs inside
another generator whose driver must see some of its steps (an httpx auth flow), as
`relay` and `relay_async`. Everything else that runs a flow keeps only its handler.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar, cast

__all__ = ["Effect", "perform", "relay", "relay_async", "run_async", "run_sync"]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
S = TypeVar("S")
Out = TypeVar("Out")


class Effect(Generic[R_co]):
    """Something a flow asks of its runner, answered with an `R_co`.

    Subclasses are frozen attrs classes naming the request and its arguments; the
    runner's handler tells them apart by type, never by a name in a string.
    """

    __slots__ = ()


def perform(effect: Effect[R]) -> Generator[Effect[Any], Any, R]:
    """Yield `effect` and return its answer, typed as the effect says (`yield from` it)."""
    answer: R = yield effect
    return answer


class _Done(Generic[R]):
    __slots__ = ("value",)

    def __init__(self, value: R) -> None:
        self.value = value


def _resume(flow: Generator[S, Any, R], answer: object, failure: Exception | None) -> S | _Done[R]:
    """The one place a flow is resumed: its next step, or its value once it returns."""
    try:
        return flow.send(answer) if failure is None else flow.throw(failure)
    except StopIteration as stop:
        return _Done(stop.value)


def run_sync(flow: Generator[S, Any, R], handle: Callable[[S], object]) -> R:
    """Run `flow` to its end, answering each step with `handle(step)`; return its value."""
    answer: object = None
    failure: Exception | None = None
    while not isinstance(step := _resume(flow, answer, failure), _Done):
        answer, failure = None, None
        try:
            answer = handle(step)
        except Exception as exc:  # noqa: BLE001 - thrown into the flow, which re-raises
            failure = exc
    return step.value


async def run_async(flow: Generator[S, Any, R], handle: Callable[[S], Awaitable[object]]) -> R:
    """`run_sync` with an awaited handler."""
    answer: object = None
    failure: Exception | None = None
    while not isinstance(step := _resume(flow, answer, failure), _Done):
        answer, failure = None, None
        try:
            answer = await handle(step)
        except Exception as exc:  # noqa: BLE001 - thrown into the flow, which re-raises
            failure = exc
    return step.value


def relay(
    flow: Generator[S | Out, Any, None],
    handle: Callable[[S], object],
    outward: type[Out],
) -> Generator[Out, Any, None]:
    """Run `flow` inside a generator: steps of type `outward` are yielded out.

    The answer sent back to this generator goes to the flow; every other step is answered
    by `handle`. (httpx drives an auth flow this way: a token request goes out to the
    client, a sleep or a secret read is the flow's own business.) If this generator is
    closed or interrupted, the flow is closed too, so its `finally` blocks run now.
    """
    answer: object = None
    failure: Exception | None = None
    try:
        while not isinstance(step := _resume(flow, answer, failure), _Done):
            answer, failure = None, None
            if isinstance(step, outward):
                answer = yield step
                continue
            try:
                answer = handle(cast("S", step))
            except Exception as exc:  # noqa: BLE001 - thrown into the flow, which re-raises
                failure = exc
    except BaseException:
        flow.close()
        raise


async def relay_async(
    flow: Generator[S | Out, Any, None],
    handle: Callable[[S], Awaitable[object]],
    outward: type[Out],
) -> AsyncGenerator[Out, Any]:
    """`relay` as an async generator, with an awaited handler."""
    answer: object = None
    failure: Exception | None = None
    try:
        while not isinstance(step := _resume(flow, answer, failure), _Done):
            answer, failure = None, None
            if isinstance(step, outward):
                answer = yield step
                continue
            try:
                answer = await handle(cast("S", step))
            except Exception as exc:  # noqa: BLE001 - thrown into the flow, which re-raises
                failure = exc
    except BaseException:
        flow.close()
        raise
