"""A request an employee started in e-cology (`getWorkflowRequest`'s data) becomes a claim
submission through the mapping `weaver/expense_claim`; a form it cannot read is refused
naming the claim's field."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finoa.connectors.base import InboundInvalid
from finoa.connectors.weaver.client import WeaverConfig
from finoa.connectors.weaver.mapping import (
    WeaverRequestStarted,
    claim_from_request,
    main_field,
)
from finoa.mapping import MappingCatalog

FIXTURE = Path(__file__).parents[3] / "fixtures" / "weaver" / "workflow_request_employee.json"


def employee_request() -> dict[str, Any]:
    request: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return request


def detail(request: dict[str, Any], row: int) -> list[dict[str, str]]:
    table = request["workflowDetailTableInfos"][0]["workflowRequestTableRecords"]
    cells: list[dict[str, str]] = table[row]["workflowRequestTableFields"]
    return cells


def test_the_request_becomes_a_claim_in_yuan_with_its_dates() -> None:
    claim = claim_from_request(MappingCatalog(), employee_request())
    assert claim.external_id == "447123"
    assert (claim.applicant_id, claim.department_id) == ("E0031", "D04")
    assert claim.title == "出差北京 客户拜访"  # the full-width space folded
    assert claim.currency == "CNY" and claim.cost_center_id is None
    assert [(line.category.value, line.amount, line.tax) for line in claim.lines] == [
        ("travel", Decimal("1200.00"), Decimal("0.00")),
        ("transport", Decimal("34.50"), Decimal("0.00")),
    ]
    assert [line.expense_date.isoformat() for line in claim.lines] == ["2026-11-20", "2026-11-21"]
    assert main_field(employee_request(), "je") == "1234.50"
    assert main_field(employee_request(), "finoadh") is None


@pytest.mark.parametrize(
    ("row", "name", "value", "loc"),
    [
        (0, "je", "十二元", ("request", "lines", 0, "amount")),
        (1, "fyrq", "21/11/2026", ("request", "lines", 1, "expense_date")),
        (0, "fylb", "holiday", ("request", "lines", 0, "category")),
    ],
)
def test_a_bad_detail_cell_is_refused_naming_the_claims_field(
    row: int, name: str, value: str, loc: tuple[Any, ...]
) -> None:
    request = employee_request()
    for cell in detail(request, row):
        if cell["fieldName"] == name:
            cell["fieldValue"] = value
    with pytest.raises(InboundInvalid) as refused:
        claim_from_request(MappingCatalog(), request)
    assert [error["loc"] for error in refused.value.errors] == [loc]


def test_a_request_without_detail_records_or_applicant_is_refused() -> None:
    request = employee_request()
    request["workflowDetailTableInfos"] = []
    main = request["workflowMainTableInfo"]["requestRecords"][0]["workflowRequestTableFields"]
    request["workflowMainTableInfo"]["requestRecords"][0]["workflowRequestTableFields"] = [
        cell for cell in main if cell["fieldName"] != "sqr"
    ]
    with pytest.raises(InboundInvalid) as refused:
        claim_from_request(MappingCatalog(), request)
    assert {error["loc"] for error in refused.value.errors} == {
        ("request", "applicant_id"),
        ("request", "lines"),
    }


def test_the_start_event_is_read_strictly() -> None:
    started = WeaverRequestStarted.model_validate(
        {"eventid": "weaver-request-447123-create", "requestid": "447123", "operate": "create"}
    )
    assert started.requestid == "447123"
    with pytest.raises(ValueError, match="requestid"):
        WeaverRequestStarted.model_validate(
            {"eventid": "e", "requestid": "x1", "operate": "create"}
        )


def test_an_override_of_the_mapping_that_cannot_load_is_a_config_error(tmp_path: Path) -> None:
    bad = {"weaver/expense_claim": {"file": str(tmp_path / "missing.yaml")}}
    with pytest.raises(ValueError, match=r"^mappings: .*weaver/expense_claim"):
        WeaverConfig.parse({"mappings": bad})
