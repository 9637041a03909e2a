"""WeCom callbacks to the hub: `/api/v1/webhooks/<instance>`.

Two kinds of request arrive:

1. **The URL check** (a GET when the callback URL is saved in the admin console): the query
   carries `msg_signature`, `timestamp`, `nonce` and the encrypted `echostr`. It is verified
   like an event and answered with the decrypted plaintext, nothing else.
2. **Encrypted events** (a POST of `<xml><ToUserName/><Encrypt/><AgentID/></xml>`):
   `verify` checks `msg_signature` (SHA-1 over the sorted token, timestamp, nonce and
   Encrypt), refuses a timestamp further than `callback_tolerance_seconds` from the hub's
   clock, decrypts (AES-256-CBC; the receiveid must be the CorpID) and checks that
   `ToUserName` names the CorpID too. XML is read defensively (no DTD, no entities).
   `parse` reads `sys_approval_change` of the configured templates. An approval this process
   applied (for a claim or a task: `created_here`, waited for while its `applyevent` is
   still unanswered) or that finoa keeps against a claim is read from the event alone
   (`event_detail`: SpStatus and SpRecord say the result, who decided and why), with no
   call to WeCom; the submission of a task approval (finoa applied it) is skipped; any other
   approval is fetched (`oa/getapprovaldetail`: its form carries the claim's contents, or
   finoa's claim or task id; WeCom's rate limit, 45009, is waited out: `callback_fetch`).
   Either becomes commands (`mapping.approval_commands`):
   - submitted (StatuChangeEvent 1) in WeCom by an employee: a claim (approvals finoa
     created carry its claim id in `finoa单号` and are skipped);
   - passed, rejected, revoked or deleted: the claim's conclusion (OA-led), or the task's
     decision when the approval carries `finoa任务` (hub-led);
   - anything else: no command.

WeCom gives events no id; a command's message id is the approval's (`wecom-result:<sp_no>`
…), so WeCom's retries and a sweep that finds the same change are duplicates in the inbox
and change nothing. A callback already answered 200 that comes again with the same
`msg_signature` within twice the tolerance window is refused (409 `replay`) before anything
is read; past the window its timestamp is stale anyway. (The memory of answered callbacks
is per process; the inbox makes a replay to another process a duplicate.) The reply is
HTTP 200 with an empty body once every command was applied (or was a duplicate, or was
refused for good); while one failed transiently the reply is 503 and WeCom sends the event
again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from lxml import etree
from pydantic import BaseModel

from finoa.connectors.base import (
    CommandOutcome,
    InboundInvalid,
    InboundMessage,
    InboundParse,
    InboundRefused,
    InboundReply,
    InboundRequest,
)
from finoa.connectors.created_here import created_here
from finoa.connectors.vendor_callbacks import (
    VendorCallbacks,
    check_query_timestamp,
    query_value,
    send_again_reply,
    to_send_again,
)
from finoa.connectors.wecom.crypto import CallbackCryptoError, WeComCrypto, read_xml, xml_text
from finoa.connectors.wecom.mapping import WeComConfig, approval_commands, claim_key, task_key

MAX_REMEMBERED = 100_000  # answered callbacks remembered for replay refusal, per process
URL_CHECK = "url-check"
EVENT = "event"
SUBMITTED = "1"


def _refused(exc: CallbackCryptoError) -> InboundRefused:
    if exc.field == "body" or exc.field == "Encrypt":
        return InboundRefused(400, "Bad request", str(exc), kind="invalid-body", field=exc.field)
    return InboundRefused(
        401, "Invalid signature", str(exc), kind="invalid-signature", field=exc.field
    )


def _invalid(loc: str, msg: str) -> InboundInvalid:
    return InboundInvalid([{"type": "value_error", "loc": (loc,), "msg": msg, "input": None}])


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def event_detail(info: etree._Element) -> dict[str, Any]:
    """What a `sys_approval_change` event's ApprovalInfo says, in the shape of
    `oa/getapprovaldetail`'s `info`: number, template, status and the approvers' records
    (who decided, with what speech); no form contents, which the event does not carry."""
    records = [
        {
            "sp_status": _number(xml_text(record, "SpStatus")),
            "details": [
                {
                    "approver": {"userid": xml_text(approver, "UserId") or ""}
                    if (approver := details.find("Approver")) is not None
                    else {},
                    "speech": xml_text(details, "Speech") or "",
                    "sp_status": _number(xml_text(details, "SpStatus")),
                }
                for details in record.findall("Details")
            ],
        }
        for record in info.findall("SpRecord")
    ]
    return {
        "sp_no": xml_text(info, "SpNo"),
        "template_id": xml_text(info, "TemplateId"),
        "sp_status": _number(xml_text(info, "SpStatus")),
        "sp_record": records,
    }


class WeComInbound(VendorCallbacks):
    """Inbound handler of a `wecom` instance."""

    request_model: ClassVar[type[BaseModel] | None] = None  # XML, not JSON

    def __init__(self, config: Mapping[str, Any], *, clock: Any = time.time) -> None:
        self.config = WeComConfig.parse(config)
        self.crypto = WeComCrypto(self.config.token, self.config.aes_key, self.config.corp_id)
        self._clock = clock
        # msg_signature -> when its callback was answered 200; kept for the tolerance window
        self._answered: OrderedDict[str, float] = OrderedDict()

    def __repr__(self) -> str:
        return f"WeComInbound(corp_id={self.config.corp_id!r})"

    async def verify(self, request: InboundRequest) -> InboundMessage:
        signature = query_value(request, "msg_signature")
        timestamp = query_value(request, "timestamp")
        nonce = query_value(request, "nonce")
        check_query_timestamp(
            timestamp, now=self._clock(), tolerance_seconds=self.config.tolerance_seconds
        )
        self._forget_old()
        if signature in self._answered:
            raise InboundRefused(
                409,
                "Replayed callback",
                "msg_signature: this callback was answered already",
                kind="replay",
                field="msg_signature",
            )
        echostr = request.query.get("echostr")
        if echostr is not None and not request.body:
            try:
                plain = self.crypto.open(signature, timestamp, nonce, echostr)
            except CallbackCryptoError as exc:
                field = "echostr" if exc.field == "encrypt" else exc.field
                raise InboundRefused(
                    401, "Invalid signature", str(exc), kind="invalid-signature", field=field
                ) from None
            return InboundMessage(request, URL_CHECK, plain.encode("utf-8"))
        try:
            root = read_xml(request.body)
            if root.tag != "xml":
                raise CallbackCryptoError("body", "the root element must be <xml>")
            encrypt = xml_text(root, "Encrypt")
            if not encrypt:
                raise CallbackCryptoError("Encrypt", "missing from the XML")
            plain = self.crypto.open(signature, timestamp, nonce, encrypt)
            event = read_xml(plain.encode("utf-8"))
        except CallbackCryptoError as exc:
            raise _refused(exc) from None
        to_user = xml_text(event, "ToUserName")
        if to_user != self.config.corp_id:
            raise InboundRefused(
                401,
                "Invalid signature",
                f"ToUserName: the event is for {to_user!r}, not this CorpID",
                kind="invalid-signature",
                field="ToUserName",
            )
        return InboundMessage(request, EVENT, plain.encode("utf-8"))

    async def parse(self, message: InboundMessage) -> InboundParse:
        if message.message_id == URL_CHECK:
            return InboundParse(message, (), context=message.body)
        event = read_xml(message.body)
        if xml_text(event, "Event") != "sys_approval_change":
            return InboundParse(message, (), context=EVENT)
        info = event.find("ApprovalInfo")
        if info is None:
            raise _invalid("ApprovalInfo", "missing from the sys_approval_change event")
        sp_no = xml_text(info, "SpNo")
        if not sp_no or not sp_no.isdigit():
            raise _invalid("ApprovalInfo.SpNo", "required, the approval's number")
        template = xml_text(info, "TemplateId")
        if template not in (self.config.template_id, self.config.task_template_id):
            return InboundParse(message, (), context=EVENT)
        submitted = xml_text(info, "StatuChangeEvent") == SUBMITTED
        if submitted and template == self.config.task_template_id:
            return InboundParse(message, (), context=EVENT)  # finoa applied it for a task
        if template == self.config.task_template_id:
            tasks = created_here(*task_key(self.config))
            task_id = tasks.get(sp_no) or await tasks.lookup(sp_no)
            if task_id is not None:  # this process applied it for the task: the event says all
                commands = approval_commands(
                    self.config, event_detail(info), start=False, task_id=task_id
                )
                return InboundParse(message, tuple(commands), context=EVENT)
        if template == self.config.template_id:
            # this process applied it for the claim (its sp_no may not be kept yet), or
            # finoa keeps it against a claim: either way the event says all it needs
            claims = created_here(*claim_key(self.config))
            claim_id = (
                claims.get(sp_no)
                or await message.request.approval_claim(sp_no)
                or await claims.lookup(sp_no)
            )
            if claim_id is not None:
                if submitted:
                    return InboundParse(message, (), context=EVENT)
                commands = approval_commands(
                    self.config, event_detail(info), start=False, claim_id=claim_id
                )
                return InboundParse(message, tuple(commands), context=EVENT)
        detail = await self._fetch(sp_no)
        commands = approval_commands(self.config, detail, start=submitted, result=not submitted)
        return InboundParse(message, tuple(commands), context=EVENT)

    async def _fetch(self, sp_no: str) -> dict[str, Any]:
        from finoa.connectors.wecom.client import WeComApi

        detail: dict[str, Any] = await self.fetch_from_vendor(
            WeComApi, lambda api: api.detail(sp_no), field="SpNo"
        )
        return detail

    def _forget_old(self) -> None:
        horizon = self._clock() - 2 * self.config.tolerance_seconds
        while self._answered and next(iter(self._answered.values())) < horizon:
            self._answered.popitem(last=False)

    def _remember(self, signature: str) -> None:
        if signature:
            self._answered[signature] = self._clock()
            while len(self._answered) > MAX_REMEMBERED:
                self._answered.popitem(last=False)

    def reply(self, parsed: InboundParse, outcomes: Sequence[CommandOutcome]) -> InboundReply:
        """The echostr's plaintext to the URL check; an empty 200 when every command is
        settled; 503 while any must be sent again."""
        if parsed.message.message_id == URL_CHECK:
            return InboundReply(200, bytes(parsed.context), media_type="text/plain")
        again = to_send_again(outcomes)
        if again is not None:
            return send_again_reply(again, retry_after_seconds=5)
        self._remember(parsed.message.request.query.get("msg_signature", ""))
        return InboundReply(200, b"", media_type="text/plain")
