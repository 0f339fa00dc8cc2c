"""`python -m databricks_access demo`: a full just-in-time flow against the emulator.

Everything runs in this process: an emulated account, a real OAuth M2M login, the real
client, membership manager, lease tracker and SQLite store. The clock is a manual one,
so "an hour later" takes no time.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path

from databricks_access._account.client import AccountClient
from databricks_access._account.config import AccountConfig
from databricks_access._account.models import PrincipalRef
from databricks_access._clock import ManualClock
from databricks_access._leases.events import CallableSink
from databricks_access._leases.membership import MembershipManager
from databricks_access._leases.tracker import LeaseTracker
from databricks_access._leases.values import AuditEvent, Lease
from databricks_access._secrets.base import StaticSecretStore

__all__ = ["run_demo"]

_START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


def run_demo(out: Callable[[str], object] = print, *, store_dir: Path | None = None) -> int:
    """Run the demo, writing plain sentences through `out`; returns an exit code."""
    from databricks_access._stores.sqlite import SqliteLeaseStore  # noqa: PLC0415
    from databricks_access.testing import FakeAccount  # noqa: PLC0415

    clock = ManualClock(_START)

    def say(text: str = "") -> None:
        out(text)

    def at() -> str:
        return clock.now().strftime("%H:%M")

    say("databricks_access demo: just-in-time access against an emulated Databricks account")
    say("")
    fake = FakeAccount(clock=lambda: clock.now().timestamp())
    connector = fake.add_service_principal("jit-connector")
    alice = fake.add_user("alice@example.com", "Alice")
    bob = fake.add_user("bob@example.com", "Bob")
    carol = fake.add_user("carol@example.com", "Carol")
    readers = fake.add_group("prod-data-readers", members=[bob])
    say(f"[{at()}] The account has three users and a group 'prod-data-readers'.")
    say(f"[{at()}] Bob is a standing member of it; Alice and Carol are not.")

    config = AccountConfig(host=fake.host, account_id=fake.account_id)
    secrets = StaticSecretStore(connector.client_id, connector.client_secret)
    names = {alice: "Alice", bob: "Bob", carol: "Carol"}
    audit: list[AuditEvent] = []

    def on_event(event: AuditEvent) -> None:
        audit.append(event)

    with tempfile.TemporaryDirectory() as tmp:
        path = (store_dir or Path(tmp)) / "leases.db"
        with (
            AccountClient(
                config, secrets=secrets, transport=fake.transport(), clock=clock
            ) as client,
            SqliteLeaseStore(path) as store,
        ):
            say(
                f"[{at()}] The connector logs in with OAuth M2M as service principal "
                f"{connector.client_id[:8]}…"
            )
            tracker = LeaseTracker(
                MembershipManager(client), store=store, clock=clock, events=CallableSink(on_event)
            )

            def members() -> str:
                ids = fake.group_members(readers)
                return ", ".join(sorted(names.get(i, i) for i in ids)) or "nobody"

            def show(lease: Lease, who: str) -> None:
                standing = (
                    " (standing membership: left alone when it ends)" if lease.standing else ""
                )
                say(
                    f"[{at()}] {who} gets {lease.group_name or 'the group'} until "
                    f"{lease.expires_at:%H:%M}, lease {lease.id[:14]}…{standing}"
                )

            group = client.groups.get(readers)
            say("")
            say(f"[{at()}] Alice asks for read access for one hour (INC-1234).")
            lease_a = tracker.grant(
                "alice@example.com",
                group,
                ttl=dt.timedelta(hours=1),
                requester="alice@example.com",
                reason="INC-1234",
            )
            show(lease_a, "Alice")
            say(f"[{at()}] Bob asks for 30 minutes, though he is a member already.")
            lease_b = tracker.grant(
                PrincipalRef("user", bob),
                group,
                ttl=dt.timedelta(minutes=30),
                requester="bob@example.com",
                reason="INC-1235",
            )
            show(lease_b, "Bob")
            say(f"[{at()}] Carol gets two hours, then asks again for 30 minutes.")
            lease_c1 = tracker.grant(
                "carol@example.com",
                group,
                ttl=dt.timedelta(hours=2),
                requester="carol@example.com",
                reason="INC-1236",
            )
            lease_c2 = tracker.grant(
                "carol@example.com",
                group,
                ttl=dt.timedelta(minutes=30),
                requester="carol@example.com",
                reason="INC-1237",
            )
            show(lease_c1, "Carol")
            show(lease_c2, "Carol")
            say(f"[{at()}] Members of prod-data-readers: {members()}.")
            say("")
            say(f"[{at()}] Active leases:")
            for lease in tracker.leases(state=lease_a.state):
                who = names.get(lease.principal.id, lease.principal.id)
                say(f"         {who:<6} until {lease.expires_at:%H:%M}  {lease.reason}")

            def sweep_after(minutes: int) -> None:
                clock.advance(dt.timedelta(minutes=minutes))
                report = tracker.sweep()
                say("")
                say(
                    f"[{at()}] Sweep: {len(report.revoked)} revoked, {len(report.kept)} ended "
                    f"with the membership kept, in {report.patches} PATCH request(s)."
                )
                say(f"[{at()}] Members of prod-data-readers: {members()}.")

            sweep_after(31)
            say(f"[{at()}] Bob's lease ended but he stays: his membership was standing.")
            say(f"[{at()}] Carol's short lease ended but she stays: her 2-hour lease holds.")
            sweep_after(30)
            say(f"[{at()}] Alice's hour is over: she was removed.")
            sweep_after(60)
            say(f"[{at()}] Carol's two hours are over: she was removed.")
            say("")
            say(f"[{at()}] The audit trail ({len(audit)} events, also kept in the store):")
            for event in audit:
                who = names.get(event.principal.id, "?") if event.principal else "?"
                say(
                    f"         {event.at:%H:%M} {event.kind.value:<8} {who:<6} {event.reason or ''}"
                )
            standing_left = fake.group_members(readers) == {bob}
            say("")
            say(
                "Zero standing privileges: only Bob's pre-existing membership remains."
                if standing_left
                else "Unexpected: the group does not hold exactly the standing member."
            )
    return 0 if standing_left else 1
