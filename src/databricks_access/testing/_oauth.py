"""OAuth M2M: host metadata, OIDC discovery, the token endpoint, bearer-token checks.

Tokens are opaque random strings, valid until the injected clock passes their expiry.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import attrs

from databricks_access.testing._behaviour import Behaviour
from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    json_response,
    oauth_error,
    rest_error,
)
from databricks_access.testing._routing import OperationClass
from databricks_access.testing._state import ACCOUNT_ADMIN, AccountState

__all__ = [
    "Caller",
    "ServicePrincipalCredentials",
    "TokenRegistry",
    "authenticate",
    "authorize",
    "host_metadata",
    "new_secret",
    "oidc_discovery",
    "redact_form",
    "token_endpoint",
]

_SCOPES = frozenset({"all-apis"})
_PRUNE_ABOVE = 10_000


@attrs.frozen
class ServicePrincipalCredentials:
    """The OAuth credentials of an emulated service principal.

    The secret is hidden from `repr`, so a failing assertion never prints it.

    Attributes:
        id: The service principal's SCIM id (what group memberships name).
        client_id: The OAuth client id, which is the application id.
        client_secret: The OAuth client secret.
    """

    id: str
    client_id: str
    client_secret: str = attrs.field(repr=lambda _secret: "***")

    @property
    def application_id(self) -> str:
        """The service principal's application id (the same as `client_id`)."""
        return self.client_id


@attrs.frozen
class Caller:
    """Who sent a request.

    Attributes:
        client_id: The service principal's application id; None for the static token or
            when authentication is off.
        admin: Whether the caller holds the account admin role.
    """

    client_id: str | None
    admin: bool


@attrs.frozen
class _Issued:
    client_id: str | None
    expires_at: float | None
    # The workspace the token was issued by; None for the accounts host.
    audience: int | None = None


class TokenRegistry:
    """The access tokens the emulator has issued."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Issued] = {}
        self._static: str | None = None

    def issue(self, client_id: str, *, now: float, ttl: float, audience: int | None = None) -> str:
        """A new token for a service principal, expiring `ttl` seconds from `now`.

        `audience` is the workspace it is valid on; None for the accounts host.
        """
        if len(self._tokens) > _PRUNE_ABOVE:
            self._tokens = {
                token: issued
                for token, issued in self._tokens.items()
                if issued.expires_at is None or issued.expires_at > now
            }
        token = f"fake-{secrets.token_urlsafe(24)}"
        self._tokens[token] = _Issued(client_id, now + ttl, audience)
        return token

    def static(self) -> str:
        """The account owner's token: an account admin that never expires."""
        if self._static is None:
            self._static = f"fake-static-{secrets.token_urlsafe(24)}"
            self._tokens[self._static] = _Issued(None, None)
        return self._static

    def revoke_all(self) -> None:
        """Forget every token, the static one included."""
        self._tokens.clear()
        self._static = None

    def lookup(self, token: str) -> _Issued | None:
        """What a token was issued for, or None if it was never issued (or revoked)."""
        return self._tokens.get(token)


def new_secret() -> str:
    """A fresh, unpredictable OAuth secret in the shape of Databricks ones (`dose...`)."""
    return f"dose{secrets.token_hex(20)}"


def _oidc_root(state: AccountState) -> str:
    return f"{state.host}/oidc/accounts/{state.account_id}"


def host_metadata(state: AccountState) -> FakeResponse:
    """`GET /.well-known/databricks-config`."""
    if state.behaviour.oidc_endpoint_placeholder:
        payload = {
            "oidc_endpoint": f"{state.host}/oidc/accounts/{{account_id}}",
            "cloud": state.cloud,
        }
    else:
        payload = {
            "oidc_endpoint": _oidc_root(state),
            "account_id": state.account_id,
            "cloud": state.cloud,
            "host": state.host,
        }
    return json_response(200, payload)


def oidc_discovery(state: AccountState) -> FakeResponse:
    """`GET /oidc/accounts/{account_id}/.well-known/oauth-authorization-server`."""
    root = _oidc_root(state)
    token_path = state.behaviour.token_path.replace("{account_id}", state.account_id)
    return json_response(
        200,
        {
            "issuer": root,
            "authorization_endpoint": f"{root}/v1/authorize",
            "token_endpoint": f"{state.host}{token_path}",
            "jwks_uri": f"{root}/v1/keys",
            "response_types_supported": ["code"],
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "scopes_supported": ["all-apis", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        },
    )


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, client_secret = decoded.partition(":")
    return (client_id, client_secret) if colon else None


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return {}
    form: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, value)
    return form


