"""The error mapper, the retry policy and the throttle: pure functions, table-driven."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import databricks_access as da
from helpers.internals import (
    OpClass,
    Throttle,
    error_from_reply,
    parse_error_body,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "detail"),
    [
        (
            404,
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"Group with id 1 is not found","status":"404"}',
            da.NotFoundError,
            None,
            "Group with id 1 is not found",
        ),
        (
            400,
            b'{"detail":"bad filter","scimType":"InvalidFilter","status":"400"}',
            da.BadRequestError,
            "InvalidFilter",
            "bad filter",
        ),
        (
            400,
            b'{"detail":"x","scimType":"invalidSyntax","status":"400"}',
            da.BadRequestError,
            "invalidSyntax",
            "x",
        ),
        (
            409,
            b'{"detail":"Group with name ops already exists.","status":"409"}',
            da.ConflictError,
            None,
            "Group with name ops already exists.",
        ),
        (
            400,
            b'{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"gone"}',
            da.NotFoundError,
            "RESOURCE_DOES_NOT_EXIST",
            "gone",
        ),
        (
            401,
            b'{"error_code":401,"message":"Credential was not sent"}',
            da.AuthenticationError,
            "401",
            "Credential was not sent",
        ),
        (
            401,
            b'{"error":"invalid_client","error_description":"Client authentication failed"}',
            da.AuthenticationError,
            "invalid_client",
            "Client authentication failed",
        ),
        (
            403,
            b"PERMISSION_DENIED: not an account admin",
            da.PermissionDeniedError,
            "PERMISSION_DENIED",
            "not an account admin",
        ),
        (404, b"", da.NotFoundError, None, ""),
        (429, b"", da.RateLimitedError, None, ""),
        (429, b"Too many requests", da.RateLimitedError, None, "Too many requests"),
        (
            500,
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"REQUEST_LIMIT_EXCEEDED: rate limit","status":"500"}',
            da.RateLimitedError,
            "REQUEST_LIMIT_EXCEEDED",
            "rate limit",
        ),
        (
            500,
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"REQUEST_LIMIT_EXCEEDED: Workspace 1234 exceeded the concurrent limit","status":"500"}',
            da.RateLimitedError,
            "REQUEST_LIMIT_EXCEEDED",
            "Workspace 1234 exceeded the concurrent limit",
        ),
        (
            429,
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"REQUEST_LIMIT_EXCEEDED: Too many requests.","status":"429"}',
            da.RateLimitedError,
            "REQUEST_LIMIT_EXCEEDED",
            "Too many requests.",
        ),
        (
            429,
            b'{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"REQUEST_LIMIT_EXCEEDED: slow down"}',
            da.RateLimitedError,
            "REQUEST_LIMIT_EXCEEDED",
            "slow down",
        ),
        (
            403,
            b'{"error_code":403,"message":"PERMISSION_DENIED: not an admin"}',
            da.PermissionDeniedError,
            "PERMISSION_DENIED",
            "not an admin",
        ),
        (
            500,
            b'{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}',
            da.RateLimitedError,
            "REQUEST_LIMIT_EXCEEDED",
            "slow down",
        ),
        (500, b"<html><body>Bad gateway</body></html>", da.ServerError, None, ""),
        (502, b"", da.ServerError, None, ""),
        (418, b"{}", da.ApiError, None, ""),
        (
            400,
            b'{"error_code":"INVALID_PARAMETER_VALUE","message":"nope"}',
            da.BadRequestError,
            "INVALID_PARAMETER_VALUE",
            "nope",
        ),
    ],
)
def test_every_error_body_form_maps_to_its_error(status, body, cls, code, detail):
    error = error_from_reply(status, body, method="GET", path="/x")
    assert type(error) is cls
    assert error.status_code == status
    assert error.error_code == code
    assert error.detail == detail
    assert "None " not in str(error)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b'{"detail":"REQUEST_LIMIT_EXCEEDED: Workspace 1234 exceeded","status":"500"}'),
        (429, b'{"detail":"REQUEST_LIMIT_EXCEEDED: Too many requests","status":"429"}'),
        (429, b"REQUEST_LIMIT_EXCEEDED: Too many requests"),
        (429, b'{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"REQUEST_LIMIT_EXCEEDED: x"}'),
    ],
)
def test_the_code_appears_once_in_the_message(status, body):
    message = str(error_from_reply(status, body, method="GET", path="/x"))
    assert message.count("REQUEST_LIMIT_EXCEEDED") == 1, message


def test_error_code_is_mapped_before_the_status():
    assert isinstance(
        error_from_reply(400, b'{"error_code":"ALREADY_EXISTS","message":"x"}'), da.ConflictError
    )
    assert isinstance(
        error_from_reply(200, b'{"error_code":"PERMISSION_DENIED","message":"x"}'),
        da.PermissionDeniedError,
    )


def test_huge_details_are_shortened_and_errors_pickle():
    error = error_from_reply(500, b'{"detail":"' + b"x" * 10_000 + b'"}', retry_after=2.0)
    assert len(error.detail) <= 500
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (type(copy), copy.status_code, copy.retry_after) == (da.ServerError, 500, 2.0)
    transport = pickle.loads(pickle.dumps(da.TransportError("x", request_not_sent=True)))  # noqa: S301
    assert transport.request_not_sent


@given(status=st.integers(100, 599), body=st.binary(max_size=300))
def test_the_mapper_never_raises(status, body):
    error = error_from_reply(status, body)
    assert isinstance(error, da.ApiError)
    code, detail = parse_error_body(body)
    assert code is None or isinstance(code, str)
    assert isinstance(detail, str)


def test_config_error_lists_every_problem():
    error = da.ConfigError(
        [da.ConfigProblem("host", "bad"), da.ConfigProblem("account_id", "bad too")]
    )
    assert error.fields == ("host", "account_id")
    assert "2 configuration problems" in str(error)
    assert str(da.ConfigError("must be positive", "ttl")) == "ttl: must be positive"


# -- Retry-After and the policy -------------------------------------------------------------


NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        ("1.58", 1.58),
        (" 0 ", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Thu, 01 Jan 2026 12:00:30", None),
    ],
)
def test_retry_after_forms(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


def test_backoff_is_full_jitter_capped_and_inside_the_deadline():
    policy = da.RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=4.0, deadline=10.0)
    assert policy.delay(attempt=1, elapsed=0, rand=lambda: 0.999) == pytest.approx(0.999)
    assert policy.delay(attempt=3, elapsed=0, rand=lambda: 0.5) == 2.0
    assert policy.delay(attempt=4, elapsed=0, rand=lambda: 1.0) == 4.0  # capped
    assert policy.delay(attempt=5, elapsed=0, rand=lambda: 0.5) is None  # attempts spent
    assert policy.delay(attempt=1, elapsed=9.9, rand=lambda: 0.5) is None  # past the deadline
    assert policy.delay(attempt=1, elapsed=0, retry_after=3.0, rand=lambda: 0.0) == 3.0
    assert policy.delay(attempt=1, elapsed=0, retry_after=3600.0) is None  # capped at 60 > deadline
    assert da.RetryPolicy().delay(attempt=1, elapsed=0, retry_after=3600.0, rand=lambda: 0) == 60.0
    assert policy.delay(attempt=1, elapsed=0, retry_after=1.0, deadline=0.5) is None


def test_retry_after_waits_are_jittered_never_shortened():
    policy = da.RetryPolicy()
    assert policy.delay(attempt=1, elapsed=0, retry_after=2.0, rand=lambda: 0.0) == 2.0
    assert policy.delay(attempt=1, elapsed=0, retry_after=2.0, rand=lambda: 0.5) == 2.2
    assert policy.delay(attempt=1, elapsed=0, retry_after=2.0, rand=lambda: 0.999) < 2.4
    # Two replicas told the same Retry-After come back at different times.
    waits = {policy.delay(attempt=1, elapsed=0, retry_after=1.0) for _ in range(20)}
    assert len(waits) > 1 and all(1.0 <= w <= 1.2 for w in waits)
    # A wait already capped is spread below the cap, never past it.
    assert policy.delay(attempt=1, elapsed=0, retry_after=600.0, rand=lambda: 0.5) == 54.0
    assert policy.delay(attempt=1, elapsed=0, retry_after=59.0, rand=lambda: 0.5) == 60.0
    steady = da.RetryPolicy(retry_after_jitter=0.0)
    assert steady.delay(attempt=1, elapsed=0, retry_after=2.0, rand=lambda: 0.9) == 2.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="retry_after_jitter"):
            da.RetryPolicy(retry_after_jitter=bad)


@pytest.mark.parametrize(
    ("error", "idempotent", "retry"),
    [
        (da.RateLimitedError(429), False, True),
        (da.RateLimitedError(500, "REQUEST_LIMIT_EXCEEDED"), False, True),
        (da.ServerError(503), False, True),
        (da.ServerError(500), False, False),
        (da.ServerError(500), True, True),
        (da.ServerError(502), True, True),
        (da.BadRequestError(400), True, False),
        (da.NotFoundError(404), True, False),
        (da.TransportError("reset"), False, False),
        (da.TransportError("reset"), True, True),
        (da.TransportError("refused", request_not_sent=True), False, True),
        (da.RequestTimeoutError("slow"), True, True),
        (da.ConfigError("x"), True, False),
    ],
)
def test_what_is_retried(error, idempotent, retry):
    assert da.RetryPolicy().retryable(error, idempotent=idempotent) is retry


# -- the client-side throttle ---------------------------------------------------------------------


def test_throttle_spaces_each_class_independently():
    clock = da.ManualClock()
    throttle = Throttle(da.RateLimits(patch=2.0, get=10.0), clock.monotonic)
    waits = [throttle.reserve(OpClass.PATCH) for _ in range(4)]
    assert waits == [0.0, 0.5, 1.0, 1.5]
    assert throttle.reserve(OpClass.GET) == 0.0
    assert throttle.reserve(OpClass.WRITE) == 0.0  # unlimited
    clock.advance(10)
    assert throttle.reserve(OpClass.PATCH) == 0.0


def test_throttle_burst_lets_a_quiet_class_send_at_once():
    clock = da.ManualClock()
    throttle = Throttle(da.RateLimits(list=4.0, burst=0.75), clock.monotonic)
    assert [throttle.reserve(OpClass.LIST) for _ in range(5)] == [0.0, 0.0, 0.0, 0.25, 0.5]
    # A one-second bucket at 100/s lets 100 go at once, then spaces the rest.
    fast = Throttle(da.RateLimits(patch=100.0, burst=1.0), clock.monotonic)
    waits = [fast.reserve(OpClass.PATCH) for _ in range(102)]
    assert waits[:100] == [0.0] * 100
    assert waits[100:] == pytest.approx([0.01, 0.02])


def test_published_limits_and_validation():
    limits = da.RateLimits.published(scale=0.5)
    assert (limits.get, limits.list, limits.patch, limits.write) == (10.0, 2.0, 1.0, 2.5)
    assert limits.burst == 0.95  # one second less a 50 ms margin
    with pytest.raises(da.ConfigError, match="patch"):
        da.RateLimits(patch=0)
