"""Checking a voucher against an ERP's base data: every refusal names its field and code."""

from __future__ import annotations

import asyncio
from typing import Any

from finoa.connectors.basedata import (
    BaseDataCache,
    ERPAccount,
    ERPBaseData,
    ERPPeriod,
    base_data_from_dict,
    voucher_problems,
)

BASE = ERPBaseData(
    accounts={
        "6602": ERPAccount("6602", "管理费用", "expense", postable=False),
        "6602.01": ERPAccount("6602.01", "差旅费", "expense", needs_dimensions=("department",)),
        "2241": ERPAccount("2241", "其他应付款", "payable", needs_party=True),
    },
    periods={"2026-11": ERPPeriod("2026-11", True), "2026-10": ERPPeriod("2026-10", False)},
    dimensions={"employee": frozenset({"E0003"})},
)


def voucher(period: str = "2026-11", **first: Any) -> dict[str, Any]:
    entries = [
        {
            "account_code": "6602.01",
            "aux": {"department": "D01", "employee": None, "project": None},
        },
        {"account_code": "2241", "aux": {"department": None, "employee": "E0003", "project": None}},
    ]
    entries[0] = {**entries[0], **first}
    return {"period": period, "entries": entries}


def test_a_voucher_the_erp_knows_passes() -> None:
    assert voucher_problems(voucher(), BASE) == []


def test_each_problem_names_field_and_code() -> None:
    problems = voucher_problems(
        voucher("2026-10", account_code="6602.99"), BASE
    ) + voucher_problems(voucher(account_code="6602"), BASE)
    found = {(p.field, p.code) for p in problems}
    assert ("period", "2026-10") in found
    assert ("entries[0].account_code", "6602.99") in found
    assert ("entries[0].account_code", "6602") in found


def test_needed_dimensions_and_unknown_codes() -> None:
    missing = voucher(aux={"department": None, "employee": None, "project": None})
    assert [(p.field, p.code) for p in voucher_problems(missing, BASE)] == [
        ("entries[0].aux.department", "6602.01")
    ]
    stranger = voucher()
    stranger["entries"][1]["aux"] = {"department": None, "employee": "E9999", "project": "P9"}
    problems = voucher_problems(stranger, BASE)
    # employees are kept by this ERP and checked; projects are not kept, so not checked
    assert [(p.field, p.code) for p in problems] == [("entries[1].aux.employee", "E9999")]
    no_party = voucher()
    no_party["entries"][1]["aux"] = {"department": None, "employee": None, "project": None}
    assert [p.field for p in voucher_problems(no_party, BASE)] == ["entries[1].aux.employee"]


def test_the_dict_form_round_trips() -> None:
    assert base_data_from_dict(BASE.as_dict()) == BASE


def test_the_cache_reads_once_until_it_expires() -> None:
    now = [0.0]
    reads: list[int] = []

    async def fetch() -> ERPBaseData:
        reads.append(1)
        return BASE

    cache = BaseDataCache(fetch, ttl_seconds=10, clock=lambda: now[0])

    async def run() -> None:
        await asyncio.gather(*(cache.get() for _ in range(5)))
        now[0] = 11.0
        await cache.get()
        cache.invalidate()
        await cache.get()

    asyncio.run(run())
    assert len(reads) == 3
