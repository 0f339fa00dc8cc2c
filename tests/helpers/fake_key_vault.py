"""A small Azure Key Vault for tests, served in-process under the real `SecretClient`.

The Azure SDK's `SecretClient` is built with its ordinary requests transport over a
`requests.Session` whose adapter answers here, so the SDK's own pipeline runs unchanged:
the Key Vault challenge (a first request without a token, a 401 with `WWW-Authenticate`,
then `credential.get_token(...)` and the request again with the bearer token), its error
mapping and its models. It answers as the documented service does
(https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret):

- `GET /secrets/{name}[/{version}]?api-version=...` -> 200 `{"value", "id", "attributes"}`.
- Not found -> 404 `{"error": {"code": "SecretNotFound", ...}}` (`ResourceNotFoundError`).
- Not allowed -> 403 `{"error": {"code": "Forbidden", "innererror": {"code":
  "ForbiddenByRbac"}}}` (`HttpResponseError`, status 403).
- A disabled secret -> 403 `{"error": {"code": "Forbidden", "message": "Operation get is
  not allowed on a disabled secret.", "innererror": {"code": "SecretDisabled"}}}`.
- A refused token -> 401 (`ClientAuthenticationError`).
"""

from __future__ import annotations

import io
import itertools
import json
import time
from typing import Any
from urllib.parse import urlsplit

import attrs
import requests
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from azure.keyvault.secrets import SecretClient
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
    'resource="https://vault.azure.net"'
)


@attrs.define
class Version:
    id: str
    value: str | None
    enabled: bool = True


class FakeCredential:
    """A `TokenCredential` double: hands out a token, or raises what it is told to."""

    def __init__(
        self,
        token: str = "fake-access-token",  # noqa: S107 - a fake
        error: Exception | None = None,
    ) -> None:
        self.token = token
        self.error = error
        self.calls: list[tuple[str, ...]] = []
        self.closed = False

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.calls.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(self.token, int(time.time()) + 3600)

    def close(self) -> None:
        self.closed = True


class FakeKeyVault(BaseAdapter):
    """The vault's state, and the requests adapter that serves it."""

    def __init__(self, vault_url: str = "https://jit.vault.azure.net") -> None:
        super().__init__()
        self.vault_url = vault_url
        self.secrets: dict[str, list[Version]] = {}
        self.denied: set[str] = set()
        self.valid_tokens = {"fake-access-token"}
        self.fail_connect = False
        self.requests: list[str] = []
        self._ids = itertools.count(1)
        self._sessions: list[requests.Session] = []
        self._clients: list[Any] = []

    def set_secret(self, name: str, value: str | None, *, enabled: bool = True) -> str:
        version = f"{next(self._ids):032x}"
        self.secrets.setdefault(name, []).append(Version(version, value, enabled))
        return version

    def client(self, credential: Any = None, **options: Any) -> Any:
        """A real `SecretClient` whose HTTP goes to this fake; closed by `close_all`."""
        session = requests.Session()
        session.mount("https://", self)
        self._sessions.append(session)
        client = SecretClient(
            self.vault_url,
            credential or FakeCredential(),
            transport=RequestsTransport(session=session, session_owner=False),
            retry_total=0,
            **options,
        )
        self._clients.append(client)
        return client

    def close_all(self) -> None:
        for client in self._clients:
            client.close()
        for session in self._sessions:
            session.close()

    # -- the requests adapter -------------------------------------------------------------

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        self.requests.append(f"{request.method} {request.url}")
        if self.fail_connect:
            raise requests.ConnectionError("connection refused")
        auth = request.headers.get("Authorization")
        if auth is None:
            return self._reply(request, 401, None, {"WWW-Authenticate": CHALLENGE})
        if auth.removeprefix("Bearer ") not in self.valid_tokens:
            return self._reply(
                request,
                401,
                {"error": {"code": "Unauthorized", "message": "AKV10032: Invalid issuer."}},
                {"WWW-Authenticate": CHALLENGE},
            )
        status, body = self._answer(request.method, urlsplit(request.url).path)
        return self._reply(request, status, body, {})

    def close(self) -> None:
        pass

    def _answer(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        segments = [segment for segment in path.split("/") if segment]
        if method != "GET" or not 2 <= len(segments) <= 3 or segments[0] != "secrets":
            return 400, {"error": {"code": "BadParameter", "message": "Unknown operation."}}
        name = segments[1]
        if name in self.denied:
            return 403, {
                "error": {
                    "code": "Forbidden",
                    "message": "Caller is not authorized to perform action on resource. "
                    "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
                    "innererror": {"code": "ForbiddenByRbac"},
                }
            }
        versions = self.secrets.get(name, [])
        wanted = segments[2] if len(segments) == 3 else None
        found = [v for v in versions if wanted is None or v.id == wanted]
        if not found:
            return 404, {
                "error": {
                    "code": "SecretNotFound",
                    "message": f"A secret with (name/id) {name} was not found in this key vault.",
                }
            }
        version = found[-1]
        if not version.enabled:
            return 403, {
                "error": {
                    "code": "Forbidden",
                    "message": "Operation get is not allowed on a disabled secret.",
                    "innererror": {"code": "SecretDisabled"},
                }
            }
        body: dict[str, Any] = {
            "id": f"{self.vault_url}/secrets/{name}/{version.id}",
            "attributes": {
                "enabled": True,
                "created": 1767225600,
                "updated": 1767225600,
                "recoveryLevel": "Recoverable+Purgeable",
            },
            "tags": {},
        }
        if version.value is not None:
            body["value"] = version.value
        return 200, body

    @staticmethod
    def _reply(
        request: Any, status: int, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> requests.Response:
        data = b"" if body is None else json.dumps(body).encode()
        all_headers = {"Content-Length": str(len(data)), **headers}
        if body is not None:
            all_headers["Content-Type"] = "application/json; charset=utf-8"
        response = requests.Response()
        response.request = request
        response.url = request.url
        response.status_code = status
        response.reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(
            status, "Bad Request"
        )
        response.headers = CaseInsensitiveDict(all_headers)
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(data), headers=all_headers, status=status, preload_content=False
        )
        return response
