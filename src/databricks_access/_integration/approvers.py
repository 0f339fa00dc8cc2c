"""Who approves access to a group: `Integration` and its asyncio twin.

`Integration` answers `approvers_for(group)`: the resource owners when the resolver
finds some, else the integration owners, and says which. A resolver that fails or is
too slow never grants anything: the answer falls back and reports the problem.
`AsyncIntegration` is its asyncio twin.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from databricks_access._account.models import Group
from databricks_access._clock import Clock
from databricks_access._durations import seconds
from databricks_access._errors import ConfigError, RequestTimeoutError
from databricks_access._integration.config import IntegrationConfig
from databricks_access._integration.directories import (
    AsyncDatabricksDirectory,
    AsyncIdentityDirectory,
    DatabricksDirectory,
    IdentityDirectory,
)
from databricks_access._integration.owners import (
    AsyncOwnerResolver,
    AsyncTagOwnerResolver,
    Owner,
    OwnerKind,
    OwnerResolver,
    TagOwnerResolver,
    TagSource,
)
from databricks_access._integration.workers import BusyError, TimedOutError, Workers, bounded
from databricks_access._util.describe import kind_of
from databricks_access._util.html import render_html

if TYPE_CHECKING:
    from databricks_access._account.client import AccountClient, AsyncAccountClient

__all__ = ["ApproverSource", "Approvers", "AsyncIntegration", "Integration"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_DETAIL = 200


class ApproverSource(enum.Enum):
    """Where the approvers of a group came from."""

    RESOURCE_OWNER = "resource_owner"
    """The owner resolver found the group's resource owners."""
    INTEGRATION_OWNER = "integration_owner"
    """No resource owner was found (or the resolver failed): the integration owners."""
    NONE = "none"
    """Nobody: no resource owner was found and no integration owner is configured."""


@attrs.frozen
class Approvers:
    """Who may approve access to a group, where they came from, and what went wrong.

    With `source` `ApproverSource.NONE`, `owners` is empty and **approval is impossible**:
    `Integration.is_approver` answers False for everyone.

    Attributes:
        owners: The approvers: IdP users and groups.
        source: Whether they are the resource owners or the integration-owner fallback.
        problems: Why the resource owners could not be used (the resolver failed, timed
            out, answered garbage, or none is configured); plain words, for logs and UIs.

    Example:
        >>> approvers = Approvers((Owner.user("ann@example.com"),), ApproverSource.INTEGRATION_OWNER)
        >>> approvers.can_approve, [str(o) for o in approvers.users]
        (True, ['user:ann@example.com'])
    """  # noqa: E501

    _repr_html_ = render_html

    owners: tuple[Owner, ...]
    source: ApproverSource
    problems: tuple[str, ...] = ()

    @property
    def can_approve(self) -> bool:
        """Whether anybody at all may approve (False for `ApproverSource.NONE`)."""
        return bool(self.owners)

    @property
    def users(self) -> tuple[Owner, ...]:
        """The user owners."""
        return tuple(owner for owner in self.owners if owner.kind is OwnerKind.USER)

    @property
    def groups(self) -> tuple[Owner, ...]:
        """The IdP group owners (their members may approve)."""
        return tuple(owner for owner in self.owners if owner.kind is OwnerKind.GROUP)


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function)


def _collect(result: object) -> object:
    """Materialise a resolver's answer inside the bounded call (iterating may be slow)."""
    if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
        return result
    return tuple(result)


def _as_owners(result: object) -> tuple[tuple[Owner, ...], str | None]:
    if inspect.iscoroutine(result):
        result.close()  # a sync resolver that returned a coroutine: never awaited
        return (), "the owner resolver returned a coroutine; use AsyncIntegration for it"
    if not isinstance(result, tuple):
        return (), f"the owner resolver returned {kind_of(result)}, not a list of owners"
    owners: list[Owner] = []
    for item in result:
        if isinstance(item, Owner):
            owners.append(item)
        elif isinstance(item, str):
            try:
                owners.append(Owner.parse(item))
            except ConfigError as exc:
                return (
                    (),
                    f"the owner resolver returned a malformed owner: {exc.problems[0].message}",
                )
        else:
            return (), f"the owner resolver returned {kind_of(item)} among the owners"
    return tuple(dict.fromkeys(owners)), None


def _failure(what: str, exc: BaseException) -> str:
    detail = str(exc).strip()
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    return f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else "")


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    return seconds(timeout, "timeout", positive=True)


def _check_group(group: object) -> Group | str:
    if isinstance(group, Group):
        return group
    if isinstance(group, str) and group.strip():
        return group.strip()
    raise ConfigError(
        f"must be a databricks_access.Group or a group id, not {kind_of(group)}", "group"
    )


