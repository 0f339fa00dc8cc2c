"""`FakeAccount`: the emulated Databricks account, its dispatch core and its builders."""

from __future__ import annotations

import pickle
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from databricks_access.testing._behaviour import Behaviour
from databricks_access.testing._direct_members import handle_direct_members
from databricks_access.testing._http import (
    ConnectionFault,
    FakeRequest,
    FakeResponse,
    PassThrough,
    Rejection,
    rest_error,
)
from databricks_access.testing._log import RequestLog, RequestRecord
from databricks_access.testing._oauth import (
    ServicePrincipalCredentials,
    TokenRegistry,
    authenticate,
    authorize,
    host_metadata,
    new_secret,
    oidc_discovery,
    redact_form,
    token_endpoint,
)
from databricks_access.testing._routing import (
    Endpoint,
    OperationClass,
    RouteMatch,
    classify,
    resolve,
    resolve_workspace,
)
from databricks_access.testing._rule_sets import (
    handle_assignable_roles,
    handle_rule_sets,
    rule_set_resource,
)
from databricks_access.testing._scim import handle_scim
from databricks_access.testing._seed import SeedSummary, seed_account
from databricks_access.testing._server import ServedAccount
from databricks_access.testing._sp_secrets import handle_secrets
from databricks_access.testing._state import (
    GROUP_MANAGER_ROLE,
    AccountState,
    Principal,
    ServicePrincipal,
)
from databricks_access.testing._transport import FakeTransport
from databricks_access.testing._unity import handle_unity
from databricks_access.testing._unity_builders import UnityCatalogBuilders
from databricks_access.testing._workspace_hosts import (
    authorize_workspace,
    handle_workspace_oauth,
    locate_workspace,
    workspace_of,
    workspace_url,
)
from databricks_access.testing._workspaces import handle_workspaces, normalised_permissions

__all__ = ["FakeAccount", "Interceptor"]

Interceptor = Callable[[FakeRequest], "FakeResponse | PassThrough | None"]
"""A hook that sees every request first and may answer it instead of the account.

It returns a `FakeResponse` to answer in the account's place, None to let the account
answer, or a `PassThrough` to let it answer later; it raises a `ConnectionFault`
(`DropConnection`, `HoldConnection`) for a request that gets no answer at all.
"""

_ACCOUNT_ID = re.compile(r"[A-Za-z0-9-]+\Z")
_SCIM_ENDPOINTS = (Endpoint.SCIM_COLLECTION, Endpoint.SCIM_RESOURCE)
_SECRET_ENDPOINTS = (Endpoint.SECRETS, Endpoint.SECRET)
_DIRECT_MEMBER_ENDPOINTS = (Endpoint.DIRECT_MEMBERS, Endpoint.DIRECT_MEMBER)


