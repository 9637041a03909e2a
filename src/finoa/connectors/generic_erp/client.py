"""The hub's client to a generic REST ERP: posts vouchers with an Idempotency-Key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import orjson

from finoa.connectors.auth import delivery_error
from finoa.connectors.base import (
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    OutboundMessage,
)
from finoa.connectors.basedata import (
    BaseDataCache,
    ERPBaseData,
    base_data_from_dict,
    deliver_checked,
)
from finoa.connectors.generic_erp.manifest import MANIFEST
from finoa.connectors.generic_erp.mapping import erp_voucher
from finoa.connectors.rest import RestConnector, rest_health
from finoa.messaging.retry import DeliveryError, ErrorClass, classify_status

ACTION = "voucher.post"


class GenericERPConnector(RestConnector):
    """Posts vouchers to `POST /api/vouchers` (one) or `POST /api/vouchers:batch` (several),
    each under its own idempotency key."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        # With `check_base_data: true` every voucher is checked against `GET /api/base-data`
        # (read at most once a minute) and one the ERP would refuse is refused here.
        self.check_base_data = config.get("check_base_data") is True
        self.cache = BaseDataCache(self.read_base_data, ttl_seconds=60.0)

    async def base_data(self) -> ERPBaseData:
        """The ERP's base data (cached for a minute)."""
        return await self.cache.get()

    async def read_base_data(self) -> ERPBaseData:
        """`GET /api/base-data`: accounts with kind and postability (see docs/connectors.md)."""
        if self._config is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        config = self._config
        try:
            response = await self._request(
                "GET",
                f"{config.base_url}/api/base-data",
                headers=config.headers(),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            raise delivery_error(exc) from exc
        if not response.is_success:
            raise DeliveryError.from_response(response)
        try:
            return base_data_from_dict(_json_object(response))
        except ValueError as exc:
            raise DeliveryError(ErrorClass.PERMANENT, str(exc)) from exc

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Post the vouchers (checked against the ERP's base data first when configured);
        one result per message, in order."""
        if self.check_base_data and self._config is not None:
            return await deliver_checked(messages, self.cache, "the generic ERP", self._deliver)
        return await self._deliver(messages)

    async def _deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        if len(messages) == 1:
            return [await self._post(messages[0])]
        if self._config is None:
            error = DeliveryError(ErrorClass.CONFIG, self._config_error)
            return [DeliveryResult(error=error) for _ in messages]
        wrong = [m for m in messages if m.action != ACTION]
        if wrong:
            reason = f"generic-erp has no action {wrong[0].action!r}; it knows {ACTION!r}"
            return [
                DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason)) for _ in messages
            ]
        config = self._config
        items = [
            {
                **erp_voucher(m.payload),
                "reference": m.idempotency_key,
                "idempotency_key": m.idempotency_key,
            }
            for m in messages
        ]
        try:
            response = await self._request(
                "POST",
                f"{config.base_url}/api/vouchers:batch",
                content=orjson.dumps({"items": items}),
                headers=config.headers(),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            error = delivery_error(exc)
            return [DeliveryResult(error=error) for _ in messages]
        if not response.is_success:
            error = DeliveryError.from_response(response)
            return [DeliveryResult(error=error) for _ in messages]
        try:
            results = _json_object(response).get("results")
        except ValueError as exc:
            results = None
            malformed = str(exc)
        else:
            malformed = "malformed batch answer: results do not match the items"
        if not isinstance(results, list) or len(results) != len(messages):
            error = DeliveryError(ErrorClass.PERMANENT, malformed)
            return [DeliveryResult(error=error) for _ in messages]
        return [_batch_item(message, item) for message, item in zip(messages, results, strict=True)]

    async def _post(self, message: OutboundMessage) -> DeliveryResult:
        if self._config is None:
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, self._config_error))
        if message.action != ACTION:
            reason = f"generic-erp has no action {message.action!r}; it knows {ACTION!r}"
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, reason))
        config = self._config
        try:
            response = await self._request(
                "POST",
                f"{config.base_url}/api/vouchers",
                content=orjson.dumps(
                    {**erp_voucher(message.payload), "reference": message.idempotency_key}
                ),
                headers={**config.headers(), "idempotency-key": message.idempotency_key},
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            return DeliveryResult(error=delivery_error(exc))
        if not response.is_success:
            return DeliveryResult(error=DeliveryError.from_response(response))
        try:
            return _posted(message, _json_object(response))
        except ValueError as exc:
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, str(exc)))

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """Find each voucher by the reference it was posted with (its idempotency key), which
        the ERP keeps with the voucher whatever it does with idempotency keys."""
        return [await self._find(message) for message in messages]

    async def _find(self, message: OutboundMessage) -> DeliveryResult | None:
        if self._config is None:
            return DeliveryResult(error=DeliveryError(ErrorClass.CONFIG, self._config_error))
        config = self._config
        try:
            response = await self._request(
                "GET",
                f"{config.base_url}/api/vouchers",
                params={"reference": message.idempotency_key},
                headers=config.headers(),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            return DeliveryResult(error=DeliveryError.from_exception(exc))
        if not response.is_success:
            return DeliveryResult(error=DeliveryError.from_response(response))
        try:
            items = _json_object(response).get("items")
        except ValueError as exc:
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, str(exc)))
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            reason = "malformed lookup answer: items is not a list of vouchers"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        if not items:
            return None
        if len(items) > 1:
            numbers = ", ".join(str(i.get("erp_voucher_no")) for i in items)
            reason = f"{message.idempotency_key} is in the ERP {len(items)} times ({numbers})"
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        return _posted(message, items[0])

    async def health(self) -> HealthReport:
        """`GET /api/ping` with the configured key."""
        return await rest_health(self, "/api/ping")

    async def query_voucher(self, idempotency_key: str) -> dict[str, Any] | None:
        """The voucher posted under a key, or None; raises DeliveryError when the ERP fails."""
        if self._config is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        config = self._config
        try:
            response = await self._request(
                "GET",
                f"{config.base_url}/api/vouchers",
                params={"idempotency_key": idempotency_key},
                headers=config.headers(),
                timeout=config.timeout_seconds,
            )
        except Exception as exc:
            raise delivery_error(exc) from exc
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise DeliveryError.from_response(response)
        try:
            return _json_object(response)
        except ValueError as exc:
            raise DeliveryError(ErrorClass.PERMANENT, str(exc)) from exc


def _batch_item(message: OutboundMessage, item: Any) -> DeliveryResult:
    if not isinstance(item, dict) or item.get("idempotency_key") != message.idempotency_key:
        reason = f"batch answer does not match {message.idempotency_key!r}"
        return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
    if item.get("status") == "error":
        code = int(item.get("code") or 422)
        reason = f"HTTP {code} for {message.idempotency_key}: {item.get('error', '')}"
        return DeliveryResult(error=DeliveryError(classify_status(code), reason))
    return _posted(message, item)


def _posted(message: OutboundMessage, answer: dict[str, Any]) -> DeliveryResult:
    """A posting counts only with the ERP's voucher number; anything else is an error."""
    number = answer.get("erp_voucher_no")
    if not isinstance(number, str) or not number.strip():
        reason = (
            f"the ERP answered {message.idempotency_key} without a voucher number: "
            f"{orjson.dumps(answer).decode()[:300]}"
        )
        return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
    return DeliveryResult(response=answer)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"malformed answer from {response.request.url.path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"malformed answer from {response.request.url.path}: not an object")
    return data
