"""Discovery: who holds what across the account's groups and workspaces.

`discover(client)` (async: `await adiscover(client)`) reads the account into an
`Inventory`: groups with their direct members, users and service principals with their
account roles, workspaces with their permission assignments, and group managers. The
reading is one flow (`discover_flow`), run by either driver, and it sends as few requests
as the API allows:

- lists are projected (`attributes=`) and paged with `totalResults`, asking for the
  largest page the API takes, so no empty page is fetched;
- since group lists no longer carry members (WIRE.md), each group's members come from one
  GET projected to `id,members`;
- those GETs, the rule-set reads and the workspaces' assignment listings run
  concurrently, never more than `concurrency` requests at once, while the user and
  service principal listings page alongside them;
- nothing is read twice.

A failure on one item (a group deleted between the list and its GET, a workspace whose
assignments cannot be read) is recorded in `Inventory.errors` and the discovery goes
on; a failed account-wide listing raises.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from databricks_access._account.access_api import GROUP_MANAGER_ROLE
from databricks_access._account.api import AccountApi
from databricks_access._account.flows import Flow, Listing, collect, concurrently
from databricks_access._account.models import (
    Group,
    MemberRef,
    PermissionAssignment,
    PrincipalKind,
    ServicePrincipal,
    User,
    Workspace,
)
from databricks_access._discovery.inventory import DiscoveryFailure, Inventory
from databricks_access._discovery.progress import Progress
from databricks_access._errors import ConfigError, DatabricksAccessError, NotFoundError

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._catalog.inventory import UnityCatalogArg

__all__ = ["DiscoveryOptions", "adiscover", "discover", "discover_flow"]


T = TypeVar("T")


_GROUP_ATTRIBUTES = ("id", "displayName", "roles")
_USER_ATTRIBUTES = ("id", "userName", "displayName", "active", "roles")
_SP_ATTRIBUTES = ("id", "applicationId", "displayName", "active", "roles")
_MAX_CONCURRENCY = 256
_STAGES = (
    "groups",
    "workspaces",
    "users",
    "service_principals",
    "members",
    "managers",
    "assignments",
)


def _concurrency(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"must be an integer, not {type(value).__name__}", "concurrency")
    if not 1 <= value <= _MAX_CONCURRENCY:
        raise ConfigError(f"must be from 1 to {_MAX_CONCURRENCY}, got {value}", "concurrency")


def _flag(_instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"must be True or False, not {value!r}", attribute.name)


@attrs.frozen(kw_only=True)
class DiscoveryOptions:
    """What `discover` reads, and how many requests it keeps in flight.

    Attributes:
        groups: Read each group's direct members (one GET per group). Groups themselves
            (ids, names, roles) are always listed.
        workspaces: List workspaces and each one's permission assignments.
        managers: Read each group's managers from its rule set (one GET per group).
        concurrency: The most requests in flight at once (1 to 256).
    """

    groups: bool = attrs.field(default=True, validator=_flag)
    workspaces: bool = attrs.field(default=True, validator=_flag)
    managers: bool = attrs.field(default=True, validator=_flag)
    concurrency: int = attrs.field(default=8, validator=_concurrency)


# -- the flow -----------------------------------------------------------------------------


class _Reporter:
    """Calls the progress callback, one call at a time (sub-flows may run in threads)."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress(stage, done, total)

    def tick(self, stage: str, total: int) -> None:
        """One more item of `stage` is finished."""
        if self._progress is not None:
            with self._lock:
                done = self._done[stage] = self._done.get(stage, 0) + 1
                self._progress(stage, done, total)


def _listed(stage: str, listing: Listing[T], report: _Reporter) -> Flow[list[T]]:
    """Every page of a listing, reporting progress after each."""
    items: list[T] = []
    while (page := listing.next_page()) is not None:
        items.extend((yield from page))
        report(stage, len(items), None)
    report(stage, len(items), len(items))
    return items


def _counted(stage: str, total: int, flow: Flow[T], report: _Reporter) -> Flow[T]:
    try:
        return (yield from flow)
    finally:
        report.tick(stage, total)


def _members(
    listing: Listing[MemberRef], shared: dict[MemberRef, MemberRef]
) -> Flow[tuple[MemberRef, ...]]:
    found = yield from collect(listing)
    return tuple(shared.setdefault(m, m) for m in found)


def _managers(flow: Flow[Any]) -> Flow[tuple[str, ...]]:
    rule_set = yield from flow
    return tuple(
        dict.fromkeys(
            principal
            for rule in rule_set.grant_rules
            if rule.role == GROUP_MANAGER_ROLE
            for principal in rule.principals
        )
    )


