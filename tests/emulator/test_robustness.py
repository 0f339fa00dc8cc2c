"""Whatever arrives, the emulator answers with a well-formed client error, never a crash."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from databricks_access.testing import FakeAccount

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_OPS = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["add", "remove", "replace", "Add", "REMOVE", "move", ""]) | _JSON,
        "path": st.sampled_from(
            [
                "members",
                "displayName",
                "externalId",
                "active",
                'members[value eq "1"]',
                "members[",
                "userName",
                "urn:x:members",
            ]
        )
        | _JSON,
        "value": _JSON | st.just([{"value": "1"}]),
    },
)
_PATCH = st.fixed_dictionaries(
    {"Operations": st.lists(_OPS, max_size=3) | _JSON},
    optional={"schemas": st.just(["urn:ietf:params:scim:api:messages:2.0:PatchOp"]) | _JSON},
)


def account() -> tuple[FakeAccount, dict[str, str]]:
    fake = FakeAccount(require_auth=False)
    user = fake.add_user("alice@example.com")
    ids = {
        "Users": user,
        "Groups": fake.add_group("g", members=[user]),
        "ServicePrincipals": fake.add_service_principal("sp").id,
    }
    return fake, ids


@given(kind=st.sampled_from(["Users", "Groups", "ServicePrincipals"]), body=_PATCH | _JSON)
def test_fuzzed_patch_bodies(kind, body):
    fake, ids = account()
    reply = fake.dispatch(
        "PATCH", f"{fake.scim_path}/{kind}/{ids[kind]}", {}, json.dumps(body).encode()
    )
    assert reply.status in (200, 204, 400, 404, 409)
    if reply.status >= 400:
        assert reply.json()["status"] == str(reply.status)


@given(
    kind=st.sampled_from(["Users", "Groups", "ServicePrincipals"]),
    method=st.sampled_from(["POST", "PUT"]),
    body=_JSON,
)
def test_fuzzed_create_and_replace_bodies(kind, method, body):
    fake, ids = account()
    path = f"{fake.scim_path}/{kind}" + (f"/{ids[kind]}" if method == "PUT" else "")
    reply = fake.dispatch(method, path, {}, json.dumps(body).encode())
    assert reply.status in (200, 201, 400, 409)


@given(st.binary(max_size=64))
def test_fuzzed_raw_bodies(body):
    fake, ids = account()
    workspace = fake.add_workspace("w")
    base = f"/api/2.0/accounts/{fake.account_id}"
    for method, path in (
        ("PATCH", f"{fake.scim_path}/Groups/{ids['Groups']}"),
        ("POST", f"{fake.scim_path}/Users"),
        ("PUT", f"{base}/workspaces/{workspace}/permissionassignments/principals/{ids['Users']}"),
        ("PUT", f"/api/2.0/preview{base}/access-control/rule-sets"),
        ("POST", f"/oidc/accounts/{fake.account_id}/v1/token"),
    ):
        assert fake.dispatch(method, path, {"authorization": "Basic x"}, body).status < 500


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    segments=st.lists(
        st.sampled_from(
            [
                "api",
                "2.0",
                "2.1",
                "accounts",
                "ACCOUNT",
                "scim",
                "v2",
                "Users",
                "Groups",
                "workspaces",
                "1",
                "..",
                "%2F",
                "",
                "preview",
            ]
        )
        | st.text(max_size=5),
        max_size=9,
    ),
    query=st.text(max_size=20),
)
def test_fuzzed_targets(method, segments, query):
    fake, _ = account()
    path = "/" + "/".join(
        quote(s, safe="%") if s != "ACCOUNT" else fake.account_id for s in segments
    )
    reply = fake.dispatch(method, f"{path}?{query}", {}, b"")
    assert reply.status < 500
