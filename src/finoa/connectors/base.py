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
- (ERP connectors, optional) `base_data()`: the ERP's accounts, periods and dimension codes,
  which vouchers are checked against before posting (`finoa.connectors.basedata`).

An OA connector that can report on approval tasks is also an `ApprovalSource`: the hub asks
it about tasks whose decision never arrived. Connectors are found through the
`finoa.connectors` entry-point group, so a third party can ship its own.

Beside that: the canonical outbound payloads the services queue (each connector maps them to
its wire format), the inbound side (verify, decrypt, parse into canonical commands, reply as
the vendor expects) and auth providers (static keys, or tokens cached and refreshed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypedDict, runtime_checkable

import httpx
from pydantic import BaseModel

from finoa.messaging.retry import DeliveryError
from finoa.schemas import ClaimSubmission

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
    """What `health()` found: reachable and authorised, or why not. `server_time` is the
    peer's clock when it answered (aware, e.g. from the HTTP `Date` header), where it tells;
    `finoa doctor` compares it with the hub's clock."""

    ok: bool
    detail: str = ""
    latency_ms: float | None = None
    server_time: datetime | None = None


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


# -- canonical outbound payloads ---------------------------------------------------------------
# What the services queue in the outbox, whoever the peer is. Each connector's mapping turns
# them into its vendor's wire format; the services never build a vendor's body.


class TodoPayload(TypedDict):
    """Action `todo.push`: open (`op` = create) or close an approval todo for one approver."""

    op: str
    task_id: str
    claim_id: str
    external_id: str
    assignee_id: str
    role: str
    title: str
    amount_fen: int
    currency: str


class ClaimStatusPayload(TypedDict):
    """Action `status.writeback`: the claim's new status, its reason and voucher numbers."""

    claim_id: str
    external_id: str
    status: str
    reason: str | None
    voucher_no: str | None
    erp_voucher_no: str | None
    at: str


class ApprovalRequestLine(TypedDict):
    category: str
    amount_fen: int
    tax_fen: int
    expense_date: str
    description: str


class ApprovalRequestPayload(TypedDict):
    """Action `approval.create` (OA-led mode): start the claim's approval in the OA's own
    approval app. The answer carries the OA's instance id as `oa_approval_id`."""

    id: str
    external_id: str
    applicant_id: str
    department_id: str
    cost_center_id: str | None
    project_id: str | None
    title: str
    currency: str
    total_fen: int
    lines: list[ApprovalRequestLine]


class VoucherAux(TypedDict):
    department: str | None
    employee: str | None
    project: str | None


class VoucherEntryPayload(TypedDict):
    line: int
    account_code: str
    summary: str
    debit_fen: int
    credit_fen: int
    aux: VoucherAux


class VoucherPayload(TypedDict):
    """Action `voucher.post`: a balanced voucher (a red-ink reversal names `reversal_of`)."""

    voucher_id: str
    claim_id: str
    hub_voucher_no: str
    word: str
    period: str
    date: str
    summary: str
    currency: str
    reversal_of: str | None
    entries: list[VoucherEntryPayload]


class ArchivePushPayload(TypedDict):
    """Action `archive.push`: one accounting-archive package for an external archive. The
    files are listed with their hashes only; the connector reads their bytes from the
    archive store when it delivers, so the outbox row stays small."""

    package_id: str
    archive_no: str
    metadata: dict[str, Any]
    files: list[dict[str, Any]]  # name, role, media_type, size, sha256, sm3


# -- inbound: verify -> decrypt -> parse -> reply ------------------------------------------------
# A vendor calls `POST /api/v1/webhooks/{instance}`. The hub hands the raw request to that
# instance's inbound handler, which checks it came from the vendor (signature, token) and
# decrypts it (`verify`), turns it into canonical commands (`parse`), and, once the hub has
# applied them, builds the answer the vendor expects from their outcomes (`reply`): a JSON
# result, an encrypted "success", a challenge echo. A handshake request (URL verification)
# parses into no command at all and is answered by `reply` alone.


@dataclass(frozen=True)
class InboundRequest:
    """A request as it reached the hub: header names lower-case, the body's raw bytes.

    `read_json` is the hub's strict JSON reader (a repeated key or an exponent number is
    refused, naming where it is); connectors use it for whatever JSON they read.
    `known_approval` answers the claim finoa keeps against one of this instance's OA
    approval ids (OA-led approvals), or None for an approval finoa has never seen: with it a
    callback about a known approval is read without asking the OA for the approval."""

    instance: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str]
    read_json: Callable[[bytes], Any]
    known_approval: Callable[[str], Awaitable[str | None]] | None = None

    async def approval_claim(self, approval_id: str) -> str | None:
        """The claim finoa keeps against the OA approval `approval_id`, when it knows one."""
        if self.known_approval is None:
            return None
        return await self.known_approval(approval_id)


