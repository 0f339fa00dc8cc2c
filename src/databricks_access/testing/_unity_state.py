"""The Unity Catalog of an emulated account: metastores, their securables and grants.

Stored compactly for scale (tens of thousands of tables): names are the keys of nested
dicts, and the details of an object are one small frozen record, shared by every object
seeded alike. Names are stored lower case, as Unity Catalog stores them. JSON is built
only when an object is read.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator

import attrs

__all__ = [
    "Metastore",
    "ObjectDetails",
    "SecurableType",
    "UnityState",
    "parent_securables",
]


class SecurableType(str, enum.Enum):
    """The securable types the emulator grants on (the value is the API's upper-case name)."""

    METASTORE = "METASTORE"
    CATALOG = "CATALOG"
    SCHEMA = "SCHEMA"
    TABLE = "TABLE"
    VOLUME = "VOLUME"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> SecurableType:
        """The type named by `text`, in any case (`catalog`, `TABLE`).

        Raises:
            ValueError: `text` names no supported securable type.
        """
        try:
            return cls(text.upper())
        except ValueError:
            raise ValueError(f"Unsupported securable type {text!r}.") from None


_DEPTH = {
    SecurableType.CATALOG: 1,
    SecurableType.SCHEMA: 2,
    SecurableType.TABLE: 3,
    SecurableType.VOLUME: 3,
}


@attrs.frozen
class Metastore:
    """A Unity Catalog metastore of the emulated account.

    Attributes:
        metastore_id: Its id (a UUID).
        name: Its name.
        region: The cloud region it lives in.
        owner: The principal name owning it.
        created_at: Epoch milliseconds of its creation.
    """

    metastore_id: str
    name: str
    region: str
    owner: str
    created_at: int


@attrs.frozen(slots=True)
class ObjectDetails:
    """What the API shows of a catalog, schema, table or volume beyond its name.

    Attributes:
        owner: The owning principal's name.
        created_at: Epoch milliseconds of its creation.
        comment: Its comment, or None.
        kind: The table type (`MANAGED`, `EXTERNAL`, `VIEW`) or volume type; None for
            catalogs and schemas.
        data_source_format: A table's format (`DELTA`, ...), or None.
    """

    owner: str
    created_at: int
    comment: str | None = None
    kind: str | None = None
    data_source_format: str | None = None


def parent_securables(
    securable_type: SecurableType, full_name: str
) -> list[tuple[SecurableType, str]]:
    """The securables a grant on this one is inherited from, nearest first.

    Metastore grants are not inherited (WIRE.md); a table or volume inherits from its
    schema and catalog, a schema from its catalog.
    """
    parts = full_name.split(".")
    if securable_type in (SecurableType.TABLE, SecurableType.VOLUME):
        return [
            (SecurableType.SCHEMA, f"{parts[0]}.{parts[1]}"),
            (SecurableType.CATALOG, parts[0]),
        ]
    if securable_type is SecurableType.SCHEMA:
        return [(SecurableType.CATALOG, parts[0])]
    return []


GrantKey = tuple[str, SecurableType, str]
"""(metastore id, securable type, full name): what a set of grants is attached to."""


class UnityState:
    """Every metastore and what it holds. Not thread-safe: the caller locks.

    Catalogs belong to a metastore; every workspace assigned to that metastore sees them.
    """

    def __init__(self) -> None:
        self.metastores: dict[str, Metastore] = {}
        # workspace id -> (metastore id, default catalog name or None)
        self.assigned: dict[int, tuple[str, str | None]] = {}
        # metastore id -> catalog -> details
        self.catalogs: dict[str, dict[str, ObjectDetails]] = {}
        # (metastore id, catalog) -> schema -> details
        self.schemas: dict[tuple[str, str], dict[str, ObjectDetails]] = {}
        # (metastore id, catalog, schema) -> table (or volume) -> details
        self.tables: dict[tuple[str, str, str], dict[str, ObjectDetails]] = {}
        self.volumes: dict[tuple[str, str, str], dict[str, ObjectDetails]] = {}
        # grant key -> principal name -> privileges (insertion-ordered, no repeats)
        self.grants: dict[GrantKey, dict[str, tuple[str, ...]]] = {}

    # ---- building --------------------------------------------------------------------

    def add_metastore(self, metastore: Metastore) -> None:
        """Add a metastore; its id must be new."""
        if metastore.metastore_id in self.metastores:
            raise ValueError(f"Metastore {metastore.metastore_id} already exists.")
        self.metastores[metastore.metastore_id] = metastore
        self.catalogs[metastore.metastore_id] = {}

    def metastore(self, metastore_id: str) -> Metastore:
        """The metastore with this id.

        Raises:
            ValueError: There is none.
        """
        metastore = self.metastores.get(metastore_id)
        if metastore is None:
            raise ValueError(f"No metastore has the id {metastore_id!r}.")
        return metastore

    def add_catalog(self, metastore_id: str, name: str, details: ObjectDetails) -> str:
        """Add a catalog; returns its (lower-case) name."""
        self.metastore(metastore_id)
        key = _name(name)
        catalogs = self.catalogs[metastore_id]
        if key in catalogs:
            raise ValueError(f"Catalog '{key}' already exists.")
        catalogs[key] = details
        self.schemas[(metastore_id, key)] = {}
        return key

    def add_schema(self, metastore_id: str, catalog: str, name: str, details: ObjectDetails) -> str:
        """Add a schema to a catalog; returns its full name."""
        catalog = _name(catalog)
        schemas = self.schemas.get((metastore_id, catalog))
        if schemas is None:
            raise ValueError(f"Catalog '{catalog}' does not exist.")
        key = _name(name)
        if key in schemas:
            raise ValueError(f"Schema '{catalog}.{key}' already exists.")
        schemas[key] = details
        self.tables[(metastore_id, catalog, key)] = {}
        self.volumes[(metastore_id, catalog, key)] = {}
        return f"{catalog}.{key}"

    def add_table(
        self,
        metastore_id: str,
        catalog: str,
        schema: str,
        name: str,
        details: ObjectDetails,
        *,
        volume: bool = False,
    ) -> str:
        """Add a table (or a volume) to a schema; returns its full name."""
        catalog, schema = _name(catalog), _name(schema)
        where = self.volumes if volume else self.tables
        objects = where.get((metastore_id, catalog, schema))
        if objects is None:
            raise ValueError(f"Schema '{catalog}.{schema}' does not exist.")
        key = _name(name)
        full_name = f"{catalog}.{schema}.{key}"
        if key in objects:
            raise ValueError(f"{'Volume' if volume else 'Table'} '{full_name}' already exists.")
        objects[key] = details
        return full_name

    # ---- lookups ---------------------------------------------------------------------

    def find(
        self, metastore_id: str, securable_type: SecurableType, full_name: str
    ) -> ObjectDetails | Metastore | None:
        """The securable named, or None (a malformed name names nothing)."""
        if securable_type is SecurableType.METASTORE:
            return self.metastores.get(full_name) if full_name == metastore_id else None
        parts = full_name.lower().split(".")
        if len(parts) != _DEPTH[securable_type] or not all(parts):
            return None
        if securable_type is SecurableType.CATALOG:
            return self.catalogs.get(metastore_id, {}).get(parts[0])
        if securable_type is SecurableType.SCHEMA:
            return self.schemas.get((metastore_id, parts[0]), {}).get(parts[1])
        where = self.volumes if securable_type is SecurableType.VOLUME else self.tables
        return where.get((metastore_id, parts[0], parts[1]), {}).get(parts[2])

    def holders(self, full_name: str, securable_type: SecurableType) -> list[str]:
        """The ids of the metastores holding a securable of this type and name."""
        return [
            metastore_id
            for metastore_id in self.metastores
            if self.find(metastore_id, securable_type, full_name) is not None
        ]

    def set_grants(
        self, key: GrantKey, principal: str, privileges: Iterable[str], *, replace: bool
    ) -> tuple[str, ...]:
        """Grant privileges to a principal (added to what it holds, or replacing it)."""
        grants = self.grants.setdefault(key, {})
        wanted = [p.upper() for p in privileges]
        held = [] if replace else list(grants.get(principal, ()))
        merged = tuple(dict.fromkeys([*held, *wanted]))
        if merged:
            grants[principal] = merged
        else:
            grants.pop(principal, None)
        return merged

    def revoke(self, key: GrantKey, principal: str, privileges: Iterable[str]) -> None:
        """Take privileges away from a principal."""
        grants = self.grants.get(key, {})
        dropped = {p.upper() for p in privileges}
        kept = tuple(p for p in grants.get(principal, ()) if p not in dropped)
        if kept:
            grants[principal] = kept
        else:
            grants.pop(principal, None)

    def grants_on(self, key: GrantKey) -> dict[str, tuple[str, ...]]:
        """The grants on one securable, by principal name (empty if none)."""
        return self.grants.get(key, {})

    def counts(self) -> dict[str, int]:
        """How many metastores, catalogs, schemas, tables, volumes and grants there are."""
        return {
            "metastores": len(self.metastores),
            "catalogs": sum(len(c) for c in self.catalogs.values()),
            "schemas": sum(len(s) for s in self.schemas.values()),
            "tables": sum(len(t) for t in self.tables.values()),
            "volumes": sum(len(v) for v in self.volumes.values()),
            "grants": sum(len(g) for g in self.grants.values()),
        }

    def iter_tables(self, metastore_id: str) -> Iterator[str]:
        """The full names of a metastore's tables (for tests and seeding)."""
        for (holder, catalog, schema), tables in self.tables.items():
            if holder == metastore_id:
                for table in tables:
                    yield f"{catalog}.{schema}.{table}"


def _name(name: str) -> str:
    key = name.lower()
    if not key or "." in key or "/" in key:
        raise ValueError(f"Invalid name {name!r}: it must be non-empty, without '.' or '/'.")
    return key
