"""The connector contract (F4).

A connector is a plain class with a `manifest` and an async `deliver` that sends a batch of
outbox messages for one action and answers one result per message, in order. Connectors are
found through the `finoa.connectors` entry-point group, so a third party can ship its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import httpx

from finoa.messaging.retry import DeliveryError

# Pooled HTTP connections idle longer than this are dropped by the client. It must stay below
# the servers' own keep-alive timeout (uvicorn's is 5 s), or a request can be written onto a
# connection at the very moment the server closes it and fail with a read error.
KEEPALIVE_EXPIRY_SECONDS = 2.0


class ConnectorKind(StrEnum):
    OA = "oa"
    ERP = "erp"
    ARCHIVE = "archive"
    NOTIFY = "notify"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"


@dataclass(frozen=True)
class ConnectorManifest:
    """What a connector is and what it can do; published by `finoa connectors`."""

    name: str
    kind: ConnectorKind
    direction: Direction
    actions: tuple[str, ...]
    config_schema: dict[str, Any]
    auth: str
    rate_limit_per_second: float | None = None
    max_batch: int = 1
    description: str = ""


@dataclass(frozen=True)
class OutboundMessage:
    """One outbox row handed to a connector."""

    id: int
    action: str
    aggregate_id: str
    idempotency_key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one message: a response body, or an error with its class."""

    response: dict[str, Any] = field(default_factory=dict)
    error: DeliveryError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Connector(Protocol):
    manifest: ClassVar[ConnectorManifest]

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Send messages that share one action; at most `manifest.max_batch` of them."""
        ...

    async def aclose(self) -> None: ...


class ConnectorFactory(Protocol):
    manifest: ClassVar[ConnectorManifest]

    def __call__(self, config: dict[str, Any], http: httpx.AsyncClient) -> Connector: ...
