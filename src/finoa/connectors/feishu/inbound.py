"""Feishu requests to the hub: `POST /api/v1/webhooks/<instance>`.

With an Encrypt Key set, every body is `{"encrypt": "…"}` (AES-256-CBC under
SHA-256(encrypt_key), see `crypto`); a body that is not encrypted is refused. Three kinds of
request arrive, told apart by what the plaintext holds:

1. **`url_verification`** (registering the request URL in the developer console): the
   Verification Token is checked and the reply is `{"challenge": …}`; no command.
2. **Events** (`approval_instance`, `approval_task`, in schema 1.0 `{"uuid", "token",
   "type": "event_callback", "event": {"type", …}}` or 2.0 `{"schema": "2.0", "header":
   {"event_id", "event_type", "token", …}, "event": {…}}`): `verify` checks
   `X-Lark-Signature` (SHA-256 of timestamp + nonce + encrypt_key + body), refuses an
   `X-Lark-Request-Timestamp` further than `callback_tolerance_seconds` from the hub's
   clock, decrypts and checks the token. `parse` reads `approval_instance` of the
   configured approval: PENDING of an instance an employee started in Feishu becomes a
   claim (fetched, then mapped by `feishu/expense_claim`; instances finoa created carry its
   claim id and are skipped); APPROVED, REJECTED, CANCELED and DELETED conclude the claim.
   `approval_task` is followed, no command (the instance's status decides).
3. **Quick actions** (hub-led): 同意 / 拒绝 pressed on finoa's external instance in the
   Approval Center make Feishu call the external approval's `action_callback_url` with
   `{"action_type", "action_context", "user_id", "task_id", "token", …}`, encrypted under
   the action callback key (configured as the Encrypt Key) and carrying its token
   (configured as the Verification Token). It becomes a decision on the task; the task's id
   is the idempotency key, so a second press changes nothing.

An event's id (`header.event_id`, or the 1.0 `uuid`) is its message id: a replayed event is
a duplicate in the inbox and changes nothing. The reply is HTTP 200 once every command was
applied (or was a duplicate, or was refused for good); when one failed transiently (429,
5xx, or 404: the instance may not be recorded yet) it is 503 and Feishu sends it again.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finoa.connectors.base import (
    ApprovalResult,
    CommandOutcome,
    ConcludeApproval,
    DecideTask,
    InboundCommand,
    InboundInvalid,
    InboundMessage,
    InboundParse,
    InboundRefused,
    InboundReply,
    InboundRequest,
    SubmitClaim,
)
from finoa.connectors.feishu.crypto import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EventCryptoError,
    decrypt,
    verify_signature,
)
from finoa.connectors.feishu.mapping import (
    APPROVE,
    CLAIM_ID_WIDGET,
    REJECT,
    FeishuConfig,
    claim_from_instance,
    widget_value,
)
from finoa.connectors.vendor_callbacks import (
    VendorCallbacks,
    callback_time_problem,
    problem_detail,
    to_send_again,
)

STATUS_RESULTS = {
    "APPROVED": ApprovalResult.AGREE,
    "REJECTED": ApprovalResult.REFUSE,
    "CANCELED": ApprovalResult.REVOKE,
    "DELETED": ApprovalResult.TERMINATE,
}
# Timeline entries that end an instance, and whose comment is its reason.
CLOSING_TIMELINE = ("REJECT", "PASS", "CANCEL", "DELETE")
URL_VERIFICATION = "url_verification"


class FeishuEncryptedBody(BaseModel):
    """The body of every Feishu request when an Encrypt Key is set."""

    model_config = ConfigDict(extra="forbid")
    encrypt: str = Field(min_length=1, max_length=1_000_000)


class QuickAction(BaseModel):
    """A quick approval callback from the Approval Center."""

    model_config = ConfigDict(extra="allow")
    action_type: str = Field(pattern=f"^({APPROVE}|{REJECT})$")
    action_context: str = Field(min_length=2, max_length=2000)
    user_id: str = Field(min_length=1, max_length=64)
    task_id: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class ActionContext(BaseModel):
    """What finoa put in its external instance's `action_context`."""

    model_config = ConfigDict(extra="forbid")
    task_id: str = Field(min_length=1, max_length=64)
    claim_id: str = Field(min_length=1, max_length=40)
    approver: str = Field(min_length=1, max_length=32)


