"""`unlocks` and `explain_access` against the emulator: inheritance, nesting, names."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.catalog.conftest import World

import databricks_access as da


def _rows(report: da.UnlocksReport | da.AccessExplanation) -> set[tuple[str, str, str, str]]:
    return {
        (p.securable_type.value, p.securable, p.privilege, p.granted_on) for p in report.privileges
    }


def test_a_catalog_grant_reaches_its_schemas_and_tables(reader: da.CatalogReader, world: World):
    report = reader.unlocks("analysts")
    rows = _rows(report)
    assert ("catalog", "sales", "USE_CATALOG", "sales") in rows
    assert ("schema", "sales.raw", "SELECT", "sales") in rows
    assert ("table", "sales.curated.orders", "SELECT", "sales") in rows
    inherited = [p for p in report.privileges if p.securable == "sales.raw.orders"]
    assert inherited and all(p.inherited for p in inherited)
    assert {p.metastore_name for p in report.privileges} == {"primary"}
    # Nothing of hr or lab: those grants name others.
    assert not any(p.securable.startswith(("hr", "lab")) for p in report.privileges)


def test_a_schema_grant_reaches_its_tables_only(reader: da.CatalogReader, world: World):
    rows = _rows(reader.unlocks("juniors"))
    assert ("schema", "sales.raw", "USE_SCHEMA", "sales.raw") in rows
    assert ("table", "sales.raw.customers", "USE_SCHEMA", "sales.raw") in rows
    assert not any(
        securable.startswith("sales.curated") and granted_on == "sales.raw"
        for _, securable, _, granted_on in rows
    )


def test_a_member_group_gets_what_its_parents_are_granted(reader: da.CatalogReader, world: World):
    report = reader.unlocks("juniors")
    from_parent = [p for p in report.privileges if p.granted_to == "analysts"]
    assert from_parent
    assert {p.via for p in from_parent} == {("analysts",)}
    own = [p for p in report.privileges if p.granted_to == "juniors"]
    assert own and {p.via for p in own} == {()}
    # The parent's report does not hold the child's grants.
    assert not any(p.granted_to == "juniors" for p in reader.unlocks("analysts").privileges)


def test_explain_access_follows_the_group_chain(reader: da.CatalogReader, world: World):
    explained = reader.explain_access("alice@example.com")
    assert explained.principal == da.PrincipalRef(da.PrincipalKind.USER, world.alice)
    assert set(explained.groups) == {"juniors", "analysts"}
    vias = {(p.granted_to, p.via) for p in explained.privileges}
    assert ("analysts", ("juniors", "analysts")) in vias
    assert ("juniors", ("juniors",)) in vias
    assert ("alice@example.com", ()) in vias  # her own grant on hr.people
    assert ("account users", ("account users",)) in vias  # everyone's USE_CATALOG on hr
    tables = {
        p.securable for p in explained.privileges if p.securable_type is da.SecurableType.TABLE
    }
    assert "hr.people.salaries" in tables


def test_a_service_principal_is_matched_by_application_id(reader: da.CatalogReader, world: World):
    explained = reader.explain_access(world.etl)
    lab = [p for p in explained.privileges if p.metastore_name == "secondary"]
    assert {p.privilege for p in lab} == {"ALL_PRIVILEGES"}
    assert {p.via for p in lab} == {("engineers",)}
    assert {p.securable for p in lab} == {"lab", "lab.scratch"}


def test_names_that_match_nothing_are_reported(reader: da.CatalogReader, world: World):
    carol = world.fake.add_user("carol@example.com")
    world.fake.grant("catalog", "hr", "carol@example.com", ["BROWSE"])
    world.fake.delete_principal(carol)
    report = reader.unlocks("analysts")
    names = {u.name for u in report.unmatched} | {u.principal_id for u in report.unmatched}
    assert "carol@example.com" in names or carol in names
    # Known names never show up there; the built-in `account users` neither.
    assert not names & {"analysts", "juniors", "engineers", "alice@example.com", "account users"}


def test_outputs_csv_json_html_summary(reader: da.CatalogReader, world: World):
    report = reader.unlocks("juniors")
    text = report.to_csv()
    assert text.splitlines()[0].startswith("metastore,metastore_id,securable_type,securable")
    assert "sales.raw" in text
    data = json.loads(report.to_json())
    assert data["group_name"] == "juniors"
    assert data["privileges"] and data["metastores"]
    html = report._repr_html_()
    assert "<table" in html and "juniors" in html
    summary = report.summary()
    assert "USE_SCHEMA on schema sales.raw" in summary
    assert "on catalog sales" in summary
    assert "juniors" in repr(report)


def test_a_group_model_or_id_works_as_well_as_a_name(reader: da.CatalogReader, world: World):
    by_name = reader.unlocks("analysts")
    assert reader.unlocks(world.analysts).privileges == by_name.privileges
    assert by_name.group_id == world.analysts


def test_an_unknown_group_is_not_found(reader: da.CatalogReader, world: World):
    with pytest.raises(da.NotFoundError, match="nobody-has-this-name"):
        reader.unlocks("nobody-has-this-name")


def test_async_answers_match_sync(
    reader: da.CatalogReader, async_account: da.AsyncAccountClient, world: World
):
    expected = reader.unlocks("juniors")

    async def main() -> tuple[da.UnlocksReport, da.AccessExplanation]:
        async_reader = da.AsyncCatalogReader(async_account, include_tables=True)
        try:
            return (
                await async_reader.unlocks("juniors"),
                await async_reader.explain_access("alice@example.com"),
            )
        finally:
            await async_reader.close()
            await async_account.close()

    got, explained = asyncio.run(main())
    assert got.privileges == expected.privileges
    assert explained.privileges == reader.explain_access("alice@example.com").privileges


def test_one_call_forms(account: da.AccountClient, world: World):
    assert da.unlocks(account, "analysts").privileges
    assert da.explain_access(account, "bob@example.com").groups == ("analysts",)


def test_async_one_call_forms_answer_as_the_sync_ones(
    account: da.AccountClient, async_account: da.AsyncAccountClient, world: World
):
    async def main() -> tuple[da.UnlocksReport, da.AccessExplanation]:
        try:
            return (
                await da.aunlocks(async_account, "analysts"),
                await da.aexplain_access(async_account, "bob@example.com"),
            )
        finally:
            await async_account.close()

    got, explained = asyncio.run(main())
    assert got.privileges
    assert got.privileges == da.unlocks(account, "analysts").privileges
    assert explained.groups == ("analysts",)
    assert explained.privileges == da.explain_access(account, "bob@example.com").privileges


def test_hostile_names_are_escaped_in_html_and_csv(reader: da.CatalogReader, world: World):
    world.fake.add_group("=cmd|' /C calc'!A0<script>", members=[world.juniors])
    world.fake.grant("schema", "sales.curated", "=cmd|' /C calc'!A0<script>", ["MODIFY"])
    report = reader.unlocks("juniors")
    assert "<script>" not in report._repr_html_()
    assert "&lt;script&gt;" in report._repr_html_()
    assert "\n'=cmd" in report.to_csv() or ",'=cmd" in report.to_csv()
