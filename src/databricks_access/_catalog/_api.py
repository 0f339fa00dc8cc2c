"""The Unity Catalog read API of one workspace, as flows. No I/O here.

Paths and fields follow the official SDK's `service/catalog.py`:

- `GET /api/2.1/unity-catalog/current-metastore-assignment` -> `MetastoreAssignment`
- `GET /api/2.1/unity-catalog/metastore_summary` -> `MetastoreSummary`
- `GET /api/2.1/unity-catalog/catalogs` -> `catalogs[]`
- `GET /api/2.1/unity-catalog/schemas?catalog_name=` -> `schemas[]`
- `GET /api/2.1/unity-catalog/tables?catalog_name=&schema_name=` -> `tables[]`
- `GET /api/2.1/unity-catalog/permissions/{securable_type}/{full_name}`
  -> `privilege_assignments[]`

Every listing is paged by `max_results`/`page_token` -> `next_page_token`; a page may be
empty while a token follows, so only a missing token ends it (a token seen before does
too: a server that repeats one would otherwise page forever).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import attrs

from databricks_access._account.flows import Call, Flow, OpClass, request
from databricks_access._account.scim import encode_query
from databricks_access._account.serde import malformed, structure
from databricks_access._catalog._models import (
    CatalogInfo,
    MetastoreAssignment,
    MetastoreSummary,
    PrivilegeAssignment,
    SchemaInfo,
    SecurableType,
    TableInfo,
)

__all__ = ["UC_BASE", "UcListing", "UnityCatalogApi"]

T = TypeVar("T")

UC_BASE = "/api/2.1/unity-catalog"
_ASSIGNMENT = f"{UC_BASE}/current-metastore-assignment"
_SUMMARY = f"{UC_BASE}/metastore_summary"


def _without_nulls(data: object) -> object:
    if isinstance(data, Mapping):
        return {k: v for k, v in data.items() if v is not None}
    return data


def _object(data: object, what: str) -> Mapping[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise malformed(f"the {what} reply is not an object")
    return data


@attrs.define
class UcListing(Generic[T]):
    """A Unity Catalog listing in progress: the items are under `key`."""

    path: str
    key: str
    item: type[T]
    params: tuple[tuple[str, str], ...] = ()
    op: OpClass = OpClass.LIST
    page_size: int = 0  # 0: the server's own page length (what the SDK asks for)
    next_token: str | None = None
    done: bool = False
    seen_tokens: set[str] = attrs.field(factory=set)
    pages: int = 0

    def next_page(self) -> Flow[list[T]] | None:
        """The flow of the next page, or None when the listing is complete."""
        return None if self.done else self._page()

    def _page(self) -> Flow[list[T]]:
        params = [*self.params]
        if self.page_size >= 0:
            params.append(("max_results", str(self.page_size)))
        if self.next_token:
            params.append(("page_token", self.next_token))
        reply = yield from request(
            Call(
                method="GET",
                path=self.path,
                query=encode_query(params),
                op=self.op,
                idempotent=True,
            )
        )
        self.pages += 1
        data = _object(reply.json(), self.key)
        raw = data.get(self.key) or []
        if not isinstance(raw, list):
            raise malformed(f"{self.key} is not a list")
        token = data.get("next_page_token")
        if isinstance(token, str) and token and token not in self.seen_tokens:
            self.seen_tokens.add(token)
            self.next_token = token
        else:
            self.done = True
        return [structure(_without_nulls(item), self.item) for item in raw]


class UnityCatalogApi:
    """The paths of the Unity Catalog read API; each method returns a flow or a listing.

    Args:
        page_size: `max_results` sent with every listing: 0 lets the server choose
            (recommended by the API); a negative value sends none (one page of everything).
    """

    def __init__(self, *, page_size: int = 0) -> None:
        self.page_size = page_size

    def metastore_assignment(self) -> Flow[MetastoreAssignment]:
        """The workspace's metastore (404 when the workspace has none)."""
        reply = yield from request(
            Call(method="GET", path=_ASSIGNMENT, op=OpClass.GET, idempotent=True)
        )
        return structure(_without_nulls(_object(reply.json(), "assignment")), MetastoreAssignment)

    def metastore_summary(self) -> Flow[MetastoreSummary]:
        """The workspace's metastore: id, name, cloud, region, owner."""
        reply = yield from request(
            Call(method="GET", path=_SUMMARY, op=OpClass.GET, idempotent=True)
        )
        return structure(
            _without_nulls(_object(reply.json(), "metastore summary")), MetastoreSummary
        )

    def catalogs(self) -> UcListing[CatalogInfo]:
        """The catalogs of the workspace's metastore.

        With `include_unbound` (catalogs bound to other workspaces only, listed where the
        principal may manage bindings) and `include_browse` (catalogs it may only browse),
        so that one workspace's listing covers as much of the metastore as the principal
        may see.
        """
        return UcListing(
            f"{UC_BASE}/catalogs",
            "catalogs",
            CatalogInfo,
            params=(("include_browse", "true"), ("include_unbound", "true")),
            page_size=self.page_size,
        )

    def schemas(self, catalog_name: str) -> UcListing[SchemaInfo]:
        """The schemas of one catalog."""
        return UcListing(
            f"{UC_BASE}/schemas",
            "schemas",
            SchemaInfo,
            params=(("catalog_name", catalog_name), ("include_browse", "true")),
            page_size=self.page_size,
        )

    def tables(self, catalog_name: str, schema_name: str) -> UcListing[TableInfo]:
        """The tables of one schema (columns and properties omitted: only names are used)."""
        return UcListing(
            f"{UC_BASE}/tables",
            "tables",
            TableInfo,
            params=(
                ("catalog_name", catalog_name),
                ("schema_name", schema_name),
                ("include_browse", "true"),
                ("omit_columns", "true"),
                ("omit_properties", "true"),
            ),
            page_size=self.page_size,
        )

    def grants(
        self, securable_type: SecurableType, full_name: str
    ) -> Flow[list[PrivilegeAssignment]]:
        """Every direct grant on one securable (all pages).

        Sent without `max_results`: the whole list, in one page where the server can. A
        walk makes one of these per securable before running them, so it is one lean
        generator rather than a listing object.
        """
        path = permissions_path(securable_type, full_name)
        items: list[PrivilegeAssignment] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            query = encode_query([("page_token", token)]) if token else ""
            reply = yield from request(
                Call(method="GET", path=path, query=query, op=OpClass.GET, idempotent=True)
            )
            data = _object(reply.json(), "permissions")
            raw = data.get("privilege_assignments") or []
            if not isinstance(raw, list):
                raise malformed("privilege_assignments is not a list")
            items += [structure(_without_nulls(item), PrivilegeAssignment) for item in raw]
            token = data.get("next_page_token")
            if not isinstance(token, str) or not token or token in seen:
                return items
            seen.add(token)


def permissions_path(securable_type: SecurableType, full_name: str) -> str:
    """`/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}`, encoded."""
    return f"{UC_BASE}/permissions/{securable_type.value}/{quote(full_name, safe='.')}"
