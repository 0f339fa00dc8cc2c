"""OAuth client credentials from HashiCorp Vault's KV engine (the `vault` extra: hvac).

hvac is imported when a store is built, never by `import databricks_access`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from databricks_access._clock import Clock
from databricks_access._durations import MAX_SECONDS, from_server, seconds
from databricks_access._errors import ConfigError, SecretStoreError
from databricks_access._hosts import check_host
from databricks_access._secrets.cloud import (
    DEFAULT_CACHE_TTL,
    CloudSecretStore,
    call_sdk,
    check_text,
    import_sdk,
)

__all__ = ["REF_OPTIONS", "HashiCorpVaultStore", "check_ref", "open_ref"]

_SEGMENTS = re.compile(r"[A-Za-z0-9_.@-]+(/[A-Za-z0-9_.@-]+)*")
_STORE = "HashiCorpVaultStore"
# Log in again this long before the AppRole token's lease ends.
_TOKEN_MARGIN = 30.0


class _RedirectRefusedError(Exception):
    """Vault answered with a redirect; it is never followed with credentials."""


def _refuse_redirect(response: Any, *_args: object, **_kwargs: object) -> None:
    """A `requests` response hook: a redirect from Vault ends the call."""
    status = getattr(response, "status_code", 0)
    if isinstance(status, int) and 300 <= status < 400:
        raise _RedirectRefusedError(
            f"Vault answered with a redirect [{status}]; credentials never follow a "
            "redirect: set addr to the address of the active Vault node"
        )


def _check_path(value: object, field: str) -> str:
    text = check_text(value, field).strip("/")
    if not _SEGMENTS.fullmatch(text) or ".." in text.split("/"):
        raise ConfigError("must be a Vault path like databricks/sp (letters, digits, _.@-)", field)
    return text


class HashiCorpVaultStore(CloudSecretStore):
    """Credentials from a HashiCorp Vault KV secret with the keys `client_id`, `client_secret`.

    Reads KV version 2 (`GET /v1/<mount>/data/<path>`, optionally a pinned version) or
    version 1 (`GET /v1/<mount>/<path>`); other keys of the secret are ignored. Logs in
    with a token or with AppRole (`role_id` + `secret_id`): an AppRole token is renewed by
    logging in again before its lease ends, after Vault refuses it, and on
    `refresh=True`. The credentials are cached for `cache_ttl` seconds and read again at
    once with `refresh=True` (after Databricks refused them: a rotation). Needs the
    `vault` extra (`pip install "databricks-access[vault]"`). Thread-safe.

    Args:
        path: The secret's path inside the mount (`databricks/sp`).
        mount_point: Where the KV engine is mounted (`secret`).
        kv_version: 2 (the default) or 1.
        version: For KV v2, a version to pin; default the latest.
        addr: Vault's address; default `VAULT_ADDR`. https; plain http only for a loopback
            host with `allow_insecure_http=True`.
        auth: `token` or `approle`; default `approle` when a role id is given or
            `VAULT_ROLE_ID` is set, else `token`.
        token: For token auth; default `VAULT_TOKEN`, read again at each login.
        role_id: For AppRole; default `VAULT_ROLE_ID`.
        secret_id: For AppRole; default `VAULT_SECRET_ID`, read again at each login.
        approle_mount: Where the AppRole auth method is mounted (`approle`).
        namespace: A Vault Enterprise namespace; default `VAULT_NAMESPACE`.
        verify: TLS verification: True, False, or a CA bundle path (default
            `VAULT_CACERT` when set, else True).
        client: A ready `hvac.Client` (its address and token are used); left open.
        environ: The mapping the `VAULT_*` defaults are read from (default `os.environ`).
        allow_insecure_http: Accept `http://` for a loopback address (a dev server, a
            local Vault Agent).
        timeout: Seconds one request to Vault may take.
        cache_ttl: Seconds (or a timedelta) the credentials are served from the cache;
            0 reads the secret at every call.
        clock: The clock whose monotonic time ages the cache and the AppRole token.

    Raises:
        ConfigError: A bad argument, a missing address or AppRole id, or hvac is not
            installed (naming the extra).

    Example:
        >>> store = HashiCorpVaultStore(
        ...     "databricks/sp", addr="https://vault.example.com:8200", environ={}
        ... )
        >>> store
        HashiCorpVaultStore('databricks/sp', mount_point='secret', kv_version=2, auth='token')
        >>> store.where
        "Vault KV v2 secret 'secret/databricks/sp' at https://vault.example.com:8200"
        >>> store.close()
    """

    def __init__(
        self,
        path: str,
        *,
        mount_point: str = "secret",
        kv_version: Literal[1, 2] = 2,
        version: int | None = None,
        addr: str | None = None,
        auth: Literal["token", "approle"] | None = None,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        approle_mount: str = "approle",
        namespace: str | None = None,
        verify: bool | str | None = None,
        client: Any = None,
        environ: Mapping[str, str] | None = None,
        allow_insecure_http: bool = False,
        timeout: float = 30.0,
        cache_ttl: float | dt.timedelta = DEFAULT_CACHE_TTL,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        # The SDK first: a missing extra is the first problem reported.
        self._hvac = import_sdk("hvac", extra="vault", store=_STORE, package="hvac")
        self._exceptions = import_sdk(
            "hvac.exceptions", extra="vault", store=_STORE, package="hvac"
        )
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._path = _check_path(path, "path")
        self._mount = _check_path(mount_point, "mount_point")
        if kv_version not in (1, 2) or isinstance(kv_version, bool):
            raise ConfigError("must be 1 or 2", "kv_version")
        self._kv: Literal[1, 2] = kv_version
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise ConfigError("must be a positive version number", "version")
        if version is not None and kv_version == 1:
            raise ConfigError("KV version 1 keeps no versions; remove version", "version")
        self._version = version
        self._client: Any = client
        self._injected = client is not None
        if client is not None:
            addr = addr or getattr(client, "url", None)
        addr = addr if addr is not None else self._environ.get("VAULT_ADDR", "").strip()
        if not addr:
            raise ConfigError("no Vault address: pass addr= or set VAULT_ADDR", "addr")
        url, problems = check_host(
            addr, allow_custom_host=True, allow_insecure_http=allow_insecure_http, field="addr"
        )
        if url is None:
            raise ConfigError(problems)
        self._addr = url
        self._token = token
        self._role_id = role_id if role_id is not None else self._env("VAULT_ROLE_ID")
        self._secret_id = secret_id
        if auth is None:
            auth = "approle" if self._role_id else "token"
        if auth not in ("token", "approle"):
            raise ConfigError("must be 'token' or 'approle'", "auth")
        if auth == "approle" and not self._role_id:
            raise ConfigError(
                "AppRole needs a role id: pass role_id= or set VAULT_ROLE_ID", "role_id"
            )
        self._auth: Literal["token", "approle"] = auth
        self._approle_mount = _check_path(approle_mount, "approle_mount")
        self._namespace = namespace if namespace is not None else self._env("VAULT_NAMESPACE")
        self._verify: bool | str = (
            verify if verify is not None else (self._env("VAULT_CACERT") or True)
        )
        self._timeout = seconds(timeout, "timeout", positive=True)
        # When the AppRole token must be renewed (monotonic); None: log in before reading.
        self._token_expires: float | None = None

    def _env(self, name: str) -> str | None:
        return self._environ.get(name, "").strip() or None

    @property
    def path(self) -> str:
        """The secret's path inside the mount."""
        return self._path

    @property
    def mount_point(self) -> str:
        """Where the KV engine is mounted."""
        return self._mount

    @property
    def kv_version(self) -> Literal[1, 2]:
        """The KV engine's version."""
        return self._kv

    @property
    def addr(self) -> str:
        """Vault's address."""
        return self._addr

    @property
    def auth(self) -> Literal["token", "approle"]:
        """How the store logs in."""
        return self._auth

    @property
    def where(self) -> str:
        """The store in words, as errors name it."""
        text = f"Vault KV v{self._kv} secret {self._mount + '/' + self._path!r} at {self._addr}"
        return text + (f" (version {self._version})" if self._version is not None else "")

    def __repr__(self) -> str:
        text = (
            f"{type(self).__name__}({self._path!r}, mount_point={self._mount!r}, "
            f"kv_version={self._kv}"
        )
        if self._version is not None:
            text += f", version={self._version}"
        return text + f", auth={self._auth!r})"

    # -- logging in -----------------------------------------------------------------------

    def _make_client(self) -> Any:
        if self._client is None:
            # An empty token, not None: hvac would read VAULT_TOKEN and ~/.vault-token.
            self._client = self._hvac.Client(
                url=self._addr,
                token="",
                namespace=self._namespace,
                verify=self._verify,
                timeout=self._timeout,
                allow_redirects=False,
            )
            self._refuse_redirects(self._client)
        elif self._injected:
            self._refuse_redirects(self._client)
        return self._client

    @staticmethod
    def _refuse_redirects(client: Any) -> None:
        """Never follow a redirect: it would carry the token or the secret id elsewhere.

        Also on an injected client, whose adapter may have been built to follow them.
        """
        adapter = getattr(client, "adapter", None)
        if adapter is None:
            return
        adapter.allow_redirects = False
        session = getattr(adapter, "session", None)
        hooks = getattr(session, "hooks", None)
        if isinstance(hooks, dict):
            answers = hooks.setdefault("response", [])
            if _refuse_redirect not in answers:
                answers.append(_refuse_redirect)

    def _login(self, client: Any) -> None:
        if self._auth == "token":
            token = self._token if self._token is not None else self._env("VAULT_TOKEN")
            if token is not None:
                client.token = token
            elif not (self._injected and getattr(client, "token", None)):
                raise SecretStoreError(
                    f"{self.where}: no Vault token: pass token= or set VAULT_TOKEN"
                )
            self._token_expires = math.inf
        else:
            self._approle_login(client)

    def _approle_login(self, client: Any) -> None:
        secret_id = self._secret_id if self._secret_id is not None else self._env("VAULT_SECRET_ID")
        if secret_id is None:
            raise SecretStoreError(
                f"{self.where}: no AppRole secret id: pass secret_id= or set VAULT_SECRET_ID"
            )
        started = self._clock.monotonic()
        response = call_sdk(
            self.where,
            lambda: client.auth.approle.login(
                role_id=self._role_id, secret_id=secret_id, mount_point=self._approle_mount
            ),
            self._explain_login,
        )
        auth: object = response.get("auth") if isinstance(response, Mapping) else None
        token: object = auth.get("client_token") if isinstance(auth, Mapping) else None
        if not isinstance(token, str) or not token:
            raise SecretStoreError(f"{self.where}: the AppRole login answered no client token")
        client.token = token  # hvac sets it too; set it for clients that do not
        lease = from_server(
            auth.get("lease_duration") if isinstance(auth, Mapping) else None,
            default=0.0,  # none: a token that never expires
            maximum=MAX_SECONDS,
        )
        if lease > 0:
            # Renew ahead of the end: a margin, at most a third of a short lease.
            self._token_expires = started + lease - min(_TOKEN_MARGIN, lease / 3)
        else:
            self._token_expires = math.inf  # 0: a token that never expires

    # -- reading --------------------------------------------------------------------------

    def _read(self, *, refresh: bool) -> Mapping[str, object]:
        client = call_sdk(self.where, self._make_client, self._explain)
        expired = self._token_expires is None or self._clock.monotonic() >= self._token_expires
        fresh = expired or refresh
        if fresh:
            self._login(client)  # token auth: VAULT_TOKEN read again; AppRole: a new token
        forbidden, reply = self._fetch(client)
        if forbidden and self._auth == "approle" and not fresh:
            # The token was revoked or expired early: log in once more and read again.
            self._login(client)
            forbidden, reply = self._fetch(client)
        if forbidden:
            raise SecretStoreError(f"{self.where}: {self._forbidden()}")
        return self._data(reply)

    def _fetch(self, client: Any) -> tuple[bool, object]:
        """Read the secret: `(True, None)` when Vault answers 403, else `(False, reply)`."""
        problem = ""
        try:
            if self._kv == 2:
                reply: object = client.secrets.kv.v2.read_secret_version(
                    path=self._path,
                    mount_point=self._mount,
                    version=self._version,
                    raise_on_deleted_version=True,
                )
            else:
                reply = client.secrets.kv.v1.read_secret(path=self._path, mount_point=self._mount)
        except Exception as exc:  # noqa: BLE001 - every SDK failure is reported the same way
            if isinstance(exc, self._exceptions.Forbidden):
                return True, None
            problem = self._explain(exc)
        else:
            return False, reply
        # Raised outside the handler: nothing chains to hvac's error (it holds the reply).
        raise SecretStoreError(f"{self.where}: {problem}")

    def _data(self, response: object) -> Mapping[str, object]:
        data: object = response.get("data") if isinstance(response, Mapping) else None
        if self._kv == 2:
            data = data.get("data") if isinstance(data, Mapping) else None
        if not isinstance(data, Mapping):
            raise SecretStoreError(
                f"{self.where}: the reply holds no secret data (is the mount KV v{self._kv}?)"
            )
        return data

    def _api_path(self) -> str:
        if self._kv == 2:
            return f"{self._mount}/data/{self._path}"
        return f"{self._mount}/{self._path}"

    def _forbidden(self) -> str:
        return (
            f"permission denied: the token's policy needs the read capability on "
            f"{self._api_path()} (or the token expired)"
        )

    def _explain(self, exc: Exception) -> str:
        errors = self._exceptions
        if isinstance(exc, errors.InvalidPath):
            hint = "or the version was deleted or destroyed; " if self._kv == 2 else ""
            return f"not found (no secret at {self._api_path()}; {hint}check the mount and kv=1|2)"
        if isinstance(exc, errors.Forbidden):
            return self._forbidden()
        if isinstance(exc, errors.Unauthorized):
            return "the Vault token was refused [401]"
        if isinstance(exc, errors.VaultDown):
            return "Vault is sealed or down [503]"
        if isinstance(exc, errors.RateLimitExceeded):
            return "Vault is rate limiting requests [429]"
        if isinstance(exc, errors.InvalidRequest):
            return "Vault refused the request [400]"
        if isinstance(exc, _RedirectRefusedError):
            return str(exc)
        if isinstance(exc, errors.VaultError):
            return f"Vault failed [{type(exc).__name__}]"
        return f"cannot reach Vault [{type(exc).__name__}]"

    def _explain_login(self, exc: Exception) -> str:
        errors = self._exceptions
        if isinstance(exc, (errors.InvalidRequest, errors.Forbidden, errors.Unauthorized)):
            return (
                f"the AppRole login at auth/{self._approle_mount} was refused: check the "
                "role id and the secret id (it may have expired or been used up)"
            )
        if isinstance(exc, errors.InvalidPath):
            return f"no AppRole auth method is mounted at auth/{self._approle_mount}"
        return f"the AppRole login failed: {self._explain(exc)}"

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None and not self._injected:
            adapter = getattr(client, "adapter", None)
            close = getattr(adapter, "close", None)
            if close is not None:
                close()


