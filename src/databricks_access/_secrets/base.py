"""OAuth client credentials and the stores they are read from.

A service principal's OAuth secret rotates (at most 5 live secrets, each valid up to two
years), so credentials are never held for the life of a client: the auth layer asks its
`SecretStore` again when it fetches a token, and with `refresh=True` after the token
endpoint refused them.

No secret ever appears in a repr, an exception message or a chained exception built
here: stores name where they read from and what is missing or malformed, never a value.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from databricks_access._errors import ConfigError, ConfigProblem, SecretStoreError
from databricks_access._util.files import readable_by_others
from databricks_access._util.json import loads

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger("databricks_access")

__all__ = [
    "ClientCredentials",
    "EnvSecretStore",
    "FileSecretStore",
    "SecretStore",
    "StaticSecretStore",
]

_FIELDS = ("client_id", "client_secret")
# A credentials file is a few hundred bytes; refuse to read a large file into memory.
_MAX_FILE_BYTES = 64 * 1024
# Reads of a file that keeps changing underneath (a rotation being written) before giving up.
_MAX_READS = 3


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _masked(_: object) -> str:
    return "'***'"


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@attrs.frozen
class ClientCredentials:
    """An OAuth client ID and secret (a service principal's application ID and secret).

    The secret is never shown: repr and str print `client_secret='***'`. Empty values are a
    programming error and raise `ConfigError` naming the field (stores report missing
    values as `SecretStoreError` before building one).

    Example:
        >>> ClientCredentials("6f1c2d3e-app-id", "dose0123456789abcdef")
        ClientCredentials(client_id='6f1c2d3e-app-id', client_secret='***')
    """

    client_id: str
    client_secret: str = attrs.field(repr=_masked)

    def __attrs_post_init__(self) -> None:
        problems: list[ConfigProblem] = []
        for name in _FIELDS:
            value: object = getattr(self, name)
            if not isinstance(value, str):
                problems.append(
                    ConfigProblem(name, f"must be a string, not {type(value).__name__}")
                )
            elif not value.strip():
                problems.append(ConfigProblem(name, "must not be empty"))
            elif not value.isascii() and not _encodable(value):
                # It could never be sent, and the encoder's error would hold the value.
                problems.append(
                    ConfigProblem(
                        name, "must be valid Unicode text (no lone surrogate or undecodable byte)"
                    )
                )
        if problems:
            raise ConfigError(problems)


@runtime_checkable
class SecretStore(Protocol):
    """Where OAuth client credentials come from.

    Implementations must be thread-safe. They are called from the event loop's worker
    threads by the async client, never on the loop itself, so they may block briefly.

    Example:
        >>> class VaultStore:
        ...     def get_credentials(self, *, refresh: bool = False) -> ClientCredentials:
        ...         return ClientCredentials("app-id", "secret-from-vault")
        >>> isinstance(VaultStore(), SecretStore)
        True
    """

    def get_credentials(self, *, refresh: bool = False) -> ClientCredentials:
        """Return the current credentials.

        Args:
            refresh: The caller saw these credentials refused (a rotated secret): read them
                again from the source, bypassing any cache.

        Raises:
            SecretStoreError: The credentials are missing, unreadable or malformed; the
                message names the store and what is wrong, never a value.
        """
        ...


class EnvSecretStore:
    """Credentials from two environment variables, read at each call.

    Surrounding whitespace is removed from both values; a missing or empty variable is a
    `SecretStoreError` naming every variable that is missing.

    Args:
        client_id_var: The variable holding the client ID.
        client_secret_var: The variable holding the client secret.
        environ: The mapping to read; `os.environ` (as it is at each call) when None.

    Example:
        >>> store = EnvSecretStore(environ={"DATABRICKS_CLIENT_ID": "app-id"})
        >>> store
        EnvSecretStore(client_id_var='DATABRICKS_CLIENT_ID', client_secret_var='DATABRICKS_CLIENT_SECRET')
        >>> try:
        ...     store.get_credentials()
        ... except SecretStoreError as exc:
        ...     print(exc)
        EnvSecretStore(client_id_var='DATABRICKS_CLIENT_ID', client_secret_var='DATABRICKS_CLIENT_SECRET'): DATABRICKS_CLIENT_SECRET is not set or empty
    """  # noqa: E501

    __slots__ = ("_client_id_var", "_client_secret_var", "_environ")

    def __init__(
        self,
        client_id_var: str = "DATABRICKS_CLIENT_ID",
        client_secret_var: str = "DATABRICKS_CLIENT_SECRET",  # noqa: S107 - a name
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        problems = [
            ConfigProblem(field, "must be a non-empty variable name")
            for field, name in (
                ("client_id_var", client_id_var),
                ("client_secret_var", client_secret_var),
            )
            if not _is_text(name)
        ]
        if problems:
            raise ConfigError(problems)
        self._client_id_var = client_id_var
        self._client_secret_var = client_secret_var
        self._environ = environ

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(client_id_var={self._client_id_var!r}, "
            f"client_secret_var={self._client_secret_var!r})"
        )

    def get_credentials(self, *, refresh: bool = False) -> ClientCredentials:  # noqa: ARG002
        """Read both variables now (`refresh` changes nothing: there is no cache).

        Raises:
            SecretStoreError: Naming the variables that are unset or empty.
        """
        environ = os.environ if self._environ is None else self._environ
        names = (self._client_id_var, self._client_secret_var)
        values = [environ.get(name, "").strip() for name in names]
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise SecretStoreError(f"{self!r}: {' and '.join(missing)} {verb} not set or empty")
        garbled = [n for n, v in zip(names, values, strict=True) if not _encodable(v)]
        if garbled:
            raise SecretStoreError(f"{self!r}: {' and '.join(garbled)} is not valid UTF-8 text")
        return ClientCredentials(values[0], values[1])


@attrs.frozen
class _Stamp:
    """What identifies a version of the credential file(s): inode, device, mtime, size."""

    files: tuple[tuple[int, int, int, int], ...]
    directory: bool


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return (status.st_ino, status.st_dev, status.st_mtime_ns, status.st_size)


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return "an object"


class FileSecretStore:
    """Credentials from a JSON file or from a directory of two files (a mounted secret).

    `path` is either a JSON file holding `{"client_id": "...", "client_secret": "..."}`
    (other keys are ignored), or a directory, such as a mounted Kubernetes secret, holding
    the files `client_id` and `client_secret` (surrounding whitespace and the trailing
    newline are removed).

    The parsed credentials are cached and read again when the file(s) change (inode,
    device, modification time or size differ; each file is resolved through its symlinks
    at every call, as Kubernetes rotates a mounted secret by swapping a `..data` link), or
    when `refresh=True`. Nothing is read when the store is built: the file may be mounted
    later. Thread-safe.

    Args:
        path: The JSON file or the secret directory. `~` is expanded.

    Example:
        >>> store = FileSecretStore("/var/run/secrets/databricks")
        >>> store
        FileSecretStore('/var/run/secrets/databricks')
        >>> try:
        ...     store.get_credentials()
        ... except SecretStoreError as exc:
        ...     print(exc)
        FileSecretStore('/var/run/secrets/databricks'): not found
    """

    __slots__ = ("_cache", "_lock", "_path", "_warned")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        text: object = os.fspath(path)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("must be a non-empty file or directory path", field="path")
        self._path = Path(text).expanduser()
        self._lock = threading.Lock()
        self._cache: tuple[_Stamp, ClientCredentials] | None = None
        self._warned = False

    @property
    def path(self) -> Path:
        """The JSON file or secret directory read."""
        return self._path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r})"

    def get_credentials(self, *, refresh: bool = False) -> ClientCredentials:
        """Return the credentials, read again if the file(s) changed or `refresh` is True.

        Raises:
            SecretStoreError: The path or a file is missing or unreadable, or its content
                is malformed; the message names the store and the problem, never content.
        """
        with self._lock:
            for _ in range(_MAX_READS):
                before = self._stamp()
                if not refresh and self._cache is not None and self._cache[0] == before:
                    return self._cache[1]
                try:
                    credentials = self._read(before)
                except SecretStoreError:
                    if self._stamp() == before:
                        raise
                    continue  # changed while being read: a partial write, read again
                if self._stamp() == before:
                    self._cache = (before, credentials)
                    return credentials
            raise SecretStoreError(f"{self!r}: the credentials kept changing while being read")

    def _fail(self, problem: str) -> SecretStoreError:
        return SecretStoreError(f"{self!r}: {problem}")

    def _stat(self, path: Path, name: str) -> os.stat_result | None:
        """Stat `path` through its symlinks; None if it does not exist."""
        try:
            return path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(f"cannot read {name}: {exc.strerror or type(exc).__name__}") from None

    def _stamp(self) -> _Stamp:
        status = self._stat(self._path, "the path")
        if status is None:
            raise self._fail("not found")
        if stat.S_ISDIR(status.st_mode):
            files: list[tuple[int, int, int, int]] = []
            missing: list[str] = []
            for name in _FIELDS:
                member = self._stat(self._path / name, name)
                if member is None:
                    missing.append(name)
                elif not stat.S_ISREG(member.st_mode):
                    raise self._fail(f"{name} is not a regular file")
                else:
                    files.append(_identity(member))
            if missing:
                raise self._fail(
                    f"the directory has no file {' or '.join(missing)}; "
                    "expected the files client_id and client_secret"
                )
            return _Stamp(tuple(files), directory=True)
        if not stat.S_ISREG(status.st_mode):
            raise self._fail("is neither a regular file nor a directory")
        return _Stamp((_identity(status),), directory=False)

    def _read_text(self, path: Path, name: str) -> str:
        try:
            with path.open("rb") as file:
                data = file.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise self._fail(f"{name} was removed while being read") from None
        except OSError as exc:
            raise self._fail(f"cannot read {name}: {exc.strerror or type(exc).__name__}") from None
        if len(data) > _MAX_FILE_BYTES:
            raise self._fail(f"{name} is larger than {_MAX_FILE_BYTES} bytes")
        if not self._warned and readable_by_others(path):
            self._warned = True  # once per store: the log is not a nag
            logger.warning(
                "%r: %s is readable by other users of this machine; make it private "
                "(chmod 600, or the mount's defaultMode 0400)",
                self,
                name,
            )
        try:
            text: str | None = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = None  # raised below, outside the handler: the error holds the bytes
        if text is None:
            raise self._fail(f"{name} is not UTF-8 text")
        return text

    def _read(self, stamp: _Stamp) -> ClientCredentials:
        if stamp.directory:
            values = {name: self._read_text(self._path / name, name).strip() for name in _FIELDS}
            empty = [name for name in _FIELDS if not values[name]]
            if empty:
                raise self._fail(
                    f"{' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty"
                )
            return ClientCredentials(values["client_id"], values["client_secret"])
        return self._parse_json(self._read_text(self._path, "the file"))

    def _parse_json(self, text: str) -> ClientCredentials:
        try:
            data: object = loads(text, max_bytes=_MAX_FILE_BYTES)
            valid = True
        except ValueError:
            # Raised below, outside the handler: a JSONDecodeError holds the whole document.
            data, valid = None, False
        if not valid:
            raise self._fail(
                'is not valid JSON; expected {"client_id": "...", "client_secret": "..."}'
            )
        if not isinstance(data, dict):
            raise self._fail(
                'must hold a JSON object {"client_id": "...", "client_secret": "..."}, '
                f"found {_json_kind(data)}"
            )
        problems: list[str] = []
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            problems.append(f"missing key {' and '.join(repr(name) for name in missing)}")
        values: dict[str, str] = {}
        for name in _FIELDS:
            value: object = data.get(name)
            if name not in data:
                continue
            if not isinstance(value, str):
                problems.append(f"{name!r} must be a string, found {_json_kind(value)}")
            elif not value.strip():
                problems.append(f"{name!r} is empty")
            elif not value.isascii() and not _encodable(value):
                problems.append(f"{name!r} is not valid Unicode text (a lone surrogate escape)")
            else:
                values[name] = value.strip()
        if problems:
            raise self._fail("; ".join(problems))
        return ClientCredentials(values["client_id"], values["client_secret"])


class StaticSecretStore:
    """Fixed credentials held in memory, for tests and notebooks.

    Args:
        client_id: The client (application) ID.
        client_secret: The client secret; never shown.

    Raises:
        ConfigError: When a value is empty.

    Example:
        >>> store = StaticSecretStore("app-id", "dose0123456789abcdef")
        >>> store
        StaticSecretStore(client_id='app-id', client_secret='***')
        >>> store.get_credentials().client_id
        'app-id'
    """

    __slots__ = ("_credentials",)

    def __init__(self, client_id: str, client_secret: str) -> None:
        self._credentials = ClientCredentials(client_id, client_secret)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(client_id={self._credentials.client_id!r}, client_secret='***')"
        )

    def get_credentials(self, *, refresh: bool = False) -> ClientCredentials:  # noqa: ARG002
        """Return the credentials given (`refresh` changes nothing)."""
        return self._credentials
