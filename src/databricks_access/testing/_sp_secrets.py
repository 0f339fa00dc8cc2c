"""Service principal OAuth secrets: create (the value is shown once), list, delete.

`/api/2.0/accounts/{account}/servicePrincipals/{id}/credentials/secrets`, where `{id}` is
the service principal's SCIM id (its application id is accepted too). A created secret
works at the token endpoint at once; a deleted one no longer does (tokens already issued
live on). REST error form.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

from databricks_access.testing._http import (
    FakeRequest,
    FakeResponse,
    Rejection,
    json_response,
    parse_json_body,
    rest_error,
)
from databricks_access.testing._oauth import new_secret
from databricks_access.testing._routing import Endpoint, RouteMatch
from databricks_access.testing._state import AccountState, OAuthSecret, ServicePrincipal

__all__ = ["MAX_SECRETS", "handle_secrets"]

MAX_SECRETS = 5
"""The most OAuth secrets one service principal may hold (WIRE.md)."""
_DEFAULT_LIFETIME = 730 * 24 * 3600
_LIFETIME = re.compile(r"(\d{1,12})s?\Z")


def _invalid(message: str) -> Rejection:
    return rest_error(400, "INVALID_PARAMETER_VALUE", message)


def _time(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(secret: OAuthSecret) -> str:
    return hashlib.sha256(secret.value.encode()).hexdigest()[:16]


def _render(secret: OAuthSecret) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": secret.id,
        "secret_hash": _hash(secret),
        "status": "ACTIVE",
        "create_time": _time(secret.created),
        "update_time": _time(secret.created),
    }
    if secret.expires is not None:
        out["expire_time"] = _time(secret.expires)
    return out


def _service_principal(state: AccountState, raw_id: str) -> ServicePrincipal:
    sp = state.service_principals.get(raw_id) or state.service_principal_by_client_id(raw_id)
    if sp is None:
        raise rest_error(
            404, "RESOURCE_DOES_NOT_EXIST", f"Service principal {raw_id} does not exist."
        )
    return sp


def _lifetime(body: object) -> float:
    raw = body.get("lifetime") if isinstance(body, dict) else None
    if raw is None:
        return float(_DEFAULT_LIFETIME)
    match = _LIFETIME.match(str(raw)) if isinstance(raw, (str, int)) else None
    seconds = int(match.group(1)) if match else 0
    if not 0 < seconds <= _DEFAULT_LIFETIME:
        raise _invalid(
            f"lifetime must be a number of seconds such as '3600s', at most {_DEFAULT_LIFETIME}."
        )
    return float(seconds)


def _create(state: AccountState, request: FakeRequest, sp: ServicePrincipal) -> FakeResponse:
    body = parse_json_body(request.body or b"{}", _invalid)
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    lifetime = _lifetime(body)
    if len(sp.secrets) >= MAX_SECRETS:
        raise _invalid(
            f"A service principal can have at most {MAX_SECRETS} OAuth secrets: delete one first."
        )
    secret = state.add_secret(sp, new_secret(), lifetime)
    return json_response(200, {**_render(secret), "secret": secret.value})


def _list(request: FakeRequest, sp: ServicePrincipal) -> FakeResponse:
    raw_size = request.params.get("page_size", "")
    size = int(raw_size) if raw_size.isdigit() and int(raw_size) > 0 else len(sp.secrets)
    token = request.params.get("page_token", "")
    if token and not token.isdigit():
        raise _invalid("The page_token is not valid.")
    offset = int(token) if token else 0
    page = sp.secrets[offset : offset + size]
    payload: dict[str, Any] = {"secrets": [_render(secret) for secret in page]}
    if offset + size < len(sp.secrets):
        payload["next_page_token"] = str(offset + size)
    return json_response(200, payload)


def handle_secrets(state: AccountState, request: FakeRequest, route: RouteMatch) -> FakeResponse:
    """Answer a request on the service principal secrets endpoints."""
    sp = _service_principal(state, route.params["sp_id"])
    if route.endpoint is Endpoint.SECRET:
        secret_id = route.params["secret_id"]
        kept = [secret for secret in sp.secrets if secret.id != secret_id]
        if len(kept) == len(sp.secrets):
            raise rest_error(404, "RESOURCE_DOES_NOT_EXIST", f"Secret {secret_id} does not exist.")
        sp.secrets[:] = kept
        return json_response(200, {})
    if request.method == "POST":
        return _create(state, request, sp)
    return _list(request, sp)