class FakeAccount(UnityCatalogBuilders):
    """An in-memory Databricks account that speaks the account API, for tests.

    It serves the host metadata and OIDC discovery documents, the OAuth token endpoint,
    SCIM Users / Groups / ServicePrincipals (API 2.0 and 2.1) with their roles and
    entitlements, service principal OAuth secrets, workspaces, workspace permission
    assignments, the rule sets of the account, groups and service principals, and the
    direct-members identity API, following WIRE.md. It answers as every workspace host
    too (`workspace_host`): workspace OAuth with per-workspace tokens and the Unity
    Catalog read API, seeded with `add_metastore`, `add_catalog`, ..., `grant` or
    `seed_unity_catalog`. Where the real
    server's answer is uncertain, `Behaviour` picks one. Nothing leaves the process:
    `transport()` plugs it into `httpx.Client` or `httpx.AsyncClient`, and `dispatch()`
    is the HTTP-library-free core any server can wrap. All methods are thread-safe.

    Example:
        >>> import httpx
        >>> fake = FakeAccount()
        >>> alice = fake.add_user("alice@example.com")
        >>> admins = fake.add_group("admins", members=[alice])
        >>> headers = {"Authorization": f"Bearer {fake.static_token()}"}
        >>> with httpx.Client(transport=fake.transport(), base_url=fake.host) as http:
        ...     reply = http.get(f"{fake.scim_path}/Groups/{admins}", headers=headers)
        >>> reply.json()["members"][0]["value"] == alice
        True

    Args:
        account_id: The account id; by default a UUID drawn from `rng_seed`.
        host: The accounts host the emulator answers as (URLs in documents use it).
        clock: Epoch seconds, for token expiry and stale reads; default `time.time`.
        timer: A monotonic timer for the request log; default `time.perf_counter`.
        behaviour: The behaviour switches; default `Behaviour()`.
        require_auth: Whether API requests need a valid bearer token. When False every
            request acts as an account admin.
        rng_seed: Seeds the generator of ids, application ids and the default account id.
        log_size: How many requests the log keeps (the oldest go first); None keeps all.
        interceptor: A hook that sees each request (already classified) before the account
            does; when it returns a response, that is the answer. It is where fault
            injection plugs in (`FaultPlan`, `ServerRateLimits`), and runs outside the
            emulator's lock.
    """

    def __init__(
        self,
        *,
        account_id: str | None = None,
        host: str = "https://accounts.cloud.databricks.com",
        clock: Callable[[], float] | None = None,
        timer: Callable[[], float] | None = None,
        behaviour: Behaviour | None = None,
        require_auth: bool = True,
        rng_seed: int = 0,
        log_size: int | None = 100_000,
        interceptor: Interceptor | None = None,
    ) -> None:
        rng = random.Random(rng_seed)  # noqa: S311 - deterministic ids, not security
        if account_id is None:
            account_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if not _ACCOUNT_ID.match(account_id):
            raise ValueError(f"account_id must be letters, digits and '-', got {account_id!r}")
        if not host.startswith(("http://", "https://")):
            raise ValueError(f"host must be an http(s) URL, got {host!r}")
        self._clock = clock or time.time
        self._timer = timer or time.perf_counter
        self._state = AccountState(
            account_id, host.rstrip("/"), behaviour or Behaviour(), self._clock, rng
        )
        self._tokens = TokenRegistry()
        self._log = RequestLog(log_size)
        self._lock = threading.RLock()
        self.require_auth = require_auth
        """Whether API requests need a valid bearer token (settable)."""
        self.interceptor = interceptor
        """The hook that may answer requests before the account does (settable)."""

    def __getstate__(self) -> dict[str, Any]:
        # Pickled to serve the account in another process (`serve(process=True)`).
        with self._lock:
            state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = self._state
        return (
            f"FakeAccount(account_id={state.account_id!r}, host={state.host!r}, "
            f"users={len(state.users)}, groups={len(state.groups)}, "
            f"service_principals={len(state.service_principals)})"
        )

    # ---- identity of the account -----------------------------------------------------

    @property
    def account_id(self) -> str:
        """The account id."""
        return self._state.account_id

    @property
    def host(self) -> str:
        """The accounts host URL, without a trailing slash."""
        return self._state.host

    @property
    def scim_path(self) -> str:
        """The path of the SCIM 2.0 API, e.g. `/api/2.0/accounts/<id>/scim/v2`."""
        return f"/api/2.0/accounts/{self.account_id}/scim/v2"

    @property
    def behaviour(self) -> Behaviour:
        """The behaviour switches in force; assign a new `Behaviour` to change them."""
        return self._state.behaviour

    @behaviour.setter
    def behaviour(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._state.behaviour = behaviour

    # ---- serving ---------------------------------------------------------------------

    def dispatch(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> FakeResponse:
        """Answer one HTTP request: the core every way of serving the emulator wraps.

        Every request is classified (`OperationClass`) first, offered to the
        `interceptor`, then handled under the emulator's lock and logged. An answer
        chosen by the interceptor is logged with its `fault` name.

        Args:
            method: The HTTP method.
            target: The raw request target: path and query string, percent-encoded as
                sent (`/api/2.0/accounts/<id>/scim/v2/Users?filter=...`). An absolute URL
                is accepted too; its scheme and host are ignored.
            headers: The request headers (names in any case).
            body: The raw request body.

        Returns:
            The response; errors are responses too (in the form the real endpoint uses).
            Its `delay` is injected latency the caller should wait before sending it.

        Raises:
            ConnectionFault: The interceptor decided that the request gets no answer
                (`DropConnection`, `HoldConnection`); it is logged with status 0. Only
                that, or a bug in the emulator itself, raises, so a bug cannot hide
                behind a 500.
        """
        perf_started, started = self._timer(), self._clock()
        method = method.upper()
        lowered = {name.lower(): value for name, value in (headers or {}).items()}
        host = lowered.get("host")
        if target.startswith(("http://", "https://")):
            after_host = target.split("://", 1)[1].partition("/")
            target = after_host[1] + after_host[2]
            host = host or after_host[0]
        path, _, query = target.partition("?")
        route, workspace_id = self._route(method, host, path)
        op_class = classify(method, route)
        request = FakeRequest(method, path, query, lowered, body, op_class, route)
        interceptor = self.interceptor
        verdict: FakeResponse | PassThrough | None = None
        lost: ConnectionFault | None = None
        if interceptor is not None:
            try:
                verdict = interceptor(request)
            except ConnectionFault as fault:
                lost = fault
        with self._lock:
            fault_name: str | None = None
            if lost is not None:
                if lost.applied:
                    self._handle(request)
                status, fault_name = 0, lost.fault
            elif isinstance(verdict, FakeResponse):
                if verdict.applied:
                    self._handle(request)
                response = verdict
                status, fault_name = response.status, response.fault or "intercepted"
            else:
                response = self._handle(request)
                if verdict is not None:
                    fault_name = verdict.fault
                    if verdict.delay > 0:
                        response = attrs.evolve(response, delay=verdict.delay)
                status = response.status
            logged_body = redact_form(body) if op_class is OperationClass.TOKEN else body
            self._log.add(
                RequestRecord(
                    method=method,
                    path=path,
                    query=query,
                    body=logged_body,
                    status=status,
                    op_class=op_class,
                    started=started,
                    finished=self._clock(),
                    perf_started=perf_started,
                    perf_finished=self._timer(),
                    fault=fault_name,
                    workspace_id=workspace_id,
                )
            )
        if lost is not None:
            raise lost
        return response

    def _route(
        self, method: str, host: str | None, path: str
    ) -> tuple[RouteMatch | None, int | None]:
        """The endpoint a request names, and the workspace whose host it was sent to."""
        with self._lock:
            state = self._state
            located = locate_workspace(state, host, path)
            if located is None:
                return resolve(method, path, state.behaviour.token_path), None
        workspace_id, inner = located
        return resolve_workspace(method, inner, workspace_id), workspace_id

    def _handle_workspace(self, request: FakeRequest, route: RouteMatch) -> FakeResponse:
        state = self._state
        answer = handle_workspace_oauth(state, self._tokens, request, route)
        if answer is not None:
            return answer
        workspace = workspace_of(state, route)
        if self.require_auth:
            authorize_workspace(state, self._tokens, request, workspace)
        return handle_unity(state, request, route, workspace.workspace_id)

    def _handle(self, request: FakeRequest) -> FakeResponse:
        state = self._state
        state.requests += 1
        route = request.route
        try:
            if route is None:
                raise rest_error(
                    404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'"
                )
            if route.workspace is not None:
                return self._handle_workspace(request, route)
            if route.account_id is not None and route.account_id != state.account_id:
                raise rest_error(
                    404, "RESOURCE_DOES_NOT_EXIST", f"Account {route.account_id} does not exist."
                )
            endpoint = route.endpoint
            if endpoint is Endpoint.HOST_METADATA:
                return host_metadata(state)
            if endpoint is Endpoint.OIDC_DISCOVERY:
                return oidc_discovery(state)
            if endpoint is Endpoint.TOKEN:
                return token_endpoint(state, self._tokens, request)
            if self.require_auth:
                caller = authenticate(state, self._tokens, request)
                authorize(caller, request.op_class, state.behaviour)
            if endpoint in _SCIM_ENDPOINTS:
                return handle_scim(state, request, route)
            if endpoint is Endpoint.RULE_SETS:
                return handle_rule_sets(state, request)
            if endpoint is Endpoint.ASSIGNABLE_ROLES:
                return handle_assignable_roles(state, request)
            if endpoint in _SECRET_ENDPOINTS:
                return handle_secrets(state, request, route)
            if endpoint in _DIRECT_MEMBER_ENDPOINTS:
                return handle_direct_members(state, request, route)
            return handle_workspaces(state, request, route)
        except Rejection as rejection:
            return rejection.response

    def transport(
        self,
        *,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> FakeTransport:
        """An httpx transport serving this account to `httpx.Client` and `AsyncClient`.

        Args:
            sleep: How the sync transport waits out injected latency; default
                `time.sleep`. Inject one to test latency without waiting.
            async_sleep: The same for async clients; default `asyncio.sleep`.
        """
        return FakeTransport(self.dispatch, sleep=sleep, async_sleep=async_sleep)

    def serve(
        self, *, process: bool = False, port: int = 0, startup_timeout: float = 60.0
    ) -> ServedAccount:
        """Serve this account over HTTP/1.1 on 127.0.0.1, in a thread or in a process.

        Use it as a context manager; it gives the base URL (`http://127.0.0.1:<port>`).
        While served, the account answers as that host: the discovery documents name
        it, so the official SDK and `AccountConfig(host=url, allow_custom_host=True,
        allow_insecure_http=True, ...)` both find their way.

        Example:
            >>> import httpx
            >>> fake = FakeAccount()
            >>> with fake.serve() as url:
            ...     reply = httpx.get(f"{url}/.well-known/databricks-config")
            >>> reply.json()["oidc_endpoint"].startswith("http://127.0.0.1:")
            True
            >>> fake.counts["meta"]
            1

        Args:
            process: Serve from a child process (a fresh interpreter; POSIX only), so a
                client measured against it does not share the server's GIL. The account is
                pickled to the child as it is at start (its clock, timer and
                interceptor must be picklable), and its final state, log and counts are
                copied back when serving stops. In the meantime, use the returned
                handle (`group_members`, `log`, `counts`, `call`, `sync`) to look at the
                live account.
            port: The port; 0 picks a free one.
            startup_timeout: Seconds to wait for the server to listen.

        Returns:
            The server handle; `with` starts it and stops it.
        """
        return ServedAccount(self, process=process, port=port, startup_timeout=startup_timeout)

    # ---- tokens ----------------------------------------------------------------------

    def static_token(self) -> str:
        """A bearer token of the account owner: an account admin, never expiring.

        The same token every call, until `revoke_tokens()`.
        """
        with self._lock:
            return self._tokens.static()

    def issue_token(self, client_id: str, *, workspace_id: int | None = None) -> str:
        """A bearer token for a service principal, as the token endpoint would issue it.

        It expires after `behaviour.token_ttl` seconds on the injected clock.

        Args:
            client_id: The service principal's client (application) id.
            workspace_id: Issue it as this workspace's token endpoint does (valid on that
                workspace host only); None for an accounts-host token.

        Raises:
            ValueError: No service principal has this client id, or no workspace this id.
        """
        with self._lock:
            self._service_principal(client_id)
            if workspace_id is not None:
                self._assignments(workspace_id)
            state = self._state
            return self._tokens.issue(
                client_id, now=state.clock(), ttl=state.behaviour.token_ttl, audience=workspace_id
            )

    def workspace_host(self, workspace_id: int) -> str:
        """The URL the emulator answers as this workspace, without a trailing slash.

        In-process it is the realistic `https://<deployment name>.<zone>` (such as
        `https://dbc-1a2b3c4d.cloud.databricks.com`): `transport()` routes by the
        request's host. While served on loopback (or under any host that is not an
        accounts host) it is `<host>/ws/<workspace id>`, a path prefix on the same
        server: `http://127.0.0.1:<port>/ws/<id>`.

        Example:
            >>> fake = FakeAccount()
            >>> workspace = fake.add_workspace("analytics", deployment_name="dbc-analytics")
            >>> fake.workspace_host(workspace)
            'https://dbc-analytics.cloud.databricks.com'

        Raises:
            ValueError: No workspace has this id.
        """
        with self._lock:
            self._assignments(workspace_id)
            return workspace_url(self._state, self._state.workspaces[workspace_id])

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far, the static one included."""
        with self._lock:
            self._tokens.revoke_all()

    # ---- builders --------------------------------------------------------------------

    def add_user(
        self,
        user_name: str,
        display_name: str | None = None,
        *,
        emails: Iterable[str] | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        active: bool = True,
        external_id: str | None = None,
    ) -> str:
        """Create a user and return its id.

        Args:
            user_name: The user name (usually an email address).
            display_name: The display name; default the user name.
            emails: The email addresses; default the user name.
            given_name: The given name.
            family_name: The family name.
            active: Whether the user is active.
            external_id: The id in the identity provider.

        Raises:
            ValueError: The user name or an email is taken (the message is the real
                server's conflict text).
        """
        with self._lock:
            return self._state.add_user(
                user_name,
                display_name,
                emails=emails,
                given_name=given_name,
                family_name=family_name,
                active=active,
                external_id=external_id,
            ).id

    def add_group(
        self, display_name: str, members: Iterable[str] = (), *, external_id: str | None = None
    ) -> str:
        """Create a group with these member ids (users, service principals, groups).

        Raises:
            ValueError: The name is taken, or a member id names no principal.
        """
        with self._lock:
            state = self._state
            member_ids = list(members)
            for member_id in member_ids:
                self._principal_kind(member_id)
            group = state.add_group(display_name, external_id=external_id)
            state.set_members(group.id, member_ids, record=False)
            return group.id

    def add_service_principal(
        self,
        display_name: str,
        application_id: str | None = None,
        *,
        admin: bool = True,
        active: bool = True,
    ) -> ServicePrincipalCredentials:
        """Create a service principal with one OAuth secret.

        Args:
            display_name: The display name.
            application_id: The application (client) id; default a random UUID.
            admin: Whether it holds the account admin role; without it, writes answer 403.
            active: Whether it is active (an inactive one cannot get tokens).

        Returns:
            Its id and OAuth credentials (`client_id` is the application id).

        Raises:
            ValueError: The application id is taken.
        """
        with self._lock:
            state = self._state
            sp = state.add_service_principal(
                display_name, application_id, admin=admin, active=active
            )
            secret = state.add_secret(sp, new_secret())
            return ServicePrincipalCredentials(sp.id, sp.application_id, secret.value)

    def add_secret(self, client_id: str) -> str:
        """Give a service principal another OAuth secret (secret rotation) and return it."""
        with self._lock:
            sp = self._service_principal(client_id)
            return self._state.add_secret(sp, new_secret()).value

    def remove_secret(self, client_id: str, secret: str) -> None:
        """Revoke one OAuth secret of a service principal (tokens already issued live on)."""
        with self._lock:
            sp = self._service_principal(client_id)
            kept = [known for known in sp.secrets if known.value != secret]
            if len(kept) == len(sp.secrets):
                raise ValueError("The service principal has no such secret.")
            sp.secrets[:] = kept

    def set_admin(self, client_id: str, admin: bool) -> None:
        """Grant or withdraw a service principal's account admin role."""
        with self._lock:
            self._service_principal(client_id).admin = admin

    def add_member(self, group_id: str, principal_id: str) -> None:
        """Add a principal to a group out of band (visible at once, even to stale reads)."""
        with self._lock:
            self._group(group_id)
            self._principal_kind(principal_id)
            self._state.add_member(group_id, principal_id, record=False)

    def remove_member(self, group_id: str, principal_id: str) -> None:
        """Remove a principal from a group out of band (visible at once)."""
        with self._lock:
            self._group(group_id)
            self._state.remove_member(group_id, principal_id, record=False)

    def delete_principal(self, principal_id: str) -> None:
        """Delete a user, service principal or group, with its memberships and assignments."""
        with self._lock:
            self._principal_kind(principal_id)
            self._state.delete(principal_id, record=False)

    def add_workspace(
        self,
        name: str,
        *,
        workspace_id: int | None = None,
        deployment_name: str | None = None,
        status: str = "RUNNING",
    ) -> int:
        """Create a workspace and return its id.

        Args:
            name: The workspace name.
            workspace_id: The id; default a random 16-digit number.
            deployment_name: The deployment name (the workspace URL's prefix).
            status: The workspace status (`RUNNING`, `PROVISIONING`, `FAILED`, ...).
        """
        with self._lock:
            return self._state.add_workspace(
                name, workspace_id=workspace_id, deployment_name=deployment_name, status=status
            ).workspace_id

    def assign(
        self, workspace_id: int, principal_id: str, permissions: Iterable[str] = ("USER",)
    ) -> None:
        """Assign a principal to a workspace (`USER` or `ADMIN`); no permissions unassigns."""
        with self._lock:
            assigned = self._assignments(workspace_id)
            self._principal_kind(principal_id)
            kept = normalised_permissions(list(permissions))
            if kept:
                assigned[principal_id] = kept
            else:
                assigned.pop(principal_id, None)

    def set_group_managers(self, group_id: str, principals: Iterable[str]) -> None:
        """Make these principals the managers of a group (its rule set's grant rule).

        Args:
            group_id: The group.
            principals: Rule-set principal names: `users/<user name>`,
                `servicePrincipals/<application id>` or `groups/<display name>`.

        Raises:
            ValueError: The group or one of the principals does not exist.
        """
        with self._lock:
            self._group(group_id)
            names = list(principals)
            for name in names:
                if not self._state.rule_principal_exists(name):
                    raise ValueError(f"No principal is named {name!r}.")
            rules = [(GROUP_MANAGER_ROLE, names)] if names else []
            self._state.set_grant_rules(f"groups/{group_id}", rules)

    def seed(
        self,
        *,
        users: int = 100,
        groups: int = 10,
        memberships: int | None = None,
        service_principals: int = 0,
        workspaces: int = 0,
        assignments_per_workspace: int = 0,
        seed: int = 0,
        prefix: str = "",
    ) -> SeedSummary:
        """Fill the account with many principals at once, deterministically.

        The same arguments on an equally built account give the same ids, names,
        memberships and secrets. 50,000 users, 2,000 groups and 100,000 memberships
        take well under a few seconds.

        Example:
            >>> summary = FakeAccount().seed(users=1_000, groups=50, memberships=5_000)
            >>> len(summary.user_ids), len(summary.group_ids), summary.memberships
            (1000, 50, 5000)

        Args:
            users: How many users (`{prefix}user00000@example.com`, ...).
            groups: How many groups (`{prefix}group-0000`, ...).
            memberships: How many distinct (group, user) memberships, drawn uniformly;
                default twice the users (at most users * groups).
            service_principals: How many account-admin service principals, each with
                one secret.
            workspaces: How many workspaces.
            assignments_per_workspace: How many random groups each workspace assigns
                with `USER` permission.
            seed: Seeds every random choice.
            prefix: Prepended to every name, to seed one account twice.

        Returns:
            The ids and credentials created.

        Raises:
            ValueError: A count is negative or too large, or a name is taken.
        """
        with self._lock:
            return seed_account(
                self._state,
                users=users,
                groups=groups,
                memberships=memberships,
                service_principals=service_principals,
                workspaces=workspaces,
                assignments_per_workspace=assignments_per_workspace,
                seed=seed,
                prefix=prefix,
            )

    # ---- inspection (the true state, never stale) ------------------------------------

    def group_members(self, group_id: str) -> frozenset[str]:
        """The ids of a group's direct members, as they truly are now."""
        with self._lock:
            self._group(group_id)
            return frozenset(self._state.members[group_id])

    def groups_of(self, principal_id: str) -> frozenset[str]:
        """The ids of the groups a principal is a direct member of, as they truly are now."""
        with self._lock:
            return frozenset(self._state.parents.get(principal_id, {}))

    def find_group(self, display_name: str) -> str | None:
        """The id of the group with this display name (case-insensitive), if any."""
        with self._lock:
            return self._state.group_by_name.get(display_name.casefold())

    def find_user(self, user_name: str) -> str | None:
        """The id of the user with this user name (case-insensitive), if any."""
        with self._lock:
            return self._state.user_by_name.get(user_name.casefold())

    def find_service_principal(self, application_id: str) -> str | None:
        """The id of the service principal with this application id, if any."""
        with self._lock:
            return self._state.sp_by_application_id.get(application_id.casefold())

    def group_managers(self, group_id: str) -> tuple[str, ...]:
        """The principals holding the group manager role on a group (rule-set names)."""
        with self._lock:
            self._group(group_id)
            return self._holders(f"groups/{group_id}", GROUP_MANAGER_ROLE)

    def grant_rules(self, rule_set_name: str) -> Mapping[str, tuple[str, ...]]:
        """The principals holding each role of a rule set, by role.

        Args:
            rule_set_name: `accounts/<id>/ruleSets/default`,
                `accounts/<id>/groups/<group id>/ruleSets/default` or
                `accounts/<id>/servicePrincipals/<application id>/ruleSets/default`.

        Raises:
            ValueError: The name names no rule set of this account.
        """
        with self._lock:
            try:
                resource = rule_set_resource(self._state, rule_set_name)
            except Rejection as rejection:
                raise ValueError(f"No rule set is named {rule_set_name!r}.") from rejection
            rule_set = self._state.rule_sets.get(resource)
            rules = rule_set.grant_rules if rule_set is not None else ()
            return {role: tuple(who) for role, who in rules}

    def roles(self, principal_id: str) -> tuple[str, ...]:
        """The roles a user, service principal or group holds (`account_admin`, ...)."""
        with self._lock:
            return tuple(self._principal(principal_id).roles)

    def entitlements(self, principal_id: str) -> tuple[str, ...]:
        """The entitlements a user, service principal or group holds."""
        with self._lock:
            return tuple(self._principal(principal_id).entitlements)

    def set_roles(self, principal_id: str, roles: Iterable[str]) -> None:
        """Make these the roles of a user, service principal or group (out of band)."""
        with self._lock:
            self._principal(principal_id).roles[:] = list(dict.fromkeys(roles))

    def secret_ids(self, client_id: str) -> tuple[str, ...]:
        """The ids of a service principal's OAuth secrets, oldest first."""
        with self._lock:
            return tuple(secret.id for secret in self._service_principal(client_id).secrets)

    def assignments(self, workspace_id: int) -> Mapping[str, tuple[str, ...]]:
        """The permissions of each principal assigned to a workspace, by principal id."""
        with self._lock:
            return dict(self._assignments(workspace_id))

    @property
    def log(self) -> tuple[RequestRecord, ...]:
        """The requests answered so far (bounded by `log_size`), oldest first."""
        with self._lock:
            return self._log.records()

    @property
    def counts(self) -> Counter[OperationClass]:
        """How many requests of each operation class were answered (a copy).

        Example:
            >>> fake = FakeAccount()
            >>> fake.dispatch("GET", "/.well-known/databricks-config").status
            200
            >>> fake.counts[OperationClass.META], fake.counts["patch"]
            (1, 0)
        """
        with self._lock:
            return self._log.counts()

    @property
    def faults(self) -> Counter[str]:
        """How many injected faults of each name the requests met (a copy).

        Names are those of `RequestRecord.fault`; a request that met several counts once
        for each.
        """
        with self._lock:
            return self._log.faults()

    def reset_log(self) -> None:
        """Forget the logged requests and the counts."""
        with self._lock:
            self._log.clear()

    # ---- serving in another process (used by `ServedAccount`) ------------------------

    def _swap_host(self, host: str) -> str:
        """Answer as another host from now on; returns the previous one."""
        with self._lock:
            previous, self._state.host = self._state.host, host
            return previous

    def _dumps(self) -> bytes:
        """The whole account, pickled consistently (under the lock)."""
        with self._lock:
            return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    def _adopt(self, other: FakeAccount) -> None:
        """Take over the state, tokens and log of a copy served elsewhere.

        The copy's clock was a copy of ours: the adopted state goes back to ours.
        """
        with self._lock:
            state = other._state
            state.clock = self._clock
            self._state = state
            self._tokens = other._tokens
            self._log = other._log
            self.require_auth = other.require_auth

    # ---- lookups for the builders ----------------------------------------------------

    def _group(self, group_id: str) -> None:
        if group_id not in self._state.groups:
            raise ValueError(f"No group has the id {group_id!r}.")

    def _holders(self, resource: str, role: str) -> tuple[str, ...]:
        rule_set = self._state.rule_sets.get(resource)
        rules = rule_set.grant_rules if rule_set is not None else ()
        return tuple(p for held, who in rules if held == role for p in who)

    def _principal(self, principal_id: str) -> Principal:
        principal = self._state.principal(principal_id)
        if principal is None:
            raise ValueError(f"No principal has the id {principal_id!r}.")
        return principal

    def _principal_kind(self, principal_id: str) -> None:
        if principal_id not in self._state.kinds:
            raise ValueError(f"No principal has the id {principal_id!r}.")

    def _service_principal(self, client_id: str) -> ServicePrincipal:
        sp = self._state.service_principal_by_client_id(client_id)
        if sp is None:
            raise ValueError(f"No service principal has the client id {client_id!r}.")
        return sp

    def _now_ms(self) -> int:
        return int(self._state.clock() * 1000)

    def _assignments(self, workspace_id: int) -> dict[str, tuple[str, ...]]:
        assigned = self._state.assignments.get(workspace_id)
        if assigned is None:
            raise ValueError(f"No workspace has the id {workspace_id!r}.")
        return assigned
