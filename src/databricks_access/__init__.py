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
    from databricks_access._auth import OAuthM2M
    from databricks_access._aws_secrets import AwsSecretsManagerStore
    from databricks_access._azure_secrets import AzureKeyVaultStore
    from databricks_access._client import AccountClient, AsyncAccountClient
    from databricks_access._clock import Clock, ManualClock, SystemClock
    from databricks_access._config import AccountConfig, Cloud
    from databricks_access._diagnose import (
        Check,
        Diagnosis,
        adiagnose,
        diagnose,
    )
    from databricks_access._discovery import (
        Access,
        DiscoveryFailure,
        Inventory,
        adiscover,
        discover,
    )
    from databricks_access._drivers import AsyncPager, Pager
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
    from databricks_access._events import CallableSink, EventSink, JsonLinesSink, MemorySink
    from databricks_access._gcp_secrets import GcpSecretManagerStore
    from databricks_access._integration import (
        Approvers,
        ApproverSource,
        AsyncIntegration,
        Integration,
        IntegrationConfig,
        LeaseStoreRef,
        SecretStoreRef,
        open_secret_store,
    )
    from databricks_access._lease import (
        AccessRequest,
        AuditEvent,
        EventKind,
        Lease,
        LeaseState,
        Pair,
        RequestState,
    )
    from databricks_access._membership import (
        AsyncMembershipManager,
        GrantOutcome,
        GrantResult,
        MembershipBatch,
        MembershipManager,
        PlannedRequest,
        RevokeOutcome,
        RevokeResult,
    )
    from databricks_access._memory_store import MemoryLeaseStore
    from databricks_access._models import (
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
        User,
        Workspace,
    )
    from databricks_access._owners import (
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
    from databricks_access._postgres_store import AsyncPostgresLeaseStore, PostgresLeaseStore
    from databricks_access._progress import Progress, tqdm_progress
    from databricks_access._requests import AccessRequests, AsyncAccessRequests, RequestSweep
    from databricks_access._retry import RetryPolicy
    from databricks_access._scim import filter_eq
    from databricks_access._secrets import (
        ClientCredentials,
        EnvSecretStore,
        FileSecretStore,
        SecretStore,
        StaticSecretStore,
    )
    from databricks_access._sqlite_store import SqliteLeaseStore
    from databricks_access._store import AsyncLeaseStore, LeaseStore
    from databricks_access._throttle import RateLimits
    from databricks_access._tracker import (
        AsyncLeaseTracker,
        DriftItem,
        DriftReport,
        ExtendResult,
        LeaseTracker,
        SweepReport,
    )
    from databricks_access._vault_secrets import HashiCorpVaultStore

# Public name -> the private module that defines it.
_EXPORTS: dict[str, str] = {
    "Access": "_discovery",
    "AccessRequest": "_lease",
    "AccessRequests": "_requests",
    "AccountClient": "_client",
    "AccountConfig": "_config",
    "ApiError": "_errors",
    "ApprovalError": "_errors",
    "ApproverSource": "_integration",
    "Approvers": "_integration",
    "AssignedPrincipal": "_models",
    "AsyncAccessRequests": "_requests",
    "AsyncAccountClient": "_client",
    "AsyncDatabricksDirectory": "_owners",
    "AsyncIdentityDirectory": "_owners",
    "AsyncIntegration": "_integration",
    "AsyncLeaseStore": "_store",
    "AsyncLeaseTracker": "_tracker",
    "AsyncMembershipManager": "_membership",
    "AsyncOwnerResolver": "_owners",
    "AsyncPager": "_drivers",
    "AsyncPostgresLeaseStore": "_postgres_store",
    "AsyncTagOwnerResolver": "_owners",
    "AuditEvent": "_lease",
    "AuthenticationError": "_errors",
    "AwsSecretsManagerStore": "_aws_secrets",
    "AzureKeyVaultStore": "_azure_secrets",
    "BadRequestError": "_errors",
    "CallableSink": "_events",
    "Check": "_diagnose",
    "ClientCredentials": "_secrets",
    "Clock": "_clock",
    "Cloud": "_config",
    "ComplexValue": "_models",
    "ConfigError": "_errors",
    "ConfigProblem": "_errors",
    "ConflictError": "_errors",
    "DatabricksAccessError": "_errors",
    "DatabricksDirectory": "_owners",
    "Diagnosis": "_diagnose",
    "DiscoveryFailure": "_discovery",
    "DisplayNamePatternTagSource": "_owners",
    "DriftItem": "_tracker",
    "DriftReport": "_tracker",
    "EnvSecretStore": "_secrets",
    "EventKind": "_lease",
    "EventSink": "_events",
    "ExtendResult": "_tracker",
    "FileSecretStore": "_secrets",
    "GcpSecretManagerStore": "_gcp_secrets",
    "GrantOutcome": "_membership",
    "GrantResult": "_membership",
    "GrantRule": "_models",
    "Group": "_models",
    "HashiCorpVaultStore": "_vault_secrets",
    "IdentityDirectory": "_owners",
    "Integration": "_integration",
    "IntegrationConfig": "_integration",
    "Inventory": "_discovery",
    "JsonLinesSink": "_events",
    "Lease": "_lease",
    "LeaseError": "_errors",
    "LeaseState": "_lease",
    "LeaseStore": "_store",
    "LeaseStoreRef": "_integration",
    "LeaseTracker": "_tracker",
    "ListPage": "_models",
    "ManualClock": "_clock",
    "MappingTagSource": "_owners",
    "MemberRef": "_models",
    "MembershipBatch": "_membership",
    "MembershipManager": "_membership",
    "MemoryLeaseStore": "_memory_store",
    "MemorySink": "_events",
    "Name": "_models",
    "NotFoundError": "_errors",
    "OAuthM2M": "_auth",
    "Owner": "_owners",
    "OwnerKind": "_owners",
    "OwnerResolver": "_owners",
    "Pager": "_drivers",
    "Pair": "_lease",
    "PermissionAssignment": "_models",
    "PermissionDeniedError": "_errors",
    "PlannedRequest": "_membership",
    "PostgresLeaseStore": "_postgres_store",
    "PrincipalKind": "_models",
    "PrincipalRef": "_models",
    "Progress": "_progress",
    "RateLimitedError": "_errors",
    "RateLimits": "_throttle",
    "RequestState": "_lease",
    "RequestSweep": "_requests",
    "RequestTimeoutError": "_errors",
    "ResourceOwnerSetting": "_owners",
    "RetryPolicy": "_retry",
    "RevokeOutcome": "_membership",
    "RevokeResult": "_membership",
    "RuleSet": "_models",
    "SecretStore": "_secrets",
    "SecretStoreError": "_errors",
    "SecretStoreRef": "_integration",
    "ServerError": "_errors",
    "ServicePrincipal": "_models",
    "SqliteLeaseStore": "_sqlite_store",
    "StaticDirectory": "_owners",
    "StaticOwnerResolver": "_owners",
    "StaticSecretStore": "_secrets",
    "SweepReport": "_tracker",
    "SystemClock": "_clock",
    "TagOwnerResolver": "_owners",
    "TagSource": "_owners",
    "TransportError": "_errors",
    "User": "_models",
    "Workspace": "_models",
    "adiagnose": "_diagnose",
    "adiscover": "_discovery",
    "diagnose": "_diagnose",
    "discover": "_discovery",
    "filter_eq": "_scim",
    "open_secret_store": "_integration",
    "parse_duration": "_durations",
    "tqdm_progress": "_progress",
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
    "AsyncIdentityDirectory",
    "AsyncIntegration",
    "AsyncLeaseStore",
    "AsyncLeaseTracker",
    "AsyncMembershipManager",
    "AsyncOwnerResolver",
    "AsyncPager",
    "AsyncPostgresLeaseStore",
    "AsyncTagOwnerResolver",
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
    "HashiCorpVaultStore",
    "IdentityDirectory",
    "Integration",
    "IntegrationConfig",
    "Inventory",
    "JsonLinesSink",
    "Lease",
    "LeaseError",
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
    "Pager",
    "Pair",
    "PermissionAssignment",
    "PermissionDeniedError",
    "PlannedRequest",
    "PostgresLeaseStore",
    "PrincipalKind",
    "PrincipalRef",
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
    "Workspace",
    "__version__",
    "adiagnose",
    "adiscover",
    "diagnose",
    "discover",
    "filter_eq",
    "open_secret_store",
    "parse_duration",
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
