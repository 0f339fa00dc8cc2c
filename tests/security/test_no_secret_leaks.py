"""No client secret and no token ever shows: not in a log line (at DEBUG, ours, httpx's,
httpcore's, the root logger's), a repr or str or HTML repr, an exception message or
traceback, an event, a file the library writes (the SQLite file and its WAL, the
JSON-lines audit file), or the command line's output.

The flow is the demo's (grants, a standing member, overlapping leases, expiry, the audit
trail), driven through the public API with a recognisable secret, with faults injected,
a rotation, errors provoked on purpose, discovery and diagnosis; once in-process and
once over real HTTP on 127.0.0.1, so httpcore's own DEBUG logging runs too. The secrets
looked for: every client secret used (right and wrong ones), their HTTP Basic form, and
every token the emulator issued (read from its token registry).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import subprocess
import sys
import traceback
from urllib.parse import quote

import pytest

import databricks_access as da
from databricks_access import SqliteLeaseStore
from databricks_access._cli import demo as _demo
from databricks_access.testing import FakeAccount, Fault, FaultPlan
from databricks_access.testing._oauth import TokenRegistry

CANARY = "dose" + "c4a7a11e" * 5  # a recognisable client secret
WRONG = "dose" + "0bad5ec2" * 5  # a wrong one, tried first: it must not leak either
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
LOGGERS = ("", "databricks_access", "httpx", "httpcore")
# What a secret or a token looks like, for output whose values the test cannot know.
LOOKS_SECRET = re.compile(
    r"dose[0-9a-f]{40}|fake-(static-)?[A-Za-z0-9_-]{32}|Bearer [A-Za-z0-9._~+/=-]{8,}"
    r"|Basic [A-Za-z0-9+/=]{8,}|client_secret=(?!\*\*\*)[^&\s'\"]+"
)


class Capture(logging.Handler):
    """Every record of the watched loggers, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))


@pytest.fixture
def capture():
    handler = Capture()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def issued(monkeypatch):
    """Every token the emulator's token registry issues, even those revoked later."""
    tokens: list[str] = []
    original = TokenRegistry.issue

    def issue(self, client_id, *, now, ttl, **where):
        token = original(self, client_id, now=now, ttl=ttl, **where)
        tokens.append(token)
        return token

    monkeypatch.setattr(TokenRegistry, "issue", issue)
    return tokens


def forbidden(tokens: list[str], secrets: list[str], client_id: str) -> set[str]:
    """The secrets, their Basic-auth and URL forms, and every token issued."""
    found = set()
    for secret in secrets:
        found |= {
            secret,
            quote(secret),
            base64.b64encode(f"{client_id}:{secret}".encode()).decode(),
        }
    assert tokens, "the emulator issued no token: the test would prove nothing"
    return found | set(tokens)


def everything(obj: object) -> list[str]:
    texts = [repr(obj), str(obj)]
    html = getattr(obj, "_repr_html_", None)
    if callable(html):
        texts.append(html())
    if isinstance(obj, BaseException):
        texts.append("".join(traceback.format_exception(type(obj), obj, obj.__traceback__)))
    return texts


def faults(seed: int) -> FaultPlan:
    return FaultPlan(
        [
            Fault.too_many_requests(retry_after=1, probability=0.08),
            Fault.server_error(500, probability=0.06),
            Fault.server_error(503, probability=0.06),
            Fault.request_limit_exceeded(probability=0.04),
            Fault.drop(applied=True, probability=0.05),
            Fault.timeout(hold=0.2, probability=0.04),
        ],
        seed=seed,
    )


def run_flow(fake, config, tmp_path, *, transport, clock):
    """The demo's steps: every object, every text the library produced, and the secrets."""
    objects: list[object] = []
    texts: list[str] = []
    secrets_used = [CANARY, WRONG]
    sp = fake.add_service_principal("jit-connector")
    state = fake._state
    state.add_secret(state.service_principal_by_client_id(sp.client_id), CANARY)
    fake.remove_secret(sp.client_id, sp.client_secret)
    alice = fake.add_user("alice@example.com", "Alice")
    bob = fake.add_user("bob@example.com", "Bob")
    carol = fake.add_user("carol@example.com", "Carol")
    readers = fake.add_group("prod-data-readers", members=[bob])
    fake.add_workspace("prod")
    secret_file = tmp_path / "secret" / "creds.json"  # written by the test, not the library
    secret_file.parent.mkdir()
    secret_file.write_text(json.dumps({"client_id": sp.client_id, "client_secret": WRONG}))
    files = tmp_path / "written"
    files.mkdir()

    def attempt(call):
        try:
            return call()
        except da.DatabricksAccessError as exc:
            objects.append(exc)
            return None

    secrets = da.FileSecretStore(secret_file)
    client = da.AccountClient(config, secrets=secrets, transport=transport, clock=clock)
    objects += [config, secrets, client, client.auth, secrets.get_credentials()]
    # A wrong secret first: invalid_client, read again with refresh, refused again.
    attempt(lambda: client.groups.get(readers))
    attempt(lambda: da.diagnose(client))
    secret_file.write_text(json.dumps({"client_id": sp.client_id, "client_secret": CANARY}))
    objects.append(secrets.get_credentials(refresh=True))
    sink = da.JsonLinesSink(files / "audit.jsonl")
    with client, SqliteLeaseStore(files / "leases.db") as store:
        manager = da.MembershipManager(client)
        tracker = da.LeaseTracker(manager, store=store, clock=clock, events=sink)
        objects += [sink, store, manager, tracker, da.diagnose(client)]
        group = client.groups.get(readers)
        objects.append(group)
        for who, ttl in (
            ("alice@example.com", dt.timedelta(hours=1)),
            (da.PrincipalRef("user", bob), dt.timedelta(minutes=30)),
            ("carol@example.com", dt.timedelta(hours=2)),
            ("carol@example.com", dt.timedelta(minutes=30)),
        ):
            objects.append(
                attempt(
                    lambda who=who, ttl=ttl: tracker.grant(
                        who, group, ttl=ttl, requester="r", reason="INC-1234"
                    )
                )
            )
        leases = tracker.leases()
        objects += leases
        objects.append(attempt(lambda: tracker.extend(leases[0].id, by=dt.timedelta(hours=20))))
        objects.append(
            attempt(lambda: tracker.grant(carol, "999999", ttl=3600, requester="r", reason="x"))
        )
        objects.append(
            attempt(lambda: manager.grant_many([(alice, readers), (carol, readers)], dry_run=True))
        )
        # Rotation mid-run: a new secret, the canary removed, the token revoked.
        secrets_used.append(fake.add_secret(sp.client_id))
        fake.revoke_tokens()
        for minutes in (31, 30, 60, 60, 60, 60):
            clock.advance(dt.timedelta(minutes=minutes))
            objects.append(tracker.sweep())
        objects.append(tracker.reconcile([readers]))
        objects.append(attempt(lambda: da.discover(client)))
        objects += store.find_leases()
        events = [e.event for e in store.pending_events(limit=1000)]
    objects += events
    texts += [json.dumps(e.to_json()) for e in events]
    for path in sorted(files.iterdir()):
        texts.append(path.read_bytes().decode("latin-1"))
    return objects, texts, secrets_used


