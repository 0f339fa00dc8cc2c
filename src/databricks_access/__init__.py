"""Just-in-time access to Databricks through account group membership.

Typed, sync and async clients for the Databricks account API; idempotent membership
changes; time-bound leases that are revoked even after a crash; an audit trail; and an
account emulator (`databricks_access.testing`) to test it all without a real account.

Every public name is importable from here. Names are loaded on first use, so
`import databricks_access` stays fast and imports neither httpx nor cattrs until a
client is built.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import TYPE_CHECKING, Any

logging.getLogger("databricks_access").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from databricks_access._account.auth import OAuthM2M
    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._account.config import AccountConfig
    from databricks_access._account.models import (
        AssignedPrincipal,
        ComplexValue,
        GrantRule,
        Group,
        ListPage,
        MemberRef,
        Name,
        PermissionAssignment,
        PrincipalKind,
        PrincipalRef,
        RuleSet,
        ServicePrincipal,
        ServicePrincipalSecret,
        User,
        Workspace,
        WorkspacePermission,
    )
    from databricks_access._account.pagers import AsyncPager, Pager
    from databricks_access._account.principals import (
        AsyncServicePrincipals,
        AsyncUsers,
        ServicePrincipals,
        Users,
    )
    from databricks_access._account.retry import RetryPolicy
    from databricks_access._account.scim import filter_eq
    from databricks_access._account.services import (
        AsyncGroupManagers,
        AsyncGroups,
        AsyncWorkspaceAssignments,
        AsyncWorkspaces,
        GroupManagers,
        Groups,
        WorkspaceAssignments,
        Workspaces,
    )
    from databricks_access._account.throttle import RateLimits
    from databricks_access._catalog.entry import aexplain_access, aunlocks, explain_access, unlocks
    from databricks_access._catalog.errors import WorkspaceNotAssignedError
    from databricks_access._catalog.hosts import WorkspaceHosts
    from databricks_access._catalog.models import (
        CatalogInfo,
        MetastoreAssignment,
        MetastoreSummary,
        PrivilegeAssignment,
        SchemaInfo,
        SecurableType,
        TableInfo,
    )
    from databricks_access._catalog.reader import (
        AsyncCatalogReader,
        CatalogOptions,
        CatalogReader,
        CatalogView,
    )
    from databricks_access._catalog.reports import (
        AccessExplanation,
        GrantedPrivilege,
        UnlocksReport,
        UnmatchedPrincipal,
    )
    from databricks_access._catalog.snapshot import (
        CatalogGrant,
        CatalogSnapshot,
        Metastore,
        Securable,
    )
    from databricks_access._catalog.workspace import AsyncWorkspaceClient, WorkspaceClient
    from databricks_access._clock import Clock, ManualClock, SystemClock
    from databricks_access._diagnose.diagnose import (
        Check,
        Diagnosis,
        adiagnose,
        diagnose,
    )
    from databricks_access._diagnose.probe import aprobe, probe
    from databricks_access._diagnose.probe_plan import PlannedProbeRequest, ProbePlan
    from databricks_access._diagnose.probe_report import ProbeReport
    from databricks_access._discovery.discovery import adiscover, discover
    from databricks_access._discovery.inventory import Access, DiscoveryFailure, Inventory
    from databricks_access._discovery.progress import Progress, tqdm_progress
    from databricks_access._durations import parse_duration
    from databricks_access._errors import (
        ApiError,
        ApprovalError,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        ConfigProblem,
        ConflictError,
        DatabricksAccessError,
        LeaseError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitedError,
        RequestTimeoutError,
        SecretStoreError,
        ServerError,
        TransportError,
    )
    from databricks_access._hosts import Cloud
    from databricks_access._integration.approvers import (
        Approvers,
        ApproverSource,
        AsyncIntegration,
        Integration,
    )
    from databricks_access._integration.config import IntegrationConfig
    from databricks_access._integration.directories import (
        AsyncDatabricksDirectory,
        AsyncIdentityDirectory,
        DatabricksDirectory,
        IdentityDirectory,
        StaticDirectory,
    )
    from databricks_access._integration.owners import (
        AsyncOwnerResolver,
        AsyncTagOwnerResolver,
        DisplayNamePatternTagSource,
        MappingTagSource,
        Owner,
        OwnerKind,
        OwnerResolver,
        ResourceOwnerSetting,
        StaticOwnerResolver,
        TagOwnerResolver,
        TagSource,
    )
    from databricks_access._integration.policy import LeasePolicy, OwnerTags
    from databricks_access._integration.request_flows import RequestSweep
    from databricks_access._integration.requests import AccessRequests, AsyncAccessRequests
    from databricks_access._leases.events import CallableSink, EventSink, JsonLinesSink, MemorySink
    from databricks_access._leases.membership import (
        AsyncMembershipManager,
        GrantOutcome,
        GrantResult,
        MembershipBatch,
        MembershipManager,
        PlannedRequest,
        RevokeOutcome,
        RevokeResult,
    )
    from databricks_access._leases.results import (
        DriftItem,
        DriftReport,
        ExtendResult,
        SweepReport,
    )
    from databricks_access._leases.store import AsyncLeaseStore, LeaseStore
    from databricks_access._leases.tracker import AsyncLeaseTracker, LeaseTracker
    from databricks_access._leases.values import (
        AccessRequest,
        AuditEvent,
        EventKind,
        Lease,
        LeaseState,
        Pair,
        RequestState,
    )
    from databricks_access._secrets.aws import AwsSecretsManagerStore
    from databricks_access._secrets.azure import AzureKeyVaultStore
    from databricks_access._secrets.base import (
        ClientCredentials,
        EnvSecretStore,
        FileSecretStore,
        SecretStore,
        StaticSecretStore,
    )
    from databricks_access._secrets.gcp import GcpSecretManagerStore
    from databricks_access._secrets.refs import SecretStoreRef, open_secret_store
    from databricks_access._secrets.vault import HashiCorpVaultStore
    from databricks_access._stores.memory import MemoryLeaseStore
    from databricks_access._stores.postgres.async_store import AsyncPostgresLeaseStore
    from databricks_access._stores.postgres.store import PostgresLeaseStore
    from databricks_access._stores.refs import LeaseStoreRef
    from databricks_access._stores.sqlite.store import SqliteLeaseStore

# Public name -> the private module that defines it.
_EXPORTS: dict[str, str] = {
    # -- Unity Catalog (the _catalog subpackage) --
    "AccessExplanation": "_catalog.reports",
    "AsyncCatalogReader": "_catalog.reader",
    "AsyncWorkspaceClient": "_catalog.workspace",
    "CatalogGrant": "_catalog.snapshot",
    "CatalogInfo": "_catalog.models",
    "CatalogOptions": "_catalog.reader",
    "CatalogReader": "_catalog.reader",
    "CatalogSnapshot": "_catalog.snapshot",
    "CatalogView": "_catalog.reader",
    "GrantedPrivilege": "_catalog.reports",
    "Metastore": "_catalog.snapshot",
    "MetastoreAssignment": "_catalog.models",
    "MetastoreSummary": "_catalog.models",
    "PrivilegeAssignment": "_catalog.models",
    "SchemaInfo": "_catalog.models",
    "Securable": "_catalog.snapshot",
    "SecurableType": "_catalog.models",
    "TableInfo": "_catalog.models",
    "UnlocksReport": "_catalog.reports",
    "UnmatchedPrincipal": "_catalog.reports",
    "WorkspaceClient": "_catalog.workspace",
    "WorkspaceHosts": "_catalog.hosts",
    "WorkspaceNotAssignedError": "_catalog.errors",
    "aexplain_access": "_catalog.entry",
    "aunlocks": "_catalog.entry",
    "explain_access": "_catalog.entry",
    "unlocks": "_catalog.entry",
    # --
    "Access": "_discovery.inventory",
    "AccessRequest": "_leases.values",
    "AccessRequests": "_integration.requests",
    "AccountClient": "_account.client",
    "AccountConfig": "_account.config",
    "ApiError": "_errors",
    "ApprovalError": "_errors",
    "ApproverSource": "_integration.approvers",
    "Approvers": "_integration.approvers",
    "AssignedPrincipal": "_account.models",
    "AsyncAccessRequests": "_integration.requests",
    "AsyncAccountClient": "_account.client",
    "AsyncDatabricksDirectory": "_integration.directories",
    "AsyncGroupManagers": "_account.services",
    "AsyncGroups": "_account.services",
    "AsyncIdentityDirectory": "_integration.directories",
    "AsyncIntegration": "_integration.approvers",
    "AsyncLeaseStore": "_leases.store",
    "AsyncLeaseTracker": "_leases.tracker",
    "AsyncMembershipManager": "_leases.membership",
    "AsyncOwnerResolver": "_integration.owners",
    "AsyncPager": "_account.pagers",
    "AsyncPostgresLeaseStore": "_stores.postgres.async_store",
    "AsyncServicePrincipals": "_account.principals",
    "AsyncTagOwnerResolver": "_integration.owners",
    "AsyncUsers": "_account.principals",
    "AsyncWorkspaceAssignments": "_account.services",
    "AsyncWorkspaces": "_account.services",
    "AuditEvent": "_leases.values",
    "AuthenticationError": "_errors",
    "AwsSecretsManagerStore": "_secrets.aws",
    "AzureKeyVaultStore": "_secrets.azure",
    "BadRequestError": "_errors",
    "CallableSink": "_leases.events",
    "Check": "_diagnose.diagnose",
    "ClientCredentials": "_secrets.base",
    "Clock": "_clock",
    "Cloud": "_hosts",
    "ComplexValue": "_account.models",
    "ConfigError": "_errors",
    "ConfigProblem": "_errors",
    "ConflictError": "_errors",
    "DatabricksAccessError": "_errors",
    "DatabricksDirectory": "_integration.directories",
    "Diagnosis": "_diagnose.diagnose",
    "DiscoveryFailure": "_discovery.inventory",
    "DisplayNamePatternTagSource": "_integration.owners",
    "DriftItem": "_leases.results",
    "DriftReport": "_leases.results",
    "EnvSecretStore": "_secrets.base",
    "EventKind": "_leases.values",
    "EventSink": "_leases.events",
    "ExtendResult": "_leases.results",
    "FileSecretStore": "_secrets.base",
    "GcpSecretManagerStore": "_secrets.gcp",
    "GrantOutcome": "_leases.membership",
    "GrantResult": "_leases.membership",
    "GrantRule": "_account.models",
    "Group": "_account.models",
    "GroupManagers": "_account.services",
    "Groups": "_account.services",
    "HashiCorpVaultStore": "_secrets.vault",
    "IdentityDirectory": "_integration.directories",
    "Integration": "_integration.approvers",
    "IntegrationConfig": "_integration.config",
    "Inventory": "_discovery.inventory",
    "JsonLinesSink": "_leases.events",
    "Lease": "_leases.values",
    "LeaseError": "_errors",
    "LeasePolicy": "_integration.policy",
    "LeaseState": "_leases.values",
    "LeaseStore": "_leases.store",
    "LeaseStoreRef": "_stores.refs",
    "LeaseTracker": "_leases.tracker",
    "ListPage": "_account.models",
    "ManualClock": "_clock",
    "MappingTagSource": "_integration.owners",
    "MemberRef": "_account.models",
    "MembershipBatch": "_leases.membership",
    "MembershipManager": "_leases.membership",
    "MemoryLeaseStore": "_stores.memory",
    "MemorySink": "_leases.events",
    "Name": "_account.models",
    "NotFoundError": "_errors",
    "OAuthM2M": "_account.auth",
    "Owner": "_integration.owners",
    "OwnerKind": "_integration.owners",
    "OwnerResolver": "_integration.owners",
    "OwnerTags": "_integration.policy",
    "Pager": "_account.pagers",
    "Pair": "_leases.values",
    "PermissionAssignment": "_account.models",
    "PermissionDeniedError": "_errors",
    "PlannedProbeRequest": "_diagnose.probe_plan",
    "PlannedRequest": "_leases.membership",
    "PostgresLeaseStore": "_stores.postgres.store",
    "PrincipalKind": "_account.models",
    "PrincipalRef": "_account.models",
    "ProbePlan": "_diagnose.probe_plan",
    "ProbeReport": "_diagnose.probe_report",
    "Progress": "_discovery.progress",
    "RateLimitedError": "_errors",
    "RateLimits": "_account.throttle",
    "RequestState": "_leases.values",
    "RequestSweep": "_integration.request_flows",
    "RequestTimeoutError": "_errors",
    "ResourceOwnerSetting": "_integration.owners",
    "RetryPolicy": "_account.retry",
    "RevokeOutcome": "_leases.membership",
    "RevokeResult": "_leases.membership",
    "RuleSet": "_account.models",
    "SecretStore": "_secrets.base",
    "SecretStoreError": "_errors",
    "SecretStoreRef": "_secrets.refs",
    "ServerError": "_errors",
    "ServicePrincipal": "_account.models",
    "ServicePrincipalSecret": "_account.models",
    "ServicePrincipals": "_account.principals",
    "SqliteLeaseStore": "_stores.sqlite.store",
    "StaticDirectory": "_integration.directories",
    "StaticOwnerResolver": "_integration.owners",
    "StaticSecretStore": "_secrets.base",
    "SweepReport": "_leases.results",
    "SystemClock": "_clock",
    "TagOwnerResolver": "_integration.owners",
    "TagSource": "_integration.owners",
    "TransportError": "_errors",
    "User": "_account.models",
    "Users": "_account.principals",
    "Workspace": "_account.models",
    "WorkspaceAssignments": "_account.services",
    "WorkspacePermission": "_account.models",
    "Workspaces": "_account.services",
    "adiagnose": "_diagnose.diagnose",
    "adiscover": "_discovery.discovery",
    "aprobe": "_diagnose.probe",
    "diagnose": "_diagnose.diagnose",
    "discover": "_discovery.discovery",
    "filter_eq": "_account.scim",
    "open_secret_store": "_secrets.refs",
    "parse_duration": "_durations",
    "probe": "_diagnose.probe",
    "tqdm_progress": "_discovery.progress",
}

__all__ = [
    "Access",
    "AccessExplanation",
    "AccessRequest",
    "AccessRequests",
    "AccountClient",
    "AccountConfig",
    "ApiError",
    "ApprovalError",
    "ApproverSource",
    "Approvers",
    "AssignedPrincipal",
    "AsyncAccessRequests",
    "AsyncAccountClient",
    "AsyncCatalogReader",
    "AsyncDatabricksDirectory",
    "AsyncGroupManagers",
    "AsyncGroups",
    "AsyncIdentityDirectory",
    "AsyncIntegration",
    "AsyncLeaseStore",
    "AsyncLeaseTracker",
    "AsyncMembershipManager",
    "AsyncOwnerResolver",
    "AsyncPager",
    "AsyncPostgresLeaseStore",
    "AsyncServicePrincipals",
    "AsyncTagOwnerResolver",
    "AsyncUsers",
    "AsyncWorkspaceAssignments",
    "AsyncWorkspaceClient",
    "AsyncWorkspaces",
    "AuditEvent",
    "AuthenticationError",
    "AwsSecretsManagerStore",
    "AzureKeyVaultStore",
    "BadRequestError",
    "CallableSink",
    "CatalogGrant",
    "CatalogInfo",
    "CatalogOptions",
    "CatalogReader",
    "CatalogSnapshot",
    "CatalogView",
    "Check",
    "ClientCredentials",
    "Clock",
    "Cloud",
    "ComplexValue",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "DatabricksAccessError",
    "DatabricksDirectory",
    "Diagnosis",
    "DiscoveryFailure",
    "DisplayNamePatternTagSource",
    "DriftItem",
    "DriftReport",
    "EnvSecretStore",
    "EventKind",
    "EventSink",
    "ExtendResult",
    "FileSecretStore",
    "GcpSecretManagerStore",
    "GrantOutcome",
    "GrantResult",
    "GrantRule",
    "GrantedPrivilege",
    "Group",
    "GroupManagers",
    "Groups",
    "HashiCorpVaultStore",
    "IdentityDirectory",
    "Integration",
    "IntegrationConfig",
    "Inventory",
    "JsonLinesSink",
    "Lease",
    "LeaseError",
    "LeasePolicy",
    "LeaseState",
    "LeaseStore",
    "LeaseStoreRef",
    "LeaseTracker",
    "ListPage",
    "ManualClock",
    "MappingTagSource",
    "MemberRef",
    "MembershipBatch",
    "MembershipManager",
    "MemoryLeaseStore",
    "MemorySink",
    "Metastore",
    "MetastoreAssignment",
    "MetastoreSummary",
    "Name",
    "NotFoundError",
    "OAuthM2M",
    "Owner",
    "OwnerKind",
    "OwnerResolver",
    "OwnerTags",
    "Pager",
    "Pair",
    "PermissionAssignment",
    "PermissionDeniedError",
    "PlannedProbeRequest",
    "PlannedRequest",
    "PostgresLeaseStore",
    "PrincipalKind",
    "PrincipalRef",
    "PrivilegeAssignment",
    "ProbePlan",
    "ProbeReport",
    "Progress",
    "RateLimitedError",
    "RateLimits",
    "RequestState",
    "RequestSweep",
    "RequestTimeoutError",
    "ResourceOwnerSetting",
    "RetryPolicy",
    "RevokeOutcome",
    "RevokeResult",
    "RuleSet",
    "SchemaInfo",
    "SecretStore",
    "SecretStoreError",
    "SecretStoreRef",
    "Securable",
    "SecurableType",
    "ServerError",
    "ServicePrincipal",
    "ServicePrincipalSecret",
    "ServicePrincipals",
    "SqliteLeaseStore",
    "StaticDirectory",
    "StaticOwnerResolver",
    "StaticSecretStore",
    "SweepReport",
    "SystemClock",
    "TableInfo",
    "TagOwnerResolver",
    "TagSource",
    "TransportError",
    "UnlocksReport",
    "UnmatchedPrincipal",
    "User",
    "Users",
    "Workspace",
    "WorkspaceAssignments",
    "WorkspaceClient",
    "WorkspaceHosts",
    "WorkspaceNotAssignedError",
    "WorkspacePermission",
    "Workspaces",
    "__version__",
    "adiagnose",
    "adiscover",
    "aexplain_access",
    "aprobe",
    "aunlocks",
    "diagnose",
    "discover",
    "explain_access",
    "filter_eq",
    "open_secret_store",
    "parse_duration",
    "probe",
    "tqdm_progress",
    "unlocks",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from databricks_access._about import __version__  # noqa: PLC0415

        return __version__
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'databricks_access' has no attribute {name!r}")
    module = importlib.import_module(f"databricks_access.{module_name}")
    # Load every public name of that module at once, shown as databricks_access.X.
    for public, owner in _EXPORTS.items():
        if owner == module_name:
            value = getattr(module, public)
            if getattr(value, "__module__", None) == module.__name__:
                with contextlib.suppress(AttributeError, TypeError):
                    value.__module__ = __name__
            globals()[public] = value
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
