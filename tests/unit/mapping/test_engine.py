"""The mapping engine: shipped DingTalk mappings on golden payloads, errors with paths,
overrides of one mapping in finoa.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finoa.mapping import MappingCatalog, MappingConfigError, apply_mapping, code_tables
from finoa.mapping.catalog import file_ids
from finoa.schemas import ClaimSubmission
from finoa.services.masterdata import sample_masterdata

FIXTURES = Path(__file__).parents[2] / "fixtures" / "dingtalk"


def golden() -> dict[str, Any]:
    return json.loads((FIXTURES / "instance_expense_claim.json").read_text(encoding="utf-8"))


def mapped(document: Any, catalog: MappingCatalog | None = None, name: str = "expense_claim"):
    loaded = (catalog or MappingCatalog()).get("dingtalk", name)
    tables = code_tables(loaded, file_ids(sample_masterdata()))
    return apply_mapping(loaded.spec, document, code_tables=tables, target=ClaimSubmission)


def test_the_golden_instance_maps_to_a_valid_claim() -> None:
    result = mapped(golden())
    assert result.errors == []
    claim = ClaimSubmission.model_validate(result.value)
    assert claim.applicant_id == "E0010" and claim.department_id == "D02"
    assert claim.title == "上海客户拜访 Q4"
    assert [str(line.amount) for line in claim.lines] == ["1234.50", "680.00"]
    assert [line.category.value for line in claim.lines] == ["travel", "lodging"]
    assert str(claim.lines[0].tax) == "69.88"
    assert claim.lines[0].description == "北京-上海 高铁"


def _form(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in document["formComponentValues"] if c["name"] == name)


def test_every_field_error_is_reported_with_its_path() -> None:
    document = golden()
    document["originatorUserId"] = "nobody"
    document["originatorDeptId"] = "99"
    table = _form(document, "费用明细")
    rows = json.loads(table["value"])
    rows[0]["rowValue"][0]["value"] = "宇宙飞船"
    rows[1]["rowValue"][1]["value"] = "12.345"
    rows[1]["rowValue"][2]["value"] = "someday"
    table["value"] = json.dumps(rows, ensure_ascii=False)
    _form(document, "报销事由")["value"] = ""
    result = mapped(document)
    paths = {error.path: error for error in result.errors}
    assert set(paths) == {
        "applicant_id",
        "department_id",
        "title",
        "lines[0].category",
        "lines[1].amount",
        "lines[1].expense_date",
    }
    assert "'nobody' is not in the code table employees" in paths["applicant_id"].message
    assert paths["applicant_id"].source == "originatorUserId"
    assert "more than 2 decimal places" in paths["lines[1].amount"].message
    assert "required" in paths["title"].message


def test_a_table_that_is_not_json_is_one_error_on_the_list() -> None:
    document = golden()
    _form(document, "费用明细")["value"] = "[{broken"
    result = mapped(document)
    assert [e.path for e in result.errors] == ["lines"]
    assert "json: is not JSON" in result.errors[0].message


def test_the_target_model_reports_what_the_mapping_cannot_see() -> None:
    document = golden()
    _form(document, "币种")["value"] = "USD"  # a currency finoa does not book (yet)
    result = mapped(document)
    assert [e.path for e in result.errors] == ["currency"]


def test_create_mapping_builds_the_dingtalk_form() -> None:
    claim = {
        "id": "CL1",
        "applicant_id": "E0010",
        "department_id": "D02",
        "title": "客户拜访",
        "currency": "CNY",
        "total_fen": 123450,
        "lines": [
            {
                "category": "travel",
                "amount_fen": 123450,
                "tax_fen": 0,
                "expense_date": "2026-11-20",
                "description": "高铁",
            }
        ],
    }
    loaded = MappingCatalog().get("dingtalk", "expense_claim_create")
    result = apply_mapping(
        loaded.spec, claim, code_tables=code_tables(loaded, file_ids(sample_masterdata()))
    )
    assert result.errors == []
    assert result.value["originatorUserId"] == "E0010" and result.value["deptId"] == "3"
    assert result.value["form"]["总金额（元）"] == "1234.50"
    assert result.value["form"]["费用明细"][0]["费用类别"] == "差旅费"


def test_one_mapping_is_overridden_and_the_others_stay(tmp_path: Path) -> None:
    override = (
        Path(__file__).parents[3] / "src/finoa/mapping/defaults/dingtalk/expense_claim.yaml"
    ).read_text(encoding="utf-8")
    override = override.replace("version: 1", "version: 7").replace(
        "departments: {file: dingtalk/tables/departments.yaml}", "departments: {file: depts.csv}"
    )
    (tmp_path / "claim.yaml").write_text(override, encoding="utf-8")
    (tmp_path / "depts.csv").write_text("# dingtalk,finoa\n3,D03\n", encoding="utf-8")
    catalog = MappingCatalog({"dingtalk/expense_claim": {"file": "claim.yaml"}}, tmp_path)
    result = mapped(golden(), catalog)
    assert result.errors == [] and result.version == 7
    assert result.value["department_id"] == "D03"
    assert catalog.get("dingtalk", "expense_claim_create").origin == "default"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {
                "format": 1,
                "mapping": "dingtalk/expense_claim",
                "version": 1,
                "fields": {"x": {"source": "a[?"}},
            },
            "fields.x.source",
        ),
        (
            {
                "format": 1,
                "mapping": "dingtalk/expense_claim",
                "version": 1,
                "fields": {"x": {"transforms": ["rot13"]}},
            },
            "unknown transform",
        ),
        (
            {
                "format": 1,
                "mapping": "dingtalk/expense_claim",
                "version": 1,
                "fields": {"x": {"code_table": "t"}},
            },
            "not declared",
        ),
        (
            {"format": 1, "mapping": "feishu/claim", "version": 1, "fields": {}},
            "expected 'dingtalk/expense_claim'",
        ),
        ({"file": "missing.yaml"}, "cannot read"),
    ],
)
def test_broken_overrides_are_named(tmp_path: Path, override: dict[str, Any], message: str) -> None:
    catalog = MappingCatalog({"dingtalk/expense_claim": override}, tmp_path)
    with pytest.raises(MappingConfigError, match="mappings.dingtalk/expense_claim") as caught:
        catalog.get("dingtalk", "expense_claim")
    assert message in str(caught.value)


def test_an_unknown_mapping_lists_the_known_ones() -> None:
    with pytest.raises(MappingConfigError, match="dingtalk/expense_claim"):
        MappingCatalog().get("dingtalk", "invoice")
