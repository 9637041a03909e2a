"""Base data from an ERP (主数据), and the check of a voucher against it before posting.

An ERP connector that can read its ERP's base data also offers `base_data()`, returning
`ERPBaseData`:

- `accounts`: every account by code, with its kind (asset, receivable, liability, payable,
  expense, revenue, equity, other), whether lines may be posted to it (`postable`: not a view
  or summary account, not closed) and what its lines need: a party (`needs_party`, the
  employee for finoa) and dimensions (`needs_dimensions`: `department`, `project`,
  `employee`);
- `periods`: accounting periods `YYYY-MM` with their open/closed state, or None when the ERP
  does not report periods;
- `dimensions`: for each dimension the ERP keeps codes of (`department`, `employee`,
  `project`), the codes it knows; a dimension it does not keep is absent and not checked.

`voucher_problems(voucher, base)` lists what the ERP would refuse, each naming the code and
the field, so finoa refuses the voucher itself (a permanent error whose reason names the
code) instead of sending it and failing in the ERP. `BaseDataCache` keeps one ERP's base
data for a while, so a burst of vouchers reads it once.

The contract is additive: a connector without `base_data()` posts unchecked, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from finoa.connectors.base import DeliveryResult, OutboundMessage
from finoa.messaging.retry import DeliveryError, ErrorClass

if TYPE_CHECKING:
    from finoa.connectors.voucher_codes import VoucherCodes

DIMENSIONS = ("department", "employee", "project")


def chart_kind(code: str) -> str:
    """The kind of an account of finoa's chart, from its code (企业会计准则 numbering)."""
    top = code.split(".")[0]
    if top == "1221" or top in {"1122", "1123"}:
        return "receivable"
    if top in {"2241", "2202"}:
        return "payable"
    if top.startswith("1"):
        return "asset"
    if top.startswith("2"):
        return "liability"
    if top.startswith("6") and top < "6400":
        return "revenue" if top in {"6001", "6051", "6111", "6301"} else "expense"
    return "expense"


@dataclass(frozen=True)
class ERPAccount:
    code: str
    name: str
    kind: str
    postable: bool = True
    needs_party: bool = False
    needs_dimensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ERPPeriod:
    code: str  # YYYY-MM
    open: bool
    start: str | None = None  # YYYY-MM-DD
    end: str | None = None


