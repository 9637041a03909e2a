"""DingTalk callbacks to the hub: `POST /api/v1/webhooks/<instance>`.

Two kinds of request arrive:

1. **Encrypted events** (事件订阅, HTTP push): the query carries `msg_signature` (or
   `signature`), `timestamp` (or `timeStamp`, milliseconds) and `nonce`; the body is
   `{"encrypt": "…"}`. `verify` checks the SHA-1 signature over the sorted token, timestamp,
   nonce and encrypt, refuses a timestamp further than `callback_tolerance_seconds` from
   the hub's clock, and decrypts (AES-256-CBC, the owner key checked). `parse` reads:
   - `check_url` (registering the URL): no command;
   - `bpms_instance_change` of the configured form: `start` of an instance finoa knows
     (this process started it: `created_here`, waited for while the start is unanswered;
     or its id is kept against a claim) needs nothing and is answered without a call to
     DingTalk; `start` of any other instance is fetched: one an employee started in
     DingTalk becomes a claim (mapped by `dingtalk/expense_claim`), one finoa created whose
     id is not recorded yet carries its claim id and is skipped; `finish` (agree / refuse),
     `terminate` (the applicant revoked it) and `delete` conclude the claim, from the event
     alone when finoa knows the instance, else with the claim id its form carries (an
     instance finoa created may end before its id is recorded);
   - `bpms_task_change`: followed, no command (the instance's result decides);
   - anything else: no command.
   The reply is the encrypted `success` envelope once every command was applied (or was a
   duplicate, or was refused for good); when one failed transiently (429, 5xx, or 404: the
   instance id may not be recorded yet) the reply is 503, and DingTalk sends it again.
2. **Todo buttons** (hub-led): the 同意 / 拒绝 buttons of finoa's todos make DingTalk send
   the body finoa gave them, with the header `x-finoa-todo-signature` (HMAC-SHA256 under
   a key derived from the subscription secrets). It becomes a decision on the task; the
   task's id is the idempotency key, so a second press changes nothing.

Each event's id (`eventId`, else its type, instance, task and kind) is its message id: a
replayed event is a duplicate in the inbox and changes nothing.
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
from finoa.connectors.created_here import created_here
from finoa.connectors.dingtalk.crypto import SUCCESS, CallbackCrypto, CallbackCryptoError
from finoa.connectors.dingtalk.mapping import (
    APPROVE,
    CLAIM_ID_FIELD,
    REJECT,
    TODO_SIGNATURE_HEADER,
    DingTalkConfig,
    claim_from_instance,
    form_value,
    instance_key,
    todo_action_signature,
    todo_signing_key,
)
from finoa.connectors.vendor_callbacks import (
    VendorCallbacks,
    check_query_timestamp,
    query_value,
    send_again_reply,
    to_send_again,
)

INSTANCE_RESULTS = {
    ("finish", "agree"): ApprovalResult.AGREE,
    ("finish", "refuse"): ApprovalResult.REFUSE,
    ("terminate", None): ApprovalResult.REVOKE,
    ("delete", None): ApprovalResult.TERMINATE,
}


class EncryptedBody(BaseModel):
    """The body of an encrypted DingTalk callback."""

    model_config = ConfigDict(extra="allow")
    encrypt: str = Field(min_length=1, max_length=1_000_000)


class TodoAction(BaseModel):
    """The body of a todo button's request (finoa wrote it when it created the todo)."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(pattern="^todo_action$")
    task_id: str = Field(min_length=1, max_length=64)
    claim_id: str = Field(min_length=1, max_length=40)
    approver_id: str = Field(min_length=1, max_length=32)
    decision: str = Field(pattern=f"^({APPROVE}|{REJECT})$")
    comment: str = Field(max_length=500)


