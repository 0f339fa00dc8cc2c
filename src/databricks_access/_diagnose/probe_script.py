"""The probe's script: one flow that creates the sandbox group and takes each measurement.

It yields requests and pauses only; `probe` runs it on either driver. Measuring requests
are sent once, never retried by the driver, so every answer is seen as the server gave it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import attrs

from databricks_access._account.api import AccountApi, Principal
from databricks_access._account.flows import Call, Flow, OpClass, Reply, request
from databricks_access._account.scim import (
    add_members_body,
    encode_query,
    filter_eq,
    remove_members_body,
)
from databricks_access._account.serde import malformed
from databricks_access._diagnose.probe_plan import (
    _ATTEMPTS,
    _LONGEST_RETRY_AFTER,
    _LONGEST_WAIT,
    _PUBLISHED,
    _batch_sizes,
    _Options,
    _read_waits,
    _user_name,
)
from databricks_access._diagnose.probe_report import (
    BatchLimit,
    MemberAnswers,
    PlusInFilter,
    ProbeReport,
    RateLimitRun,
    ReadLag,
    TotalResults,
    TransientAnswer,
    seconds_text,
)
from databricks_access._errors import ApiError, NotFoundError, RateLimitedError
from databricks_access._sansio import Effect, perform

__all__ = ["cleanup_flow"]


@attrs.frozen
class _Sleep(Effect[None]):
    """Wait this many seconds on the client's clock."""

    seconds: float


@attrs.frozen
class _Monotonic(Effect[float]):
    """The client's monotonic clock."""


@attrs.define
class _Sandbox:
    """What cleanup needs to know, even when the script was cut short."""

    name: str
    creating: bool = False
    group_id: str | None = None
    deleted: bool = False


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _member_values(data: object) -> set[str]:
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list):
        return set()
    return {m["value"] for m in members if isinstance(m, dict) and isinstance(m.get("value"), str)}


