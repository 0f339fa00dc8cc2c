"""A small Google Cloud Secret Manager for tests: `AccessSecretVersion` over REST.

It speaks the documented REST API (https://cloud.google.com/secret-manager/docs/reference/rest)
that `SecretManagerServiceClient(transport="rest")` calls, on 127.0.0.1 in a thread:

- `GET /v1/projects/{p}/secrets/{s}/versions/{v}:access` -> `{"name": ..., "payload":
  {"data": <base64>, "dataCrc32c": "<int64 as a string>"}}`; `latest` is the newest version.
- A missing secret or version: 404 `{"error": {"code": 404, "status": "NOT_FOUND", ...}}`.
- A secret the caller may not read: 403 `PERMISSION_DENIED`.
- A disabled or destroyed version: 400 `FAILED_PRECONDITION`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from typing_extensions import Self

from helpers.internals import crc32c

_ACCESS = re.compile(r"/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access")


@attrs.define
class Version:
    data: bytes
    state: str = "ENABLED"  # ENABLED | DISABLED | DESTROYED
    checksum: int | str | None = "auto"  # "auto": the right one; None: not sent


class FakeSecretManager:
    """The server's state; `start()` serves it; use as a context manager."""

    def __init__(self, project_number: str = "123456789012") -> None:
        self.project_number = project_number
        self.secrets: dict[tuple[str, str], list[Version]] = {}
        self.denied: set[tuple[str, str]] = set()
        self.requests: list[str] = []
        self.fail_next: list[tuple[int, str]] = []  # (HTTP status, error status) to answer
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_version(self, project: str, secret: str, data: bytes, **options: Any) -> int:
        versions = self.secrets.setdefault((project, secret), [])
        versions.append(Version(data, **options))
        return len(versions)

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeSecretManager:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with fake._lock:
                    path = self.path.partition("?")[0]
                    fake.requests.append(path)
                    status, reply = fake._answer(path)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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

    @staticmethod
    def _error(code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"error": {"code": code, "message": message, "status": status}}

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if self.fail_next:
            code, status = self.fail_next.pop(0)
            return self._error(code, status, f"failed as told ({status})")
        match = _ACCESS.fullmatch(path)
        if match is None:
            return self._error(404, "NOT_FOUND", "Method not found.")
        project, secret, wanted = match.groups()
        resource = f"projects/{project}/secrets/{secret}/versions/{wanted}"
        if (project, secret) in self.denied:
            return self._error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'secretmanager.versions.access' denied for resource '{resource}' "
                "(or it may not exist).",
            )
        versions = self.secrets.get((project, secret))
        if not versions:
            return self._error(
                404,
                "NOT_FOUND",
                f"Secret [projects/{self.project_number}/secrets/{secret}] not found or has "
                "no versions.",
            )
        number = len(versions) if wanted == "latest" else int(wanted) if wanted.isdigit() else 0
        if not 1 <= number <= len(versions):
            return self._error(
                404,
                "NOT_FOUND",
                f"Secret Version [projects/{self.project_number}/secrets/{secret}/versions/"
                f"{wanted}] not found.",
            )
        version = versions[number - 1]
        name = f"projects/{self.project_number}/secrets/{secret}/versions/{number}"
        if version.state != "ENABLED":
            return self._error(
                400, "FAILED_PRECONDITION", f"Secret Version [{name}] is in {version.state} state."
            )
        payload: dict[str, Any] = {"data": base64.b64encode(version.data).decode()}
        checksum = crc32c(version.data) if version.checksum == "auto" else version.checksum
        if checksum is not None:
            payload["dataCrc32c"] = str(checksum)  # int64 is a string in proto3 JSON
        return 200, {"name": name, "payload": payload}