class DingTalkInbound(VendorCallbacks):
    """Inbound handler of a `dingtalk` instance."""

    request_model: ClassVar[type[BaseModel] | None] = EncryptedBody

    def __init__(self, config: Mapping[str, Any], *, clock: Any = time.time) -> None:
        self.config = DingTalkConfig.parse(config)
        self.crypto = CallbackCrypto(self.config.token, self.config.aes_key, self.config.owner_key)
        self._todo_key = todo_signing_key(self.config)
        self._clock = clock

    def __repr__(self) -> str:
        return f"DingTalkInbound(app_key={self.config.app_key!r})"

    async def verify(self, request: InboundRequest) -> InboundMessage:
        if TODO_SIGNATURE_HEADER in request.headers and "msg_signature" not in request.query:
            return self._verify_todo(request)
        signature = query_value(request, "msg_signature", "signature")
        timestamp = query_value(request, "timestamp", "timeStamp")
        nonce = query_value(request, "nonce")
        check_query_timestamp(
            timestamp,
            now=self._clock(),
            tolerance_seconds=self.config.tolerance_seconds,
            milliseconds=True,
        )
        try:
            body = EncryptedBody.model_validate(request.read_json(request.body))
        except ValidationError:
            raise InboundRefused(
                400,
                "Bad request",
                'encrypt: the body must be {"encrypt": "<the encrypted event>"}',
                kind="invalid-body",
                field="encrypt",
            ) from None
        try:
            plain = self.crypto.open(signature, timestamp, nonce, body.encrypt)
        except CallbackCryptoError as exc:
            raise InboundRefused(
                401, "Invalid signature", str(exc), kind="invalid-signature", field=exc.field
            ) from None
        return InboundMessage(request, None, plain.encode("utf-8"))

    def _verify_todo(self, request: InboundRequest) -> InboundMessage:
        got = request.headers.get(TODO_SIGNATURE_HEADER, "")
        expected = todo_action_signature(self._todo_key, request.body.decode("utf-8", "replace"))
        if not hmac.compare_digest(got.encode("utf-8", "replace"), expected.encode("ascii")):
            raise InboundRefused(
                401,
                "Invalid signature",
                f"{TODO_SIGNATURE_HEADER}: does not sign this body",
                kind="invalid-signature",
                field=TODO_SIGNATURE_HEADER,
            )
        return InboundMessage(request, "todo", request.body)

    async def parse(self, message: InboundMessage) -> InboundParse:
        event = message.request.read_json(message.body)
        if message.message_id == "todo":
            return InboundParse(message, (self._todo_decision(event),), context="todo")
        if not isinstance(event, dict):
            raise InboundInvalid(
                [
                    {
                        "type": "dict_type",
                        "loc": (),
                        "msg": "the event is not an object",
                        "input": None,
                    }
                ]
            )
        kind = event.get("EventType")
        if kind == "bpms_instance_change" and event.get("processCode") == self.config.process_code:
            command = await self._instance_change(message.request, event)
            return InboundParse(message, (command,) if command else (), context="event")
        return InboundParse(message, (), context="event")

    def _todo_decision(self, event: Any) -> DecideTask:
        try:
            action = TodoAction.model_validate(event)
        except ValidationError as exc:
            raise InboundInvalid(exc.errors()) from None
        return DecideTask(
            f"dingtalk-todo-{action.task_id}",
            action.task_id,
            action.approver_id,
            action.decision == APPROVE,
            action.comment,
        )

    async def _instance_change(
        self, request: InboundRequest, event: dict[str, Any]
    ) -> InboundCommand | None:
        instance_id = event.get("processInstanceId")
        change = event.get("type")
        if not isinstance(instance_id, str) or not instance_id:
            raise InboundInvalid(
                [
                    {
                        "type": "missing",
                        "loc": ("processInstanceId",),
                        "msg": "required",
                        "input": None,
                    }
                ]
            )
        message_id = str(event.get("eventId") or f"bpms_instance_change:{instance_id}:{change}")
        result = INSTANCE_RESULTS.get(
            (str(change), event.get("result") if change == "finish" else None)
        )
        if change != "start" and result is None:
            return None
        # the claim of an instance finoa started: this process may have started it (its id
        # may not be kept yet, or the answer not even in), or finoa keeps it against one
        created = created_here(*instance_key(self.config))
        claim_id = (
            created.get(instance_id)
            or await request.approval_claim(instance_id)
            or await created.lookup(instance_id)
        )
        if change == "start":
            if claim_id is not None:
                return None  # finoa knows the instance (it created it): nothing to fetch
            instance = await self._fetch(instance_id)
            if form_value(instance, CLAIM_ID_FIELD):  # created by finoa: the claim exists
                return None
            claim = claim_from_instance(self.config, instance_id, instance)
            return SubmitClaim(message_id, claim, oa_approval_id=instance_id)
        assert result is not None
        actor = event.get("staffId")
        remark = event.get("remark")
        if claim_id is None:
            # Not recorded yet: an instance finoa created may end before the answer to
            # approval.create is kept. Its form names the claim, so the result is not
            # refused (and sent again seconds later) for want of the instance's id.
            claim_id = await self._claim_of(instance_id)
        return ConcludeApproval(
            message_id,
            instance_id,
            result,
            actor_id=actor if isinstance(actor, str) else None,
            comment=remark if isinstance(remark, str) and remark else None,
            claim_id=claim_id,
        )

    async def _claim_of(self, instance_id: str) -> str | None:
        """The claim id in the form of an instance finoa created; None when DingTalk cannot
        say (the result is then matched by the instance's id alone)."""
        try:
            instance = await self._fetch(instance_id)
        except InboundRefused:
            return None
        return form_value(instance, CLAIM_ID_FIELD)

    async def _fetch(self, instance_id: str) -> dict[str, Any]:
        from finoa.connectors.dingtalk.client import DingTalkApi

        instance: dict[str, Any] = await self.fetch_from_vendor(
            DingTalkApi, lambda api: api.get_instance(instance_id), field="processInstanceId"
        )
        return instance

    def reply(self, parsed: InboundParse, outcomes: Sequence[CommandOutcome]) -> InboundReply:
        """The encrypted `success` (or `{"success": true}` to a todo button) when every
        command is settled; 503 while any must be sent again."""
        again = to_send_again(outcomes)
        if again is not None:
            return send_again_reply(again, retry_after_seconds=10)
        if parsed.context == "todo":
            (outcome,) = outcomes
            answer: dict[str, Any] = {"success": outcome.ok, "status": outcome.status}
            if outcome.problem:
                answer["detail"] = outcome.problem.get("detail")
            return InboundReply(200, json.dumps(answer, ensure_ascii=False).encode("utf-8"))
        envelope = self.crypto.envelope(SUCCESS, timestamp=str(int(self._clock() * 1000)))
        return InboundReply(200, json.dumps(envelope).encode("utf-8"))
