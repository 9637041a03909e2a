"""Tests for finoa.messaging.retry: error classes and the retry policy."""

from __future__ import annotations

import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finoa.messaging.retry import (
    RETRYABLE,
    DeliveryError,
    ErrorClass,
    RetryPolicy,
    classify_exception,
    classify_status,
)

REQUEST = httpx.Request("POST", "http://x/api")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ErrorClass.AUTH),
        (403, ErrorClass.AUTH),
        (404, ErrorClass.CONFIG),
        (405, ErrorClass.CONFIG),
        (408, ErrorClass.TRANSIENT),
        (409, ErrorClass.TRANSIENT),
        (425, ErrorClass.TRANSIENT),
        (429, ErrorClass.RATE_LIMITED),
        (500, ErrorClass.TRANSIENT),
        (502, ErrorClass.TRANSIENT),
        (503, ErrorClass.TRANSIENT),
        (504, ErrorClass.TRANSIENT),
        (599, ErrorClass.TRANSIENT),
        (400, ErrorClass.PERMANENT),
        (410, ErrorClass.PERMANENT),
        (413, ErrorClass.PERMANENT),
        (422, ErrorClass.PERMANENT),
    ],
)
def test_classify_status(status: int, expected: ErrorClass) -> None:
    assert classify_status(status) is expected


def test_retryable_classes() -> None:
    assert {ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, ErrorClass.AUTH} == RETRYABLE


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("t", request=REQUEST), ErrorClass.TRANSIENT),
        (httpx.ReadTimeout("t", request=REQUEST), ErrorClass.TRANSIENT),
        (httpx.WriteTimeout("t", request=REQUEST), ErrorClass.TRANSIENT),
        (httpx.PoolTimeout("t", request=REQUEST), ErrorClass.TRANSIENT),
        (httpx.ConnectError("refused", request=REQUEST), ErrorClass.TRANSIENT),
        (httpx.ReadError("reset", request=REQUEST), ErrorClass.TRANSIENT),
        (httpx.RemoteProtocolError("eof", request=REQUEST), ErrorClass.TRANSIENT),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), ErrorClass.CONFIG),
        (httpx.InvalidURL("bad"), ErrorClass.CONFIG),
        (ConnectionResetError(), ErrorClass.TRANSIENT),
        (TimeoutError(), ErrorClass.TRANSIENT),
        (ValueError("bad json"), ErrorClass.PERMANENT),
        (KeyError("x"), ErrorClass.PERMANENT),
    ],
)
def test_classify_exception(exc: BaseException, expected: ErrorClass) -> None:
    assert classify_exception(exc) is expected


# --- delay ----------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=2**32))
def test_delay_is_within_half_ceiling_and_ceiling(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_seconds=0.2, cap_seconds=60.0)
    ceiling = min(60.0, 0.2 * 2 ** (attempt - 1))
    delay = policy.delay(attempt, rng=random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling
    assert delay <= policy.cap_seconds


def test_delay_is_deterministic_with_a_seeded_rng() -> None:
    policy = RetryPolicy()
    assert policy.delay(4, rng=random.Random(7)) == policy.delay(4, rng=random.Random(7))


def test_delay_grows_then_is_capped() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=10.0)
    rng = random.Random(1)
    assert 0.5 <= policy.delay(1, rng=rng) <= 1.0
    assert 1.0 <= policy.delay(2, rng=rng) <= 2.0
    assert 4.0 <= policy.delay(4, rng=rng) <= 8.0
    assert 5.0 <= policy.delay(5, rng=rng) <= 10.0
    assert 5.0 <= policy.delay(40, rng=rng) <= 10.0


@pytest.mark.parametrize("attempt", [0, -3])
def test_delay_for_attempt_zero_or_less_uses_the_base(attempt: int) -> None:
    policy = RetryPolicy(base_seconds=0.2)  # a computed backoff, not a measured time
    assert 0.1 <= policy.delay(attempt, rng=random.Random(0)) <= 0.2


def test_delay_is_capped_for_very_large_attempts() -> None:
    # max_attempts comes from settings (FINOA_MAX_ATTEMPTS); a policy allowing many attempts
    # must keep returning the cap instead of overflowing 2 ** (attempt - 1) into a float.
    policy = RetryPolicy(base_seconds=0.2, cap_seconds=60.0, max_attempts=5000)
    assert 30.0 <= policy.delay(2000, rng=random.Random(0)) <= 60.0


# --- next_step ------------------------------------------------------------------------------


