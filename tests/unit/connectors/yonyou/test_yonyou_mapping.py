"""Yonyou wire formats against golden fixtures: the U8 `voucher/add` JSON and the NC
`ufinterface` voucher XML built from a canonical voucher in the account set's codes (the
shipped `yonyou-*/voucher` mappings: `6602.01` is `660201`, department D02 is `03`); a GBK
document read back to the same voucher; the result XML parsed; hostile XML (entities,
DOCTYPE) refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from finoa.connectors.base import VoucherPayload
from finoa.connectors.voucher_codes import load_voucher_codes
from finoa.connectors.yonyou.mapping import (
    NCEnvelope,
    NCResult,
    declared_encoding,
    fen,
    nc_result_xml,
    nc_voucher_xml,
    parse_nc_result,
    read_xml,
    u8_voucher,
    yuan,
)
from finoa.connectors.yonyou.simulator import BaseData, Refused, _nc_voucher, _u8_voucher, check

FIXTURES = Path(__file__).parents[3] / "fixtures" / "yonyou"
KEY = "finoa-voucher-V0001"
ENVELOPE = NCEnvelope(sender="finoa", receiver="0001", company="1001", enter="finoa")


def voucher(**overrides: Any) -> VoucherPayload:
    payload: VoucherPayload = {
        "voucher_id": "V0001", "claim_id": "CL0001", "hub_voucher_no": "记-0007", "word": "记",
        "period": "2025-11", "date": "2025-11-03", "summary": "报销 上海客户拜访",
        "currency": "CNY", "reversal_of": None,
        "entries": [
            {"line": 1, "account_code": "6602.01", "summary": "差旅费 高铁", "debit_fen": 128050,
             "credit_fen": 0, "aux": {"department": "D02", "employee": "E0011", "project": "P001"}},
            {"line": 2, "account_code": "6602.02", "summary": "住宿费", "debit_fen": 50000,
             "credit_fen": 0, "aux": {"department": "D02", "employee": None, "project": None}},
            {"line": 3, "account_code": "2221.01.01", "summary": "进项税额", "debit_fen": 3000,
             "credit_fen": 0, "aux": {"department": None, "employee": None, "project": None}},
            {"line": 4, "account_code": "2241", "summary": "应付 周杰", "debit_fen": 0,
             "credit_fen": 181050, "aux": {"department": None, "employee": "E0011",
                                           "project": None}},
        ],
    }  # fmt: skip
    payload.update(overrides)  # type: ignore[typeddict-item]
    return payload


def mapped(profile: str = "u8", payload: VoucherPayload | None = None) -> Any:
    """A voucher (`voucher()`) in the account set's codes, as the connector sends it."""
    return load_voucher_codes(f"yonyou-{profile}", {}).apply(payload or voucher())


def test_both_profiles_ship_the_same_code_tables() -> None:
    u8, nc = load_voucher_codes("yonyou-u8", {}), load_voucher_codes("yonyou-nc", {})
    assert dict(u8.accounts) == dict(nc.accounts) and u8.accounts["2221.01.01"] == "22210101"
    assert mapped("u8") == mapped("nc")
    lines = mapped()["entries"]
    assert [e["account_code"] for e in lines] == ["660201", "660202", "22210101", "2241"]
    assert lines[0]["aux"] == {"department": "03", "employee": "E0011", "project": "P001"}


def test_yuan_and_fen_round_trip() -> None:
    assert [yuan(v) for v in (128050, 5, -50000, 0)] == ["1280.50", "0.05", "-500.00", "0.00"]
    assert fen("1280.50", "x") == 128050 and fen("-5", "x") == -500
    with pytest.raises(ValueError, match="entry 3 debit"):
        fen("12.345", "entry 3 debit")
    with pytest.raises(ValueError, match="not an amount"):
        fen("abc", "x")


def test_u8_voucher_add_body_matches_golden_fixture() -> None:
    body = u8_voucher(mapped(), KEY, "finoa")
    golden = json.loads((FIXTURES / "u8_voucher_add.json").read_text(encoding="utf-8"))
    assert body == golden
    head = body["voucher"]
    assert head["reserve2"] == KEY and head["voucher_making_system"] == "CDM"
    assert head["accounting_period"] == "11" and head["fiscal_year"] == "2025"


def test_nc_voucher_xml_matches_golden_fixture() -> None:
    document = nc_voucher_xml(mapped("nc"), KEY, ENVELOPE)
    golden = read_xml((FIXTURES / "nc_voucher_add.xml").read_bytes())
    assert etree.tostring(read_xml(document)) == etree.tostring(golden)
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = read_xml(document)
    assert (root.get("roottag"), root.get("billtype"), root.get("proc")) == ("voucher", "gl", "add")
    assert root.find("voucher").get("id") == KEY
    assert root.findtext("voucher/voucher_head/reserve2") == KEY


def test_u8_and_nc_bodies_read_back_to_the_same_ledger_voucher() -> None:
    from_u8 = _u8_voucher(u8_voucher(mapped(), KEY, "finoa"))
    from_nc = _nc_voucher(read_xml(nc_voucher_xml(mapped("nc"), KEY, ENVELOPE)).find("voucher"))
    by_line = sorted(from_u8.entries, key=lambda e: e.entry_id)
    assert by_line == from_nc.entries
    assert from_u8.reference == from_nc.reference == KEY
    assert from_nc.entries[0].aux == {"dept_id": "03", "person_id": "E0011", "item_id": "P001"}
    check(from_nc, BaseData.sample())  # the sample base data knows every mapped code
    unmapped = _nc_voucher(read_xml(nc_voucher_xml(voucher(), KEY, ENVELOPE)).find("voucher"))
    with pytest.raises(Refused, match="account '6602.01' does not exist"):
        check(unmapped, BaseData.sample())  # finoa's own codes are not the account set's


