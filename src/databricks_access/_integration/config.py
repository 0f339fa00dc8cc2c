"""The integration's configuration, and who approves access to a group.

`IntegrationConfig` is what the product's setup screen collects: the integration's name,
the account (through the one host normaliser of `_config`), the text shown to end users,
the fallback approvers, the resource-owner rule, and references to the lease store and
the secret store, so a CLI and a connector share them. It is validated as a whole: every
problem is reported at once, each naming its field.

`Integration` answers `approvers_for(group)`: the resource owners when the resolver
finds some, else the integration owners, and says which. A resolver that fails or is
too slow never grants anything: the answer falls back and reports the problem.
`AsyncIntegration` is its asyncio twin.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import difflib
import enum
import inspect
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs

from databricks_access._account.config import AccountConfig
from databricks_access._account.models import Group
from databricks_access._account.throttle import RateLimits
from databricks_access._clock import Clock
from databricks_access._durations import Duration, seconds
from databricks_access._errors import ConfigError, ConfigProblem, RequestTimeoutError
from databricks_access._hosts import (
    Cloud,
    check_account_id,
    check_endpoint,
    check_host,
    cloud_for_host,
)
from databricks_access._integration.owners import (
    AsyncDatabricksDirectory,
    AsyncIdentityDirectory,
    AsyncOwnerResolver,
    AsyncTagOwnerResolver,
    DatabricksDirectory,
    IdentityDirectory,
    Owner,
    OwnerKind,
    OwnerLike,
    OwnerResolver,
    ResourceOwnerSetting,
    TagOwnerResolver,
    TagSource,
)
from databricks_access._integration.policy import (
    LeasePolicy,
    OwnerTags,
    check_audit_sink,
    check_lease_policy,
    check_owner_tags,
    open_audit_sink,
)
from databricks_access._secrets.base import EnvSecretStore, FileSecretStore, SecretStore
from databricks_access._util.html import render_html
from databricks_access._util.json import loads
from databricks_access._util.redact import url_secret
from databricks_access._util.terminal import first_unsafe

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._leases.events import EventSink
    from databricks_access._leases.membership import AsyncMembershipManager, MembershipManager
    from databricks_access._leases.store import AsyncLeaseStore, LeaseStore
    from databricks_access._leases.tracker import AsyncLeaseTracker, LeaseTracker

__all__ = [
    "MAX_ACCESS_DETAILS",
    "ApproverSource",
    "Approvers",
    "AsyncIntegration",
    "Integration",
    "IntegrationConfig",
    "LeaseStoreRef",
    "SecretStoreRef",
    "open_secret_store",
]

T = TypeVar("T")

MAX_ACCESS_DETAILS = 400
"""The most characters `custom_access_details` may hold (it is shown to end users)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_MAX_NAME = 64
_MAX_OWNERS = 100
_MAX_REF = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_LEASE_STORE = "sqlite:///leases.db"
_DEFAULT_SECRET_STORE = "env"  # noqa: S105 - a store kind, not a secret
_MAX_SHOWN = 60


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "...")


def _kind_of(value: object) -> str:
    """A value's type in configuration words, never its content (it may be huge)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


# -- store references ----------------------------------------------------------------------------

SecretStoreKind = Literal[
    "env", "file", "aws-secrets-manager", "azure-key-vault", "gcp-secret-manager", "vault"
]
_REFERENCE_FORMS = (
    "env, env:ID_VAR,SECRET_VAR, file:/path, "
    "aws-secrets-manager:<name or ARN>[?region=<r>&version_stage=<stage>], "
    "azure-key-vault:https://<vault>.vault.azure.net/secrets/<secret>[/<version>], "
    "gcp-secret-manager:projects/<p>/secrets/<s>[/versions/<v>], "
    "vault:<mount>/<path>[?kv=1|2&auth=token|approle&addr=https://...&version=<n>]"
)
_AWS_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_AWS_ARN = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}"
)
_AZURE_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
)
_AZURE_SECRET = re.compile(r"[0-9A-Za-z-]{1,127}")
_AZURE_VERSION = re.compile(r"[0-9A-Za-z]{1,64}")
_GCP_SECRET = re.compile(
    r"projects/[A-Za-z0-9][A-Za-z0-9-]{0,62}/secrets/[A-Za-z0-9_-]{1,255}"
    r"(/versions/(latest|[0-9]+))?"
)
_VAULT_PATH = re.compile(r"[A-Za-z0-9_.@-]+(/[A-Za-z0-9_.@-]+)*")
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-[0-9]+")
_AWS_ARN_REGION = re.compile(r"arn:[^:]+:secretsmanager:(?P<region>[^:]+):")
_AWS_STAGE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_VAULT_VERSION = re.compile(r"[1-9][0-9]{0,9}")
# The options a reference may carry after `?`, in the order they are written back.
_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "aws-secrets-manager": ("region", "version_stage"),
    "vault": ("kv", "auth", "addr", "version"),
}


@attrs.frozen
class SecretStoreRef:
    """A parsed `secret_store` reference: which store holds the OAuth client credentials.

    The forms (the kind before the first `:` is case-insensitive):

    - `env`: `DATABRICKS_CLIENT_ID` and `DATABRICKS_CLIENT_SECRET`.
    - `env:ID_VAR,SECRET_VAR`: two other environment variables.
    - `file:/path`: a JSON file or a mounted secret directory (`FileSecretStore`);
      `file:///path` is accepted too.
    - `aws-secrets-manager:<name or ARN>[?region=<region>&version_stage=<stage>]`
      (`AwsSecretsManagerStore`, the `aws` extra);
      `azure-key-vault:https://<vault>.vault.azure.net/secrets/<secret>[/<version>]`
      (`.../<secret>` is accepted too; `AzureKeyVaultStore`, the `azure` extra);
      `gcp-secret-manager:projects/<p>/secrets/<s>[/versions/<v>]`
      (`GcpSecretManagerStore`, the `gcp` extra): a cloud secret holding the same JSON
      document as a `file:` store.
    - `vault:<mount>/<path>[?kv=1|2&auth=token|approle&addr=https://...&version=<n>]`
      (`HashiCorpVaultStore`, the `vault` extra): a HashiCorp Vault KV secret with the
      keys `client_id` and `client_secret`. The mount is the first segment; for KV v2
      (the default) the API form `<mount>/data/<path>` is accepted too. The address
      defaults to `VAULT_ADDR`, the token to `VAULT_TOKEN`, AppRole's ids to
      `VAULT_ROLE_ID` and `VAULT_SECRET_ID` (AppRole is the default when
      `VAULT_ROLE_ID` is set).

    Attributes:
        kind: The store kind.
        location: The path, secret name, URL or resource name; empty for `env`.
        client_id_var: For `env`, the variable holding the client id.
        client_secret_var: For `env`, the variable holding the client secret.
        options: The `?key=value` options of an `aws-secrets-manager:` or `vault:`
            reference, validated, in a fixed order.

    Example:
        >>> ref = SecretStoreRef.parse("env:SP_ID,SP_SECRET")
        >>> ref.kind, ref.client_secret_var, str(ref)
        ('env', 'SP_SECRET', 'env:SP_ID,SP_SECRET')
        >>> str(SecretStoreRef.parse("FILE:///run/secrets/databricks"))
        'file:/run/secrets/databricks'
        >>> SecretStoreRef.parse("vault:secret/databricks?auth=approle&kv=2").options
        (('kv', '2'), ('auth', 'approle'))
    """

    kind: SecretStoreKind
    location: str = ""
    client_id_var: str = "DATABRICKS_CLIENT_ID"
    client_secret_var: str = "DATABRICKS_CLIENT_SECRET"  # noqa: S105 - a variable name
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: object, *, field: str = "secret_store") -> SecretStoreRef:
        """Parse and validate a reference.

        Raises:
            ConfigError: The reference is malformed; the problem names `field`.
        """
        ref, problem = _parse_secret_store(text)
        if ref is None:
            raise ConfigError(problem or "is not a secret store reference", field)
        return ref

    def __str__(self) -> str:
        if self.kind == "env":
            default = SecretStoreRef("env")
            if (self.client_id_var, self.client_secret_var) == (
                default.client_id_var,
                default.client_secret_var,
            ):
                return "env"
            return f"env:{self.client_id_var},{self.client_secret_var}"
        query = f"?{urlencode(self.options, safe='/:')}" if self.options else ""
        return f"{self.kind}:{self.location}{query}"

    def open(
        self, *, environ: Mapping[str, str] | None = None, allow_insecure_http: bool = False
    ) -> SecretStore:
        """The secret store this reference names.

        A cloud store's SDK is imported here (not before); nothing is read until the
        store's first `get_credentials()`.

        Args:
            environ: For `env`, the mapping to read instead of `os.environ`; for `vault:`,
                where `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_ROLE_ID`, ... are read.
            allow_insecure_http: For `vault:`, accept an `http://` loopback address.

        Raises:
            ConfigError: The store cannot be built (a cloud store's optional extra is not
                installed, say: the message names it); the problem names `secret_store`.
        """
        if self.kind == "env":
            return EnvSecretStore(self.client_id_var, self.client_secret_var, environ=environ)
        if self.kind == "file":
            return FileSecretStore(self.location)
        try:
            return _open_cloud_store(self, environ, allow_insecure_http=allow_insecure_http)
        except ConfigError as exc:
            problems = [
                ConfigProblem(
                    "secret_store",
                    p.message if p.field == "secret_store" else f"{p.field}: {p.message}",
                )
                for p in exc.problems
            ]
        raise ConfigError(problems)


def _open_cloud_store(
    ref: SecretStoreRef, environ: Mapping[str, str] | None, *, allow_insecure_http: bool
) -> SecretStore:
    """Build a cloud store; its module imports its SDK (the extra named on failure)."""
    # Imported here: each module imports its SDK when a store is built, never before.
    options = dict(ref.options)
    if ref.kind == "aws-secrets-manager":
        from databricks_access._secrets.aws import AwsSecretsManagerStore  # noqa: PLC0415

        return AwsSecretsManagerStore(
            ref.location,
            region=options.get("region"),
            version_stage=options.get("version_stage", "AWSCURRENT"),
        )
    if ref.kind == "azure-key-vault":
        from databricks_access._secrets.azure import AzureKeyVaultStore  # noqa: PLC0415

        parts = urlsplit(ref.location)
        segments = [segment for segment in parts.path.split("/") if segment]
        if segments[0] == "secrets":
            segments = segments[1:]
        return AzureKeyVaultStore(
            f"{parts.scheme}://{parts.netloc}",
            segments[0],
            version=segments[1] if len(segments) > 1 else None,
        )
    if ref.kind == "gcp-secret-manager":
        from databricks_access._secrets.gcp import GcpSecretManagerStore  # noqa: PLC0415

        segments = ref.location.split("/")
        return GcpSecretManagerStore(
            segments[1], segments[3], version=segments[5] if len(segments) > 5 else "latest"
        )
    from databricks_access._secrets.vault import HashiCorpVaultStore  # noqa: PLC0415

    kv: Literal[1, 2] = 1 if options.get("kv") == "1" else 2
    mount, _, path = ref.location.partition("/")
    if kv == 2 and path.startswith("data/"):
        path = path[len("data/") :]  # the API form, <mount>/data/<path>
    auth = options.get("auth")
    version = options.get("version")
    return HashiCorpVaultStore(
        path,
        mount_point=mount,
        kv_version=kv,
        version=int(version) if version is not None else None,
        addr=options.get("addr"),
        auth="approle" if auth == "approle" else "token" if auth == "token" else None,
        environ=environ,
        allow_insecure_http=allow_insecure_http,
    )


def _parse_options(kind: str, query: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Validate the `?key=value` options of a reference; problems name the keys."""
    allowed = _OPTIONS[kind]
    usage = f"{kind}: takes the options {', '.join(allowed)} (like ?{allowed[0]}=...)"
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, max_num_fields=10)
    except ValueError:
        return (), usage
    found: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            return (), f"{usage}; {_shown(key)} is not one of them"
        if key in found:
            return (), f"names the option {key} twice"
        if not value.strip():
            return (), f"the option {key} is empty"
        found[key] = value.strip()
    return tuple((key, found[key]) for key in allowed if key in found), None


