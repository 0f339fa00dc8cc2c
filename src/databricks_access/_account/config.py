"""Account configuration: where the Databricks account is and how to talk to it.

The host rules `AccountConfig` applies to `host` and `token_endpoint` live in `_hosts`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, TypedDict

import attrs

from databricks_access._account.throttle import RateLimits
from databricks_access._durations import Duration, lenient
from databricks_access._durations import problem as duration_problem
from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._hosts import (
    Cloud,
    check_account_id,
    check_endpoint,
    check_host,
    cloud_for_host,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from typing_extensions import Unpack

__all__ = ["AccountConfig"]


class _Options(TypedDict, total=False):
    """The `AccountConfig` fields `from_env` takes as keyword arguments."""

    scim_version: Literal["2.0", "2.1"]
    timeout: Duration
    connect_timeout: Duration
    deadline: Duration
    max_attempts: int
    token_endpoint: str | None
    allow_custom_host: bool
    allow_insecure_http: bool
    insecure_skip_tls_verify: bool
    rate_limits: RateLimits | None


_PUBLISHED = RateLimits.published()
_HOST_VARS = ("DATABRICKS_HOST", "DATABRICKS_ACCOUNTS_URL")
_ACCOUNT_ID_VAR = "DATABRICKS_ACCOUNT_ID"


@attrs.frozen(kw_only=True)
class AccountConfig:
    """Where the Databricks account is and how to talk to it. Validated when built.

    Every problem is collected and reported at once in one `ConfigError`, each naming its
    field. The stored `host` and `account_id` are the normalised forms (see
    `normalize_host`); a `token_endpoint` passes the same host rules and keeps its path.

    Attributes:
        host: The accounts host, normalised to `https://host` (see `normalize_host`).
        account_id: The account ID, a UUID in lower-case `8-4-4-4-12` form.
        scim_version: `"2.0"`, or `"2.1"` for the newer, more scalable SCIM API.
        timeout: Seconds allowed for one request (a timedelta or text like `"45s"` too).
        connect_timeout: Seconds allowed to connect.
        deadline: Seconds allowed for one operation across all its retries.
        max_attempts: Attempts per request, the first one included.
        token_endpoint: An explicit OAuth token URL; None for `default_token_url`.
        allow_custom_host: Accept a host that is not a Databricks accounts host.
        allow_insecure_http: Accept plain http for a loopback host (the emulator).
        insecure_skip_tls_verify: Do not verify TLS certificates (never read from the
            environment; for a test proxy only).
        rate_limits: The client-side rate limits (`RateLimits`), shared by every client
            of this account in the process: the published figures by default; None for
            no throttle.

    Example:
        >>> cfg = AccountConfig(
        ...     host="https://accounts.cloud.databricks.com/login",
        ...     account_id="0A1B2C3D-0000-4000-8000-00000000ABCD",
        ... )
        >>> cfg.host, cfg.account_id, cfg.cloud
        ('https://accounts.cloud.databricks.com', '0a1b2c3d-0000-4000-8000-00000000abcd', <Cloud.AWS: 'aws'>)
        >>> cfg.default_token_url
        'https://accounts.cloud.databricks.com/oidc/accounts/0a1b2c3d-0000-4000-8000-00000000abcd/v1/token'
        >>> try:
        ...     AccountConfig(host="http://example.com", account_id="nope", timeout=0)
        ... except ConfigError as exc:
        ...     print(exc.fields)
        ('host', 'host', 'account_id', 'timeout')
    """  # noqa: E501

    host: str
    account_id: str
    scim_version: Literal["2.0", "2.1"] = "2.0"
    timeout: float = attrs.field(default=30.0, converter=lenient)
    connect_timeout: float = attrs.field(default=10.0, converter=lenient)
    deadline: float = attrs.field(default=120.0, converter=lenient)
    max_attempts: int = 6
    token_endpoint: str | None = None
    allow_custom_host: bool = False
    allow_insecure_http: bool = False
    insecure_skip_tls_verify: bool = False
    rate_limits: RateLimits | None = _PUBLISHED

    def __attrs_post_init__(self) -> None:
        problems: list[ConfigProblem] = []
        allow_custom = self.allow_custom_host is True
        allow_http = self.allow_insecure_http is True

        host, found = check_host(
            self.host, allow_custom_host=allow_custom, allow_insecure_http=allow_http
        )
        problems.extend(found)
        account_id, found = check_account_id(self.account_id)
        problems.extend(found)
        scim_version: object = self.scim_version
        if scim_version not in ("2.0", "2.1"):
            problems.append(
                ConfigProblem("scim_version", f"must be '2.0' or '2.1', not {scim_version!r}")
            )
        problems.extend(
            ConfigProblem(name, message)
            for name, value in (
                ("timeout", self.timeout),
                ("connect_timeout", self.connect_timeout),
                ("deadline", self.deadline),
            )
            if (message := duration_problem(value)) is not None
        )
        max_attempts: object = self.max_attempts
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            problems.append(
                ConfigProblem("max_attempts", f"must be an integer, not {max_attempts!r}")
            )
        elif max_attempts < 1:
            problems.append(
                ConfigProblem("max_attempts", f"must be at least 1, not {max_attempts}")
            )

        token_endpoint: str | None = None
        if self.token_endpoint is not None:
            token_endpoint, found = check_endpoint(
                self.token_endpoint, allow_custom_host=allow_custom, allow_insecure_http=allow_http
            )
            problems.extend(found)

        flags: dict[str, object] = {
            "allow_custom_host": self.allow_custom_host,
            "allow_insecure_http": self.allow_insecure_http,
            "insecure_skip_tls_verify": self.insecure_skip_tls_verify,
        }
        problems.extend(
            ConfigProblem(name, f"must be True or False, not {flag!r}")
            for name, flag in flags.items()
            if not isinstance(flag, bool)
        )
        limits: object = self.rate_limits
        if limits is not None and not isinstance(limits, RateLimits):
            problems.append(
                ConfigProblem(
                    "rate_limits",
                    (
                        "must be a databricks_access.RateLimits or None, "
                        f"not {type(limits).__name__}"
                    ),
                )
            )
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "account_id", account_id)
        object.__setattr__(self, "token_endpoint", token_endpoint)

    @property
    def cloud(self) -> Cloud:
        """The cloud of `host`; `Cloud.CUSTOM` for a proxy or the emulator."""
        return cloud_for_host(self.host)

    @property
    def scim_base(self) -> str:
        """The path of the account SCIM API: `/api/{scim_version}/accounts/{id}/scim/v2`."""
        return f"/api/{self.scim_version}/accounts/{self.account_id}/scim/v2"

    @property
    def account_api_base(self) -> str:
        """The path of the account REST API: `/api/2.0/accounts/{account_id}`."""
        return f"/api/2.0/accounts/{self.account_id}"

    @property
    def oidc_base(self) -> str:
        """The path of the account's OIDC endpoints: `/oidc/accounts/{account_id}`."""
        return f"/oidc/accounts/{self.account_id}"

    @property
    def default_token_url(self) -> str:
        """The fixed OAuth token URL: `{host}/oidc/accounts/{account_id}/v1/token`."""
        return f"{self.host}{self.oidc_base}/v1/token"

    @property
    def token_url(self) -> str:
        """The OAuth token URL to use: `token_endpoint` when set, else `default_token_url`."""
        return self.token_endpoint or self.default_token_url

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Unpack[_Options]
    ) -> AccountConfig:
        """Build a configuration from `DATABRICKS_HOST` and `DATABRICKS_ACCOUNT_ID`.

        The host comes from `DATABRICKS_HOST`, or `DATABRICKS_ACCOUNTS_URL` when that one
        is unset or empty. Other fields are keyword arguments, never read from the
        environment (least of all `insecure_skip_tls_verify`). Problems with a variable
        name the variable; missing variables are reported together.

        Args:
            environ: The environment to read; `os.environ` when None.
            **options: Any other `AccountConfig` field.

        Raises:
            ConfigError: Listing every missing or invalid variable and option.

        Example:
            >>> env = {
            ...     "DATABRICKS_HOST": "https://accounts.azuredatabricks.net/",
            ...     "DATABRICKS_ACCOUNT_ID": "0a1b2c3d-0000-4000-8000-00000000abcd",
            ... }
            >>> AccountConfig.from_env(env, timeout=5).host
            'https://accounts.azuredatabricks.net'
        """
        if environ is None:
            environ = os.environ
        host_var, host = next(
            ((name, environ[name]) for name in _HOST_VARS if environ.get(name, "").strip()),
            (_HOST_VARS[0], None),
        )
        account_id = environ.get(_ACCOUNT_ID_VAR, "")
        try:
            return cls(host=host or "", account_id=account_id, **options)
        except ConfigError as exc:
            problems: list[ConfigProblem] = []
            for problem in exc.problems:
                if problem.field == "host":
                    if host is None:
                        message = (
                            f"is not set (nor {_HOST_VARS[1]}); set it to the accounts URL, "
                            "e.g. https://accounts.cloud.databricks.com"
                        )
                    else:
                        message = problem.message
                    problems.append(ConfigProblem(host_var, message))
                elif problem.field == "account_id":
                    message = (
                        "is not set; set it to the account ID (a UUID) from the account console"
                        if not account_id.strip()
                        else problem.message
                    )
                    problems.append(ConfigProblem(_ACCOUNT_ID_VAR, message))
                else:
                    problems.append(problem)
            raise ConfigError(problems) from None