def test_gbk_document_declares_gbk_and_reads_back_chinese_text() -> None:
    gbk = nc_voucher_xml(voucher(), KEY, NCEnvelope("finoa", "0001", "1001", "制单员", "GBK"))
    assert declared_encoding(gbk) == "GBK"
    assert "报销 上海客户拜访".encode("gbk") in gbk
    assert "报销".encode() not in gbk  # not UTF-8 bytes
    root = read_xml(gbk)
    assert root.findtext("voucher/voucher_head/reserve1") == "报销 上海客户拜访"
    assert root.findtext("voucher/voucher_head/enter") == "制单员"
    parsed = _nc_voucher(root.find("voucher"))
    utf8 = _nc_voucher(read_xml(nc_voucher_xml(voucher(), KEY, ENVELOPE)).find("voucher"))
    assert parsed == utf8


def test_result_xml_round_trip_in_gbk() -> None:
    result = NCResult(True, "1", "单据 导入成功", "2025-11-记-0001", KEY)
    failed = NCResult(False, "-31", "entry 1: account '9999' does not exist", "", "K2")
    document = nc_result_xml([result, failed], sender="0001", receiver="finoa", encoding="GBK")
    assert declared_encoding(document) == "GBK"
    first, second = parse_nc_result(document)
    assert first == NCResult(False, "1", "单据 导入成功", "2025-11-记-0001", KEY)  # overall N
    assert second == failed
    (alone,) = parse_nc_result(
        nc_result_xml([result], sender="0001", receiver="finoa", encoding="UTF-8")
    )
    assert alone == result


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><ufinterface>&e;</ufinterface>',
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><ufinterface/>',
        b"<ufinterface><sendresult>",
    ],
)
def test_hostile_or_broken_xml_is_refused(document: bytes) -> None:
    with pytest.raises(ValueError):
        parse_nc_result(document)


def test_unknown_codes_are_refused_naming_them() -> None:
    base = BaseData.sample()
    bad_account = mapped()
    bad_account["entries"][0]["account_code"] = "660299"
    with pytest.raises(Refused, match="account '660299' does not exist"):
        check(_u8_voucher(u8_voucher(bad_account, KEY, "finoa")), base)
    bad_dept = mapped()
    bad_dept["entries"][1]["aux"]["department"] = "D02"  # finoa's code, not the account set's
    with pytest.raises(Refused, match="dept_id 'D02' does not exist"):
        check(_u8_voucher(u8_voucher(bad_dept, KEY, "finoa")), base)
    with pytest.raises(Refused, match="voucher type '凭' does not exist"):
        check(_u8_voucher(u8_voucher(mapped("u8", voucher(word="凭")), KEY, "finoa")), base)
    unbalanced = mapped()
    unbalanced["entries"][3]["credit_fen"] = 1
    with pytest.raises(Refused, match="debits 181050 fen != credits 1 fen"):
        check(_u8_voucher(u8_voucher(unbalanced, KEY, "finoa")), base)


def test_app_secret_is_redacted_in_diagnostics_and_reprs(tmp_path: Path) -> None:
    from dataclasses import replace

    import httpx

    from finoa.config import load_settings
    from finoa.connectors.instances import load_instances
    from finoa.connectors.yonyou.client import YonyouU8Connector

    config = {
        "base_url": "https://api.yonyouup.com", "app_key": "opa0123", "from_account": "finoa",
        "app_secret": "very-secret-app-secret", "to_account": "u8corp",
    }  # fmt: skip
    settings = replace(
        load_settings(data_dir=tmp_path),
        extra={"connectors": {"u8": {"connector": "yonyou-u8", "config": config}}},
    )
    instance = load_instances(settings).instances["u8"]
    connector = YonyouU8Connector(config, httpx.AsyncClient())
    shown = repr(instance) + repr(instance.describe()) + repr(connector) + repr(connector.config)
    assert "very-secret-app-secret" not in shown
    assert instance.describe()["config"]["app_secret"] == "***"
    assert instance.describe()["config"]["app_key"] == "opa0123"


def test_red_ink_reversal_keeps_each_line_on_its_side_with_negative_amounts() -> None:
    original = voucher()
    reversal = voucher(voucher_id="V0002", hub_voucher_no="记-0008", reversal_of="V0001")
    reversal["entries"] = [
        {**e, "debit_fen": -e["debit_fen"], "credit_fen": -e["credit_fen"]}
        for e in original["entries"]
    ]
    reversal = mapped("u8", reversal)
    body = u8_voucher(reversal, "finoa-voucher-V0002", "finoa")["voucher"]
    assert [e["natural_debit_currency"] for e in body["debit"]["entry"]] == [
        "-1280.50", "-500.00", "-30.00"
    ]  # fmt: skip
    assert body["credit"]["entry"][0]["natural_credit_currency"] == "-1810.50"
    base = BaseData.sample()
    check(_u8_voucher({"voucher": body}), base)
    nc = read_xml(nc_voucher_xml(reversal, "finoa-voucher-V0002", ENVELOPE))
    assert nc.findtext("voucher/voucher_body/entry/natural_debit_currency") == "-1280.50"
    check(_nc_voucher(nc.find("voucher")), base)