def _parse_secret_store(text: object) -> tuple[SecretStoreRef | None, str | None]:
    if not isinstance(text, str):
        return None, f"must be a string, not {_kind_of(text)}"
    stripped = text.strip()
    if not stripped:
        return None, f"is empty; use one of: {_REFERENCE_FORMS}"
    if len(stripped) > _MAX_REF:
        return None, f"is longer than {_MAX_REF} characters"
    if _CONTROL.search(stripped):
        return None, "contains a control character"
    secret = url_secret(stripped)
    if secret is not None:
        # Never echo the reference: it holds the secret.
        return None, (
            f"{secret}; the configuration holds no secret: give credentials to the store "
            "itself (its environment variables or its own configuration)"
        )
    kind, colon, rest = stripped.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if kind == "env":
        if not colon:
            return SecretStoreRef("env"), None
        names = [name.strip() for name in rest.split(",")]
        if len(names) != 2 or not all(_ENV_VAR.fullmatch(name) for name in names):
            return None, (
                "env: takes two variable names, the client id's and the secret's, like "
                "env:DATABRICKS_CLIENT_ID,DATABRICKS_CLIENT_SECRET"
            )
        if names[0] == names[1]:
            return None, "names the same variable twice; the id and the secret differ"
        return SecretStoreRef("env", client_id_var=names[0], client_secret_var=names[1]), None
    if kind == "file":
        path = rest
        if path.startswith("//"):
            after = path[2:]
            if not after.startswith("/"):
                return None, "a file: reference names a local path, like file:/path (no host)"
            path = after
        if not path:
            return None, "file: needs a path, like file:/run/secrets/databricks.json"
        return SecretStoreRef("file", path), None
    if kind in _OPTIONS and "?" in rest:
        rest, _, query = rest.partition("?")
        options, problem = _parse_options(kind, query)
        if problem is not None:
            return None, problem
    else:
        options = ()
    if kind == "aws-secrets-manager":
        if rest.startswith("arn:"):
            if not _AWS_ARN.fullmatch(rest):
                return None, (
                    "is not a Secrets Manager ARN "
                    "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
                )
        elif not _AWS_NAME.fullmatch(rest):
            return None, (
                "aws-secrets-manager: needs a secret name (letters, digits, /_+=.@-) or an ARN"
            )
        problem = _check_aws_options(rest, dict(options))
        if problem is not None:
            return None, problem
        return SecretStoreRef("aws-secrets-manager", rest, options=options), None
    if kind == "azure-key-vault":
        return _parse_azure(rest)
    if kind == "gcp-secret-manager":
        if not _GCP_SECRET.fullmatch(rest):
            return None, (
                "gcp-secret-manager: needs projects/<project>/secrets/<secret>, optionally "
                "followed by /versions/<number or latest>"
            )
        return SecretStoreRef("gcp-secret-manager", rest), None
    if kind == "vault":
        path = rest.strip("/")
        if not _VAULT_PATH.fullmatch(path) or ".." in path.split("/"):
            return None, "vault: needs a KV path like vault:secret/databricks (<mount>/<path>)"
        if "/" not in path:
            return None, (
                "vault: needs a KV path with the mount and the secret's path, like "
                "vault:secret/databricks (<mount>/<path>)"
            )
        problem = _check_vault_options(dict(options))
        if problem is not None:
            return None, problem
        return SecretStoreRef("vault", path, options=options), None
    return (
        None,
        f"{_shown(stripped)} is not a secret store reference; use one of: {_REFERENCE_FORMS}",
    )


def _check_aws_options(secret: str, options: Mapping[str, str]) -> str | None:
    region = options.get("region")
    if region is not None:
        if not _AWS_REGION.fullmatch(region):
            return f"aws-secrets-manager: region {_shown(region)} is not a region like eu-west-1"
        arn = _AWS_ARN_REGION.match(secret)
        if arn is not None and arn.group("region") != region:
            return f"aws-secrets-manager: the ARN names the region {arn.group('region')}"
    stage = options.get("version_stage")
    if stage is not None and not _AWS_STAGE.fullmatch(stage):
        return "aws-secrets-manager: version_stage must be a staging label like AWSCURRENT"
    return None


def _check_vault_options(options: Mapping[str, str]) -> str | None:
    if options.get("kv", "2") not in {"1", "2"}:
        return "vault: the option kv is 1 or 2"
    if options.get("auth", "token") not in {"token", "approle"}:
        return "vault: the option auth is token or approle"
    version = options.get("version")
    if version is not None:
        if not _VAULT_VERSION.fullmatch(version):
            return "vault: the option version is a positive version number"
        if options.get("kv") == "1":
            return "vault: KV version 1 keeps no versions; remove version"
    addr = options.get("addr")
    if addr is not None:
        # Loopback http passes here; the store refuses it unless allow_insecure_http.
        url, problems = check_host(
            addr, allow_custom_host=True, allow_insecure_http=True, field="secret_store"
        )
        if url is None:
            return f"vault: the option addr: {problems[0].message if problems else 'invalid'}"
        if urlsplit(addr.strip()).path.strip("/"):
            return "vault: the option addr is Vault's address, without a path"
    return None


def _parse_azure(rest: str) -> tuple[SecretStoreRef | None, str | None]:
    usage = (
        "azure-key-vault: needs the secret's URL, like "
        "https://<vault>.vault.azure.net/<secret> or .../secrets/<secret>/<version>"
    )
    # The vault URL follows the library's URL rules (https, no user information, no
    # fragment); Key Vault hosts are recognised by their suffix below.
    url, problems = check_endpoint(rest, allow_custom_host=True, field="secret_store")
    if url is None:
        return None, f"{usage}: {problems[0].message}" if problems else usage
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None or not host.endswith(_AZURE_VAULT_SUFFIXES):
        return None, f"{usage}; the host must be a Key Vault host (*.vault.azure.net)"
    if parts.query:
        return None, f"{usage}; remove the query"
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments and segments[0] == "secrets":
        segments = segments[1:]
    valid = (
        1 <= len(segments) <= 2
        and _AZURE_SECRET.fullmatch(segments[0]) is not None
        and (len(segments) == 1 or _AZURE_VERSION.fullmatch(segments[1]) is not None)
    )
    if not valid:
        return None, usage
    return SecretStoreRef("azure-key-vault", url), None


