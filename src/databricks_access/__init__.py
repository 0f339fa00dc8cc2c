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
    from databricks_access._account.client import (
        AccountClient,
        AsyncAccountClient,
        AsyncGroupManagers,
        AsyncGroups,
        AsyncServicePrincipals,
        AsyncUsers,
        AsyncWorkspaceAssignments,
        AsyncWorkspaces,
        GroupManagers,
        Groups,
        ServicePrincipals,
        Users,
        WorkspaceAssignments,
        Workspaces,
    )
    from databricks_access._account.config import AccountConfig, Cloud
    from databricks_access._account.drivers import AsyncPager, Pager
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
    from databricks_access._account.retry import RetryPolicy
    from databricks_access._account.scim import filter_eq
    from databricks_access._account.throttle import RateLimits
    from databricks_access._clock import Clock, ManualClock, SystemClock
    from databricks_access._diagnose.diagnose import (
        Check,
        Diagnosis,
        adiagnose,
        diagnose,
    )
    from databricks_access._diagnose.probe import (
        PlannedProbeRequest,
        ProbePlan,
        aprobe,
        probe,
    )
    from databricks_access._diagnose.probe_report import ProbeReport
    from databricks_access._discovery.discovery import (
        Access,
        DiscoveryFailure,
        Inventory,
        adiscover,
        discover,
    )
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
    from databricks_access._integration.config import (
        Approvers,
        ApproverSource,
        AsyncIntegration,
        Integration,
        IntegrationConfig,
        LeaseStoreRef,
        SecretStoreRef,
        open_secret_store,
    )
    from databricks_access._integration.owners import (
        AsyncDatabricksDirectory,
        AsyncIdentityDirectory,
        AsyncOwnerResolver,
        AsyncTagOwnerResolver,
        DatabricksDirectory,
        DisplayNamePatternTagSource,
        IdentityDirectory,
        MappingTagSource,
        Owner,
        OwnerKind,
        OwnerResolver,
        ResourceOwnerSetting,
        StaticDirectory,
        StaticOwnerResolver,
        TagOwnerResolver,
        TagSource,
    )
    from databricks_access._integration.policy import LeasePolicy, OwnerTags
    from databricks_access._integration.requests import (
        AccessRequests,
        AsyncAccessRequests,
        RequestSweep,
    )
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
    from databricks_access._secrets.vault import HashiCorpVaultStore
    from databricks_access._stores.memory import MemoryLeaseStore
    from databricks_access._stores.postgres import AsyncPostgresLeaseStore, PostgresLeaseStore
    from databricks_access._stores.sqlite import SqliteLeaseStore

