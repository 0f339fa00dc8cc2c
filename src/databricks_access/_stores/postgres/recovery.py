"""What the PostgreSQL lease stores do when a statement fails: say it, or try again.

`_error` says in words what went wrong; `_after` decides whether a failed try runs again
(a conflict the server rolled back, a connection lost before `COMMIT`) or must ask
`txid_status()` whether its `COMMIT` landed (`_Retry.ASK`).
"""

from __future__ import annotations

import contextlib
import enum
from typing import TYPE_CHECKING, Any

import attrs

from databricks_access._errors import LeaseError

# psycopg is the optional extra: without it this module still imports, and building a
# store raises the `ConfigError` of `settings._MISSING`.
with contextlib.suppress(ImportError):
    import psycopg
    import psycopg_pool

if TYPE_CHECKING:
    from psycopg.rows import TupleRow

    from databricks_access._stores.postgres.settings import _Settings

    AnyConnection = psycopg.Connection[TupleRow] | psycopg.AsyncConnection[TupleRow]


# SQLSTATEs after which the server has rolled the whole transaction back, so running it
# again is exact: serialization_failure, deadlock_detected.
_CONFLICTS = frozenset({"40001", "40P01"})
_CONFLICT_RETRIES = 5


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def _error(exc: BaseException, settings: _Settings, doing: str) -> LeaseError:
    """A `LeaseError` that says, in words, what went wrong with the database."""
    where = settings.where
    text = _first_line(exc)
    state = _sqlstate(exc) or ""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        message = (
            f"{where}: no connection became available within {settings.timeout:g} s (is the "
            f"server up and reachable, and max_size large enough?): cannot {doing} ({text})"
        )
    elif isinstance(exc, UnicodeError):
        message = f"{where} cannot store text that is not valid Unicode: cannot {doing} ({text})"
    elif state == "55P03":
        message = (
            f"{where}: a row stayed locked by another session for more than "
            f"{settings.timeout:g} s: cannot {doing} ({text})"
        )
    elif state == "42501":
        message = (
            f"{where}: the database user lacks a privilege (it must be able to create the "
            f"schema, or own its tables): cannot {doing} ({text})"
        )
    elif state == "25006":
        message = f"{where} is read-only (a standby server?): cannot {doing} ({text})"
    elif state.startswith("53"):
        message = (
            f"{where} is out of resources (disk, memory or connections): cannot {doing} ({text})"
        )
    elif state == "42P01":
        message = (
            f"{where} is missing its tables (was the schema dropped?): cannot {doing} ({text})"
        )
    elif isinstance(exc, psycopg.OperationalError):
        message = f"{where}: the connection to the server failed: cannot {doing} ({text})"
    else:
        message = f"{where} failed: cannot {doing} ({text})"
    return LeaseError(message)


@attrs.define
class _Attempt:
    """How far one try of a transaction got, to decide whether to run it again."""

    conn: AnyConnection | None = None
    value: Any = None
    xid: int | None = None
    committing: bool = False

    @property
    def lost(self) -> bool:
        """Whether the connection broke (rather than the statement failing on the server)."""
        return self.conn is not None and (self.conn.closed or self.conn.broken)


class _Retry(enum.Enum):
    """What to do after a failed try."""

    AGAIN = "again"
    ASK = "ask"  # the COMMIT's fate is unknown: ask the server with txid_status()


def _after(exc: psycopg.Error, attempt: _Attempt, tries: dict[str, int], closed: bool) -> _Retry:
    """Whether a failed try may run again; raises `exc` (to be mapped) when it may not."""
    if _sqlstate(exc) in _CONFLICTS and tries["conflicts"] < _CONFLICT_RETRIES:
        tries["conflicts"] += 1
        return _Retry.AGAIN
    if not attempt.lost or closed or isinstance(exc, psycopg_pool.PoolTimeout):
        raise exc
    if attempt.committing and attempt.xid is not None:
        return _Retry.ASK
    # Nothing was committed (or nothing was to be): run it again, once.
    if tries["reconnects"]:
        tries["reconnects"] -= 1
        return _Retry.AGAIN
    raise exc


def _unknown(exc: psycopg.Error, settings: _Settings, doing: str) -> LeaseError:
    return LeaseError(
        f"{settings.where}: the connection was lost while committing, and whether the change "
        f"was stored is unknown: cannot {doing} ({_first_line(exc)})"
    )
