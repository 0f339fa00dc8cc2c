"""The sans-IO kernel, and the typed store calls that flows make through it."""

from __future__ import annotations

import asyncio
import inspect
import pathlib
import re

import attrs
import pytest

from databricks_access import LeaseStore
from databricks_access._leases import store as _store
from databricks_access._sansio import Effect, perform, relay, relay_async, run_async, run_sync

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "databricks_access"


@attrs.frozen
class Double(Effect[int]):
    value: int


@attrs.frozen
class Fail(Effect[None]):
    message: str


class RefusedError(Exception):
    pass


def _flow(log: list[str]):
    try:
        x = yield from perform(Double(2))
        log.append(f"doubled {x}")
        try:
            yield from perform(Fail("first"))
        except RefusedError as exc:
            log.append(f"caught {exc}")
        yield from perform(Fail("second"))
        log.append("never")
    finally:
        log.append("cleanup")
    return x  # pragma: no cover - the second failure propagates


def _handle(step: Effect[object]) -> object:
    if isinstance(step, Double):
        return step.value * 2
    if isinstance(step, Fail):
        raise RefusedError(step.message)
    raise TypeError(step)


def test_run_sync_throws_a_handlers_failure_into_the_flow_at_its_yield():
    log: list[str] = []
    with pytest.raises(RefusedError, match="second"):
        run_sync(_flow(log), _handle)
    assert log == ["doubled 4", "caught first", "cleanup"]


def test_run_async_throws_a_handlers_failure_into_the_flow_at_its_yield():
    async def handle(step: Effect[object]) -> object:
        await asyncio.sleep(0)
        return _handle(step)

    log: list[str] = []
    with pytest.raises(RefusedError, match="second"):
        asyncio.run(run_async(_flow(log), handle))
    assert log == ["doubled 4", "caught first", "cleanup"]


def test_run_sync_returns_the_flows_value():
    def flow():
        a = yield from perform(Double(1))
        b = yield from perform(Double(a))
        return a + b

    assert run_sync(flow(), _handle) == 6


def _methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_every_store_method_has_a_typed_wrapper_with_its_parameters():
    methods = _methods(LeaseStore)
    wrappers = {
        name: inspect.signature(getattr(_store, name)) for name in methods if hasattr(_store, name)
    }
    assert set(wrappers) == set(methods)
    for name, method in methods.items():
        params = list(method.parameters.values())[1:]  # without self
        wrapper = wrappers[name]
        assert list(wrapper.parameters.values()) == params, name
        assert wrapper.return_annotation == f"Flow[{method.return_annotation}]", name
        assert "Any" not in str(wrapper), name
    # And nothing else in the module pretends to be one.
    extra = {
        name
        for name, member in vars(_store).items()
        if inspect.isfunction(member)
        and member.__module__ == _store.__name__
        and not name.startswith("_")
        and name != "threaded"
    }
    assert extra == set(methods)


def test_no_effect_is_named_by_a_string():
    banned = [
        re.compile(r"(?<!\w)_store\(\s*[\"']"),  # the old `_store("method", ...)`
        re.compile(r"getattr\(\s*(self\.)?(store|_store)\b"),  # dispatch by method name
        re.compile(r"StoreCall\(\s*[\"']"),
    ]
    found = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(p.search(line) for p in banned)
    ]
    assert found == []


def _relayed(log: list[str]):
    try:
        x = yield from perform(Double(3))
        reply = yield f"out {x}"
        log.append(f"reply {reply}")
        yield "out again"
        log.append("never")
    finally:
        log.append("cleanup")


def test_relay_yields_outward_steps_and_answers_the_others():
    log: list[str] = []
    relayed = relay(_relayed(log), _handle, str)
    assert next(relayed) == "out 6"
    assert relayed.send("hello") == "out again"
    relayed.close()  # closing the relay closes the flow: its cleanup runs now
    assert log == ["reply hello", "cleanup"]


def test_relay_async_yields_outward_steps_and_answers_the_others():
    async def handle(step: Effect[object]) -> object:
        return _handle(step)

    async def main() -> None:
        relayed = relay_async(_relayed(log), handle, str)
        assert await relayed.asend(None) == "out 6"
        assert await relayed.asend("hello") == "out again"
        await relayed.aclose()

    log: list[str] = []
    asyncio.run(main())
    assert log == ["reply hello", "cleanup"]
