"""The answers: what a group unlocks, and why a principal has access. Frozen, typed.

Each answer is a list of `GrantedPrivilege` rows, one per (securable, privilege, grant):
a privilege granted on a catalog appears on the catalog and, marked `inherited`, on every
schema (and table, when tables were read) below it. Each row names the grant it comes
from and the chain of groups it flows through. Answers render as a notebook table
(`_repr_html_`), flat records, CSV and JSON, and summarise in a line for an approver.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from databricks_access._account.models import PrincipalRef
from databricks_access._catalog._models import SecurableType
from databricks_access._catalog._snapshot import Metastore
from databricks_access._discovery.discovery import DiscoveryFailure
from databricks_access._util.html import render_html, render_table

__all__ = ["AccessExplanation", "GrantedPrivilege", "UnlocksReport", "UnmatchedPrincipal"]

_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_SUMMARY_ITEMS = 6

COLUMNS = (
    "metastore",
    "securable_type",
    "securable",
    "privilege",
    "inherited_from",
    "granted_to",
    "via",
)


@attrs.frozen(kw_only=True)
class GrantedPrivilege:
    """One privilege on one securable, and where it comes from.

    Attributes:
        metastore_id: The metastore.
        metastore_name: Its name ("" when unknown).
        securable_type: What the privilege applies to.
        securable: Its full name (the metastore id for a metastore).
        privilege: `SELECT`, `USE_CATALOG`, ..., or `OWNER` for ownership.
        granted_on_type: What the grant is on (a catalog, for a privilege a schema
            inherits from it).
        granted_on: The full name the grant is on.
        granted_to: The principal named in the grant (a group's display name, a user's
            email, a service principal's application id).
        via: The groups the privilege flows through, from the subject outwards, ending
            with `granted_to` when that is a group other than the subject; empty when the
            grant names the subject itself.
    """

    _repr_html_ = render_html

    metastore_id: str
    metastore_name: str
    securable_type: SecurableType
    securable: str
    privilege: str
    granted_on_type: SecurableType
    granted_on: str
    granted_to: str
    via: tuple[str, ...] = ()

    @property
    def inherited(self) -> bool:
        """Whether the privilege is inherited from a catalog or schema above."""
        return self.granted_on != self.securable or self.granted_on_type is not self.securable_type

    def to_dict(self) -> dict[str, object]:
        """A flat, JSON-ready record (a row for `pandas.DataFrame`)."""
        return {
            "metastore": self.metastore_name or self.metastore_id,
            "metastore_id": self.metastore_id,
            "securable_type": self.securable_type.value,
            "securable": self.securable,
            "privilege": self.privilege,
            "inherited_from": self.granted_on if self.inherited else "",
            "granted_to": self.granted_to,
            "via": " > ".join(self.via),
        }


@attrs.frozen(kw_only=True)
class UnmatchedPrincipal:
    """A principal named in grants that matches no account group, user or service principal.

    Attributes:
        name: The name in the grants ("" for a deleted principal).
        principal_id: The id the server gave with an empty name, if any.
        grants: How many grants name it.
        example: One securable it is granted on (`type full_name`).
    """

    _repr_html_ = render_html

    name: str
    principal_id: str | None = None
    grants: int = 0
    example: str = ""

    def to_dict(self) -> dict[str, object]:
        """A flat, JSON-ready record."""
        return {
            "name": self.name,
            "principal_id": self.principal_id,
            "grants": self.grants,
            "example": self.example,
        }


def _csv_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_CSV_TRIGGERS):
        return "'" + value  # a spreadsheet must not run a name as a formula
    return value


@attrs.frozen(kw_only=True, repr=False)
class _Answer:
    privileges: tuple[GrantedPrivilege, ...]
    unmatched: tuple[UnmatchedPrincipal, ...] = ()
    metastores: tuple[Metastore, ...] = ()
    errors: tuple[DiscoveryFailure, ...] = ()
    include_tables: bool = False
    generated_at: dt.datetime | None = None

    @property
    def direct(self) -> tuple[GrantedPrivilege, ...]:
        """The rows of grants themselves (not inherited by securables below)."""
        return tuple(p for p in self.privileges if not p.inherited)

    def records(self) -> list[dict[str, object]]:
        """One flat record per row (for CSV, tables, `pandas.DataFrame`)."""
        return [p.to_dict() for p in self.privileges]

    def to_csv(self) -> str:
        """The records as CSV (a header row first; formula-like cells get a leading `'`)."""
        buffer = io.StringIO()
        names = ["metastore", "metastore_id", *COLUMNS[1:]]
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_csv_cell(r[n]) for n in names] for r in self.records())
        return buffer.getvalue()

    def _subject(self) -> dict[str, object]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            **self._subject(),
            "generated_at": None if self.generated_at is None else self.generated_at.isoformat(),
            "include_tables": self.include_tables,
            "metastores": [
                {
                    "metastore_id": m.metastore_id,
                    "name": m.name,
                    "workspace_ids": list(m.workspace_ids),
                    "read_through": m.read_through,
                }
                for m in self.metastores
            ],
            "privileges": self.records(),
            "unmatched": [u.to_dict() for u in self.unmatched],
            "errors": [attrs.asdict(e) for e in self.errors],
        }

    def to_json(self, **options: Any) -> str:
        """`to_dict()` as JSON (`json.dumps` options pass through)."""
        return json.dumps(self.to_dict(), **options)

    def summary(self, limit: int = _SUMMARY_ITEMS) -> str:
        """One line: the grants behind the rows, most inclusive first.

        Example: `SELECT, USE_CATALOG on catalog main (+20 schemas below) in metastore prod;
        USE_SCHEMA on schema main.sales`.
        """
        groups: dict[tuple[str, SecurableType, str], list[str]] = {}
        below: dict[tuple[str, SecurableType, str], set[str]] = {}
        for p in self.privileges:
            key = (p.metastore_name or p.metastore_id, p.granted_on_type, p.granted_on)
            if p.inherited:
                below.setdefault(key, set()).add(f"{p.securable_type.value}:{p.securable}")
            elif p.privilege not in groups.setdefault(key, []):
                groups[key].append(p.privilege)
        if not groups:
            return "no Unity Catalog privileges"
        parts = []
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][1].depth, kv[0][0], kv[0][2]))
        for (metastore, kind, name), privileges in ordered[:limit]:
            text = f"{', '.join(sorted(privileges))} on {kind.value} {name}"
            if kind is SecurableType.METASTORE:
                text = f"{', '.join(sorted(privileges))} on metastore {metastore}"
            elif n := len(below.get((metastore, kind, name), ())):
                text += f" (+{n} below)"
            if kind is not SecurableType.METASTORE and len(self.metastores) > 1:
                text += f" in {metastore}"
            parts.append(text)
        if len(ordered) > limit:
            parts.append(f"and {len(ordered) - limit} more grant(s)")
        return "; ".join(parts)

    def _html_caption(self) -> str:
        raise NotImplementedError

    def _repr_html_(self) -> str:
        rows = [{k: r[k] for k in COLUMNS} for r in self.records()]
        out = render_table(rows, columns=COLUMNS, caption=self._html_caption())
        if self.unmatched:
            out += render_table(
                [u.to_dict() for u in self.unmatched],
                caption="Principals in grants that match no account principal",
            )
        if self.errors:
            out += render_table([attrs.asdict(e) for e in self.errors], caption="Could not be read")
        return f'<div class="databricks-access">{out}</div>'


@attrs.frozen(kw_only=True, repr=False)
class UnlocksReport(_Answer):
    """What membership of a group unlocks in Unity Catalog (`unlocks(group)`).

    Grants to the group and to every group that contains it (a member of the group is a
    member of those too), with catalog and schema grants inherited below.

    Example::

        report = reader.unlocks("data-readers")
        print(report.summary())
        pandas.DataFrame(report.records())

    Attributes:
        group_id: The group.
        group_name: Its display name.
        privileges: Every privilege it confers, one row per securable.
        unmatched: Names in the grants read that match no account principal.
        metastores: The metastores read.
        errors: What could not be read.
        include_tables: Whether tables were read.
        generated_at: When the read started.
    """

    group_id: str = ""
    group_name: str = ""

    def _subject(self) -> dict[str, object]:
        return {"group_id": self.group_id, "group_name": self.group_name}

    def _html_caption(self) -> str:
        name = self.group_name or self.group_id
        return f"What group {name} unlocks: {len(self.privileges)} privilege(s)"

    def __repr__(self) -> str:
        return (
            f"UnlocksReport(group={self.group_name or self.group_id!r}, "
            f"privileges={len(self.privileges)}, unmatched={len(self.unmatched)}, "
            f"errors={len(self.errors)})"
        )


@attrs.frozen(kw_only=True, repr=False)
class AccessExplanation(_Answer):
    """Every privilege a principal holds in Unity Catalog, and the group chain behind each.

    Attributes:
        principal: The principal.
        principal_name: Its user name, application id or display name.
        groups: The display names of every group it belongs to (nested ones too).
        privileges: Every privilege it holds, one row per securable, with `via`.
        unmatched: Names in the grants read that match no account principal.
        metastores: The metastores read.
        errors: What could not be read.
        include_tables: Whether tables were read.
        generated_at: When the read started.
    """

    principal: PrincipalRef | None = None
    principal_name: str = ""
    groups: tuple[str, ...] = ()

    def _subject(self) -> dict[str, object]:
        return {
            "principal_id": None if self.principal is None else self.principal.id,
            "principal_kind": None if self.principal is None else self.principal.kind.value,
            "principal_name": self.principal_name,
            "groups": list(self.groups),
        }

    def _html_caption(self) -> str:
        return f"Access of {self.principal_name}: {len(self.privileges)} privilege(s)"

    def __repr__(self) -> str:
        return (
            f"AccessExplanation(principal={self.principal_name!r}, "
            f"privileges={len(self.privileges)}, groups={len(self.groups)}, "
            f"errors={len(self.errors)})"
        )


def sort_rows(rows: Sequence[GrantedPrivilege]) -> tuple[GrantedPrivilege, ...]:
    """Rows in a stable order: metastore, securable (parents first), privilege, grant."""
    return tuple(
        sorted(
            rows,
            key=lambda p: (
                p.metastore_name or p.metastore_id,
                p.securable_type.depth,
                p.securable,
                p.privilege,
                p.granted_on_type.depth,
                p.granted_to,
                p.via,
            ),
        )
    )


def count_by(rows: Sequence[GrantedPrivilege]) -> Mapping[str, int]:
    """How many rows per securable type."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.securable_type.value] = counts.get(row.securable_type.value, 0) + 1
    return counts
