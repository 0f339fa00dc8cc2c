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
from collections.abc import Iterable
from typing import Any

import attrs

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
from databricks_access._discovery import DiscoveryFailure
from databricks_access._errors import DatabricksAccessError
from databricks_access._flows import Flow, collect, concurrently
from databricks_access._html import render_html

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
    securables: list[Securable] = []
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

    def read_grants(items: list[Securable]) -> list[tuple[str, str, Flow[Any]]]:
        return [
            (
                f"{s.securable_type.value}_grants",
                s.full_name,
                api.grants(s.securable_type, s.full_name),
            )
            for s in items
        ]

    metastore = Securable(
        metastore_id=metastore_id, securable_type=SecurableType.METASTORE, full_name=metastore_id
    )
    level1 = [
        Securable(
            metastore_id=metastore_id,
            securable_type=SecurableType.CATALOG,
            full_name=c.qualified,
            owner=c.owner,
        )
        for c in catalogs
    ]
    securables += [metastore, *level1]
    by_level1 = {(f"{s.securable_type.value}_grants", s.full_name): s for s in securables}
    jobs = read_grants([metastore, *level1]) + [
        ("schemas", c.qualified, collect(api.schemas(c.name))) for c in catalogs
    ]
    schema_infos: list[SchemaInfo] = []
    for (stage, item, _), outcome in zip(
        jobs, (yield from concurrently([f for _, _, f in jobs], concurrency)), strict=True
    ):
        if isinstance(outcome, DatabricksAccessError):
            failures.append(DiscoveryFailure.from_error(stage, item, outcome))
        elif stage == "schemas":
            schema_infos += outcome
        else:
            grants += _grants(by_level1[stage, item], outcome)
    level2 = [
        Securable(
            metastore_id=metastore_id,
            securable_type=SecurableType.SCHEMA,
            full_name=s.qualified,
            owner=s.owner,
        )
        for s in schema_infos
    ]
    securables += level2

    jobs = read_grants(level2)
    if include_tables:
        jobs += [
            ("tables", s.qualified, collect(api.tables(s.catalog_name, s.name)))
            for s in schema_infos
        ]
    table_infos: list[TableInfo] = []
    by_name = {s.full_name: s for s in level2}
    for (stage, item, _), outcome in zip(
        jobs, (yield from concurrently([f for _, _, f in jobs], concurrency)), strict=True
    ):
        if isinstance(outcome, DatabricksAccessError):
            failures.append(DiscoveryFailure.from_error(stage, item, outcome))
        elif stage == "tables":
            table_infos += outcome
        else:
            grants += _grants(by_name[item], outcome)

    if include_tables:
        level3 = [
            Securable(
                metastore_id=metastore_id,
                securable_type=SecurableType.TABLE,
                full_name=t.qualified,
                owner=t.owner,
            )
            for t in table_infos
        ]
        securables += level3
        by_table = {s.full_name: s for s in level3}
        jobs = read_grants(level3)
        for (stage, item, _), outcome in zip(
            jobs, (yield from concurrently([f for _, _, f in jobs], concurrency)), strict=True
        ):
            if isinstance(outcome, DatabricksAccessError):
                failures.append(DiscoveryFailure.from_error(stage, item, outcome))
            else:
                grants += _grants(by_table[item], outcome)

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
