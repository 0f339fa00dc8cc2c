"""The account probe: measure what a real account does where the API is undocumented.

`probe(client, principals)` (async: `await aprobe(client, principals)`) runs a short,
scripted, polite sequence of requests on a *sandbox group* it creates under a unique
name (`databricks-access-probe-<random>`) and deletes at the end, also after an error or
an interrupt. It adds and removes only the principals the caller names, and it writes to
no other group. What it measures, each with how and how precisely, goes into a
`ProbeReport`:

- the most members one SCIM PATCH accepts (as far as the named principals reach);
- how long a group read lags a membership write;
- what adding an existing member and removing an absent one answer;
- whether list replies carry `totalResults`;
- whether a `+` sent raw in a filter value is read as a space (when a named user's
  user name holds a `+`);
- whether a 429 / 5xx answer to a PATCH was applied (only when one is met);
- opt-in (`rate_limits=True`): per operation class, how many requests at twice the
  published rate pass before the first 429, and whether that 429 carries `Retry-After`.

The probe is one flow (`probe_script`), run here by either driver; `plan=True` lists the
requests it would send (`probe_plan.ProbePlan`) and sends nothing. Measuring requests are
sent once, never retried by the driver, so every answer is seen as the server gave it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import attrs

from databricks_access._account.api import AccountApi, Principal
from databricks_access._diagnose.probe_plan import ProbePlan, _checked_principals, _Options, _plan
from databricks_access._diagnose.probe_report import ProbeReport
from databricks_access._diagnose.probe_script import (
    _Monotonic,
    _Sandbox,
    _Script,
    _Sleep,
    cleanup_flow,
)
from databricks_access._errors import DatabricksAccessError
from databricks_access._sansio import Effect

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._clock import Clock

__all__ = ["SANDBOX_PREFIX", "aprobe", "probe"]


logger = logging.getLogger("databricks_access")

SANDBOX_PREFIX = "databricks-access-probe-"
"""Every sandbox group's name starts with this."""


def _sync_effects(clock: Clock) -> Callable[[Effect[Any]], object]:
    def handle(step: Effect[Any]) -> object:
        if isinstance(step, _Sleep):
            clock.sleep(step.seconds)
            return None
        if isinstance(step, _Monotonic):
            return clock.monotonic()
        raise TypeError(f"the probe cannot run the step {step!r}")

    return handle


def _async_effects(clock: Clock) -> Callable[[Effect[Any]], Awaitable[object]]:
    async def handle(step: Effect[Any]) -> object:
        if isinstance(step, _Sleep):
            await clock.asleep(step.seconds)
            return None
        if isinstance(step, _Monotonic):
            return clock.monotonic()
        raise TypeError(f"the probe cannot run the step {step!r}")

    return handle


def _sandbox_name() -> str:
    return SANDBOX_PREFIX + secrets.token_hex(4)


def _cleanup_failed(sandbox: _Sandbox, exc: BaseException) -> None:
    logger.warning(
        "the probe could not delete its sandbox group %s: %s; delete it by hand",
        sandbox.name,
        exc,
    )


@overload
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[False] = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport: ...
@overload
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[True],
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbePlan: ...
@overload
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan: ...
def probe(
    client: AccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan:
    """Measure what this account does where the API's behaviour is undocumented.

    It creates a sandbox group (`databricks-access-probe-<random>`), adds and removes
    only `principals` there, and deletes it at the end, also after an error or Ctrl-C.
    No other group is touched. With the defaults and one principal it sends about ten
    requests, at least `spacing` seconds apart; see docs/probe.md for each request.

    Example::

        with da.AccountClient(cfg) as client:
            print(da.probe(client, ["alice@example.com"], plan=True))   # sends nothing
            report = da.probe(client, ["alice@example.com", APP_ID])
        print(report.summary())

    Args:
        client: The account client (its identity needs to create and delete groups).
        principals: At least one user (user name or `User`) or service principal
            (application id or `ServicePrincipal`), or `PrincipalRef`s of them. The more
            are named, the larger the PATCHes the batch measurement can try.
        plan: Return the `ProbePlan` (every request it would send) and send nothing.
        spacing: The least seconds between two requests (0.5 to 60).
        max_lag: How long to keep reading for a write to show (1 to 3600 s).
        rate_limits: Also run the rate-limit measurement: per class (get, list, patch),
            requests at twice the published rate until the first 429, at most
            `rate_limit_seconds` long each.
        rate_limit_seconds: The longest rate-limit run per class (1 to 60 s).
        max_batch: The most principals one PATCH may carry (1 to 10000).

    Returns:
        The `ProbeReport`, or the `ProbePlan` when `plan` is true.

    Raises:
        ConfigError: No principal, a group among them, or a bad option (before any
            request).
        ApiError: The probe could not do its work (no right to create groups, say);
            the sandbox group is deleted all the same.
    """
    options = _Options(
        spacing=spacing,
        max_lag=max_lag,
        rate_limits=rate_limits,
        rate_limit_seconds=rate_limit_seconds,
        max_batch=max_batch,
    )
    named = _checked_principals(principals)
    api: AccountApi = client._api  # the probe runs the client's flows
    sandbox = _Sandbox(_sandbox_name())
    if plan:
        return _plan(api, named, options, sandbox.name)
    driver = client._driver
    script = _Script(
        api,
        options,
        sandbox,
        named,
        host=client.config.host,
        generated_at=client.clock.now(),
    )
    effects = _sync_effects(client.clock)
    before = driver.requests_sent
    try:
        report = driver.run(script.run(), effects)
    finally:
        if not sandbox.deleted and sandbox.creating:
            try:
                driver.run(cleanup_flow(api, sandbox), effects)
            except DatabricksAccessError as exc:
                _cleanup_failed(sandbox, exc)
    return attrs.evolve(report, requests_sent=driver.requests_sent - before)


@overload
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[False] = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport: ...
@overload
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: Literal[True],
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbePlan: ...
@overload
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan: ...
async def aprobe(
    client: AsyncAccountClient,
    principals: Sequence[Principal],
    *,
    plan: bool = False,
    spacing: float = 1.0,
    max_lag: float = 900.0,
    rate_limits: bool = False,
    rate_limit_seconds: float = 5.0,
    max_batch: int = 1000,
) -> ProbeReport | ProbePlan:
    """The async twin of `probe`: `report = await da.aprobe(client, principals)`."""
    options = _Options(
        spacing=spacing,
        max_lag=max_lag,
        rate_limits=rate_limits,
        rate_limit_seconds=rate_limit_seconds,
        max_batch=max_batch,
    )
    named = _checked_principals(principals)
    api: AccountApi = client._api
    sandbox = _Sandbox(_sandbox_name())
    if plan:
        return _plan(api, named, options, sandbox.name)
    driver = client._driver
    script = _Script(
        api,
        options,
        sandbox,
        named,
        host=client.config.host,
        generated_at=client.clock.now(),
    )
    effects = _async_effects(client.clock)
    before = driver.requests_sent
    try:
        report = await driver.run(script.run(), effects)
    finally:
        if not sandbox.deleted and sandbox.creating:
            try:
                await driver.run(cleanup_flow(api, sandbox), effects)
            except DatabricksAccessError as exc:
                _cleanup_failed(sandbox, exc)
    return attrs.evolve(report, requests_sent=driver.requests_sent - before)