def _with_kind(member: MemberRef, kinds: Mapping[str, PrincipalKind]) -> MemberRef:
    if member.kind is not None or member.id not in kinds:
        return member
    return attrs.evolve(member, kind=kinds[member.id])


def _roles(principal: User | ServicePrincipal | Group) -> tuple[str, ...]:
    return tuple(dict.fromkeys(role.value for role in principal.roles if role.value))


def _raise_if_failed(outcome: T | DatabricksAccessError) -> T:
    if isinstance(outcome, DatabricksAccessError):
        raise outcome
    return outcome


def discover_flow(
    api: AccountApi,
    options: DiscoveryOptions,
    progress: Progress | None = None,
    *,
    generated_at: dt.datetime,
) -> Flow[Inventory]:
    """The discovery, as a flow: run it with either driver.

    Two rounds, each at most `options.concurrency` requests in flight: first the group
    list (and the workspace list), which the rest depends on; then, together, the user
    and service principal listings, every group's members and rule set, and every
    workspace's assignments.
    """
    report = _Reporter(progress)
    page = api.max_page
    limit = options.concurrency

    first: list[Flow[Any]] = [
        _listed("groups", api.list_groups(attributes=_GROUP_ATTRIBUTES, page_size=page)(), report)
    ]
    if options.workspaces:
        first.append(_listed("workspaces", api.list_workspaces()(), report))
    outcomes = yield from concurrently(first, limit)
    listed_groups = cast("list[Group]", _raise_if_failed(outcomes[0]))
    listed_workspaces = (
        cast("list[Workspace]", _raise_if_failed(outcomes[1])) if options.workspaces else []
    )

    # The long sequential chains (listings, assignment pages) go first, so they start at
    # once and the single GETs fill the remaining slots around them.
    jobs: list[tuple[str, str, Flow[Any]]] = [
        (
            "users",
            "",
            _listed("users", api.list_users(attributes=_USER_ATTRIBUTES, page_size=page)(), report),
        ),
        (
            "service_principals",
            "",
            _listed(
                "service_principals",
                api.list_service_principals(attributes=_SP_ATTRIBUTES, page_size=page)(),
                report,
            ),
        ),
    ]
    n_groups, n_workspaces = len(listed_groups), len(listed_workspaces)
    jobs += [
        (
            "assignments",
            str(w.workspace_id),
            _counted(
                "assignments",
                n_workspaces,
                collect(api.list_assignments(w.workspace_id)()),
                report,
            ),
        )
        for w in listed_workspaces
    ]
    # A principal in many groups is one shared MemberRef, not one per group: most of an
    # inventory's memory is members.
    shared: dict[MemberRef, MemberRef] = {}
    if options.groups:
        jobs += [
            (
                "members",
                g.id,
                _counted("members", n_groups, _members(api.group_members(g.id)(), shared), report),
            )
            for g in listed_groups
        ]
    if options.managers:
        jobs += [
            (
                "managers",
                g.id,
                _counted("managers", n_groups, _managers(api.get_rule_set(g.id)), report),
            )
            for g in listed_groups
        ]
    # Totals are known now: announce them, so that an empty stage finishes too.
    if options.workspaces:
        report("assignments", 0, n_workspaces)
    if options.groups:
        report("members", 0, n_groups)
    if options.managers:
        report("managers", 0, n_groups)
    results = yield from concurrently([flow for _, _, flow in jobs], limit)

    users: list[User] = []
    sps: list[ServicePrincipal] = []
    members: dict[str, tuple[MemberRef, ...]] = {}
    managers: dict[str, tuple[str, ...]] = {}
    assignments: dict[int, tuple[PermissionAssignment, ...]] = {}
    failures: list[DiscoveryFailure] = []
    gone: set[str] = set()
    for (stage, item, _), outcome in zip(jobs, results, strict=True):
        if stage == "users":
            users = _raise_if_failed(outcome)
        elif stage == "service_principals":
            sps = _raise_if_failed(outcome)
        elif isinstance(outcome, DatabricksAccessError):
            failures.append(DiscoveryFailure.from_error(stage, item, outcome))
            if stage == "members" and isinstance(outcome, NotFoundError):
                gone.add(item)  # deleted since it was listed
        elif stage == "members":
            members[item] = outcome
        elif stage == "managers":
            managers[item] = outcome
        else:
            assignments[int(item)] = tuple(outcome)

    return _inventory(
        generated_at=generated_at,
        listed_groups=[g for g in listed_groups if g.id not in gone],
        members=members,
        users=users,
        sps=sps,
        workspaces=listed_workspaces,
        assignments=assignments,
        managers={k: v for k, v in managers.items() if k not in gone},
        failures=failures,
    )


