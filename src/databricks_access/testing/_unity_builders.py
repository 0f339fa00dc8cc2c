"""The emulator's Unity Catalog builders: metastores, catalogs, schemas, tables, grants.

`FakeAccount` takes them from `UnityCatalogBuilders`; they seed and inspect the
workspace side that `_unity` serves (see `FakeAccount.seed_unity_catalog`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from databricks_access.testing._routing import (
    Endpoint,
)
from databricks_access.testing._state import (
    AccountState,
)
from databricks_access.testing._unity_seed import (
    DEFAULT_OWNER,
    CatalogSeedSummary,
    seed_unity_catalog,
)
from databricks_access.testing._unity_state import (
    GrantKey,
    Metastore,
    ObjectDetails,
    SecurableType,
)

__all__ = ["UnityCatalogBuilders"]

_ACCOUNT_ID = re.compile(r"[A-Za-z0-9-]+\Z")
_SCIM_ENDPOINTS = (Endpoint.SCIM_COLLECTION, Endpoint.SCIM_RESOURCE)
_SECRET_ENDPOINTS = (Endpoint.SECRETS, Endpoint.SECRET)
_DIRECT_MEMBER_ENDPOINTS = (Endpoint.DIRECT_MEMBERS, Endpoint.DIRECT_MEMBER)


class UnityCatalogBuilders:
    """Builders and inspection of the account's Unity Catalog metastores (a mixin)."""

    _state: AccountState
    _lock: threading.RLock

    if TYPE_CHECKING:

        def _now_ms(self) -> int: ...

        def _assignments(self, workspace_id: int) -> dict[str, tuple[str, ...]]: ...

    def add_metastore(
        self,
        name: str,
        *,
        region: str = "us-east-1",
        metastore_id: str | None = None,
        owner: str = DEFAULT_OWNER,
    ) -> Metastore:
        """Create a Unity Catalog metastore (assign it to workspaces with `assign_metastore`).

        Example:
            >>> fake = FakeAccount()
            >>> workspace = fake.add_workspace("analytics")
            >>> metastore = fake.add_metastore("primary", region="eu-west-1")
            >>> fake.assign_metastore(workspace, metastore.metastore_id)
            >>> fake.add_catalog(metastore.metastore_id, "Sales")
            'sales'
            >>> fake.add_schema(metastore.metastore_id, "sales", "raw")
            'sales.raw'
            >>> fake.add_table(metastore.metastore_id, "sales", "raw", "orders")
            'sales.raw.orders'
            >>> readers = fake.add_group("sales-readers")
            >>> fake.grant("schema", "sales.raw", "sales-readers", ["USE_SCHEMA", "SELECT"])
            ('USE_SCHEMA', 'SELECT')

        Args:
            name: The metastore's name.
            region: Its cloud region.
            metastore_id: Its id; default a UUID drawn from the emulator's generator.
            owner: The principal name owning it.

        Raises:
            ValueError: The id is taken.
        """
        with self._lock:
            state = self._state
            metastore = Metastore(
                metastore_id if metastore_id is not None else state.new_uuid(),
                name,
                region,
                owner,
                int(state.clock() * 1000),
            )
            state.unity.add_metastore(metastore)
            return metastore

    def assign_metastore(
        self, workspace_id: int, metastore_id: str, *, default_catalog_name: str | None = None
    ) -> None:
        """Assign a workspace to a metastore (replacing any earlier assignment).

        Every workspace assigned to a metastore sees its catalogs.

        Raises:
            ValueError: No such workspace or metastore.
        """
        with self._lock:
            self._assignments(workspace_id)
            self._state.unity.metastore(metastore_id)
            self._state.unity.assigned[workspace_id] = (metastore_id, default_catalog_name)

    def unassign_metastore(self, workspace_id: int) -> None:
        """Take a workspace's metastore away (its Unity Catalog calls then answer 404)."""
        with self._lock:
            self._state.unity.assigned.pop(workspace_id, None)

    def metastore_of(self, workspace_id: int) -> str | None:
        """The id of the metastore a workspace is assigned to, if any."""
        with self._lock:
            assigned = self._state.unity.assigned.get(workspace_id)
            return None if assigned is None else assigned[0]

    def add_catalog(
        self,
        metastore_id: str,
        name: str,
        *,
        owner: str = DEFAULT_OWNER,
        comment: str | None = None,
    ) -> str:
        """Create a catalog in a metastore and return its name (lower case, as UC stores it).

        Raises:
            ValueError: No such metastore, the name is taken or holds `.` or `/`.
        """
        with self._lock:
            details = ObjectDetails(owner, self._now_ms(), comment)
            return self._state.unity.add_catalog(metastore_id, name, details)

    def add_schema(
        self,
        metastore_id: str,
        catalog_name: str,
        name: str,
        *,
        owner: str = DEFAULT_OWNER,
        comment: str | None = None,
    ) -> str:
        """Create a schema in a catalog and return its full name (`catalog.schema`).

        Raises:
            ValueError: No such catalog, or the name is taken or invalid.
        """
        with self._lock:
            details = ObjectDetails(owner, self._now_ms(), comment)
            return self._state.unity.add_schema(metastore_id, catalog_name, name, details)

    def add_table(
        self,
        metastore_id: str,
        catalog_name: str,
        schema_name: str,
        name: str,
        *,
        table_type: str = "MANAGED",
        data_source_format: str | None = "DELTA",
        owner: str = DEFAULT_OWNER,
        comment: str | None = None,
    ) -> str:
        """Create a table in a schema and return its full name (`catalog.schema.table`).

        Raises:
            ValueError: No such schema, or the name is taken or invalid.
        """
        with self._lock:
            details = ObjectDetails(owner, self._now_ms(), comment, table_type, data_source_format)
            return self._state.unity.add_table(
                metastore_id, catalog_name, schema_name, name, details
            )

    def add_volume(
        self,
        metastore_id: str,
        catalog_name: str,
        schema_name: str,
        name: str,
        *,
        volume_type: str = "MANAGED",
        owner: str = DEFAULT_OWNER,
        comment: str | None = None,
    ) -> str:
        """Create a volume in a schema and return its full name (`catalog.schema.volume`)."""
        with self._lock:
            details = ObjectDetails(owner, self._now_ms(), comment, volume_type)
            return self._state.unity.add_table(
                metastore_id, catalog_name, schema_name, name, details, volume=True
            )

    def grant(
        self,
        securable_type: str,
        full_name: str,
        principal: str,
        privileges: Iterable[str],
        *,
        metastore_id: str | None = None,
    ) -> tuple[str, ...]:
        """Grant Unity Catalog privileges on a securable to a principal; returns all it holds.

        Args:
            securable_type: `metastore`, `catalog`, `schema`, `table` or `volume` (any case).
            full_name: The securable's full name (`catalog.schema.table`); a metastore's
                is its id.
            principal: The grantee's name: a group's display name, a user name, a service
                principal's application id, or `account users`.
            privileges: Privileges such as `USE_CATALOG`, `USE_SCHEMA`, `SELECT`, `MODIFY`,
                `ALL_PRIVILEGES`; added to those already granted.
            metastore_id: The metastore holding the securable; needed only when several
                hold one of that name.

        Raises:
            ValueError: The securable or the principal does not exist, or the name is
                ambiguous.
        """
        with self._lock:
            key = self._grant_key(securable_type, full_name, metastore_id)
            name = self._grantee(principal)
            return self._state.unity.set_grants(key, name, privileges, replace=False)

    def revoke(
        self,
        securable_type: str,
        full_name: str,
        principal: str,
        privileges: Iterable[str] | None = None,
        *,
        metastore_id: str | None = None,
    ) -> None:
        """Revoke privileges on a securable from a principal (all of them by default)."""
        with self._lock:
            key = self._grant_key(securable_type, full_name, metastore_id)
            unity = self._state.unity
            held = unity.grants_on(key).get(principal, ())
            unity.revoke(key, principal, held if privileges is None else privileges)

    def grants(
        self, securable_type: str, full_name: str, *, metastore_id: str | None = None
    ) -> Mapping[str, tuple[str, ...]]:
        """The privileges granted directly on a securable, by principal name (a copy)."""
        with self._lock:
            key = self._grant_key(securable_type, full_name, metastore_id)
            return dict(self._state.unity.grants_on(key))

    def catalog_names(self, metastore_id: str) -> tuple[str, ...]:
        """The names of a metastore's catalogs, sorted."""
        with self._lock:
            self._state.unity.metastore(metastore_id)
            return tuple(sorted(self._state.unity.catalogs[metastore_id]))

    def unity_catalog_counts(self) -> Mapping[str, int]:
        """How many metastores, catalogs, schemas, tables, volumes and grants exist."""
        with self._lock:
            return self._state.unity.counts()

    def seed_unity_catalog(
        self,
        *,
        workspaces: int = 3,
        metastores: int = 2,
        catalogs: int = 50,
        schemas_per_catalog: int = 20,
        tables_per_catalog_schema: int = 50,
        groups: int = 10,
        seed: int = 0,
        prefix: str = "",
    ) -> CatalogSeedSummary:
        """Fill Unity Catalog at scale, deterministically.

        Creates `metastores` metastores and `workspaces` new workspaces (workspace `i`
        assigned to metastore `i % metastores`, so with more workspaces than metastores
        some share one), `catalogs` catalogs spread over the metastores, each with
        `schemas_per_catalog` schemas of `tables_per_catalog_schema` tables, and
        `groups` new groups assigned (`USER`) to every new workspace. Each catalog grants
        `USE_CATALOG` to a random group, each schema `USE_SCHEMA` and `SELECT`. The
        defaults (50,000 tables) take well under a second and about 2 MB.

        Example:
            >>> summary = FakeAccount().seed_unity_catalog(
            ...     catalogs=4, schemas_per_catalog=3, tables_per_catalog_schema=5
            ... )
            >>> summary.catalog_count, summary.schemas, summary.tables
            (4, 12, 60)

        Raises:
            ValueError: A count is negative, or a name is taken.
        """
        with self._lock:
            return seed_unity_catalog(
                self._state,
                workspaces=workspaces,
                metastores=metastores,
                catalogs=catalogs,
                schemas_per_catalog=schemas_per_catalog,
                tables_per_catalog_schema=tables_per_catalog_schema,
                groups=groups,
                seed=seed,
                prefix=prefix,
            )

    def _grant_key(self, securable_type: str, full_name: str, metastore_id: str | None) -> GrantKey:
        kind = SecurableType.parse(securable_type)
        unity = self._state.unity
        name = full_name if kind is SecurableType.METASTORE else full_name.lower()
        if metastore_id is None:
            holders = unity.holders(name, kind)
            if len(holders) > 1:
                raise ValueError(
                    f"Several metastores hold {kind} {full_name!r}: pass metastore_id."
                )
            if not holders:
                raise ValueError(f"No {kind} is named {full_name!r}.")
            metastore_id = holders[0]
        elif unity.find(metastore_id, kind, name) is None:
            raise ValueError(f"Metastore {metastore_id!r} holds no {kind} {full_name!r}.")
        return (metastore_id, kind, name)

    def _grantee(self, principal: str) -> str:
        if principal.casefold() == "account users":
            return "account users"
        principal_id = self._state.principal_by_name(principal)
        if principal_id is None:
            raise ValueError(f"No principal is named {principal!r}.")
        return self._state.principal_name(principal_id)
