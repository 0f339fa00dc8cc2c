"""Owners, resolvers, tag sources, identity directories, and Integration.approvers_for."""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

import databricks_access as da
import databricks_access._diagnose.diagnose as _diagnose
from databricks_access import (
    Approvers,
    ApproverSource,
    AsyncDatabricksDirectory,
    AsyncIdentityDirectory,
    AsyncIntegration,
    AsyncOwnerResolver,
    AsyncTagOwnerResolver,
    ConfigError,
    DatabricksDirectory,
    DisplayNamePatternTagSource,
    Group,
    IdentityDirectory,
    Integration,
    IntegrationConfig,
    MappingTagSource,
    NotFoundError,
    Owner,
    OwnerKind,
    OwnerResolver,
    RequestTimeoutError,
    ResourceOwnerSetting,
    StaticDirectory,
    StaticOwnerResolver,
    TagOwnerResolver,
    TagSource,
)
from databricks_access._integration import approvers as _approvers
from databricks_access._integration import config as _integration
from databricks_access._integration import directories as _directories
from databricks_access._integration import owners as _owners
from databricks_access._integration.owners import split_tag_value
from databricks_access._integration.workers import Workers
from databricks_access.testing import FakeResponse
from helpers.doctests import run_doctests

ACCOUNT_ID = "0a1b2c3d-0000-4000-8000-00000000abcd"
AWS = "https://accounts.cloud.databricks.com"
SALES = Group(id="101", display_name="team-sales-readers")
# Bounded waits for worker threads: tiny timeouts, never a sleep for expiry.
TINY = 0.05
JOIN = 5.0


def make_config(**overrides) -> IntegrationConfig:
    values = {"name": "sales", "accounts_url": AWS, "account_id": ACCOUNT_ID, **overrides}
    return IntegrationConfig(**values)


@pytest.mark.parametrize("module", [_owners, _directories])
def test_doctests(module):
    result = run_doctests(module)
    assert result.attempted > 0, module.__name__
    assert result.failed == 0, module.__name__


# -- owners --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("user:ann@example.com", OwnerKind.USER, "ann@example.com"),
        ("USER: Ann@Example.com ", OwnerKind.USER, "Ann@Example.com"),
        ("group:Data Owners", OwnerKind.GROUP, "Data Owners"),
        ("Group:team:with:colons", OwnerKind.GROUP, "team:with:colons"),
        ("bob@example.com", OwnerKind.USER, "bob@example.com"),
        ("user:svc-bot", OwnerKind.USER, "svc-bot"),
    ],
)
def test_owner_forms(text, kind, name):
    owner = Owner.parse(text)
    assert (owner.kind, owner.name) == (kind, name)
    assert Owner.parse(str(owner)) == owner


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("data-owners", "user:<user name>"),
        ("mailto:a@b.c", "user:<user name>"),
        ("user:", "is empty"),
        ("group:   ", "is empty"),
        ("user:ann smith@x.com", "whitespace"),
        ("group:a\tb", "control character"),
        ("group:" + "x" * 257, "longer than 256"),
        (42, "not int"),
    ],
)
def test_bad_owner_forms(value, fragment):
    with pytest.raises(ConfigError) as info:
        Owner.parse(value)
    assert info.value.fields == ("owner",)
    assert fragment in str(info.value)


def test_owners_compare_case_insensitively_and_keep_their_spelling():
    ann = Owner.user("Ann@Example.COM")
    assert ann == Owner("user", "ann@example.com")
    assert hash(ann) == hash(Owner.user("ANN@example.com"))
    assert ann != Owner.group("ann@example.com")
    assert ann.name == "Ann@Example.COM"
    assert str(ann) == "user:Ann@Example.COM"
    assert len({ann, Owner.user("ann@example.com"), Owner.group("x")}) == 2
    assert ann.matches_user(" ANN@example.com ")
    assert not ann.matches_user("")
    assert not Owner.group("ann@example.com").matches_user("ann@example.com")
    assert ann.__eq__("user:ann@example.com") is NotImplemented


def test_owner_kind_must_be_known():
    with pytest.raises(ConfigError, match="'user' or 'group'"):
        Owner("robot", "x")


