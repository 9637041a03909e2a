"""Accounting periods: list them, close and reopen one (scope `periods:manage`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from finoa.api.deps import HubDep, require
from finoa.security.tokens import Principal
from finoa.services.periods import PeriodState, close_period, list_periods, open_period

router = APIRouter(prefix="/periods", tags=["periods"])
Manager = Annotated[Principal, Depends(require("periods:manage"))]


@router.get("", summary="Periods with vouchers or a recorded status; any other is open")
async def get_periods(hub: HubDep, _: Manager) -> list[PeriodState]:
    return await hub.db.run(list_periods, hub.db)


@router.post("/{period}/close", summary="Close a period (YYYY-MM)")
async def post_close(period: str, hub: HubDep, p: Manager) -> PeriodState:
    return await hub.db.run(close_period, hub.db, period, actor=f"client:{p.client_id}")


@router.post("/{period}/open", summary="Reopen a period (YYYY-MM)")
async def post_open(period: str, hub: HubDep, p: Manager) -> PeriodState:
    return await hub.db.run(open_period, hub.db, period, actor=f"client:{p.client_id}")