def _usable_identity(identity: object) -> bool:
    return isinstance(identity, str) and bool(identity.strip()) and not _CONTROL.search(identity)


class _IntegrationBase:
    """What both integrations decide the same way (no I/O)."""

    def __init__(
        self,
        config: IntegrationConfig,
        *,
        resolver: object | None,
        directory: object | None,
        tags_given: bool,
        timeout: float | None,
    ) -> None:
        if not isinstance(config, IntegrationConfig):
            raise ConfigError("must be a databricks_access.IntegrationConfig", "config")
        self._config = config
        self._timeout = _check_timeout(timeout)
        self._resolver = resolver
        self._directory = directory
        self._workers = Workers()
        if directory is None and any(o.kind is OwnerKind.GROUP for o in config.integration_owners):
            raise ConfigError(
                "integration_owners names IdP groups: pass directory= (or client=) so that "
                "group membership can be checked",
                "directory",
            )
        self._setup_problems: tuple[str, ...] = ()
        setting = config.resource_owner
        if setting is not None and resolver is None:
            hint = (
                "set owner_tags in the configuration (or pass tags=), with a directory= or client="
                if not tags_given
                else "directory= or client="
            )
            self._setup_problems = (
                (
                    f"resource_owner is configured (tag {setting.tag_key!r}) but this "
                    f"integration has no owner resolver: pass owners=, or {hint}"
                ),
            )

    @property
    def config(self) -> IntegrationConfig:
        """The integration's configuration."""
        return self._config

    @property
    def custom_access_details(self) -> str | None:
        """The text shown to end users when they request access, if any."""
        return self._config.custom_access_details

    @property
    def timeout(self) -> float | None:
        """Seconds (real time) a resolver or directory call may take; None: unbounded."""
        return self._timeout

    def _resolved(self, result: object, problems: list[str]) -> Approvers | None:
        owners, problem = _as_owners(result)
        if problem is not None:
            problems.append(problem)
            return None
        if owners:
            return Approvers(owners, ApproverSource.RESOURCE_OWNER, tuple(problems))
        return None

    def _fallback(self, problems: list[str]) -> Approvers:
        owners = self._config.integration_owners
        if owners:
            return Approvers(owners, ApproverSource.INTEGRATION_OWNER, tuple(problems))
        return Approvers((), ApproverSource.NONE, tuple(problems))

    def _timed_out(self, what: str) -> str:
        return (
            f"{what} did not answer within {self._timeout:g} s; "
            "it was abandoned and the integration owners apply"
        )

    @staticmethod
    def _busy(what: str) -> str:
        return f"{what} is still busy with earlier calls that did not finish; it was not asked"

    def _direct_match(self, identity: object, approvers: Approvers) -> bool | None:
        """True/False when decided without the directory; None when groups must be asked."""
        if not isinstance(approvers, Approvers):
            raise ConfigError("must be the Approvers from approvers_for", "approvers")
        if not _usable_identity(identity) or not isinstance(identity, str):
            return False
        if any(owner.matches_user(identity) for owner in approvers.owners):
            return True
        if not approvers.groups:
            return False
        if self._directory is None:
            raise ConfigError(
                "the approvers include IdP groups: pass directory= (or client=) so that "
                "group membership can be checked",
                "directory",
            )
        return None

    def _directory_timeout(self, exc: Exception) -> RequestTimeoutError:
        if isinstance(exc, BusyError):
            return RequestTimeoutError(self._busy("the identity directory"))
        return RequestTimeoutError(
            f"the identity directory did not answer within {self._timeout:g} s"
        )