def open_secret_store(
    ref: str | SecretStoreRef,
    *,
    environ: Mapping[str, str] | None = None,
    allow_insecure_http: bool = False,
) -> SecretStore:
    """The secret store a `secret_store` reference names (see `SecretStoreRef`).

    Example:
        >>> store = open_secret_store("env:SP_ID,SP_SECRET", environ={})
        >>> store
        EnvSecretStore(client_id_var='SP_ID', client_secret_var='SP_SECRET')

    Raises:
        ConfigError: The reference is malformed, or names a cloud store whose optional
            extra is not available (the message says which one).
    """
    parsed = ref if isinstance(ref, SecretStoreRef) else SecretStoreRef.parse(ref)
    return parsed.open(environ=environ, allow_insecure_http=allow_insecure_http)


LeaseStoreKind = Literal["sqlite", "postgresql"]


@attrs.frozen
class LeaseStoreRef:
    """A parsed `lease_store` URL.

    - `sqlite:///relative/path.db` (three slashes, then a path relative to the working
      directory) or `sqlite:////absolute/path.db` (four: the path starts with `/`).
    - `postgresql://[user@]host[:port]/database[?options]` (`postgres://` is accepted and
      written `postgresql://`). A password in the URL is refused: the configuration holds
      no secret; use `PGPASSWORD`, a `.pgpass` file or the service file.

    Attributes:
        kind: `sqlite` or `postgresql`.
        url: The normalised URL.
        path: The SQLite file path; None for PostgreSQL.

    Example:
        >>> LeaseStoreRef.parse("sqlite:////var/lib/jit/leases.db").path
        '/var/lib/jit/leases.db'
        >>> LeaseStoreRef.parse("postgres://jit@db.internal:5432/jit").url
        'postgresql://jit@db.internal:5432/jit'
    """

    kind: LeaseStoreKind
    url: str
    path: str | None = None

    @classmethod
    def parse(cls, text: object, *, field: str = "lease_store") -> LeaseStoreRef:
        """Parse and validate a lease store URL.

        Raises:
            ConfigError: The URL is malformed or of another kind; the problem names `field`.
        """
        ref, problem = _parse_lease_store(text)
        if ref is None:
            raise ConfigError(problem or "is not a lease store URL", field)
        return ref

    def __str__(self) -> str:
        return self.url

    def open(self, *, read_only: bool = False) -> LeaseStore:
        """The lease store this URL names: `SqliteLeaseStore` or `PostgresLeaseStore`.

        A PostgreSQL password comes from libpq's usual places (`PGPASSWORD`, `~/.pgpass`),
        never from the URL in the configuration.

        Args:
            read_only: Open a SQLite file read-only: it must exist, and it is neither
                created nor migrated (for reports; every write raises `LeaseError`).
                A PostgreSQL store is opened as usual.

        Raises:
            ConfigError: For `postgresql:` without the `databricks-access[postgres]` extra.
        """
        if self.kind == "sqlite" and self.path is not None:
            from databricks_access._stores.sqlite import SqliteLeaseStore  # noqa: PLC0415

            return SqliteLeaseStore(self.path, read_only=read_only)
        from databricks_access._stores.postgres import PostgresLeaseStore  # noqa: PLC0415

        return PostgresLeaseStore(self.url)


_LEASE_FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://host/db"


