"""The catalog side's public models, each with hostile text in every text field.

`tests/security/test_output_escaping.py` renders these with the library's other models:
every public `_repr_html_` must escape user data.
"""

from __future__ import annotations

import datetime as dt

import databricks_access as da

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def catalog_hostile_models(hostile: str, ref: da.PrincipalRef) -> dict[str, object]:
    """Name -> an instance full of `hostile` text."""
    kind = da.SecurableType.CATALOG
    securable = da.Securable(
        metastore_id=hostile, securable_type=kind, full_name=hostile, owner=hostile
    )
    row = da.GrantedPrivilege(
        metastore_id=hostile,
        metastore_name=hostile,
        securable_type=da.SecurableType.SCHEMA,
        securable=hostile,
        privilege=hostile,
        granted_on_type=kind,
        granted_on=hostile,
        granted_to=hostile,
        via=(hostile,),
    )
    unmatched = da.UnmatchedPrincipal(name=hostile, principal_id=hostile, grants=1, example=hostile)
    metastore = da.Metastore(metastore_id=hostile, name=hostile, workspace_ids=(1,), read_through=1)
    failure = da.DiscoveryFailure(stage=hostile, item=hostile, message=hostile)
    common = {
        "privileges": (row,),
        "unmatched": (unmatched,),
        "metastores": (metastore,),
        "errors": (failure,),
        "generated_at": NOW,
    }
    grant = da.CatalogGrant(securable=securable, principal=hostile, privileges=(hostile,))
    return {
        "Securable": securable,
        "CatalogGrant": grant,
        "GrantedPrivilege": row,
        "UnmatchedPrincipal": unmatched,
        "Metastore": metastore,
        "CatalogSnapshot": da.CatalogSnapshot(
            generated_at=NOW,
            metastores=(metastore,),
            securables=(securable,),
            grants=(grant,),
            errors=(failure,),
        ),
        "UnlocksReport": da.UnlocksReport(group_id=hostile, group_name=hostile, **common),  # type: ignore[arg-type]
        "AccessExplanation": da.AccessExplanation(
            principal=ref,
            principal_name=hostile,
            groups=(hostile,),
            **common,  # type: ignore[arg-type]
        ),
        "MetastoreAssignment": da.MetastoreAssignment(
            workspace_id=1, metastore_id=hostile, default_catalog_name=hostile
        ),
        "MetastoreSummary": da.MetastoreSummary(
            metastore_id=hostile, name=hostile, cloud=hostile, region=hostile, owner=hostile
        ),
        "CatalogInfo": da.CatalogInfo(name=hostile, full_name=hostile, owner=hostile),
        "SchemaInfo": da.SchemaInfo(name=hostile, catalog_name=hostile, owner=hostile),
        "TableInfo": da.TableInfo(name=hostile, catalog_name=hostile, schema_name=hostile),
        "PrivilegeAssignment": da.PrivilegeAssignment(principal=hostile, privileges=(hostile,)),
    }
