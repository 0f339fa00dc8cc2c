"""`PostgresLeaseStore` and `AsyncPostgresLeaseStore`: one store for several replicas.

Modules: `schema` (DDL, version, migrations, opening), `sql` (statements and the row
mapping), `plans` (each method's transaction, for both stores), `settings` (arguments),
`recovery` (errors in words, retries), `notify` (wake-ups), `store` and `async_store`.

Needs the optional extra `pip install 'databricks-access[postgres]'` (psycopg 3 and
psycopg-pool; without it this package still imports, and building a store raises a
`ConfigError` that names the extra) and PostgreSQL 10 or later (tested on 15), with a
UTF8 database.

Layout (schema version 2, in a PostgreSQL schema of its own, `databricks_access` by
default; the version is the `schema_version` row of its `meta` table):

- `leases`: one row per lease, with `due_at` maintained on every write (the value of
  `Lease.due_at()`), indexed on `(state, due_at, rid)` for the rows that have one, and on
  `(principal_id, group_id)` and `group_id` for lookups.
- `claims`: per-pair claims, keyed by `(principal_id, group_id)`.
- `events`: the audit outbox, `seq` in write order; a partial index holds the pending.
- `requests`: access requests, indexed on `(state, created_at)` and the pair.

Times are integer microseconds since the epoch, UTC, as in the SQLite store. Text is
stored as given, except that PostgreSQL text cannot hold NUL: NUL is written as ESC `0`
(and ESC as ESC ESC), and read back exactly.

The store creates its schema, and migrates it, under `pg_advisory_xact_lock`, so replicas
that start at once do it once; a schema written by a newer version is refused.

Transactions: every protocol method is one short transaction on a pooled connection (a
read is one statement), and nothing is ever held open across an HTTP request: the rows a
tracker works on are not locked while it talks to Databricks. What serialises replicas
is the per-pair claim, a committed row with an owner and an expiry computed from the
tracker's clock (the `now` and `until` it passes), never the database's `now()`:

- `claim_pairs` inserts the free pairs (`ON CONFLICT DO NOTHING`) and takes over the
  pairs whose claim is the caller's own or expired by `now`, selected
  `FOR UPDATE SKIP LOCKED`: it never waits for a pair another replica is claiming or
  releasing at that moment, it skips it. A replica that dies holding claims leaves them
  to expire; another replica's sweep then finishes its work.
- `due_leases` scans each state's index `FOR NO KEY UPDATE SKIP LOCKED` below its
  `LIMIT` (the locks end with the statement), so replicas asking at the same moment are
  handed different leases, a lease another replica is updating right now is left to it,
  and the limit is still filled from the leases nobody holds.
- `update_leases` is one `UPDATE ... FROM unnest(...)` statement for the batch (each row
  its own compare-and-set), and one `INSERT` for the events of the rows it changed.

Wake-ups: every transaction that changes something runs
`pg_notify('databricks_access_changes', '<schema> <writer>')` before it commits, and
`wait_for_change` waits on a dedicated connection that `LISTEN`s to that channel, so a new
grant in any replica wakes every sleeping one. A `NOTIFY databricks_access_changes`
without a payload (say, after an administrator edits the tables) wakes them too.

Reconnects and retries: connections come from a `psycopg_pool` pool. When a statement
fails because the connection is gone (a server restart, a failover, a network cut), the
pool's idle connections are checked, and the transaction is run once more on a fresh
connection if that is known to be safe:

- the failure came before `COMMIT` was sent: PostgreSQL rolls the transaction back, so
  running it again is exact (reads always fall here);
- the failure came during `COMMIT`: the transaction's id, read before committing, is
  looked up with `txid_status()` on a new connection: `committed` means done (the result
  is returned), `aborted` means it is run again; if the server cannot say, the method
  raises `LeaseError` saying the outcome is unknown. The tracker's intent-first design
  makes that recoverable: a lease left `GRANTING` or `REVOKING` is finished by a sweep
  once its claim expires.

Deadlocks and serialisation failures (SQLSTATE 40P01, 40001) are rolled back by the
server and retried a few times. Every other failure is a `LeaseError` that says what went
wrong, never a raw driver exception.
"""

from __future__ import annotations

from databricks_access._stores.postgres.async_store import AsyncPostgresLeaseStore
from databricks_access._stores.postgres.schema import SCHEMA_VERSION
from databricks_access._stores.postgres.sql import CHANNEL
from databricks_access._stores.postgres.store import PostgresLeaseStore

__all__ = [
    "CHANNEL",
    "SCHEMA_VERSION",
    "AsyncPostgresLeaseStore",
    "PostgresLeaseStore",
]