def _parse_lease_store(text: object) -> tuple[LeaseStoreRef | None, str | None]:
    if not isinstance(text, str):
        return None, f"must be a string, not {_kind_of(text)}"
    stripped = text.strip()
    if not stripped:
        return None, f"is empty; use {_LEASE_FORMS}"
    if len(stripped) > _MAX_REF:
        return None, f"is longer than {_MAX_REF} characters"
    if _CONTROL.search(stripped):
        return None, "contains a control character"
    secret = url_secret(stripped)
    if secret is not None:
        # Never echo the URL: it holds the secret.
        return None, (
            f"{secret}; the configuration holds no secret: use PGPASSWORD, a .pgpass file "
            "or a service file"
        )
    scheme, sep, rest = stripped.partition("://")
    scheme = scheme.lower()
    if not sep:
        return None, f"is not a URL; use {_LEASE_FORMS} (for a file: sqlite:///{stripped})"[:300]
    if scheme == "sqlite":
        if not rest.startswith("/"):
            return None, (
                "a sqlite URL has no host: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        path = rest[1:]
        if not path.strip("/"):
            return None, "names no file; write sqlite:///leases.db"
        if "?" in path or "#" in path:
            return None, "a sqlite lease store URL takes no query or fragment"
        if path == ":memory:":
            return None, "an in-memory SQLite store loses leases; use MemoryLeaseStore in tests"
        return LeaseStoreRef("sqlite", f"sqlite:///{path}", path), None
    if scheme in {"postgresql", "postgres"}:
        if any(char.isspace() for char in rest):
            return None, "contains whitespace; percent-encode it"
        try:
            parts = urlsplit(f"postgresql://{rest}")
            port = parts.port
        except ValueError:
            return None, "is not a valid PostgreSQL URL (postgresql://[user@]host[:port]/db)"
        if parts.fragment:
            return None, "a PostgreSQL URL takes no fragment"
        if port == 0:
            return None, "has port 0"
        return LeaseStoreRef("postgresql", f"postgresql://{rest}"), None
    return None, f"uses the scheme {_shown(scheme)}; use {_LEASE_FORMS}"


# -- the configuration --------------------------------------------------------------------------


def _owners_in(value: Iterable[OwnerLike] | str | None) -> tuple[Owner, ...]:
    """Take what the caller gave; `__attrs_post_init__` validates and parses it."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value  # type: ignore[return-value] # checked (and refused) in validation


def _setting_in(
    value: ResourceOwnerSetting | Mapping[str, str] | None,
) -> ResourceOwnerSetting | None:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # a mapping is converted in validation


def _policy_in(value: LeasePolicy | Mapping[str, object] | None) -> LeasePolicy:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # a mapping (or None) is converted in validation


def _tags_in(value: OwnerTags | Mapping[str, object] | None) -> OwnerTags | None:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # a mapping is converted in validation


def _limits_in(
    value: RateLimits | Mapping[str, float] | str | None,
) -> RateLimits | None:
    """Take what the caller gave; `__attrs_post_init__` validates and converts it."""
    return value  # type: ignore[return-value] # text and mappings are converted in validation


def _limits_out(limits: RateLimits | None) -> str | dict[str, float | str]:
    if limits is None:
        return "off"
    figures: dict[str, float | str] = {
        name: "off" if getattr(limits, name) is None else getattr(limits, name)
        for name in ("get", "list", "patch", "write")
    }
    return {**figures, "burst": limits.burst}


_PUBLISHED = RateLimits.published()


class _AccountOptions(TypedDict, total=False):
    """The `AccountConfig` fields `IntegrationConfig.account_config` passes through."""

    scim_version: Literal["2.0", "2.1"]
    timeout: Duration
    connect_timeout: Duration
    deadline: Duration
    max_attempts: int
    token_endpoint: str | None
    insecure_skip_tls_verify: bool
    rate_limits: RateLimits | None


_REQUIRED = ("name", "accounts_url", "account_id")
_FIELDS = (
    "name",
    "accounts_url",
    "account_id",
    "custom_access_details",
    "integration_owners",
    "resource_owner",
    "lease_store",
    "secret_store",
    "allow_custom_host",
    "allow_insecure_http",
    "lease_policy",
    "audit_sink",
    "owner_tags",
    "rate_limits",
    "workspace_hosts",
)
# Tables, read from several environment variables each.
_TABLE_FIELDS = ("resource_owner", "lease_policy", "owner_tags")
_RESOURCE_OWNER_FIELDS = ("tag_key", "idp_attribute")


def _check_name(value: object) -> tuple[str | None, list[str]]:
    if not isinstance(value, str):
        return None, [f"must be a string, not {_kind_of(value)}"]
    text = value.strip()
    if not text:
        return None, ["is empty; give the integration a name like sales-analytics"]
    problems = []
    if len(text) > _MAX_NAME:
        problems.append(f"is {len(text)} characters long; at most {_MAX_NAME}")
    if not _NAME.fullmatch(text):
        problems.append(
            f"{_shown(text)} must be letters, digits, '-' and '_' only, starting with a "
            "letter or digit (like sales-analytics)"
        )
    return (None if problems else text), problems


def _check_access_details(value: object) -> tuple[str | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, str):
        return None, [f"must be a string, not {_kind_of(value)}"]
    text = value.strip()
    problems = []
    if len(text) > MAX_ACCESS_DETAILS:
        problems.append(
            f"is {len(text)} characters long; at most {MAX_ACCESS_DETAILS} "
            "(it is shown to end users)"
        )
    unsafe = first_unsafe(text, multiline=True)
    if unsafe is not None:
        problems.append(
            f"contains a control character or a bidirectional control ({unsafe}); only "
            "newlines and tabs are allowed"
        )
    return (text or None), problems


def _check_owner_entry(entry: object) -> Owner:
    if isinstance(entry, Mapping):
        unknown = sorted(str(key) for key in entry if key not in {"kind", "name"})
        if unknown or "kind" not in entry or "name" not in entry:
            raise ConfigError(
                "an owner table has exactly the keys kind ('user' or 'group') and name", "owner"
            )
        kind: object = entry["kind"]
        if not isinstance(kind, (str, OwnerKind)):
            raise ConfigError(f"kind must be 'user' or 'group', not {_kind_of(kind)}", "owner")
        return Owner(kind, entry["name"])
    if isinstance(entry, (Owner, str)):
        return Owner.parse(entry)
    raise ConfigError(
        f"an owner is a string like 'user:a@example.com' or 'group:data-owners', "
        f"not {_kind_of(entry)}",
        "owner",
    )


def _check_owners(value: object) -> tuple[tuple[Owner, ...], list[str]]:
    if value is None:
        return (), []
    entries: Sequence[object]
    if isinstance(value, str):
        entries = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        entries = value
    else:
        return (), [
            (
                "must be a list of owners like ['user:a@example.com', 'group:data-owners'], "
                f"not {_kind_of(value)}"
            )
        ]
    if len(entries) > _MAX_OWNERS:
        return (), [f"lists {len(entries)} owners; at most {_MAX_OWNERS} (use an IdP group)"]
    owners: list[Owner] = []
    problems: list[str] = []
    for index, entry in enumerate(entries, start=1):
        try:
            owners.append(_check_owner_entry(entry))
        except ConfigError as exc:
            problems.extend(f"entry {index}: {problem.message}" for problem in exc.problems)
    return tuple(dict.fromkeys(owners)), problems


def _check_resource_owner(
    value: object,
) -> tuple[ResourceOwnerSetting | None, list[ConfigProblem]]:
    if value is None or isinstance(value, ResourceOwnerSetting):
        return value, []
    if not isinstance(value, Mapping):
        return None, [
            ConfigProblem(
                "resource_owner",
                f"must be a table with tag_key and idp_attribute, not {_kind_of(value)}",
            )
        ]
    problems = [
        ConfigProblem(
            f"resource_owner.{_key_shown(key)}", _unknown_key(key, _RESOURCE_OWNER_FIELDS)
        )
        for key in value
        if key not in _RESOURCE_OWNER_FIELDS
    ]
    problems.extend(
        ConfigProblem(f"resource_owner.{name}", "is required")
        for name in _RESOURCE_OWNER_FIELDS
        if name not in value
    )
    if problems:
        return None, problems
    try:
        return ResourceOwnerSetting(value["tag_key"], value["idp_attribute"]), []
    except ConfigError as exc:
        return None, list(exc.problems)


def _key_shown(key: object) -> str:
    if isinstance(key, str) and key.isprintable() and len(key) <= _MAX_SHOWN:
        return key
    return _shown(key) if isinstance(key, str) else f"<{_kind_of(key)} key>"


def _unknown_key(key: object, known: Sequence[str]) -> str:
    message = "is not a known key"
    if isinstance(key, str):
        close = difflib.get_close_matches(key.lower(), known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
            return message
    return f"{message}; the keys are: {', '.join(known)}"


def _validate(raw: Mapping[str, object]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Check every field present in `raw`, in field order; normalised values and problems."""
    values: dict[str, Any] = {}
    problems: list[ConfigProblem] = []

    def note(field: str, messages: Iterable[str]) -> None:
        problems.extend(ConfigProblem(field, message) for message in messages)

    flags: dict[str, bool] = {}
    for flag in ("allow_custom_host", "allow_insecure_http"):
        value = raw.get(flag, False)
        if isinstance(value, bool):
            flags[flag] = values[flag] = value
        else:
            flags[flag] = False
            note(flag, [f"must be true or false, not {_kind_of(value)}"])

    if "name" in raw:
        values["name"], found = _check_name(raw["name"])
        note("name", found)
    if "accounts_url" in raw:
        values["accounts_url"], host_problems = check_host(
            raw["accounts_url"],
            allow_custom_host=flags["allow_custom_host"],
            allow_insecure_http=flags["allow_insecure_http"],
            field="accounts_url",
        )
        problems.extend(host_problems)
    if "account_id" in raw:
        values["account_id"], id_problems = check_account_id(raw["account_id"])
        problems.extend(id_problems)
    values["custom_access_details"], found = _check_access_details(raw.get("custom_access_details"))
    note("custom_access_details", found)
    values["integration_owners"], found = _check_owners(raw.get("integration_owners"))
    note("integration_owners", found)
    resource_owner = raw.get("resource_owner")
    values["resource_owner"], setting_problems = _check_resource_owner(resource_owner)
    problems.extend(setting_problems)
    if resource_owner is not None and not values["integration_owners"] and not found:
        note(
            "integration_owners",
            [
                (
                    "is required when resource_owner is set: the integration owners approve "
                    "when a group has no resource owner"
                )
            ],
        )

    lease_ref, lease_problem = _parse_lease_store(raw.get("lease_store", _DEFAULT_LEASE_STORE))
    values["lease_store"] = None if lease_ref is None else lease_ref.url
    note("lease_store", [lease_problem] if lease_problem else [])
    secret_ref, secret_problem = _parse_secret_store(raw.get("secret_store", _DEFAULT_SECRET_STORE))
    values["secret_store"] = None if secret_ref is None else str(secret_ref)
    note("secret_store", [secret_problem] if secret_problem else [])

    policy = raw.get("lease_policy")
    values["lease_policy"], policy_problems = (
        (policy, []) if isinstance(policy, LeasePolicy) else check_lease_policy(policy)
    )
    problems.extend(policy_problems)
    values["audit_sink"], sink_problem = check_audit_sink(raw.get("audit_sink"))
    note("audit_sink", [sink_problem] if sink_problem else [])
    tags = raw.get("owner_tags")
    values["owner_tags"], tags_problems = check_owner_tags(tags)
    problems.extend(tags_problems)
    if tags is not None and resource_owner is None:
        note(
            "owner_tags",
            ["needs resource_owner: its tag_key names the tag to read from these tags"],
        )
    if "rate_limits" in raw:
        try:
            values["rate_limits"] = RateLimits.from_setting(raw["rate_limits"])
        except ConfigError as exc:
            problems.extend(exc.problems)
    if "workspace_hosts" in raw:  # -- Unity Catalog: workspace hosts --
        from databricks_access._catalog.hosts import check_workspace_hosts  # noqa: PLC0415

        values["workspace_hosts"], host_found = check_workspace_hosts(
            raw["workspace_hosts"],
            allow_custom_host=flags["allow_custom_host"],
            allow_insecure_http=flags["allow_insecure_http"],
        )
        problems.extend(host_found)
    return values, problems


@attrs.frozen(kw_only=True)
class IntegrationConfig:
    """The configuration of one integration, as the product's setup screen collects it.

    Validated when built: every problem is reported at once in one `ConfigError`, each
    naming its field. Stored values are normalised (the accounts URL to `https://host`,
    the account ID to lower case, owners parsed, store references in canonical form).
    It holds no secret: only references to where secrets live.

    Attributes:
        name: A unique, user-friendly name: 1-64 letters, digits, `-` and `_`, starting
            with a letter or digit (`sales-analytics`).
        accounts_url: The accounts console URL; the rules of `normalize_host` apply.
        account_id: The account ID, a UUID.
        custom_access_details: Optional text shown to end users when they request access
            (at most 400 characters after trimming; newlines allowed).
        integration_owners: The fallback approvers: IdP users and groups (`Owner`s, or
            their text forms `user:a@x.com`, `group:data-owners`, a bare e-mail).
            Required when `resource_owner` is set.
        resource_owner: Which group tag names the resource owner, and which IdP
            attribute its value is (`ResourceOwnerSetting`, or a mapping with `tag_key`
            and `idp_attribute`).
        lease_store: Where leases are kept: `sqlite:///relative/path.db` (default
            `sqlite:///leases.db`), `sqlite:////absolute/path.db` or `postgresql://...`.
        secret_store: Where the service principal's credentials are: `env` (default),
            `env:ID_VAR,SECRET_VAR`, `file:/path`, or a cloud store reference (see
            `SecretStoreRef`).
        allow_custom_host: Accept an accounts URL that is not a Databricks host (a proxy,
            the emulator).
        allow_insecure_http: Accept plain http for a loopback host (the emulator).
        lease_policy: The limits of every lease (`LeasePolicy`, or a mapping with
            `min_ttl` and `max_ttl` in seconds and `max_extensions`): the shortest and
            the longest lease, and how often one may be extended. The command line and
            `lease_tracker()` enforce it.
        audit_sink: Where audit events are delivered besides the store's outbox:
            `jsonl:/path/audit.jsonl` (a JSON Lines file); None: nowhere else.
        owner_tags: Where the resource-owner tag of a group is read (`OwnerTags`, or a
            mapping with `pattern` or `groups`); needs `resource_owner`. `Integration`
            uses it when it is given no `tags=`.
        rate_limits: The client-side rate limits: the published figures by default;
            `"off"` (or None) for none; a table (or text `"patch=1.5,get=10"`) of
            per-class figures, the classes not named keeping the published figure.
        workspace_hosts: Workspace id to host, for the workspaces whose host cannot be
            derived from the account's workspace list (Azure, a proxy, the emulator):
            where `unlocks` and `explain_access` read Unity Catalog.

    Example:
        >>> cfg = IntegrationConfig(
        ...     name="sales-analytics",
        ...     accounts_url="https://accounts.cloud.databricks.com/login",
        ...     account_id="0A1B2C3D-0000-4000-8000-00000000ABCD",
        ...     integration_owners=["group:data-platform", "ann@example.com"],
        ...     resource_owner={"tag_key": "owner", "idp_attribute": "email"},
        ... )
        >>> cfg.accounts_url, [str(o) for o in cfg.integration_owners]
        ('https://accounts.cloud.databricks.com', ['group:data-platform', 'user:ann@example.com'])
        >>> try:
        ...     IntegrationConfig(
        ...         name="sales analytics", accounts_url="http://example.com", account_id="1",
        ...         resource_owner={"tag_key": "owner", "idp_attribute": "email"},
        ...     )
        ... except ConfigError as exc:
        ...     print(exc.fields)
        ('name', 'accounts_url', 'accounts_url', 'account_id', 'integration_owners')
    """

    name: str
    accounts_url: str
    account_id: str
    custom_access_details: str | None = None
    integration_owners: tuple[Owner, ...] = attrs.field(default=(), converter=_owners_in)
    resource_owner: ResourceOwnerSetting | None = attrs.field(default=None, converter=_setting_in)
    lease_store: str = _DEFAULT_LEASE_STORE
    secret_store: str = _DEFAULT_SECRET_STORE
    allow_custom_host: bool = False
    allow_insecure_http: bool = False
    lease_policy: LeasePolicy = attrs.field(factory=LeasePolicy, converter=_policy_in)
    audit_sink: str | None = None
    owner_tags: OwnerTags | None = attrs.field(default=None, converter=_tags_in)
    rate_limits: RateLimits | None = attrs.field(default=_PUBLISHED, converter=_limits_in)
    workspace_hosts: Mapping[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        raw = {field: getattr(self, field) for field in _FIELDS}
        values, problems = _validate(raw)
        if problems:
            raise ConfigError(problems)
        for field, value in values.items():
            object.__setattr__(self, field, value)

    # -- derived values -------------------------------------------------------------------

    @property
    def cloud(self) -> Cloud:
        """The cloud of `accounts_url`; `Cloud.CUSTOM` for a proxy or the emulator."""
        return cloud_for_host(self.accounts_url)

    @property
    def secret_store_ref(self) -> SecretStoreRef:
        """`secret_store`, parsed."""
        return SecretStoreRef.parse(self.secret_store)

    @property
    def lease_store_ref(self) -> LeaseStoreRef:
        """`lease_store`, parsed."""
        return LeaseStoreRef.parse(self.lease_store)

    def account_config(self, **options: Unpack[_AccountOptions]) -> AccountConfig:
        """The `AccountConfig` of this integration's account (same host rules).

        Args:
            **options: Other `AccountConfig` fields (`timeout`, `scim_version`, ...).

        Example:
            >>> cfg = IntegrationConfig(
            ...     name="x", accounts_url="accounts.azuredatabricks.net",
            ...     account_id="0a1b2c3d-0000-4000-8000-00000000abcd",
            ... )
            >>> cfg.account_config(timeout=5).host
            'https://accounts.azuredatabricks.net'
        """
        options.setdefault("rate_limits", self.rate_limits)
        return AccountConfig(
            host=self.accounts_url,
            account_id=self.account_id,
            allow_custom_host=self.allow_custom_host,
            allow_insecure_http=self.allow_insecure_http,
            **options,
        )

    def secret_store_instance(self, *, environ: Mapping[str, str] | None = None) -> SecretStore:
        """The secret store `secret_store` names (see `open_secret_store`).

        Raises:
            ConfigError: For a cloud store whose optional extra is not available.
        """
        return self.secret_store_ref.open(
            environ=environ, allow_insecure_http=self.allow_insecure_http
        )

    def audit_sink_instance(self) -> EventSink | None:
        """The event sink `audit_sink` names, or None when there is none."""
        return None if self.audit_sink is None else open_audit_sink(self.audit_sink)

    def tag_source(self) -> TagSource | None:
        """The owner tag source `owner_tags` describes, or None."""
        return None if self.owner_tags is None else self.owner_tags.source()

    def lease_tracker(
        self,
        manager: MembershipManager,
        *,
        store: LeaseStore | None = None,
        events: EventSink | None = None,
        clock: Clock | None = None,
    ) -> LeaseTracker:
        """A `LeaseTracker` under this integration's policy, store and audit sink.

        What the command line uses, so a connector built on it enforces the same limits
        (`lease_policy`) and audits to the same place (`audit_sink`).

        Example::

            config = da.IntegrationConfig.from_toml("integration.toml")
            client = da.AccountClient(config.account_config(),
                                      secrets=config.secret_store_instance())
            tracker = config.lease_tracker(da.MembershipManager(client))

        Args:
            manager: The membership manager of the account's client.
            store: The lease store; default `lease_store` opened (closing it is yours:
                `tracker.store.close()`).
            events: Where events go; default the `audit_sink` (None: kept in the store).
            clock: Time, injectable for tests.
        """
        from databricks_access._leases.tracker import LeaseTracker  # noqa: PLC0415

        policy = self.lease_policy
        return LeaseTracker(
            manager,
            store=self.lease_store_ref.open() if store is None else store,
            events=self.audit_sink_instance() if events is None else events,
            clock=clock,
            min_ttl=policy.min_ttl,
            max_ttl=policy.max_ttl,
            max_extensions=policy.max_extensions,
        )

    def async_lease_tracker(
        self,
        manager: AsyncMembershipManager,
        *,
        store: LeaseStore | AsyncLeaseStore | None = None,
        events: EventSink | None = None,
        clock: Clock | None = None,
    ) -> AsyncLeaseTracker:
        """The async twin of `lease_tracker`: an `AsyncLeaseTracker` under this policy."""
        from databricks_access._leases.tracker import AsyncLeaseTracker  # noqa: PLC0415

        policy = self.lease_policy
        return AsyncLeaseTracker(
            manager,
            store=self.lease_store_ref.open() if store is None else store,
            events=self.audit_sink_instance() if events is None else events,
            clock=clock,
            min_ttl=policy.min_ttl,
            max_ttl=policy.max_ttl,
            max_extensions=policy.max_extensions,
        )

    # -- loading and saving ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain data (JSON and TOML ready); `from_dict` reads it back.

        Fields that are unset (None), and a default `lease_policy`, are left out. It holds
        no secret.

        Example:
            >>> cfg = IntegrationConfig(
            ...     name="x", accounts_url="https://accounts.cloud.databricks.com",
            ...     account_id="0a1b2c3d-0000-4000-8000-00000000abcd",
            ... )
            >>> IntegrationConfig.from_dict(cfg.to_dict()) == cfg
            True
        """
        data: dict[str, Any] = {
            "name": self.name,
            "accounts_url": self.accounts_url,
            "account_id": self.account_id,
        }
        if self.custom_access_details is not None:
            data["custom_access_details"] = self.custom_access_details
        data["integration_owners"] = [str(owner) for owner in self.integration_owners]
        setting = self.resource_owner
        if setting is not None:
            data["resource_owner"] = {
                "tag_key": setting.tag_key,
                "idp_attribute": setting.idp_attribute,
            }
        data["lease_store"] = self.lease_store
        data["secret_store"] = self.secret_store
        data["allow_custom_host"] = self.allow_custom_host
        data["allow_insecure_http"] = self.allow_insecure_http
        if self.lease_policy != LeasePolicy():
            data["lease_policy"] = self.lease_policy.to_dict()
        if self.audit_sink is not None:
            data["audit_sink"] = self.audit_sink
        if self.owner_tags is not None:
            data["owner_tags"] = self.owner_tags.to_dict()
        if self.rate_limits != _PUBLISHED:
            data["rate_limits"] = _limits_out(self.rate_limits)
        if self.workspace_hosts:
            data["workspace_hosts"] = dict(self.workspace_hosts)
        return data

    @classmethod
    def from_dict(cls, data: object) -> IntegrationConfig:
        """Build a configuration from plain data (a parsed JSON object or TOML table).

        Unknown keys, missing required keys (`name`, `accounts_url`, `account_id`) and
        values of the wrong type are problems, all reported together; nothing but
        `ConfigError` is ever raised, whatever the input.

        Example:
            >>> IntegrationConfig.from_dict({
            ...     "name": "x", "accounts_url": "accounts.cloud.databricks.com",
            ...     "account_id": "0a1b2c3d-0000-4000-8000-00000000abcd",
            ...     "integration_owners": ["group:data-platform"],
            ... }).integration_owners
            (Owner(kind=<OwnerKind.GROUP: 'group'>, name='data-platform'),)
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"must be a table of settings (a JSON object), not {_kind_of(data)}", "config"
            )
        problems: list[ConfigProblem] = []
        known: dict[str, object] = {}
        for key, value in data.items():
            if key in _FIELDS:
                known[key] = value
            else:
                problems.append(ConfigProblem(_key_shown(key), _unknown_key(key, _FIELDS)))
        problems.extend(
            ConfigProblem(field, "is required") for field in _REQUIRED if field not in known
        )
        values, found = _validate(known)
        problems.extend(found)
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> IntegrationConfig:
        """Build a configuration from JSON text or a JSON file.

        A `str` whose first non-blank character is `{` is JSON text; any other `str` or
        path is a file to read (UTF-8). Duplicate keys are problems.

        Raises:
            ConfigError: The file cannot be read, the JSON is malformed, or the settings
                are invalid (every problem at once).
        """
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text = source
        else:
            text = _read_text(source)
        duplicates: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for key, value in items:
                if key in seen:
                    duplicates.append(key)
                seen[key] = value
            return seen

        try:
            data = loads(text, max_bytes=1024 * 1024, object_pairs_hook=pairs)
            error = None
        except json.JSONDecodeError as exc:
            data, error = (
                None,
                f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            )
        except (RecursionError, ValueError):
            data, error = None, "is not valid JSON (or is nested too deeply)"
        if error is not None:
            raise ConfigError(error, "config")
        problems = [
            ConfigProblem(_key_shown(key), "appears more than once")
            for key in dict.fromkeys(duplicates)
        ]
        try:
            config = cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError([*problems, *exc.problems]) from None
        if problems:
            raise ConfigError(problems)
        return config

    @classmethod
    def from_toml(
        cls, path: str | os.PathLike[str], *, table: str | None = None
    ) -> IntegrationConfig:
        """Build a configuration from a TOML file.

        Args:
            path: The file (UTF-8).
            table: A dotted table holding the settings, such as `tool.databricks_access`
                in a `pyproject.toml`; None for the top level.

        Raises:
            ConfigError: The file cannot be read, the TOML is malformed, the table is
                missing, or the settings are invalid (every problem at once).
        """
        if sys.version_info >= (3, 11):
            import tomllib  # noqa: PLC0415 - imported when used
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]  # noqa: PLC0415

        text = _read_text(path)
        try:
            data: object = tomllib.loads(text)
            error = None
        except tomllib.TOMLDecodeError as exc:
            data, error = None, f"is not valid TOML: {exc}"
        except RecursionError:
            data, error = None, "is not valid TOML (nested too deeply)"
        if error is not None:
            raise ConfigError(error, "config")
        if table:
            for part in table.split("."):
                inner = data.get(part) if isinstance(data, Mapping) else None
                if not isinstance(inner, Mapping):
                    raise ConfigError(f"has no table [{table}]", "config")
                data = inner
        return cls.from_dict(data)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, prefix: str = "DATABRICKS_ACCESS_"
    ) -> IntegrationConfig:
        """Build a configuration from environment variables.

        Each field is `<prefix><FIELD>` in upper case: `DATABRICKS_ACCESS_NAME`,
        `..._ACCOUNTS_URL`, `..._ACCOUNT_ID`, `..._CUSTOM_ACCESS_DETAILS`,
        `..._INTEGRATION_OWNERS` (comma-separated), `..._RESOURCE_OWNER_TAG_KEY` and
        `..._RESOURCE_OWNER_IDP_ATTRIBUTE` (both or neither), `..._LEASE_STORE`,
        `..._SECRET_STORE`, `..._ALLOW_CUSTOM_HOST` and `..._ALLOW_INSECURE_HTTP`
        (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`), `..._AUDIT_SINK`,
        `..._LEASE_POLICY_MIN_TTL`, `..._LEASE_POLICY_MAX_TTL` (seconds) and
        `..._LEASE_POLICY_MAX_EXTENSIONS`, `..._OWNER_TAGS_PATTERN`. An empty variable
        counts as unset; other variables with the prefix are ignored. Problems name the
        variable.
        `..._SECRET_STORE`, `..._RATE_LIMITS` (`published`, `off`, `patch=1.5,get=10`),
        `..._ALLOW_CUSTOM_HOST` and `..._ALLOW_INSECURE_HTTP`
        (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`). An empty variable counts as
        unset; other variables with the prefix are ignored. Problems name the variable.

        Example:
            >>> IntegrationConfig.from_env({
            ...     "DATABRICKS_ACCESS_NAME": "sales",
            ...     "DATABRICKS_ACCESS_ACCOUNTS_URL": "accounts.cloud.databricks.com",
            ...     "DATABRICKS_ACCESS_ACCOUNT_ID": "0a1b2c3d-0000-4000-8000-00000000abcd",
            ...     "DATABRICKS_ACCESS_INTEGRATION_OWNERS": "group:owners, ann@example.com",
            ... }).integration_owners[1]
            Owner(kind=<OwnerKind.USER: 'user'>, name='ann@example.com')

        Raises:
            ConfigError: Listing every missing or invalid variable.
        """
        if environ is None:
            environ = os.environ
        if not isinstance(prefix, str):
            raise ConfigError("must be a string", "prefix")
        names = {
            field: f"{prefix}{field.upper()}" for field in _FIELDS if field not in _TABLE_FIELDS
        }
        for table in _TABLE_FIELDS:
            for key in _TABLE_KEYS[table]:
                names[f"{table}.{key}"] = f"{prefix}{table.upper()}_{key.upper()}"

        def read(field: str) -> str | None:
            value = environ.get(names[field], "")
            return value.strip() or None

        raw: dict[str, object] = {}
        problems: list[ConfigProblem] = []
        for field in _FIELDS:
            if field in _TABLE_FIELDS:
                continue
            value = read(field)
            if value is None:
                if field in _REQUIRED:
                    problems.append(ConfigProblem(names[field], "is not set"))
                continue
            if field.startswith("allow_"):
                flag = _env_flag(value)
                if flag is None:
                    problems.append(
                        ConfigProblem(names[field], "must be true or false (or 1/0, yes/no)")
                    )
                    continue
                raw[field] = flag
            else:
                raw[field] = value
        tag_key, attribute = read("resource_owner.tag_key"), read("resource_owner.idp_attribute")
        if tag_key is not None or attribute is not None:
            # Only the variables that are set: a missing one is reported as required.
            raw["resource_owner"] = {
                part: value
                for part, value in (("tag_key", tag_key), ("idp_attribute", attribute))
                if value is not None
            }
        policy: dict[str, object] = {}
        for key in _TABLE_KEYS["lease_policy"]:
            value = read(f"lease_policy.{key}")
            if value is None:
                continue
            number = _env_number(value, whole=key == "max_extensions")
            if number is None:
                problems.append(
                    ConfigProblem(names[f"lease_policy.{key}"], f"{_shown(value)} is not a number")
                )
            else:
                policy[key] = number
        if policy:
            raw["lease_policy"] = policy
        pattern = read("owner_tags.pattern")
        if pattern is not None:
            raw["owner_tags"] = {"pattern": pattern}
        _, found = _validate(raw)
        problems.extend(
            ConfigProblem(
                names.get(problem.field)
                or names.get(problem.field.partition(".")[0], problem.field),
                problem.message,
            )
            for problem in found
        )
        if problems:
            raise ConfigError(problems)
        return cls.from_dict(raw)


