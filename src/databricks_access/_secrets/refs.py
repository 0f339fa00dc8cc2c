"""Secret store references: the `secret_store` text of a configuration, parsed and opened.

`SecretStoreRef.parse` checks a reference without importing any cloud SDK;
`SecretStoreRef.open` (and `open_secret_store`) builds the store it names, importing the
store's module only then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs

from databricks_access._account.config import check_endpoint, check_host
from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._secrets.base import EnvSecretStore, FileSecretStore, SecretStore
from databricks_access._util.describe import kind_of, shown
from databricks_access._util.redact import url_secret

__all__ = ["SecretStoreKind", "SecretStoreRef", "check_secret_store", "open_secret_store"]

_MAX_REF = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

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
        ref, problem = check_secret_store(text)
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
            return (), f"{usage}; {shown(key)} is not one of them"
        if key in found:
            return (), f"names the option {key} twice"
        if not value.strip():
            return (), f"the option {key} is empty"
        found[key] = value.strip()
    return tuple((key, found[key]) for key in allowed if key in found), None


def check_secret_store(text: object) -> tuple[SecretStoreRef | None, str | None]:
    """`text` parsed as a secret store reference, or None and the problem (no field)."""
    if not isinstance(text, str):
        return None, f"must be a string, not {kind_of(text)}"
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
        f"{shown(stripped)} is not a secret store reference; use one of: {_REFERENCE_FORMS}",
    )


def _check_aws_options(secret: str, options: Mapping[str, str]) -> str | None:
    region = options.get("region")
    if region is not None:
        if not _AWS_REGION.fullmatch(region):
            return f"aws-secrets-manager: region {shown(region)} is not a region like eu-west-1"
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
