"""Accounting periods: list them, close and reopen one (scope `periods:manage`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import problem_responses
from finoa.security.tokens import Principal
from finoa.services.periods import PeriodState, close_period, list_periods, open_period

router = APIRouter(
    prefix="/periods",
    tags=["periods"],
    route_class=StrictJsonRoute,
    responses=problem_responses(401, 403, 422),
)
Manager = Annotated[Principal, Depends(require("periods:manage"))]
PeriodText = Annotated[str, Path(max_length=32, description="the period, YYYY-MM")]


@router.get("", summary="Periods with vouchers or a recorded status; any other is open")
async def get_periods(hub: HubDep, _: Manager) -> list[PeriodState]:
    return await hub.db.run(list_periods, hub.db)


@router.post("/{period}/close", summary="Close a period (YYYY-MM)")
async def post_close(period: PeriodText, hub: HubDep, p: Manager) -> PeriodState:
    return await hub.db.run(close_period, hub.db, period, actor=f"client:{p.client_id}")


@router.post("/{period}/open", summary="Reopen a period (YYYY-MM)")
async def post_open(period: PeriodText, hub: HubDep, p: Manager) -> PeriodState:
    return await hub.db.run(open_period, hub.db, period, actor=f"client:{p.client_id}")
