"""`SqliteLeaseStore`: the embedded, durable `LeaseStore` in one SQLite file.

Modules: `schema` (the DDL, its version and the migrations), `sql` (the statements and
the row mapping they bind), `file` (the file: connections, transactions, errors in
words, opening and migrating the schema) and `store` (the `LeaseStore` methods).

Layout (schema version 2, kept in `PRAGMA user_version`; `PRAGMA application_id` marks
the file as a databricks_access lease store):

- `leases`: one row per lease, with `due_at` maintained on every write (the value of
  `Lease.due_at()`) and `version` counted up by every update (the compare-and-set
  checks it), indexed on `(state, due_at)` so due queries read only what is due,
  and on `(principal_id, group_id, state)` and `(group_id, state)` for lookups.
- `claims`: per-pair claims, keyed by `(principal_id, group_id)`.
- `events`: the audit outbox, `seq` in write order; a partial index holds the pending.
- `requests`: access requests, indexed on `(state, created_at)` and the pair.

Times are integer microseconds since the epoch, UTC: sortable, exact, and read back as
aware UTC datetimes.

Concurrency: the file is in WAL mode, so readers never block the writer. Each thread
gets its own connection; every write is one `BEGIN IMMEDIATE` transaction, so writers in
any thread or process queue for the write lock up front (waiting up to `timeout`) instead
of deadlocking on a lock upgrade. A store's own threads queue in the process first (a
lock handed on at each commit), so SQLite's busy handler, which polls with growing
sleeps, only ever waits for other processes. `synchronous=FULL` by default: a lease's
intent, and its audit event, are on disk before the tracker sends the request they
announce, even across a power cut. Claims commit without waiting for the disk
(`synchronous=NORMAL` for that transaction): every writer of the file is on its machine,
so a power cut that loses a claim ends its holder too, and the next synced commit makes
it durable anyway.

Batches: `update_leases` reads the stored state and version of its leases in one
statement (per 900 ids), decides every compare-and-set in order under the write lock,
then writes the changed rows with one prepared statement run per row (`executemany`, by
row id) and their events with another; `claim_pairs` and `renew_pairs` likewise read the
claims back a chunk of pairs at a time.
"""

from __future__ import annotations

from databricks_access._stores.sqlite.schema import SCHEMA_VERSION
from databricks_access._stores.sqlite.store import SqliteLeaseStore

__all__ = ["SCHEMA_VERSION", "SqliteLeaseStore"]
