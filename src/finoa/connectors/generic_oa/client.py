"""The hub's client to a generic REST OA: pushes approval todos and writes claim status back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from finoa.connectors.auth import delivery_error
from finoa.connectors.base import (
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    OutboundMessage,
    TaskReport,
)
from finoa.connectors.generic_oa.inbound import GenericOAInbound
from finoa.connectors.generic_oa.manifest import MANIFEST
from finoa.connectors.generic_oa.mapping import oa_item
from finoa.connectors.rest import RestConfig, RestConnector, rest_health
from finoa.messaging.retry import DeliveryError, ErrorClass

ACTION_PATHS: dict[str, str] = {
    "todo.push": "/api/todos:batch",
    "todo.remind": "/api/todos:batch",
    "status.writeback": "/api/status:batch",
    "notice.send": "/api/notices:batch",
}


class GenericOAConnector(RestConnector):
    """Batches outbox messages into `POST /api/todos:batch` or `POST /api/status:batch`."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    inbound: ClassVar[type[GenericOAInbound]] = GenericOAInbound

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Send messages sharing one action; one result per message, in order."""
        if not messages:
            return []
        if self._config is None:
            return _fail_all(messages, DeliveryError(ErrorClass.CONFIG, self._config_error))
        actions = {m.action for m in messages}
        if len(actions) != 1:
            reason = f"one batch must share one action, got {sorted(actions)}"
            return _fail_all(messages, DeliveryError(ErrorClass.CONFIG, reason))
        action = actions.pop()
        path = ACTION_PATHS.get(action)
        if path is None:
            reason = f"generic-oa has no action {action!r}; it knows {list(ACTION_PATHS)}"
            return _fail_all(messages, DeliveryError(ErrorClass.CONFIG, reason))
        results: list[DeliveryResult] = []
        size = self.manifest.max_batch
        for start in range(0, len(messages), size):
            results.extend(await self._post(self._config, path, messages[start : start + size]))
        return results

    async def _post(
        self, config: RestConfig, path: str, messages: Sequence[OutboundMessage]
    ) -> list[DeliveryResult]:
        try:
            items = [oa_item(m.action, m.payload, m.idempotency_key) for m in messages]
            response = await self._request(
                "POST",
                config.base_url + path,
                content=orjson.dumps({"items": items}),
                headers=config.headers(),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            return _fail_all(messages, delivery_error(exc))
        if not response.is_success:
            return _fail_all(messages, DeliveryError.from_response(response))
        try:
            results = orjson.loads(response.content)["results"]
            if not isinstance(results, list):
                raise TypeError("results is not a list")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            reason = f"malformed answer from {path}: {type(exc).__name__}: {exc}"
            return _fail_all(messages, DeliveryError(ErrorClass.PERMANENT, reason))
        by_key = {
            r["idempotency_key"]: r
            for r in results
            if isinstance(r, dict) and isinstance(r.get("idempotency_key"), str)
        }
        out: list[DeliveryResult] = []
        for index, message in enumerate(messages):
            # Results come in order; the key only rescues a peer that reorders them.
            item = results[index] if index < len(results) else None
            if not isinstance(item, dict) or item.get("idempotency_key") not in (
                None,
                message.idempotency_key,
            ):
                item = by_key.get(message.idempotency_key)
            out.append(_item_result(message, item))
        return out

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """Todos and write-backs need no lookup: the OA keeps every idempotency key, so a
        message sent again is recognised there. Each is simply sent again."""
        return [None for _ in messages]

    async def health(self) -> HealthReport:
        """`GET /api/ping` with the configured key."""
        return await rest_health(self, "/api/ping")

    async def task_reports(self, task_ids: Sequence[str]) -> list[TaskReport]:
        """What the OA knows of each task (`POST /api/tasks:report`), in order."""
        if self._config is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        config = self._config
        try:
            response = await self._request(
                "POST",
                config.base_url + "/api/tasks:report",
                content=orjson.dumps({"task_ids": list(task_ids)}),
                headers=config.headers(),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            raise DeliveryError.from_exception(exc) from exc
        if not response.is_success:
            raise DeliveryError.from_response(response)
        try:
            reports = orjson.loads(response.content)["reports"]
            by_id = {r["task_id"]: r for r in reports}
            return [_task_report(task_id, by_id[task_id]) for task_id in task_ids]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            reason = f"malformed task report: {type(exc).__name__}: {exc}"
            raise DeliveryError(ErrorClass.PERMANENT, reason) from None


def _task_report(task_id: str, item: dict[str, Any]) -> TaskReport:
    state = item["state"]
    if state not in ("pending", "approved", "rejected", "unknown"):
        raise TypeError(f"state {state!r} of {task_id}")
    return TaskReport(
        task_id=task_id,
        state=state,
        approver_id=item.get("approver_id"),
        comment=item.get("comment"),
        decided_at=item.get("decided_at"),
        message_id=item.get("webhook_id"),
    )


def _item_result(message: OutboundMessage, item: dict[str, Any] | None) -> DeliveryResult:
    key = message.idempotency_key
    if item is None:
        return DeliveryResult(
            error=DeliveryError(ErrorClass.PERMANENT, f"the OA answered no result for {key}")
        )
    status = item.get("status")
    if status in ("ok", "duplicate"):
        return DeliveryResult(response=item)
    if status == "error":
        reason = f"the OA refused {key}: {item.get('error') or 'no reason given'}"
    else:
        reason = f"the OA answered status {status!r} for {key}"
    return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))


def _fail_all(messages: Sequence[OutboundMessage], error: DeliveryError) -> list[DeliveryResult]:
    return [DeliveryResult(error=error) for _ in messages]
