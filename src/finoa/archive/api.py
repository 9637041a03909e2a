"""The archive catalog over HTTP (scope `archive:read`): search packages, read their stored
四性检测 results, a period's report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator
from sqlalchemy import select

from finoa.api.deps import HubDep, require
from finoa.api.problems import problem_responses
from finoa.archive.checks import check_set
from finoa.archive.service import (
    PackageQuery,
    find_packages,
    latest_reports,
    package_query,
    record_view,
)
from finoa.domain.errors import NotFound
from finoa.schemas import line_text
from finoa.security.tokens import Principal
from finoa.services.context import Hub
from finoa.store.tables import archive_checks

router = APIRouter(prefix="/archive", tags=["archive"], responses=problem_responses(401, 403, 422))
Reader = Annotated[Principal, Depends(require("archive:read"))]
Filter = Annotated[str | None, Query(max_length=128), AfterValidator(line_text)]
Amount = Annotated[str | None, Query(max_length=24, description="yuan, a plain decimal")]
PackageId = Annotated[str, Path(max_length=48, pattern=r"^[A-Za-z0-9_.-]+$")]
PeriodText = Annotated[str, Path(max_length=7, description="the period, YYYY-MM")]


def _search(hub: Hub, query: PackageQuery) -> dict[str, Any]:
    """The catalog rows with their latest 四性检测; with an external archive instance, each
    row's status there too (`external`), and which archive is the record (`record`)."""
    from finoa.archive.external import external_view
    from finoa.connectors.instances import INSTEAD

    external_archive = hub.instances.archive
    with hub.db.engine.connect() as conn:
        found = find_packages(conn, query)
        ids = [r.package_id for r in found]
        checks = latest_reports(conn, ids)
        external = external_view(conn, ids) if external_archive is not None else {}
    packages = []
    for r in found:
        row = {**record_view(r), "latest_check": checks.get(r.package_id)}
        if external_archive is not None:
            row["external"] = external.get(r.package_id)  # None: never queued for it
        packages.append(row)
    answer: dict[str, Any] = {"packages": packages, "limit": query.limit, "offset": query.offset}
    if external_archive is not None:
        answer["record"] = "external" if external_archive.mode == INSTEAD else "built-in"
    return answer


@router.get("/packages", summary="Search the archive catalog")
async def get_packages(
    hub: HubDep,
    _: Reader,
    archive_no: Filter = None,
    period: Annotated[str | None, Query(max_length=7, description="YYYY-MM")] = None,
    voucher_no: Filter = None,
    min_amount: Amount = None,
    max_amount: Amount = None,
    employee: Filter = None,
    invoice_number: Filter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    query = package_query(
        archive_no=archive_no,
        period=period,
        voucher_no=voucher_no,
        min_amount=min_amount,
        max_amount=max_amount,
        employee=employee,
        invoice_number=invoice_number,
        limit=limit,
        offset=offset,
    )
    return await hub.db.run(_search, hub, query)


def _checks(hub: Hub, package_id: str) -> dict[str, Any]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(archive_checks)
            .where(archive_checks.c.package_id == package_id)
            .order_by(archive_checks.c.checked_at, archive_checks.c.id)
        ).all()
    if not rows:
        raise NotFound("package_id", f"no package {package_id} has been checked")
    return {
        "package_id": package_id,
        "checks": [
            {
                "stage": r.stage,
                "checked_at": r.checked_at.isoformat(),
                "passed": r.passed,
                "items": r.items,
            }
            for r in rows
        ],
    }


@router.get(
    "/packages/{package_id}/checks",
    summary="A package's stored 四性检测 results",
    responses=problem_responses(404),
)
async def get_package_checks(package_id: PackageId, hub: HubDep, _: Reader) -> dict[str, Any]:
    return await hub.db.run(_checks, hub, package_id)


def _period_report(hub: Hub, query: PackageQuery) -> dict[str, Any]:
    with hub.db.engine.connect() as conn:
        found = find_packages(conn, query)
        checks = latest_reports(conn, [r.package_id for r in found])
    latest = [checks.get(r.package_id) for r in found]
    return {
        "period": query.period,
        "packages": len(found),
        "passed": sum(1 for c in latest if c and c["passed"]),
        "failed": sum(1 for c in latest if c and not c["passed"]),
        "unchecked": sum(1 for c in latest if c is None),
        "period_items": [i.as_dict() for i in check_set(found)] if found else [],
        "failures": [
            {"archive_no": r.archive_no, "items": [i for i in c["items"] if i["outcome"] == "fail"]}
            for r, c in zip(found, latest, strict=True)
            if c and not c["passed"]
        ],
    }


@router.get("/periods/{period}/report", summary="A period's 四性检测 report (stored results)")
async def get_period_report(period: PeriodText, hub: HubDep, _: Reader) -> dict[str, Any]:
    query = package_query(period=period, limit=1000)
    return await hub.db.run(_period_report, hub, query)