def _inventory(
    *,
    generated_at: dt.datetime,
    listed_groups: list[Group],
    members: Mapping[str, tuple[MemberRef, ...]],
    users: list[User],
    sps: list[ServicePrincipal],
    workspaces: list[Workspace],
    assignments: Mapping[int, tuple[PermissionAssignment, ...]],
    managers: Mapping[str, tuple[str, ...]],
    failures: list[DiscoveryFailure],
) -> Inventory:
    kinds: dict[str, PrincipalKind] = {u.id: PrincipalKind.USER for u in users}
    kinds.update((sp.id, PrincipalKind.SERVICE_PRINCIPAL) for sp in sps)
    kinds.update((g.id, PrincipalKind.GROUP) for g in listed_groups)
    groups: dict[str, Group] = {}
    direct: dict[str, tuple[MemberRef, ...]] = {}
    for group in listed_groups:
        if group.id in members:
            # Members with no `$ref` get their kind from the listings.
            found = members[group.id]
            if any(m.kind is None for m in found):
                found = tuple(_with_kind(m, kinds) for m in found)
            direct[group.id] = found
            group = attrs.evolve(group, members=found)  # noqa: PLW2901
        groups[group.id] = group
    principals: list[User | ServicePrincipal | Group] = [*users, *sps, *listed_groups]
    roles = {p.id: held for p in principals if (held := _roles(p))}
    order = {stage: i for i, stage in enumerate(_STAGES)}
    return Inventory(
        generated_at=generated_at,
        groups=groups,
        members=direct,
        users={u.id: u for u in users},
        service_principals={sp.id: sp for sp in sps},
        workspaces={w.workspace_id: w for w in workspaces},
        assignments={
            w.workspace_id: assignments[w.workspace_id]
            for w in workspaces
            if w.workspace_id in assignments
        },
        managers={g: managers[g] for g in groups if g in managers},
        roles=roles,
        errors=tuple(sorted(failures, key=lambda f: (order.get(f.stage, 99), f.item))),
    )


# -- the public entry points --------------------------------------------------------------


def discover(
    client: AccountClient,
    *,
    groups: bool = True,
    workspaces: bool = True,
    managers: bool = True,
    concurrency: int = 8,
    progress: Progress | None = None,
    unity_catalog: UnityCatalogArg = False,
) -> Inventory:
    """Read who holds what in the account: groups, members, roles, workspaces, managers.

    Requests: the group, user and service principal lists (one per page), one GET per
    group for its members (`groups`), one per group for its managers (`managers`), the
    workspace list and each workspace's assignment pages (`workspaces`); no request is
    sent twice, and at most `concurrency` are in flight at once.

    Example::

        with da.AccountClient(cfg) as client:
            inventory = da.discover(client, progress=da.tqdm_progress())
        inventory.who_can_access(workspace_id)

    Args:
        client: The account client.
        groups: Read each group's direct members.
        workspaces: Read workspaces and their permission assignments.
        managers: Read each group's managers (rule sets).
        concurrency: The most requests in flight at once.
        progress: A `progress(stage, done, total)` callback, such as `tqdm_progress()`.
        unity_catalog: Also read Unity Catalog through the workspaces listed (`True`, or
            a `CatalogReader` with its options): `Inventory.unity_catalog`.

    Raises:
        ConfigError: An option is invalid (before any request).
        ApiError: An account-wide listing failed (per-item failures are in `errors`).
    """
    options = DiscoveryOptions(
        groups=groups, workspaces=workspaces, managers=managers, concurrency=concurrency
    )
    flow = discover_flow(client._api, options, progress, generated_at=client.clock.now())
    inventory = client._driver.run(flow)
    if unity_catalog is False:
        return inventory
    from databricks_access._catalog.inventory import with_catalog  # noqa: PLC0415

    return with_catalog(client, inventory, unity_catalog)


async def adiscover(
    client: AsyncAccountClient,
    *,
    groups: bool = True,
    workspaces: bool = True,
    managers: bool = True,
    concurrency: int = 8,
    progress: Progress | None = None,
    unity_catalog: UnityCatalogArg = False,
) -> Inventory:
    """The async twin of `discover`: `inventory = await da.adiscover(client)`."""
    options = DiscoveryOptions(
        groups=groups, workspaces=workspaces, managers=managers, concurrency=concurrency
    )
    flow = discover_flow(client._api, options, progress, generated_at=client.clock.now())
    inventory = await client._driver.run(flow)
    if unity_catalog is False:
        return inventory
    from databricks_access._catalog.inventory import awith_catalog  # noqa: PLC0415

    return await awith_catalog(client, inventory, unity_catalog)
