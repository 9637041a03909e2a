"""The hub's connector to a generic external archive (`generic-archive`): delivers the outbox
action `archive.push` (one package with its metadata and files), looks a package up by its
档号 before sending it again (the posted-lookup), and takes the archive's signed status
callbacks (`package.status`) when the instance has a `webhook_secret`.

The outbox row lists the package's files by hash only; the connector reads their bytes from
the archive store it is given when the instance is built (`archive_store`, see
`finoa.connectors.registry.build_connectors`). A file the store no longer has is sent without
its content, so the archive refuses the package naming it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finoa.archive.storage import ArchiveStore
from finoa.connectors.auth import delivery_error
from finoa.connectors.base import (
    CommandOutcome,
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    InboundInvalid,
    InboundMessage,
    InboundParse,
    InboundReply,
    InboundRequest,
    OutboundMessage,
    ReportArchiveStatus,
)
from finoa.connectors.generic_archive.manifest import MANIFEST
from finoa.connectors.generic_archive.wire import PUSH_PATH, answer_view
from finoa.connectors.generic_oa.inbound import single_reply, verify_signed, webhook_config
from finoa.connectors.rest import RestConnector, rest_health
from finoa.messaging.outbox import ARCHIVE_PUSH
from finoa.messaging.retry import DeliveryError, ErrorClass
from finoa.schemas import Line


class CheckItemIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    item: Line = Field(min_length=1, max_length=64)
    outcome: Line = Field(min_length=1, max_length=16)
    detail: str = Field(default="", max_length=2000)


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    passed: bool
    items: list[CheckItemIn] = Field(default_factory=list, max_length=50)


class PackageStatusData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    archive_no: Line = Field(min_length=1, max_length=128)
    package_id: Line | None = Field(default=None, min_length=1, max_length=64)
    status: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    check: CheckIn | None = None


class PackageStatusEvent(BaseModel):
    """A status callback of the external archive: a package's new status and 四性 result."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["package.status"]
    data: PackageStatusData


class GenericArchiveInbound:
    """Inbound side of a `generic-archive` instance with a `webhook_secret`: Standard
    Webhooks signatures, one `package.status` event per request."""

    request_model: ClassVar[type[BaseModel] | None] = PackageStatusEvent

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._secret, self._tolerance = webhook_config(config)

    def __repr__(self) -> str:
        return f"GenericArchiveInbound(tolerance={self._tolerance})"

    async def verify(self, request: InboundRequest) -> InboundMessage:
        return verify_signed(self._secret, self._tolerance, request)

    async def parse(self, message: InboundMessage) -> InboundParse:
        message.request.read_json(message.body)
        try:
            event = PackageStatusEvent.model_validate_json(message.body)
        except ValidationError as exc:
            raise InboundInvalid(exc.errors()) from None
        assert message.message_id is not None
        data = event.data
        command = ReportArchiveStatus(
            message.message_id,
            data.archive_no,
            data.status,
            data.check.passed if data.check else False,
            tuple(i.model_dump() for i in data.check.items) if data.check else (),
            data.package_id,
        )
        return InboundParse(message, (command,))

    def reply(self, parsed: InboundParse, outcomes: Sequence[CommandOutcome]) -> InboundReply:
        (outcome,) = outcomes
        return single_reply(outcome)


def archive_inbound(config: Mapping[str, Any]) -> GenericArchiveInbound | None:
    """The instance's webhook handler, when it has a `webhook_secret` (else no webhooks)."""
    if config.get("webhook_secret") is None:
        return None
    return GenericArchiveInbound(config)


