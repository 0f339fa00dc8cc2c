"""What both PostgreSQL lease stores are made of: where to connect, with what, how long.

`_Settings.build` checks the arguments (and that the `postgres` extra is installed)
before anything connects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from databricks_access._durations import seconds
from databricks_access._errors import ConfigError
from databricks_access._stores.postgres.recovery import _first_line

# psycopg is the optional extra: this module imports without it (so does
# `from databricks_access import *`), and building a store says what to install.
try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@attrs.frozen
class _Settings:
    """What both stores are made of: where to connect, with what, and how long to wait."""

    conninfo: str
    kwargs: dict[str, Any]
    url: str
    schema: str
    min_size: int
    max_size: int
    timeout: float

    @classmethod
    def build(
        cls,
        conninfo: str,
        *,
        schema: str,
        min_size: int,
        max_size: int,
        timeout: float,
        application_name: str,
    ) -> _Settings:
        if _MISSING is not None:
            raise ConfigError(
                "the PostgreSQL lease store needs psycopg 3 and psycopg-pool, which are not "
                f"installed ({_MISSING}): pip install 'databricks-access[postgres]'",
                field="conninfo",
            )
        if not isinstance(conninfo, str):
            raise ConfigError("must be a PostgreSQL URL or conninfo string", field="conninfo")
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise ConfigError(
                f"is not a valid PostgreSQL URL or conninfo string: {_first_line(exc)}",
                field="conninfo",
            ) from None
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(
                "must be a schema name of letters, digits and underscores (not starting "
                f"with a digit, at most 63 characters), not {schema!r}",
                field="schema",
            )
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ConfigError(f"must be an integer >= 1, not {min_size!r}", field="min_size")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < min_size:
            raise ConfigError(
                f"must be an integer >= min_size ({min_size}), not {max_size!r}", field="max_size"
            )
        timeout = seconds(timeout, "timeout", positive=True)
        kwargs: dict[str, Any] = {"autocommit": True, "client_encoding": "UTF8"}
        if "application_name" not in params:
            kwargs["application_name"] = application_name
        if "connect_timeout" not in params:
            kwargs["connect_timeout"] = max(2, math.ceil(min(float(timeout), 30.0)))
        return cls(
            conninfo=conninfo,
            kwargs=kwargs,
            url=_describe(params),
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            timeout=float(timeout),
        )

    @property
    def where(self) -> str:
        """The store, in words, for messages (never with a password)."""
        return f"the PostgreSQL lease store at {self.url} (schema {self.schema!r})"

    @property
    def lock_timeout(self) -> str:
        """`lock_timeout` for the pooled connections: a row lock waits at most `timeout`."""
        return f"{max(1, round(self.timeout * 1000))}ms"


def _describe(params: Mapping[str, Any]) -> str:
    """A URL naming the server and database, without the password."""
    user = params.get("user")
    host = params.get("host") or params.get("hostaddr") or ""
    port = params.get("port")
    netloc = (f"{user}@" if user else "") + str(host) + (f":{port}" if port else "")
    return f"postgresql://{netloc}/{params.get('dbname') or ''}"