def test_resource_owner_setting_rules():
    assert ResourceOwnerSetting(" owner ", " email ") == ResourceOwnerSetting("owner", "email")
    setting = ResourceOwnerSetting(
        "data-steward", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
    )
    assert setting.tag_key == "data-steward"
    with pytest.raises(ConfigError) as info:
        ResourceOwnerSetting("", "not an attribute")
    assert info.value.fields == ("resource_owner.tag_key", "resource_owner.idp_attribute")


# -- resolvers and tag sources ------------------------------------------------------------------


def test_protocols_are_runtime_checkable():
    assert isinstance(StaticOwnerResolver({}), OwnerResolver)
    assert isinstance(MappingTagSource({}), TagSource)
    assert isinstance(DisplayNamePatternTagSource("x"), TagSource)
    assert isinstance(StaticDirectory(), IdentityDirectory)


def test_static_resolver_by_id_then_by_name():
    resolver = StaticOwnerResolver(
        {
            "101": ["user:by-id@example.com"],
            "TEAM-SALES-READERS": ["group:by-name"],
            "other": "ann@example.com",
        }
    )
    assert resolver.resolve(SALES) == (Owner.user("by-id@example.com"),)
    assert resolver.resolve(Group(id="5", display_name="team-sales-readers")) == (
        Owner.group("by-name"),
    )
    assert resolver.resolve(Group(id="6", display_name="other")) == (Owner.user("ann@example.com"),)
    assert resolver.resolve(Group(id="7")) == ()
    assert "3 groups" in repr(resolver)


def test_static_resolver_reports_bad_owners_by_key():
    with pytest.raises(ConfigError) as info:
        StaticOwnerResolver({"sales": ["nobody"], "ops": ["group:ok", 3]})  # type: ignore[list-item]
    assert info.value.fields == ("mapping['sales']", "mapping['ops']")


def test_mapping_tag_source():
    tags = MappingTagSource({"101": {"owner": " ann@example.com "}, "ops": {"owner": "  "}})
    assert tags.tag_value(SALES, "owner") == "ann@example.com"
    assert tags.tag_value(SALES, "Owner") is None  # tag keys compare exactly
    assert tags.tag_value(Group(id="9", display_name="OPS"), "owner") is None
    assert tags.tag_value(Group(id="9", display_name="x"), "owner") is None


@pytest.mark.parametrize(
    ("pattern", "tag_key", "display_name", "value"),
    [
        (r"^team-(?P<owner>[a-z0-9-]+)-readers$", "owner", "team-sales-readers", "sales"),
        (r"^team-(?P<data_steward>[a-z]+)-", "data-steward", "team-sales-readers", "sales"),
        (r"^(?P<env>[a-z]+)-team-(?P<owner>[a-z]+)", "owner", "prod-team-ops", "ops"),
        (r"^(?P<env>[a-z]+)-team-(?P<team>[a-z]+)", "owner", "prod-team-ops", "prod"),
        (r"^team-([a-z]+)-", "owner", "team-sales-readers", "sales"),
        (r"[a-z]+@example\.com", "owner", "readers of ann@example.com", "ann@example.com"),
        (r"^team-(?P<owner>[a-z]*)-", "owner", "team--readers", None),
        (r"^team-", "owner", "admins", None),
        (re.compile(r"^TEAM-(\w+)-", re.IGNORECASE), "owner", "team-sales-x", "sales"),
    ],
)
def test_display_name_pattern_tag_source(pattern, tag_key, display_name, value):
    tags = DisplayNamePatternTagSource(pattern)
    assert tags.tag_value(Group(id="1", display_name=display_name), tag_key) == value


def test_display_name_pattern_must_compile():
    with pytest.raises(ConfigError) as info:
        DisplayNamePatternTagSource("team-(")
    assert info.value.fields == ("pattern",)
    with pytest.raises(ConfigError):
        DisplayNamePatternTagSource("")


def test_split_tag_value():
    assert split_tag_value("a@x.com,b@x.com , ,") == ("a@x.com", "b@x.com")
    assert split_tag_value("") == ()


