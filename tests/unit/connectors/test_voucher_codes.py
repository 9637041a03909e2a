"""The `<connector>/voucher` mappings: finoa's chart and dimension codes onto an ERP's, the
shipped tables, overrides from finoa.yaml, and the refusal of an account they do not list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from finoa.connectors.kingdee.client import KingdeeConnector
from finoa.connectors.tryton.client import TrytonConnector
from finoa.connectors.voucher_codes import load_voucher_codes
from finoa.mapping.catalog import MappingConfigError
from finoa.services.masterdata import chart_of_accounts

TRYTON = {"base_url": "http://tryton.test", "database": "d", "login": "u", "password": "p"}


def voucher(account: str, department: str = "D02") -> dict[str, Any]:
    aux = {"department": department, "employee": "E0011", "project": None}
    return {
        "voucher_id": "V1",
        "entries": [
            {"account_code": account, "debit_fen": 100, "credit_fen": 0, "aux": aux},
            {"account_code": "2241", "debit_fen": 0, "credit_fen": 100, "aux": aux},
        ],
    }


@pytest.mark.parametrize(
    ("connector", "account", "department"),
    [
        ("tryton", "6602.01", "D02"),
        ("kingdee", "6602.01", "D02"),  # unlisted ids keep their code
        ("yonyou-u8", "660201", "03"),  # the account set's 4-2-2 codes and department codes
        ("yonyou-nc", "660201", "03"),
        ("sap", "660201", "CC02"),  # G/L accounts, and each department's cost center
    ],
)
def test_the_shipped_tables_list_finoas_whole_chart(
    connector: str, account: str, department: str
) -> None:
    codes = load_voucher_codes(connector, {})
    chart = {str(row["code"]) for row in chart_of_accounts()}
    assert set(codes.accounts) == chart
    assert codes.origin == "default" and codes.mapping == f"{connector}/voucher"
    mapped = codes.apply(voucher("6602.01"))
    assert [e["account_code"] for e in mapped["entries"]] == [account, "2241"]
    assert mapped["entries"][0]["aux"]["department"] == department
    assert mapped["entries"][0]["aux"]["employee"] == "E0011"


def test_an_override_file_maps_accounts_and_departments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "accounts.csv").write_text("# finoa,ERP\n6602.01,660201\n2241,224101\n")
    override = {
        "mapping": "tryton/voucher",
        "version": 7,
        "code_tables": {
            "accounts": {"file": "accounts.csv"},
            "departments": {"values": {"D02": "SALES"}},
        },
        "fields": {},
    }
    (tmp_path / "voucher.yaml").write_text(yaml.safe_dump(override))
    config = {"mappings": {"tryton/voucher": {"file": "voucher.yaml"}}}
    codes = load_voucher_codes("tryton", config)
    assert codes.origin == str(tmp_path / "voucher.yaml")
    mapped = codes.apply(voucher("6602.01"))
    assert [e["account_code"] for e in mapped["entries"]] == ["660201", "224101"]
    assert [e["aux"]["department"] for e in mapped["entries"]] == ["SALES", "SALES"]
    (problem,) = codes.problems(voucher("6602.02"))
    assert problem.field == "entries[0].account_code" and problem.code == "6602.02"
    assert "account 6602.02 has no mapping in tryton/voucher" in problem.message
    assert codes.with_accounts({"6602.02": "660202"}).problems(voucher("6602.02")) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"mapping": "tryton/voucher", "version": 1, "fields": {}},
            "code_tables.accounts: a voucher needs one",
        ),
        (
            {"mapping": "tryton/voucher", "version": 1, "target": "claim", "fields": {}},
            "target must be voucher",
        ),
        ({"mapping": "kingdee/voucher", "version": 1, "fields": {}}, "expected 'tryton/voucher'"),
    ],
)
def test_a_bad_voucher_mapping_is_a_config_error_naming_it(
    override: dict[str, Any], message: str
) -> None:
    config = {**TRYTON, "mappings": {"tryton/voucher": override}}
    with pytest.raises(MappingConfigError, match=message):
        load_voucher_codes("tryton", config)
    with pytest.raises(ValueError, match=f"^mappings: .*{message}"):
        TrytonConnector.check_config(config)


def test_the_kingdee_instance_tables_apply_on_top_of_the_mapping() -> None:
    config = {
        "server_url": "http://k3.test/K3Cloud/",
        "acct_id": "A",
        "user_name": "u",
        "app_id": "i",
        "app_secret": "s",
        "base_data": {
            "accounts": {"6602.01": "6602.91"},
            "dimension_codes": {"department": {"D02": "BM02"}},
        },
    }
    KingdeeConnector.check_config(config)
    connector = KingdeeConnector(config, httpx.AsyncClient())
    assert connector.codes is not None
    mapped = connector.codes.apply(voucher("6602.01"))
    assert mapped["entries"][0]["account_code"] == "6602.91"
    assert mapped["entries"][0]["aux"]["department"] == "BM02"
