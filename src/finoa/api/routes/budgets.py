"""Budgets (预算): list, execution report, import, and adjustments and transfers that a second
person approves. Scopes `budgets:read`, `budgets:manage`, `budgets:approve`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BaseModel, Field

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import ApiProblem, problem_responses
from finoa.domain.budgets import NodeKind, parse_period
from finoa.domain.errors import InvalidInput
from finoa.security.tokens import Principal
from finoa.services.budgets import (
    BudgetChangeIn,
    BudgetChangeOut,
    BudgetFilter,
    BudgetOut,
    BudgetReportRow,
    ImportResult,
    MovementOut,
    budget_movements_of,
    budget_report,
    decide_change,
    import_budget_content,
    list_budgets,
    list_changes,
    request_change,
)

router = APIRouter(
    prefix="/budgets",
    tags=["budgets"],
    route_class=StrictJsonRoute,
    responses=problem_responses(401, 403, 422),
)
Reader = Annotated[Principal, Depends(require("budgets:read"))]
Manager = Annotated[Principal, Depends(require("budgets:manage"))]
Approver = Annotated[Principal, Depends(require("budgets:approve"))]
PeriodQuery = Annotated[str | None, Query(max_length=7, description="2026, 2026-Q4 or 2026-12")]
NodeIdQuery = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
RequestId = Annotated[
    str, Path(max_length=40, pattern=r"^[A-Za-z0-9]+$", description="the request's id")
]
CONTENT_TYPES = {
    "text/csv": "budgets.csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "budgets.xlsx",
}


def _filter(period: str | None, node_kind: NodeKind | None, node_id: str | None) -> BudgetFilter:
    if period is not None:
        try:
            period = parse_period(period)
        except ValueError as exc:
            raise InvalidInput("period", str(exc)) from None
    return BudgetFilter(period, node_kind.value if node_kind else None, node_id)


@router.get("", summary="Budgets with their running totals")
async def get_budgets(
    hub: HubDep,
    _: Reader,
    period: PeriodQuery = None,
    node_kind: NodeKind | None = None,
    node_id: NodeIdQuery = None,
) -> list[BudgetOut]:
    return await hub.db.run(list_budgets, hub.db, _filter(period, node_kind, node_id))


@router.get("/report", summary="Execution report: budget, occupied, consumed, balance, rate")
async def get_report(
    hub: HubDep,
    _: Reader,
    period: PeriodQuery = None,
    node_kind: NodeKind | None = None,
    node_id: NodeIdQuery = None,
) -> list[BudgetReportRow]:
    flt = _filter(period, node_kind, node_id)
    return await hub.db.run(budget_report, hub.db, hub.masterdata.get(), flt)


@router.get(
    "/{budget_id}/movements",
    summary="A budget's ledger: every occupy, release, consume, reverse, adjust and transfer",
    responses=problem_responses(404),
)
async def get_movements(
    budget_id: Annotated[int, Path(ge=1, le=2**62, description="the budget's id")],
    hub: HubDep,
    _: Reader,
) -> list[MovementOut]:
    return await hub.db.run(budget_movements_of, hub.db, budget_id)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    summary="Import budgets from a CSV or Excel file (all rows or none)",
    description="The body is the file: `text/csv` (UTF-8) or an .xlsx workbook. Columns: "
    "node_kind, node_id, category (empty: all), period, amount (yuan), mode (empty: the "
    "budget_mode setting). A refused file names every bad row and column in `errors`.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def post_import(request: Request, hub: HubDep, p: Manager) -> ImportResult:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    name = CONTENT_TYPES.get(kind)
    if name is None:
        raise ApiProblem(
            422,
            "Unsupported file type",
            "content-type: send text/csv or an .xlsx workbook "
            "(application/vnd.openxmlformats-officedocument.spreadsheetml.sheet)",
            kind="validation",
            field="content-type",
        )
    result = await hub.db.run(
        import_budget_content,
        hub.db,
        hub.masterdata.get(),
        name,
        await request.body(),
        default_mode=hub.settings.budget_mode,
        actor=f"client:{p.client_id}",
    )
    hub.budgets.invalidate()
    return result


@router.get("/requests", summary="Adjustment and transfer requests")
async def get_requests(
    hub: HubDep,
    _: Reader,
    status_: Annotated[
        Literal["pending", "approved", "rejected"] | None, Query(alias="status")
    ] = None,
) -> list[BudgetChangeOut]:
    return await hub.db.run(list_changes, hub.db, status_)


@router.post(
    "/requests",
    status_code=status.HTTP_201_CREATED,
    summary="Ask for an adjustment or a transfer; another person approves it",
    responses=problem_responses(404),
)
async def post_request(change: BudgetChangeIn, hub: HubDep, p: Manager) -> BudgetChangeOut:
    return await hub.db.run(request_change, hub.db, change, actor=f"client:{p.client_id}")


class BudgetDecisionIn(BaseModel):
    model_config = {"extra": "forbid"}

    comment: str | None = Field(default=None, max_length=500)


async def _decide(
    hub: HubDep, request_id: str, approve: bool, decision: BudgetDecisionIn | None, p: Principal
) -> BudgetChangeOut:
    return await hub.db.run(
        decide_change,
        hub.db,
        request_id,
        approve,
        decision.comment if decision else None,
        actor=f"client:{p.client_id}",
    )


@router.post(
    "/requests/{request_id}/approve",
    summary="Approve and apply a request (not the requester's own)",
    responses=problem_responses(404, 409),
)
async def post_approve(
    request_id: RequestId, hub: HubDep, p: Approver, decision: BudgetDecisionIn | None = None
) -> BudgetChangeOut:
    return await _decide(hub, request_id, True, decision, p)


@router.post(
    "/requests/{request_id}/reject",
    summary="Reject a request (not the requester's own)",
    responses=problem_responses(404, 409),
)
async def post_reject(
    request_id: RequestId, hub: HubDep, p: Approver, decision: BudgetDecisionIn | None = None
) -> BudgetChangeOut:
    return await _decide(hub, request_id, False, decision, p)
