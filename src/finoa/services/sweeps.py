"""Sweeps: nothing waits unseen (F5).

An OA may give up sending a decision while the hub is down, or lose it on the way; the claim
would then sit `in_approval` forever. So the hub looks at approval tasks still pending after
`stuck_task_minutes` and asks the OA about them (the connector's task reports). A decision the
OA holds is applied under the OA's own event id, so a webhook for it arriving later is a
duplicate; a task the OA has never heard of is flagged in the audit trail; a task still
pending at the OA is left alone (somebody has yet to decide).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from finoa.connectors.base import ApprovalSource, ConnectorKind, TaskReport
from finoa.domain.errors import DomainError
from finoa.services.approvals import task_decision
from finoa.services.context import Hub
from finoa.store.tables import approval_tasks, audit_events, claims
from finoa.store.uow import UnitOfWork

log = logging.getLogger(__name__)

REPORT_CHUNK = 100  # task ids per question to the OA
SWEEP_LIMIT = 2000  # tasks looked at per sweep, oldest first


@dataclass
class SweepReport:
    """What one sweep found and did."""

    checked: int = 0
    applied: int = 0  # decisions the OA had that the hub had missed
    pending_at_oa: int = 0
    unknown_at_oa: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # decisions the hub could not apply
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "applied": self.applied,
            "pending_at_oa": self.pending_at_oa,
            "unknown_at_oa": self.unknown_at_oa,
            "refused": self.refused,
            "errors": self.errors,
        }


def stuck_tasks(hub: Hub, older_than: timedelta, oa_instance: str) -> list[str]:
    """Ids of the pending approval tasks of claims from `oa_instance` opened more than
    `older_than` ago, oldest first."""
    cutoff = hub.db.clock() - older_than
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(approval_tasks.c.id)
            .join(claims, claims.c.id == approval_tasks.c.claim_id)
            .where(
                approval_tasks.c.status == "pending",
                approval_tasks.c.created_at < cutoff,
                claims.c.oa_instance == oa_instance,
            )
            .order_by(approval_tasks.c.created_at)
            .limit(SWEEP_LIMIT)
        )
        return list(rows.scalars())


async def sweep_stuck_tasks(
    hub: Hub, sources: Mapping[str, ApprovalSource], *, older_than: timedelta
) -> SweepReport:
    """Ask each OA instance about its claims' tasks pending longer than `older_than`, and
    apply what it decided (recorded in the inbox under the instance, as its webhooks are)."""
    report = SweepReport()
    for instance, oa in sources.items():
        task_ids = await hub.db.run(stuck_tasks, hub, older_than, instance)
        for start in range(0, len(task_ids), REPORT_CHUNK):
            chunk = task_ids[start : start + REPORT_CHUNK]
            try:
                reports = await oa.task_reports(chunk)
            except Exception as exc:  # the OA is down: the next sweep asks again
                report.errors.append(f"{instance}: {type(exc).__name__}: {exc}"[:300])
                log.warning("sweep: %s could not report on %d tasks: %s", instance, len(chunk), exc)
                continue
            report.checked += len(chunk)
            await asyncio.gather(*(_settle(hub, r, instance, report) for r in reports))
    if report.applied or report.unknown_at_oa or report.refused:
        log.warning("sweep of stuck approval tasks: %s", report.as_dict())
    return report


async def _settle(hub: Hub, task: TaskReport, source: str, report: SweepReport) -> None:
    if task.state == "pending":
        report.pending_at_oa += 1
        return
    if task.state not in ("approved", "rejected") or not task.approver_id:
        report.unknown_at_oa.append(task.task_id)
        await hub.commands.run(_flag_unknown(task), actor="sweeper")
        return
    command = task_decision(
        hub,
        task.task_id,
        task.approver_id,
        task.state == "approved",
        task.comment,
        source,
        task.message_id or f"sweep:{task.task_id}",
    )
    try:
        outcome = await hub.commands.run(command, actor=f"employee:{task.approver_id} via sweep")
    except DomainError as exc:
        report.refused.append(f"{task.task_id}: {exc}")
        return
    if not outcome.duplicate:
        report.applied += 1


def _flag_unknown(task: TaskReport) -> Any:
    def flag(uow: UnitOfWork) -> None:
        flagged = uow.conn.execute(
            select(audit_events.c.seq).where(
                audit_events.c.object_type == "task",
                audit_events.c.object_id == task.task_id,
                audit_events.c.action == "task.unknown_at_oa",
            )
        ).first()
        if flagged is not None:  # flagged by an earlier sweep already
            return
        uow.audit(
            "task.unknown_at_oa",
            "task",
            task.task_id,
            {"reason": "the OA has no todo for this pending task", "state": task.state},
        )

    return flag


async def run_sweeper(
    hub: Hub,
    sources: Mapping[str, ApprovalSource],
    *,
    older_than: timedelta,
    every: float,
    stop: asyncio.Event,
) -> None:
    """Sweep at start and then every `every` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await sweep_stuck_tasks(hub, sources, older_than=older_than)
        except Exception:
            log.exception("sweep of stuck approval tasks failed")
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            continue


def approval_sources(hub: Hub, connectors: Mapping[str, Any]) -> dict[str, ApprovalSource]:
    """The OA instances whose connector can report on approval tasks, by instance name."""
    return {
        name: connector
        for name in hub.instances.of_kind(ConnectorKind.OA)
        if isinstance(connector := connectors.get(name), ApprovalSource)
    }
