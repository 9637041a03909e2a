"""The connector contract (F4), version 2.

A connector is a plain class with a `manifest`, built per configured instance. Outbound it
has:

- `deliver(messages)`: send a batch of outbox messages sharing one action; one result per
  message, in order. A `DeliveryError` says whether the request may have reached the peer
  (`outcome_unknown`).
- `lookup(messages)`: the posted-lookup, "did this already happen?": for each message the
  result it already had at the peer (found by its idempotency key or by the peer's own
  reference), `None` when the peer certainly has no such document, or an error when it can't
  tell now. The dispatcher asks before any retry after an unknown outcome and before any
  replay, so exactly-once never rests on the peer keeping idempotency keys.
- `health()`: can the peer be reached with these credentials right now?

An OA connector that can report on approval tasks is also an `ApprovalSource`: the hub asks
it about tasks whose decision never arrived. Connectors are found through the
`finoa.connectors` entry-point group, so a third party can ship its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

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


@dataclass(frozen=True)
class HealthReport:
    """What `health()` found: reachable and authorised, or why not."""

    ok: bool
    detail: str = ""
    latency_ms: float | None = None


@dataclass(frozen=True)
class TaskReport:
    """What an OA says about one approval task.

    `state` is `pending` (nobody decided yet), `approved` / `rejected` (with who, when and the
    id of the decision event, so that a late webhook for it is a duplicate), or `unknown`
    (the OA has never heard of the task).
    """

    task_id: str
    state: str
    approver_id: str | None = None
    comment: str | None = None
    decided_at: str | None = None
    message_id: str | None = None


class Connector(Protocol):
    manifest: ClassVar[ConnectorManifest]

    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Send messages that share one action; at most `manifest.max_batch` of them."""
        ...

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """For each message: the result it already had at the peer, None if the peer certainly
        has nothing for it, or a result with an error when the peer can't tell now."""
        ...

    async def health(self) -> HealthReport:
        """Reach the peer with the configured credentials."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ApprovalSource(Protocol):
    """An OA connector the hub can ask about approval tasks (at most 100 per call)."""

    async def task_reports(self, task_ids: Sequence[str]) -> list[TaskReport]: ...


class ConnectorFactory(Protocol):
    manifest: ClassVar[ConnectorManifest]

    def __call__(self, config: dict[str, Any], http: httpx.AsyncClient) -> Connector: ...
