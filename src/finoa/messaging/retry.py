"""Error classes and the retry policy (F5).

One table maps what went wrong (an HTTP status or an exception) to an error class; the class
decides whether a delivery is retried, and when. Connectors never invent their own rules.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

import httpx


class ErrorClass(StrEnum):
    """Why a delivery failed, and so what happens next."""

    TRANSIENT = "transient"  # retry with capped exponential backoff + jitter
    RATE_LIMITED = "rate_limited"  # retry after the peer's Retry-After
    AUTH = "auth"  # refresh credentials, then retry
    PERMANENT = "permanent"  # dead-letter at once
    CONFIG = "config"  # dead-letter at once: fix the configuration, then replay


RETRYABLE = frozenset({ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, ErrorClass.AUTH})

# The one table from HTTP status to error class. Anything not listed: 5xx transient, 4xx permanent.
HTTP_STATUS_CLASSES: dict[int, ErrorClass] = {
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.CONFIG,
    405: ErrorClass.CONFIG,
    408: ErrorClass.TRANSIENT,
    409: ErrorClass.TRANSIENT,
    425: ErrorClass.TRANSIENT,
    429: ErrorClass.RATE_LIMITED,
}

# Exceptions raised by the HTTP client, most specific first.
EXCEPTION_CLASSES: tuple[tuple[type[BaseException], ErrorClass], ...] = (
    (httpx.TimeoutException, ErrorClass.TRANSIENT),
    (httpx.NetworkError, ErrorClass.TRANSIENT),
    (httpx.RemoteProtocolError, ErrorClass.TRANSIENT),
    (httpx.UnsupportedProtocol, ErrorClass.CONFIG),
    (httpx.InvalidURL, ErrorClass.CONFIG),
    (ConnectionError, ErrorClass.TRANSIENT),
    (TimeoutError, ErrorClass.TRANSIENT),
)


# Vendors that name their errors with codes of their own (in the body, with HTTP 200, 400 or
# 403): the class of each code, per vendor. A code not listed falls back to the HTTP status.
VENDOR_CODE_CLASSES: dict[str, dict[str, ErrorClass]] = {
    "dingtalk": {
        # v1.0 open API (`{"code": "…", "message": "…"}`)
        "InvalidAuthentication": ErrorClass.AUTH,  # access token unknown or expired
        "Forbidden.AccessDenied.AccessTokenPermissionDenied": ErrorClass.CONFIG,
        "Forbidden.AccessDenied.QpsLimitForApi": ErrorClass.RATE_LIMITED,
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi": ErrorClass.RATE_LIMITED,
        "autoflowLikeTriggerRateLimited": ErrorClass.RATE_LIMITED,
        "invalidClientIdOrSecret": ErrorClass.AUTH,
        "processInstanceInvalidParameter": ErrorClass.PERMANENT,  # unknown user or dept
        "formConverterError": ErrorClass.CONFIG,  # the mapping does not fit the form
        "targetSelectApproverMissing": ErrorClass.CONFIG,  # the form needs chosen approvers
        "processCodeNotFound": ErrorClass.CONFIG,
        "todoUserNotFound": ErrorClass.PERMANENT,
        "ServiceUnavailable": ErrorClass.TRANSIENT,
        "SystemBusy": ErrorClass.TRANSIENT,
        # topapi (`{"errcode": n, "errmsg": "…"}`, HTTP 200)
        "-1": ErrorClass.TRANSIENT,  # 系统繁忙
        "88": ErrorClass.RATE_LIMITED,
        "90002": ErrorClass.RATE_LIMITED,
        "90018": ErrorClass.RATE_LIMITED,
        "40014": ErrorClass.AUTH,  # 不合法的access_token
        "42001": ErrorClass.AUTH,  # access_token 已过期
        "60003": ErrorClass.PERMANENT,  # 部门不存在
        "60121": ErrorClass.PERMANENT,  # 找不到该用户
        "400002": ErrorClass.PERMANENT,  # 参数错误 (a work notification's fields)
        "400014": ErrorClass.CONFIG,  # the work notification's agent_id is not the app's
    },
    "wecom": {
        # `{"errcode": n, "errmsg": "…"}` with HTTP 200
        "-1": ErrorClass.TRANSIENT,  # 系统繁忙
        "40001": ErrorClass.AUTH,  # invalid credential (corpsecret)
        "40013": ErrorClass.CONFIG,  # invalid corpid
        "40014": ErrorClass.AUTH,  # invalid access_token
        "41001": ErrorClass.AUTH,  # access_token missing
        "42001": ErrorClass.AUTH,  # access_token expired
        "45009": ErrorClass.RATE_LIMITED,  # api freq out of limit
        "45033": ErrorClass.RATE_LIMITED,  # api concurrent out of limit
        "48002": ErrorClass.CONFIG,  # api forbidden: the app lacks the permission
        "60011": ErrorClass.CONFIG,  # no privilege to access/modify contact
        "60020": ErrorClass.CONFIG,  # not allow to access from your ip (trusted IP)
        "60111": ErrorClass.PERMANENT,  # userid not found (or departed)
        "60123": ErrorClass.PERMANENT,  # invalid department id
        "301025": ErrorClass.CONFIG,  # template not found
        "301026": ErrorClass.PERMANENT,  # approval not found
        "301031": ErrorClass.CONFIG,  # approvers missing or wrong
        "301035": ErrorClass.CONFIG,  # a control's id, type or value does not fit the template
        "301036": ErrorClass.CONFIG,  # a required control is empty
        "301055": ErrorClass.PERMANENT,  # the applicant is not in the chosen department
        "40056": ErrorClass.CONFIG,  # message: invalid agentid
        "41016": ErrorClass.PERMANENT,  # message: missing content
        "45002": ErrorClass.PERMANENT,  # message: content too long
        "81013": ErrorClass.PERMANENT,  # message: user & party & tag all invalid
    },
    "feishu": {
        # `{"code": n, "msg": "…", "data": …}` on every answer
        "99991661": ErrorClass.AUTH,  # the tenant access token is missing
        "99991663": ErrorClass.AUTH,  # the tenant access token is invalid or expired
        "99991668": ErrorClass.AUTH,  # the user access token is invalid
        "99991677": ErrorClass.AUTH,  # the token has expired
        "10003": ErrorClass.AUTH,  # invalid app_id
        "10014": ErrorClass.AUTH,  # invalid app_secret
        "99991672": ErrorClass.CONFIG,  # the app lacks a permission (scope)
        "99991400": ErrorClass.RATE_LIMITED,  # request trigger frequency limit
        "1390001": ErrorClass.PERMANENT,  # invalid parameter (unknown or departed user …)
        "1390002": ErrorClass.CONFIG,  # approval code not found
        "1390003": ErrorClass.PERMANENT,  # instance code not found
        "60012": ErrorClass.PERMANENT,  # uuid already used (the connector looks it up)
        "230001": ErrorClass.PERMANENT,  # message: invalid parameter (receive_id, content …)
        "230013": ErrorClass.PERMANENT,  # message: the bot cannot reach this user
        "230020": ErrorClass.RATE_LIMITED,  # message: too many to one chat or user
        "1": ErrorClass.TRANSIENT,  # internal error
    },
}


def classify_vendor_code(vendor: str, code: str, status: int | None = None) -> ErrorClass:
    """Error class of a vendor's own error code; the HTTP status decides when the code is
    not in the table (PERMANENT when there is no status either)."""
    known = VENDOR_CODE_CLASSES.get(vendor, {}).get(code)
    if known is not None:
        return known
    return classify_status(status) if status is not None and status >= 400 else ErrorClass.PERMANENT


def classify_status(status: int) -> ErrorClass:
    """Error class of an HTTP status that is not a success."""
    if status in HTTP_STATUS_CLASSES:
        return HTTP_STATUS_CLASSES[status]
    if status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def classify_exception(exc: BaseException) -> ErrorClass:
    """Error class of an exception raised while talking to a peer."""
    for exc_type, error_class in EXCEPTION_CLASSES:
        if isinstance(exc, exc_type):
            return error_class
    return ErrorClass.PERMANENT


# Failures that may come after the peer received the request: it may have acted on it.
UNKNOWN_OUTCOME_EXCEPTIONS: tuple[type[BaseException], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
# Server errors after which the request may have been acted on. Not 501/505 (never run) nor
# 503 (the server says it could not take the request at all).
UNKNOWN_OUTCOME_STATUSES = frozenset(range(500, 600)) - {501, 503, 505}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The seconds of a `Retry-After` header, when it has them."""
    header = response.headers.get("retry-after")
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