def test_tag_resolver_with_a_static_directory():
    directory = StaticDirectory(
        attributes={"team": {"sales": ["group:sales-leads", "user:ann@example.com"]}}
    )
    resolver = TagOwnerResolver(
        ResourceOwnerSetting("team", "team"),
        DisplayNamePatternTagSource(r"^team-(?P<team>[a-z]+)-"),
        directory,
    )
    assert resolver.resolve(SALES) == (Owner.group("sales-leads"), Owner.user("ann@example.com"))
    assert resolver.resolve(Group(id="2", display_name="admins")) == ()


def test_tag_resolver_splits_and_deduplicates_names():
    resolver = TagOwnerResolver(
        ResourceOwnerSetting("owner", "email"),
        MappingTagSource({"101": {"owner": "Ann@example.com, bob@example.com, ann@EXAMPLE.com"}}),
        StaticDirectory(),
    )
    assert [str(o) for o in resolver.resolve(SALES)] == [
        "user:Ann@example.com",
        "user:bob@example.com",
    ]


# -- the static directory ---------------------------------------------------------------------------


def test_static_directory_owners_for():
    directory = StaticDirectory(attributes={"manager": {"Ann@Example.com": ["group:leads"]}})
    assert directory.owners_for("Manager", "ann@example.com") == (Owner.group("leads"),)
    assert directory.owners_for("manager", "bob@example.com") == ()
    assert directory.owners_for("userName", "bob@example.com") == (Owner.user("bob@example.com"),)
    assert directory.owners_for("displayName", "Data Owners") == (Owner.group("Data Owners"),)
    assert directory.owners_for("email", "  ") == ()
    with pytest.raises(ConfigError) as info:
        directory.owners_for("costCenter", "42")
    assert info.value.fields == ("idp_attribute",)


def test_static_directory_nested_membership_with_a_cycle():
    directory = StaticDirectory(
        groups={
            "approvers": ["ann@example.com", "group:leads"],
            "leads": ["user:Bob@Example.com", "group:Approvers", "group:deep"],
            "deep": ["carol@example.com"],
        }
    )
    assert directory.is_member("ANN@example.com", "approvers")
    assert directory.is_member("bob@example.com", "approvers")
    assert directory.is_member("carol@example.com", "approvers")
    assert directory.is_member("bob@example.com", "leads")
    assert not directory.is_member("ann@example.com", "deep")
    assert not directory.is_member("dave@example.com", "approvers")  # terminates despite the cycle
    assert not directory.is_member("", "approvers")
    assert not directory.is_member("ann@example.com", "unknown")


def test_static_directory_refuses_malformed_mappings():
    with pytest.raises(ConfigError) as info:
        StaticDirectory(
            attributes={"team": {"x": ["nobody"]}},
            groups={"a": "ann@example.com", "b": [3]},  # type: ignore[list-item]
        )
    assert info.value.fields == ("attributes['team']['x']", "groups['a']", "groups['b']")


# -- the account as the directory -----------------------------------------------------------------


@pytest.fixture
def people(fake):
    ann = fake.add_user("Ann@Example.com", "Ann")
    bob = fake.add_user("bob@example.com")
    carol = fake.add_user("carol@example.com")
    dave = fake.add_user("dave@example.com")
    leads = fake.add_group("finance-leads", members=[bob])
    approvers = fake.add_group("Finance-Approvers", members=[ann, leads])
    fake.add_member(leads, approvers)  # a cycle: approvers -> leads -> approvers
    deep = fake.add_group("finance-deep", members=[carol])
    fake.add_member(leads, deep)
    return {"ann": ann, "bob": bob, "carol": carol, "dave": dave, "leads": leads,
            "approvers": approvers, "deep": deep}  # fmt: skip


def test_databricks_directory_owners_for(client, people):
    directory = DatabricksDirectory(client)
    assert directory.owners_for("email", "ann@example.com") == (Owner.user("ann@example.com"),)
    # the account's spelling is kept for display
    assert directory.owners_for("userName", "ANN@example.com")[0].name == "Ann@Example.com"
    assert directory.owners_for("group", "finance-approvers")[0].name == "Finance-Approvers"
    assert directory.owners_for("displayName", "Finance-Approvers") == (
        Owner.group("finance-approvers"),
    )
    assert directory.owners_for("email", "nobody@example.com") == ()
    assert directory.owners_for("group", "no-such-group") == ()
    assert directory.owners_for("email", "") == ()
    with pytest.raises(ConfigError):
        directory.owners_for("costCenter", "42")


