"""The hub's client to a running Tryton (`tryton`): account moves over trytond's JSON-RPC.

- **Post.** Each voucher becomes one `account.move` in the configured journal, its lines in
  CNY (debit/credit from fen), created and then posted; the answer is Tryton's move number.
  Several vouchers go in one `create` and one `post` call; when Tryton refuses such a call,
  each voucher is sent on its own so that only the bad one fails.
- **Exactly once.** Tryton keeps no idempotency keys, so a move's description is its finoa
  reference (`finoa:<voucher id>`). The dispatcher asks `lookup` before it sends anything
  whose earlier attempt may have reached Tryton (an unknown outcome, a lost lease, a replay);
  `lookup` searches those references: a posted move is answered as it is, and a draft one
  (created, then the connection was lost before the post) is posted there and answered. So
  `deliver` creates without searching first, which keeps a burst at two calls per batch
  (`create`, `post`) and a read of the numbers; any failure once the moves exist is an
  unknown outcome, so that the next attempt starts with the lookup. Batches go to Tryton one
  at a time: concurrent creates of moves wait on Tryton's lock of its journal-periods and
  fail with "could not obtain lock" (HTTP 503), where batches in a row do not. The chunks
  that arrive while a batch is in Tryton go together in the next one, up to
  `moves_per_call` moves: Tryton's cost per call is high, so a few big batches beat the
  ragged chunks the dispatcher's claimed batches leave (`messaging/together.py`).
- **Reversal.** A red-ink reversal (`reversal_of`) runs Tryton's own cancel wizard
  (`account.move.cancel`) on the original move, without swapping sides, so the cancel move
  carries negated amounts on the original sides, as 红字冲销 does, and is posted by Tryton.
- **Codes.** The `tryton/voucher` mapping (`mapping/defaults/tryton/voucher.yaml`, overridable
  under `mappings:`) maps finoa's accounts and dimension codes onto Tryton's, with the
  instance's `account_codes` on top; a voucher whose account it does not list is refused
  before anything is sent, naming the account.
- **Base data.** `base_data()` reads accounts (kind, postable, party required), periods
  (open/closed) and parties (the employee codes); every voucher is checked against it before
  anything is sent, and a voucher naming an unknown account or employee, or falling in a
  closed period, is refused in finoa naming the code.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finoa.connectors.base import (
    ConnectorManifest,
    DeliveryResult,
    HealthReport,
    OutboundMessage,
)
from finoa.connectors.basedata import (
    BaseDataCache,
    ERPAccount,
    ERPBaseData,
    ERPPeriod,
    deliver_checked,
)
from finoa.connectors.tryton.manifest import MANIFEST
from finoa.connectors.tryton.mapping import TrytonIds, move_values, reference
from finoa.connectors.tryton.rpc import TrytonError, TrytonRPC
from finoa.connectors.voucher_codes import VoucherCodes, connector_codes, without_mappings
from finoa.messaging.retry import DeliveryError, ErrorClass
from finoa.messaging.together import CallTogether

ACTION = "voucher.post"
MOVES_PER_CALL = 200  # chunks waiting for Tryton are joined up to this (bench/tryton_burst.py)
PERIOD_NAME_LENGTH = 7  # YYYY-MM, as `account.fiscalyear.create_period` names them


class TrytonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern="^https?://")
    database: str = Field(min_length=1)
    login: str = Field(min_length=1)
    password: str = Field(min_length=1, repr=False)
    journal: str = Field(default="MISC", min_length=1)
    account_codes: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=30.0, gt=0)
    base_data_ttl_seconds: float = Field(default=60.0, ge=0)
    moves_per_call: int = Field(default=MOVES_PER_CALL, ge=1, le=1000)

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> TrytonConfig:
        """Validate; raise ValueError `field: reason` naming the first bad field."""
        try:
            return cls.model_validate(without_mappings(config))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "config"
            raise ValueError(f"{where}: {first['msg']}") from None


@dataclass(frozen=True)
class TrytonBase:
    data: ERPBaseData
    ids: TrytonIds
    party_accounts: frozenset[str]
    period_ranges: Mapping[str, tuple[str, str]]


class TrytonConnector:
    """Posts vouchers as Tryton account moves; see the module docstring."""

    manifest: ClassVar[ConnectorManifest] = MANIFEST
    uses_mappings: ClassVar[bool] = True  # it receives the `mappings:` overrides

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self._config: TrytonConfig | None = None
        self._config_error = ""
        self.codes: VoucherCodes | None = None
        try:
            self._config = TrytonConfig.parse(config)
            self.codes = _codes(config, self._config)
        except ValueError as exc:
            self._config = None
            self._config_error = f"tryton config: {exc}"
        parsed = self._config
        self.rpc = TrytonRPC(
            http,
            parsed.base_url if parsed else "http://invalid",
            parsed.database if parsed else "-",
            parsed.login if parsed else "-",
            parsed.password if parsed else "-",
            timeout_seconds=parsed.timeout_seconds if parsed else 30.0,
        )
        self.cache = BaseDataCache(
            self._read_base, ttl_seconds=parsed.base_data_ttl_seconds if parsed else 60.0
        )
        self._base: TrytonBase | None = None
        # One batch in Tryton at a time: concurrent creates of moves contend for the lock
        # on the journal-periods and fail ("could not obtain lock"); in a row they do not.
        # The chunks that wait meanwhile go together in the next batch.
        self._batches: CallTogether[tuple[OutboundMessage, dict[str, Any] | None], DeliveryResult]
        self._batches = CallTogether(
            self._post_batch, max_items=parsed.moves_per_call if parsed else MOVES_PER_CALL
        )

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        _codes(config, TrytonConfig.parse(config))

    def __repr__(self) -> str:
        return f"TrytonConnector({self.rpc!r})"

    # -- base data ------------------------------------------------------------------------------
    async def base_data(self) -> ERPBaseData:
        """Accounts, periods and employee parties as Tryton has them now (cached briefly)."""
        await self.cache.get()
        assert self._base is not None
        return self._base.data

    async def posting_ids(self) -> tuple[TrytonIds, frozenset[str]]:
        """Tryton's record ids for finoa's codes, and the accounts whose lines need a party."""
        await self.cache.get()
        assert self._base is not None
        return self._base.ids, self._base.party_accounts

    async def _read_base(self) -> ERPBaseData:
        config = self._require_config()
        rpc = self.rpc
        accounts = await rpc.call(
            "model.account.account.search_read",
            [],
            0,
            None,
            None,
            [
                "code",
                "name",
                "closed",
                "party_required",
                "type",
                "type.receivable",
                "type.payable",
                "type.expense",
                "type.revenue",
                "type.assets",
                "type.statement",
            ],
        )
        periods = await rpc.call(
            "model.account.period.search_read",
            [("type", "=", "standard")],
            0,
            None,
            None,
            ["name", "state", "start_date", "end_date"],
        )
        parties = await rpc.call(
            "model.party.party.search_read", [("code", "!=", None)], 0, None, None, ["code"]
        )
        journals = await rpc.call(
            "model.account.journal.search_read",
            [("code", "=", config.journal)],
            0,
            1,
            None,
            ["id"],
        )
        if not journals:
            raise DeliveryError(
                ErrorClass.CONFIG, f"journal: Tryton has no account journal {config.journal!r}"
            )
        erp_accounts: dict[str, ERPAccount] = {}
        account_ids: dict[str, int] = {}
        party_accounts = set()
        for row in accounts:
            code = row.get("code")
            if not code:
                continue
            kind = _account_kind(row.get("type.") or None)
            needs_party = bool(row.get("party_required"))
            erp_accounts[code] = ERPAccount(
                code=code,
                name=str(row.get("name") or ""),
                kind=kind,
                postable=row.get("type") is not None and not row.get("closed"),
                needs_party=needs_party,
            )
            account_ids[code] = int(row["id"])
            if needs_party:
                party_accounts.add(code)
        erp_periods: dict[str, ERPPeriod] = {}
        period_ids: dict[str, int] = {}
        ranges: dict[str, tuple[str, str]] = {}
        for row in periods:
            name = str(row["name"])
            if len(name) != PERIOD_NAME_LENGTH:
                continue  # a period that is not one month: finoa posts into months only
            start, end = row["start_date"].isoformat(), row["end_date"].isoformat()
            erp_periods[name] = ERPPeriod(name, row["state"] == "open", start, end)
            period_ids[name] = int(row["id"])
            ranges[name] = (start, end)
        party_ids = {str(p["code"]): int(p["id"]) for p in parties}
        data = ERPBaseData(
            accounts=erp_accounts,
            periods=erp_periods,
            dimensions={"employee": frozenset(party_ids)},
        )
        self._base = TrytonBase(
            data,
            TrytonIds(account_ids, party_ids, period_ids, int(journals[0]["id"])),
            frozenset(party_accounts),
            ranges,
        )
        return data

    def _require_config(self) -> TrytonConfig:
        if self._config is None:
            raise DeliveryError(ErrorClass.CONFIG, self._config_error)
        return self._config

    # -- delivering -----------------------------------------------------------------------------
    async def deliver(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult]:
        """Check the vouchers against Tryton's base data, then post them; one result per
        message, in order."""
        try:
            config = self._require_config()
        except DeliveryError as exc:
            return [DeliveryResult(error=exc) for _ in messages]
        erp = f"Tryton database {config.database!r}"
        return await deliver_checked(messages, self.cache, erp, self._deliver, self.codes)

    async def _deliver(self, messages: list[OutboundMessage]) -> list[DeliveryResult]:
        base = self._base
        assert base is not None  # read by deliver_checked
        results: dict[int, DeliveryResult] = {}
        checked = []
        for message in messages:
            error = _shape_error(message)
            if error is not None:
                results[message.id] = DeliveryResult(error=error)
            else:
                checked.append(message)
        if checked:
            # the moves' values are made before waiting for Tryton: while one batch is in
            # Tryton, the next one is ready to go
            items = [
                (
                    m,
                    None
                    if m.payload.get("reversal_of")
                    else move_values(m.payload, base.ids, base.party_accounts),
                )
                for m in checked
            ]
            answered = await self._batches.run(items)
            results.update((m.id, result) for m, result in zip(checked, answered, strict=True))
        return [results[message.id] for message in messages]

    async def _post_batch(
        self, items: list[tuple[OutboundMessage, dict[str, Any] | None]]
    ) -> list[DeliveryResult]:
        """One batch in Tryton: the reversals, then the new moves (`values`) created and
        posted together; one result per item, in order."""
        base = self._base
        assert base is not None  # read by deliver_checked before any batch
        messages = [m for m, _ in items]
        new = [(m, v) for m, v in items if v is not None]
        try:
            results = await self._post_all(messages, [m for m, _ in new], [v for _, v in new], base)
        except DeliveryError as exc:
            return [DeliveryResult(error=exc) for _ in items]
        return [results[m.id] for m in messages]

    async def _post_all(
        self,
        messages: list[OutboundMessage],
        new: list[OutboundMessage],
        values: list[dict[str, Any]],
        base: TrytonBase,
    ) -> dict[int, DeliveryResult]:
        results: dict[int, DeliveryResult] = {}
        for message in messages:
            if message.payload.get("reversal_of"):
                results[message.id] = await self._reverse(message, base)
        created = await self._create(new, values, base, results)
        if created:
            results.update(await self._post(created))
        return results

    async def _create(
        self,
        messages: list[OutboundMessage],
        values: list[dict[str, Any]],
        base: TrytonBase,
        results: dict[int, DeliveryResult],
    ) -> dict[int, int]:
        """Create the moves from their `values` (all in one call, or one by one when Tryton
        refuses the batch); returns message id -> move id for those created."""
        if not messages:
            return {}
        try:
            ids = await self.rpc.call("model.account.move.create", values)
            return {m.id: int(i) for m, i in zip(messages, ids, strict=True)}
        except TrytonError as exc:
            if len(messages) == 1:
                results[messages[0].id] = DeliveryResult(
                    error=self._explain(exc, messages[0], base)
                )
                return {}
        created: dict[int, int] = {}
        for message, value in zip(messages, values, strict=True):
            try:
                (move_id,) = await self.rpc.call("model.account.move.create", [value])
                created[message.id] = int(move_id)
            except TrytonError as exc:
                results[message.id] = DeliveryResult(error=self._explain(exc, message, base))
        return created

    async def _post(self, drafts: dict[int, int]) -> dict[int, DeliveryResult]:
        """Post draft moves and read back their numbers. The moves exist: a failure here is
        an unknown outcome (the next attempt looks them up, and posts a draft it finds)."""
        move_ids = sorted(set(drafts.values()))
        failed: dict[int, DeliveryError] = {}
        try:
            try:
                await self.rpc.call("model.account.move.post", move_ids)
            except TrytonError as exc:
                if len(move_ids) == 1:
                    failed[move_ids[0]] = exc
                else:
                    for move_id in move_ids:
                        try:
                            await self.rpc.call("model.account.move.post", [move_id])
                        except TrytonError as one:
                            failed[move_id] = one
            rows = await self.rpc.call(
                "model.account.move.read",
                move_ids,
                ["number", "state", "period.name", "description"],
            )
        except DeliveryError as exc:
            unknown = _unknown_outcome(exc)
            return {message_id: DeliveryResult(error=unknown) for message_id in drafts}
        by_id = {int(r["id"]): r for r in rows}
        results: dict[int, DeliveryResult] = {}
        for message_id, move_id in drafts.items():
            if move_id in failed:
                results[message_id] = DeliveryResult(error=_unknown_outcome(failed[move_id]))
            else:
                results[message_id] = _posted(by_id[move_id])
        return results

    async def _reverse(self, message: OutboundMessage, base: TrytonBase) -> DeliveryResult:
        """Tryton's own cancel of the original move, described with the reversal's reference."""
        payload = message.payload
        original_ref = reference(str(payload["reversal_of"]))
        originals = (await self._moves([original_ref])).get(original_ref, [])
        posted = [m for m in originals if m["state"] == "posted"]
        if len(posted) != 1:
            reason = (
                f"cannot reverse {original_ref}: Tryton has "
                f"{'no posted move' if not posted else f'{len(posted)} posted moves'} for it"
            )
            return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
        original = posted[0]
        period_name = str((original.get("period.") or {}).get("name") or "")
        period = base.data.periods.get(period_name) if base.data.periods else None
        if period is not None and not period.open:
            return DeliveryResult(error=_closed_period_error(period_name, base, original))
        context = {
            "active_id": original["id"],
            "active_ids": [original["id"]],
            "active_model": "account.move",
        }
        session_id, start, _end = await self.rpc.call("wizard.account.move.cancel.create")
        try:
            await self.rpc.call(
                "wizard.account.move.cancel.execute", session_id, {}, start, context=context
            )
            await self.rpc.call(
                "wizard.account.move.cancel.execute",
                session_id,
                {"default": {"description": reference(payload["voucher_id"]), "reversal": False}},
                "cancel",
                context=context,
            )
        except TrytonError as exc:
            self.cache.invalidate()
            return DeliveryResult(error=exc)
        finally:
            # an abandoned wizard session is Tryton's to clean up
            with contextlib.suppress(DeliveryError):
                await self.rpc.call("wizard.account.move.cancel.delete", session_id)
        made = (await self._moves([reference(payload["voucher_id"])])).get(
            reference(payload["voucher_id"]), []
        )
        if len(made) != 1 or made[0]["state"] != "posted":
            reason = (
                f"Tryton's cancel of {original_ref} left no posted move for {payload['voucher_id']}"
            )
            return DeliveryResult(error=DeliveryError(ErrorClass.TRANSIENT, reason))
        return _posted(made[0])

    def _explain(
        self, exc: TrytonError, message: OutboundMessage, base: TrytonBase
    ) -> DeliveryError:
        """A refusal by Tryton, named: a closed period says which; base data is read anew."""
        self.cache.invalidate()
        if "closed period" in exc.message or "not valid according to its domain" in exc.message:
            period = str(message.payload.get("period"))
            return _closed_period_error(period, base, None, detail=exc.message)
        return exc

    async def _moves(self, references: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The moves carrying each reference (any state), by reference."""
        if not references:
            return {}
        rows = await self.rpc.call(
            "model.account.move.search_read",
            [("description", "in", sorted(set(references)))],
            0,
            None,
            [("id", "ASC")],
            ["number", "state", "description", "period.name"],
        )
        found: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            found.setdefault(str(row["description"]), []).append(row)
        return found

    async def lookup(self, messages: Sequence[OutboundMessage]) -> list[DeliveryResult | None]:
        """For each voucher its posted move, found by its reference; a draft move left by a
        lost answer is posted now and answered; None when Tryton has no move for it."""
        shaped = [m for m in messages if _shape_error(m) is None]
        try:
            found = await self._moves([reference(m.payload["voucher_id"]) for m in shaped])
        except DeliveryError as exc:
            return [DeliveryResult(error=exc) for _ in messages]
        answers: dict[int, DeliveryResult | None] = {}
        drafts: dict[int, int] = {}  # position -> draft move id
        for index, message in enumerate(messages):
            error = _shape_error(message)
            if error is not None:
                answers[index] = DeliveryResult(error=error)
                continue
            ref = reference(message.payload["voucher_id"])
            moves = found.get(ref, [])
            posted = [m for m in moves if m["state"] == "posted"]
            if len(moves) > 1:
                numbers = ", ".join(str(m.get("number") or m["id"]) for m in moves)
                reason = f"{ref} is in Tryton {len(moves)} times ({numbers})"
                answers[index] = DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
            elif posted:
                answers[index] = _posted(posted[0])
            elif moves:
                drafts[index] = int(moves[0]["id"])
            else:
                answers[index] = None
        if drafts:
            answers.update(await self._post(drafts))
        return [answers[index] for index in range(len(messages))]

    async def health(self) -> HealthReport:
        """Log in (if needed) and count the configured journal."""
        started = time.monotonic()
        try:
            config = self._require_config()
            count = await self.rpc.call(
                "model.account.journal.search_count", [("code", "=", config.journal)]
            )
        except DeliveryError as exc:
            return HealthReport(False, exc.reason)
        latency = (time.monotonic() - started) * 1000
        if not count:
            return HealthReport(False, f"journal {config.journal!r} not found", latency)
        return HealthReport(True, f"Tryton database {config.database!r}", latency)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


