"""Decisions e-cology posts back to the hub: `POST /api/v1/webhooks/<instance>`.

In hub-led mode an approver acts on a unified todo; the e-cology flow action (接口动作) that
the integrator installs posts the decision as JSON (`mapping.WeaverDecision`) with headers

| header | value |
|---|---|
| `appid` | the instance's app id |
| `timestamp` | Unix milliseconds; refused when more than `callback_tolerance_seconds` away |
| `sign` | hex HMAC-SHA256 with `callback_secret` of `timestamp + "\\n" + raw body` |

In OA-led mode the flow action at the request's end posts how the request ended
(`mapping.WeaverRequestResult`: `requestid`, `operate` archive/reject/withdraw, `finoadh` =
finoa's claim id), signed the same way; it concludes the claim. The flow action on the
creator's node (申请人提交) posts `operate` = `create` when a request is submitted
(`mapping.WeaverRequestStarted`): the hub reads the request (`getWorkflowRequest`) and, unless
it carries finoa's claim id (finoa made it), records a claim of it through the mapping
`weaver/expense_claim`, linked to the request so that its end concludes the claim. A request
of another workflow is acknowledged and left alone; a form the mapping refuses is a 422 naming
the field; e-cology unreachable is a 503 (send again later).

The event's `eventid` is the inbox message id, so a repeat changes nothing. The answer is
`{"code": 0, "status": true, ...}` with 200, or the problem with its status: 429 and 5xx mean
"send again later", any other 4xx is final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from finoa.connectors.base import (
    CommandOutcome,
    InboundCommand,
    InboundInvalid,
    InboundMessage,
    InboundParse,
    InboundRefused,
    InboundReply,
    InboundRequest,
    SubmitClaim,
    VendorClientOwner,
)
from finoa.connectors.weaver.manifest import DEFAULT_TOLERANCE_SECONDS
from finoa.connectors.weaver.mapping import (
    CLAIM_ID_FIELD,
    REQUEST_STARTED,
    WeaverDecision,
    WeaverRequestResult,
    WeaverRequestStarted,
    claim_from_request,
    conclusion_command,
    decision_command,
    main_field,
)
from finoa.messaging.retry import DeliveryError, ErrorClass

PROBLEM_JSON = "application/problem+json"


def callback_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `sign` header: hex HMAC-SHA256 of `timestamp \\n body` with the callback secret."""
    message = timestamp.encode("ascii") + b"\n" + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _refused(detail: str, field: str) -> InboundRefused:
    return InboundRefused(401, "Invalid signature", detail, kind="invalid-signature", field=field)


