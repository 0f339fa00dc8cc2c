"""`diagnose(client)`: is this set-up able to work, and if not, what to fix.

Each check answers in plain words, with a fix when it fails:

1. `config`: the accounts host, its cloud and the account ID.
2. `secret`: the client credentials can be read from the secret store.
3. `token`: the token endpoint gives an access token (one fresh token request).
4. `scim`: the SCIM API answers (`GET Users?count=1`).
5. `account_admin`: the service principal holds the account admin role, directly (the
   `roles` of its own record, read by application ID) or through a group that holds it;
   nothing is written.
6. `group_manager`: it may change a group's members (as account admin, or as a
   manager of a sample group, read from the group's rule set).
7. `workspace:<id>` (opt-in, `workspaces=`): the service principal may use the workspace
   (assigned to it), read through the workspace's own token endpoint.

The checks are one I/O-free plan that the sync and async drivers run. No secret, token or
credential ever appears in a verdict: the messages come from errors that never carry
them, and the report is scrubbed of the secret read, as a last guard.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from databricks_access._account.access_api import GROUP_MANAGER_ROLE
from databricks_access._account.auth import OAuthM2M
from databricks_access._account.config import AccountConfig
from databricks_access._account.models import ComplexValue, Group, RuleSet, ServicePrincipal
from databricks_access._errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DatabricksAccessError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    SecretStoreError,
    ServerError,
    TransportError,
)
from databricks_access._hosts import Cloud, check_account_id, check_host
from databricks_access._sansio import Effect, run_async, run_sync
from databricks_access._secrets.base import ClientCredentials, SecretStore
from databricks_access._util.html import render_html, render_table

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient
    from databricks_access._diagnose.probe_report import ProbeReport
    from databricks_access._diagnose.workspaces import WorkspacesArg

__all__ = ["Check", "Diagnosis", "adiagnose", "diagnose"]

T = TypeVar("T")

CONFIG = "config"
SECRET = "secret"  # noqa: S105 - a check's name
TOKEN = "token"  # noqa: S105 - a check's name
SCIM = "scim"
ACCOUNT_ADMIN = "account_admin"
GROUP_MANAGER = "group_manager"

_ADMIN_ROLE = "account_admin"
_ADMIN_FIX = (
    "In the account console, open User management > Service principals > {name} > Roles "
    "and turn on Account admin (or make it a manager of each group it grants access to)."
)
_NETWORK_FIX = (
    "Check the accounts URL, DNS, proxy settings and that this machine may open https "
    "connections to {host}."
)
_BUSY_FIX = "Retry in a few minutes; if it persists, check https://status.databricks.com."
_MAX_DETAIL = 300
# Groups visited looking for an inherited account admin role.
_MAX_GROUPS = 50


@attrs.frozen
class Check:
    """The outcome of one diagnostic check.

    Attributes:
        name: The check: `config`, `secret`, `token`, `scim`, `account_admin` or
            `group_manager`.
        ok: True when it passed, False when it failed, None when it was skipped or its
            answer is unknown.
        verdict: What was found, in plain words.
        fix: What to do about a failure (sometimes a hint for a skipped check).

    Example:
        >>> Check("token", False, "the client id or secret was refused", "Check them.").status
        'FAIL'
    """

    _repr_html_ = render_html

    name: str
    ok: bool | None
    verdict: str
    fix: str | None = None

    @property
    def status(self) -> str:
        """`ok`, `FAIL` or `skip`, as the report shows it."""
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]

    def __str__(self) -> str:
        text = f"[{self.status:>4}] {self.name}: {self.verdict}"
        if self.fix:
            text += f"\n       fix: {self.fix}"
        return text


@attrs.frozen
class Diagnosis:
    """Every check of `diagnose`, in order.

    `str(diagnosis)` is a readable report; `diagnosis[name]` is one check.

    Example:
        >>> report = Diagnosis((Check("config", True, "host ok"), Check("token", None, "skipped")))
        >>> report.ok, report["token"].status
        (True, 'skip')
        >>> print(report)
        databricks_access diagnosis: no problem found
        [  ok] config: host ok
        [skip] token: skipped
    """

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Whether no check failed (skipped and unknown checks do not count as failures)."""
        return all(check.ok is not False for check in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if check.ok is False)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def _head(self) -> str:
        failed = len(self.failed)
        if failed:
            return f"{failed} problem{'s' if failed > 1 else ''} found"
        return "no problem found"

    def __str__(self) -> str:
        return "\n".join([f"databricks_access diagnosis: {self._head()}", *map(str, self.checks)])

    def _repr_html_(self) -> str:
        rows = [
            {"check": c.name, "status": c.status, "verdict": c.verdict, "fix": c.fix or ""}
            for c in self.checks
        ]
        return render_table(rows, caption=f"databricks_access diagnosis: {self._head()}")