# Public name -> the private module that defines it.
_EXPORTS: dict[str, str] = {
    "Access": "_discovery.discovery",
    "AccessRequest": "_leases.values",
    "AccessRequests": "_integration.requests",
    "AccountClient": "_account.client",
    "AccountConfig": "_account.config",
    "ApiError": "_errors",
    "ApprovalError": "_errors",
    "ApproverSource": "_integration.config",
    "Approvers": "_integration.config",
    "AssignedPrincipal": "_account.models",
    "AsyncAccessRequests": "_integration.requests",
    "AsyncAccountClient": "_account.client",
    "AsyncDatabricksDirectory": "_integration.owners",
    "AsyncGroupManagers": "_account.client",
    "AsyncGroups": "_account.client",
    "AsyncIdentityDirectory": "_integration.owners",
    "AsyncIntegration": "_integration.config",
    "AsyncLeaseStore": "_leases.store",
    "AsyncLeaseTracker": "_leases.tracker",
    "AsyncMembershipManager": "_leases.membership",
    "AsyncOwnerResolver": "_integration.owners",
    "AsyncPager": "_account.drivers",
    "AsyncPostgresLeaseStore": "_stores.postgres",
    "AsyncServicePrincipals": "_account.client",
    "AsyncTagOwnerResolver": "_integration.owners",
    "AsyncUsers": "_account.client",
    "AsyncWorkspaceAssignments": "_account.client",
    "AsyncWorkspaces": "_account.client",
    "AuditEvent": "_leases.values",
    "AuthenticationError": "_errors",
    "AwsSecretsManagerStore": "_secrets.aws",
    "AzureKeyVaultStore": "_secrets.azure",
    "BadRequestError": "_errors",
    "CallableSink": "_leases.events",
    "Check": "_diagnose.diagnose",
    "ClientCredentials": "_secrets.base",
    "Clock": "_clock",
    "Cloud": "_account.config",
    "ComplexValue": "_account.models",
    "ConfigError": "_errors",
    "ConfigProblem": "_errors",
    "ConflictError": "_errors",
    "DatabricksAccessError": "_errors",
    "DatabricksDirectory": "_integration.owners",
    "Diagnosis": "_diagnose.diagnose",
    "DiscoveryFailure": "_discovery.discovery",
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
    "GroupManagers": "_account.client",
    "Groups": "_account.client",
    "HashiCorpVaultStore": "_secrets.vault",
    "IdentityDirectory": "_integration.owners",
    "Integration": "_integration.config",
    "IntegrationConfig": "_integration.config",
    "Inventory": "_discovery.discovery",
    "JsonLinesSink": "_leases.events",
    "Lease": "_leases.values",
    "LeaseError": "_errors",
    "LeasePolicy": "_integration.policy",
    "LeaseState": "_leases.values",
    "LeaseStore": "_leases.store",
    "LeaseStoreRef": "_integration.config",
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
    "Pager": "_account.drivers",
    "Pair": "_leases.values",
    "PermissionAssignment": "_account.models",
    "PermissionDeniedError": "_errors",
    "PlannedProbeRequest": "_diagnose.probe",
    "PlannedRequest": "_leases.membership",
    "PostgresLeaseStore": "_stores.postgres",
    "PrincipalKind": "_account.models",
    "PrincipalRef": "_account.models",
    "ProbePlan": "_diagnose.probe",
    "ProbeReport": "_diagnose.probe_report",
    "Progress": "_discovery.progress",
    "RateLimitedError": "_errors",
    "RateLimits": "_account.throttle",
    "RequestState": "_leases.values",
    "RequestSweep": "_integration.requests",
    "RequestTimeoutError": "_errors",
    "ResourceOwnerSetting": "_integration.owners",
    "RetryPolicy": "_account.retry",
    "RevokeOutcome": "_leases.membership",
    "RevokeResult": "_leases.membership",
    "RuleSet": "_account.models",
    "SecretStore": "_secrets.base",
    "SecretStoreError": "_errors",
    "SecretStoreRef": "_integration.config",
    "ServerError": "_errors",
    "ServicePrincipal": "_account.models",
    "ServicePrincipalSecret": "_account.models",
    "ServicePrincipals": "_account.client",
    "SqliteLeaseStore": "_stores.sqlite",
    "StaticDirectory": "_integration.owners",
    "StaticOwnerResolver": "_integration.owners",
    "StaticSecretStore": "_secrets.base",
    "SweepReport": "_leases.results",
    "SystemClock": "_clock",
    "TagOwnerResolver": "_integration.owners",
    "TagSource": "_integration.owners",
    "TransportError": "_errors",
    "User": "_account.models",
    "Users": "_account.client",
    "Workspace": "_account.models",
    "WorkspaceAssignments": "_account.client",
    "WorkspacePermission": "_account.models",
    "Workspaces": "_account.client",
    "adiagnose": "_diagnose.diagnose",
    "adiscover": "_discovery.discovery",
    "aprobe": "_diagnose.probe",
    "diagnose": "_diagnose.diagnose",
    "discover": "_discovery.discovery",
    "filter_eq": "_account.scim",
    "open_secret_store": "_integration.config",
    "parse_duration": "_durations",
    "probe": "_diagnose.probe",
    "tqdm_progress": "_discovery.progress",
}

__all__ = [
    "Access",
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
    "AsyncWorkspaces",
    "AuditEvent",
    "AuthenticationError",
    "AwsSecretsManagerStore",
    "AzureKeyVaultStore",
    "BadRequestError",
    "CallableSink",
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
    "SecretStore",
    "SecretStoreError",
    "SecretStoreRef",
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
    "TagOwnerResolver",
    "TagSource",
    "TransportError",
    "User",
    "Users",
    "Workspace",
    "WorkspaceAssignments",
    "WorkspacePermission",
    "Workspaces",
    "__version__",
    "adiagnose",
    "adiscover",
    "aprobe",
    "diagnose",
    "discover",
    "filter_eq",
    "open_secret_store",
    "parse_duration",
    "probe",
    "tqdm_progress",
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
