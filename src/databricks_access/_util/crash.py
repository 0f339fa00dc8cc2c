"""Named crash points, for exact crash-recovery tests.

`crash_point(name)` does nothing unless the environment variable
`DATABRICKS_ACCESS_CRASH_AT` names it: then the process ends on the spot with
`os._exit` — no cleanup, no `finally`, no flushed buffers, as a SIGKILL would leave it.
`name:N` crashes at the N-th time the point is reached in this process (default 1).

The named points, in the order a lease passes them:

- `after_claim`: a pair's claim is stored, nothing else done.
- `after_intent_write`: the `GRANTING` lease is stored, the add not yet sent.
- `after_patch`: the membership change was sent and answered, its result not stored.
- `after_activate`: the lease is `ACTIVE`, the claim not yet released.
- `after_revoking_write`: due leases are `REVOKING`, the removal not yet sent.
- `after_revoke_patch`: the removal was answered, the leases not yet `REVOKED`.
- `after_extend`: an extension is stored, its events not yet delivered.
- `after_approve`: an access request is `APPROVED`, its lease not yet granted.
"""

from __future__ import annotations

import os
import threading

__all__ = ["CRASH_ENV", "CRASH_EXIT_CODE", "CRASH_POINTS", "crash_point"]

CRASH_ENV = "DATABRICKS_ACCESS_CRASH_AT"
CRASH_EXIT_CODE = 97
CRASH_POINTS = (
    "after_claim",
    "after_intent_write",
    "after_patch",
    "after_activate",
    "after_revoking_write",
    "after_revoke_patch",
    "after_extend",
    "after_approve",
)

_hits: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """End the process here if `DATABRICKS_ACCESS_CRASH_AT` names this point."""
    armed = os.environ.get(CRASH_ENV)
    if not armed:
        return
    point, _, count = armed.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        hits = _hits[name]
    if hits >= (int(count) if count.isdigit() else 1):
        os._exit(CRASH_EXIT_CODE)
