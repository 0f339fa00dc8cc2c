"""What the Unity Catalog API answers, as frozen models (wire field names are ours).

The JSON names of these endpoints are snake_case, like the fields, so the library's one
converter (`databricks_access._account.serde.structure`) builds them with no renames; unknown
fields are ignored and `null` means "missing", as everywhere in the library.
"""

from __future__ import annotations

import enum

import attrs

from databricks_access._util.html import render_html

__all__ = [
    "CatalogInfo",
    "MetastoreAssignment",
    "MetastoreSummary",
    "PrivilegeAssignment",
    "SchemaInfo",
    "SecurableType",
    "TableInfo",
]


class SecurableType(enum.Enum):
    """The securables whose grants are read, as they appear in the permissions path."""

    METASTORE = "metastore"
    CATALOG = "catalog"
    SCHEMA = "schema"
    TABLE = "table"

    @property
    def depth(self) -> int:
        """0 for a metastore, 1 for a catalog, 2 for a schema, 3 for a table."""
        return _DEPTH[self]


_DEPTH = {
    SecurableType.METASTORE: 0,
    SecurableType.CATALOG: 1,
    SecurableType.SCHEMA: 2,
    SecurableType.TABLE: 3,
}


@attrs.frozen(kw_only=True)
class MetastoreAssignment:
    """`GET /api/2.1/unity-catalog/current-metastore-assignment`: a workspace's metastore."""

    _repr_html_ = render_html

    workspace_id: int
    metastore_id: str
    default_catalog_name: str | None = None


@attrs.frozen(kw_only=True)
class MetastoreSummary:
    """`GET /api/2.1/unity-catalog/metastore_summary`: the metastore's name and place."""

    _repr_html_ = render_html

    metastore_id: str
    name: str = ""
    cloud: str | None = None
    region: str | None = None
    owner: str | None = None


@attrs.frozen(kw_only=True)
class CatalogInfo:
    """One entry of `GET /api/2.1/unity-catalog/catalogs` (`catalogs[]`)."""

    _repr_html_ = render_html

    name: str
    full_name: str | None = None
    owner: str | None = None
    metastore_id: str | None = None
    catalog_type: str | None = None

    @property
    def qualified(self) -> str:
        """The name used in the permissions path."""
        return self.full_name or self.name


@attrs.frozen(kw_only=True)
class SchemaInfo:
    """One entry of `GET /api/2.1/unity-catalog/schemas?catalog_name=` (`schemas[]`)."""

    _repr_html_ = render_html

    name: str
    catalog_name: str
    full_name: str | None = None
    owner: str | None = None

    @property
    def qualified(self) -> str:
        """`catalog.schema`, the name used in the permissions path."""
        return self.full_name or f"{self.catalog_name}.{self.name}"


@attrs.frozen(kw_only=True)
class TableInfo:
    """One entry of `GET /api/2.1/unity-catalog/tables?catalog_name=&schema_name=` (`tables[]`)."""

    _repr_html_ = render_html

    name: str
    catalog_name: str
    schema_name: str
    full_name: str | None = None
    owner: str | None = None
    table_type: str | None = None

    @property
    def qualified(self) -> str:
        """`catalog.schema.table`, the name used in the permissions path."""
        return self.full_name or f"{self.catalog_name}.{self.schema_name}.{self.name}"


@attrs.frozen(kw_only=True)
class PrivilegeAssignment:
    """One entry of `privilege_assignments[]` in a permissions reply.

    `principal` is a NAME: a user's email, a group's display name or a service principal's
    application id; it is empty for a deleted principal, which then has `principal_id`.
    """

    _repr_html_ = render_html

    principal: str = ""
    privileges: tuple[str, ...] = ()
    principal_id: str | None = None