def test_databricks_directory_nested_membership_with_a_cycle(client, people):
    directory = DatabricksDirectory(client)
    assert directory.is_member("ann@example.com", "Finance-Approvers")
    assert directory.is_member("BOB@example.com", "finance-approvers")  # through leads
    assert directory.is_member("carol@example.com", "finance-approvers")  # deep -> leads -> ...
    assert directory.is_member("bob@example.com", "finance-leads")  # through the cycle
    assert not directory.is_member("ann@example.com", "finance-deep")
    assert not directory.is_member("dave@example.com", "finance-approvers")
    assert not directory.is_member("nobody@example.com", "finance-approvers")
    assert not directory.is_member("ann@example.com", "no-such-group")
    assert not directory.is_member("ann@example.com", "bad\x00name")


def test_databricks_directory_survives_a_server_refusing_plus_in_filters(client, fake):
    ann = fake.add_user("ann@example.com")
    fake.add_group("c++ owners", members=[ann])

    def refuse_plus(request):
        if "eq" in request.params.get("filter", "") and "+" in request.params["filter"]:
            body = b'{"detail": "Invalid filter", "status": "400", "scimType": "invalidFilter"}'
            return FakeResponse(400, (("content-type", "application/scim+json"),), body)
        return None

    fake.interceptor = refuse_plus
    directory = DatabricksDirectory(client)
    assert directory.owners_for("group", "c++ owners") == (Owner.group("c++ owners"),)
    assert directory.is_member("ann@example.com", "c++ owners")
    assert any(record.status == 400 for record in fake.log)  # the refusal was met


def test_databricks_directory_caches_until_the_ttl_passes(client, people, fake, clock):
    directory = DatabricksDirectory(client, ttl=60)
    assert not directory.is_member("dave@example.com", "finance-approvers")
    lookups = directory.lookups
    fake.add_member(people["deep"], people["dave"])
    # cached: the change is not seen yet, and nothing is read again
    assert not directory.is_member("dave@example.com", "finance-approvers")
    assert directory.lookups == lookups
    clock.advance(61)
    assert directory.is_member("dave@example.com", "finance-approvers")
    assert directory.lookups > lookups
    # a removal shows after the TTL too, or at once after refresh()
    fake.remove_member(people["deep"], people["dave"])
    assert directory.is_member("dave@example.com", "finance-approvers")
    directory.refresh()
    assert not directory.is_member("dave@example.com", "finance-approvers")


def test_databricks_directory_without_a_cache_reads_every_time(client, people):
    directory = DatabricksDirectory(client, ttl=0)
    directory.is_member("ann@example.com", "finance-approvers")
    first = directory.lookups
    directory.is_member("ann@example.com", "finance-approvers")
    assert directory.lookups == 2 * first
    with pytest.raises(ConfigError):
        DatabricksDirectory(client, ttl=-1)


def test_async_databricks_directory(async_client_factory, people, fake, clock):
    async def main():
        async with async_client_factory() as client:
            directory = AsyncDatabricksDirectory(client, ttl=30)
            assert isinstance(directory, AsyncIdentityDirectory)
            assert await directory.owners_for("email", "ann@example.com") == (
                Owner.user("ann@example.com"),
            )
            assert await directory.owners_for("group", "finance-leads") == (
                Owner.group("finance-leads"),
            )
            assert await directory.is_member("carol@example.com", "finance-approvers")
            assert not await directory.is_member("dave@example.com", "finance-approvers")
            fake.add_member(people["approvers"], people["dave"])
            assert not await directory.is_member("dave@example.com", "finance-approvers")
            clock.advance(31)
            assert await directory.is_member("dave@example.com", "finance-approvers")

    asyncio.run(main())


# -- Integration: the fallback chain ------------------------------------------------------------------


class Raising:
    def resolve(self, group: Group) -> Sequence[Owner]:
        raise NotFoundError(404, None, "the catalog has no such table")


