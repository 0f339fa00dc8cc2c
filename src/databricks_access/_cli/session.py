"""The configuration, and the objects every command shares (`_Session`)."""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
from typing_extensions import Self

import databricks_access as da
from databricks_access._cli.errors import _PROG, _FailureError, _problems, _UsageError
from databricks_access._cli.render import _shown

__all__ = ["load_config"]


_CONFIG_VAR = "DATABRICKS_ACCESS_CONFIG"
_ENV_PREFIX = "DATABRICKS_ACCESS_"
_REQUIRED_FIELDS = ("NAME", "ACCOUNTS_URL", "ACCOUNT_ID")


def load_config(path: str | None, environ: Mapping[str, str]) -> da.IntegrationConfig:
    """The integration's configuration: `--config`, `$DATABRICKS_ACCESS_CONFIG`, or the env.

    A `.json` file is JSON; a `pyproject.toml` is read from its `[tool.databricks_access]`
    table; any other file is TOML unless it starts with `{`. Without a file, the
    `DATABRICKS_ACCESS_*` variables are read when one of the required ones is set.

    Raises:
        _UsageError: There is no configuration, it cannot be read, or it is invalid (the
            message names the source and every problem; exit code 2).
    """
    source = path or environ.get(_CONFIG_VAR, "").strip() or None
    if source is None:
        if any(environ.get(f"{_ENV_PREFIX}{field}") for field in _REQUIRED_FIELDS):
            return _checked("the environment", lambda: da.IntegrationConfig.from_env(environ))
        raise _UsageError(
            "no configuration: pass --config PATH (a TOML or JSON file, see "
            f"'{_PROG} --help'), or set {_CONFIG_VAR} or the {_ENV_PREFIX}* variables"
        )
    file = Path(source)
    try:
        head = file.read_text(encoding="utf-8-sig", errors="replace")[:4096].lstrip()
    except OSError as exc:
        raise _UsageError(
            f"cannot read the configuration {source}: {exc.strerror or type(exc).__name__}"
        ) from None
    if file.suffix.lower() == ".json" or head.startswith("{"):
        return _checked(source, lambda: da.IntegrationConfig.from_json(file))
    table = "tool.databricks_access" if file.name == "pyproject.toml" else None
    return _checked(source, lambda: da.IntegrationConfig.from_toml(file, table=table))


def _checked(source: str, load: Callable[[], da.IntegrationConfig]) -> da.IntegrationConfig:
    try:
        return load()
    except da.ConfigError as exc:
        raise _UsageError(
            f"the configuration in {source} is invalid: {_problems(exc, {})}"
        ) from exc


class _Session:
    """The configuration, client, store, tracker and integration of one command, lazily.

    Everything opened is closed when the session ends, in reverse order.
    """

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
        self.args = args
        self.environ = environ
        self.events: da.EventSink | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    @functools.cached_property
    def config(self) -> da.IntegrationConfig:
        return load_config(self.args.config, self.environ)

    @functools.cached_property
    def client(self) -> da.AccountClient:
        config = self.config
        client = da.AccountClient(
            config.account_config(), secrets=config.secret_store_instance(environ=self.environ)
        )
        self._stack.callback(client.close)
        return client

    @functools.cached_property
    def store(self) -> da.LeaseStore:
        store = self.config.lease_store_ref.open()
        self._stack.callback(store.close)
        return store

    @functools.cached_property
    def reader(self) -> da.LeaseStore | None:
        """The lease store for commands that only read; None while its file does not exist.

        A SQLite file is opened read-only and never created: listing leases or checking
        the set-up writes nothing.
        """
        ref = self.config.lease_store_ref
        if ref.kind == "sqlite" and ref.path is not None and not Path(ref.path).exists():
            return None
        store = ref.open(read_only=True)
        self._stack.callback(store.close)
        return store

    @functools.cached_property
    def tracker(self) -> da.LeaseTracker:
        # The integration's policy and audit sink, as every connector on this config has.
        return self.config.lease_tracker(
            da.MembershipManager(self.client), store=self.store, events=self._sink()
        )

    def _sink(self) -> da.EventSink | None:
        """The configured audit sink, and this command's own (`run` prints events)."""
        sinks = [
            sink for sink in (self.config.audit_sink_instance(), self.events) if sink is not None
        ]
        if len(sinks) < 2:
            return sinks[0] if sinks else None

        def emit(event: da.AuditEvent) -> None:
            for sink in sinks:
                sink.emit(event)

        return da.CallableSink(emit)

    @functools.cached_property
    def integration(self) -> da.Integration:
        return da.Integration(self.config, client=self.client)

    @functools.cached_property
    def requests(self) -> da.AccessRequests:
        # With `request --unlocks`, what the group unlocks goes on the request.
        catalog = self.catalog_reader() if getattr(self.args, "unlocks", False) else None
        return da.AccessRequests(self.tracker, self.integration, catalog=catalog)

    def catalog_reader(
        self, *, include_tables: bool = False, concurrency: int = 8
    ) -> da.CatalogReader:
        """A Unity Catalog reader on this session's client and configured workspace hosts."""
        return da.CatalogReader(
            self.client,
            workspace_hosts=self.config.workspace_hosts,
            include_tables=include_tables,
            concurrency=concurrency,
        )

    def default_requester(self) -> str:
        return self.environ.get("USER", "").strip() or self.config.name

    def group(self, text: str) -> da.Group:
        """The group with this display name, else with this id."""
        client = self.client
        found = client.groups.find(text)
        if found is not None:
            return found
        try:
            return client.groups.get(text)
        except (da.NotFoundError, da.BadRequestError, da.ConfigError):
            raise _FailureError(f"no group is named {_shown(text)} or has that id") from None

    def named(self, lease: da.Lease, store: da.LeaseStore | None = None) -> da.Lease:
        """The lease with the names of its request filled in, when it has none itself."""
        if (lease.principal_name and lease.group_name) or lease.request_id is None:
            return lease
        req = (store or self.store).get_request(lease.request_id)
        if req is None:
            return lease
        return attrs.evolve(
            lease,
            principal_name=lease.principal_name or req.principal_name,
            group_name=lease.group_name or req.group_name,
        )

    def lease(self, lease_id: str) -> da.Lease:
        lease = self.store.get_lease(lease_id)
        if lease is None:
            raise _FailureError(f"no lease {_shown(lease_id)} in {self.config.lease_store}")
        return lease
