"""What the tracker's operations answer: extensions, sweeps and drift.

Plain frozen values, so that discovery, the CLI and connectors read them without
importing the tracker.
"""

from __future__ import annotations

import datetime as dt

import attrs

from databricks_access._account.models import PrincipalRef
from databricks_access._leases.values import Lease
from databricks_access._util.html import render_html

__all__ = ["DriftItem", "DriftReport", "ExtendResult", "SweepReport"]


@attrs.frozen(kw_only=True)
class ExtendResult:
    """The outcome of `extend`: the lease as stored, and whether `max_ttl` cut it short.

    Attributes:
        lease: The lease after the extension.
        clamped: The extension asked for more than `max_ttl` allows from the grant time.
        requested_expires_at: The expiry that was asked for.
    """

    _repr_html_ = render_html

    lease: Lease
    clamped: bool
    requested_expires_at: dt.datetime


@attrs.frozen(kw_only=True)
class SweepReport:
    """What one `sweep()` did.

    Attributes:
        revoked: Leases ended, with the membership removed.
        kept: Leases ended while the membership stays (standing, or another lease holds it).
        failed: Leases whose removal failed (now `REVOKE_FAILED`, retried later).
        recovered: Leases a crash left `GRANTING` that this sweep completed.
        skipped: Due leases whose pair another tracker holds the claim on.
        patches: Membership PATCH requests sent.
        events_delivered: Events handed to the sink.
    """

    _repr_html_ = render_html

    revoked: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    recovered: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    patches: int = 0
    events_delivered: int = 0

    @property
    def ended(self) -> int:
        """How many leases this sweep ended (revoked or kept)."""
        return len(self.revoked) + len(self.kept)


@attrs.frozen(kw_only=True)
class DriftItem:
    """One difference between the leases and the account.

    `kind` is `standing` (a member holding no lease) or `vanished` (an active lease whose
    membership is gone).
    """

    _repr_html_ = render_html

    kind: str
    group_id: str
    principal: PrincipalRef | None
    principal_id: str
    lease_id: str | None = None
    display: str | None = None


@attrs.frozen(kw_only=True)
class DriftReport:
    """What `reconcile()` found and, with `apply=True`, what it changed."""

    _repr_html_ = render_html

    standing: tuple[DriftItem, ...] = ()
    vanished: tuple[DriftItem, ...] = ()
    readded: tuple[DriftItem, ...] = ()
    removed: tuple[DriftItem, ...] = ()
    failures: tuple[tuple[DriftItem, str], ...] = ()

    @property
    def clean(self) -> bool:
        """Whether the account matches the leases exactly."""
        return not self.standing and not self.vanished