# -- the `vault:` reference -----------------------------------------------------------------------

REF_OPTIONS = ("kv", "auth", "addr", "version")
"""The options a reference may carry after `?`, in the order they are written back."""
_REF_VERSION = re.compile(r"[1-9][0-9]{0,9}")


def check_ref(rest: str, options: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The KV path of `vault:<rest>`, or None and the problem."""
    path = rest.strip("/")
    if not _SEGMENTS.fullmatch(path) or ".." in path.split("/"):
        return None, "vault: needs a KV path like vault:secret/databricks (<mount>/<path>)"
    if "/" not in path:
        return None, (
            "vault: needs a KV path with the mount and the secret's path, like "
            "vault:secret/databricks (<mount>/<path>)"
        )
    problem = _check_ref_options(options)
    return (None, problem) if problem is not None else (path, None)


def _check_ref_options(options: Mapping[str, str]) -> str | None:
    if options.get("kv", "2") not in {"1", "2"}:
        return "vault: the option kv is 1 or 2"
    if options.get("auth", "token") not in {"token", "approle"}:
        return "vault: the option auth is token or approle"
    version = options.get("version")
    if version is not None:
        if not _REF_VERSION.fullmatch(version):
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


def open_ref(
    path: str,
    options: Mapping[str, str],
    *,
    environ: Mapping[str, str] | None,
    allow_insecure_http: bool,
) -> HashiCorpVaultStore:
    """The store of a KV path and options `check_ref` accepted."""
    kv: Literal[1, 2] = 1 if options.get("kv") == "1" else 2
    mount, _, secret = path.partition("/")
    if kv == 2 and secret.startswith("data/"):
        secret = secret[len("data/") :]  # the API form, <mount>/data/<path>
    auth = options.get("auth")
    version = options.get("version")
    return HashiCorpVaultStore(
        secret,
        mount_point=mount,
        kv_version=kv,
        version=int(version) if version is not None else None,
        addr=options.get("addr"),
        auth="approle" if auth == "approle" else "token" if auth == "token" else None,
        environ=environ,
        allow_insecure_http=allow_insecure_http,
    )