@pytest.mark.parametrize("served", [False, True], ids=["in-process", "over-http"])
def test_no_secret_or_token_in_anything_the_library_produces(capture, issued, tmp_path, served):
    clock = da.ManualClock(START)
    fake = FakeAccount(clock=lambda: clock.now().timestamp())
    faults(seed=3).install(fake)
    if served:
        with fake.serve() as url:
            config = da.AccountConfig(
                host=url,
                account_id=fake.account_id,
                allow_custom_host=True,
                allow_insecure_http=True,
            )
            objects, texts, secrets = run_flow(fake, config, tmp_path, transport=None, clock=clock)
    else:
        config = da.AccountConfig(host=fake.host, account_id=fake.account_id)
        transport = fake.transport(sleep=clock.sleep)
        objects, texts, secrets = run_flow(fake, config, tmp_path, transport=transport, clock=clock)
    sp_id = next(iter(fake._state.service_principals.values())).application_id
    hidden = forbidden(issued, secrets, sp_id)
    errors = [o for o in objects if isinstance(o, BaseException)]
    assert any(isinstance(e, da.AuthenticationError) for e in errors)  # the wrong secret
    assert sum(fake.faults.values()) > 0
    assert capture.lines, "nothing was logged: the test would prove nothing"
    if served:
        assert any(line.startswith("httpcore") for line in capture.lines)
    haystack = [*capture.lines, *texts]
    for obj in objects:
        haystack += everything(obj)
    for text in haystack:
        for secret in hidden:
            assert secret not in text, f"a secret or token leaked into: {text[:300]!r}"
    print(
        f"\n[{'http' if served else 'in-process'}] searched {len(haystack)} texts "
        f"({len(capture.lines) // 2} log records, {len(objects)} objects, "
        f"{len(errors)} errors) for {len(hidden)} secret forms and {len(issued)} tokens; "
        f"faults {dict(fake.faults)}"
    )


def test_the_builtin_demo_with_faults_leaks_nothing(capture, issued, tmp_path, monkeypatch):
    accounts: list[FakeAccount] = []

    class FaultyAccount(FakeAccount):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            accounts.append(self)
            faults(seed=4).install(self)

    monkeypatch.setattr("databricks_access.testing.FakeAccount", FaultyAccount)
    lines: list[str] = []
    assert _demo.run_demo(lines.append, store_dir=tmp_path) == 0
    (fake,) = accounts
    (sp,) = fake._state.service_principals.values()
    hidden = forbidden(issued, [secret.value for secret in sp.secrets], sp.application_id)
    written = [p.read_bytes().decode("latin-1") for p in sorted(tmp_path.iterdir())]
    assert written, "the demo wrote no store file"
    assert sum(fake.faults.values()) > 0
    for text in [*lines, *capture.lines, *written]:
        assert not any(secret in text for secret in hidden), text[:300]
        assert not LOOKS_SECRET.search(text), text[:300]


@pytest.mark.parametrize("args", [["--help"], ["demo"], []])
def test_the_command_line_prints_no_secret(args):
    result = subprocess.run(
        [sys.executable, "-m", "databricks_access", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode in {0, 2}, output
    assert not LOOKS_SECRET.search(output), LOOKS_SECRET.search(output)
    if args == ["demo"]:
        assert "Zero standing privileges" in output


def test_looks_secret_recognises_what_it_must():
    fake = FakeAccount()
    sp = fake.add_service_principal("x")
    token = fake.issue_token(sp.client_id)
    basic = base64.b64encode(f"{sp.client_id}:{sp.client_secret}".encode()).decode()
    for text in (sp.client_secret, token, f"Bearer {token}", f"Basic {basic}", "client_secret=abc"):
        assert LOOKS_SECRET.search(text), text
    assert not LOOKS_SECRET.search("client_secret=***")
    assert not LOOKS_SECRET.search(repr(sp))


def test_logging_sees_the_library_logger(capture):
    # The library's own logger has a NullHandler and no level: ours receives its records.
    logging.getLogger("databricks_access").debug("probe %s", "x")
    assert "databricks_access DEBUG probe x" in capture.lines
