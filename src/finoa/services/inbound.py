"""Applying the canonical commands an OA (or an external archive) sends
(`finoa.connectors.base`), whoever delivers them: a webhook (`api/routes/webhooks.py`) or a
sweep of the OA (`finoa sync oa`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finoa.archive.tasks import is_archive_task
from finoa.connectors.base import (
    ConcludeApproval,
    InboundCommand,
    ReportArchiveStatus,
    SubmitClaim,
)
from finoa.services.approvals import task_decision
from finoa.services.claims import claim_submission
from finoa.services.context import Hub
from finoa.services.oa_approvals import approval_conclusion
from finoa.store.uow import UnitOfWork


def command_write(
    hub: Hub, instance: str, command: InboundCommand
) -> tuple[Callable[[UnitOfWork], dict[str, Any]], str]:
    """The write a command asks for, answering with the result the vendor is told; and who
    acts. The inbox source is the instance: message ids are the instance's own."""
    if isinstance(command, SubmitClaim):
        submit = claim_submission(
            hub,
            command.submission,
            instance,
            command.message_id,
            oa_instance=instance,
            oa_approval_id=command.oa_approval_id,
        )

        def submitted(uow: UnitOfWork) -> dict[str, Any]:
            result = submit(uow)
            return {"claim_id": result.claim_id, "duplicate": result.duplicate}

        return submitted, f"oa:{instance}"
    if isinstance(command, ReportArchiveStatus):
        from finoa.archive.external import status_write

        return status_write(instance, command), f"archive:{instance}"
    if isinstance(command, ConcludeApproval):
        conclude = approval_conclusion(hub, instance, command)

        def concluded(uow: UnitOfWork) -> dict[str, Any]:
            result = conclude(uow)
            return {
                "claim_id": result.claim_id,
                "claim_status": result.claim_status,
                "duplicate": result.duplicate,
            }

        return concluded, f"employee:{command.actor_id or 'unknown'} via oa:{instance}"
    if is_archive_task(command.task_id):
        return _archive_decision(command, instance)
    decide = task_decision(
        hub,
        command.task_id,
        command.approver_id,
        command.approve,
        command.comment,
        instance,
        command.message_id,
        action=command.action,
        target=command.target,
        position=command.position,
    )

    def decision(uow: UnitOfWork) -> dict[str, Any]:
        outcome = decide(uow)
        return {
            "task_id": outcome.task_id,
            "claim_id": outcome.claim_id,
            "claim_status": outcome.claim_status,
            "duplicate": outcome.duplicate,
        }

    return decision, f"employee:{command.approver_id} via oa:{instance}"


def _archive_decision(command: Any, instance: str) -> tuple[Callable[[UnitOfWork], Any], str]:
    """An archive task's decision (borrowing, destruction) from the same OA webhook."""
    from finoa.archive.borrowing import archive_decision

    def decision(uow: UnitOfWork) -> dict[str, Any]:
        outcome = archive_decision(
            uow, command.task_id, command.approver_id, command.approve, command.comment,
            instance, command.message_id,
        )  # fmt: skip
        return {
            "task_id": outcome.task_id,
            "subject_id": outcome.subject_id,
            "status": outcome.status,
            "duplicate": outcome.duplicate,
        }

    return decision, f"employee:{command.approver_id} via oa:{instance}"
