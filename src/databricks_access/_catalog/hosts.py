"""Where each workspace is: its host, derived from the account's workspace list or configured.

The official SDK derives a workspace host as `https://{deployment_name}{dns_zone}`, with
the DNS zone of the accounts host's cloud. That holds where workspaces have a deployment
name (AWS, GCP, the government clouds); elsewhere (an Azure workspace's `adb-...` host,
a proxy, the emulator) the host is configured: a mapping of workspace id to host, which
always wins over a derived one.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from databricks_access._account.config import AccountConfig
from databricks_access._account.models import Workspace
from databricks_access._errors import ConfigError, ConfigProblem
from databricks_access._hosts import Cloud, check_endpoint, check_host

__all__ = ["WorkspaceHosts", "check_workspace_host", "check_workspace_hosts", "derived_host"]

HostMap = Mapping[int, str] | Mapping[str, str] | Mapping[int | str, str]
"""Workspace id (a number, or its text) to host."""


_DNS_ZONES = {
    Cloud.AWS: ".cloud.databricks.com",
    Cloud.GCP: ".gcp.databricks.com",
    Cloud.AZURE: ".azuredatabricks.net",
    Cloud.AWS_GOV: ".cloud.databricks.us",
    Cloud.AWS_DOD: ".cloud.databricks.mil",
    Cloud.AZURE_GOV: ".azuredatabricks.us",
    Cloud.AZURE_CHINA: ".azuredatabricks.cn",
}


def check_workspace_host(
    value: object,
    config: AccountConfig | None = None,
    *,
    field: str = "host",
    allow_custom_host: bool = False,
    allow_insecure_http: bool = False,
) -> tuple[str | None, tuple[ConfigProblem, ...]]:
    """A workspace host under the account's host rules, keeping a path prefix if any.

    The origin passes `check_host` with the account's allow flags; a path after it (a
    proxy's, or the served emulator's `/ws/<id>`) is kept, without a trailing slash.

    Example:
        >>> cfg = AccountConfig(host="https://accounts.cloud.databricks.com",
        ...                     account_id="0a1b2c3d-0000-4000-8000-00000000abcd")
        >>> check_workspace_host("dbc-1.cloud.databricks.com/", cfg)
        ('https://dbc-1.cloud.databricks.com', ())
    """
    if config is not None:
        allow_custom_host = config.allow_custom_host
        allow_insecure_http = config.allow_insecure_http
    flags = {"allow_custom_host": allow_custom_host, "allow_insecure_http": allow_insecure_http}
    origin, problems = check_host(value, field=field, **flags)
    if origin is None:
        return None, problems
    endpoint, _ = check_endpoint(value, field=field, **flags)
    path = urlsplit(endpoint).path.rstrip("/") if endpoint is not None else ""
    return origin + path, ()


def check_workspace_hosts(
    value: object,
    *,
    allow_custom_host: bool = False,
    allow_insecure_http: bool = False,
    field: str = "workspace_hosts",
) -> tuple[dict[str, str], list[ConfigProblem]]:
    """A table of workspace id (digits) to host, each host checked; problems name the key.

    Example:
        >>> check_workspace_hosts({1234: "adb-1234.5.azuredatabricks.net"})
        ({'1234': 'https://adb-1234.5.azuredatabricks.net'}, [])
    """
    if not isinstance(value, Mapping):
        return {}, [ConfigProblem(field, "must be a table of workspace id = host")]
    hosts: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for key, host in value.items():
        text = str(key).strip()
        name = f"{field}.{text[:40]}"
        if isinstance(key, bool) or not text.isdigit() or len(text) > 20:
            problems.append(ConfigProblem(name, "the key must be a numeric workspace id"))
            continue
        checked, found = check_workspace_host(
            host,
            field=name,
            allow_custom_host=allow_custom_host,
            allow_insecure_http=allow_insecure_http,
        )
        problems.extend(found)
        if checked is not None:
            hosts[str(int(text))] = checked
    return hosts, problems


def derived_host(workspace: Workspace, cloud: Cloud) -> str | None:
    """`https://{deployment_name}{dns zone}`, or None when it cannot be derived.

    Example:
        >>> from databricks_access import Workspace
        >>> derived_host(Workspace(workspace_id=1, deployment_name="dbc-1a2b"), Cloud.AWS)
        'https://dbc-1a2b.cloud.databricks.com'
        >>> derived_host(Workspace(workspace_id=1), Cloud.AWS) is None
        True
    """
    zone = _DNS_ZONES.get(cloud)
    name = (workspace.deployment_name or "").strip().lower()
    if zone is None or not name:
        return None
    host, problems = check_host(f"https://{name}{zone}")
    return None if problems else host


class WorkspaceHosts:
    """Workspace id to host: configured hosts first, then hosts derived from the list.

    Args:
        config: The account; its cloud gives the DNS zone and its `allow_custom_host` /
            `allow_insecure_http` flags apply to configured hosts (the emulator's).
        configured: Workspace id (an int, or its digits) to host URL.

    Raises:
        ConfigError: Naming each configured host that is not acceptable.
    """

    def __init__(self, config: AccountConfig, configured: HostMap | None = None) -> None:
        self._cloud = config.cloud
        checked, problems = check_workspace_hosts(
            dict(configured or {}),
            allow_custom_host=config.allow_custom_host,
            allow_insecure_http=config.allow_insecure_http,
        )
        if problems:
            raise ConfigError(problems)
        hosts = {int(key): host for key, host in checked.items()}
        self._configured = hosts

    @property
    def configured(self) -> Mapping[int, str]:
        """The configured hosts, normalised."""
        return dict(self._configured)

    def host_for(self, workspace: Workspace) -> str | None:
        """The workspace's host: configured, else derived; None when neither is known."""
        return self._configured.get(workspace.workspace_id) or derived_host(workspace, self._cloud)

    def __repr__(self) -> str:
        return f"WorkspaceHosts(cloud={self._cloud.value!r}, configured={len(self._configured)})"