class GenericArchiveConnector(RestConnector):
    """Pushes each package to `POST /api/packages` under its package id as Idempotency-Key."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    inbound: ClassVar[Any] = staticmethod(archive_inbound)
    # What `build_connectors` hands the connector beside its config.
    resources: ClassVar[tuple[str, ...]] = ("archive_store",)

    def __init__(
        self,
        config: dict[str, Any],
        http: httpx.AsyncClient,
        *,
        archive_store: ArchiveStore | None = None,
    ) -> None:
        super().__init__(config, http)
        self.store = archive_store

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        super().check_config(config)
        archive_inbound(config)

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        return [await self._push(message) for message in messages]

    async def _push(self, message: OutboundMessage) -> DeliveryResult:
        if self._config is None:
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, self._config_error))
        if message.action != ARCHIVE_PUSH:
            reason = f"generic-archive has no action {message.action!r}; it knows {ARCHIVE_PUSH!r}"
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))
        if self.store is None:
            reason = "generic-archive: built without the archive store to read package files from"
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))
        config, payload = self._config, message.payload
        try:
            body = await asyncio.to_thread(_push_body, self.store, payload)
            response = await self._request(
                "POST",
                config.base_url + PUSH_PATH,
                content=body,
                headers={**config.headers(), "idempotency-key": str(payload["package_id"])},
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            return DeliveryResult(error=delivery_error(exc))
        if not response.is_success:
            return DeliveryResult(error=_refusal(response, str(payload["archive_no"])))
        return _answered(response, payload)

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """Ask the archive for each package by its 档号: its answer when it has the package,
        None when it certainly has not."""
        return [await self._find(message) for message in messages]

    async def _find(self, message: OutboundMessage) -> DeliveryResult | None:
        if self._config is None:
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, self._config_error))
        config, payload = self._config, message.payload
        try:
            response = await self._request(
                "GET",
                f"{config.base_url}{PUSH_PATH}/{quote(str(payload['archive_no']), safe='')}",
                headers=config.headers(),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            return DeliveryResult(error=DeliveryError.from_exception(exc))
        if response.status_code == 404:
            return None
        if not response.is_success:
            return DeliveryResult(error=DeliveryError.from_response(response))
        return _answered(response, payload)

    async def health(self) -> HealthReport:
        """`GET /api/ping` with the configured key."""
        return await rest_health(self, "/api/ping")


def _push_body(store: ArchiveStore, payload: Mapping[str, Any]) -> bytes:
    """The wire body: the package's metadata and files, each with its bytes from the store
    (none for a file the store lacks: the archive names it)."""
    files = []
    for entry in payload["files"]:
        try:
            data: bytes | None = store.read(str(entry["sha256"]))
        except OSError:
            data = None
        content = {"content_base64": base64.b64encode(data).decode()} if data is not None else {}
        files.append({**entry, **content})
    return orjson.dumps(
        {
            "package_id": payload["package_id"],
            "archive_no": payload["archive_no"],
            "metadata": payload["metadata"],
            "files": files,
        }
    )


def _answered(response: httpx.Response, payload: Mapping[str, Any]) -> DeliveryResult:
    """The archive's answer about the package as the settlement records it."""
    try:
        answer = answer_view(orjson.loads(response.content))
    except (orjson.JSONDecodeError, ValueError) as exc:
        reason = f"malformed answer from {response.request.url.path}: {exc}"
        return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
    if answer["package_id"] not in (None, payload["package_id"]):
        reason = (
            f"the archive keeps {payload['archive_no']} as package {answer['package_id']}, "
            f"not {payload['package_id']}"
        )
        return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
    return DeliveryResult(response={**answer, "package_id": payload["package_id"]})


def _refusal(response: httpx.Response, archive_no: str) -> DeliveryError:
    """The error of a refused push, classed by its status; the reason quotes the archive's
    problem (which names the file when a file is at fault)."""
    error = DeliveryError.from_response(response)
    try:
        problem = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return error
    if not isinstance(problem, dict) or not problem.get("detail"):
        return error
    named = f" (file {problem['file']})" if problem.get("file") else ""
    return DeliveryError(
        error.error_class,
        f"the archive refused {archive_no}: HTTP {response.status_code} "
        f"{problem.get('title', '')}: {problem['detail']}{named}",
        retry_after=error.retry_after,
        outcome_unknown=error.outcome_unknown,
    )
