"""Host and endpoint rules: the one place where host URLs are checked and normalised.

Every host the library talks to passes through `check_host` (or `normalize_host`, its
raising form): `AccountConfig` uses it for `host` and `token_endpoint`, `IntegrationConfig`
reuses it unchanged, and so do the Azure Key Vault and HashiCorp Vault secret stores. The
rules live here only, below the packages that use them:

- https only. Plain http only for a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`)
  with `allow_insecure_http=True` *and* `allow_custom_host=True` (loopback is not a
  Databricks host), which is how the emulator is served.
- Databricks accounts hosts are recognised by suffix on a label boundary
  (`*.cloud.databricks.com`, `*.azuredatabricks.net`, ...); any other host needs
  `allow_custom_host=True`.
- A pasted console URL (`https://accounts.cloud.databricks.com/login?o=1#x`) is reduced to
  scheme + host; a bare host gets `https://`; the host is lower-cased.
- Refused: user information (`user:password@host`, never echoed back), a port on a
  Databricks host (an explicit default `:443` is accepted and dropped), whitespace inside,
  control characters, backslashes, non-ASCII characters (write an internationalised name
  in its `xn--` form), malformed names, ports and IP addresses.
"""

from __future__ import annotations

import enum
import ipaddress
import re

import attrs

from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._util.redact import url_secret

__all__ = [
    "Cloud",
    "check_account_id",
    "check_endpoint",
    "check_host",
    "cloud_for_host",
    "normalize_host",
]


class Cloud(enum.Enum):
    """The cloud a Databricks accounts host belongs to, recognised from its name.

    Example:
        >>> cloud_for_host("https://accounts.azuredatabricks.net")
        <Cloud.AZURE: 'azure'>
        >>> cloud_for_host("accounts-dod.cloud.databricks.mil").value
        'aws_dod'
    """

    AWS = "aws"
    """`*.cloud.databricks.com`"""
    AZURE = "azure"
    """`*.azuredatabricks.net`"""
    GCP = "gcp"
    """`*.gcp.databricks.com`"""
    AWS_GOV = "aws_gov"
    """AWS GovCloud: `*.cloud.databricks.us`"""
    AWS_DOD = "aws_dod"
    """AWS GovCloud DoD: `*.cloud.databricks.mil`"""
    AZURE_GOV = "azure_gov"
    """Azure US Government: `*.azuredatabricks.us`"""
    AZURE_CHINA = "azure_china"
    """Azure China: `*.azuredatabricks.cn` and `*.databricks.azure.cn`"""
    CUSTOM = "custom"
    """Any other host: a proxy or the emulator, allowed explicitly."""


# Each suffix starts with a dot, so a match is always on a label boundary and needs at
# least one label in front: `xcloud.databricks.com` and `cloud.databricks.com` do not match.
_SUFFIXES: tuple[tuple[str, Cloud], ...] = (
    (".cloud.databricks.com", Cloud.AWS),
    (".azuredatabricks.net", Cloud.AZURE),
    (".gcp.databricks.com", Cloud.GCP),
    (".cloud.databricks.us", Cloud.AWS_GOV),
    (".cloud.databricks.mil", Cloud.AWS_DOD),
    (".azuredatabricks.us", Cloud.AZURE_GOV),
    (".azuredatabricks.cn", Cloud.AZURE_CHINA),
    (".databricks.azure.cn", Cloud.AZURE_CHINA),
)
_ACCEPTED_SUFFIXES = ", ".join("*" + suffix for suffix, _ in _SUFFIXES)

_DEFAULT_PORTS = {"https": 443, "http": 80}
# A scheme is whatever precedes the first "://" that is not inside a path, query or fragment.
_SCHEME_PART = re.compile(r"([^/?#]*?)://")
# `https:/host` or `https:host`: a typo that would otherwise read as the host `https`.
_BROKEN_SCHEME = re.compile(r"(?i)https?:(?!//)")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
# Letters, digits, hyphen (not first or last) and underscore (container host names).
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# A last label that is a number makes a name an IPv4 address to most resolvers
# (`127.1`, `0x7f.1`, `2130706433`), so such a name must be a plain dotted quad.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{1,5}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_HOST_NAME = 253
_MAX_SHOWN = 80