@dataclass(frozen=True)
class InboundMessage:
    """A request `verify` accepted: its message id (when the vendor gives one) and the
    plaintext body (decrypted where the vendor encrypts)."""

    request: InboundRequest
    message_id: str | None
    body: bytes


@dataclass(frozen=True)
class SubmitClaim:
    """Canonical command: record a claim (a new document or a new version of one).

    `oa_approval_id` is set when an employee started the claim in an OA-led instance's own
    approval app: the OA's approval instance, whose final result decides the claim."""

    message_id: str
    submission: ClaimSubmission
    oa_approval_id: str | None = None


@dataclass(frozen=True)
class DecideTask:
    """Canonical command: an approver's decision on an approval task."""

    message_id: str
    task_id: str
    approver_id: str
    approve: bool
    comment: str | None
    # The approval pattern, when not a plain approve/reject (`approve` is then ignored):
    # transfer / add_signer (`target`: the employee; `position`: before/after), return
    # (`target`: the earlier step, or none for the applicant), withdraw (the applicant's).
    action: str | None = None
    target: str | None = None
    position: str | None = None


class ApprovalResult(StrEnum):
    """The final result of an approval that ran in an OA (OA-led mode)."""

    AGREE = "agree"  # approved: the claim goes on to its voucher
    REFUSE = "refuse"  # rejected, with the approvers' reason
    REVOKE = "revoke"  # the applicant withdrew it (撤销)
    TERMINATE = "terminate"  # ended without a decision (deleted, stopped by an admin)


@dataclass(frozen=True)
class ConcludeApproval:
    """Canonical command: an OA-led approval ended in the OA with `result`.

    The claim is found by the OA's approval instance id (`oa_approval_id`), or by `claim_id`
    when the OA carries finoa's claim id (an instance finoa created, whose id may not be
    recorded yet)."""

    message_id: str
    oa_approval_id: str
    result: ApprovalResult
    actor_id: str | None = None
    comment: str | None = None
    claim_id: str | None = None


@dataclass(frozen=True)
class ReportArchiveStatus:
    """Canonical command: an external archive reports a package's status (`archived` after
    its own 四性检测, `rejected`, …) with its check result. The package is found by
    `package_id`, else by its 档号."""

    message_id: str
    archive_no: str
    status: str
    check_passed: bool
    items: tuple[dict[str, Any], ...] = ()
    package_id: str | None = None


InboundCommand = SubmitClaim | DecideTask | ConcludeApproval | ReportArchiveStatus


@dataclass(frozen=True)
class OAChanges:
    """What an OA reports changed in its approvals within a window: the commands its
    callbacks would have carried, in order, and the documents it could not turn into one
    (each a one-line reason naming the document and field)."""

    commands: tuple[InboundCommand, ...] = ()
    problems: tuple[str, ...] = ()


@runtime_checkable
class ApprovalChanges(Protocol):
    """An OA connector that can list the approvals changed between two moments (sweeps:
    `finoa sync oa`), so that a document whose callback was lost is still found. A change
    already applied comes back as a duplicate and changes nothing."""

    async def approval_changes(self, since: datetime, until: datetime) -> OAChanges: ...