_TABLE_KEYS: Mapping[str, tuple[str, ...]] = {
    "resource_owner": _RESOURCE_OWNER_FIELDS,
    "lease_policy": ("min_ttl", "max_ttl", "max_extensions"),
    "owner_tags": ("pattern",),
}


def _env_number(value: str, *, whole: bool) -> float | int | None:
    try:
        return int(value) if whole else float(value)
    except ValueError:
        return None


def _env_flag(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    return None


def _read_text(path: object) -> str:
    try:
        target = Path(os.fspath(path))  # type: ignore[call-overload]
    except TypeError:
        raise ConfigError(f"must be a path or text, not {_kind_of(path)}", "path") from None
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {str(target)!r}: {exc.strerror or type(exc).__name__}", "path"
        ) from None
    except ValueError:  # an embedded NUL character
        raise ConfigError("is not a valid path", "path") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{str(target)!r} is not UTF-8 text", "path") from None


# -- approvers --------------------------------------------------------------------------------


class ApproverSource(enum.Enum):
    """Where the approvers of a group came from."""

    RESOURCE_OWNER = "resource_owner"
    """The owner resolver found the group's resource owners."""
    INTEGRATION_OWNER = "integration_owner"
    """No resource owner was found (or the resolver failed): the integration owners."""
    NONE = "none"
    """Nobody: no resource owner was found and no integration owner is configured."""


