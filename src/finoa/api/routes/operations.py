"""Health, readiness, loop statistics, dead letters and replay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BaseModel

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import ApiProblem, problem_responses
from finoa.schemas import line_text
from finoa.security.tokens import Principal
from finoa.services.operations import replay_dead_letters
from finoa.services.queries import OutboxFilter, dead_letters, held_rows, loop_stats
from finoa.store.db import revision_of

router = APIRouter(
    tags=["operations"], route_class=StrictJsonRoute, responses=problem_responses(401, 403)
)
health_router = APIRouter(tags=["operations"])

# Outbox ids are 64-bit integers (BigInteger on PostgreSQL, INTEGER on SQLite).
MAX_ROW_ID = 2**63 - 1


@health_router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get(
    "/ready",
    summary="Readiness: database reachable and migrated",
    responses=problem_responses(503),
)
def ready(hub: HubDep) -> dict[str, Any]:
    try:
        with hub.db.engine.connect() as conn:
            revision = revision_of(conn)
    except Exception as exc:
        raise ApiProblem(
            503, "Not ready", f"database: {type(exc).__name__}", kind="not-ready", field="database"
        ) from None
    if revision is None:
        raise ApiProblem(
            503,
            "Not ready",
            "database: not migrated (finoa db upgrade)",
            kind="not-ready",
            field="database",
        )
    return {"status": "ready", "schema_revision": revision}


@router.get("/stats", summary="Counts along the loop and submit→written-back latency")
def stats(
    request: Request, hub: HubDep, _: Annotated[Principal, Depends(require("ops:read"))]
) -> dict[str, Any]:
    figures = loop_stats(hub.db)
    figures["group_commit"] = hub.commands.figures()
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:  # this process's deliveries and circuit breakers
        figures["delivery"] = dispatcher.figures()
    return figures


class OutboxPage(BaseModel):
    """One page of outbox rows, and how many match in all."""

    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


QueryText = Annotated[str | None, Query(max_length=64), AfterValidator(line_text)]


def outbox_filter(
    destination: QueryText = None,
    action: QueryText = None,
    aggregate_id: QueryText = None,
    error_class: QueryText = None,
) -> OutboxFilter:
    return OutboxFilter(destination, action, aggregate_id, error_class)


@dataclass(frozen=True)
class OutboxQuery:
    """Which page of which outbox rows (the filters and the page, from the query string)."""

    flt: OutboxFilter
    page: int
    page_size: int


def outbox_query(
    flt: Annotated[OutboxFilter, Depends(outbox_filter)],
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
) -> OutboxQuery:
    return OutboxQuery(flt, page, page_size)


Listing = Annotated[OutboxQuery, Depends(outbox_query)]
Reader = Annotated[Principal, Depends(require("ops:read"))]


def _page(rows: tuple[list[dict[str, Any]], int], query: OutboxQuery) -> OutboxPage:
    items, total = rows
    return OutboxPage(items=items, total=total, page=query.page, page_size=query.page_size)


@router.get(
    "/dead-letters",
    summary="Messages that could not be delivered, with the reason (paged, filterable)",
    responses=problem_responses(422),
)
def list_dead_letters(hub: HubDep, _: Reader, q: Listing) -> OutboxPage:
    return _page(dead_letters(hub.db, q.flt, q.page, q.page_size), q)


@router.get(
    "/outbox/held",
    summary="Messages waiting behind an earlier undelivered message for the same document",
    responses=problem_responses(422),
)
def list_held(hub: HubDep, _: Reader, q: Listing) -> OutboxPage:
    return _page(held_rows(hub.db, q.flt, q.page, q.page_size), q)


@router.post(
    "/dead-letters/{letter_id}/replay",
    summary="Send one dead letter again",
    responses=problem_responses(404, 422),
)
async def replay_one(
    letter_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="The dead letter's id")],
    hub: HubDep,
    p: Annotated[Principal, Depends(require("ops:replay"))],
) -> dict[str, Any]:
    ids = await hub.db.run(replay_dead_letters, hub.db, [letter_id], actor=f"client:{p.client_id}")
    return {"replayed": ids}


@router.post("/dead-letters/replay", summary="Send every dead letter again")
async def replay_all(
    hub: HubDep, p: Annotated[Principal, Depends(require("ops:replay"))]
) -> dict[str, Any]:
    ids = await hub.db.run(replay_dead_letters, hub.db, None, actor=f"client:{p.client_id}")
    return {"replayed": ids}