class _Script:
    """The probe's requests and measurements, as one flow."""

    def __init__(
        self,
        api: AccountApi,
        options: _Options,
        sandbox: _Sandbox,
        principals: Sequence[Principal],
        *,
        host: str,
        generated_at: dt.datetime,
    ) -> None:
        self.api = api
        self.options = options
        self.sandbox = sandbox
        self.principals = principals
        self.host = host
        self.generated_at = generated_at
        self.transient: list[TransientAnswer] = []
        self._last: float | None = None

    # -- sending -----------------------------------------------------------------------

    def _now(self) -> Flow[float]:
        return (yield from perform(_Monotonic()))

    def _pause(self, seconds: float) -> Flow[None]:
        if seconds > 0:
            yield _Sleep(seconds)

    def _send(self, call: Call) -> Flow[Reply]:
        """Send one call at least `spacing` after the previous one."""
        now = yield from self._now()
        if self._last is not None:
            yield from self._pause(self._last + self.options.spacing - now)
        try:
            reply = yield from request(call)
        except ApiError:
            self._last = yield from self._now()
            raise
        self._last = yield from self._now()
        return reply

    def _status(self, call: Call) -> Flow[tuple[int, Any, ApiError | None]]:
        """(status, JSON body, error) of one call sent once."""
        try:
            reply = yield from self._send(call)
        except ApiError as exc:
            return exc.status_code, None, exc
        return reply.status, reply.json(), None

    @property
    def _group(self) -> str:
        assert self.sandbox.group_id is not None  # noqa: S101 - set by the first step
        return f"{self.api.scim}/Groups/{self.sandbox.group_id}"

    def _patch_call(self, body: dict[str, Any]) -> Call:
        return Call(
            method="PATCH",
            path=self._group,
            body=body,
            op=OpClass.PATCH,
            idempotent=True,
            retries=False,
        )

    def _patch(self, step: str, body: dict[str, Any]) -> Flow[int | None]:
        """The status of a PATCH, sent again after a 429 / 5xx; None if every try was."""
        for attempt in range(_ATTEMPTS):
            status, _, error = yield from self._status(self._patch_call(body))
            if not _transient(status):
                return status
            after = error.retry_after if error is not None else None
            self.transient.append(
                TransientAnswer(step=step, method="PATCH", status=status, retry_after=after)
            )
            wait = after if after is not None else 2 * self.options.spacing * 2**attempt
            yield from self._pause(min(wait, _LONGEST_RETRY_AFTER))
        return None

    def _members(self) -> Flow[set[str]]:
        """The group's members as one read sees them (none while the group reads 404)."""
        try:
            reply = yield from self._send(
                Call(
                    method="GET",
                    path=self._group,
                    query=encode_query([("attributes", "id,members")]),
                    op=OpClass.GET,
                    idempotent=True,
                )
            )
        except NotFoundError:
            return set()  # a read lagging even the group's creation
        return _member_values(reply.json())

    # -- the steps ---------------------------------------------------------------------

    def run(self) -> Flow[ProbeReport]:
        ids: list[str] = []
        for principal in self.principals:
            ref = yield from self.api.resolve_principal(principal)
            if ref.id not in ids:
                ids.append(ref.id)
        ids = ids[: self.options.max_batch]
        yield from self._create()
        read_lag = yield from self._read_lag(ids[0])
        total = yield from self._total_results()
        answers = yield from self._member_answers(ids[0])
        batch = yield from self._batch(ids)
        plus = yield from self._plus()
        runs: list[RateLimitRun] = []
        if self.options.rate_limits:
            runs = yield from self._rate_limits(ids[0])
        yield from self._delete()
        from databricks_access._about import __version__  # noqa: PLC0415

        return ProbeReport(
            library_version=__version__,
            generated_at=self.generated_at,
            host=self.host,
            sandbox_deleted=self.sandbox.deleted,
            principals=len(ids),
            batch=batch,
            read_lag=read_lag,
            member_answers=answers,
            total_results=total,
            plus_in_filter=plus,
            transient=tuple(self.transient),
            rate_limits=tuple(runs),
        )

    def _create(self) -> Flow[None]:
        self.sandbox.creating = True
        reply = yield from self._send(
            Call(
                method="POST",
                path=f"{self.api.scim}/Groups",
                body={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": self.sandbox.name,
                },
                op=OpClass.WRITE,
                idempotent=False,
                retries=False,
            )
        )
        data = reply.json()
        group_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(group_id, str) or not group_id:
            raise malformed("the created group has no id")
        self.sandbox.group_id = group_id

    def _read_lag(self, member: str) -> Flow[ReadLag]:
        options = self.options
        for attempt in range(_ATTEMPTS + 2):
            status, _, error = yield from self._status(self._patch_call(add_members_body([member])))
            if status != 404 or attempt == _ATTEMPTS + 1:
                break
            # The new group itself may not be visible yet: wait, and write again.
            yield from self._pause(options.spacing * 2**attempt)
        written = yield from self._now()
        transient: TransientAnswer | None = None
        if _transient(status):
            after = error.retry_after if error is not None else None
            transient = TransientAnswer(
                step="read_lag", method="PATCH", status=status, retry_after=after
            )
        elif error is not None:
            raise error  # the probe cannot write to its own group: nothing to measure
        stale_for, shown_after, reads = 0.0, None, 0
        for wait in _read_waits(options):
            yield from self._pause(wait)
            members = yield from self._members()
            reads += 1
            elapsed = (yield from self._now()) - written
            if member in members:
                shown_after = elapsed
                break
            stale_for = elapsed
        how = (
            "one PATCH added a named principal to the sandbox group; the group was then "
            f"read (GET, attributes=id,members) after waits of {options.spacing:g} s, "
            f"doubling up to {_LONGEST_WAIT:g} s, until the member showed or "
            f"{options.max_lag:g} s passed"
        )
        if transient is not None:
            self.transient.append(attrs.evolve(transient, applied=True if shown_after else None))
            if shown_after is None:
                # Not visible: never applied, or a lag beyond the bound. Put it in place.
                yield from self._patch("read_lag", add_members_body([member]))
                return ReadLag(
                    bound=options.max_lag,
                    reads=reads,
                    how=f"{how}; the write was answered {status} and never showed, so the "
                    "lag could not be told from a write that was not applied",
                )
        if shown_after is None:
            return ReadLag(
                at_least=stale_for,
                reads=reads,
                bound=options.max_lag,
                how=how,
                uncertainty=f"a lower bound only: still stale after {seconds_text(stale_for)}",
            )
        return ReadLag(
            at_least=stale_for,
            at_most=shown_after,
            reads=reads,
            bound=options.max_lag,
            how=how,
            uncertainty=f"the lag lies between the last stale read ({seconds_text(stale_for)}) "
            f"and the first fresh one ({seconds_text(shown_after)}); reads are not monotonic "
            "on every account, so a single fresh read is no promise",
        )

    def _total_results(self) -> Flow[TotalResults]:
        query = encode_query(
            [
                ("filter", filter_eq("displayName", self.sandbox.name)),
                ("attributes", "id,displayName"),
            ]
        )
        status, data, error = yield from self._status(
            Call(
                method="GET",
                path=f"{self.api.scim}/Groups",
                query=query,
                op=OpClass.LIST,
                idempotent=True,
                retries=False,
            )
        )
        if error is not None:
            return TotalResults(how=f"the group list was answered {status}")
        present = isinstance(data, dict) and "totalResults" in data
        found = len(data.get("Resources") or []) if isinstance(data, dict) else 0
        return TotalResults(
            present=present,
            how=f"one group list filtered by the sandbox group's name ({found} resource(s))",
        )

    def _member_answers(self, member: str) -> Flow[MemberAnswers]:
        existing = yield from self._patch("add_existing", add_members_body([member]))
        removed = yield from self._patch("remove_member", remove_members_body([member]))
        if removed is None or not 200 <= removed < 300:
            return MemberAnswers(
                add_existing=existing,
                how="adding a member already in the sandbox group; removing it answered "
                + ("429/5xx every time" if removed is None else str(removed))
                + ", so removing an absent member was not tried",
            )
        absent = yield from self._patch("remove_absent", remove_members_body([member]))
        return MemberAnswers(
            add_existing=existing,
            remove_missing=absent,
            how="one PATCH adding a principal already in the sandbox group; one removing it; "
            "one removing it again",
        )

    def _try_batch(self, ids: list[str]) -> Flow[tuple[str, int | None]]:
        """("ok" | "refused" | "stopped", status) of adding (then removing) `ids`."""
        status = yield from self._patch("batch", add_members_body(ids))
        if status is None:
            return "stopped", None
        if not 200 <= status < 300:
            return "refused", status
        removed = yield from self._patch("batch", remove_members_body(ids))
        if removed is None or not 200 <= removed < 300:
            return "stuck", removed
        return "ok", status

    def _batch(self, ids: list[str]) -> Flow[BatchLimit]:
        count = len(ids)
        accepted, refused, refused_status = 1, None, None
        how = (
            f"PATCHes adding {', '.join(map(str, [1, *_batch_sizes(count)]))} distinct named "
            "principals at once, each undone by one PATCH removing them"
        )
        stopped = ""
        for size in _batch_sizes(count):
            outcome, status = yield from self._try_batch(ids[:size])
            if outcome == "ok":
                accepted = size
                continue
            if outcome == "refused":
                refused, refused_status = size, status
            else:
                stopped = f"; stopped at {size}: " + (
                    "every attempt was answered 429/5xx"
                    if outcome == "stopped"
                    else f"removing them answered {status}"
                )
                if outcome == "stuck":
                    accepted = size
            break
        if refused is not None:
            how += "; the refused size was then bisected"
            while refused - accepted > 1:
                middle = (accepted + refused) // 2
                outcome, status = yield from self._try_batch(ids[:middle])
                if outcome == "ok":
                    accepted = middle
                elif outcome == "refused":
                    refused, refused_status = middle, status
                else:
                    stopped = f"; bisection stopped at {middle}"
                    break
        if refused is not None and refused == accepted + 1:
            uncertainty = "exact"
        elif refused is not None:
            uncertainty = f"the limit lies from {accepted} to {refused - 1}"
        else:
            uncertainty = (
                f"a lower bound: {count} principal(s) were named, so no larger PATCH "
                "could be tried; name more to measure further"
            )
        return BatchLimit(
            largest_accepted=accepted,
            smallest_refused=refused,
            refused_status=refused_status,
            principals=count,
            how=how + stopped,
            uncertainty=uncertainty,
        )

    def _plus(self) -> Flow[PlusInFilter]:
        names = [n for p in self.principals if "+" in (n := _user_name(p))]
        if not names:
            return PlusInFilter(
                how="no named principal's user name contains '+' (name one such user to measure it)"
            )
        name = names[0]
        text = filter_eq("userName", name)
        found: list[tuple[int, bool]] = []
        for filter_text in (quote(text, safe="+"), quote(text, safe="")):
            status, data, _ = yield from self._status(
                Call(
                    method="GET",
                    path=f"{self.api.scim}/Users",
                    query=f"filter={filter_text}&attributes=id,userName",
                    op=OpClass.LIST,
                    idempotent=True,
                    retries=False,
                )
            )
            resources = (data.get("Resources") or []) if isinstance(data, dict) else []
            hit = any(
                isinstance(r, dict) and str(r.get("userName", "")).casefold() == name.casefold()
                for r in resources
            )
            found.append((status, hit))
        (raw_status, raw_found), (encoded_status, encoded_found) = found
        return PlusInFilter(
            raw_status=raw_status,
            raw_found=raw_found,
            encoded_status=encoded_status,
            encoded_found=encoded_found,
            how="two user lists filtered by a named user name holding '+': once with the "
            "'+' sent as is, once as %2B",
        )

    def _rate_limits(self, member: str) -> Flow[list[RateLimitRun]]:
        runs: list[RateLimitRun] = []
        for op in (OpClass.GET, OpClass.LIST, OpClass.PATCH):
            run = yield from self._rate_run(op, member)
            runs.append(run)
            # Let the bucket fill again before the next class (and before cleanup).
            rest = run.retry_after if run.retry_after is not None else 2.0
            yield from self._pause(min(rest, _LONGEST_RETRY_AFTER) + self.options.spacing)
        return runs

    def _rate_call(self, op: OpClass, member: str, number: int) -> Call:
        # Sent faster than the published figures on purpose: past the client's throttle.
        return attrs.evolve(self._rate_request(op, member, number), throttled=False)

    def _rate_request(self, op: OpClass, member: str, number: int) -> Call:
        if op is OpClass.GET:
            query = encode_query([("attributes", "id,displayName")])
            return Call(
                method="GET", path=self._group, query=query, op=op, idempotent=True, retries=False
            )
        if op is OpClass.LIST:
            query = encode_query(
                [("filter", filter_eq("displayName", self.sandbox.name)), ("attributes", "id")]
            )
            return Call(
                method="GET",
                path=f"{self.api.scim}/Groups",
                query=query,
                op=op,
                idempotent=True,
                retries=False,
            )
        body = add_members_body([member]) if number % 2 == 0 else remove_members_body([member])
        return self._patch_call(body)

    def _rate_run(self, op: OpClass, member: str) -> Flow[RateLimitRun]:
        rate = 2 * _PUBLISHED[op]
        most = math.ceil(rate * self.options.rate_limit_seconds)
        started = yield from self._now()
        accepted, stopped_by = 0, None
        for number in range(most):
            if number:
                yield from self._pause(1.0 / rate)
            call = self._rate_call(op, member, number)
            try:
                yield from request(call)
            except RateLimitedError as exc:
                elapsed = (yield from self._now()) - started
                self._last = started + elapsed
                return RateLimitRun(
                    op=op.value,
                    sent_per_second=rate,
                    accepted=accepted,
                    seconds=elapsed,
                    limited_status=exc.status_code,
                    retry_after=exc.retry_after,
                )
            except ApiError as exc:
                if _transient(exc.status_code):
                    self.transient.append(
                        TransientAnswer(
                            step=f"rate_limits_{op.value}",
                            method=call.method,
                            status=exc.status_code,
                            retry_after=exc.retry_after,
                        )
                    )
                    stopped_by = exc.status_code
                    break
                # An add or remove that found the member as it was: not a limit.
            accepted += 1
        elapsed = (yield from self._now()) - started
        self._last = started + elapsed
        return RateLimitRun(
            op=op.value,
            sent_per_second=rate,
            accepted=accepted,
            seconds=elapsed,
            stopped_by=stopped_by,
        )

    def _delete(self) -> Flow[None]:
        yield from cleanup_flow(self.api, self.sandbox, spacing=self.options.spacing)


def cleanup_flow(api: AccountApi, sandbox: _Sandbox, *, spacing: float = 0.0) -> Flow[None]:
    """Delete the sandbox group; found by its unique name if its id never came back."""
    if sandbox.deleted or not sandbox.creating:
        return
    if spacing:
        yield _Sleep(spacing)
    group_id = sandbox.group_id
    if group_id is None:
        found = yield from api.find_group(sandbox.name)
        if found is None:
            sandbox.deleted = True
            return
        group_id = found.id
    with contextlib.suppress(NotFoundError):
        yield from api.delete_group(group_id)
    sandbox.deleted = True