_LOOPBACK_HINT = (
    "http only for a loopback emulator on localhost, 127.0.0.0/8 or [::1], "
    "with allow_insecure_http=True and allow_custom_host=True"
)


def _shown(text: str) -> str:
    """Quote a piece of the input for a message, shortened."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return repr(text)


@attrs.frozen
class _Url:
    """A parsed URL: lower-case scheme and host, the port if any, and what follows."""

    scheme: str
    host: str  # a lower-case name, a dotted quad, or an IPv6 address in brackets
    port: int | None  # None for none or the scheme's default
    tail: str  # path, query and fragment, as given
    loopback: bool
    cloud: Cloud

    @property
    def origin(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


def _cloud_of_name(name: str) -> Cloud:
    for suffix, cloud in _SUFFIXES:
        if name.endswith(suffix):
            return cloud
    return Cloud.CUSTOM


def _character_problem(text: str) -> str | None:
    for char in text:
        code = f"U+{ord(char):04X}"
        if char.isspace():
            return f"contains whitespace ({code}); remove it"
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"contains a control character ({code})"
        if not char.isascii():
            return (
                f"contains a non-ASCII character ({code}); write an internationalised "
                "domain name in its ASCII (xn--) form"
            )
        if char == "\\":
            return "contains a backslash; URLs use forward slashes"
    return None


def _parse_host_port(
    authority: str, shown: str, problems: list[str]
) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None, str | None] | None:
    """Split `host[:port]`, checking the host. None (with problems) when the host is bad."""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    if authority.startswith("["):
        literal, closed, after = authority[1:].partition("]")
        if not closed:
            problems.append(f"{shown} has an unclosed '[' in an IPv6 address")
            return None
        if after and not after.startswith(":"):
            problems.append(f"{shown} has characters after the IPv6 address")
            return None
        port_text = after[1:] if after else None
        if "%" in literal:
            problems.append(f"{shown} has an IPv6 zone identifier, which is not accepted")
            return None
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            problems.append(f"{shown} is not a valid IPv6 address")
            return None
        return f"[{address.compressed}]", address, port_text

    name, colon, port = authority.partition(":")
    port_text = port if colon else None
    name = name.lower()
    if not name:
        problems.append(f"{shown} has no host name")
        return None
    if name.endswith("."):
        problems.append(f"{shown} ends with a dot; remove it")
        return None
    labels = name.split(".")
    if len(name) > _MAX_HOST_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        problems.append(
            f"{shown} is not a valid host name (letters, digits and hyphens, "
            "in dot-separated labels)"
        )
        return None
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            address = ipaddress.IPv4Address(name)
        except ValueError:
            problems.append(f"{shown} is not a valid IPv4 address (write it as a.b.c.d)")
            return None
        name = str(address)
    return name, address, port_text


def _parse(value: object, *, keep_path: bool) -> tuple[_Url | None, list[str]]:
    """Parse and normalise a URL, reporting syntax problems (no policy yet).

    The URL comes back with problems when the rest could still be checked against the
    policy (user information, a bad port or scheme), so all of them are reported at once.
    """
    if not isinstance(value, str):
        return None, [f"must be a string, not {type(value).__name__}"]
    text = value.strip()
    if not text:
        return None, ["is empty; expected an https URL like https://accounts.cloud.databricks.com"]
    character = _character_problem(text)
    if character is not None:
        return None, [character]

    problems: list[str] = []
    if _BROKEN_SCHEME.match(text):
        return None, [f"{_shown(text)} has a malformed scheme; write https:// (two slashes)"]
    secret = url_secret(text)
    if secret is not None and "user information" not in secret:
        # Never echo the URL: it holds the secret. (User information is reported below.)
        return None, [f"{secret}; credentials never belong in the URL: remove them"]
    match = _SCHEME_PART.match(text)
    if match is None:
        scheme, rest = "https", text  # a bare host
    else:
        scheme, rest = match.group(1).lower(), text[match.end() :]
        if not _SCHEME.fullmatch(scheme):
            return None, ["has a malformed scheme; expected https://"]

    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        # Never echo what precedes the "@": it may be a password.
        problems.append(
            "contains user information (user:password@ before the host); credentials "
            "never belong in the URL: remove them"
        )
        authority = authority.rpartition("@")[2]
    shown = _shown(f"{scheme}://{authority}")

    if scheme not in _DEFAULT_PORTS:
        problems.append(f"{shown} uses scheme {scheme!r}; only https is accepted")
    parsed = _parse_host_port(authority, shown, problems)
    if parsed is None:
        return None, problems
    host, address, port_text = parsed

    port: int | None = None
    if port_text:  # an empty port ("host:") means the default, as RFC 3986 says
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            problems.append(f"{shown} has port {_shown(port_text)}; a port is a number 1-65535")
        else:
            port = int(port_text)
            if port == _DEFAULT_PORTS.get(scheme):
                port = None

    if keep_path:
        if "#" in tail:
            # RFC 6749 3.1.2/3.2: an endpoint URI must not include a fragment.
            problems.append(f"{shown} has a fragment (#...); an endpoint URL must not have one")
        if tail.split("?", 1)[0] in {"", "/"}:
            problems.append(
                f"{shown} has no path; give the full URL, e.g. "
                "https://accounts.cloud.databricks.com/oidc/accounts/<account_id>/v1/token"
            )
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    cloud = Cloud.CUSTOM if address is not None else _cloud_of_name(host)
    return _Url(scheme, host, port, tail if keep_path else "", loopback, cloud), problems


def _policy_problems(url: _Url, *, allow_custom_host: bool, allow_insecure_http: bool) -> list[str]:
    problems: list[str] = []
    shown = _shown(url.origin)
    if url.scheme == "http":
        if not url.loopback:
            problems.append(f"{shown} uses http; only https is accepted ({_LOOPBACK_HINT})")
        elif not allow_insecure_http:
            problems.append(
                f"{shown} uses http; only https is accepted (for a loopback emulator pass "
                "allow_insecure_http=True and allow_custom_host=True)"
            )
    if url.cloud is Cloud.CUSTOM:
        if not allow_custom_host:
            problems.append(
                f"{shown} is not a Databricks accounts host (accepted: {_ACCEPTED_SUFFIXES}); "
                "for a proxy or the emulator pass allow_custom_host=True"
            )
    elif url.port is not None:
        problems.append(
            f"{shown} has a port; a Databricks accounts host is reached on the default "
            "https port only"
        )
    return problems


def _check(
    value: object,
    *,
    allow_custom_host: bool,
    allow_insecure_http: bool,
    field: str,
    keep_path: bool,
) -> tuple[str | None, tuple[ConfigProblem, ...]]:
    url, messages = _parse(value, keep_path=keep_path)
    if url is not None:
        messages += _policy_problems(
            url, allow_custom_host=allow_custom_host, allow_insecure_http=allow_insecure_http
        )
    if url is None or messages:
        return None, tuple(ConfigProblem(field, message) for message in messages)
    return url.origin + url.tail, ()


def check_host(
    value: object,
    *,
    allow_custom_host: bool = False,
    allow_insecure_http: bool = False,
    field: str = "host",
) -> tuple[str | None, tuple[ConfigProblem, ...]]:
    """Check and normalise a host URL, returning problems instead of raising.

    The rules are those of `normalize_host`. Several problems of one value are all
    reported (user information, http and a foreign host, say), each naming `field`, so a
    configuration object can collect the problems of all its fields into one `ConfigError`.

    Returns:
        `(normalised, ())` when the value is accepted, else `(None, problems)`.

    Example:
        >>> check_host("HTTPS://Accounts.Cloud.Databricks.com/login")
        ('https://accounts.cloud.databricks.com', ())
        >>> url, problems = check_host("http://example.com", field="accounts_url")
        >>> [p.field for p in problems]
        ['accounts_url', 'accounts_url']
    """
    return _check(
        value,
        allow_custom_host=allow_custom_host,
        allow_insecure_http=allow_insecure_http,
        field=field,
        keep_path=False,
    )


def check_endpoint(
    value: object,
    *,
    allow_custom_host: bool = False,
    allow_insecure_http: bool = False,
    field: str = "token_endpoint",
) -> tuple[str | None, tuple[ConfigProblem, ...]]:
    """Check a full endpoint URL (an OAuth token URL) under the host rules; keep its path.

    The scheme and host are checked and normalised as by `normalize_host`; the path and
    query are kept as given and must be present; a fragment is refused (RFC 6749).

    Example:
        >>> check_endpoint("https://Proxy.example.com:8443/oauth/token", allow_custom_host=True)
        ('https://proxy.example.com:8443/oauth/token', ())
    """
    return _check(
        value,
        allow_custom_host=allow_custom_host,
        allow_insecure_http=allow_insecure_http,
        field=field,
        keep_path=True,
    )


def normalize_host(
    value: str,
    *,
    allow_custom_host: bool = False,
    allow_insecure_http: bool = False,
    field: str = "host",
) -> str:
    """Normalise an accounts host URL to `scheme://host[:port]`, or raise `ConfigError`.

    Accepted: a Databricks accounts host (`*.cloud.databricks.com`, `*.azuredatabricks.net`,
    `*.gcp.databricks.com`, `*.cloud.databricks.us`, `*.cloud.databricks.mil`,
    `*.azuredatabricks.us`, `*.azuredatabricks.cn`, `*.databricks.azure.cn`) over https,
    with or without the scheme, with any path, query or fragment (dropped). Any other host,
    with a port if needed, only with `allow_custom_host=True`; plain http only for a
    loopback host with `allow_insecure_http=True` and `allow_custom_host=True`. A default
    port (`:443` for https) is dropped; surrounding whitespace is ignored.

    Args:
        value: What the user gave: a URL or a bare host.
        allow_custom_host: Accept a host that is not a Databricks accounts host.
        allow_insecure_http: Accept plain http for a loopback host (the emulator).
        field: The configuration field named in the error.

    Raises:
        ConfigError: Listing every problem found, each naming `field`.

    Example:
        >>> normalize_host("accounts.cloud.databricks.com/login?next=%2F")
        'https://accounts.cloud.databricks.com'
        >>> normalize_host(
        ...     "http://127.0.0.1:8080/", allow_custom_host=True, allow_insecure_http=True
        ... )
        'http://127.0.0.1:8080'
        >>> try:
        ...     normalize_host("https://user:pw@accounts.cloud.databricks.com:8443")
        ... except ConfigError as exc:
        ...     print(exc)
        2 configuration problems:
          - host: contains user information (user:password@ before the host); credentials never belong in the URL: remove them
          - host: 'https://accounts.cloud.databricks.com:8443' has a port; a Databricks accounts host is reached on the default https port only
    """  # noqa: E501
    normalised, problems = check_host(
        value,
        allow_custom_host=allow_custom_host,
        allow_insecure_http=allow_insecure_http,
        field=field,
    )
    if normalised is None:
        raise ConfigError(problems)
    return normalised


def cloud_for_host(host: str) -> Cloud:
    """The cloud of an accounts host, from its name; `Cloud.CUSTOM` for any other host.

    Takes a URL or a bare host in any form `normalize_host` parses, whatever the allow
    flags (only the name matters here).

    Raises:
        ConfigError: When `host` cannot be parsed as a host URL at all.

    Example:
        >>> cloud_for_host("https://accounts.gcp.databricks.com")
        <Cloud.GCP: 'gcp'>
        >>> cloud_for_host("http://localhost:8080")
        <Cloud.CUSTOM: 'custom'>
    """
    url, messages = _parse(host, keep_path=False)
    if url is None or messages:
        raise ConfigError(tuple(ConfigProblem("host", message) for message in messages))
    return url.cloud


def check_account_id(
    value: object, *, field: str = "account_id"
) -> tuple[str | None, tuple[ConfigProblem, ...]]:
    """Check an account ID (a UUID) and normalise it to lower-case `8-4-4-4-12` form.

    Returns:
        `(normalised, ())` when the value is accepted, else `(None, (problem,))`.

    Example:
        >>> check_account_id(" 0A1B2C3D-0000-4000-8000-00000000ABCD ")
        ('0a1b2c3d-0000-4000-8000-00000000abcd', ())
    """
    if not isinstance(value, str):
        message = f"must be a string, not {type(value).__name__}"
    else:
        text = value.strip().lower()
        if _UUID.fullmatch(text):
            return text, ()
        if not text:
            message = "is empty; expected the account ID (a UUID) from the account console"
        else:
            message = (
                f"{_shown(value)} is not a UUID; expected the account ID from the account "
                "console, like 01234567-89ab-cdef-0123-456789abcdef"
            )
            if text.isdigit():
                message += " (a number is a workspace ID, not the account ID)"
    return None, (ConfigProblem(field, message),)
