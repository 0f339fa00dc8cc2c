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
        # Unity Catalog: what a group unlocks
        "AccessExplanation",
        "AsyncCatalogReader",
        "AsyncWorkspaceClient",
        "CatalogGrant",
        "CatalogInfo",
        "CatalogOptions",
        "CatalogReader",
        "CatalogSnapshot",
        "CatalogView",
        "GrantedPrivilege",
        "Metastore",
        "MetastoreAssignment",
        "MetastoreSummary",
        "PrivilegeAssignment",
        "SchemaInfo",
        "Securable",
        "SecurableType",
        "TableInfo",
        "UnlocksReport",
        "UnmatchedPrincipal",
        "WorkspaceClient",
        "WorkspaceHosts",
        "WorkspaceNotAssignedError",
        "aexplain_access",
        "aunlocks",
        "explain_access",
        "unlocks",
        "Access",
        "AsyncGroupManagers",
        "AsyncGroups",
        "AsyncServicePrincipals",
        "AsyncUsers",
        "AsyncWorkspaceAssignments",
        "AsyncWorkspaces",
        "GroupManagers",
        "Groups",
        "ServicePrincipals",
        "Users",
        "WorkspaceAssignments",
        "Workspaces",
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
        "OwnerTags",
        "OwnerKind",
        "OwnerResolver",
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
        "WorkspacePermission",
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


def test_touching_the_clients_loads_no_http_stack():
    # `da.AccountClient` in a type hint or an isinstance check stays cheap: httpx, the
    # drivers, OAuth, asyncio, the models, the services and the HTML and email modules
    # load when a client is built.
    loaded = _modules_after(
        "import databricks_access as da\nda.AccountClient, da.AsyncAccountClient, da.Pager"
    )
    heavy = {
        "asyncio",
        "cattrs",
        "databricks_access._account.api",
        "databricks_access._account.auth",
        "databricks_access._account.drivers",
        "databricks_access._account.models",
        "databricks_access._account.services",
        "databricks_access._clock",
        "databricks_access._util.html",
        "email.utils",
        "html",
        "http.client",
        "httpcore",
        "httpx",
        "ssl",
        "urllib.request",
    }
    assert loaded & heavy == set()


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


ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # noqa: PLC0415
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_license_file_is_the_apache_license_the_metadata_names():
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # The SPDX expression replaces the deprecated license classifier.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_the_sdist_holds_every_file_its_tests_read():
    include = _pyproject()["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "mkdocs.yml", "pyproject.toml"):
        assert name in include, name
        assert (ROOT / name).exists(), name
    for folder in ("src/", "tests/", "docs/"):
        assert folder in include, folder


def test_the_notebook_extra_brings_progress_bars():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert any(spec.startswith("tqdm") for spec in extras["notebook"])
