"""The SAP connector's mapping: canonical vouchers -> BAPI_ACC_DOCUMENT_POST's parameters
(golden payloads), the reversal's parameters, and RETURN rows -> error classes."""

from __future__ import annotations

from typing import Any

import pytest

from finoa.connectors.base import VoucherPayload
from finoa.connectors.sap import mapping
from finoa.connectors.sap.client import SapConfig
from finoa.messaging.retry import ErrorClass


def voucher(**overrides: Any) -> VoucherPayload:
    def entry(line: int, code: str, debit: int, credit: int, dept: str | None,
              employee: str | None, text: str) -> dict[str, Any]:  # fmt: skip
        aux = {"department": dept, "employee": employee, "project": None}
        return {"line": line, "account_code": code, "summary": text, "debit_fen": debit,
                "credit_fen": credit, "aux": aux}  # fmt: skip

    payload = {
        "voucher_id": "V1", "claim_id": "C1", "hub_voucher_no": "记-0001", "word": "记",
        "period": "2026-11", "date": "2026-11-12", "summary": "差旅报销 travel claim of Liu Yang",
        "currency": "CNY", "reversal_of": None,
        "entries": [
            entry(1, "6602.01", 35000, 0, "D03", "E0021", "差旅费"),
            entry(2, "2221.01.01", 105, 0, None, None, "进项税额"),
            entry(3, "2241", 0, 35105, "D03", "E0021", "应付 Liu Yang"),
        ],
        **overrides,
    }  # fmt: skip
    return payload  # type: ignore[return-value]


CODES = mapping.SapCodes("1000", "FINOA_RFC")

GOLDEN = {
    "DOCUMENTHEADER": {
        "OBJ_TYPE": "BKPFF", "OBJ_KEY": "$", "OBJ_SYS": "FINOA", "BUS_ACT": "RFBU",
        "USERNAME": "FINOA_RFC", "HEADER_TXT": "差旅报销 travel claim of Liu", "COMP_CODE": "1000",
        "DOC_DATE": "20261112", "PSTNG_DATE": "20261112", "FISC_YEAR": "2026",
        "FIS_PERIOD": "011", "DOC_TYPE": "SA", "REF_DOC_NO": "QNDWYQ5W33VZTUOA",
    },
    "ACCOUNTGL": [
        {"ITEMNO_ACC": "0000000001", "GL_ACCOUNT": "660201", "COMP_CODE": "1000",
         "ITEM_TEXT": "差旅费", "COSTCENTER": "D03"},
        {"ITEMNO_ACC": "0000000002", "GL_ACCOUNT": "22210101", "COMP_CODE": "1000",
         "ITEM_TEXT": "进项税额"},
    ],
    "ACCOUNTPAYABLE": [
        {"ITEMNO_ACC": "0000000003", "VENDOR_NO": "E0021", "COMP_CODE": "1000",
         "ITEM_TEXT": "应付 Liu Yang"},
    ],
    "CURRENCYAMOUNT": [
        {"ITEMNO_ACC": "0000000001", "CURRENCY": "CNY", "AMT_DOCCUR": "350.00"},
        {"ITEMNO_ACC": "0000000002", "CURRENCY": "CNY", "AMT_DOCCUR": "1.05"},
        {"ITEMNO_ACC": "0000000003", "CURRENCY": "CNY", "AMT_DOCCUR": "-351.05"},
    ],
}  # fmt: skip


def test_a_voucher_becomes_the_bapis_own_document() -> None:
    assert mapping.document(voucher(), CODES, "finoa-voucher-V1") == GOLDEN


def test_code_tables_replace_finoas_codes_with_saps() -> None:
    codes = mapping.SapCodes(
        "CN01", "RFC_FINOA", logical_system="FINOACLNT", document_type="KR",
        gl_accounts={"6602.01": "0066020100"}, vendors={"E0021": "0000100021"},
        cost_centers={"D03": "CC03"},
    )  # fmt: skip
    body = mapping.document(voucher(), codes, "finoa-voucher-V1")
    header = body["DOCUMENTHEADER"]
    assert (header["COMP_CODE"], header["OBJ_SYS"], header["DOC_TYPE"]) == (
        "CN01",
        "FINOACLNT",
        "KR",
    )
    assert body["ACCOUNTGL"][0]["GL_ACCOUNT"] == "0066020100"
    assert body["ACCOUNTGL"][0]["COSTCENTER"] == "CC03"
    assert body["ACCOUNTGL"][1]["GL_ACCOUNT"] == "22210101"  # not in the table: dots dropped
    assert body["ACCOUNTPAYABLE"][0]["VENDOR_NO"] == "0000100021"


