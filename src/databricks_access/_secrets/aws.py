"""OAuth client credentials from AWS Secrets Manager (the `aws` extra: boto3).

boto3 is imported when a store is built, never by `import databricks_access`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Protocol

from databricks_access._clock import Clock
from databricks_access._errors import ConfigError, SecretStoreError
from databricks_access._secrets.cloud import (
    DEFAULT_CACHE_TTL,
    CloudSecretStore,
    call_sdk,
    check_text,
    import_sdk,
)
from databricks_access._util.describe import shown

__all__ = ["REF_OPTIONS", "AwsSecretsManagerStore", "check_ref", "open_ref"]

_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z0-9-]+):[0-9]{12}:secret:.+")
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-[0-9]+")
_STAGE = re.compile(r"[A-Za-z0-9_-]{1,256}")


class _SecretsManagerClient(Protocol):
    """The one call made on a boto3 `secretsmanager` client."""

    def get_secret_value(self, *, SecretId: str, VersionStage: str) -> Mapping[str, Any]:  # noqa: N803 - boto3's names
        """`GetSecretValue`."""
        ...


class _Session(Protocol):
    """A boto3 `Session`: what builds the client."""

    def client(self, service_name: str, *, region_name: str | None = None) -> Any:
        """A client for `service_name`."""
        ...


# Error codes of GetSecretValue, and what each means for the operator.
_CODES: Mapping[str, str] = {
    "ResourceNotFoundException": (
        "not found (no such secret, or no version with that stage) [ResourceNotFoundException]"
    ),
    "AccessDeniedException": (
        "access denied: the caller needs secretsmanager:GetSecretValue on the secret "
        "[AccessDeniedException]"
    ),
    "DecryptionFailure": (
        "cannot be decrypted: the caller needs kms:Decrypt on the secret's KMS key "
        "[DecryptionFailure]"
    ),
    "InvalidRequestException": (
        "cannot be read in its current state (it may be scheduled for deletion) "
        "[InvalidRequestException]"
    ),
    "InvalidParameterException": "the request was refused [InvalidParameterException]",
    "InternalServiceError": "Secrets Manager failed [InternalServiceError]; try again",
    "ThrottlingException": "Secrets Manager is throttling requests [ThrottlingException]",
    "UnrecognizedClientException": (
        "the AWS credentials were refused [UnrecognizedClientException]"
    ),
    "InvalidSignatureException": "the AWS credentials were refused [InvalidSignatureException]",
    "ExpiredTokenException": "the AWS session token has expired [ExpiredTokenException]",
}


class AwsSecretsManagerStore(CloudSecretStore):
    """Credentials from an AWS Secrets Manager secret holding the JSON document.

    The secret's value (`SecretString`, or `SecretBinary` holding UTF-8 JSON) is
    `{"client_id": "...", "client_secret": "..."}`; other keys are ignored. It is read
    with `GetSecretValue`, cached for `cache_ttl` seconds, and read again at once with
    `refresh=True` (after Databricks refused the credentials: a rotation). Needs the
    `aws` extra (`pip install "databricks-access[aws]"`). Thread-safe.

    Args:
        secret_id: The secret's name (`prod/databricks`) or full ARN.
        region: The AWS region; default the ARN's region, else boto3's default
            (`AWS_REGION`, `AWS_DEFAULT_REGION`, the shared config).
        version_stage: The staging label to read (`AWSCURRENT`; `AWSPREVIOUS` to read the
            previous version during a rotation).
        session: A `boto3.session.Session` to build the client from (a profile, assumed
            role credentials); default a new session with boto3's credential chain.
        client: A ready `secretsmanager` client (its region wins); left open by `close`.
        cache_ttl: Seconds (or a timedelta) the credentials are served from the cache;
            0 reads the secret at every call.
        clock: The clock whose monotonic time ages the cache (default the system's).

    Raises:
        ConfigError: A bad argument, or boto3 is not installed (naming the extra).

    Example:
        >>> store = AwsSecretsManagerStore("prod/databricks", region="eu-west-1")
        >>> store
        AwsSecretsManagerStore('prod/databricks', region='eu-west-1')
        >>> store.where
        "AWS Secrets Manager secret 'prod/databricks' in eu-west-1"
        >>> store.close()
    """

    def __init__(
        self,
        secret_id: str,
        *,
        region: str | None = None,
        version_stage: str = "AWSCURRENT",
        session: _Session | None = None,
        client: _SecretsManagerClient | None = None,
        cache_ttl: float | dt.timedelta = DEFAULT_CACHE_TTL,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(cache_ttl=cache_ttl, clock=clock)
        # The SDK first: a missing extra is the first problem reported.
        self._boto3 = (
            None
            if client is not None
            else import_sdk("boto3", extra="aws", store="AwsSecretsManagerStore", package="boto3")
        )
        self._errors = import_sdk(
            "botocore.exceptions", extra="aws", store="AwsSecretsManagerStore", package="boto3"
        )
        self._secret_id = check_text(secret_id, "secret_id")
        arn = _ARN.fullmatch(self._secret_id)
        arn_region = arn.group("region") if arn else None
        if region is not None:
            region = check_text(region, "region")
            if not _REGION.fullmatch(region):
                raise ConfigError(f"{region!r} is not an AWS region like eu-west-1", "region")
            if arn_region is not None and region != arn_region:
                raise ConfigError(f"the ARN names the region {arn_region}, not {region}", "region")
        if not isinstance(version_stage, str) or not _STAGE.fullmatch(version_stage):
            raise ConfigError("must be a staging label like AWSCURRENT", "version_stage")
        self._region = region or arn_region
        self._stage = version_stage
        self._session = session
        self._injected = client is not None
        self._client: _SecretsManagerClient | None = client
        if client is not None:
            self._region = _client_region(client) or self._region

    @property
    def secret_id(self) -> str:
        """The secret's name or ARN."""
        return self._secret_id

    @property
    def region(self) -> str | None:
        """The region read from; None until boto3's default region is known."""
        return self._region

    @property
    def version_stage(self) -> str:
        """The staging label read (`AWSCURRENT` unless told otherwise)."""
        return self._stage

    @property
    def where(self) -> str:
        """The store in words, as errors name it."""
        text = f"AWS Secrets Manager secret {self._secret_id!r}"
        text += f" in {self._region}" if self._region else " in the default region"
        if self._stage != "AWSCURRENT":
            text += f" (stage {self._stage})"
        return text

    def __repr__(self) -> str:
        text = f"{type(self).__name__}({self._secret_id!r}"
        if self._region:
            text += f", region={self._region!r}"
        if self._stage != "AWSCURRENT":
            text += f", version_stage={self._stage!r}"
        return text + ")"

    def _make_client(self) -> _SecretsManagerClient:
        # Called under the cache lock: one client, built on first use.
        if self._client is None:
            session = self._session
            if session is None:
                assert self._boto3 is not None  # noqa: S101 - set when no client is given
                session = self._boto3.session.Session()
            client: _SecretsManagerClient = session.client(
                "secretsmanager", region_name=self._region
            )
            self._region = _client_region(client) or self._region
            self._client = client
        return self._client

    def _read(self, *, refresh: bool) -> str | bytes:  # noqa: ARG002 - every read is fresh
        client = call_sdk(self.where, self._make_client, self._explain)
        response = call_sdk(
            self.where,
            lambda: client.get_secret_value(SecretId=self._secret_id, VersionStage=self._stage),
            self._explain,
        )
        value: object = response.get("SecretString")
        if value is None:
            value = response.get("SecretBinary")
        if isinstance(value, (str, bytes)):
            return value
        raise SecretStoreError(f"{self.where}: the secret holds no SecretString or SecretBinary")

    def _explain(self, exc: Exception) -> str:
        errors = self._errors
        if isinstance(exc, errors.ClientError):
            response: Mapping[str, Any] = getattr(exc, "response", None) or {}
            code = str(response.get("Error", {}).get("Code") or "an unknown error")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            known = _CODES.get(code)
            if known is not None:
                return known
            return f"Secrets Manager answered {code}" + (f" (HTTP {status})" if status else "")
        if isinstance(exc, errors.NoRegionError):
            return "no AWS region: pass region=, use the secret's ARN, or set AWS_REGION"
        if isinstance(exc, (errors.NoCredentialsError, errors.PartialCredentialsError)):
            return (
                "no AWS credentials found (environment, shared config, web identity, "
                f"container or instance role) [{type(exc).__name__}]"
            )
        if isinstance(exc, errors.BotoCoreError):
            return f"cannot reach Secrets Manager [{type(exc).__name__}]"
        return f"cannot read the secret [{type(exc).__name__}]"

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None and not self._injected:
            close = getattr(client, "close", None)
            if close is not None:
                close()


def _client_region(client: object) -> str | None:
    region: object = getattr(getattr(client, "meta", None), "region_name", None)
    return region if isinstance(region, str) and region else None


# -- the `aws-secrets-manager:` reference ---------------------------------------------------------

REF_OPTIONS = ("region", "version_stage")
"""The options a reference may carry after `?`, in the order they are written back."""
_REF_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_REF_ARN = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}"
)
_REF_ARN_REGION = re.compile(r"arn:[^:]+:secretsmanager:(?P<region>[^:]+):")


