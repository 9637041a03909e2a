"""The verification adapter against the tax platform simulator, a real process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from support.processes import Server, free_port, start

from finoa.invoices.verification import (
    FourElements,
    TaxPlatform,
    Verification,
    VerificationState,
)

KEY = os.urandom(12).hex()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("tax")
    port = free_port()
    env = {"FINOA_TAX_PLATFORM_API_KEY": KEY, "FINOA_DATA_DIR": str(directory)}
    server = start(
        "tax", ["sim", "tax-platform", "--port", str(port)], env, "/_sim/stats", port, directory
    )
    try:
        yield server
    finally:
        server.stop()


_numbers = iter(range(10**14, 10**15))


def issued(platform: Server, **record: str) -> FourElements:
    number = f"25442{next(_numbers):015d}"
    body = {"number": number, "issue_date": "2025-11-03", "amount": "109.00", **record}
    assert httpx.post(f"{platform.url}/_sim/invoices", json=body).status_code == 200
    return FourElements(number, date(2025, 11, 3), 10900, record.get("check_code", ""))


def verify(url: str, elements: FourElements, key: str = KEY) -> Verification:
    async def run() -> Verification:
        async with httpx.AsyncClient() as http:
            return await TaxPlatform(url, key, http, 5.0).verify(elements)

    return asyncio.run(run())


def test_all_four_elements_must_match(platform: Server) -> None:
    elements = issued(platform, check_code="12345678901234567890")
    assert verify(platform.url, elements).state is VerificationState.CONSISTENT
    wrong_date = FourElements(elements.number, date(2025, 11, 4), 10900, elements.check_code)
    result = verify(platform.url, wrong_date)
    assert result.state is VerificationState.INCONSISTENT and "kprq" in result.detail
    wrong_amount = FourElements(elements.number, elements.issue_date, 10800, elements.check_code)
    assert "je" in verify(platform.url, wrong_amount).detail
    wrong_code = FourElements(elements.number, elements.issue_date, 10900, "000000")
    assert "jym" in verify(platform.url, wrong_code).detail


def test_unknown_voided_and_red_reversed(platform: Server) -> None:
    unknown = FourElements("25442999999999999999", date(2025, 11, 3), 10900)
    assert verify(platform.url, unknown).state is VerificationState.NOT_FOUND
    voided = issued(platform, status="voided")
    assert verify(platform.url, voided).state is VerificationState.VOIDED
    reversed_ = issued(platform, status="red_reversed")
    assert verify(platform.url, reversed_).state is VerificationState.RED_REVERSED


def test_five_queries_a_day_per_invoice(platform: Server) -> None:
    elements = issued(platform)
    states = [verify(platform.url, elements).state for _ in range(6)]
    assert states == [VerificationState.CONSISTENT] * 5 + [VerificationState.LIMIT_EXCEEDED]


def test_wrong_key_and_unreachable_platform_are_unavailable(platform: Server) -> None:
    elements = issued(platform)
    result = verify(platform.url, elements, key="wrong")
    assert result.state is VerificationState.UNAVAILABLE and "401" in result.detail
    down = verify(f"http://127.0.0.1:{free_port()}", elements)
    assert down.state is VerificationState.UNAVAILABLE and "unreachable" in down.detail


def test_malformed_queries_are_problems_naming_the_field(platform: Server) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    url = f"{platform.url}/api/v1/invoice-verifications"
    bad_date = {"fphm": "25442000000000000001", "kprq": "2025-11-03", "je": "1.00"}
    response = httpx.post(url, json=bad_date, headers=headers)
    assert response.status_code == 400 and response.json()["field"] == "kprq"
    response = httpx.post(url, content=b"[1]", headers=headers)
    assert response.status_code == 400 and response.json()["field"] == "body"