# -- the steps a plan asks its driver for ------------------------------------------------------


@attrs.frozen
class _ReadSecret(Effect[ClientCredentials]):
    """-> `ClientCredentials`: read the store now, bypassing any cache."""

    store: SecretStore


@attrs.frozen
class _ForgetToken(Effect[None]):
    """-> None: drop the cached token so that the probe makes one fresh token request."""

    auth: OAuthM2M


@attrs.frozen
class _ProbeUsers(Effect[object]):
    """-> `object | None`: `GET Users?count=1`, the first user if any."""


@attrs.frozen
class _FindServicePrincipal(Effect[ServicePrincipal | None]):
    """-> `ServicePrincipal | None`."""

    application_id: str


@attrs.frozen
class _GetServicePrincipal(Effect[ServicePrincipal]):
    """-> `ServicePrincipal`, by SCIM id."""

    sp_id: str


@attrs.frozen
class _FirstGroup(Effect[Group | None]):
    """-> `Group | None`: one group of the account, to sample its managers."""


@attrs.frozen
class _GetGroup(Effect[Group]):
    """-> `Group`."""

    group_id: str


@attrs.frozen
class _GetRuleSet(Effect[RuleSet]):
    """-> `RuleSet`: the group's managers."""

    group_id: str


_Step = (
    _ReadSecret
    | _ForgetToken
    | _ProbeUsers
    | _FindServicePrincipal
    | _GetServicePrincipal
    | _FirstGroup
    | _GetGroup
    | _GetRuleSet
)


# -- the plan ------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _passed(name: str, verdict: str, fix: str | None = None) -> Check:
    return Check(name, ok=True, verdict=verdict, fix=fix)


def _failed(name: str, verdict: str, fix: str | None = None) -> Check:
    return Check(name, ok=False, verdict=verdict, fix=fix)


def _unknown(name: str, verdict: str, fix: str | None = None) -> Check:
    return Check(name, ok=None, verdict=verdict, fix=fix)


def _config_check(config: AccountConfig) -> Check:
    _, problems = check_host(
        config.host,
        allow_custom_host=config.allow_custom_host,
        allow_insecure_http=config.allow_insecure_http,
    )
    _, id_problems = check_account_id(config.account_id)
    problems += id_problems
    if problems:
        return _failed(
            CONFIG,
            "; ".join(str(problem) for problem in problems),
            "Use the accounts URL of your cloud (e.g. https://accounts.cloud.databricks.com) "
            "and the account ID (a UUID) from the account console.",
        )
    cloud = config.cloud
    where = "a custom host (a proxy or the emulator)" if cloud is Cloud.CUSTOM else cloud.value
    verdict = f"accounts host {config.host} ({where}), account {config.account_id}"
    if config.insecure_skip_tls_verify:
        return _passed(
            CONFIG,
            verdict + "; TLS certificate verification is OFF",
            "Turn insecure_skip_tls_verify off anywhere but a test set-up.",
        )
    return _passed(CONFIG, verdict)


def _secret_store_of(auth: object) -> SecretStore | None:
    """The OAuth client's secret store (a public `secrets` attribute, when it has one)."""
    store = getattr(auth, "secrets", None)
    if store is None and isinstance(auth, OAuthM2M):
        # OAuthM2M keeps its store privately; read it without calling anything.
        store = vars(auth).get("_secrets")
    return store if isinstance(store, SecretStore) else None