def _invalid(loc: tuple[str | int, ...], msg: str, kind: str = "value_error") -> InboundInvalid:
    return InboundInvalid([{"type": kind, "loc": loc, "msg": msg, "input": None}])


def _refused(field: str, detail: str, kind: str = "invalid-signature") -> InboundRefused:
    title = {"invalid-signature": "Invalid signature", "stale-timestamp": "Stale callback"}.get(
        kind, "Bad request"
    )
    return InboundRefused(
        400 if kind == "invalid-body" else 401, title, detail, kind=kind, field=field
    )


def instance_result(
    instance: Mapping[str, Any],
) -> tuple[ApprovalResult, str | None, str | None] | None:
    """The final result of a fetched instance, with who closed it and their comment."""
    result = STATUS_RESULTS.get(str(instance.get("status")))
    if result is None:
        return None
    actor: str | None = None
    comment: str | None = None
    for entry in reversed(instance.get("timeline") or []):
        if isinstance(entry, Mapping) and entry.get("type") in CLOSING_TIMELINE:
            actor = entry.get("user_id") if isinstance(entry.get("user_id"), str) else None
            text = entry.get("comment")
            comment = text if isinstance(text, str) and text else None
            break
    return result, actor, comment


class FeishuInbound(VendorCallbacks):
    """Inbound handler of a `feishu` instance."""

    request_model: ClassVar[type[BaseModel] | None] = FeishuEncryptedBody

    def __init__(self, config: Mapping[str, Any], *, clock: Any = time.time) -> None:
        self.config = FeishuConfig.parse(config)
        self._clock = clock

    def __repr__(self) -> str:
        return f"FeishuInbound(app_id={self.config.app_id!r})"

    async def verify(self, request: InboundRequest) -> InboundMessage:
        outer = request.read_json(request.body)
        if not isinstance(outer, dict):
            raise _refused("encrypt", 'the body must be {"encrypt": "…"}', "invalid-body")
        sealed = outer.get("encrypt")
        if not isinstance(sealed, str) or not sealed:
            raise _refused("encrypt", "the body must be encrypted with the Encrypt Key")
        try:
            plain = decrypt(self.config.encrypt_key, sealed)
        except EventCryptoError as exc:
            raise _refused(exc.field, str(exc)) from None
        try:
            event = request.read_json(plain.encode("utf-8"))
        except Exception:
            raise _refused("encrypt", "does not decrypt to JSON", "invalid-body") from None
        if not isinstance(event, dict):
            raise _refused("encrypt", "does not decrypt to a JSON object", "invalid-body")
        header = event.get("header") if isinstance(event.get("header"), dict) else None
        token = header.get("token") if header is not None else event.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode("utf-8", "replace"), self.config.verification_token.encode("utf-8")
        ):
            raise _refused("token", "is not this app's Verification Token")
        if event.get("type") == URL_VERIFICATION:
            return InboundMessage(request, None, plain.encode("utf-8"))
        if "action_type" in event and SIGNATURE_HEADER not in request.headers:
            return InboundMessage(request, None, plain.encode("utf-8"))
        self._check_signature(request)
        message_id = header.get("event_id") if header is not None else event.get("uuid")
        if not isinstance(message_id, str) or not message_id:
            raise _refused(
                "event_id", "the event has no id (header.event_id or uuid)", "invalid-body"
            )
        return InboundMessage(request, message_id, plain.encode("utf-8"))

    def _check_signature(self, request: InboundRequest) -> None:
        names = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
        timestamp, nonce, got = (request.headers.get(name, "") for name in names)
        for name, value in zip(names, (timestamp, nonce, got), strict=True):
            if not value:
                raise _refused(name, "missing from the headers")
        stale = callback_time_problem(
            timestamp, now=self._clock(), tolerance_seconds=self.config.tolerance_seconds
        )
        if stale is not None:
            raise _refused(TIMESTAMP_HEADER, stale, "stale-timestamp")
        try:
            verify_signature(got, timestamp, nonce, self.config.encrypt_key, request.body)
        except EventCryptoError as exc:
            raise _refused(SIGNATURE_HEADER, exc.reason) from None

    async def parse(self, message: InboundMessage) -> InboundParse:
        event = message.request.read_json(message.body)
        if event.get("type") == URL_VERIFICATION:
            return InboundParse(message, (), context={"challenge": event.get("challenge")})
        if message.message_id is None:
            return InboundParse(message, (self._quick_action(event),), context="action")
        body = event.get("event")
        if not isinstance(body, dict):
            raise _invalid(("event",), "the event has no body object", "dict_type")
        kind = event["header"].get("event_type") if "header" in event else body.get("type")
        if kind == "approval_instance" and body.get("approval_code") == self.config.approval_code:
            command = await self._instance_change(message.message_id, body)
            return InboundParse(message, (command,) if command else (), context="event")
        return InboundParse(message, (), context="event")

    def _quick_action(self, event: Any) -> DecideTask:
        try:
            action = QuickAction.model_validate(event)
            context = ActionContext.model_validate_json(action.action_context)
        except ValidationError as exc:
            raise InboundInvalid(exc.errors()) from None
        if action.user_id != context.approver:
            raise _invalid(("user_id",), f"is not the task's approver {context.approver}")
        if action.task_id is not None and action.task_id != context.task_id:
            raise _invalid(("task_id",), "does not match the action_context")
        approve = action.action_type == APPROVE
        comment = action.reason or (
            "在飞书中同意 / approved in Feishu" if approve else "在飞书中拒绝 / refused in Feishu"
        )
        return DecideTask(
            f"feishu-action-{context.task_id}", context.task_id, context.approver, approve, comment
        )

    async def _instance_change(
        self, message_id: str, event: dict[str, Any]
    ) -> InboundCommand | None:
        code = event.get("instance_code")
        status = event.get("status")
        if not isinstance(code, str) or not code:
            raise _invalid(("event", "instance_code"), "required", "missing")
        if status == "PENDING":
            instance = await self._fetch(code)
            if widget_value(instance, CLAIM_ID_WIDGET):  # created by finoa: the claim exists
                return None
            claim = claim_from_instance(self.config, code, instance)
            return SubmitClaim(message_id, claim, oa_approval_id=code)
        result = STATUS_RESULTS.get(str(status))
        if result is None:
            return None
        actor = comment = claim_id = None
        if status != "DELETED":
            instance = await self._fetch(code)
            concluded = instance_result(instance)
            if concluded is not None:
                _, actor, comment = concluded
            claim_id = widget_value(instance, CLAIM_ID_WIDGET)
        return ConcludeApproval(
            message_id, code, result, actor_id=actor, comment=comment, claim_id=claim_id
        )

    async def _fetch(self, instance_code: str) -> dict[str, Any]:
        from finoa.connectors.feishu.client import FeishuApi

        instance: dict[str, Any] = await self.fetch_from_vendor(
            FeishuApi, lambda api: api.get_instance(instance_code), field="instance_code"
        )
        return instance

    def reply(self, parsed: InboundParse, outcomes: Sequence[CommandOutcome]) -> InboundReply:
        """`{"challenge"}` to a URL verification; HTTP 200 when every command is settled,
        503 while any must be sent again."""
        if isinstance(parsed.context, dict):
            body = json.dumps({"challenge": parsed.context.get("challenge")})
            return InboundReply(200, body.encode("utf-8"))
        again = to_send_again(outcomes)
        if again is not None:
            body = json.dumps(
                {"code": again.status, "msg": problem_detail(again) or "try again"},
                ensure_ascii=False,
            )
            return InboundReply(503, body.encode("utf-8"), headers={"retry-after": "15"})
        if parsed.context == "action":
            (outcome,) = outcomes
            answer: dict[str, Any] = {"code": 0 if outcome.ok else outcome.status}
            answer["msg"] = (
                "success" if outcome.ok else str((outcome.problem or {}).get("detail", ""))
            )
            return InboundReply(200, json.dumps(answer, ensure_ascii=False).encode("utf-8"))
        return InboundReply(200, b'{"msg":"success"}')
