"""What the cloud secret stores share: the JSON document, the cache, the missing extra.

Connectors keep the service principal's OAuth client credentials in their cloud's secret
manager as one JSON document, `{"client_id": "...", "client_secret": "..."}` (HashiCorp
Vault's KV engine holds the same two keys as its key/value pairs). Each adapter
(`_aws_secrets`, `_azure_secrets`, `_gcp_secrets`, `_vault_secrets`) fetches the raw value
with its SDK, imported only when a store is built, and this module parses it, caches the
result for a while and reports every problem by naming the store and what is wrong.

Nothing raised here holds a secret: parse errors are raised outside the `except` block
that caught the decoder's error (a `JSONDecodeError` holds the whole document), and the
adapters translate their SDK's exceptions `from None` (an SDK error can hold a response
body).
"""

from __future__ import annotations

import datetime as dt
import importlib
import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from databricks_access._clock import Clock, SystemClock
from databricks_access._durations import Duration, seconds
from databricks_access._errors import ConfigError, SecretStoreError
from databricks_access._secrets.base import ClientCredentials, _json_kind
from databricks_access._util.json import loads

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = [
    "DEFAULT_CACHE_TTL",
    "CloudSecretStore",
    "call_sdk",
    "check_text",
    "check_ttl",
    "import_sdk",
    "parse_object",
    "parse_text",
]

T = TypeVar("T")

DEFAULT_CACHE_TTL = 300.0
"""Seconds a cloud store serves its cached credentials before reading the secret again."""

_FIELDS = ("client_id", "client_secret")
# The credentials document is a few hundred bytes; a large value is not ours.
_MAX_BYTES = 64 * 1024
_EXPECTED = '{"client_id": "...", "client_secret": "..."}'


def import_sdk(module: str, *, extra: str, store: str, package: str) -> ModuleType:
    """Import an optional SDK module, or explain which extra installs it.

    Raises:
        ConfigError: The SDK is not installed; the message names the pip command.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{store} needs {package}, which is not installed: "
            f'pip install "databricks-access[{extra}]"',
            "secret_store",
        ) from exc


def call_sdk(where: str, call: Callable[[], T], explain: Callable[[Exception], str]) -> T:
    """Run an SDK call; turn any failure into a `SecretStoreError` that chains nothing.

    `explain` words the failure from its type and status codes, never from its text (an
    SDK error may hold a response body). The error is raised after the `except` block,
    so neither `__cause__` nor `__context__` leads back to the SDK's exception.
    """
    problem = ""
    try:
        return call()
    except SecretStoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - every SDK failure is reported the same way
        problem = explain(exc)
    raise SecretStoreError(f"{where}: {problem}")


def check_ttl(value: Duration) -> float:
    """The cache TTL in seconds, or a `ConfigError` naming `cache_ttl`."""
    return seconds(value, "cache_ttl")


def check_text(value: object, field: str) -> str:
    """A required, non-empty string argument (stripped), or a `ConfigError` naming it."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty string", field)
    return value.strip()


def _encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_text(where: str, data: str | bytes) -> ClientCredentials:
    """Parse the credentials document (JSON text, or UTF-8 bytes of it).

    Raises:
        SecretStoreError: `where: <problem>`; never any part of the document.
    """
    if len(data) > _MAX_BYTES:
        raise SecretStoreError(f"{where}: the value is larger than {_MAX_BYTES} bytes")
    text: str | None
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = None  # raised below, outside the handler: the error holds the bytes
        if text is None:
            raise SecretStoreError(f"{where}: the value is not UTF-8 text")
    else:
        text = data.removeprefix("\ufeff")
    try:
        document: object = loads(text, max_bytes=1024 * 1024)
        valid = True
    except ValueError:
        # Raised below, outside the handler: a JSONDecodeError holds the whole document.
        document, valid = None, False
    if not valid:
        raise SecretStoreError(f"{where}: the value is not valid JSON; expected {_EXPECTED}")
    return parse_object(where, document)


def parse_object(where: str, document: object) -> ClientCredentials:
    """Check a parsed document holds two non-empty strings, `client_id` and `client_secret`.

    Other keys are ignored; surrounding whitespace is removed.

    Raises:
        SecretStoreError: Naming every missing, mistyped or empty key; never a value.
    """
    if not isinstance(document, Mapping):
        raise SecretStoreError(
            f"{where}: the value must be a JSON object {_EXPECTED}, found {_json_kind(document)}"
        )
    problems: list[str] = []
    missing = [name for name in _FIELDS if name not in document]
    if missing:
        problems.append(f"missing key {' and '.join(repr(name) for name in missing)}")
    values: dict[str, str] = {}
    for name in _FIELDS:
        if name not in document:
            continue
        value: object = document[name]
        if not isinstance(value, str):
            problems.append(f"{name!r} must be a string, found {_json_kind(value)}")
        elif not value.strip():
            problems.append(f"{name!r} is empty")
        elif not _encodable(value):
            # A JSON escape of a lone surrogate: it could never be sent.
            problems.append(f"{name!r} is not valid Unicode text (a lone surrogate escape)")
        else:
            values[name] = value.strip()
    if problems:
        raise SecretStoreError(f"{where}: {'; '.join(problems)}")
    return ClientCredentials(values["client_id"], values["client_secret"])


class CloudSecretStore:
    """The base of the cloud adapters: a thread-safe cache in front of `_read`.

    `get_credentials()` serves the parsed credentials for `cache_ttl` seconds (measured
    on the clock's monotonic time), then reads the secret again; `refresh=True` always
    reads it (the caller saw the credentials refused: the secret was rotated). Concurrent
    callers wait for one read. A failed read raises and leaves the cache as it was.

    Subclasses implement `_read(refresh)`, returning the document as text, bytes or an
    already-parsed mapping, and `where` (the store, named in every error), and close what
    they created in `_close`.
    """

    def __init__(self, *, cache_ttl: float | dt.timedelta, clock: Clock | None) -> None:
        self._ttl = check_ttl(cache_ttl)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._cache: tuple[float, ClientCredentials] | None = None
        self._closed = False

    @property
    def where(self) -> str:
        """The store in words, as errors name it (for example `AWS Secrets Manager ...`)."""
        raise NotImplementedError

    @property
    def cache_ttl(self) -> float:
        """Seconds the credentials are served from the cache."""
        return self._ttl

    def _read(self, *, refresh: bool) -> str | bytes | Mapping[str, object]:
        raise NotImplementedError

    def _close(self) -> None:
        """Release the SDK clients this store created (not injected ones)."""

    def get_credentials(self, *, refresh: bool = False) -> ClientCredentials:
        """Return the credentials, from the cache unless it is stale or `refresh` is True.

        Raises:
            SecretStoreError: The secret is missing, forbidden, unreachable or malformed;
                the message names the store and the problem, never a value.
        """
        with self._lock:
            if self._closed:
                raise SecretStoreError(f"{self.where}: the store is closed")
            cached = self._cache
            if not refresh and cached is not None and self._clock.monotonic() < cached[0]:
                return cached[1]
            document = self._read(refresh=refresh)
            if isinstance(document, (str, bytes)):
                credentials = parse_text(self.where, document)
            else:
                credentials = parse_object(self.where, document)
            if self._ttl > 0:
                self._cache = (self._clock.monotonic() + self._ttl, credentials)
            return credentials

    def close(self) -> None:
        """Forget the cached credentials and close the SDK clients the store created.

        Injected clients are left open: their owner closes them. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cache = None
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
