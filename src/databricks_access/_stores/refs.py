"""Lease store references: the `lease_store` URL of a configuration, parsed and opened.

`LeaseStoreRef.open` imports the store implementation it names (SQLite or PostgreSQL)
only then, so parsing a configuration loads neither.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import attrs

from databricks_access._errors import ConfigError
from databricks_access._util.describe import kind_of, shown
from databricks_access._util.redact import url_secret

if TYPE_CHECKING:
    from databricks_access._leases.store import LeaseStore

__all__ = ["LeaseStoreKind", "LeaseStoreRef", "check_lease_store"]

_MAX_REF = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

LeaseStoreKind = Literal["sqlite", "postgresql"]


@attrs.frozen
class LeaseStoreRef:
    """A parsed `lease_store` URL.

    - `sqlite:///relative/path.db` (three slashes, then a path relative to the working
      directory) or `sqlite:////absolute/path.db` (four: the path starts with `/`).
    - `postgresql://[user@]host[:port]/database[?options]` (`postgres://` is accepted and
      written `postgresql://`). A password in the URL is refused: the configuration holds
      no secret; use `PGPASSWORD`, a `.pgpass` file or the service file.

    Attributes:
        kind: `sqlite` or `postgresql`.
        url: The normalised URL.
        path: The SQLite file path; None for PostgreSQL.

    Example:
        >>> LeaseStoreRef.parse("sqlite:////var/lib/jit/leases.db").path
        '/var/lib/jit/leases.db'
        >>> LeaseStoreRef.parse("postgres://jit@db.internal:5432/jit").url
        'postgresql://jit@db.internal:5432/jit'
    """

    kind: LeaseStoreKind
    url: str
    path: str | None = None

    @classmethod
    def parse(cls, text: object, *, field: str = "lease_store") -> LeaseStoreRef:
        """Parse and validate a lease store URL.

        Raises:
            ConfigError: The URL is malformed or of another kind; the problem names `field`.
        """
        ref, problem = check_lease_store(text)
        if ref is None:
            raise ConfigError(problem or "is not a lease store URL", field)
        return ref

    def __str__(self) -> str:
        return self.url

    def open(self, *, read_only: bool = False) -> LeaseStore:
        """The lease store this URL names: `SqliteLeaseStore` or `PostgresLeaseStore`.

        A PostgreSQL password comes from libpq's usual places (`PGPASSWORD`, `~/.pgpass`),
        never from the URL in the configuration.

        Args:
            read_only: Open a SQLite file read-only: it must exist, and it is neither
                created nor migrated (for reports; every write raises `LeaseError`).
                A PostgreSQL store is opened as usual.

        Raises:
            ConfigError: For `postgresql:` without the `databricks-access[postgres]` extra.
        """
        if self.kind == "sqlite" and self.path is not None:
            from databricks_access._stores.sqlite import SqliteLeaseStore  # noqa: PLC0415

            return SqliteLeaseStore(self.path, read_only=read_only)
        from databricks_access._stores.postgres import PostgresLeaseStore  # noqa: PLC0415

        return PostgresLeaseStore(self.url)


_LEASE_FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://host/db"


def check_lease_store(text: object) -> tuple[LeaseStoreRef | None, str | None]:
    """`text` parsed as a lease store URL, or None and the problem (no field)."""
    if not isinstance(text, str):
        return None, f"must be a string, not {kind_of(text)}"
    stripped = text.strip()
    if not stripped:
        return None, f"is empty; use {_LEASE_FORMS}"
    if len(stripped) > _MAX_REF:
        return None, f"is longer than {_MAX_REF} characters"
    if _CONTROL.search(stripped):
        return None, "contains a control character"
    secret = url_secret(stripped)
    if secret is not None:
        # Never echo the URL: it holds the secret.
        return None, (
            f"{secret}; the configuration holds no secret: use PGPASSWORD, a .pgpass file "
            "or a service file"
        )
    scheme, sep, rest = stripped.partition("://")
    scheme = scheme.lower()
    if not sep:
        return None, f"is not a URL; use {_LEASE_FORMS} (for a file: sqlite:///{stripped})"[:300]
    if scheme == "sqlite":
        if not rest.startswith("/"):
            return None, (
                "a sqlite URL has no host: write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        path = rest[1:]
        if not path.strip("/"):
            return None, "names no file; write sqlite:///leases.db"
        if "?" in path or "#" in path:
            return None, "a sqlite lease store URL takes no query or fragment"
        if path == ":memory:":
            return None, "an in-memory SQLite store loses leases; use MemoryLeaseStore in tests"
        return LeaseStoreRef("sqlite", f"sqlite:///{path}", path), None
    if scheme in {"postgresql", "postgres"}:
        if any(char.isspace() for char in rest):
            return None, "contains whitespace; percent-encode it"
        try:
            parts = urlsplit(f"postgresql://{rest}")
            port = parts.port
        except ValueError:
            return None, "is not a valid PostgreSQL URL (postgresql://[user@]host[:port]/db)"
        if parts.fragment:
            return None, "a PostgreSQL URL takes no fragment"
        if port == 0:
            return None, "has port 0"
        return LeaseStoreRef("postgresql", f"postgresql://{rest}"), None
    return None, f"uses the scheme {shown(scheme)}; use {_LEASE_FORMS}"
