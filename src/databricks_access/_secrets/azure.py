"""OAuth client credentials from Azure Key Vault (the `azure` extra).

azure-keyvault-secrets (and azure-identity, for the default credential) are imported when
a store is built, never by `import databricks_access`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Protocol
from urllib.parse import urlsplit

from databricks_access._clock import Clock
from databricks_access._errors import ConfigError, SecretStoreError
from databricks_access._hosts import check_endpoint, check_host
from databricks_access._secrets.cloud import (
    DEFAULT_CACHE_TTL,
    CloudSecretStore,
    call_sdk,
    check_text,
    import_sdk,
)

__all__ = ["AzureKeyVaultStore", "check_ref", "open_ref"]

_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_VERSION = re.compile(r"[0-9A-Za-z]{1,64}")
# Service error codes are identifiers; anything else from a reply is not repeated.
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_STORE = "AzureKeyVaultStore"


class _KeyVaultSecret(Protocol):
    """What is read from a `KeyVaultSecret`."""

    @property
    def value(self) -> str | None:
        """The secret's value."""
        ...


class _SecretClient(Protocol):
    """The one call made on an `azure.keyvault.secrets.SecretClient`."""

    def get_secret(self, name: str, version: str | None = None) -> _KeyVaultSecret:
        """Get a secret (the latest version unless `version` is given)."""
        ...


def _code(value: object) -> str | None:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else None


class AzureKeyVaultStore(CloudSecretStore):
    """Credentials from an Azure Key Vault secret holding the JSON document.

    The secret's value is `{"client_id": "...", "client_secret": "..."}`; other keys are
    ignored. It is read with the secrets/get permission, cached for `cache_ttl` seconds,
    and read again at once with `refresh=True` (after Databricks refused the credentials:
    a rotation). Needs the `azure` extra (`pip install "databricks-access[azure]"`).
    Thread-safe.

    Args:
        vault_url: The vault's URL, `https://<vault>.vault.azure.net`.
        name: The secret's name.
        version: A version to pin; default the latest (enabled) version.
        credential: An azure-identity credential; default `DefaultAzureCredential()`
            (environment, workload identity, managed identity, Azure CLI, ...), built
            on first use and closed by `close`.
        client: A ready `SecretClient` for the vault; left open by `close`.
        cache_ttl: Seconds (or a timedelta) the credentials are served from the cache;
            0 reads the secret at every call.
        clock: The clock whose monotonic time ages the cache (default the system's).

    Raises:
        ConfigError: A bad argument, or the Azure SDK is not installed (naming the extra).

    Example:
        >>> store = AzureKeyVaultStore("https://JIT.vault.azure.net/", "databricks-sp")
        >>> store
        AzureKeyVaultStore('https://jit.vault.azure.net', 'databricks-sp')
        >>> store.where
        "Azure Key Vault secret 'databricks-sp' in https://jit.vault.azure.net"
        >>> store.close()
    """

    def __init__(
        self,
        vault_url: str,
        name: str,
        *,
        version: str | None = None,
        credential: object | None = None,
        client: _SecretClient | None = None,
        cache_ttl: float | dt.timedelta = DEFAULT_CACHE_TTL,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        # The SDK first: a missing extra is the first problem reported.
        self._errors = import_sdk(
            "azure.core.exceptions",
            extra="azure",
            store=_STORE,
            package="azure-keyvault-secrets",
        )
        self._sdk = (
            None
            if client is not None
            else import_sdk(
                "azure.keyvault.secrets",
                extra="azure",
                store=_STORE,
                package="azure-keyvault-secrets",
            )
        )
        self._identity = (
            import_sdk("azure.identity", extra="azure", store=_STORE, package="azure-identity")
            if client is None and credential is None
            else None
        )
        url, problems = check_host(vault_url, allow_custom_host=True, field="vault_url")
        if url is None:
            raise ConfigError(problems)
        name = check_text(name, "name")
        if not _NAME.fullmatch(name):
            raise ConfigError("must be 1-127 letters, digits and dashes", "name")
        if version is not None and (
            not isinstance(version, str) or not _VERSION.fullmatch(version.strip())
        ):
            raise ConfigError("must be a Key Vault secret version (32 hex digits)", "version")
        self._vault_url = url
        self._name = name
        self._version = version.strip() if version is not None else None
        self._injected = client is not None
        self._client: _SecretClient | None = client
        self._credential = credential
        self._own_credential: Any = None

    @property
    def vault_url(self) -> str:
        """The vault's URL."""
        return self._vault_url

    @property
    def name(self) -> str:
        """The secret's name."""
        return self._name

    @property
    def version(self) -> str | None:
        """The pinned version, or None for the latest."""
        return self._version

    @property
    def where(self) -> str:
        """The store in words, as errors name it."""
        text = f"Azure Key Vault secret {self._name!r} in {self._vault_url}"
        return text + (f" (version {self._version})" if self._version else "")

    def __repr__(self) -> str:
        text = f"{type(self).__name__}({self._vault_url!r}, {self._name!r}"
        return text + (f", version={self._version!r})" if self._version else ")")

    def _make_client(self) -> _SecretClient:
        # Called under the cache lock: one client, built on first use.
        if self._client is None:
            assert self._sdk is not None  # noqa: S101 - set when no client is given
            credential = self._credential
            if credential is None:
                assert self._identity is not None  # noqa: S101 - set when none is given
                credential = self._own_credential = self._identity.DefaultAzureCredential()
            # No redirects: azure-core would send the bearer token to the new address.
            client: _SecretClient = self._sdk.SecretClient(
                vault_url=self._vault_url, credential=credential, permit_redirects=False
            )
            self._client = client
        return self._client

    def _read(self, *, refresh: bool) -> str:  # noqa: ARG002 - every read is fresh
        client = call_sdk(self.where, self._make_client, self._explain)
        secret = call_sdk(
            self.where, lambda: client.get_secret(self._name, self._version), self._explain
        )
        value: object = secret.value
        if not isinstance(value, str):
            raise SecretStoreError(f"{self.where}: the secret holds no value")
        return value

    def _explain(self, exc: Exception) -> str:
        errors = self._errors
        error: Any = getattr(exc, "error", None)
        code = _code(getattr(error, "code", None))
        inner = getattr(error, "innererror", None)
        inner_code = _code(inner.get("code")) if isinstance(inner, dict) else None
        tag = f" [{inner_code or code}]" if inner_code or code else ""
        if isinstance(exc, errors.ResourceNotFoundError):
            return f"not found (no such secret or version, or it was deleted){tag}"
        if isinstance(exc, errors.ClientAuthenticationError):
            return (
                "cannot authenticate to Key Vault: the credential failed or was refused "
                f"[{type(exc).__name__}]"
            )
        if isinstance(exc, errors.HttpResponseError):
            status = getattr(exc, "status_code", None)
            if status == 403 and inner_code == "SecretDisabled":
                return f"the secret is disabled: enable it, or pin an enabled version{tag}"
            if status == 403 and inner_code == "ForbiddenByFirewall":
                return f"the vault's firewall refused this client's network{tag}"
            if status == 403:
                return (
                    "access denied: the identity needs the 'Key Vault Secrets User' role "
                    f"(RBAC) or get permission on secrets (access policy){tag}"
                )
            return f"Key Vault answered HTTP {status}{tag}"
        if isinstance(exc, (errors.ServiceRequestError, errors.ServiceResponseError)):
            return f"cannot reach the vault [{type(exc).__name__}]"
        return f"cannot read the secret [{type(exc).__name__}]"

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None and not self._injected:
            close = getattr(client, "close", None)
            if close is not None:
                close()
        credential, self._own_credential = self._own_credential, None
        if credential is not None:
            credential.close()


# -- the `azure-key-vault:` reference -------------------------------------------------------------

_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
)
_REF_USAGE = (
    "azure-key-vault: needs the secret's URL, like "
    "https://<vault>.vault.azure.net/<secret> or .../secrets/<secret>/<version>"
)