def _token_failure(exc: Exception, host: str, store: SecretStore | None) -> Check:
    where = repr(store) if store is not None else "the secret store"
    if isinstance(exc, TransportError):
        return _failed(
            TOKEN,
            f"could not reach the token endpoint: {_short(exc)}",
            _NETWORK_FIX.format(host=host),
        )
    if isinstance(exc, (RateLimitedError, ServerError)):
        return _failed(TOKEN, f"the token endpoint failed: {_short(exc)}", _BUSY_FIX)
    detail = exc.detail if isinstance(exc, ApiError) else _short(exc)
    code = exc.error_code if isinstance(exc, ApiError) else None
    if "ip access list" in detail.lower():
        return _failed(
            TOKEN,
            f"the token endpoint refused this machine: {detail}",
            "Add this machine's public IP address to the account's IP access list, or run "
            "from an allowed network.",
        )
    if (code or "").lower() == "invalid_client":
        return _failed(
            TOKEN,
            "the token endpoint refused the client id and secret (invalid_client)",
            f"Check the client id and OAuth secret in {where}: the secret may be mistyped, "
            "deleted or expired (they last at most 2 years); create a new one for the "
            "service principal in the account console if needed.",
        )
    return _failed(TOKEN, f"no access token: {_short(exc)}", f"Check the credentials in {where}.")


def _skipped(name: str, why: str) -> Check:
    return _unknown(name, f"skipped: {why}")


def _plan(
    config: AccountConfig, auth: object, group: Group | str | None
) -> Generator[_Step, Any, tuple[Check, ...]]:
    checks = [_config_check(config)]
    oauth = auth if isinstance(auth, OAuthM2M) else None
    store = _secret_store_of(auth)
    client_id: str | None = None

    # -- secret
    if store is None:
        checks.append(
            _skipped(SECRET, f"the client authenticates with {type(auth).__name__}, not OAuth M2M")
        )
    else:
        try:
            credentials: ClientCredentials = yield _ReadSecret(store)
        except DatabricksAccessError as exc:
            checks.append(
                _failed(
                    SECRET,
                    f"the credentials cannot be read: {_short(exc)}",
                    f"Provide the service principal's client id and an OAuth secret where "
                    f"{store!r} reads them.",
                )
            )
        except Exception as exc:  # noqa: BLE001 - a third-party store: its message is not shown
            checks.append(
                _failed(
                    SECRET,
                    f"the secret store failed with {type(exc).__name__}",
                    f"Check {store!r} and its access rights.",
                )
            )
        else:
            client_id = credentials.client_id
            checks.append(
                _passed(SECRET, f"read client id {client_id} and a secret from {store!r}")
            )
        if client_id is None:
            why = "the credentials could not be read"
            checks.extend(
                _skipped(name, why) for name in (TOKEN, SCIM, ACCOUNT_ADMIN, GROUP_MANAGER)
            )
            return tuple(checks)

    # -- token and SCIM: one request, which fetches a fresh token first
    before = oauth.token_requests if oauth is not None else 0
    if oauth is not None:
        yield _ForgetToken(oauth)
    scim_ok = False
    try:
        yield _ProbeUsers()
    except DatabricksAccessError as exc:
        # Our probe is a GET: a POST that failed is the token request, and so is a
        # request that never left (the token fetch before it failed, or the host is
        # unreachable, which the token request meets first).
        token_stage = oauth is not None and (
            (isinstance(exc, ApiError) and exc.method == "POST")
            or (isinstance(exc, TransportError) and exc.request_not_sent)
            or isinstance(exc, SecretStoreError)
        )
        if token_stage:
            checks.append(_token_failure(exc, config.host, store))
            why = "no access token"
            checks.extend(_skipped(name, why) for name in (SCIM, ACCOUNT_ADMIN, GROUP_MANAGER))
            return tuple(checks)
        checks.append(_token_ok(oauth, before))
        checks.append(_scim_failure(exc, config.host, client_id))
        if not isinstance(exc, ApiError) or isinstance(exc, AuthenticationError):
            why = "the SCIM API cannot be used"
            checks.extend(_skipped(name, why) for name in (ACCOUNT_ADMIN, GROUP_MANAGER))
            return tuple(checks)
    else:
        scim_ok = True
        checks.append(_token_ok(oauth, before))
        checks.append(
            _passed(SCIM, f"the SCIM API answered a user list ({config.scim_base}/Users)")
        )

    # -- account admin
    admin: bool | None = None
    name = client_id or "the service principal"
    if client_id is None:
        checks.append(_skipped(ACCOUNT_ADMIN, "the client has no application id to look up"))
    else:
        try:
            sp: ServicePrincipal | None = yield _FindServicePrincipal(client_id)
        except ConfigError:
            checks.append(
                _skipped(ACCOUNT_ADMIN, f"the client id {client_id} is not an application id")
            )
        except PermissionDeniedError:
            admin = False
            checks.append(
                _failed(
                    ACCOUNT_ADMIN,
                    f"{client_id} may not read service principals: it is not an account admin",
                    _ADMIN_FIX.format(name=client_id),
                )
            )
        except DatabricksAccessError as exc:
            checks.append(_unknown(ACCOUNT_ADMIN, f"its record could not be read: {_short(exc)}"))
        else:
            admin, check = yield from _admin_check(sp, client_id)
            checks.append(check)
            if sp is not None:
                name = sp.display_name or client_id

    # -- group manager
    if admin:
        checks.append(
            _passed(GROUP_MANAGER, "as an account admin it may change every group's members")
        )
    elif client_id is None or (not scim_ok and admin is None):
        checks.append(_skipped(GROUP_MANAGER, "its identity or its rights are unknown"))
    else:
        check = yield from _manager_check(group, client_id, name)
        checks.append(check)
    return tuple(checks)


