"""Verifying an invoice at the tax platform (发票查验) by its four elements.

The four elements are the number (发票号码, with the 发票代码 for older invoices), the date
of issue (开票日期), the amount (for 数电票 the 价税合计; for older invoices the amount without
tax) and the check code (校验码, last six digits; 数电票 have none). The adapter speaks a JSON
form of the platform's query (fields `fpdm`, `fphm`, `kprq`, `je`, `jym`) and turns the
platform's answer codes into `VerificationState`s:

| code | state | meaning |
|---|---|---|
| 001, invoice normal | consistent | 查验一致 |
| 001, invoice voided | voided | 已作废 |
| 001, invoice red-reversed | red_reversed | 已红冲 |
| 002 | limit_exceeded | 超过该张发票当日查验次数 (5 a day) |
| 006 | inconsistent | 查验不一致: an element differs |
| 009 | not_found | 查无此票 |
| anything else, a timeout, a 5xx | unavailable | the platform could not answer |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import httpx

from finoa.domain.money import fen_to_yuan


class VerificationState(StrEnum):
    CONSISTENT = "consistent"
    INCONSISTENT = "inconsistent"
    NOT_FOUND = "not_found"
    VOIDED = "voided"
    RED_REVERSED = "red_reversed"
    LIMIT_EXCEEDED = "limit_exceeded"
    UNAVAILABLE = "unavailable"
    NOT_CHECKED = "not_checked"  # no platform configured
    MANUAL_ENTRY = "manual_entry"  # nothing to check until the invoice is entered


# A definite "this invoice does not hold": the upload is refused.
REFUSED_STATES = frozenset(
    {
        VerificationState.INCONSISTENT,
        VerificationState.NOT_FOUND,
        VerificationState.VOIDED,
        VerificationState.RED_REVERSED,
    }
)
VERIFY_PATH = "/api/v1/invoice-verifications"


@dataclass(frozen=True, slots=True)
class FourElements:
    number: str
    issue_date: date
    amount_fen: int
    check_code: str = ""
    code: str = ""  # 发票代码 of older invoices; 数电票 have none

    def wire(self) -> dict[str, str]:
        return {
            "fpdm": self.code,
            "fphm": self.number,
            "kprq": self.issue_date.strftime("%Y%m%d"),
            "je": f"{fen_to_yuan(self.amount_fen)}",
            "jym": self.check_code[-6:],
        }


@dataclass(frozen=True, slots=True)
class Verification:
    state: VerificationState
    detail: str = ""


def state_of(answer: dict[str, object]) -> Verification:
    """The verification state of a platform answer."""
    code = str(answer.get("code", ""))
    message = str(answer.get("message", ""))
    if code == "001":
        status = str(answer.get("invoice_status", "normal"))
        state = {
            "normal": VerificationState.CONSISTENT,
            "voided": VerificationState.VOIDED,
            "red_reversed": VerificationState.RED_REVERSED,
        }.get(status, VerificationState.UNAVAILABLE)
        return Verification(state, message or status)
    state = {
        "002": VerificationState.LIMIT_EXCEEDED,
        "006": VerificationState.INCONSISTENT,
        "009": VerificationState.NOT_FOUND,
    }.get(code, VerificationState.UNAVAILABLE)
    return Verification(state, message or f"answer code {code or 'missing'}")


class TaxPlatform:
    """The verification adapter: one query per invoice, its answer as a state."""

    def __init__(
        self, base_url: str, api_key: str, http: httpx.AsyncClient, timeout: float
    ) -> None:
        self.url = base_url.rstrip("/") + VERIFY_PATH
        self.headers = {"authorization": f"Bearer {api_key}"}
        self.http = http
        self.timeout = timeout

    async def verify(self, elements: FourElements) -> Verification:
        try:
            response = await self.http.post(
                self.url, json=elements.wire(), headers=self.headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            return Verification(VerificationState.UNAVAILABLE, f"tax platform unreachable: {exc}")
        if response.status_code == 429:
            return Verification(VerificationState.LIMIT_EXCEEDED, "rate limited (429)")
        if response.status_code != 200:
            return Verification(
                VerificationState.UNAVAILABLE, f"tax platform answered {response.status_code}"
            )
        try:
            answer = response.json()
        except ValueError:
            return Verification(VerificationState.UNAVAILABLE, "tax platform answer is not JSON")
        if not isinstance(answer, dict):
            return Verification(
                VerificationState.UNAVAILABLE, "tax platform answer is not an object"
            )
        return state_of(answer)