def _secret_segments(path: str) -> list[str]:
    segments = [segment for segment in path.split("/") if segment]
    return segments[1:] if segments and segments[0] == "secrets" else segments


def check_ref(rest: str) -> tuple[str | None, str | None]:
    """The secret URL of `azure-key-vault:<rest>`, normalised, or None and the problem."""
    # The vault URL follows the library's URL rules (https, no user information, no
    # fragment); Key Vault hosts are recognised by their suffix below.
    url, problems = check_endpoint(rest, allow_custom_host=True, field="secret_store")
    if url is None:
        return None, f"{_REF_USAGE}: {problems[0].message}" if problems else _REF_USAGE
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None or not host.endswith(_VAULT_SUFFIXES):
        return None, f"{_REF_USAGE}; the host must be a Key Vault host (*.vault.azure.net)"
    if parts.query:
        return None, f"{_REF_USAGE}; remove the query"
    segments = _secret_segments(parts.path)
    valid = (
        1 <= len(segments) <= 2
        and _NAME.fullmatch(segments[0]) is not None
        and (len(segments) == 1 or _VERSION.fullmatch(segments[1]) is not None)
    )
    if not valid:
        return None, _REF_USAGE
    return url, None


def open_ref(url: str) -> AzureKeyVaultStore:
    """The store of a secret URL `check_ref` accepted."""
    parts = urlsplit(url)
    segments = _secret_segments(parts.path)
    return AzureKeyVaultStore(
        f"{parts.scheme}://{parts.netloc}",
        segments[0],
        version=segments[1] if len(segments) > 1 else None,
    )