@attrs.frozen
class Approvers:
    """Who may approve access to a group, where they came from, and what went wrong.

    With `source` `ApproverSource.NONE`, `owners` is empty and **approval is impossible**:
    `Integration.is_approver` answers False for everyone.

    Attributes:
        owners: The approvers: IdP users and groups.
        source: Whether they are the resource owners or the integration-owner fallback.
        problems: Why the resource owners could not be used (the resolver failed, timed
            out, answered garbage, or none is configured); plain words, for logs and UIs.

    Example:
        >>> approvers = Approvers((Owner.user("ann@example.com"),), ApproverSource.INTEGRATION_OWNER)
        >>> approvers.can_approve, [str(o) for o in approvers.users]
        (True, ['user:ann@example.com'])
    """  # noqa: E501

    _repr_html_ = render_html

    owners: tuple[Owner, ...]
    source: ApproverSource
    problems: tuple[str, ...] = ()

    @property
    def can_approve(self) -> bool:
        """Whether anybody at all may approve (False for `ApproverSource.NONE`)."""
        return bool(self.owners)

    @property
    def users(self) -> tuple[Owner, ...]:
        """The user owners."""
        return tuple(owner for owner in self.owners if owner.kind is OwnerKind.USER)

    @property
    def groups(self) -> tuple[Owner, ...]:
        """The IdP group owners (their members may approve)."""
        return tuple(owner for owner in self.owners if owner.kind is OwnerKind.GROUP)


