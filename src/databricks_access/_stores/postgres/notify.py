"""Wake-ups between PostgreSQL lease stores: what a `NOTIFY` means, and reading them.

Every write announces itself with `pg_notify(CHANNEL, '<schema> <writer>')`; a store's
listening connection wakes its waiters for a relevant notification.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING

# psycopg is the optional extra: without it this module still imports, and building a
# store raises the `ConfigError` of `settings._MISSING`.
with contextlib.suppress(ImportError):
    import psycopg
    from psycopg import pq

if TYPE_CHECKING:
    from databricks_access._stores.postgres.recovery import AnyConnection

# How often a waiter whose listening connection is lost tries to open a new one.
_RELISTEN_SECONDS = 1.0


def _relevant(payload: str, schema: str, own: str) -> bool:
    """Whether a notification announces a change to this schema by another writer.

    A NOTIFY without a payload (an administrator's) concerns every schema.
    """
    if not payload:
        return True
    target, _, writer = payload.partition(" ")
    return target == schema and payload != own and bool(writer)


def _drain_notifies(conn: AnyConnection, schema: str, own: str) -> bool:
    """Read what the listening connection received; whether any of it is relevant.

    Raises `psycopg.OperationalError` when the connection is gone.
    """
    pgconn = conn.pgconn
    pgconn.consume_input()
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the listening connection is lost")
    relevant = False
    while (notify := pgconn.notifies()) is not None:
        if _relevant(notify.extra.decode("utf-8", "replace"), schema, own):
            relevant = True
    return relevant


def _new_own(schema: str) -> str:
    """The payload of this store object's notifications: its schema and a random tag."""
    return f"{schema} {secrets.token_hex(8)}"