@dataclass(frozen=True)
class ERPBaseData:
    accounts: Mapping[str, ERPAccount]
    periods: Mapping[str, ERPPeriod] | None = None
    dimensions: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for `finoa erp base-data` and the docs)."""
        return {
            "accounts": [
                {
                    "code": a.code,
                    "name": a.name,
                    "kind": a.kind,
                    "postable": a.postable,
                    "needs_party": a.needs_party,
                    "needs_dimensions": list(a.needs_dimensions),
                }
                for a in sorted(self.accounts.values(), key=lambda a: a.code)
            ],
            "periods": None
            if self.periods is None
            else [
                {"code": p.code, "open": p.open, "start": p.start, "end": p.end}
                for p in sorted(self.periods.values(), key=lambda p: p.code)
            ],
            "dimensions": {k: sorted(v) for k, v in sorted(self.dimensions.items())},
        }


def base_data_from_dict(raw: Mapping[str, Any]) -> ERPBaseData:
    """The inverse of `ERPBaseData.as_dict` (how an ERP's REST API may report it); raises
    ValueError naming the bad part."""
    try:
        accounts = {
            str(a["code"]): ERPAccount(
                code=str(a["code"]),
                name=str(a.get("name") or ""),
                kind=str(a.get("kind") or "other"),
                postable=bool(a.get("postable", True)),
                needs_party=bool(a.get("needs_party", False)),
                needs_dimensions=tuple(str(d) for d in a.get("needs_dimensions") or ()),
            )
            for a in raw["accounts"]
        }
        periods = (
            None
            if raw.get("periods") is None
            else {
                str(p["code"]): ERPPeriod(
                    str(p["code"]), bool(p["open"]), p.get("start"), p.get("end")
                )
                for p in raw["periods"]
            }
        )
        dimensions = {
            str(k): frozenset(str(c) for c in v) for k, v in (raw.get("dimensions") or {}).items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed base data: {type(exc).__name__} {exc}") from exc
    return ERPBaseData(accounts, periods, dimensions)


@runtime_checkable
class BaseDataSource(Protocol):
    """An ERP connector that can read its ERP's base data."""

    async def base_data(self) -> ERPBaseData: ...


@dataclass(frozen=True)
class BaseDataProblem:
    """One thing the ERP would refuse: `field` is a path in the voucher, `code` the value."""

    field: str
    code: str
    message: str


def voucher_problems(voucher: Mapping[str, Any], base: ERPBaseData) -> list[BaseDataProblem]:
    """What in a canonical voucher (`VoucherPayload`) the ERP's base data does not allow."""
    problems: list[BaseDataProblem] = []
    period = str(voucher.get("period") or "")
    if base.periods is not None:
        known = base.periods.get(period)
        if known is None:
            problems.append(
                BaseDataProblem("period", period, f"period {period} does not exist in the ERP")
            )
        elif not known.open:
            problems.append(
                BaseDataProblem("period", period, f"period {period} is closed in the ERP")
            )
    for index, entry in enumerate(voucher.get("entries") or []):
        where = f"entries[{index}]"
        code = str(entry.get("account_code") or "")
        account = base.accounts.get(code)
        if account is None:
            problems.append(
                BaseDataProblem(
                    f"{where}.account_code", code, f"account {code} does not exist in the ERP"
                )
            )
            continue
        if not account.postable:
            problems.append(
                BaseDataProblem(
                    f"{where}.account_code",
                    code,
                    f"account {code} takes no postings in the ERP (a summary or closed account)",
                )
            )
        aux = entry.get("aux") or {}
        needed = set(account.needs_dimensions) | ({"employee"} if account.needs_party else set())
        for dimension in DIMENSIONS:
            value = aux.get(dimension)
            path = f"{where}.aux.{dimension}"
            if value is None:
                if dimension in needed:
                    problems.append(
                        BaseDataProblem(
                            path, code, f"account {code} needs a {dimension} in the ERP"
                        )
                    )
                continue
            known_codes = base.dimensions.get(dimension)
            if known_codes is not None and str(value) not in known_codes:
                problems.append(
                    BaseDataProblem(
                        path, str(value), f"{dimension} {value} does not exist in the ERP"
                    )
                )
    return problems


def refusal(problems: list[BaseDataProblem], erp: str) -> DeliveryError:
    """The permanent error of a voucher the ERP's base data refuses (naming every code)."""
    text = "; ".join(f"{p.field}: {p.message}" for p in problems)
    return DeliveryError(ErrorClass.PERMANENT, f"refused before posting to {erp}: {text}")


class BaseDataCache:
    """One ERP's base data, read at most once per `ttl_seconds` (concurrent callers share the
    read); `invalidate()` forgets it, e.g. after the ERP refused something it should know."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[ERPBaseData]],
        *,
        ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._value: ERPBaseData | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.reads = 0

    async def get(self) -> ERPBaseData:
        async with self._lock:
            if self._value is None or self._clock() - self._read_at >= self.ttl_seconds:
                self._value = await self._fetch()
                self._read_at = self._clock()
                self.reads += 1
            return self._value

    def invalidate(self) -> None:
        self._value = None


async def deliver_checked(
    messages: Sequence[OutboundMessage],
    cache: BaseDataCache | None,
    erp: str,
    send: Callable[[list[OutboundMessage]], Awaitable[list[DeliveryResult]]],
    codes: VoucherCodes | None = None,
    *,
    map_codes: bool = True,
) -> list[DeliveryResult]:
    """Map each voucher onto the ERP's codes (`codes`, the connector's voucher mapping: an
    unmapped account is refused), check it against the ERP's base data (`cache`; None: the
    ERP's base data is not read, the ERP checks it), refuse those it does not allow (a
    permanent error naming the codes), and `send` the rest; one result per message, in
    order. With `map_codes` false the vouchers are only checked against the mapping and
    `send` gets them in finoa's codes (a connector that maps them as it builds its body).
    Messages that are not canonical vouchers pass to `send` unchecked."""
    unmapped: dict[int, list[BaseDataProblem]] = {}
    if codes is not None:
        from finoa.connectors.voucher_codes import mapped_messages

        mapped, unmapped = mapped_messages(messages, codes)
        messages = mapped if map_codes else messages
    results: dict[int, DeliveryResult] = {
        index: DeliveryResult(error=refusal(problems, erp)) for index, problems in unmapped.items()
    }
    if len(results) == len(messages):
        return [results[index] for index in range(len(messages))]
    base: ERPBaseData | None = None
    if cache is not None:
        try:
            base = await cache.get()
        except DeliveryError as exc:
            return [
                results.get(index) or DeliveryResult(error=exc) for index in range(len(messages))
            ]
    passing: list[int] = []
    for index, message in enumerate(messages):
        if index in results:
            continue
        if base is not None and message.action == "voucher.post" and "entries" in message.payload:
            problems = voucher_problems(message.payload, base)
            if problems:
                results[index] = DeliveryResult(error=refusal(problems, erp))
                continue
        passing.append(index)
    if passing:
        sent = await send([messages[index] for index in passing])
        results.update(zip(passing, sent, strict=True))
    return [results[index] for index in range(len(messages))]
