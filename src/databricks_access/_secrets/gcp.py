"""OAuth client credentials from Google Cloud Secret Manager (the `gcp` extra).

google-cloud-secret-manager is imported when a store is built, never by
`import databricks_access`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Protocol

from databricks_access._clock import Clock
from databricks_access._durations import seconds
from databricks_access._errors import ConfigError, SecretStoreError
from databricks_access._secrets.cloud import (
    DEFAULT_CACHE_TTL,
    CloudSecretStore,
    call_sdk,
    check_text,
    import_sdk,
)
from databricks_access._util.json import loads

__all__ = ["GcpSecretManagerStore", "check_ref", "open_ref"]

_PROJECT = re.compile(r"[a-z0-9][a-z0-9.:-]{0,62}|[0-9]{1,20}", re.IGNORECASE)
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,255}")
_VERSION = re.compile(r"latest|[1-9][0-9]{0,18}")
_STORE = "GcpSecretManagerStore"
_TRANSPORTS = ("grpc", "rest")
_STATUS = re.compile(r"[A-Z][A-Z_]{0,63}")


class _SecretManagerClient(Protocol):
    """The one call made on a `secretmanager.SecretManagerServiceClient`."""

    def access_secret_version(self, *, name: str, timeout: float) -> Any:
        """`AccessSecretVersion`: the version's payload."""
        ...


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Secret Manager sends with a payload.

    Example:
        >>> crc32c(b"123456789")
        3808858755
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class GcpSecretManagerStore(CloudSecretStore):
    """Credentials from a Google Cloud Secret Manager secret version holding the JSON.

    The version's payload is `{"client_id": "...", "client_secret": "..."}` (UTF-8);
    other keys are ignored. The payload's CRC-32C is checked when the server sends one.
    It is read with `AccessSecretVersion` (the `roles/secretmanager.secretAccessor` role),
    cached for `cache_ttl` seconds, and read again at once with `refresh=True` (after
    Databricks refused the credentials: a rotation adds a new version, which `latest`
    follows). Needs the `gcp` extra (`pip install "databricks-access[gcp]"`). Thread-safe.

    Args:
        project: The project ID or number.
        secret: The secret's ID.
        version: A version number, or `latest` (the default).
        credentials: google-auth credentials; default Application Default Credentials.
        client: A ready `SecretManagerServiceClient`; left open by `close`.
        endpoint: The API endpoint (a regional or private one); default Google's.
        transport: `grpc` (the default) or `rest`.
        timeout: Seconds one read may take, the SDK's own retries included.
        cache_ttl: Seconds (or a timedelta) the credentials are served from the cache;
            0 reads the secret at every call.
        clock: The clock whose monotonic time ages the cache (default the system's).

    Raises:
        ConfigError: A bad argument, or the SDK is not installed (naming the extra).

    Example:
        >>> store = GcpSecretManagerStore("my-project", "databricks-sp")
        >>> store
        GcpSecretManagerStore('my-project', 'databricks-sp')
        >>> store.name
        'projects/my-project/secrets/databricks-sp/versions/latest'
        >>> store.close()
    """

    def __init__(
        self,
        project: str,
        secret: str,
        *,
        version: str | int = "latest",
        credentials: object | None = None,
        client: _SecretManagerClient | None = None,
        endpoint: str | None = None,
        transport: str = "grpc",
        timeout: float = 30.0,
        cache_ttl: float | dt.timedelta = DEFAULT_CACHE_TTL,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        # The SDK first: a missing extra is the first problem reported.
        self._errors = import_sdk(
            "google.api_core.exceptions",
            extra="gcp",
            store=_STORE,
            package="google-cloud-secret-manager",
        )
        self._auth_errors = import_sdk(
            "google.auth.exceptions",
            extra="gcp",
            store=_STORE,
            package="google-cloud-secret-manager",
        )
        self._sdk = (
            None
            if client is not None
            else import_sdk(
                "google.cloud.secretmanager",
                extra="gcp",
                store=_STORE,
                package="google-cloud-secret-manager",
            )
        )
        project = check_text(project, "project")
        if not _PROJECT.fullmatch(project):
            raise ConfigError("must be a project ID or number", "project")
        secret = check_text(secret, "secret")
        if not _SECRET.fullmatch(secret):
            raise ConfigError("must be 1-255 letters, digits, '-' and '_'", "secret")
        text = str(version).strip() if isinstance(version, (str, int)) else ""
        if isinstance(version, bool) or not _VERSION.fullmatch(text):
            raise ConfigError("must be a version number or 'latest'", "version")
        if transport not in _TRANSPORTS:
            raise ConfigError("must be 'grpc' or 'rest'", "transport")
        if endpoint is not None:
            endpoint = check_text(endpoint, "endpoint")
        timeout = seconds(timeout, "timeout", positive=True)
        self._project = project
        self._secret = secret
        self._version = text
        self._credentials = credentials
        self._endpoint = endpoint
        self._transport = transport
        self._timeout = float(timeout)
        self._injected = client is not None
        self._client: _SecretManagerClient | None = client

    @property
    def name(self) -> str:
        """The version's resource name, `projects/P/secrets/S/versions/V`."""
        return f"projects/{self._project}/secrets/{self._secret}/versions/{self._version}"

    @property
    def where(self) -> str:
        """The store in words, as errors name it."""
        return f"GCP Secret Manager secret {self.name}"

    def __repr__(self) -> str:
        text = f"{type(self).__name__}({self._project!r}, {self._secret!r}"
        return text + (f", version={self._version!r})" if self._version != "latest" else ")")

    def _make_client(self) -> _SecretManagerClient:
        # Called under the cache lock: one client, built on first use.
        if self._client is None:
            assert self._sdk is not None  # noqa: S101 - set when no client is given
            options = {"api_endpoint": self._endpoint} if self._endpoint else None
            client: _SecretManagerClient = self._sdk.SecretManagerServiceClient(
                credentials=self._credentials,
                transport=self._transport,
                client_options=options,
            )
            self._client = client
        return self._client

    def _read(self, *, refresh: bool) -> bytes:  # noqa: ARG002 - every read is fresh
        client = call_sdk(self.where, self._make_client, self._explain)
        response = call_sdk(
            self.where,
            lambda: client.access_secret_version(name=self.name, timeout=self._timeout),
            self._explain,
        )
        payload = getattr(response, "payload", None)
        data: object = getattr(payload, "data", None)
        if not isinstance(data, bytes):
            raise SecretStoreError(f"{self.where}: the version holds no payload")
        checksum: object = getattr(payload, "data_crc32c", None)
        if _has_checksum(payload) and checksum != crc32c(data):
            raise SecretStoreError(
                f"{self.where}: the payload does not match its CRC-32C checksum (corrupted)"
            )
        return data

    def _explain(self, exc: Exception) -> str:
        errors = self._errors
        if isinstance(exc, errors.NotFound):
            return "not found (no such project, secret or version) [NOT_FOUND]"
        # gRPC errors map by status (PermissionDenied, FailedPrecondition, ...); REST
        # errors by HTTP status (Forbidden, BadRequest, ...), with the status in the body.
        if isinstance(exc, errors.Forbidden):
            return (
                "access denied: the caller needs roles/secretmanager.secretAccessor on the "
                "secret [PERMISSION_DENIED]"
            )
        if isinstance(exc, errors.FailedPrecondition) or (
            isinstance(exc, errors.BadRequest) and _rest_status(exc) == "FAILED_PRECONDITION"
        ):
            return (
                "the version is disabled or destroyed: enable it, or add a new version "
                "[FAILED_PRECONDITION]"
            )
        if isinstance(exc, errors.Unauthorized):
            return "the Google credentials were refused [UNAUTHENTICATED]"
        auth = self._auth_errors
        if isinstance(
            exc, (auth.RefreshError, getattr(auth, "InvalidOperation", auth.RefreshError))
        ):
            # A token could not be fetched, or a 401 asked for one the credentials cannot give.
            return f"the Google credentials could not be refreshed [{type(exc).__name__}]"
        if isinstance(exc, self._auth_errors.DefaultCredentialsError):
            return (
                "no Google credentials found (Application Default Credentials: "
                "GOOGLE_APPLICATION_CREDENTIALS, workload identity, the metadata server) "
                "[DefaultCredentialsError]"
            )
        if isinstance(exc, self._auth_errors.GoogleAuthError):
            return f"cannot get Google credentials [{type(exc).__name__}]"
        if isinstance(exc, errors.GoogleAPICallError):
            status = _rest_status(exc) or type(exc).__name__
            return f"Secret Manager answered HTTP {getattr(exc, 'code', None)} [{status}]"
        if isinstance(exc, errors.GoogleAPIError):
            return f"cannot reach Secret Manager [{type(exc).__name__}]"
        return f"cannot read the secret [{type(exc).__name__}]"

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None and not self._injected:
            transport = getattr(client, "transport", None)
            close = getattr(transport, "close", None)
            if close is not None:
                close()


def _rest_status(exc: Exception) -> str | None:
    """The `error.status` of a REST error reply (`FAILED_PRECONDITION`), if it has one."""
    response = getattr(exc, "response", None)
    try:
        payload: object = loads(response.content)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - no body, or not JSON: no status
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    status = error.get("status") if isinstance(error, dict) else None
    return status if isinstance(status, str) and _STATUS.fullmatch(status) else None


def _has_checksum(payload: object) -> bool:
    """Whether the (proto-plus) payload carries its optional `data_crc32c`."""
    try:
        return "data_crc32c" in payload  # type: ignore[operator] # proto-plus messages
    except TypeError:
        return getattr(payload, "data_crc32c", None) is not None


# -- the `gcp-secret-manager:` reference ----------------------------------------------------------

_REF = re.compile(
    r"projects/[A-Za-z0-9][A-Za-z0-9-]{0,62}/secrets/[A-Za-z0-9_-]{1,255}"
    r"(/versions/(latest|[0-9]+))?"
)


def check_ref(rest: str) -> tuple[str | None, str | None]:
    """The resource name of `gcp-secret-manager:<rest>`, or None and the problem."""
    if not _REF.fullmatch(rest):
        return None, (
            "gcp-secret-manager: needs projects/<project>/secrets/<secret>, optionally "
            "followed by /versions/<number or latest>"
        )
    return rest, None


def open_ref(name: str) -> GcpSecretManagerStore:
    """The store of a resource name `check_ref` accepted."""
    segments = name.split("/")
    return GcpSecretManagerStore(
        segments[1], segments[3], version=segments[5] if len(segments) > 5 else "latest"
    )
