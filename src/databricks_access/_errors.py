"""The exceptions of databricks_access, and the mapping from an HTTP reply to one.

The tree::

    DatabricksAccessError
    ├── ConfigError            bad input, found before any request is sent
    ├── SecretStoreError       credentials missing, unreadable or malformed
    ├── ApiError               the server answered with an error
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401, and OAuth token errors
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404
    │   ├── ConflictError            409
    │   ├── RateLimitedError         429, and the 500 REQUEST_LIMIT_EXCEEDED form
    │   └── ServerError              5xx
    ├── TransportError         the network failed (connect, read, write, protocol)
    │   └── RequestTimeoutError      the request or the overall deadline timed out
    ├── LeaseError             a lease cannot be created, changed or stored
    └── ApprovalError          an access request cannot be approved by this person

No message built here ever contains a secret or a token: replies carry neither, and
credentials are never formatted into an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from databricks_access._util.json import loads
from databricks_access._util.redact import redact

__all__ = [
    "ApiError",
    "ApprovalError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "DatabricksAccessError",
    "LeaseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "SecretStoreError",
    "ServerError",
    "TransportError",
    "error_from_reply",
]

# Longest detail kept from a reply: error bodies are user-visible text, but a proxy can
# answer with a whole HTML page.
_MAX_DETAIL = 500
_MAX_BODY = 256 * 1024


class DatabricksAccessError(Exception):
    """The root of every error raised by databricks_access.

    Attributes:
        maybe_applied: The failed request may still have taken effect: one of its
            attempts was sent and then lost (a dropped connection, a timeout) or met a
            server failure (500, 502, 504) before the retries gave up.
    """

    maybe_applied: bool = False


@attrs.frozen
class ConfigProblem:
    """One problem with a configuration value: the field it concerns and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ConfigError(DatabricksAccessError, ValueError):
    """Bad input, reported before any request is sent.

    Carries every problem found, each naming its field, so a user fixes all at once::

        try:
            da.AccountConfig(host="http://example.com", account_id="nope")
        except da.ConfigError as exc:
            for problem in exc.problems:
                print(problem.field, problem.message)
    """

    problems: tuple[ConfigProblem, ...]

    def __init__(self, problems: Iterable[ConfigProblem] | str, field: str | None = None) -> None:
        if isinstance(problems, str):
            problems = (ConfigProblem(field or "value", problems),)
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"{len(self.problems)} configuration problems:\n{lines}"
        super().__init__(text)

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the fields with a problem, in the order found."""
        return tuple(p.field for p in self.problems)


class SecretStoreError(DatabricksAccessError):
    """Credentials could not be read: the message names the store and what is missing."""


class ApiError(DatabricksAccessError):
    """The account API answered with an error.

    Attributes:
        status_code: The HTTP status.
        error_code: The server's error code (`RESOURCE_DOES_NOT_EXIST`, `invalid_client`,
            a SCIM `scimType`, ...), or None when the reply carried none.
        detail: The server's message, shortened; never a secret.
        method: The HTTP method of the failed request, when known.
        path: The URL path of the failed request, when known.
        retry_after: The wait in seconds the server asked for (`Retry-After`), if usable.
    """

    def __init__(
        self,
        status_code: int,
        error_code: str | None = None,
        detail: str = "",
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.status_code = status_code
        self.error_code = error_code
        # Server text: a proxy's page can echo the request, credentials and all.
        self.detail = redact(detail)
        self.method = method
        self.path = path
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"HTTP {self.status_code}"
        if self.error_code:
            head += f" {self.error_code}"
        text = f"{head}: {self.detail}" if self.detail else head
        if self.method and self.path:
            text += f" ({self.method} {self.path})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_api_error,
            (
                type(self),
                self.status_code,
                self.error_code,
                self.detail,
                self.method,
                self.path,
                self.retry_after,
            ),
        )


def _rebuild_api_error(  # noqa: PLR0917 - pickle passes positionally
    cls: type[ApiError],
    status_code: int,
    error_code: str | None,
    detail: str,
    method: str | None,
    path: str | None,
    retry_after: float | None,
) -> ApiError:
    return cls(status_code, error_code, detail, method=method, path=path, retry_after=retry_after)


class BadRequestError(ApiError):
    """HTTP 400: the server refused the request as malformed (an invalid filter, say)."""


class AuthenticationError(ApiError):
    """HTTP 401, or the OAuth token endpoint refused the credentials."""


class PermissionDeniedError(ApiError):
    """HTTP 403: the service principal lacks a role (account admin, group manager)."""


class NotFoundError(ApiError):
    """HTTP 404: no such user, group, service principal or workspace."""


class ConflictError(ApiError):
    """HTTP 409: the resource already exists, or an etag was stale."""


class RateLimitedError(ApiError):
    """HTTP 429, or a 500 whose body says `REQUEST_LIMIT_EXCEEDED`; always retried."""


class ServerError(ApiError):
    """HTTP 5xx: the server failed."""


class TransportError(DatabricksAccessError):
    """The request did not get an answer: connection refused or dropped, TLS, protocol.

    Attributes:
        request_not_sent: True when the failure happened before the request left (a
            refused connection, a failed token fetch), so even a POST may be retried.
    """

    def __init__(self, message: str, *, request_not_sent: bool = False) -> None:
        self.request_not_sent = request_not_sent
        # A transport's own text can quote a header it refused (`Bearer <token>`).
        super().__init__(redact(message))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_transport_error, (type(self), str(self), self.request_not_sent))


def _rebuild_transport_error(
    cls: type[TransportError], message: str, request_not_sent: bool
) -> TransportError:
    return cls(message, request_not_sent=request_not_sent)


class RequestTimeoutError(TransportError):
    """A request, or the overall deadline of its retries, ran out of time."""


class LeaseError(DatabricksAccessError):
    """A lease could not be created, changed or stored."""


class ApprovalError(DatabricksAccessError):
    """An access request cannot be approved: self-approval, or not an approver."""


# error_code values, upper-cased, mapped before the HTTP status.
_BY_CODE: dict[str, type[ApiError]] = {
    "REQUEST_LIMIT_EXCEEDED": RateLimitedError,
    "TOO_MANY_REQUESTS": RateLimitedError,
    "RESOURCE_EXHAUSTED": RateLimitedError,
    "RESOURCE_DOES_NOT_EXIST": NotFoundError,
    "NOT_FOUND": NotFoundError,
    "NOTFOUND": NotFoundError,
    "ALREADY_EXISTS": ConflictError,
    "RESOURCE_ALREADY_EXISTS": ConflictError,
    "RESOURCE_CONFLICT": ConflictError,
    "UNIQUENESS": ConflictError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": AuthenticationError,
    "INVALID_CLIENT": AuthenticationError,
    "INVALID_TOKEN": AuthenticationError,
    "UNAUTHORIZED_CLIENT": AuthenticationError,
    "INVALID_GRANT": AuthenticationError,
    "INVALID_PARAMETER_VALUE": BadRequestError,
    "INVALID_REQUEST": BadRequestError,
    "MALFORMED_REQUEST": BadRequestError,
    "BAD_REQUEST": BadRequestError,
    "INVALIDFILTER": BadRequestError,
    "INVALIDSYNTAX": BadRequestError,
    "INVALIDVALUE": BadRequestError,
    "INVALIDPATH": BadRequestError,
    "NOTARGET": BadRequestError,
    "TOOMANY": BadRequestError,
    "INTERNAL_ERROR": ServerError,
    "INTERNAL_SERVER_ERROR": ServerError,
    "TEMPORARILY_UNAVAILABLE": ServerError,
    "SERVICE_UNAVAILABLE": ServerError,
    "DEADLINE_EXCEEDED": ServerError,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}

# "CODE: message" as plain text, the form some account APIs answer with.
_PLAIN_CODE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]{2,63})\s*:\s*(.*)$", re.DOTALL)
_LIMIT_MARK = "REQUEST_LIMIT_EXCEEDED"


def _shorten(text: str) -> str:
    text = text.strip()
    if len(text) > _MAX_DETAIL:
        return text[: _MAX_DETAIL - 1] + "…"
    return text


def _as_code(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        text = str(value).strip()
        return text or None
    return None


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def parse_error_body(body: bytes) -> tuple[str | None, str]:
    """Read an error reply's code and message from any of the forms Databricks sends.

    Handles the SCIM form (`detail`, `scimType`, a string `status`), the REST form
    (`error_code` as text or a number, `message`), the OAuth form (`error`,
    `error_description`), plain text `CODE: message`, and empty or binary bodies.
    Never raises.
    """
    # The detail is cut to a few hundred characters anyway: read no more than this.
    text = body[:_MAX_BODY].decode("utf-8", errors="replace").strip()
    if not text:
        return None, ""
    try:
        data = loads(text)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        code = (
            _as_code(data.get("error_code"))
            or _as_code(data.get("scimType"))
            or _as_code(data.get("error"))
        )
        detail = _as_text(
            data.get("message")
            or data.get("detail")
            or data.get("error_description")
            or data.get("error_message")
        )
        match = _PLAIN_CODE.match(detail)
        if match and match.group(1).isupper():
            if code is None or code.isdigit():
                code = match.group(1)
            if code.upper() == match.group(1):
                # "CODE: message" inside the JSON: the code is reported once, not twice.
                detail = match.group(2)
        return code, _shorten(detail)
    if data is not None:
        return None, _shorten(text)
    if text.lstrip().startswith("<"):
        # An HTML page from a proxy or load balancer says nothing useful.
        return None, ""
    match = _PLAIN_CODE.match(text)
    if match and match.group(1).isupper():
        return match.group(1), _shorten(match.group(2))
    return None, _shorten(text)


def error_from_reply(
    status: int,
    body: bytes,
    *,
    method: str | None = None,
    path: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Map an error reply to the matching `ApiError` subclass.

    The server's `error_code` is mapped first, then the HTTP status. A 500 whose code
    or detail says `REQUEST_LIMIT_EXCEEDED` is rate limiting (SCIM throttles that way).
    """
    code, detail = parse_error_body(body)
    cls: type[ApiError] | None = None
    if code is not None:
        cls = _BY_CODE.get(code.upper())
    if cls is None and status >= 500 and _LIMIT_MARK in detail.upper():
        cls = RateLimitedError
    if cls is None:
        cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    if cls is AuthenticationError and status == 401 and not detail and code is None:
        detail = "the access token was missing, expired or refused"
    return cls(status, code, detail, method=method, path=path, retry_after=retry_after)