@pytest.mark.parametrize("error_class", [ErrorClass.PERMANENT, ErrorClass.CONFIG])
def test_next_step_dead_letters_permanent_and_config(error_class: ErrorClass) -> None:
    assert RetryPolicy().next_step(DeliveryError(error_class, "x"), 1) is None


@pytest.mark.parametrize(
    "error_class", [ErrorClass.TRANSIENT, ErrorClass.AUTH, ErrorClass.RATE_LIMITED]
)
def test_next_step_retries_retryable_classes_with_backoff(error_class: ErrorClass) -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0, max_attempts=8)
    step = policy.next_step(DeliveryError(error_class, "x"), 3, rng=random.Random(3))
    assert step is not None
    assert 2.0 <= step <= 4.0
    assert step == policy.delay(3, rng=random.Random(3))


def test_next_step_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    error = DeliveryError(ErrorClass.TRANSIENT, "x")
    assert policy.next_step(error, 2, rng=random.Random(0)) is not None
    assert policy.next_step(error, 3) is None
    assert policy.next_step(error, 4) is None
    limited = DeliveryError(ErrorClass.RATE_LIMITED, "x", retry_after=1)
    assert policy.next_step(limited, 3) is None


def test_next_step_honours_retry_after_for_rate_limited() -> None:
    policy = RetryPolicy(cap_seconds=60.0)
    error = DeliveryError(ErrorClass.RATE_LIMITED, "x", retry_after=7.5)
    assert policy.next_step(error, 1) == 7.5
    assert policy.next_step(DeliveryError(ErrorClass.RATE_LIMITED, "x", retry_after=0.0), 1) == 0.0


def test_next_step_caps_retry_after() -> None:
    error = DeliveryError(ErrorClass.RATE_LIMITED, "x", retry_after=3600)
    assert RetryPolicy(cap_seconds=60.0).next_step(error, 1) == 60.0


def test_next_step_ignores_retry_after_for_other_classes() -> None:
    policy = RetryPolicy(base_seconds=0.2)
    error = DeliveryError(ErrorClass.TRANSIENT, "x", retry_after=30)
    step = policy.next_step(error, 1, rng=random.Random(0))
    assert step is not None and 0.1 <= step <= 0.2


def test_rate_limited_without_retry_after_backs_off() -> None:
    policy = RetryPolicy(base_seconds=0.2)
    step = policy.next_step(DeliveryError(ErrorClass.RATE_LIMITED, "x"), 1, rng=random.Random(0))
    assert step is not None and 0.1 <= step <= 0.2


# --- DeliveryError --------------------------------------------------------------------------


def test_from_response_503_with_retry_after() -> None:
    response = httpx.Response(503, request=REQUEST, headers={"retry-after": "3"}, text="busy")
    error = DeliveryError.from_response(response)
    assert error.error_class is ErrorClass.TRANSIENT
    assert error.retry_after == 3.0
    assert error.reason == "HTTP 503 from /api: busy"
    assert str(error) == error.reason


def test_from_response_429_is_rate_limited_and_next_step_uses_retry_after() -> None:
    response = httpx.Response(429, request=REQUEST, headers={"retry-after": "12"})
    error = DeliveryError.from_response(response)
    assert error.error_class is ErrorClass.RATE_LIMITED
    assert RetryPolicy().next_step(error, 1) == 12.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "1.5"}, 1.5),
    ],
)
def test_from_response_retry_after_parsing(header: dict[str, str], expected: float | None) -> None:
    error = DeliveryError.from_response(httpx.Response(429, request=REQUEST, headers=header))
    assert error.retry_after == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, ErrorClass.AUTH), (404, ErrorClass.CONFIG), (422, ErrorClass.PERMANENT)],
)
def test_from_response_classifies_status(status: int, expected: ErrorClass) -> None:
    assert DeliveryError.from_response(httpx.Response(status, request=REQUEST)).error_class is (
        expected
    )


def test_from_response_truncates_the_body() -> None:
    error = DeliveryError.from_response(httpx.Response(500, request=REQUEST, text="e" * 1000))
    assert error.reason == "HTTP 500 from /api: " + "e" * 300


def test_from_exception() -> None:
    error = DeliveryError.from_exception(httpx.ConnectError("refused", request=REQUEST))
    assert error.error_class is ErrorClass.TRANSIENT
    assert error.reason == "ConnectError: refused"
    assert error.retry_after is None
    assert DeliveryError.from_exception(ValueError()).reason == "ValueError:"