class DeliveryError(Exception):
    """A delivery failed; `error_class` says what happens next.

    `outcome_unknown` is set when the request may have reached the peer and been acted on (a
    read timeout, a connection dropped after sending, a 5xx): before the message is sent
    again, the dispatcher asks the connector's posted-lookup whether it already happened.
    """

    def __init__(
        self,
        error_class: ErrorClass,
        reason: str,
        *,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(reason)
        self.error_class = error_class
        self.reason = reason
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown

    @classmethod
    def from_response(cls, response: httpx.Response) -> DeliveryError:
        retry_after = retry_after_seconds(response)
        body = response.text[:300]
        return cls(
            classify_status(response.status_code),
            f"HTTP {response.status_code} from {response.request.url.path}: {body}",
            retry_after=retry_after,
            outcome_unknown=response.status_code in UNKNOWN_OUTCOME_STATUSES,
        )

    @classmethod
    def from_exception(cls, exc: BaseException) -> DeliveryError:
        return cls(
            classify_exception(exc),
            f"{type(exc).__name__}: {exc}".strip(),
            outcome_unknown=isinstance(exc, UNKNOWN_OUTCOME_EXCEPTIONS),
        )


DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, for as long as real outages last.

    A retryable failure is retried until the message has been failing for `retry_for_seconds`
    (a day by default), so an ERP or OA outage of minutes or hours heals by itself; only
    permanent and configuration errors become dead letters at once. `max_attempts`, when set,
    is a hard cap on the number of attempts as well.
    """

    base_seconds: float = 0.2
    cap_seconds: float = 60.0
    max_attempts: int | None = None
    retry_for_seconds: float = DAY_SECONDS

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** min(max(0, attempt - 1), 64)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def next_step(
        self,
        error: DeliveryError,
        attempts: int,
        *,
        failing_for: float = 0.0,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds until the next try, or None to dead-letter now.

        `failing_for` is how long the message has been failing without a success.
        """
        if error.error_class not in RETRYABLE:
            return None
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        if failing_for >= self.retry_for_seconds:
            return None
        if error.error_class is ErrorClass.RATE_LIMITED and error.retry_after is not None:
            return min(self.cap_seconds, error.retry_after)
        return self.delay(attempts, rng=rng)
