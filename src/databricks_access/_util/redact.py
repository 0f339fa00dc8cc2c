"""Credentials kept out of text: refused in URLs, masked in what a server sends.

Two rules, each in one function:

- `url_secret` finds a credential in a URL or a store reference (a password in the
  user information, `password=`, `sslpassword=`, `token=` and the like in the query, at
  any depth: a reference's option can itself be a URL). Every store and secret URL is
  checked with it before it is stored or shown, and refused without echoing it.
- `redact` masks credentials in text the library did not write: an error body, a
  proxy's error page that echoes the request, an exception from a transport. Bearer
  and Basic credentials, `Authorization`/`X-Vault-Token` headers, secret-looking
  `key=value` pairs and JSON members, and passwords in URLs become `***`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

__all__ = ["MASK", "redact", "url_secret"]

MASK = "***"

# Query keys (lower-case, `-` read as `_`) whose value is a credential.
_SECRET_KEYS = frozenset(
    {
        "password",
        "sslpassword",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "client_secret",
        "secret_id",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "vault_token",
        "x_vault_token",
        "api_key",
        "apikey",
        "authorization",
        "credential",
        "credentials",
        "sig",
        "signature",
    }
)
_SECRET_SUFFIXES = ("password", "secret", "token", "_key")


def _is_secret_key(key: str) -> bool:
    name = key.strip().lower().replace("-", "_")
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def url_secret(text: str, *, depth: int = 3) -> str | None:
    """What in `text` (a URL or a store reference) is a credential; None when nothing is.

    The answer names the place (`user information`, the query key), never the value.

    Example:
        >>> url_secret("postgresql://jit@db/jit?sslpassword=x")
        'holds a secret in its query (sslpassword=)'
        >>> url_secret("postgresql://jit:x@db/jit")
        'holds a password in its user information (user:password@)'
        >>> url_secret("postgresql://jit@db/jit?sslmode=require") is None
        True
    """
    if depth <= 0 or not text:
        return None
    try:
        password = urlsplit(text.strip()).password
    except ValueError:
        password = None
    if password is not None:
        return "holds a password in its user information (user:password@)"
    _, question, query = text.partition("?")
    if not question:
        return None
    for key, value in _pairs(query):
        if _is_secret_key(key):
            return f"holds a secret in its query ({key.strip().lower()}=)"
        if "://" in value or "?" in value:  # an option that is itself a URL
            found = url_secret(value, depth=depth - 1)
            if found is not None:
                return found
    return None


def _pairs(query: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=50)
    except ValueError:
        return []


_KEY_NAMES = (
    r"(?:client[_-]?secret|secret[_-]?id|(?:access|refresh|id)[_-]?token|password|"
    r"sslpassword|passwd|api[_-]?key|token|secret)"
)
_PATTERNS = (
    # `Bearer <token>`, `Basic <base64>`, with or without an `Authorization:` before them.
    # (An all-lower-case word after `basic` is English, not a credential.)
    re.compile(r"(?i)\b(bearer|basic|negotiate)(\s+)(?![a-z]+\b)[A-Za-z0-9._~+/=-]{6,}"),
    # A header line or value: `Authorization: ...`, `X-Vault-Token: ...`.
    re.compile(
        r"(?i)\b(authorization|proxy-authorization|x-vault-token|cookie)(\s*[:=]\s*)[^\r\n]+"
    ),
    # `"client_secret": "..."` in JSON.
    re.compile(rf'(?i)("{_KEY_NAMES}")(\s*:\s*)"(?:[^"\\]|\\.)*"'),
    # `client_secret=...` in a form body or a query.
    re.compile(rf"(?i)\b({_KEY_NAMES})(=)[^&\s\"'<>]+"),
    # `scheme://user:password@host`.
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/:@]*)(:)[^\s/@]*(?=@)"),
)


def _mask(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{MASK}"


def redact(text: str) -> str:
    r"""`text` with anything that looks like a credential replaced by `***`.

    For text from outside: a reply body, a proxy's page, a transport's exception.

    Example:
        >>> redact("GET /x HTTP/1.1\r\nAuthorization: Basic aWQ6c2VjcmV0\r\n")
        'GET /x HTTP/1.1\r\nAuthorization: ***\r\n'
        >>> redact('{"client_secret": "s3cr3t", "user": "a"}')
        '{"client_secret": ***, "user": "a"}'
        >>> redact("token refused: Bearer abc.def.ghi")
        'token refused: Bearer ***'
    """
    for pattern in _PATTERNS:
        text = pattern.sub(_mask, text)
    return text
