"""Secret store references: the `secret_store` text of a configuration, parsed and opened.

`SecretStoreRef.parse` dispatches on the kind; each cloud store's module owns the syntax
of its own references (`check_ref`) and builds its store from one (`open_ref`). No cloud
SDK is imported until a store is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, cast
from urllib.parse import parse_qsl, urlencode

import attrs

from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._secrets import aws, azure, gcp, vault
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
# The options a reference may carry after `?`, in the order they are written back.
_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "aws-secrets-manager": aws.REF_OPTIONS,
    "vault": vault.REF_OPTIONS,
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
    options = dict(ref.options)
    if ref.kind == "aws-secrets-manager":
        return aws.open_ref(ref.location, options)
    if ref.kind == "azure-key-vault":
        return azure.open_ref(ref.location)
    if ref.kind == "gcp-secret-manager":
        return gcp.open_ref(ref.location)
    return vault.open_ref(
        ref.location, options, environ=environ, allow_insecure_http=allow_insecure_http
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
    location: str | None
    if kind == "aws-secrets-manager":
        location, problem = aws.check_ref(rest, dict(options))
    elif kind == "azure-key-vault":
        location, problem = azure.check_ref(rest)
    elif kind == "gcp-secret-manager":
        location, problem = gcp.check_ref(rest)
    elif kind == "vault":
        location, problem = vault.check_ref(rest, dict(options))
    else:
        location, problem = None, None
    if location is not None:
        return SecretStoreRef(cast("SecretStoreKind", kind), location, options=options), None
    if problem is not None:
        return None, problem
    return (
        None,
        f"{shown(stripped)} is not a secret store reference; use one of: {_REFERENCE_FORMS}",
    )


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
