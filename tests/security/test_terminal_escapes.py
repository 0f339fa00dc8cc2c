"""Every human-readable line the command line prints is escaped for a terminal, by one
function (`terminal_safe`), whatever a name holds: ESC and OSC sequences, BEL, C1
controls, bidirectional controls, line separators, lone surrogates.

The class, not the instance: each hostile character is put in a group's display name
and a principal's display name, and every command that shows them (grant, extend,
revoke, request, approve, leases, requests, run's event lines, errors on stderr) runs
end to end against the emulator. Nothing unsafe may reach stdout or stderr, the name
must show in its escaped form, and `--json` output must still parse to the raw name.
"""

from __future__ import annotations

import json
import logging

import pytest

import databricks_access as da
from databricks_access._cli import app as _cli
from databricks_access._stores.rows import storable
from databricks_access._util.terminal import UNSAFE, terminal_safe
from databricks_access.testing import FakeAccount

HOSTILE = {
    "esc-csi": "\x1b[2J\x1b[31m",
    "osc-52-clipboard": "\x1b]52;c;cGF5bG9hZA==\x07",
    "osc-title": "\x1b]0;pwned\x1b\\",
    "bel": "\x07",
    "cr": "\rfake",
    "lf": "\nerror: fake",
    "tab-vt-ff": "\t\x0b\x0c",
    "nul-del": "\x00\x7f",
    "c1-csi": "\x9b2J",
    "c1-osc": "\x9d0;x\x9c",
    "c1-nel": "\x85",
    "c1-range": "".join(map(chr, range(0x80, 0xA0))),
    "bidi-rlo": "\u202e",
    "bidi-embeddings": "\u202a\u202b\u202c\u202d",
    "bidi-isolates": "\u2066\u2067\u2068\u2069",
    "bidi-marks": "\u200e\u200f\u061c",
    "line-separators": "\u2028\u2029",
    "lone-high-surrogate": "\ud800",
    "lone-low-surrogate": "\udfff",
}


def assert_clean(text: str) -> None:
    lines = text.split("\n")
    for line in lines:
        found = UNSAFE.search(line)
        assert found is None, (repr(found.group()), line[:200])


@pytest.mark.parametrize("char", sorted(HOSTILE))
def test_terminal_safe_escapes_every_unsafe_character(char):
    text = f"ops{HOSTILE[char]}team"
    shown = terminal_safe(text)
    assert UNSAFE.search(shown) is None
    # The escapes are JSON's own: escaped JSON output reads back to the raw text.
    assert json.loads(terminal_safe(json.dumps(text, ensure_ascii=False))) == text
    assert "\n" not in shown


def test_terminal_safe_keeps_newlines_only_when_asked():
    assert terminal_safe("a\nb", keep_newlines=True) == "a\nb"
    assert terminal_safe("a\nb") == "a\\u000ab"
    assert terminal_safe("plain ünïcödé ✓") == "plain ünïcödé ✓"


@pytest.fixture
def hostile_cli(tmp_path, capsys, request):
    name = f"team{HOSTILE[request.param]}x"
    fake = FakeAccount()
    sp = fake.add_service_principal("connector")
    alice = fake.add_user("alice@example.com", f"Alice{HOSTILE[request.param]}")
    fake.add_user("bob@example.com", "Bob")
    group = fake.add_group(name)
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
                    "integration_owners": ["bob@example.com"],
                    "secret_store": "env",
                    "lease_store": f"sqlite:///{tmp_path / 'leases.db'}",
                }
            )
        )
        environ = {
            "DATABRICKS_CLIENT_ID": sp.client_id,
            "DATABRICKS_CLIENT_SECRET": sp.client_secret,
            "USER": "tester",
        }

        def run(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = _cli.main([*args, "--config", str(config)], environ=environ)
            captured = capsys.readouterr()
            return code, captured.out, captured.err

        yield run, fake, group, alice, name


@pytest.mark.parametrize("hostile_cli", sorted(HOSTILE), indirect=True)
def test_every_command_escapes_hostile_names(hostile_cli):
    run, fake, group, alice, name = hostile_cli
    outputs: list[str] = []

    def ok(*args: str) -> str:
        code, out, err = run(*args)
        outputs.extend((out, err))
        assert code == 0, err
        return out

    granted = ok("grant", "alice@example.com", group, "--ttl", "1h", "--reason", "r")
    assert alice in fake.group_members(group)
    first = granted.splitlines()[0]
    assert first.startswith("granted ") and terminal_safe(name) in first
    lease_id = first.split()[1].rstrip(":")
    stored = str(storable(name))  # as the SQLite store holds it (no lone surrogate)
    extended = ok("extend", lease_id, "--by", "30m")
    assert terminal_safe(stored) in extended.splitlines()[0]
    ok("leases")
    (record,) = json.loads(ok("leases", "--json"))
    assert record["group_name"] == stored  # JSON keeps the raw name, escaped as JSON
    revoked = ok("revoke", lease_id)
    assert terminal_safe(stored) in revoked.splitlines()[0]
    assert alice not in fake.group_members(group)

    requested = ok("request", "alice@example.com", group, "--ttl", "1h", "--reason", "r2")
    assert terminal_safe(name) in requested.splitlines()[0]
    ok("requests")
    (pending,) = json.loads(ok("requests", "--state", "pending", "--json"))
    approved = ok("approve", pending["id"], "--as", "bob@example.com")
    assert len(approved.splitlines()) == 2, approved
    assert alice in fake.group_members(group)

    code, out, err = run(
        "grant", "alice@example.com", f"nope{name}", "--ttl", "1h", "--reason", "r"
    )
    outputs.extend((out, err))
    assert code in {1, 2}, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for text in outputs:
        assert_clean(text)


@pytest.mark.parametrize("char", sorted(HOSTILE))
def test_log_lines_on_the_terminal_are_escaped(char, capsys):
    logger = logging.getLogger("databricks_access")
    with _cli._logging(debug=True):
        logger.warning("group %s", f"ops{HOSTILE[char]}")
    assert_clean(capsys.readouterr().err)


ALLOWED_IN_TEXT = {"\n", "\r", "\t"}


# Every class but the ones made only of newlines and tabs, which multi-line text allows.
UNSAFE_IN_TEXT = sorted(
    name
    for name, text in HOSTILE.items()
    if UNSAFE.search("".join(c for c in text if c not in ALLOWED_IN_TEXT))
)


@pytest.mark.parametrize("char", UNSAFE_IN_TEXT)
def test_access_details_refuse_every_unsafe_character(char):
    hostile = "".join(c for c in HOSTILE[char] if c not in ALLOWED_IN_TEXT)
    with pytest.raises(da.ConfigError) as info:
        da.IntegrationConfig(
            name="x",
            accounts_url="https://accounts.cloud.databricks.com",
            account_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            custom_access_details=f"See the wiki{hostile}, then ask.",
        )
    assert info.value.fields == ("custom_access_details",)


def test_access_details_keep_newlines_and_tabs():
    config = da.IntegrationConfig(
        name="x",
        accounts_url="https://accounts.cloud.databricks.com",
        account_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        custom_access_details="Line one\r\n\tline two\nline three",
    )
    assert config.custom_access_details == "Line one\r\n\tline two\nline three"