class Blocking:
    """Blocks until released: a resolver that hangs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()

    def resolve(self, group: Group) -> Sequence[Owner]:
        self.started.set()
        self.release.wait(JOIN)
        self.finished.set()
        return [Owner.user("late@example.com")]


class Garbage:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    def resolve(self, group: Group) -> Sequence[Owner]:
        return self.answer  # type: ignore[return-value]


FALLBACK = ["group:data-platform", "ann@example.com"]


def test_resource_owners_come_first():
    integration = Integration(
        make_config(integration_owners=FALLBACK),
        owners=StaticOwnerResolver({"101": ["user:owner@example.com"]}),
        directory=StaticDirectory(),
    )
    approvers = integration.approvers_for(SALES)
    assert approvers == Approvers((Owner.user("owner@example.com"),), ApproverSource.RESOURCE_OWNER)
    assert approvers.problems == ()


def test_integration_owners_when_no_resource_owner_is_found():
    integration = Integration(
        make_config(integration_owners=FALLBACK),
        owners=StaticOwnerResolver({}),
        directory=StaticDirectory(),
    )
    approvers = integration.approvers_for(SALES)
    assert approvers.source is ApproverSource.INTEGRATION_OWNER
    assert [str(o) for o in approvers.owners] == ["group:data-platform", "user:ann@example.com"]
    assert approvers.problems == ()


def test_a_raising_resolver_falls_back_and_reports_it():
    integration = Integration(make_config(integration_owners=["ann@example.com"]), owners=Raising())
    approvers = integration.approvers_for(SALES)
    assert approvers.source is ApproverSource.INTEGRATION_OWNER
    assert approvers.owners == (Owner.user("ann@example.com"),)
    assert len(approvers.problems) == 1
    assert "the owner resolver failed: NotFoundError" in approvers.problems[0]
    assert "no such table" in approvers.problems[0]


def test_a_resolver_that_times_out_falls_back_and_reports_it():
    resolver = Blocking()
    integration = Integration(
        make_config(integration_owners=["ann@example.com"]), owners=resolver, timeout=TINY
    )
    approvers = integration.approvers_for(SALES)
    assert approvers.source is ApproverSource.INTEGRATION_OWNER
    assert approvers.owners == (Owner.user("ann@example.com"),)
    assert "did not answer within 0.05 s" in approvers.problems[0]
    assert resolver.started.is_set()
    resolver.release.set()
    assert resolver.finished.wait(JOIN)  # the abandoned thread ends; its answer is dropped


def test_stuck_resolvers_are_not_piled_up():
    resolver = Blocking()
    integration = Integration(
        make_config(integration_owners=["ann@example.com"]), owners=resolver, timeout=TINY
    )
    integration._workers = Workers(limit=1)
    first = integration.approvers_for(SALES)
    assert "did not answer" in first.problems[0]
    second = integration.approvers_for(SALES)
    assert "still busy" in second.problems[0]
    assert second.source is ApproverSource.INTEGRATION_OWNER
    resolver.release.set()
    assert resolver.finished.wait(JOIN)


def test_a_resolver_raising_timeout_error_itself_is_a_failure_not_our_timeout():
    class TimesOut:
        def resolve(self, group: Group) -> Sequence[Owner]:
            raise TimeoutError("catalog read timed out")

    integration = Integration(make_config(), owners=TimesOut())
    approvers = integration.approvers_for(SALES)
    assert approvers.source is ApproverSource.NONE
    assert "failed: TimeoutError: catalog read timed out" in approvers.problems[0]


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (None, "returned null"),
        ("user:a@b.c", "returned a string"),
        ([42], "a number among the owners"),
        (["not an owner"], "malformed owner"),
    ],
)
def test_a_resolver_answering_garbage_falls_back(answer, fragment):
    integration = Integration(
        make_config(integration_owners=["ann@example.com"]), owners=Garbage(answer)
    )
    approvers = integration.approvers_for(SALES)
    assert approvers.source is ApproverSource.INTEGRATION_OWNER
    assert fragment in approvers.problems[0]


def test_a_resolver_may_answer_owner_strings_and_generators():
    integration = Integration(
        make_config(), owners=Garbage(o for o in ["user:a@b.c", Owner.user("A@B.C")])
    )
    approvers = integration.approvers_for(SALES)
    assert approvers.owners == (Owner.user("a@b.c"),)


def test_nothing_configured_means_nobody_can_approve():
    integration = Integration(make_config())
    approvers = integration.approvers_for(SALES)
    assert approvers == Approvers((), ApproverSource.NONE)
    assert not approvers.can_approve
    assert not integration.is_approver("ann@example.com", approvers)
    assert not integration.is_approver("", approvers)


def test_a_configured_resource_owner_without_a_resolver_is_reported():
    config = make_config(resource_owner={"tag_key": "owner", "idp_attribute": "email"},
                         integration_owners=["ann@example.com"])  # fmt: skip
    approvers = Integration(config).approvers_for(SALES)
    assert approvers.source is ApproverSource.INTEGRATION_OWNER
    assert "no owner resolver" in approvers.problems[0]


def test_the_default_tag_resolver_from_config_tags_and_directory():
    config = make_config(resource_owner={"tag_key": "owner", "idp_attribute": "email"},
                         integration_owners=["ann@example.com"])  # fmt: skip
    integration = Integration(
        config,
        tags=MappingTagSource({"team-sales-readers": {"owner": "owner@example.com"}}),
        directory=StaticDirectory(),
    )
    assert isinstance(integration.owners, TagOwnerResolver)
    approvers = integration.approvers_for(SALES)
    assert approvers.source is ApproverSource.RESOURCE_OWNER
    assert approvers.owners == (Owner.user("owner@example.com"),)
    assert integration.approvers_for(Group(id="2", display_name="x")).source is (
        ApproverSource.INTEGRATION_OWNER
    )


def test_a_group_id_is_read_through_the_client(client, fake):
    group_id = fake.add_group("team-sales-readers")
    integration = Integration(
        make_config(),
        client=client,
        owners=StaticOwnerResolver({"team-sales-readers": ["user:owner@example.com"]}),
    )
    assert isinstance(integration.directory, DatabricksDirectory)
    assert integration.approvers_for(group_id).source is ApproverSource.RESOURCE_OWNER
    # an unknown id falls back, reporting the failure
    approvers = integration.approvers_for("999999")
    assert approvers.source is ApproverSource.NONE
    assert "NotFoundError" in approvers.problems[0]


def test_a_group_id_without_a_client_is_matched_by_id():
    integration = Integration(
        make_config(), owners=StaticOwnerResolver({"101": ["user:owner@example.com"]})
    )
    assert integration.approvers_for("101").source is ApproverSource.RESOURCE_OWNER
    with pytest.raises(ConfigError):
        integration.approvers_for("  ")
    with pytest.raises(ConfigError):
        integration.approvers_for(101)  # type: ignore[arg-type]


# -- Integration: who is an approver -------------------------------------------------------------------


def test_user_owners_match_case_insensitively():
    integration = Integration(make_config(integration_owners=["Ann@Example.com"]))
    approvers = integration.approvers_for(SALES)
    assert integration.is_approver("ann@EXAMPLE.com", approvers)
    assert integration.is_approver(" ann@example.com ", approvers)
    assert not integration.is_approver("bob@example.com", approvers)
    assert not integration.is_approver("ann@example.com\x00", approvers)


def test_group_owners_match_through_the_account_directory(client, people):
    integration = Integration(
        make_config(integration_owners=["group:finance-approvers"]), client=client
    )
    approvers = integration.approvers_for(SALES)
    assert integration.is_approver("carol@example.com", approvers)  # nested, through a cycle
    assert integration.is_approver("ann@example.com", approvers)
    assert not integration.is_approver("dave@example.com", approvers)


def test_group_owners_need_a_directory():
    with pytest.raises(ConfigError) as info:
        Integration(make_config(integration_owners=["group:owners"]))
    assert info.value.fields == ("directory",)
    integration = Integration(make_config(), owners=StaticOwnerResolver({"101": ["group:o"]}))
    approvers = integration.approvers_for(SALES)
    assert not integration.is_approver("", approvers)
    with pytest.raises(ConfigError):
        integration.is_approver("ann@example.com", approvers)


def test_a_directory_must_answer_exactly_true():
    class Truthy:
        def owners_for(self, attribute: str, value: str) -> Sequence[Owner]:
            return []

        def is_member(self, user: str, idp_group: str) -> bool:
            return "yes"  # type: ignore[return-value]

    integration = Integration(make_config(integration_owners=["group:o"]), directory=Truthy())
    assert not integration.is_approver("ann@example.com", integration.approvers_for(SALES))


def test_a_slow_directory_times_out():
    release = threading.Event()

    class Slow:
        def owners_for(self, attribute: str, value: str) -> Sequence[Owner]:
            return []

        def is_member(self, user: str, idp_group: str) -> bool:
            release.wait(JOIN)
            return True

    integration = Integration(
        make_config(integration_owners=["group:o"]), directory=Slow(), timeout=TINY
    )
    with pytest.raises(RequestTimeoutError, match="did not answer within"):
        integration.is_approver("ann@example.com", integration.approvers_for(SALES))
    release.set()


def test_a_failing_directory_raises_and_never_grants():
    class Broken:
        def owners_for(self, attribute: str, value: str) -> Sequence[Owner]:
            return []

        def is_member(self, user: str, idp_group: str) -> bool:
            raise NotFoundError(404, None, "directory gone")

    integration = Integration(make_config(integration_owners=["group:o"]), directory=Broken())
    with pytest.raises(NotFoundError):
        integration.is_approver("ann@example.com", integration.approvers_for(SALES))


def test_integration_arguments_are_checked():
    with pytest.raises(ConfigError):
        Integration({"name": "x"})  # type: ignore[arg-type]
    for timeout in (0, -1, float("inf"), True, "1"):
        with pytest.raises(ConfigError) as info:
            Integration(make_config(), timeout=timeout)  # type: ignore[arg-type]
        assert info.value.fields == ("timeout",)
    with pytest.raises(ConfigError):
        Integration(make_config()).is_approver("a@b.c", ("user:a@b.c",))  # type: ignore[arg-type]


def test_unbounded_resolvers_run_in_the_calling_thread():
    seen = []

    class Here:
        def resolve(self, group: Group) -> Sequence[Owner]:
            seen.append(threading.current_thread())
            return [Owner.user("a@b.c")]

    integration = Integration(make_config(), owners=Here(), timeout=None)
    assert integration.timeout is None
    assert integration.approvers_for(SALES).source is ApproverSource.RESOURCE_OWNER
    assert seen == [threading.current_thread()]


def test_custom_access_details_and_config_are_exposed():
    config = make_config(custom_access_details="Ask in #data-access.")
    integration = Integration(config)
    assert integration.custom_access_details == "Ask in #data-access."
    assert integration.config is config
    assert "sales" in repr(integration)


# -- AsyncIntegration -------------------------------------------------------------------------------


def test_async_and_sync_integrations_have_the_same_public_methods():
    def public(cls):
        return {
            name: inspect.signature(member)
            for name, member in inspect.getmembers(cls)
            if not name.startswith("_") and callable(member)
        }

    sync, asynchronous = public(Integration), public(AsyncIntegration)
    assert sync.keys() == asynchronous.keys()
    for name in sync:
        assert list(sync[name].parameters) == list(asynchronous[name].parameters)
        assert inspect.iscoroutinefunction(getattr(AsyncIntegration, name))


class AsyncStatic:
    def __init__(self, owners: Sequence[Owner]) -> None:
        self.owners = owners

    async def resolve(self, group: Group) -> Sequence[Owner]:
        return self.owners


def test_async_integration_with_async_and_sync_resolvers():
    async def main():
        config = make_config(integration_owners=["ann@example.com"])
        resolver = AsyncStatic([Owner.user("owner@example.com")])
        assert isinstance(resolver, AsyncOwnerResolver)
        integration = AsyncIntegration(config, owners=resolver)
        approvers = await integration.approvers_for(SALES)
        assert approvers.source is ApproverSource.RESOURCE_OWNER
        assert await integration.is_approver("OWNER@example.com", approvers)

        sync = AsyncIntegration(config, owners=StaticOwnerResolver({"101": ["group:o"]}))
        approvers = await sync.approvers_for(SALES)
        assert approvers.owners == (Owner.group("o"),)

        failing = AsyncIntegration(config, owners=Raising())
        approvers = await failing.approvers_for(SALES)
        assert approvers.source is ApproverSource.INTEGRATION_OWNER
        assert "NotFoundError" in approvers.problems[0]

        nothing = AsyncIntegration(make_config())
        approvers = await nothing.approvers_for("101")
        assert approvers.source is ApproverSource.NONE
        assert not await nothing.is_approver("ann@example.com", approvers)

    asyncio.run(main())


def test_async_integration_bounds_async_and_sync_resolvers():
    blocking = Blocking()

    class Hanging:
        def __init__(self) -> None:
            self.cancelled = False

        async def resolve(self, group: Group) -> Sequence[Owner]:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
            return []

    hanging = Hanging()

    async def main():
        config = make_config(integration_owners=["ann@example.com"])
        for resolver in (hanging, blocking):
            integration = AsyncIntegration(config, owners=resolver, timeout=TINY)
            approvers = await integration.approvers_for(SALES)
            assert approvers.source is ApproverSource.INTEGRATION_OWNER
            assert "did not answer within" in approvers.problems[0]

    asyncio.run(main())
    assert hanging.cancelled
    blocking.release.set()
    assert blocking.finished.wait(JOIN)


def test_async_integration_uses_the_account_directory(async_client_factory, people):
    async def main():
        async with async_client_factory() as client:
            config = make_config(
                resource_owner={"tag_key": "owner", "idp_attribute": "group"},
                integration_owners=["ann@example.com"],
            )
            integration = AsyncIntegration(
                config,
                client=client,
                tags=MappingTagSource({"101": {"owner": "finance-approvers"}}),
            )
            assert isinstance(integration.directory, AsyncDatabricksDirectory)
            assert isinstance(integration.owners, AsyncTagOwnerResolver)
            approvers = await integration.approvers_for(SALES)
            assert approvers.source is ApproverSource.RESOURCE_OWNER
            assert approvers.owners == (Owner.group("Finance-Approvers"),)
            assert await integration.is_approver("carol@example.com", approvers)
            assert not await integration.is_approver("dave@example.com", approvers)

    asyncio.run(main())


def test_async_integration_with_a_sync_directory_and_a_slow_one():
    release = threading.Event()

    class Slow:
        def owners_for(self, attribute: str, value: str) -> Sequence[Owner]:
            return []

        def is_member(self, user: str, idp_group: str) -> bool:
            release.wait(JOIN)
            return True

    async def main():
        config = make_config(integration_owners=["group:approvers"])
        directory = StaticDirectory(groups={"approvers": ["ann@example.com"]})
        integration = AsyncIntegration(config, directory=directory)
        approvers = await integration.approvers_for(SALES)
        assert await integration.is_approver("ann@example.com", approvers)
        assert not await integration.is_approver("bob@example.com", approvers)

        slow = AsyncIntegration(config, directory=Slow(), timeout=TINY)
        with pytest.raises(RequestTimeoutError):
            await slow.is_approver("ann@example.com", approvers)

    asyncio.run(main())
    release.set()


def test_async_integration_sync_tag_resolver_over_a_sync_directory():
    config = make_config(resource_owner={"tag_key": "owner", "idp_attribute": "email"},
                         integration_owners=["ann@example.com"])  # fmt: skip
    integration = AsyncIntegration(
        config, tags=MappingTagSource({"101": {"owner": "o@x.com"}}), directory=StaticDirectory()
    )
    assert isinstance(integration.owners, TagOwnerResolver)
    approvers = asyncio.run(integration.approvers_for(SALES))
    assert approvers.owners == (Owner.user("o@x.com"),)


# -- the documentation's examples run ---------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new public names on the package, until `__init__` exports them itself."""
    for module in (_integration, _approvers, _owners, _directories, _diagnose):
        for name in module.__all__:
            if not hasattr(da, name):
                monkeypatch.setattr(da, name, getattr(module, name), raising=False)


def test_approvals_doc_examples_run(exported: None):
    text = (DOCS / "approvals.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, "docs/approvals.md", "exec"), namespace)  # noqa: S102 - the docs' own code
