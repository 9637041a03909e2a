"""The K/3 Cloud WebAPI wire format, shared by the connector and the simulator.

Every call is `POST {server_url}/{service}.common.kdsvc` with a JSON body. Operations on a form
take `{"formid": ..., "data": {...}}`; the answer is `{"Result": {"ResponseStatus": {...}}}`
with `IsSuccess`, `Errors[{FieldName, Message, DIndex}]`, `SuccessEntitys[{Id, Number,
DIndex}]` and `MsgCode`. A lost session is answered with HTTP 200, `MsgCode` 1 and the message
"会话信息已丢失，请重新登录".

Two ways to sign in:

- `ValidateUser` with the account set id (`acctID`), user name, password and locale: the
  session travels in the cookie (and header) `kdservice-sessionid` afterwards;
- the app-secret scheme of Kingdee's SDK: every request carries `X-Kd-Appkey` (the app id),
  `X-Kd-Appdata` (base64 of "acct_id,user_name,lcid,org_num") and `X-Kd-Signature`
  (HMAC-SHA256 of app id + app data under the app secret), plus `X-Api-Signature`, an
  HMAC-SHA256 of the method, the URL-encoded path, the nonce and the timestamp under a client
  secret derived from the second half of the app id.

Each HMAC is sent as base64 of its lower-case hex digest, as the SDK does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any
from urllib.parse import quote

from finoa.messaging.retry import DeliveryError, ErrorClass

STUB = "Kingdee.BOS.WebApi.ServicesStub"
VALIDATE_USER = f"{STUB}.AuthService.ValidateUser"
SAVE = f"{STUB}.DynamicFormService.Save"
SUBMIT = f"{STUB}.DynamicFormService.Submit"
AUDIT = f"{STUB}.DynamicFormService.Audit"
VIEW = f"{STUB}.DynamicFormService.View"
EXECUTE_BILL_QUERY = f"{STUB}.DynamicFormService.ExecuteBillQuery"
SUFFIX = ".common.kdsvc"

VOUCHER_FORM = "GL_VOUCHER"
SESSION_COOKIE = "kdservice-sessionid"
SESSION_LOST = "会话信息已丢失，请重新登录"
LOGIN_SUCCESS = 1  # ValidateUser's LoginResultType for a session granted
SIGNATURE_WINDOW_SECONDS = 300  # how far x-api-timestamp may be from the server's clock

# The document states of a K/3 Cloud bill (FDocumentStatus).
DRAFT, CREATED, SUBMITTED, AUDITED, REOPENED = "Z", "A", "B", "C", "D"

# The XOR key of the app-secret scheme (the SDK's default, with its per-call random digits
# dropped, as the SDK drops them): it turns the app id's second half into the client secret.
_CLIENT_SECRET_KEY = b"0054f397c6234378b09ca7d3e5debce7"


class MsgCode(IntEnum):
    """`ResponseStatus.MsgCode`: why K/3 Cloud refused an operation."""

    NONE = 0
    SESSION_LOST = 1  # 上下文丢失: sign in again
    NO_PERMISSION = 2
    OPERATION_MISSING = 3
    EXCEPTION = 4
    FORM_MISSING = 5
    DATABASE_FAILED = 6
    LICENCE = 7
    BAD_PARAMETER = 8
    NOT_FOUND_FIELD_OR_VALUE = 9  # a field, or base data under an FNumber, does not exist
    NOT_FOUND = 10
    VALIDATION_FAILED = 11
    NOT_OPERABLE = 12
    NETWORK_CONTROL = 13  # 网控冲突: someone else holds the bill
    CALL_LIMIT = 14
    ADMIN_LOGIN_FORBIDDEN = 15


# MsgCode -> what the retry policy does about it. Not listed: PERMANENT (the request is wrong).
MSG_CODE_CLASSES: dict[int, ErrorClass] = {
    MsgCode.SESSION_LOST: ErrorClass.AUTH,
    MsgCode.NO_PERMISSION: ErrorClass.CONFIG,
    MsgCode.EXCEPTION: ErrorClass.TRANSIENT,
    MsgCode.DATABASE_FAILED: ErrorClass.TRANSIENT,
    MsgCode.LICENCE: ErrorClass.CONFIG,
    MsgCode.NETWORK_CONTROL: ErrorClass.TRANSIENT,
    MsgCode.CALL_LIMIT: ErrorClass.RATE_LIMITED,
    MsgCode.ADMIN_LOGIN_FORBIDDEN: ErrorClass.CONFIG,
}


def service_url(server_url: str, service: str) -> str:
    """The URL of a WebAPI service under `server_url` (e.g. https://erp.example.com/K3Cloud/)."""
    return f"{server_url.rstrip('/')}/{service}{SUFFIX}"


# -- the app-secret scheme ----------------------------------------------------------------------


def kd_hmac(content: str, key: str) -> str:
    """HMAC-SHA256 of `content` under `key`, as base64 of the lower-case hex digest."""
    digest = hmac.new(key.encode(), content.encode(), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def client_secret(app_id: str) -> str:
    """The client secret the app id's second half stands for ("" when it has none)."""
    _, sep, encoded = app_id.partition("_")
    if not sep or len(encoded) != 32:
        return ""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return ""
    mixed = bytes(b ^ k for b, k in zip(raw, _CLIENT_SECRET_KEY, strict=False))
    return base64.b64encode(mixed).decode()


def client_id(app_id: str) -> str:
    head, sep, tail = app_id.partition("_")
    return head if sep and "_" not in tail else ""


def app_data(acct_id: str, user_name: str, lcid: int, org_num: int) -> str:
    return f"{acct_id},{user_name},{lcid},{org_num}"


def signed_path(path: str) -> str:
    """The path as the scheme signs it: URL-encoded, slashes too."""
    return quote(path, safe="")


def api_signature(path: str, nonce: str, timestamp: str, secret: str) -> str:
    text = f"POST\n{signed_path(path)}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{timestamp}\n"
    return kd_hmac(text, secret)


@dataclass(frozen=True)
class AppCredentials:
    """What the app-secret scheme signs with (the names of Kingdee's console)."""

    acct_id: str
    user_name: str
    app_id: str
    app_secret: str = field(repr=False)
    lcid: int = 2052
    org_num: int = 0

    def headers(self, path: str, now: float) -> dict[str, str]:
        """The signed headers of one `POST path` at `now` (epoch seconds)."""
        stamp = str(int(now))
        data = app_data(self.acct_id, self.user_name, self.lcid, self.org_num)
        return {
            "X-Api-ClientID": client_id(self.app_id),
            "X-Api-Auth-Version": "2.0",
            "x-api-timestamp": stamp,
            "x-api-nonce": stamp,
            "x-api-signheaders": "x-api-timestamp,x-api-nonce",
            "X-Api-Signature": api_signature(path, stamp, stamp, client_secret(self.app_id)),
            "X-Kd-Appkey": self.app_id,
            "X-Kd-Appdata": base64.b64encode(data.encode()).decode(),
            "X-Kd-Signature": kd_hmac(self.app_id + data, self.app_secret),
        }

    def refusal(self, headers: Mapping[str, str], path: str, now: float) -> str | None:
        """Which signed header of a request is wrong (None: the request is signed by us).
        `headers` must be looked up case-insensitively (as Starlette's are)."""
        if headers.get("x-kd-appkey") != self.app_id:
            return "X-Kd-Appkey"
        try:
            data = base64.b64decode(headers.get("x-kd-appdata", ""), validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return "X-Kd-Appdata"
        acct, _, rest = data.partition(",")
        user, _, _ = rest.partition(",")
        if acct != self.acct_id or user != self.user_name:
            return "X-Kd-Appdata"
        expected = kd_hmac(self.app_id + data, self.app_secret)
        if not hmac.compare_digest(headers.get("x-kd-signature", ""), expected):
            return "X-Kd-Signature"
        stamp, nonce = headers.get("x-api-timestamp", ""), headers.get("x-api-nonce", "")
        if not stamp.isdigit() or abs(int(stamp) - now) > SIGNATURE_WINDOW_SECONDS:
            return "x-api-timestamp"
        signature = api_signature(path, nonce, stamp, client_secret(self.app_id))
        if not hmac.compare_digest(headers.get("x-api-signature", ""), signature):
            return "X-Api-Signature"
        return None


# -- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseStatus:
    """`Result.ResponseStatus` of an answer."""

    is_success: bool
    msg_code: int
    errors: tuple[dict[str, Any], ...]
    entities: tuple[dict[str, Any], ...]

    @property
    def session_lost(self) -> bool:
        return self.msg_code == MsgCode.SESSION_LOST or any(
            "会话信息已丢失" in str(e.get("Message") or "") for e in self.errors
        )

    def describe(self) -> str:
        """The errors in one line: `FieldName: Message` each (the field when Kingdee names it)."""
        parts = []
        for error in self.errors:
            name = error.get("FieldName")
            message = str(error.get("Message") or "").strip()
            parts.append(f"{name}: {message}" if name else message)
        return "; ".join(parts) or "no error message"

    def error(self, step: str) -> DeliveryError:
        """The DeliveryError for a refused `step`, classed by the MsgCode table."""
        code = MsgCode.SESSION_LOST if self.session_lost else self.msg_code
        error_class = MSG_CODE_CLASSES.get(code, ErrorClass.PERMANENT)
        return DeliveryError(
            error_class, f"K/3 Cloud refused {step} (MsgCode {code}): {self.describe()}"
        )


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _dicts(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, dict))


def response_status(answer: Any) -> ResponseStatus | None:
    """The ResponseStatus in an answer (a Save/Submit/Audit object, or the error row of an
    ExecuteBillQuery list), or None when the answer holds none."""
    while isinstance(answer, list) and answer:
        answer = answer[0]
    if not isinstance(answer, dict):
        return None
    result = answer.get("Result")
    status = result.get("ResponseStatus") if isinstance(result, dict) else None
    if not isinstance(status, dict):
        return None
    code = status.get("MsgCode", 0)
    return ResponseStatus(
        is_success=_truthy(status.get("IsSuccess")),
        msg_code=code if isinstance(code, int) and not isinstance(code, bool) else 0,
        errors=_dicts(status.get("Errors")),
        entities=_dicts(status.get("SuccessEntitys")),
    )


def status_answer(
    *,
    errors: Sequence[Mapping[str, Any]] = (),
    entities: Sequence[Mapping[str, Any]] = (),
    msg_code: int = 0,
    **result: Any,
) -> dict[str, Any]:
    """An operation's answer in K/3 Cloud's shape: a success without `errors`."""
    ok = not errors
    return {
        "Result": {
            "ResponseStatus": {
                "ErrorCode": 0 if ok else 500,
                "IsSuccess": ok,
                "Errors": [dict(e) for e in errors],
                "SuccessEntitys": [dict(e) for e in entities],
                "SuccessMessages": [],
                "MsgCode": msg_code,
            },
            **result,
        }
    }


def field_error(field_name: str | None, message: str, index: int = 0) -> dict[str, Any]:
    return {"FieldName": field_name, "Message": message, "DIndex": index}
