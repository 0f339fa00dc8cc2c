"""Requests and responses of the emulator, independent of any HTTP library.

Also the three error forms the real account API answers with (WIRE.md, "Errors"): the
SCIM form on SCIM endpoints, the REST form elsewhere, the OAuth form on the token endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs

from databricks_access.testing._routing import OperationClass, RouteMatch

__all__ = [
    "SCIM_ERROR_SCHEMA",
    "ConnectionFault",
    "DropConnection",
    "FakeRequest",
    "FakeResponse",
    "HoldConnection",
    "PassThrough",
    "Rejection",
    "json_response",
    "oauth_error",
    "parse_json_body",
    "rest_error",
    "scim_error",
]

SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_JSON = (("content-type", "application/json"),)


def _form_params(request: FakeRequest) -> Mapping[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        params.setdefault(name, value)
    return params


@attrs.frozen(eq=False)
class FakeRequest:
    """A request as the emulator sees it, before it is handled.

    Attributes:
        method: The HTTP method, upper case.
        path: The raw path, percent-encoded as sent, without the query.
        query: The raw query string, without the `?`.
        headers: The headers, names lower case.
        body: The raw body.
        op_class: The operation class the request belongs to.
        route: The endpoint the path names, or None for an unknown route.
        params: The query parameters, form-decoded (`+` is a space, `%2B` a plus); when a
            name repeats, the first value wins.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = attrs.field(repr=False)
    op_class: OperationClass
    route: RouteMatch | None
    params: Mapping[str, str] = attrs.field(
        init=False, repr=False, default=attrs.Factory(_form_params, takes_self=True)
    )


@attrs.frozen
class FakeResponse:
    """A response of the emulator.

    Attributes:
        status: The HTTP status code.
        headers: The response headers, as name-value pairs.
        body: The raw body.
        delay: Seconds the transport or server waits before sending it (injected latency).
        fault: The name of the fault this response plays, when one was injected; it is
            copied to the request log.
        applied: Whether the account still handles the request when an interceptor
            answers with this response (the write happens; the answer is this one).
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = attrs.field(default=0.0, kw_only=True)
    fault: str | None = attrs.field(default=None, kw_only=True)
    applied: bool = attrs.field(default=False, kw_only=True)

    def json(self) -> Any:
        """The body parsed as JSON (for assertions in tests)."""
        return json.loads(self.body)


@attrs.frozen
class PassThrough:
    """An interceptor's verdict: let the account answer, `delay` seconds later.

    Return it from an interceptor to slow a request down (latency), or to have the request
    log name a fault that changes no answer (`fault`), without answering in the
    account's place.

    Attributes:
        delay: Seconds to wait before the account's answer is sent.
        fault: The fault's name in the request log, or None.
    """

    delay: float = 0.0
    fault: str | None = None


class ConnectionFault(Exception):  # noqa: N818 - a fault to act out, not an error
    """Raised by an interceptor so that the request gets no answer at all.

    The in-process transport turns it into the httpx error a client would see; the
    loopback server acts it out on the socket. The request is logged with status 0.

    Args:
        applied: Whether the account still handles the request (the write happens, only
            the answer is lost), or never sees it.
    """

    fault = "connection"
    """The fault's name in the request log."""

    def __init__(self, *, applied: bool = False) -> None:
        super().__init__(self.fault)
        self.applied = applied


class DropConnection(ConnectionFault):
    """The connection is closed without an answer.

    In-process it raises `httpx.RemoteProtocolError`; the server closes the socket.
    """

    fault = "drop"


class HoldConnection(ConnectionFault):
    """No answer comes: the connection is held open, then closed.

    In-process it raises `httpx.ReadTimeout` at once (nothing waits); the server holds
    the socket for `seconds` (make it longer than the client's read timeout) and then
    closes it.

    Args:
        seconds: How long the server holds the connection before closing it.
        applied: Whether the account still handles the request.
    """

    fault = "timeout"

    def __init__(self, seconds: float = 30.0, *, applied: bool = False) -> None:
        super().__init__(applied=applied)
        self.seconds = seconds


class Rejection(Exception):  # noqa: N818 - a control-flow signal carrying a response
    """Raised inside a handler to answer with an error response at once."""

    def __init__(self, response: FakeResponse) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(status: int, payload: object) -> FakeResponse:
    """A JSON response."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return FakeResponse(status, _JSON, body)


def scim_error(status: int, detail: str, scim_type: str | None = None) -> Rejection:
    """A SCIM error: `schemas`, `detail`, `status` as a string, and `scimType` if any."""
    payload: dict[str, object] = {
        "schemas": [SCIM_ERROR_SCHEMA],
        "detail": detail,
        "status": str(status),
    }
    if scim_type is not None:
        payload["scimType"] = scim_type
    return Rejection(json_response(status, payload))


def rest_error(status: int, error_code: str | int, message: str) -> Rejection:
    """A REST error: `{"error_code", "message"}`."""
    return Rejection(json_response(status, {"error_code": error_code, "message": message}))


def oauth_error(status: int, error: str, description: str) -> Rejection:
    """An OAuth error: `{"error", "error_description"}`."""
    return Rejection(json_response(status, {"error": error, "error_description": description}))


def parse_json_body(body: bytes, invalid: Callable[[str], Rejection]) -> Any:
    """Parse a request body as JSON, or raise the rejection `invalid` builds from a message.

    Bodies that are not UTF-8, not JSON, or nested deep enough to exhaust the parser's
    recursion are all refused the same way: never a crash.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise invalid("The request body is not valid JSON.") from None
