"""The switches of the emulator: every server behaviour that WIRE.md leaves uncertain.

Defaults follow what the real account API has been seen doing; each alternative is an
answer the real server plausibly gives, so a client can be tested against all of them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from databricks_access._diagnose.probe_report import ProbeReport

__all__ = ["Behaviour", "EmptyPage", "MemberAnswer", "StaleReads"]


class MemberAnswer(enum.Enum):
    """How a membership PATCH answers an undocumented case.

    Which answers a case accepts is listed on the `Behaviour` field that uses it.
    """

    OK = "ok"
    """The operation succeeds (2xx) and changes nothing."""
    BAD_REQUEST = "bad_request"
    """HTTP 400 in SCIM form (`scimType` `noTarget` on a remove, `invalidValue` on an add)."""
    NOT_FOUND = "not_found"
    """HTTP 404 in SCIM form."""
    CONFLICT = "conflict"
    """HTTP 409 in SCIM form (`scimType` `uniqueness`)."""


class EmptyPage(enum.Enum):
    """The shape of a SCIM list page that holds no resources."""

    NO_RESOURCES_KEY = "no_resources_key"
    """`totalResults`, `startIndex`, `itemsPerPage` and `schemas`, but no `Resources` key."""
    EMPTY_RESOURCES = "empty_resources"
    """The full list response with `"Resources": []`."""
    EMPTY_OBJECT = "empty_object"
    """A bare `{}`, as final pages have been seen."""


def _non_negative(
    _instance: object, attribute: attrs.Attribute[float] | attrs.Attribute[int], value: float
) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


@attrs.frozen(kw_only=True)
class StaleReads:
    """Eventual consistency of membership reads.

    Reads of memberships (a group's `members`, a user's or service principal's `groups`)
    see the account as it was some time ago: a membership write made through the API
    becomes visible only after `lag_requests` further requests to the emulator *and*
    `lag_seconds` on the emulator's clock. With `monotonic=False` every read draws its
    lag at random between zero and those bounds, so one read can be older than the one
    before it, as the real service's replicas are. Writes made with the builders
    (`FakeAccount.add_group`, `FakeAccount.seed`, ...) count as long replicated.

    Example:
        >>> fake = FakeAccount(behaviour=Behaviour(stale_reads=StaleReads(lag_requests=3)))
        >>> fake.behaviour.stale_reads.enabled
        True

    Attributes:
        lag_requests: How many later requests (of any kind) it takes for a write to show.
        lag_seconds: How many seconds on the injected clock it takes for a write to show.
        monotonic: Whether every read sees the full lag (True) or a random lag up to it.
        seed: Seeds the random lag, so a test replays the same sequence of reads.
        history: How many membership changes are remembered; reads can lag at most this
            far behind, which keeps memory bounded.
    """

    lag_requests: int = attrs.field(default=0, validator=_non_negative)
    lag_seconds: float = attrs.field(default=0.0, validator=_non_negative)
    monotonic: bool = True
    seed: int = 0
    history: int = attrs.field(default=10_000, validator=_positive)

    @property
    def enabled(self) -> bool:
        """Whether reads can lag at all."""
        return self.lag_requests > 0 or self.lag_seconds > 0


_Validator = Callable[[object, "attrs.Attribute[MemberAnswer]", MemberAnswer], None]


def _one_of(*allowed: MemberAnswer) -> _Validator:
    def check(
        _instance: object, attribute: attrs.Attribute[MemberAnswer], value: MemberAnswer
    ) -> None:
        if value not in allowed:
            names = ", ".join(a.name for a in allowed)
            raise ValueError(f"{attribute.name} must be one of {names}, got {value!r}")

    return check


def _patch_status(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if value not in (200, 204):
        raise ValueError(f"patch_status must be 200 or 204, got {value!r}")


def _limit_status(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if not 400 <= value <= 499 or value == 429:
        raise ValueError(f"patch_member_limit_status must be a 4xx other than 429, got {value!r}")


def _absolute_path(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith("/") or "?" in value:
        raise ValueError(f"token_path must be an absolute path without a query, got {value!r}")


@attrs.frozen(kw_only=True)
class Behaviour:
    """How the emulated account answers where the real one is uncertain or configurable.

    Frozen: change a running emulator by assigning a new value, built with `attrs.evolve`.

    Example:
        >>> import attrs
        >>> fake = FakeAccount(behaviour=Behaviour(page_cap=10))
        >>> fake.behaviour = attrs.evolve(fake.behaviour, patch_status=204)
        >>> fake.behaviour.page_cap, fake.behaviour.patch_status
        (10, 204)

    Attributes:
        page_cap: The most resources one SCIM 2.0 list page holds, whatever `count` asks.
            The SCIM 2.1 endpoints cap at `min(page_cap, 100)`.
        assignments_page_size: Entries per page of workspace permission assignments.
        token_ttl: Lifetime in seconds of OAuth tokens from the token endpoint.
        group_list_members: Whether a group *list* includes `members` (accounts created
            before 2025-08-22) or never does (the default, like newer accounts).
        projection_keeps_id: Whether `attributes=` always returns `id` (the SCIM rule, the
            default), or returns only what was asked, so `attributes=members` yields a group
            without `id` and `displayName`, as the real server has been seen doing.
        empty_page: The shape of a list page with no resources.
        patch_status: 200 (with body `{}`) or 204 (no body) for a successful PATCH.
        add_existing_member: Adding a member that is already in the group: `OK`,
            `BAD_REQUEST` or `CONFLICT`.
        remove_missing_member: Removing a principal that is not a member: `OK`,
            `BAD_REQUEST` (`noTarget`) or `NOT_FOUND`.
        add_unknown_member: Adding an id that names no principal: `OK` (accepted, and no
            member is added, as the real server was seen doing), `BAD_REQUEST` or
            `NOT_FOUND`.
        remove_missing_value: Removing a role or entitlement the principal does not hold
            (`roles[value eq "x"]` matching nothing): `OK` or `BAD_REQUEST` (`noTarget`).
        non_admin_can_read: Whether a service principal without the account admin role
            may read (it may never write).
        stale_reads: Eventual consistency of membership reads; off by default.
        token_path: Where the OAuth token endpoint lives and what discovery advertises;
            `{account_id}` is replaced. Change it to test that a client follows discovery.
        oidc_endpoint_placeholder: Whether `/.well-known/databricks-config` answers the
            `oidc_endpoint` with a literal `{account_id}` placeholder and no `account_id`,
            as a host shared by many accounts would.
        patch_member_limit: The most members one group PATCH may name (added values plus
            removed members); None for no limit (the default: the real limit is unknown).
        patch_member_limit_status: The status of the SCIM error (`scimType` `tooMany`)
            answering a PATCH over the limit: a 4xx other than 429 (default 400).
        list_total_results: Whether list pages carry `totalResults` (they do by default).
        workspace_token_for_unassigned: Whether a workspace's token endpoint issues a
            token to a service principal not assigned to the workspace (the default:
            its Unity Catalog calls then answer 403 `PERMISSION_DENIED`), or refuses it
            with 400 `invalid_request`. Which one the real endpoint does is unverified.
        uc_page_cap: The server's page length for Unity Catalog lists and grants: the
            most items one page holds, whatever `max_results` asks (0 asks for it).
        effective_permissions_expand_groups: Whether effective permissions filtered by
            `principal=` also count the grants to the groups the principal belongs to
            (reported under the principal's name), or only grants naming it (the
            default). The real server's answer is unverified.
    """

    page_cap: int = attrs.field(default=100, validator=_positive)
    assignments_page_size: int = attrs.field(default=50, validator=_positive)
    token_ttl: int = attrs.field(default=3600, validator=_positive)
    group_list_members: bool = False
    projection_keeps_id: bool = True
    empty_page: EmptyPage = EmptyPage.NO_RESOURCES_KEY
    patch_status: int = attrs.field(default=200, validator=_patch_status)
    add_existing_member: MemberAnswer = attrs.field(
        default=MemberAnswer.OK,
        validator=_one_of(MemberAnswer.OK, MemberAnswer.BAD_REQUEST, MemberAnswer.CONFLICT),
    )
    remove_missing_member: MemberAnswer = attrs.field(
        default=MemberAnswer.OK,
        validator=_one_of(MemberAnswer.OK, MemberAnswer.BAD_REQUEST, MemberAnswer.NOT_FOUND),
    )
    add_unknown_member: MemberAnswer = attrs.field(
        default=MemberAnswer.OK,
        validator=_one_of(MemberAnswer.OK, MemberAnswer.BAD_REQUEST, MemberAnswer.NOT_FOUND),
    )
    remove_missing_value: MemberAnswer = attrs.field(
        default=MemberAnswer.OK, validator=_one_of(MemberAnswer.OK, MemberAnswer.BAD_REQUEST)
    )
    non_admin_can_read: bool = True
    stale_reads: StaleReads = StaleReads()
    token_path: str = attrs.field(
        default="/oidc/accounts/{account_id}/v1/token", validator=_absolute_path
    )
    oidc_endpoint_placeholder: bool = False
    patch_member_limit: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    patch_member_limit_status: int = attrs.field(default=400, validator=_limit_status)
    list_total_results: bool = True
    workspace_token_for_unassigned: bool = True
    uc_page_cap: int = attrs.field(default=1000, validator=_positive)
    effective_permissions_expand_groups: bool = False

    @classmethod
    def from_probe(cls, report: ProbeReport, base: Behaviour | None = None) -> Behaviour:
        """The behaviour a probe report measured on a real account, on top of `base`.

        What the report measured replaces the defaults: the PATCH member limit and the
        error over it, the read lag (as `StaleReads`, at the report's upper bound), the
        answers to adding an existing member and removing an absent one, and whether
        list pages carry `totalResults`. What it did not measure keeps `base`'s value.
        Rate limits are an interceptor, not a behaviour: see `ServerRateLimits.from_probe`.

        Example::

            report = da.ProbeReport.from_json(Path("probe.json").read_text())
            fake = FakeAccount(behaviour=Behaviour.from_probe(report))

        Args:
            report: A `databricks_access.ProbeReport`.
            base: The behaviour to start from; default `Behaviour()`.
        """
        behaviour = base if base is not None else cls()
        limit, limit_status = behaviour.patch_member_limit, behaviour.patch_member_limit_status
        batch = report.batch
        if batch.smallest_refused is not None and batch.largest_accepted is not None:
            limit = batch.largest_accepted
            if batch.refused_status is not None and batch.refused_status != 429:
                limit_status = batch.refused_status
        stale_reads = behaviour.stale_reads
        lag = report.read_lag.played_seconds
        if lag is not None and lag > 0:
            stale_reads = StaleReads(lag_seconds=lag)
        answers = report.member_answers
        total = report.total_results.present
        return attrs.evolve(
            behaviour,
            patch_member_limit=limit,
            patch_member_limit_status=limit_status,
            stale_reads=stale_reads,
            add_existing_member=_answer(
                answers.add_existing, _ADD_EXISTING, behaviour.add_existing_member
            ),
            remove_missing_member=_answer(
                answers.remove_missing, _REMOVE_MISSING, behaviour.remove_missing_member
            ),
            list_total_results=behaviour.list_total_results if total is None else total,
        )


def _answer(status: int | None, table: dict[int, MemberAnswer], kept: MemberAnswer) -> MemberAnswer:
    """The answer a measured status means, or `kept` when it was not measured (or is odd)."""
    if status is None:
        return kept
    return table.get(200 if 200 <= status < 300 else status, kept)


_ADD_EXISTING = {
    200: MemberAnswer.OK,
    400: MemberAnswer.BAD_REQUEST,
    409: MemberAnswer.CONFLICT,
}
_REMOVE_MISSING = {
    200: MemberAnswer.OK,
    400: MemberAnswer.BAD_REQUEST,
    404: MemberAnswer.NOT_FOUND,
}
