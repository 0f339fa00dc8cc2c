"""What a notebook shows: lists, pagers, leases and reports as tables, and a progress
display that stays readable where tqdm cannot draw widgets."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
import types

import databricks_access as da
from databricks_access import MemoryLeaseStore, tqdm_progress
from databricks_access.testing import OperationClass

HOUR = dt.timedelta(hours=1)


def rows(html: str) -> int:
    return len(re.findall(r"<tbody>.*?</tbody>", html, re.DOTALL)[0].split("<tr>")) - 1


def test_a_pager_shows_its_first_page_as_a_table(fake, client):
    for n in range(5):
        fake.add_group(f"team-{n}")
    pager = client.groups.list(attributes=["id", "displayName"], page_size=3)
    assert "lambda" not in repr(pager) and "function" not in repr(pager)
    before = fake.counts[OperationClass.LIST]
    html = pager._repr_html_()
    assert fake.counts[OperationClass.LIST] == before + 1  # one page, one request
    assert rows(html) == 3
    assert "team-0" in html and "team-4" not in html
    assert "More pages follow" in html
    everything = pager.collect()
    assert isinstance(everything, list) and len(everything) == 5
    table = everything._repr_html_()
    assert rows(table) == 5 and "team-4" in table
    assert "not fetched" in table  # listed groups: members not fetched


def test_leases_and_reports_show_as_tables(fake, client, clock):
    alice = fake.add_user("alice@example.com", "Alice")
    ops = fake.add_group("ops")
    tracker = da.LeaseTracker(da.MembershipManager(client), store=MemoryLeaseStore(), clock=clock)
    group = client.groups.get(ops)
    lease = tracker.grant("alice@example.com", group, ttl=HOUR, requester="a", reason="INC-9")
    leases = tracker.leases()
    html = leases._repr_html_()
    assert rows(html) == 1 and lease.id in html and "INC-9" in html
    header = re.findall(r"<th[^>]*>(\w+)</th>", html)
    assert header[:3] == ["id", "group_name", "principal_name"]  # who and where, first
    assert "alice@example.com" in html
    extended = tracker.extend(lease.id, by=20 * HOUR)
    assert "clamped" in extended._repr_html_()
    clock.advance(20 * HOUR)
    report = tracker.sweep()
    assert lease.id in report._repr_html_()
    assert fake.group_members(ops) == frozenset()
    assert alice  # granted, then revoked: the report names the lease
    diagnosis = da.diagnose(client)
    html = diagnosis._repr_html_()
    assert rows(html) == len(diagnosis.checks)
    assert "no problem found" in html


def test_approvers_show_as_a_table():
    approvers = da.Approvers(
        (da.Owner.user("ann@example.com"),), da.ApproverSource.INTEGRATION_OWNER, ("no tag",)
    )
    html = approvers._repr_html_()
    assert "ann@example.com" in html and "integration_owner" in html and "no tag" in html


def test_async_lists_show_as_tables(fake, async_client_factory, clock):
    fake.add_group("team-a")

    async def main() -> tuple[str, str, str]:
        async with async_client_factory() as client:
            pager = client.groups.list()
            groups = await pager.collect()
            tracker = da.AsyncLeaseTracker(
                da.AsyncMembershipManager(client), store=MemoryLeaseStore(), clock=clock
            )
            leases = await tracker.leases()
            return pager._repr_html_(), groups._repr_html_(), leases._repr_html_()

    pager_html, groups_html, leases_html = asyncio.run(main())
    assert "await pager.collect()" in pager_html  # displaying cannot await: it says how
    assert "team-a" in groups_html
    assert "none" in leases_html


def test_progress_in_a_notebook_without_widgets_is_a_few_plain_lines(
    fake, client, monkeypatch, capsys
):
    fake.seed(users=30, groups=12)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # nor tqdm: not needed here
    with tqdm_progress() as progress:
        da.discover(client, progress=progress)
    lines = capsys.readouterr().out.splitlines()
    stages = {line.split(":")[0] for line in lines}
    assert "groups" in stages and "members" in stages
    assert len(lines) == 2 * len(stages)  # a start and an end per stage, no stacked bars
    assert all(re.fullmatch(r"\w+: (started.*|done, [\d,]+)", line) for line in lines), lines
    assert "\r" not in "".join(lines)
