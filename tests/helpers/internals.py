"""Private names that several test files check, imported from one place.

Public names come from `databricks_access` (tests/test_public_imports.py keeps it so).
These are not public: they are the library's internals that more than one test file
needs. When the private modules move, this file follows them and its users do not.
A private name only one test file needs is imported there, from its module.

The needs: crash injection (`CRASH_*`); reading replies (error bodies, Retry-After,
SCIM ids, JSON structuring, durations, GCP checksums); the tracker's groups of lease
states; the async view of a sync store (`threaded`); the client's operation classes and
throttle; and the emulator's SCIM filter parser.
"""

from __future__ import annotations

from databricks_access._account.flows import OpClass
from databricks_access._account.retry import parse_retry_after
from databricks_access._account.scim import check_id
from databricks_access._account.serde import parse_list, structure, unstructure
from databricks_access._account.throttle import Throttle
from databricks_access._durations import human
from databricks_access._errors import error_from_reply, parse_error_body
from databricks_access._leases.store import threaded
from databricks_access._leases.values import ACTIVE_STATES, TERMINAL_STATES
from databricks_access._secrets.gcp import crc32c
from databricks_access._util.crash import CRASH_ENV, CRASH_EXIT_CODE, CRASH_POINTS
from databricks_access.testing._scim_filter import Comparison, parse_filter

__all__ = [
    "ACTIVE_STATES",
    "CRASH_ENV",
    "CRASH_EXIT_CODE",
    "CRASH_POINTS",
    "TERMINAL_STATES",
    "Comparison",
    "OpClass",
    "Throttle",
    "check_id",
    "crc32c",
    "error_from_reply",
    "human",
    "parse_error_body",
    "parse_filter",
    "parse_list",
    "parse_retry_after",
    "structure",
    "threaded",
    "unstructure",
]