class _TimedOutError(Exception):
    """A bounded call did not answer in time (internal)."""


class _BusyError(Exception):
    """Too many earlier calls are still running in worker threads (internal)."""


# Worker threads still running (stuck resolvers); beyond this, calls are refused rather
# than piling up threads that never end.
_MAX_BUSY = 8
_MAX_DETAIL = 200

_Outcome = tuple[bool, Any]


class _Workers:
    """Runs blocking calls in daemon threads, so a stuck call can be abandoned.

    A daemon thread, not an executor: a resolver that never returns must not block the
    interpreter's exit, nor `asyncio.run`'s shutdown of its default executor.
    """

    def __init__(self, limit: int = _MAX_BUSY) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._limit = limit

    def _start(self, call: Callable[[], Any], deliver: Callable[[_Outcome], None]) -> None:
        with self._lock:
            if self._busy >= self._limit:
                raise _BusyError
            self._busy += 1

        def work() -> None:
            try:
                try:
                    outcome: _Outcome = (True, call())
                except Exception as exc:  # noqa: BLE001 - delivered to the caller
                    outcome = (False, exc)
                deliver(outcome)
            finally:
                with self._lock:
                    self._busy -= 1

        threading.Thread(target=work, name="databricks-access-owners", daemon=True).start()

    def call(self, call: Callable[[], T], timeout: float | None) -> T:
        """`call()` in a worker thread, waiting at most `timeout` real seconds."""
        if timeout is None:
            return call()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def deliver(outcome: _Outcome) -> None:
            if outcome[0]:
                future.set_result(outcome[1])
            else:
                future.set_exception(outcome[1])

        self._start(call, deliver)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the call itself raised a TimeoutError
            raise _TimedOutError from None

    async def acall(self, call: Callable[[], T]) -> T:
        """`call()` in a worker thread, awaited (bound it with `_bounded`)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        def settle(outcome: _Outcome) -> None:
            if waiter.done():
                return  # abandoned (timed out or cancelled)
            if outcome[0]:
                waiter.set_result(outcome[1])
            else:
                waiter.set_exception(outcome[1])

        def deliver(outcome: _Outcome) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, outcome)

        self._start(call, deliver)
        return await waiter


async def _bounded(awaitable: Any, timeout: float | None) -> Any:
    """Await with a timeout, telling our timeout apart from one raised inside."""
    if timeout is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.wait_for(task, timeout)
    except asyncio.TimeoutError:
        if task.cancelled():
            raise _TimedOutError from None
        raise


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function)


def _collect(result: object) -> object:
    """Materialise a resolver's answer inside the bounded call (iterating may be slow)."""
    if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
        return result
    return tuple(result)


def _as_owners(result: object) -> tuple[tuple[Owner, ...], str | None]:
    if inspect.iscoroutine(result):
        result.close()  # a sync resolver that returned a coroutine: never awaited
        return (), "the owner resolver returned a coroutine; use AsyncIntegration for it"
    if not isinstance(result, tuple):
        return (), f"the owner resolver returned {_kind_of(result)}, not a list of owners"
    owners: list[Owner] = []
    for item in result:
        if isinstance(item, Owner):
            owners.append(item)
        elif isinstance(item, str):
            try:
                owners.append(Owner.parse(item))
            except ConfigError as exc:
                return (
                    (),
                    f"the owner resolver returned a malformed owner: {exc.problems[0].message}",
                )
        else:
            return (), f"the owner resolver returned {_kind_of(item)} among the owners"
    return tuple(dict.fromkeys(owners)), None


def _failure(what: str, exc: BaseException) -> str:
    detail = str(exc).strip()
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    return f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else "")


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    return seconds(timeout, "timeout", positive=True)


def _check_group(group: object) -> Group | str:
    if isinstance(group, Group):
        return group
    if isinstance(group, str) and group.strip():
        return group.strip()
    raise ConfigError(
        f"must be a databricks_access.Group or a group id, not {_kind_of(group)}", "group"
    )


def _usable_identity(identity: object) -> bool:
    return isinstance(identity, str) and bool(identity.strip()) and not _CONTROL.search(identity)


class _IntegrationBase:
    """What both integrations decide the same way (no I/O)."""

    def __init__(
        self,
        config: IntegrationConfig,
        *,
        resolver: object | None,
        directory: object | None,
        tags_given: bool,
        timeout: float | None,
    ) -> None:
        if not isinstance(config, IntegrationConfig):
            raise ConfigError("must be a databricks_access.IntegrationConfig", "config")
        self._config = config
        self._timeout = _check_timeout(timeout)
        self._resolver = resolver
        self._directory = directory
        self._workers = _Workers()
        if directory is None and any(o.kind is OwnerKind.GROUP for o in config.integration_owners):
            raise ConfigError(
                "integration_owners names IdP groups: pass directory= (or client=) so that "
                "group membership can be checked",
                "directory",
            )
        self._setup_problems: tuple[str, ...] = ()
        setting = config.resource_owner
        if setting is not None and resolver is None:
            hint = (
                "set owner_tags in the configuration (or pass tags=), with a directory= or client="
                if not tags_given
                else "directory= or client="
            )
            self._setup_problems = (
                (
                    f"resource_owner is configured (tag {setting.tag_key!r}) but this "
                    f"integration has no owner resolver: pass owners=, or {hint}"
                ),
            )

    @property
    def config(self) -> IntegrationConfig:
        """The integration's configuration."""
        return self._config

    @property
    def custom_access_details(self) -> str | None:
        """The text shown to end users when they request access, if any."""
        return self._config.custom_access_details

    @property
    def timeout(self) -> float | None:
        """Seconds (real time) a resolver or directory call may take; None: unbounded."""
        return self._timeout

    def _resolved(self, result: object, problems: list[str]) -> Approvers | None:
        owners, problem = _as_owners(result)
        if problem is not None:
            problems.append(problem)
            return None
        if owners:
            return Approvers(owners, ApproverSource.RESOURCE_OWNER, tuple(problems))
        return None

    def _fallback(self, problems: list[str]) -> Approvers:
        owners = self._config.integration_owners
        if owners:
            return Approvers(owners, ApproverSource.INTEGRATION_OWNER, tuple(problems))
        return Approvers((), ApproverSource.NONE, tuple(problems))

    def _timed_out(self, what: str) -> str:
        return (
            f"{what} did not answer within {self._timeout:g} s; "
            "it was abandoned and the integration owners apply"
        )

    @staticmethod
    def _busy(what: str) -> str:
        return f"{what} is still busy with earlier calls that did not finish; it was not asked"

    def _direct_match(self, identity: object, approvers: Approvers) -> bool | None:
        """True/False when decided without the directory; None when groups must be asked."""
        if not isinstance(approvers, Approvers):
            raise ConfigError("must be the Approvers from approvers_for", "approvers")
        if not _usable_identity(identity) or not isinstance(identity, str):
            return False
        if any(owner.matches_user(identity) for owner in approvers.owners):
            return True
        if not approvers.groups:
            return False
        if self._directory is None:
            raise ConfigError(
                "the approvers include IdP groups: pass directory= (or client=) so that "
                "group membership can be checked",
                "directory",
            )
        return None

    def _directory_timeout(self, exc: Exception) -> RequestTimeoutError:
        if isinstance(exc, _BusyError):
            return RequestTimeoutError(self._busy("the identity directory"))
        return RequestTimeoutError(
            f"the identity directory did not answer within {self._timeout:g} s"
        )