def _token_ok(oauth: OAuthM2M | None, before: int) -> Check:
    if oauth is None:
        return _skipped(TOKEN, "the client uses its own authentication; no OAuth token to request")
    sent = oauth.token_requests - before
    requests = f"{sent} token request{'s' if sent != 1 else ''}"
    return _passed(TOKEN, f"obtained an access token ({requests})")


def _scim_failure(exc: Exception, host: str, client_id: str | None) -> Check:
    if isinstance(exc, PermissionDeniedError):
        who = client_id or "the service principal"
        return _failed(
            SCIM,
            f"the SCIM API refused to list users: {_short(exc)}",
            _ADMIN_FIX.format(name=who),
        )
    if isinstance(exc, AuthenticationError):
        return _failed(
            SCIM,
            f"the SCIM API refused the access token: {_short(exc)}",
            "Check that the service principal belongs to this account and is active, and "
            "that the account ID is right.",
        )
    if isinstance(exc, NotFoundError):
        return _failed(
            SCIM,
            f"the SCIM API was not found: {_short(exc)}",
            "Check the account ID and the accounts URL (an accounts host, not a workspace URL).",
        )
    if isinstance(exc, TransportError):
        return _failed(
            SCIM,
            f"could not reach the SCIM API: {_short(exc)}",
            _NETWORK_FIX.format(host=host),
        )
    return _failed(SCIM, f"the SCIM API failed: {_short(exc)}", _BUSY_FIX)


def _is_admin_role(values: Iterable[ComplexValue]) -> bool:
    return any(value.value.strip().lower() == _ADMIN_ROLE for value in values)


def _admin_check(
    sp: ServicePrincipal | None, client_id: str
) -> Generator[_Step, Any, tuple[bool | None, Check]]:
    """Account admin directly (`roles`), or through a (nested) group holding the role."""
    if sp is None:
        return False, _failed(
            ACCOUNT_ADMIN,
            f"no service principal of this account has the application id {client_id}",
            "Use a service principal added to the account (account console > User "
            "management > Service principals), not only to a workspace.",
        )
    shown = f"{sp.display_name} ({client_id})" if sp.display_name else client_id
    if not _is_admin_role(sp.roles) and not sp.groups:
        # A list may leave roles and groups out: read the record itself.
        try:
            sp = yield _GetServicePrincipal(sp.id)
        except DatabricksAccessError as exc:
            return None, _unknown(ACCOUNT_ADMIN, f"its record could not be read: {_short(exc)}")
    if _is_admin_role(sp.roles):
        return True, _passed(ACCOUNT_ADMIN, f"{shown} holds the account admin role")
    # The role can come from a group (the console shows direct roles only).
    seen: set[str] = set()
    queue = deque(group.value for group in sp.groups)
    while queue and len(seen) < _MAX_GROUPS:
        group_id = queue.popleft()
        if group_id in seen:
            continue
        seen.add(group_id)
        try:
            group: Group = yield _GetGroup(group_id)
        except DatabricksAccessError:
            continue
        if _is_admin_role(group.roles):
            via = group.display_name or group_id
            return True, _passed(
                ACCOUNT_ADMIN, f"{shown} holds the account admin role through the group {via}"
            )
        queue.extend(parent.value for parent in group.groups)
    return False, _failed(
        ACCOUNT_ADMIN,
        f"{shown} does not hold the account admin role, directly or through its groups: "
        "it may read, but adding and removing group members will be refused unless it "
        "manages the group",
        _ADMIN_FIX.format(name=sp.display_name or client_id),
    )