class WeaverInbound(VendorClientOwner):
    """Inbound handler of a `weaver` instance (config: `appid`, `callback_secret`,
    `callback_tolerance_seconds`)."""

    request_model: ClassVar[type[BaseModel] | None] = WeaverDecision

    def __init__(
        self, config: Mapping[str, Any], *, clock: Callable[[], float] = time.time
    ) -> None:
        secret, appid = config.get("callback_secret"), config.get("appid")
        if not isinstance(secret, str) or len(secret) < 16:
            raise ValueError("callback_secret: required, at least 16 characters")
        if not isinstance(appid, str) or not appid:
            raise ValueError("appid: is required (a non-empty string)")
        tolerance = config.get("callback_tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 1:
            raise ValueError("callback_tolerance_seconds: must be a positive whole number")
        self._secret, self._appid, self._tolerance, self._clock = secret, appid, tolerance, clock
        self._config = dict(config)
        self._connector: Any = None

    def __repr__(self) -> str:
        return f"WeaverInbound(appid={self._appid!r}, tolerance={self._tolerance})"

    async def verify(self, request: InboundRequest) -> InboundMessage:
        """The app id, a fresh timestamp and the HMAC over the raw body."""
        headers = request.headers
        if not hmac.compare_digest(headers.get("appid", "").encode(), self._appid.encode()):
            raise _refused("appid: not this instance's app id", "appid")
        stamp = headers.get("timestamp", "")
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 15:
            raise _refused("timestamp: Unix milliseconds, plain digits", "timestamp")
        if abs(self._clock() - int(stamp) / 1000) > self._tolerance:
            raise _refused(
                f"timestamp: more than {self._tolerance} s from the hub's clock", "timestamp"
            )
        expected = callback_signature(self._secret, stamp, request.body)
        if not hmac.compare_digest(headers.get("sign", "").encode(), expected.encode()):
            raise _refused("sign: does not match the body and timestamp", "sign")
        return InboundMessage(request, None, request.body)

    async def parse(self, message: InboundMessage) -> InboundParse:
        """One decision on a todo, or (with a `requestid`) how an OA-led request ended; the
        JSON is read strictly first, then validated."""
        data = message.request.read_json(message.body)
        try:
            if isinstance(data, dict) and data.get("operate") == REQUEST_STARTED:
                started = WeaverRequestStarted.model_validate(data)
                command = await self._started(started)
                return InboundParse(message, (command,) if command else ())
            if isinstance(data, dict) and "requestid" in data:
                result = WeaverRequestResult.model_validate(data)
                return InboundParse(message, (conclusion_command(result),))
            decision = WeaverDecision.model_validate(data)
        except ValidationError as exc:
            raise InboundInvalid(exc.errors()) from None
        return InboundParse(message, (decision_command(decision),))

    async def _started(self, started: WeaverRequestStarted) -> InboundCommand | None:
        """The claim of a request an employee submitted; None for a request finoa made (it
        carries the claim id) or one of another workflow."""
        connector = self._client()
        config = connector.config
        try:
            request = await connector.workflow_request(int(started.requestid))
        except DeliveryError as exc:
            if exc.error_class is ErrorClass.PERMANENT:  # e.g. no such request: final
                raise InboundInvalid(
                    [{"type": "value_error", "loc": ("requestid",), "msg": exc.reason,
                      "input": started.requestid}]
                ) from None  # fmt: skip
            raise InboundRefused(
                503, "e-cology unreachable", f"requestid: {exc.reason}", kind="upstream",
                field="requestid",
            ) from None  # fmt: skip
        workflow = str((request.get("workflowBaseInfo") or {}).get("workflowId") or "")
        if workflow != config.workflow_id or main_field(request, CLAIM_ID_FIELD):
            return None
        claim = claim_from_request(config.catalog, {**request, "requestId": started.requestid})
        return SubmitClaim(started.eventid, claim, oa_approval_id=started.requestid)

    def _client(self) -> Any:
        from finoa.connectors.weaver.client import WeaverConnector

        if self._connector is None:
            connector = WeaverConnector(self._config, self.vendor_http())
            if connector.config is None:  # the instance's config was checked when loaded
                raise InboundRefused(
                    503, "e-cology not configured", "requestid: the instance's config is invalid",
                    kind="upstream", field="requestid",
                )  # fmt: skip
            self._connector = connector
        return self._connector

    def reply(self, parsed: InboundParse, outcomes: Sequence[CommandOutcome]) -> InboundReply:
        if not outcomes:  # nothing for finoa to record (a request it made, another workflow)
            return InboundReply(200, _json_bytes({"code": 0, "status": True, "msg": "ok"}))
        (outcome,) = outcomes
        if outcome.ok:
            body = {"code": 0, "status": True, "msg": "ok", **(outcome.result or {})}
            return InboundReply(200, _json_bytes(body))
        headers = {}
        if outcome.retry_after_seconds is not None:
            headers["retry-after"] = str(outcome.retry_after_seconds)
        return InboundReply(
            outcome.status, _json_bytes(outcome.problem or {}), PROBLEM_JSON, headers
        )


def _json_bytes(value: dict[str, Any]) -> bytes:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")