class Integration(_IntegrationBase):
    """An integration's approval rules: who may approve access to a group.

    `approvers_for(group)` follows the chain: the resource owners (from the owner
    resolver) first; the integration owners when the resolver finds none, fails, or
    times out; nobody (`ApproverSource.NONE`) when neither exists. A failing resolver
    never grants anything: its failure falls back and is reported in
    `Approvers.problems`.

    A resolver runs in a worker thread and is abandoned after `timeout` seconds of real
    time (a blocking call cannot be bounded by the injected clock); the thread is left to
    finish on its own, and at most 8 such threads are kept before calls are refused.
    With `timeout=None` it runs in the calling thread, unbounded.

    Example::

        config = da.IntegrationConfig.from_toml("integration.toml")
        integration = da.Integration(config, client=client, tags=da.MappingTagSource(tags))
        approvers = integration.approvers_for(group)
        if integration.is_approver("bob@example.com", approvers):
            ...

    Args:
        config: The integration's configuration.
        client: The account client; it reads a group given by id, and serves as the
            default identity directory (`DatabricksDirectory`).
        owners: The owner resolver. Default: a `TagOwnerResolver` when the config has a
            `resource_owner` and `tags` is given; else none.
        directory: The identity directory (default `DatabricksDirectory(client)` when a
            client is given). Needed when owners include IdP groups.
        tags: Where group tags come from, for the default tag resolver (default: the
            configuration's `owner_tags`).
        clock: The clock of the default directory's cache (default the client's).
        timeout: Seconds of real time a resolver or directory call may take; None for
            no bound.

    Raises:
        ConfigError: A bad argument, or integration owners naming IdP groups without a
            directory to check them.
    """

    def __init__(
        self,
        config: IntegrationConfig,
        *,
        client: AccountClient | None = None,
        owners: OwnerResolver | None = None,
        directory: IdentityDirectory | None = None,
        tags: TagSource | None = None,
        clock: Clock | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        if directory is None and client is not None:
            directory = DatabricksDirectory(client, clock=clock)
        setting = config.resource_owner if isinstance(config, IntegrationConfig) else None
        if tags is None and isinstance(config, IntegrationConfig):
            tags = config.tag_source()  # the configuration's owner_tags, if any
        if owners is None and setting is not None and tags is not None and directory is not None:
            owners = TagOwnerResolver(setting, tags, directory)
        super().__init__(
            config,
            resolver=owners,
            directory=directory,
            tags_given=tags is not None,
            timeout=timeout,
        )
        self._client = client
        self._owners: OwnerResolver | None = owners
        self._identity: IdentityDirectory | None = directory

    def __repr__(self) -> str:
        return f"Integration(name={self._config.name!r}, owners={self._owners!r})"

    @property
    def owners(self) -> OwnerResolver | None:
        """The owner resolver in use, if any."""
        return self._owners

    @property
    def directory(self) -> IdentityDirectory | None:
        """The identity directory in use, if any."""
        return self._identity

    def _resolve(self, resolver: OwnerResolver, group: Group | str) -> object:
        if isinstance(group, str):
            group = self._client.groups.get(group) if self._client else Group(id=group)
        return _collect(resolver.resolve(group))

    def approvers_for(self, group: Group | str) -> Approvers:
        """Who may approve access to `group` (a `Group`, or a group id), and why.

        The resource owners when the resolver finds some; else the integration owners;
        else nobody (`ApproverSource.NONE`, and then nobody can approve). A resolver that
        raises, times out or answers garbage falls back the same way, with the reason in
        `problems`. Never raises for a resolver's failure.

        Raises:
            ConfigError: `group` is neither a `Group` nor a non-empty id.
        """
        checked = _check_group(group)
        problems = list(self._setup_problems)
        resolver = self._owners
        if resolver is not None:
            try:
                result = self._workers.call(lambda: self._resolve(resolver, checked), self._timeout)
            except TimedOutError:
                problems.append(self._timed_out("the owner resolver"))
            except BusyError:
                problems.append(self._busy("the owner resolver"))
            except Exception as exc:  # noqa: BLE001 - any failure falls back, reported
                problems.append(_failure("the owner resolver failed", exc))
            else:
                approvers = self._resolved(result, problems)
                if approvers is not None:
                    return approvers
        return self._fallback(problems)

    def is_approver(self, identity: str, approvers: Approvers) -> bool:
        """Whether `identity` (a user name) may approve, given `approvers_for`'s answer.

        A user owner matches case-insensitively; a group owner matches when the identity
        is a (nested) member of that IdP group, per the directory. Self-approval (the
        requester approving their own request) is refused by the caller, which knows the
        requester.

        Raises:
            ConfigError: Group owners must be checked and there is no directory.
            RequestTimeoutError: The directory did not answer within `timeout`.
            DatabricksAccessError: The directory failed (it never counts as a yes).
        """
        decided = self._direct_match(identity, approvers)
        if decided is not None:
            return decided
        directory = self._identity
        assert directory is not None  # noqa: S101 - _direct_match checked it

        def ask() -> bool:
            return any(directory.is_member(identity, g.name) is True for g in approvers.groups)

        try:
            return self._workers.call(ask, self._timeout)
        except (TimedOutError, BusyError) as exc:
            raise self._directory_timeout(exc) from None


def _membership_call(directory: Any, identity: str, group: Owner) -> Callable[[], object]:
    def call() -> object:
        answer: object = directory.is_member(identity, group.name)
        return answer

    return call


class AsyncIntegration(_IntegrationBase):
    """The asyncio twin of `Integration`: same rules, awaited.

    Resolvers and directories may be sync or async. Async ones are awaited on the loop
    and cancelled after `timeout`; sync ones run in a worker thread (never on the loop)
    and are abandoned after `timeout`.

    Example::

        integration = da.AsyncIntegration(config, client=async_client, owners=resolver)
        approvers = await integration.approvers_for(group)
        await integration.is_approver("bob@example.com", approvers)

    Args:
        config: The integration's configuration.
        client: The async account client (default directory: `AsyncDatabricksDirectory`).
        owners: The owner resolver, sync or async.
        directory: The identity directory, sync or async.
        tags: Where group tags come from, for the default tag resolver (default: the
            configuration's `owner_tags`).
        clock: The clock of the default directory's cache (default the client's).
        timeout: Seconds of real time a resolver or directory call may take; None for
            no bound.
    """

    def __init__(
        self,
        config: IntegrationConfig,
        *,
        client: AsyncAccountClient | None = None,
        owners: OwnerResolver | AsyncOwnerResolver | None = None,
        directory: IdentityDirectory | AsyncIdentityDirectory | None = None,
        tags: TagSource | None = None,
        clock: Clock | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        if directory is None and client is not None:
            directory = AsyncDatabricksDirectory(client, clock=clock)
        setting = config.resource_owner if isinstance(config, IntegrationConfig) else None
        if tags is None and isinstance(config, IntegrationConfig):
            tags = config.tag_source()  # the configuration's owner_tags, if any
        if owners is None and setting is not None and tags is not None and directory is not None:
            if _is_async(directory.is_member):
                owners = AsyncTagOwnerResolver(setting, tags, directory)  # type: ignore[arg-type]
            else:
                owners = TagOwnerResolver(setting, tags, directory)  # type: ignore[arg-type]
        super().__init__(
            config,
            resolver=owners,
            directory=directory,
            tags_given=tags is not None,
            timeout=timeout,
        )
        self._client = client
        self._owners: OwnerResolver | AsyncOwnerResolver | None = owners
        self._identity: IdentityDirectory | AsyncIdentityDirectory | None = directory

    def __repr__(self) -> str:
        return f"AsyncIntegration(name={self._config.name!r}, owners={self._owners!r})"

    @property
    def owners(self) -> OwnerResolver | AsyncOwnerResolver | None:
        """The owner resolver in use, if any."""
        return self._owners

    @property
    def directory(self) -> IdentityDirectory | AsyncIdentityDirectory | None:
        """The identity directory in use, if any."""
        return self._identity

    async def _resolve(
        self, resolver: OwnerResolver | AsyncOwnerResolver, group: Group | str
    ) -> object:
        if isinstance(group, str):
            group = await self._client.groups.get(group) if self._client else Group(id=group)
        if _is_async(resolver.resolve):
            return _collect(await resolver.resolve(group))  # type: ignore[misc]
        found = group
        return await self._workers.acall(lambda: _collect(resolver.resolve(found)))

    async def approvers_for(self, group: Group | str) -> Approvers:
        """Who may approve access to `group`, and why (see `Integration.approvers_for`)."""
        checked = _check_group(group)
        problems = list(self._setup_problems)
        resolver = self._owners
        if resolver is not None:
            try:
                result = await bounded(self._resolve(resolver, checked), self._timeout)
            except TimedOutError:
                problems.append(self._timed_out("the owner resolver"))
            except BusyError:
                problems.append(self._busy("the owner resolver"))
            except Exception as exc:  # noqa: BLE001 - any failure falls back, reported
                problems.append(_failure("the owner resolver failed", exc))
            else:
                approvers = self._resolved(result, problems)
                if approvers is not None:
                    return approvers
        return self._fallback(problems)

    async def is_approver(self, identity: str, approvers: Approvers) -> bool:
        """Whether `identity` may approve (see `Integration.is_approver`)."""
        decided = self._direct_match(identity, approvers)
        if decided is not None:
            return decided
        directory = self._identity
        assert directory is not None  # noqa: S101 - _direct_match checked it

        async def ask() -> bool:
            for group in approvers.groups:
                if _is_async(directory.is_member):
                    answer = await directory.is_member(identity, group.name)  # type: ignore[misc]
                else:
                    answer = await self._workers.acall(_membership_call(directory, identity, group))
                if answer is True:
                    return True
            return False

        try:
            result: bool = await bounded(ask(), self._timeout)
        except (TimedOutError, BusyError) as exc:
            raise self._directory_timeout(exc) from None
        return result