@dataclass(frozen=True)
class InboundParse:
    """The commands one request carries, in order (none for a handshake), and whatever the
    connector needs to remember for its reply (`context`, opaque to the hub)."""

    message: InboundMessage
    commands: tuple[InboundCommand, ...]
    context: Any = None


@dataclass(frozen=True)
class CommandOutcome:
    """How the hub answered one command: an HTTP-like status with a result, or a problem
    (RFC 9457 body); `retry_after_seconds` when the vendor should send it again later."""

    message_id: str
    status: int
    result: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None
    retry_after_seconds: int | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class InboundReply:
    """The HTTP answer the vendor expects."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


class InboundRefused(Exception):
    """`verify` refused the request (bad signature, stale timestamp, wrong token): answered
    as a problem with `status`, naming `field`; nothing is applied."""

    def __init__(self, status: int, title: str, detail: str, *, kind: str, field: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.kind, self.field = (
            status,
            title,
            detail,
            kind,
            field,
        )


class InboundInvalid(Exception):
    """`parse` found bad input: `errors` in pydantic's shape, each `loc` a path inside the
    body (e.g. `("data", "lines", 0, "amount")`); answered 422 naming the first field."""

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = list(errors)

    def summary(self) -> str:
        """Each field and what is wrong with it, `path: message; …`."""
        return "; ".join(
            ".".join(str(part) for part in e.get("loc", ())) + f": {e.get('msg', '')}"
            for e in self.errors
        )


class InboundHandler(Protocol):
    """The inbound side of one connector instance."""

    # Documents the body in the OpenAPI document (None: not described).
    request_model: ClassVar[type[BaseModel] | None]

    async def verify(self, request: InboundRequest) -> InboundMessage:
        """Authenticate and decrypt; raise InboundRefused."""
        ...

    async def parse(self, message: InboundMessage) -> InboundParse:
        """Canonical commands from a verified message; raise InboundInvalid."""
        ...

    def reply(self, parsed: InboundParse, outcomes: Sequence[CommandOutcome]) -> InboundReply:
        """The answer to the vendor, from one outcome per command (in order)."""
        ...

    async def aclose(self) -> None:
        """Release what the handler holds (its HTTP client to the vendor); the hub calls it
        once, on shutdown."""
        ...


class VendorClientOwner:
    """For an inbound handler that asks its vendor about callbacks: its own HTTP client,
    made on first use (most callbacks need no call) and closed by `aclose`."""

    _http: httpx.AsyncClient | None = None

    def vendor_http(self, timeout_seconds: float | None = None) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=timeout_seconds)
        return self._http

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()


class InboundFactory(Protocol):
    """How a connector class builds its inbound side from an instance's config (raising
    ValueError `field: reason` for a bad one); set as the class attribute `inbound`."""

    request_model: ClassVar[type[BaseModel] | None]

    def __call__(self, config: Mapping[str, Any]) -> InboundHandler: ...


# -- auth providers --------------------------------------------------------------------------------
# Each connector instance has one. It supplies the request headers that authenticate the hub
# to the peer: a static key, or an access token fetched, cached and refreshed ahead of expiry.
# When the peer answers 401 the connector tells the provider, which refreshes (at most once
# per rejected token), and the request is sent once more.


@dataclass(frozen=True)
class AccessToken:
    """A token and the moment (on the provider's clock, seconds) it stops being valid."""

    value: str = field(repr=False)
    expires_at: float


class AuthProvider(Protocol):
    async def headers(self) -> dict[str, str]:
        """Headers that authenticate a request now (fetching a token first if needed)."""
        ...

    async def rejected(self, headers: Mapping[str, str]) -> bool:
        """The peer answered 401 to a request sent with `headers`: drop those credentials.
        True when fresh ones can be had (send once more), False when not (a static key)."""
        ...