def _manager_check(
    group: Group | str | None, client_id: str, name: str
) -> Generator[_Step, Any, Check]:
    try:
        sample: Group | None
        if isinstance(group, Group):
            sample = group
        elif isinstance(group, str):
            sample = yield _GetGroup(group)
        else:
            sample = yield _FirstGroup()
        if sample is None:
            return _skipped(GROUP_MANAGER, "the account has no group to check")
        rule_set: RuleSet = yield _GetRuleSet(sample.id)
    except NotFoundError as exc:
        return _unknown(GROUP_MANAGER, f"the group could not be found: {_short(exc)}")
    except PermissionDeniedError:
        return _unknown(
            GROUP_MANAGER,
            "unknown: the group's managers could not be read (permission denied)",
            _ADMIN_FIX.format(name=name),
        )
    except DatabricksAccessError as exc:
        return _unknown(GROUP_MANAGER, f"unknown: {_short(exc)}")
    mine = f"servicePrincipals/{client_id}".casefold()
    managers = {
        principal.casefold()
        for rule in rule_set.grant_rules
        if rule.role == GROUP_MANAGER_ROLE
        for principal in rule.principals
    }
    shown = sample.display_name or sample.id
    if mine in managers:
        return _passed(GROUP_MANAGER, f"it manages the group {shown}")
    return _failed(
        GROUP_MANAGER,
        f"it is not an account admin and does not manage the group {shown}: it cannot "
        "change that group's members",
        "Make it an account admin, or a manager of each group it grants access to "
        "(client.group_managers.set(group, [service_principal])).",
    )


def _scrubbed(checks: tuple[Check, ...], secret: str | None) -> Diagnosis:
    """The last guard: no verdict may contain the secret read, whatever produced it."""
    if not secret or len(secret) < 4:
        return Diagnosis(checks)

    def clean(text: str | None) -> str | None:
        return None if text is None else text.replace(secret, "***")

    return Diagnosis(
        tuple(
            attrs.evolve(check, verdict=clean(check.verdict) or "", fix=clean(check.fix))
            for check in checks
        )
    )


# -- the drivers --------------------------------------------------------------------------------


def _first(items: Iterator[T]) -> T | None:
    try:
        return next(items, None)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


async def _afirst(items: AsyncIterator[T]) -> T | None:
    try:
        return await items.__anext__()
    except StopAsyncIteration:
        return None
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()


def _answer(client: AccountClient, step: _Step) -> object:
    if isinstance(step, _ReadSecret):
        return step.store.get_credentials(refresh=True)
    if isinstance(step, _ForgetToken):
        step.auth.invalidate()
        return None
    if isinstance(step, _ProbeUsers):
        return _first(iter(client.users.list(attributes=["id"], page_size=1)))
    if isinstance(step, _FindServicePrincipal):
        return client.service_principals.find(step.application_id)
    if isinstance(step, _GetServicePrincipal):
        return client.service_principals.get(step.sp_id)
    if isinstance(step, _FirstGroup):
        return _first(iter(client.groups.list(attributes=["id", "displayName"], page_size=1)))
    if isinstance(step, _GetGroup):
        return client.groups.get(step.group_id)
    return client.group_managers.get(step.group_id)