def check_ref(rest: str, options: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The secret of `aws-secrets-manager:<rest>`, or None and the problem."""
    if rest.startswith("arn:"):
        if not _REF_ARN.fullmatch(rest):
            return None, (
                "is not a Secrets Manager ARN "
                "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
            )
    elif not _REF_NAME.fullmatch(rest):
        return None, (
            "aws-secrets-manager: needs a secret name (letters, digits, /_+=.@-) or an ARN"
        )
    region = options.get("region")
    if region is not None:
        if not _REGION.fullmatch(region):
            return None, (
                f"aws-secrets-manager: region {shown(region)} is not a region like eu-west-1"
            )
        arn = _REF_ARN_REGION.match(rest)
        if arn is not None and arn.group("region") != region:
            return None, f"aws-secrets-manager: the ARN names the region {arn.group('region')}"
    stage = options.get("version_stage")
    if stage is not None and not _STAGE.fullmatch(stage):
        return None, "aws-secrets-manager: version_stage must be a staging label like AWSCURRENT"
    return rest, None


def open_ref(secret: str, options: Mapping[str, str]) -> AwsSecretsManagerStore:
    """The store of a reference `check_ref` accepted."""
    return AwsSecretsManagerStore(
        secret,
        region=options.get("region"),
        version_stage=options.get("version_stage", "AWSCURRENT"),
    )