def test_the_signed_amounts_net_to_zero_and_the_reference_fits_xblnr() -> None:
    body = mapping.document(voucher(), CODES, "finoa-voucher-V1")
    assert sum(int(a["AMT_DOCCUR"].replace(".", "")) for a in body["CURRENCYAMOUNT"]) == 0
    assert mapping.reference("finoa-voucher-V1") == body["DOCUMENTHEADER"]["REF_DOC_NO"]
    assert len(mapping.reference("x" * 300)) == 16
    assert mapping.reference("finoa-voucher-V2") != mapping.reference("finoa-voucher-V1")
    assert mapping.voucher_reference("V1") == mapping.reference("finoa-voucher-V1")
    assert [mapping.amount(f) for f in (0, 5, -5, 100, -35105)] == [
        "0.00", "0.05", "-0.05", "1.00", "-351.05"
    ]  # fmt: skip


def test_a_reversal_names_the_original_and_the_reason() -> None:
    red = voucher(date="2026-12-01", period="2026-12", reversal_of="V1")
    assert mapping.reversal(red, CODES, "0100000001" + "1000" + "2026", "02") == {
        "REVERSAL": {
            "OBJ_TYPE": "BKPFF", "OBJ_SYS": "FINOA", "OBJ_KEY": "$",
            "OBJ_KEY_R": "010000000110002026", "COMP_CODE": "1000", "PSTNG_DATE": "20261201",
            "FIS_PERIOD": "012", "REASON_REV": "02",
        },
        "BUS_ACT": "RFBU",
    }  # fmt: skip


def row(kind: str, ident: str, number: str, text: str, **where: Any) -> dict[str, Any]:
    return {"TYPE": kind, "ID": ident, "NUMBER": number, "MESSAGE": text, **where}


def test_return_errors_are_permanent_and_name_parameter_row_and_field() -> None:
    error = mapping.return_error("BAPI_ACC_DOCUMENT_POST", [
        row("E", "RW", "609", "Error in document"),
        row("E", "F5", "201", "Posting period 011 2026 is not open", PARAMETER="DOCUMENTHEADER",
            ROW=0, FIELD="PSTNG_DATE"),
    ])  # fmt: skip
    assert error is not None and error.error_class is ErrorClass.PERMANENT
    assert not error.outcome_unknown
    assert "F5 201 Posting period 011 2026 is not open" in error.reason
    assert "PARAMETER DOCUMENTHEADER, ROW 0, FIELD PSTNG_DATE" in error.reason


@pytest.mark.parametrize(
    ("rows", "expected", "unknown"),
    [
        ([row("S", "RW", "605", "Document posted successfully")], None, False),
        ([row("W", "F5", "117", "Check whether document has already been entered")], None, False),
        ([row("A", "RW", "025", "Termination in document update")], ErrorClass.TRANSIENT, False),
        ([row("E", "F5", "154", "Company code 1000 is locked")], ErrorClass.TRANSIENT, False),
        ([row("W", "RW", "602", "Nothing to commit")], ErrorClass.TRANSIENT, True),
        ([row("E", "KI", "248", "Cost center D09 does not exist", FIELD="COSTCENTER")],
         ErrorClass.PERMANENT, False),
    ],
)  # fmt: skip
def test_return_types_map_into_the_retry_classes(
    rows: list[dict[str, Any]], expected: ErrorClass | None, unknown: bool
) -> None:
    error = mapping.return_error("F", rows)
    assert (error.error_class if error else None) is expected
    assert bool(error and error.outcome_unknown) is unknown


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"username": "U", "password": "p", "company_code": "1000"}, "base_url"),
        ({"base_url": "ftp://x", "username": "U", "password": "p", "company_code": "1"},
         "base_url"),
        ({"base_url": "http://x", "username": "U", "password": "", "company_code": "1"},
         "password"),
        ({"base_url": "http://x", "username": "U", "password": "p", "company_code": "10000"},
         "company_code"),
        ({"base_url": "http://x", "username": "U", "password": "p", "company_code": "1",
          "vendors": {"E1": 5}}, "vendors"),
        ({"base_url": "http://x", "username": "U", "password": "p", "company_code": "1",
          "colour": "red"}, "colour"),
    ],
)  # fmt: skip
def test_a_bad_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SapConfig.parse(config)


def test_the_password_is_never_shown() -> None:
    config = SapConfig.parse(
        {"base_url": "http://x", "username": "U", "password": "s3cret", "company_code": "1"}
    )
    assert "s3cret" not in repr(config)
