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
    from databricks_access._client import AccountClient, AsyncAccountClient
    from databricks_access._clock import Clock, ManualClock, SystemClock
    from databricks_access._config import AccountConfig, Cloud
    from databricks_access._drivers import AsyncPager, Pager
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
    from databricks_access._retry import RetryPolicy
    from databricks_access._scim import filter_eq
    from databricks_access._secrets import (
        ClientCredentials,
        EnvSecretStore,
        FileSecretStore,
        SecretStore,
        StaticSecretStore,
    )
    from databricks_access._throttle import RateLimits

# Public name -> the private module that defines it.
_EXPORTS: dict[str, str] = {
    "AccountClient": "_client",
    "AccountConfig": "_config",
    "ApiError": "_errors",
    "ApprovalError": "_errors",
    "AssignedPrincipal": "_models",
    "AsyncAccountClient": "_client",
    "AsyncPager": "_drivers",
    "AuthenticationError": "_errors",
    "BadRequestError": "_errors",
    "ClientCredentials": "_secrets",
    "Clock": "_clock",
    "Cloud": "_config",
    "ComplexValue": "_models",
    "ConfigError": "_errors",
    "ConfigProblem": "_errors",
    "ConflictError": "_errors",
    "DatabricksAccessError": "_errors",
    "EnvSecretStore": "_secrets",
    "FileSecretStore": "_secrets",
    "GrantRule": "_models",
    "Group": "_models",
    "LeaseError": "_errors",
    "ListPage": "_models",
    "ManualClock": "_clock",
    "MemberRef": "_models",
    "Name": "_models",
    "NotFoundError": "_errors",
    "OAuthM2M": "_auth",
    "Pager": "_drivers",
    "PermissionAssignment": "_models",
    "PermissionDeniedError": "_errors",
    "PrincipalKind": "_models",
    "PrincipalRef": "_models",
    "RateLimitedError": "_errors",
    "RateLimits": "_throttle",
    "RequestTimeoutError": "_errors",
    "RetryPolicy": "_retry",
    "RuleSet": "_models",
    "SecretStore": "_secrets",
    "SecretStoreError": "_errors",
    "ServerError": "_errors",
    "ServicePrincipal": "_models",
    "StaticSecretStore": "_secrets",
    "SystemClock": "_clock",
    "TransportError": "_errors",
    "User": "_models",
    "Workspace": "_models",
    "filter_eq": "_scim",
}

__all__ = [
    "AccountClient",
    "AccountConfig",
    "ApiError",
    "ApprovalError",
    "AssignedPrincipal",
    "AsyncAccountClient",
    "AsyncPager",
    "AuthenticationError",
    "BadRequestError",
    "ClientCredentials",
    "Clock",
    "Cloud",
    "ComplexValue",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "DatabricksAccessError",
    "EnvSecretStore",
    "FileSecretStore",
    "GrantRule",
    "Group",
    "LeaseError",
    "ListPage",
    "ManualClock",
    "MemberRef",
    "Name",
    "NotFoundError",
    "OAuthM2M",
    "Pager",
    "PermissionAssignment",
    "PermissionDeniedError",
    "PrincipalKind",
    "PrincipalRef",
    "RateLimitedError",
    "RateLimits",
    "RequestTimeoutError",
    "RetryPolicy",
    "RuleSet",
    "SecretStore",
    "SecretStoreError",
    "ServerError",
    "ServicePrincipal",
    "StaticSecretStore",
    "SystemClock",
    "TransportError",
    "User",
    "Workspace",
    "__version__",
    "filter_eq",
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