def redact_form(body: bytes) -> bytes:
    """A token request body with its `client_secret` replaced by `***`, for the log."""
    form = _form(body)
    if "client_secret" not in form:
        return body
    form["client_secret"] = "***"  # noqa: S105 - the redaction marker
    return urlencode(form).encode()


def token_endpoint(
    state: AccountState,
    tokens: TokenRegistry,
    request: FakeRequest,
    *,
    audience: int | None = None,
    check: Callable[[str], None] | None = None,
) -> FakeResponse:
    """`POST` to the token endpoint: the client credentials grant.

    Args:
        state: The account.
        tokens: Where the token is recorded.
        request: The token request.
        audience: The workspace whose token endpoint this is; None for the accounts host.
        check: Called with the client id once its credentials are valid; it may raise a
            rejection (a workspace refusing an unassigned service principal).
    """
    form = _form(request.body)
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise oauth_error(400, "invalid_request", "The grant_type parameter is missing.")
    if grant_type != "client_credentials":
        raise oauth_error(
            400, "unsupported_grant_type", f"The grant type {grant_type!r} is not supported."
        )
    scope = form.get("scope", "all-apis")
    unknown = set(scope.split()) - _SCOPES
    if unknown or not scope.split():
        raise oauth_error(400, "invalid_scope", f"The scope {scope!r} is not supported.")
    header = request.headers.get("authorization")
    credentials = _basic_credentials(header) if header else None
    if credentials is None and "client_id" in form:
        credentials = (form["client_id"], form.get("client_secret", ""))
    if credentials is None:
        raise oauth_error(401, "invalid_client", "Client authentication failed: no credentials.")
    client_id, client_secret = credentials
    sp = state.service_principal_by_client_id(client_id)
    now = state.clock()
    valid = (
        sp is not None
        and sp.active
        and any(
            secrets.compare_digest(client_secret.encode(), known.value.encode())
            and (known.expires is None or now < known.expires)
            for known in sp.secrets
        )
    )
    if sp is None or not valid:
        raise oauth_error(401, "invalid_client", "Client authentication failed.")
    if check is not None:
        check(sp.application_id)
    ttl = state.behaviour.token_ttl
    token = tokens.issue(sp.application_id, now=state.clock(), ttl=ttl, audience=audience)
    return json_response(
        200,
        {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope},
    )


def authenticate(
    state: AccountState,
    tokens: TokenRegistry,
    request: FakeRequest,
    *,
    audience: int | None = None,
) -> Caller:
    """Check the bearer token of an API request.

    Args:
        state: The account.
        tokens: The tokens issued.
        request: The request.
        audience: The workspace the request is for; None for the accounts host. A token
            is valid only where it was issued.

    Raises:
        Rejection: 401 in REST form for a missing, unknown or expired token, one issued
            for another host, or one whose service principal is gone or disabled.
    """
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise rest_error(
            401, 401, "Credential was not sent or was of an unsupported type for this API."
        )
    issued = tokens.lookup(token.strip())
    if issued is None:
        raise rest_error(401, "UNAUTHENTICATED", "Invalid access token.")
    if issued.audience != audience:
        where = "the accounts host" if audience is None else f"workspace {audience}"
        raise rest_error(
            401, "UNAUTHENTICATED", f"Invalid access token: it was not issued for {where}."
        )
    if issued.expires_at is not None and state.clock() >= issued.expires_at:
        raise rest_error(401, "UNAUTHENTICATED", "The access token has expired.")
    if issued.client_id is None:
        return Caller(None, admin=True)
    sp = state.service_principal_by_client_id(issued.client_id)
    if sp is None or not sp.active:
        raise rest_error(401, "UNAUTHENTICATED", "Invalid access token.")
    # The account admin role counts whether it is held directly or through a group.
    return Caller(sp.application_id, admin=state.holds_role(sp.id, ACCOUNT_ADMIN))


def authorize(caller: Caller, op_class: OperationClass, behaviour: Behaviour) -> None:
    """Refuse what a caller without the account admin role may not do.

    Raises:
        Rejection: 403 `PERMISSION_DENIED` in REST form.
    """
    if caller.admin:
        return
    if op_class in (OperationClass.PATCH, OperationClass.WRITE) or not behaviour.non_admin_can_read:
        raise rest_error(
            403,
            "PERMISSION_DENIED",
            f"Only account admins may call this API; service principal {caller.client_id} "
            "does not have the account admin role.",
        )
