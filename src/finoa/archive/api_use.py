"""Archive use over HTTP: borrowing requests (scope `archive:use`), decisions on archive
tasks (scope `tasks:decide`), a borrower's logged view of a package."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from finoa.api.deps import HubDep, require
from finoa.api.problems import problem_responses
from finoa.archive.borrowing import (
    MAX_DAYS,
    access_package,
    decide_archive_task,
    request_borrowing,
)
from finoa.archive.destruction import carry_out
from finoa.archive.service import Archive, record_view
from finoa.schemas import Line, Paragraph
from finoa.security.tokens import Principal
from finoa.services.context import Hub

router = APIRouter(prefix="/archive", tags=["archive"], responses=problem_responses(401, 403, 422))
User = Annotated[Principal, Depends(require("archive:use"))]
Decider = Annotated[Principal, Depends(require("tasks:decide"))]
Ref = Annotated[str, Path(max_length=128, description="package id or 档号")]


class BorrowingIn(BaseModel):
    """A borrowing request (借阅申请)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    packages: list[Annotated[Line, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=100, description="package ids or 档号"
    )
    by: Line = Field(min_length=1, max_length=32, description="the borrower's employee id")
    days: int = Field(ge=1, le=MAX_DAYS)
    reason: Paragraph = Field(min_length=1, max_length=500)


class ArchiveDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    approver_id: Line = Field(min_length=1, max_length=32)
    decision: Literal["approve", "reject"]
    comment: Paragraph | None = Field(default=None, max_length=1000)


@router.post("/borrowings", status_code=201, summary="Ask to borrow archive packages")
async def post_borrowing(body: BorrowingIn, hub: HubDep, principal: User) -> dict[str, Any]:
    def run(hub: Hub) -> dict[str, Any]:
        made = request_borrowing(hub, body.packages, body.by, body.days, body.reason,
                                 actor=f"client:{principal.client_id}")  # fmt: skip
        return {"borrowing_id": made.borrowing_id, "task_id": made.task_id,
                "approver_id": made.approver_id, "status": "pending"}  # fmt: skip

    return await hub.db.run(run, hub)


@router.post(
    "/tasks/{task_id}/decision",
    summary="Approve or reject an archive task (borrowing, destruction)",
    responses=problem_responses(404, 409),
)
async def post_archive_decision(
    task_id: Annotated[str, Path(max_length=64, pattern=r"^arch-[A-Za-z0-9_.-]+$")],
    body: ArchiveDecisionIn,
    hub: HubDep,
    principal: Decider,
) -> dict[str, Any]:
    def run(hub: Hub) -> dict[str, Any]:
        outcome = decide_archive_task(
            hub, task_id, body.approver_id, body.decision == "approve", body.comment,
            actor=f"employee:{body.approver_id} via client:{principal.client_id}",
        )  # fmt: skip
        if outcome.subject_type == "destruction" and outcome.status == "approved":
            carry_out(hub, Archive.from_settings(hub.settings), outcome.subject_id)
            status = "destroyed"
        else:
            status = outcome.status
        return {"task_id": task_id, "subject_id": outcome.subject_id, "status": status}

    return await hub.db.run(run, hub)


@router.get(
    "/borrowed/{ref}", summary="A borrower's view of a package (logged)",
    responses=problem_responses(404, 409),
)  # fmt: skip
async def get_borrowed(
    ref: Ref,
    hub: HubDep,
    _: User,
    employee_id: Annotated[str, Query(min_length=1, max_length=32)],
) -> dict[str, Any]:
    def run(hub: Hub) -> dict[str, Any]:
        record, borrowing_id = access_package(hub.db, ref, employee_id, "view")
        return {**record_view(record), "borrowing_id": borrowing_id}

    return await hub.db.run(run, hub)