async def _aanswer(client: AsyncAccountClient, step: _Step) -> object:
    if isinstance(step, _ReadSecret):
        # A sync store may block: never on the event loop.
        return await asyncio.to_thread(step.store.get_credentials, refresh=True)
    if isinstance(step, _ForgetToken):
        step.auth.invalidate()
        return None
    if isinstance(step, _ProbeUsers):
        return await _afirst(aiter(client.users.list(attributes=["id"], page_size=1)))
    if isinstance(step, _FindServicePrincipal):
        return await client.service_principals.find(step.application_id)
    if isinstance(step, _GetServicePrincipal):
        return await client.service_principals.get(step.sp_id)
    if isinstance(step, _FirstGroup):
        pager = client.groups.list(attributes=["id", "displayName"], page_size=1)
        return await _afirst(aiter(pager))
    if isinstance(step, _GetGroup):
        return await client.groups.get(step.group_id)
    return await client.group_managers.get(step.group_id)


def _with_probe(diagnosis: Diagnosis, report: ProbeReport | None) -> Diagnosis:
    """Add the `probe_report` check: do the library's defaults fit a probe report?"""
    if report is None:
        return diagnosis
    from databricks_access._diagnose.probe_report import probe_check  # noqa: PLC0415 - only when asked

    return Diagnosis((*diagnosis.checks, probe_check(report)))


def _checked_report(report: object) -> ProbeReport | None:
    from databricks_access._diagnose.probe_report import ProbeReport  # noqa: PLC0415

    if report is not None and not isinstance(report, ProbeReport):
        raise ConfigError("must be a databricks_access.ProbeReport or None", "probe_report")
    return report


def diagnose(
    client: AccountClient,
    *,
    group: Group | str | None = None,
    probe_report: ProbeReport | None = None,
    workspaces: WorkspacesArg = None,
) -> Diagnosis:
    """Check that this client can work, and say what to fix when it cannot.

    It reads the secret store once, requests one fresh access token (the cached one is
    dropped first, so the credentials are tested as they are now), and sends a few
    reads; it never writes. See the module documentation for the checks.

    Example::

        report = da.diagnose(client)
        print(report)            # a readable report, one line per check
        if not report.ok:
            for check in report.failed:
                print(check.name, check.fix)

    Args:
        client: The account client to check.
        group: The group whose managers to check when the service principal is not an
            account admin (a `Group` or a group id); default the account's first group.
        probe_report: A `ProbeReport` (from `da.probe`): adds the `probe_report` check,
            which fails when the library's defaults (100 members per PATCH, a 5 minute
            consistency window) disagree with what the probe measured.
        workspaces: Check workspaces too (one `workspace:<id>` check each): `True` for
            every workspace of the account, ids, or a mapping of id to host where the
            host cannot be derived. A workspace the service principal is not assigned
            to fails, with the fix.

    Returns:
        A `Diagnosis`; it holds no secret.
    """
    report = _checked_report(probe_report)
    secret: str | None = None

    def handle(step: _Step) -> object:
        nonlocal secret
        answer = _answer(client, step)
        if isinstance(answer, ClientCredentials):
            secret = answer.client_secret
        return answer

    checks = run_sync(_plan(client.config, client.auth, group), handle)
    diagnosis = _with_probe(_scrubbed(checks, secret), report)
    # -- Unity Catalog: workspace assignments (opt-in) --
    if workspaces:
        from databricks_access._diagnose.workspaces import workspace_checks  # noqa: PLC0415

        diagnosis = _scrubbed(diagnosis.checks + workspace_checks(client, workspaces), secret)
    return diagnosis


async def adiagnose(
    client: AsyncAccountClient,
    *,
    group: Group | str | None = None,
    probe_report: ProbeReport | None = None,
    workspaces: WorkspacesArg = None,
) -> Diagnosis:
    """The async twin of `diagnose`, on an `AsyncAccountClient`.

    Example::

        report = await da.adiagnose(client)
    """
    report = _checked_report(probe_report)
    secret: str | None = None

    async def handle(step: _Step) -> object:
        nonlocal secret
        answer = await _aanswer(client, step)
        if isinstance(answer, ClientCredentials):
            secret = answer.client_secret
        return answer

    checks = await run_async(_plan(client.config, client.auth, group), handle)
    diagnosis = _with_probe(_scrubbed(checks, secret), report)
    # -- Unity Catalog: workspace assignments (opt-in) --
    if workspaces:
        from databricks_access._diagnose.workspaces import aworkspace_checks  # noqa: PLC0415

        more = await aworkspace_checks(client, workspaces)
        diagnosis = _scrubbed(diagnosis.checks + more, secret)
    return diagnosis
