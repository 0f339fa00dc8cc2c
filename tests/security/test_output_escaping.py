"""User data in output stays data: HTML reprs escape it, the CSV export neutralises cells
a spreadsheet would run as formulas, and the text tables drop terminal control codes.

Every public model with a `_repr_html_` (and the `Inventory`) is rendered with hostile
text in each of its text fields; the CLI's `discover` runs end to end against the
emulator with hostile names in every table it exports.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from tests.catalog.hostile import catalog_hostile_models

import databricks_access as da
from databricks_access import ComplexValue, EventKind, MemberRef, Name, RequestState
from databricks_access._cli import app as _cli
from databricks_access.testing import FakeAccount

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULAS = [
    '=HYPERLINK("http://evil.example","click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _cv(**kw) -> ComplexValue:
    return ComplexValue(value=HOSTILE, display=HOSTILE, **kw)


def hostile_models() -> dict[str, object]:
    ref = da.PrincipalRef("user", "123")
    return {
        **_hostile_values(ref),
        **_hostile_reports(ref),
        **catalog_hostile_models(HOSTILE, ref),  # Unity Catalog: tests/catalog/hostile.py
    }


def _hostile_reports(ref: da.PrincipalRef) -> dict[str, object]:
    check = da.Check(name=HOSTILE, ok=False, verdict=HOSTILE, fix=HOSTILE)
    drift = da.DriftItem(
        kind=HOSTILE, group_id=HOSTILE, principal=ref, principal_id=HOSTILE, display=HOSTILE
    )
    return {
        "Check": check,
        "Diagnosis": da.Diagnosis((check,)),
        "ExtendResult": da.ExtendResult(
            lease=_hostile_values(ref)["Lease"], clamped=True, requested_expires_at=NOW
        ),
        "SweepReport": da.SweepReport(revoked=(HOSTILE,), kept=(HOSTILE,), failed=(HOSTILE,)),
        "DriftItem": drift,
        "DriftReport": da.DriftReport(standing=(drift,), failures=((drift, HOSTILE),)),
        "Approvers": da.Approvers(
            (da.Owner.user("ann@example.com"),), da.ApproverSource.INTEGRATION_OWNER, (HOSTILE,)
        ),
        "RequestSweep": da.RequestSweep(expired=(HOSTILE,), granted=(HOSTILE,)),
    }


def _hostile_values(ref: da.PrincipalRef) -> dict[str, object]:
    return {
        "Group": da.Group(
            id="1",
            display_name=HOSTILE,
            external_id=HOSTILE,
            members=(MemberRef(id="2", display=HOSTILE, kind=da.PrincipalKind.USER),),
            groups=(_cv(),),
            roles=(_cv(),),
            entitlements=(_cv(),),
            resource_type=HOSTILE,
        ),
        "User": da.User(
            id="2",
            user_name=HOSTILE,
            display_name=HOSTILE,
            external_id=HOSTILE,
            name=Name(given_name=HOSTILE, family_name=HOSTILE),
            emails=(_cv(),),
            groups=(_cv(),),
            roles=(_cv(),),
        ),
        "ServicePrincipal": da.ServicePrincipal(
            id="3", application_id=HOSTILE, display_name=HOSTILE, roles=(_cv(),)
        ),
        "Workspace": da.Workspace(
            workspace_id=7,
            workspace_name=HOSTILE,
            deployment_name=HOSTILE,
            workspace_status=HOSTILE,
            cloud=HOSTILE,
            aws_region=HOSTILE,
            location=HOSTILE,
        ),
        "PermissionAssignment": da.PermissionAssignment(
            principal=da.AssignedPrincipal(
                principal_id=4, display_name=HOSTILE, group_name=HOSTILE, user_name=HOSTILE
            ),
            permissions=(HOSTILE,),
        ),
        "RuleSet": da.RuleSet(
            name=HOSTILE,
            etag=HOSTILE,
            grant_rules=(da.GrantRule(role=HOSTILE, principals=(HOSTILE,)),),
        ),
        "Lease": da.Lease(
            id=HOSTILE,
            principal=ref,
            group_id=HOSTILE,
            state=da.LeaseState.ACTIVE,
            granted_at=NOW,
            expires_at=NOW,
            requester=HOSTILE,
            reason=HOSTILE,
            approver=HOSTILE,
            last_error=HOSTILE,
            updated_at=NOW,
            request_id=HOSTILE,
            group_name=HOSTILE,
            principal_name=HOSTILE,
        ),
        "AuditEvent": da.AuditEvent(
            kind=EventKind.GRANTED,
            at=NOW,
            lease_id=HOSTILE,
            request_id=HOSTILE,
            principal=ref,
            group_id=HOSTILE,
            requester=HOSTILE,
            reason=HOSTILE,
            approver=HOSTILE,
            detail={HOSTILE: HOSTILE},
            principal_name=HOSTILE,
            group_name=HOSTILE,
        ),
        "AccessRequest": da.AccessRequest(
            id=HOSTILE,
            principal=ref,
            group_id=HOSTILE,
            ttl_seconds=60.0,
            reason=HOSTILE,
            requester=HOSTILE,
            state=RequestState.PENDING,
            created_at=NOW,
            expires_at=NOW,
            updated_at=NOW,
            approvers=(HOSTILE,),
            approver_source=HOSTILE,
            decided_by=HOSTILE,
            decision_reason=HOSTILE,
            access_details=HOSTILE,
            group_name=HOSTILE,
            principal_name=HOSTILE,
        ),
    }


def assert_inert(html: str) -> None:
    for raw in ("<script", "</script", "<img", "\"'&<", "onerror=alert(1)>"):
        assert raw not in html, (raw, html[:400])
    assert "&lt;script&gt;" in html


def test_every_public_html_repr_is_covered():
    with_html = {
        name
        for name in da.__all__
        if isinstance(getattr(da, name), type) and hasattr(getattr(da, name), "_repr_html_")
    }
    assert with_html == {*hostile_models(), "Inventory", "Pager", "AsyncPager"}


@pytest.mark.parametrize("name", sorted(hostile_models()))
def test_html_reprs_escape_user_data(name):
    assert_inert(hostile_models()[name]._repr_html_())


@pytest.fixture
def hostile_account(clock):
    fake = FakeAccount(clock=lambda: clock.now().timestamp())
    sp = fake.add_service_principal(FORMULAS[3])
    users = [fake.add_user(f"{formula}@example.com", formula) for formula in (HOSTILE, *FORMULAS)]
    groups = [fake.add_group(formula, members=users) for formula in (HOSTILE, *FORMULAS)]
    workspace = fake.add_workspace(FORMULAS[0], deployment_name=FORMULAS[1])
    for group in groups:
        fake.assign(workspace, group, ["USER"])
    fake.set_group_managers(groups[1], [f"users/{FORMULAS[2]}@example.com"])
    return fake, sp


def test_pagers_and_lists_escape_user_data(hostile_account, clock):
    fake, sp = hostile_account
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    with da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
    ) as client:
        pager = client.groups.list(attributes=["id", "displayName"])
        assert_inert(pager._repr_html_())
        assert_inert(pager.collect()._repr_html_())


def test_the_inventory_html_escapes_user_data(hostile_account, clock):
    fake, sp = hostile_account
    config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
    with da.AccountClient(
        config,
        secrets=da.StaticSecretStore(sp.client_id, sp.client_secret),
        transport=fake.transport(),
        clock=clock,
    ) as client:
        inventory = da.discover(client)
    assert HOSTILE in {g.display_name for g in inventory.groups.values()}
    assert_inert(inventory._repr_html_())


@pytest.fixture
def cli(hostile_account, tmp_path, capsys):
    fake, sp = hostile_account
    with fake.serve() as url:
        config = tmp_path / "integration.json"
        config.write_text(
            json.dumps(
                {
                    "name": "escaping",
                    "accounts_url": url,
                    "account_id": fake.account_id,
                    "allow_custom_host": True,
                    "allow_insecure_http": True,
                    "secret_store": "env",
                    "lease_store": f"sqlite:///{tmp_path / 'leases.db'}",
                }
            )
        )
        environ = {
            "DATABRICKS_CLIENT_ID": sp.client_id,
            "DATABRICKS_CLIENT_SECRET": sp.client_secret,
        }

        def run(*args: str) -> str:
            capsys.readouterr()
            code = _cli.main([*args, "--config", str(config)], environ=environ)
            out = capsys.readouterr().out
            assert code == 0, out
            return out

        yield run


KINDS = [
    "groups",
    "users",
    "service_principals",
    "memberships",
    "workspaces",
    "assignments",
    "managers",
    "roles",
]


@pytest.mark.parametrize("kind", KINDS)
def test_the_csv_export_neutralises_formula_cells(cli, kind):
    text = cli("discover", "--format", "csv", "--records", kind)
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) > 1, text
    hostile_cells = 0
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(TRIGGERS), (kind, cell)
            if cell.startswith("'") and cell[1:].startswith(TRIGGERS):
                hostile_cells += 1
                assert cell[1:] in {*FORMULAS, *(f"{f}@example.com" for f in FORMULAS)} or (
                    cell[1:].startswith("users/")
                ), cell
    assert hostile_cells > 0 or kind == "roles"


def test_the_text_table_drops_terminal_control_codes(hostile_account, cli):
    fake, _ = hostile_account
    fake.add_group("\x1b[2J\x1b[31mred\x07")
    text = cli("discover", "--format", "table", "--records", "groups")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text), repr(text[:300])
    assert "\\u001b[2J\\u001b[31mred\\u0007" in text


def test_a_carriage_return_in_a_name_cannot_start_a_csv_row(hostile_account, cli):
    fake, _ = hostile_account
    fake.add_group('team\r=HYPERLINK("http://evil.example")')
    fake.add_group("ops\r\n@SUM(1)")
    text = cli("discover", "--format", "csv", "--records", "groups")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(fake._state.groups)  # one row per group, no more
    for row in rows:
        assert len(row) == len(rows[0])
        assert not any(cell.startswith(TRIGGERS) for cell in row), row
