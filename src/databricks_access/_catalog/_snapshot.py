"""What Unity Catalog holds, read once: securables and their direct grants, per metastore.

The walk of one metastore is one flow (`metastore_flow`), run on the driver of one
workspace attached to it. It reads in rounds, each at most `concurrency` requests in
flight: the catalog list; then the metastore's grants, every catalog's grants and every
catalog's schema list; then every schema's grants (and, opt-in, every schema's table
list); then, opt-in, every table's grants. No securable is read twice: each appears in
one listing of one metastore, and metastores shared by several workspaces are walked
once (the reader picks one workspace per metastore).

A failure on one item (a catalog whose schemas cannot be listed, grants that cannot be
read) is recorded in `errors` and the walk goes on.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from databricks_access._account.flows import Flow, Listing, collect, concurrently
from databricks_access._catalog._api import UnityCatalogApi
from databricks_access._catalog._models import (
    CatalogInfo,
    MetastoreAssignment,
    MetastoreSummary,
    PrivilegeAssignment,
    SchemaInfo,
    SecurableType,
    TableInfo,
)
from databricks_access._discovery.discovery import DiscoveryFailure
from databricks_access._errors import DatabricksAccessError
from databricks_access._util.html import render_html

_Info = CatalogInfo | SchemaInfo | TableInfo

__all__ = ["CatalogGrant", "CatalogSnapshot", "Metastore", "Securable", "metastore_flow"]


@attrs.frozen(kw_only=True)
class Securable:
    """A metastore, catalog, schema or table, by its full name.

    Attributes:
        metastore_id: The metastore it belongs to.
        securable_type: What it is.
        full_name: `catalog`, `catalog.schema` or `catalog.schema.table`; the metastore id
            for a metastore.
        owner: Its owner (a name, like a grant's principal), when listed; the answers
            report ownership as the privilege `OWNER`.
    """

    _repr_html_ = render_html

    metastore_id: str
    securable_type: SecurableType
    full_name: str
    owner: str | None = None

    @property
    def parent(self) -> str | None:
        """The full name of the catalog or schema it sits in (None for a catalog, metastore)."""
        if self.securable_type in {SecurableType.SCHEMA, SecurableType.TABLE}:
            return self.full_name.rpartition(".")[0]
        return None


@attrs.frozen(kw_only=True)
class CatalogGrant:
    """The privileges granted directly to one principal (a name) on one securable."""

    _repr_html_ = render_html

    securable: Securable
    principal: str
    privileges: tuple[str, ...]
    principal_id: str | None = None


@attrs.frozen(kw_only=True)
class Metastore:
    """A metastore read, and the workspaces attached to it.

    Attributes:
        metastore_id: Its id.
        name: Its name, from the metastore summary ("" when it could not be read).
        workspace_ids: The workspaces attached to it (of those whose assignment was read).
        read_through: The workspace its catalogs and grants were read through.
    """

    _repr_html_ = render_html

    metastore_id: str
    name: str = ""
    workspace_ids: tuple[int, ...] = ()
    read_through: int | None = None


@attrs.frozen(kw_only=True, repr=False)
class CatalogSnapshot:
    """Every securable read and its direct grants, across the account's metastores.

    Attributes:
        generated_at: When the read started (UTC).
        metastores: The metastores read, each once.
        securables: Every securable read (tables only when asked for).
        grants: Every direct grant read, one per (securable, principal).
        include_tables: Whether tables were read.
        errors: What could not be read (a workspace, a listing, a securable's grants).
    """

    generated_at: dt.datetime
    metastores: tuple[Metastore, ...]
    securables: tuple[Securable, ...]
    grants: tuple[CatalogGrant, ...]
    include_tables: bool = False
    errors: tuple[DiscoveryFailure, ...] = ()

    def __repr__(self) -> str:
        return (
            f"CatalogSnapshot(metastores={len(self.metastores)}, "
            f"securables={len(self.securables)}, grants={len(self.grants)}, "
            f"errors={len(self.errors)})"
        )

    def _repr_html_(self) -> str:
        return render_html(self)


@attrs.frozen(kw_only=True)
class MetastorePart:
    """One metastore's share of a snapshot (what `metastore_flow` returns)."""

    metastore: Metastore
    securables: tuple[Securable, ...]
    grants: tuple[CatalogGrant, ...]
    errors: tuple[DiscoveryFailure, ...]


def _grants(securable: Securable, found: Iterable[PrivilegeAssignment]) -> list[CatalogGrant]:
    merged: dict[tuple[str, str | None], list[str]] = {}
    for item in found:
        privileges = merged.setdefault((item.principal, item.principal_id), [])
        privileges.extend(p for p in item.privileges if p not in privileges)
    return [
        CatalogGrant(
            securable=securable, principal=name, privileges=tuple(privileges), principal_id=pid
        )
        for (name, pid), privileges in merged.items()
        if privileges
    ]


@attrs.frozen
class _Listed:
    """A listing read in a round: what it is (`stage`, `item`) and how to start it."""

    stage: str
    item: str
    listing: Callable[[], Listing[Any]]


# A job of a round: a securable whose grants to read, or a listing.
_Job = Securable | _Listed


# Flows of a round are made and run in batches of this many per allowed request: the
# drivers hold a future (threads) or task per flow of a batch, and a walk of thousands
# of securables should not hold thousands at once. Each batch boundary waits for its
# slowest request, a small cost at this size.
_BATCH_PER_SLOT = 16


def _start(api: UnityCatalogApi, job: _Job) -> Flow[Any]:
    if isinstance(job, Securable):
        return api.grants(job.securable_type, job.full_name)
    return collect(job.listing())


def _round(
    api: UnityCatalogApi, jobs: list[_Job], concurrency: int
) -> Flow[list[tuple[_Job, Any]]]:
    size = max(1, concurrency) * _BATCH_PER_SLOT
    done: list[tuple[_Job, Any]] = []
    for start in range(0, len(jobs), size):
        batch = jobs[start : start + size]
        outcomes = yield from concurrently([_start(api, job) for job in batch], concurrency)
        done += zip(batch, outcomes, strict=True)
    return done


def _securable(metastore_id: str, kind: SecurableType, info: _Info) -> Securable:
    return Securable(
        metastore_id=metastore_id, securable_type=kind, full_name=info.qualified, owner=info.owner
    )


def metastore_flow(
    api: UnityCatalogApi,
    assignment: MetastoreAssignment,
    *,
    workspace_ids: tuple[int, ...],
    include_tables: bool,
    concurrency: int,
) -> Flow[MetastorePart]:
    """Read one metastore (through the workspace this flow runs on), in rounds."""
    metastore_id = assignment.metastore_id
    failures: list[DiscoveryFailure] = []
    grants: list[CatalogGrant] = []

    first: list[Any] = yield from concurrently(
        [api.metastore_summary(), collect(api.catalogs())], concurrency
    )
    summary, listed = first
    name = summary.name if isinstance(summary, MetastoreSummary) else ""
    if isinstance(summary, DatabricksAccessError):
        failures.append(DiscoveryFailure.from_error("metastore_summary", metastore_id, summary))
    if isinstance(listed, DatabricksAccessError):
        failures.append(DiscoveryFailure.from_error("catalogs", metastore_id, listed))
        listed = []
    catalogs: list[CatalogInfo] = [c for c in listed if c.metastore_id in {None, metastore_id}]
    metastore = Securable(
        metastore_id=metastore_id, securable_type=SecurableType.METASTORE, full_name=metastore_id
    )
    level1 = [_securable(metastore_id, SecurableType.CATALOG, c) for c in catalogs]
    securables: list[Securable] = [metastore, *level1]

    def gather(jobs: list[_Job]) -> Flow[list[Any]]:
        """Run a round; grants are kept, failures recorded, listed items returned."""
        listed_items: list[Any] = []
        for job, outcome in (yield from _round(api, jobs, concurrency)):
            if isinstance(outcome, DatabricksAccessError):
                stage, item = (
                    (f"{job.securable_type.value}_grants", job.full_name)
                    if isinstance(job, Securable)
                    else (job.stage, job.item)
                )
                failures.append(DiscoveryFailure.from_error(stage, item, outcome))
            elif isinstance(job, Securable):
                grants.extend(_grants(job, outcome))
            else:
                listed_items += outcome
        return listed_items

    # Round 2: the grants on the metastore and its catalogs, every catalog's schemas.
    schema_infos: list[SchemaInfo] = yield from gather(
        [
            *securables,
            *(
                _Listed("schemas", c.qualified, functools.partial(api.schemas, c.name))
                for c in catalogs
            ),
        ]
    )
    level2 = [_securable(metastore_id, SecurableType.SCHEMA, s) for s in schema_infos]
    securables += level2

    # Round 3: every schema's grants (and, opt-in, its tables).
    jobs: list[_Job] = list(level2)
    if include_tables:
        jobs += [
            _Listed("tables", s.qualified, functools.partial(api.tables, s.catalog_name, s.name))
            for s in schema_infos
        ]
    table_infos: list[TableInfo] = yield from gather(jobs)

    # Round 4 (opt-in): every table's grants.
    if include_tables:
        level3 = [_securable(metastore_id, SecurableType.TABLE, t) for t in table_infos]
        securables += level3
        yield from gather(list(level3))

    return MetastorePart(
        metastore=Metastore(
            metastore_id=metastore_id,
            name=name,
            workspace_ids=workspace_ids,
            read_through=assignment.workspace_id,
        ),
        securables=tuple(securables),
        grants=tuple(grants),
        errors=tuple(failures),
    )