def _shape_error(message: OutboundMessage) -> DeliveryError | None:
    if message.action != ACTION:
        return DeliveryError(
            ErrorClass.CONFIG, f"tryton has no action {message.action!r}; it knows {ACTION!r}"
        )
    if not isinstance(message.payload.get("voucher_id"), str) or "entries" not in message.payload:
        return DeliveryError(
            ErrorClass.CONFIG, f"outbox row {message.id} is not a canonical voucher"
        )
    return None


def _codes(config: Mapping[str, Any], parsed: TrytonConfig) -> VoucherCodes:
    """The `tryton/voucher` code tables with the instance's `account_codes` on top."""
    return connector_codes("tryton", config).with_accounts(parsed.account_codes)


def _account_kind(account_type: Mapping[str, Any] | None) -> str:
    if not account_type:
        return "view"
    if account_type.get("receivable"):
        return "receivable"
    if account_type.get("payable"):
        return "payable"
    if account_type.get("expense"):
        return "expense"
    if account_type.get("revenue"):
        return "revenue"
    if account_type.get("statement") == "balance":
        return "asset" if account_type.get("assets") else "liability"
    return "other"


def _closed_period_error(
    period: str, base: TrytonBase, move: Mapping[str, Any] | None, detail: str = ""
) -> DeliveryError:
    start, end = base.period_ranges.get(period, ("?", "?"))
    subject = f"move {move.get('number')} is in" if move else "the voucher falls in"
    text = f"Tryton period {period} ({start} to {end}) is closed: {subject} it"
    if detail:
        text += f" (Tryton: {detail})"
    return DeliveryError(ErrorClass.PERMANENT, text)


def _unknown_outcome(error: DeliveryError) -> DeliveryError:
    """`error`, after the moves were created: whatever follows starts with the lookup."""
    if error.outcome_unknown:
        return error
    reason = f"the moves exist in Tryton, not all posted: {error.reason}"
    return DeliveryError(
        error.error_class, reason, retry_after=error.retry_after, outcome_unknown=True
    )


def _posted(move: Mapping[str, Any]) -> DeliveryResult:
    number = move.get("number")
    if not isinstance(number, str) or not number:
        reason = f"Tryton move {move.get('id')} is posted without a number"
        return DeliveryResult(error=DeliveryError(ErrorClass.PERMANENT, reason))
    return DeliveryResult(
        response={
            "erp_voucher_no": number,
            "erp_id": str(move["id"]),
            "period": (move.get("period.") or {}).get("name"),
        }
    )
