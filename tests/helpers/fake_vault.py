"""A small HashiCorp Vault for tests: KV v1 and v2, token and AppRole auth, over real HTTP.

Vault is in neither Debian's packages nor PyPI, so this speaks the documented HTTP API
(https://developer.hashicorp.com/vault/api-docs) that hvac calls, on 127.0.0.1 in a
thread:

- `POST /v1/auth/<mount>/login` (AppRole) -> `{"auth": {"client_token", "lease_duration",
  "renewable", "policies", "accessor", ...}}`; bad ids -> 400 `{"errors": ["invalid role
  or secret ID"]}`.
- `GET /v1/<mount>/data/<path>[?version=N]` (KV v2) -> `{"data": {"data": {...},
  "metadata": {...}}}`; a deleted version -> 404 with the metadata (its `deletion_time`
  set) and no data; a missing secret -> 404 `{"errors": []}`.
- `GET /v1/<mount>/<path>` (KV v1) -> `{"data": {...}}`.
- Every read needs `X-Vault-Token`: a missing, unknown, expired or unauthorised token is
  403 `{"errors": ["permission denied"]}`.

Token lifetimes run on an injected monotonic clock, so a test expires a token by
advancing the same clock the store under test uses.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
from typing_extensions import Self


@attrs.define
class Token:
    policies: set[str]  # the API paths it may read ("mount/data/path"), or "*"
    expires: float | None  # monotonic time; None: never


@attrs.define
class Version:
    data: dict[str, Any]
    deleted: bool = False
    destroyed: bool = False


@attrs.define
class Request:
    method: str
    path: str
    token: str | None
    namespace: str | None


class FakeVault:
    """The server's state; `start()` serves it; use as a context manager."""

    def __init__(self, *, clock: Callable[[], float], lease_duration: int = 3600) -> None:
        self.clock = clock
        self.lease_duration = lease_duration
        self.kv1: dict[str, dict[str, dict[str, Any]]] = {}
        self.kv2: dict[str, dict[str, list[Version]]] = {}
        self.tokens: dict[str, Token] = {}
        self.approles: dict[str, tuple[str, set[str]]] = {}  # role_id -> (secret_id, policies)
        self.approle_mount = "approle"
        self.requests: list[Request] = []
        self.fail_next: list[tuple[int, dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- state ------------------------------------------------------------------------

    def put_v1(self, mount: str, path: str, data: dict[str, Any]) -> None:
        self.kv1.setdefault(mount, {})[path] = data

    def put_v2(self, mount: str, path: str, data: dict[str, Any]) -> int:
        versions = self.kv2.setdefault(mount, {}).setdefault(path, [])
        versions.append(Version(data))
        return len(versions)

    def add_token(self, token: str, *policies: str, ttl: float | None = None) -> None:
        expires = None if ttl is None else self.clock() + ttl
        self.tokens[token] = Token(set(policies), expires)

    def add_approle(self, role_id: str, secret_id: str, *policies: str) -> None:
        self.approles[role_id] = (secret_id, set(policies))

    def logins(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST" and r.path.endswith("/login"))

    def reads(self) -> int:
        return sum(1 for r in self.requests if r.method == "GET")

    # -- serving ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeVault:
        vault = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                vault._handle(self, "GET")

            def do_POST(self) -> None:
                vault._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ----------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        token = handler.headers.get("X-Vault-Token")
        with self._lock:
            self.requests.append(
                Request(method, parts.path, token, handler.headers.get("X-Vault-Namespace"))
            )
            if self.fail_next:
                status, reply = self.fail_next.pop(0)
            else:
                status, reply = self._answer(method, parts.path, parse_qs(parts.query), token, body)
        data = json.dumps(reply).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        token: str | None,
        body: bytes,
    ) -> tuple[int, dict[str, Any]]:
        if not path.startswith("/v1/"):
            return 404, {"errors": []}
        path = path[len("/v1/") :]
        if method == "POST" and path == f"auth/{self.approle_mount}/login":
            return self._login(body)
        if method == "POST" and path.startswith("auth/") and path.endswith("/login"):
            return 404, {"errors": [f'no handler for route "{path}". route entry not found.']}
        if method != "GET":
            return 405, {"errors": []}
        mount, _, rest = path.partition("/")
        if not self._allowed(token, path):
            return 403, {"errors": ["permission denied"]}
        if mount in self.kv2:
            if not rest.startswith("data/"):
                return 404, {"errors": []}
            return self._read_v2(mount, rest[len("data/") :], query)
        if mount in self.kv1:
            data = self.kv1[mount].get(rest)
            if data is None:
                return 404, {"errors": []}
            return 200, self._envelope(data, lease_duration=2764800)
        return 404, {"errors": []}

    def _allowed(self, token: str | None, path: str) -> bool:
        found = self.tokens.get(token or "")
        if found is None:
            return False
        if found.expires is not None and self.clock() >= found.expires:
            return False
        return "*" in found.policies or path in found.policies

    def _login(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            sent = json.loads(body or b"{}")
        except ValueError:
            return 400, {"errors": ["failed to parse JSON input"]}
        role = self.approles.get(str(sent.get("role_id")))
        if role is None or sent.get("secret_id") != role[0]:
            return 400, {"errors": ["invalid role or secret ID"]}
        client_token = f"hvs.fake-{next(self._ids)}"
        self.add_token(client_token, *role[1], ttl=self.lease_duration or None)
        reply = self._envelope(None)
        reply["auth"] = {
            "client_token": client_token,
            "accessor": f"accessor-{client_token}",
            "policies": ["default", *sorted(role[1])],
            "token_policies": ["default", *sorted(role[1])],
            "metadata": {"role_name": "databricks"},
            "lease_duration": self.lease_duration,
            "renewable": True,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
        }
        return 200, reply

    def _read_v2(
        self, mount: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        versions = self.kv2[mount].get(path)
        if not versions:
            return 404, {"errors": []}
        wanted = query.get("version", ["0"])[0]
        number = int(wanted) if wanted.isdigit() and int(wanted) > 0 else len(versions)
        if number > len(versions):
            return 404, {"errors": []}
        version = versions[number - 1]
        metadata = {
            "created_time": "2026-01-01T00:00:00.000000Z",
            "custom_metadata": None,
            "deletion_time": "2026-01-02T00:00:00.000000Z" if version.deleted else "",
            "destroyed": version.destroyed,
            "version": number,
        }
        if version.deleted or version.destroyed:
            return 404, self._envelope({"data": None, "metadata": metadata})
        return 200, self._envelope({"data": version.data, "metadata": metadata})

    def _envelope(self, data: Any, *, lease_duration: int = 0) -> dict[str, Any]:
        return {
            "request_id": f"req-{next(self._ids)}",
            "lease_id": "",
            "renewable": False,
            "lease_duration": lease_duration,
            "data": data,
            "wrap_info": None,
            "warnings": None,
            "auth": None,
        }
