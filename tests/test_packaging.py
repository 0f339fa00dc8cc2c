"""The public surface: pinned names, docstrings, version, light imports, typed package."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import databricks_access as da

EXPECTED = sorted(
    [
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
)


def test_all_is_pinned_and_sorted():
    assert sorted(da.__all__) == EXPECTED
    assert list(da.__all__) == sorted(da.__all__)


def test_every_public_name_resolves_and_is_documented():
    for name in da.__all__:
        value = getattr(da, name)
        if name == "__version__":
            continue
        assert inspect.getdoc(value), f"{name} has no docstring"
        if inspect.isclass(value):
            assert value.__module__ == "databricks_access", name
            for attr, member in vars(value).items():
                if attr.startswith("_") or not callable(member):
                    continue
                assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchThing"):
        da.NoSuchThing  # noqa: B018


def test_version_matches_the_installed_metadata():
    assert da.__version__ == importlib.metadata.version("databricks-access")


def test_package_is_typed():
    assert (Path(da.__file__).parent / "py.typed").exists()


def test_library_logger_has_a_null_handler_and_no_level():
    logger = logging.getLogger("databricks_access")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.level == logging.NOTSET


def _loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(json.loads(out.stdout))


def _modules_after(code: str) -> set[str]:
    # What the interpreter and site hooks load anyway (json, .pth hooks) is not ours.
    return _loaded(code) - _loaded("pass")


def test_import_loads_only_the_standard_library():
    loaded = _modules_after("import databricks_access")
    foreign = {
        m.split(".")[0]
        for m in loaded
        if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("databricks_access")
    }
    assert foreign == set(), foreign
    assert "databricks_access.testing" not in loaded


def test_building_a_client_loads_only_the_four_dependency_trees():
    # Whatever the four dependencies import (httpx loads click and pygments when they
    # happen to be installed) is theirs; anything beyond that would be ours.
    theirs = _modules_after(
        "import httpx, attrs, cattrs, cattrs.gen, typing_extensions, sniffio\nhttpx.Client().close()"
    )
    loaded = _modules_after(
        "import databricks_access as da\n"
        "cfg = da.AccountConfig(host='https://accounts.cloud.databricks.com', "
        "account_id='0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0')\n"
        "da.AccountClient(cfg, secrets=da.StaticSecretStore('a', 'b')).close()"
    )
    foreign = {
        m.split(".")[0]
        for m in loaded - theirs
        if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("databricks_access")
    }
    assert foreign == set(), foreign
    assert "databricks_access.testing" not in loaded
    assert "sqlite3" not in loaded