class Integration(_IntegrationBase):
    """An integration's approval rules: who may approve access to a group.

    `approvers_for(group)` follows the chain: the resource owners (from the owner
    resolver) first; the integration owners when the resolver finds none, fails, or
    times out; nobody (`ApproverSource.NONE`) when neither exists. A failing resolver
    never grants anything: its failure falls back and is reported in
    `Approvers.problems`.

    A resolver runs in a worker thread and is abandoned after `timeout` seconds of real
    time (a blocking call cannot be bounded by the injected clock); the thread is left to
    finish on its own, and at most 8 such threads are kept before calls are refused.
    With `timeout=None` it runs in the calling thread, unbounded.

    Example::

        config = da.IntegrationConfig.from_toml("integration.toml")
        integration = da.Integration(config, client=client, tags=da.MappingTagSource(tags))
        approvers = integration.approvers_for(group)
        if integration.is_approver("bob@example.com", approvers):
            ...

    Args:
        config: The integration's configuration.
        client: The account client; it reads a group given by id, and serves as the
            default identity directory (`DatabricksDirectory`).
        owners: The owner resolver. Default: a `TagOwnerResolver` when the config has a
            `resource_owner` and `tags` is given; else none.
        directory: The identity directory (default `DatabricksDirectory(client)` when a
            client is given). Needed when owners include IdP groups.
        tags: Where group tags come from, for the default tag resolver (default: the
            configuration's `owner_tags`).
        clock: The clock of the default directory's cache (default the client's).
        timeout: Seconds of real time a resolver or directory call may take; None for
            no bound.

    Raises:
        ConfigError: A bad argument, or integration owners naming IdP groups without a
            directory to check them.
    """

    def __init__(
        self,
        config: IntegrationConfig,
        *,
        client: AccountClient | None = None,
        owners: OwnerResolver | None = None,
        directory: IdentityDirectory | None = None,
        tags: TagSource | None = None,
        clock: Clock | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        if directory is None and client is not None:
            directory = DatabricksDirectory(client, clock=clock)
        setting = config.resource_owner if isinstance(config, IntegrationConfig) else None
        if tags is None and isinstance(config, IntegrationConfig):
            tags = config.tag_source()  # the configuration's owner_tags, if any
        if owners is None and setting is not None and tags is not None and directory is not None:
            owners = TagOwnerResolver(setting, tags, directory)
        super().__init__(
            config,
            resolver=owners,
            directory=directory,
            tags_given=tags is not None,
            timeout=timeout,
        )
        self._client = client
        self._owners: OwnerResolver | None = owners
        self._identity: IdentityDirectory | None = directory

    def __repr__(self) -> str:
        return f"Integration(name={self._config.name!r}, owners={self._owners!r})"

    @property
    def owners(self) -> OwnerResolver | None:
        """The owner resolver in use, if any."""
        return self._owners

    @property
    def directory(self) -> IdentityDirectory | None:
        """The identity directory in use, if any."""
        return self._identity

    def _resolve(self, resolver: OwnerResolver, group: Group | str) -> object:
        if isinstance(group, str):
            group = self._client.groups.get(group) if self._client else Group(id=group)
        return _collect(resolver.resolve(group))

    def approvers_for(self, group: Group | str) -> Approvers:
        """Who may approve access to `group` (a `Group`, or a group id), and why.

        The resource owners when the resolver finds some; else the integration owners;
        else nobody (`ApproverSource.NONE`, and then nobody can approve). A resolver that
        raises, times out or answers garbage falls back the same way, with the reason in
        `problems`. Never raises for a resolver's failure.

        Raises:
            ConfigError: `group` is neither a `Group` nor a non-empty id.
        """
        checked = _check_group(group)
        problems = list(self._setup_problems)
        resolver = self._owners
        if resolver is not None:
            try:
                result = self._workers.call(lambda: self._resolve(resolver, checked), self._timeout)
            except _TimedOutError:
                problems.append(self._timed_out("the owner resolver"))
            except _BusyError:
                problems.append(self._busy("the owner resolver"))
            except Exception as exc:  # noqa: BLE001 - any failure falls back, reported
                problems.append(_failure("the owner resolver failed", exc))
            else:
                approvers = self._resolved(result, problems)
                if approvers is not None:
                    return approvers
        return self._fallback(problems)

    def is_approver(self, identity: str, approvers: Approvers) -> bool:
        """Whether `identity` (a user name) may approve, given `approvers_for`'s answer.

        A user owner matches case-insensitively; a group owner matches when the identity
        is a (nested) member of that IdP group, per the directory. Self-approval (the
        requester approving their own request) is refused by the caller, which knows the
        requester.

        Raises:
            ConfigError: Group owners must be checked and there is no directory.
            RequestTimeoutError: The directory did not answer within `timeout`.
            DatabricksAccessError: The directory failed (it never counts as a yes).
        """
        decided = self._direct_match(identity, approvers)
        if decided is not None:
            return decided
        directory = self._identity
        assert directory is not None  # noqa: S101 - _direct_match checked it

        def ask() -> bool:
            return any(directory.is_member(identity, g.name) is True for g in approvers.groups)

        try:
            return self._workers.call(ask, self._timeout)
        except (_TimedOutError, _BusyError) as exc:
            raise self._directory_timeout(exc) from None


def _membership_call(directory: Any, identity: str, group: Owner) -> Callable[[], object]:
    def call() -> object:
        answer: object = directory.is_member(identity, group.name)
        return answer

    return call


class AsyncIntegration(_IntegrationBase):
    """The asyncio twin of `Integration`: same rules, awaited.

    Resolvers and directories may be sync or async. Async ones are awaited on the loop
    and cancelled after `timeout`; sync ones run in a worker thread (never on the loop)
    and are abandoned after `timeout`.

    Example::

        integration = da.AsyncIntegration(config, client=async_client, owners=resolver)
        approvers = await integration.approvers_for(group)
        await integration.is_approver("bob@example.com", approvers)

    Args:
        config: The integration's configuration.
        client: The async account client (default directory: `AsyncDatabricksDirectory`).
        owners: The owner resolver, sync or async.
        directory: The identity directory, sync or async.
        tags: Where group tags come from, for the default tag resolver (default: the
            configuration's `owner_tags`).
        clock: The clock of the default directory's cache (default the client's).
        timeout: Seconds of real time a resolver or directory call may take; None for
            no bound.
    """

    def __init__(
        self,
        config: IntegrationConfig,
        *,
        client: AsyncAccountClient | None = None,
        owners: OwnerResolver | AsyncOwnerResolver | None = None,
        directory: IdentityDirectory | AsyncIdentityDirectory | None = None,
        tags: TagSource | None = None,
        clock: Clock | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        if directory is None and client is not None:
            directory = AsyncDatabricksDirectory(client, clock=clock)
        setting = config.resource_owner if isinstance(config, IntegrationConfig) else None
        if tags is None and isinstance(config, IntegrationConfig):
            tags = config.tag_source()  # the configuration's owner_tags, if any
        if owners is None and setting is not None and tags is not None and directory is not None:
            if _is_async(directory.is_member):
                owners = AsyncTagOwnerResolver(setting, tags, directory)  # type: ignore[arg-type]
            else:
                owners = TagOwnerResolver(setting, tags, directory)  # type: ignore[arg-type]
        super().__init__(
            config,
            resolver=owners,
            directory=directory,
            tags_given=tags is not None,
            timeout=timeout,
        )
        self._client = client
        self._owners: OwnerResolver | AsyncOwnerResolver | None = owners
        self._identity: IdentityDirectory | AsyncIdentityDirectory | None = directory

    def __repr__(self) -> str:
        return f"AsyncIntegration(name={self._config.name!r}, owners={self._owners!r})"

    @property
    def owners(self) -> OwnerResolver | AsyncOwnerResolver | None:
        """The owner resolver in use, if any."""
        return self._owners

    @property
    def directory(self) -> IdentityDirectory | AsyncIdentityDirectory | None:
        """The identity directory in use, if any."""
        return self._identity

    async def _resolve(
        self, resolver: OwnerResolver | AsyncOwnerResolver, group: Group | str
    ) -> object:
        if isinstance(group, str):
            group = await self._client.groups.get(group) if self._client else Group(id=group)
        if _is_async(resolver.resolve):
            return _collect(await resolver.resolve(group))  # type: ignore[misc]
        found = group
        return await self._workers.acall(lambda: _collect(resolver.resolve(found)))

    async def approvers_for(self, group: Group | str) -> Approvers:
        """Who may approve access to `group`, and why (see `Integration.approvers_for`)."""
        checked = _check_group(group)
        problems = list(self._setup_problems)
        resolver = self._owners
        if resolver is not None:
            try:
                result = await _bounded(self._resolve(resolver, checked), self._timeout)
            except _TimedOutError:
                problems.append(self._timed_out("the owner resolver"))
            except _BusyError:
                problems.append(self._busy("the owner resolver"))
            except Exception as exc:  # noqa: BLE001 - any failure falls back, reported
                problems.append(_failure("the owner resolver failed", exc))
            else:
                approvers = self._resolved(result, problems)
                if approvers is not None:
                    return approvers
        return self._fallback(problems)

    async def is_approver(self, identity: str, approvers: Approvers) -> bool:
        """Whether `identity` may approve (see `Integration.is_approver`)."""
        decided = self._direct_match(identity, approvers)
        if decided is not None:
            return decided
        directory = self._identity
        assert directory is not None  # noqa: S101 - _direct_match checked it

        async def ask() -> bool:
            for group in approvers.groups:
                if _is_async(directory.is_member):
                    answer = await directory.is_member(identity, group.name)  # type: ignore[misc]
                else:
                    answer = await self._workers.acall(_membership_call(directory, identity, group))
                if answer is True:
                    return True
            return False

        try:
            result: bool = await _bounded(ask(), self._timeout)
        except (_TimedOutError, _BusyError) as exc:
            raise self._directory_timeout(exc) from None
        return result
