"""The external archive: a connector instance of kind `archive` (e.g. `generic-archive`).

With one configured, every package the builder records queues an outbox message
`archive.push` to it in the same transaction as its catalog rows (`service._record`); the
dispatcher delivers it like any other message (retries, posted-lookup by 档号, dead letters,
`finoa replay`). The archive's answer (status, 四性检测 result) is recorded by the message's
settlement follow-up, `record_package_pushed`: `archive_access_log` action `pushed` and the
audit trail. A push the archive refuses for good (a file missing or not matching its hash,
named in the reason) becomes a dead letter, and its dead-letter follow-up,
`record_push_refused`, logs action `push_refused` with the reason, and audits it. An archive
that checks later reports a status change by a signed callback (`ReportArchiveStatus`),
recorded the same way as action `external_status`.

`finoa archive push` queues the packages built before the instance existed. In mode
`instead` the external archive is the record: `external_view` is what `finoa archive check`
and `search` report and count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from finoa.archive.borrowing import log_access
from finoa.archive.service import Archive, PackageQuery, find_packages, push_payload
from finoa.connectors.base import ReportArchiveStatus
from finoa.domain.errors import Conflict, NotFound
from finoa.messaging import inbox
from finoa.messaging.outbox import push_key, push_package
from finoa.messaging.retry import DeliveryError
from finoa.store.tables import archive_access_log, archive_packages, outbox
from finoa.store.uow import Database, UnitOfWork

ACTOR = "archive:external"
PUSHED, REFUSED, STATUS_CHANGED = "pushed", "push_refused", "external_status"
FILE_NAMED = re.compile(r"\(file ([^)]+)\)")  # how the connector names the file at fault
STATUS_KIND = "archive.status"  # the inbox kind of a status callback
ARCHIVED = "archived"


def record_package_pushed(uow: UnitOfWork, package_id: str, response: dict[str, Any]) -> None:
    """The settlement follow-up of `archive.push`: the archive's answer, kept."""
    _note(uow, package_id, ACTOR, PUSHED, _answer_detail(response))


def record_push_refused(uow: UnitOfWork, package_id: str, error: DeliveryError) -> None:
    """The dead-letter follow-up of `archive.push`: the refusal and its reason, kept."""
    named = FILE_NAMED.search(error.reason)
    _note(uow, package_id, ACTOR, REFUSED,
          {"reason": error.reason[:2000], "error_class": error.error_class.value,
           "file": named.group(1) if named else None})  # fmt: skip


def _answer_detail(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "archive_no": answer.get("archive_no"),
        "status": answer.get("status"),
        "check_passed": answer.get("check_passed") is True,
        "items": list(answer.get("items") or []),
    }


def _note(
    uow: UnitOfWork, package_id: str, actor: str, action: str, detail: dict[str, Any]
) -> None:
    log_access(uow, package_id, actor, action, detail)
    uow.audit(f"archive.package_{action}", "archive_package", package_id, detail)


def status_write(
    instance: str, command: ReportArchiveStatus
) -> Callable[[UnitOfWork], dict[str, Any]]:
    """The write of a status callback: recorded once per message id (a repeat answers the
    first result), against the package it names (404 naming `data.archive_no` when unknown)."""
    detail = {
        "archive_no": command.archive_no,
        "status": command.status,
        "check_passed": command.check_passed,
        "items": list(command.items),
    }
    body = {**detail, "package_id": command.package_id}

    def write(uow: UnitOfWork) -> dict[str, Any]:
        earlier = inbox.seen(uow, instance, command.message_id, STATUS_KIND, body)
        if earlier is not None:
            return {**earlier, "duplicate": True}
        t = archive_packages
        wanted = (
            t.c.id == command.package_id
            if command.package_id
            else t.c.archive_no == command.archive_no
        )
        row = uow.conn.execute(select(t.c.id, t.c.archive_no).where(wanted)).first()
        if row is None:
            raise NotFound("data.archive_no", f"no package {command.archive_no} in the catalog")
        if row.archive_no != command.archive_no:
            raise Conflict(
                "data.archive_no",
                f"package {row.id} is {row.archive_no}, not {command.archive_no}",
            )
        _note(uow, row.id, f"archive:{instance}", STATUS_CHANGED, detail)
        result = {"package_id": row.id, "archive_no": row.archive_no, "status": command.status}
        inbox.record(uow, instance, command.message_id, STATUS_KIND, body, result)
        return {**result, "duplicate": False}

    return write


@dataclass
class QueueSummary:
    queued: list[str] = field(default_factory=list)  # 档号 queued now
    already: int = 0  # pushed or queued before


def queue_pushes(db: Database, archive: Archive, query: PackageQuery) -> QueueSummary:
    """Queue `archive.push` for the packages `query` selects that were never queued (those
    built before the external archive was configured); delivered by the dispatcher."""
    assert archive.push_to is not None, "no external archive is configured"
    summary = QueueSummary()
    with db.engine.connect() as conn:
        records = find_packages(conn, query)
        keys = [push_key(r.package_id) for r in records]
        rows = select(outbox.c.aggregate_id).where(outbox.c.idempotency_key.in_(keys))
        queued = {r[0] for r in conn.execute(rows)} if keys else set()
        answered = set(external_view(conn, [r.package_id for r in records]))
    new = [r for r in records if r.package_id not in queued | answered]
    summary.already = len(records) - len(new)
    if new:

        def queue(uow: UnitOfWork) -> None:
            for record in new:
                push_package(uow, str(archive.push_to), push_payload(record))

        db.perform(queue, actor="archive")
        summary.queued = [r.archive_no for r in new]
    return summary


def external_view(conn: Connection, package_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What the external archive says of each package: its latest answer or status callback
    (`status`, `check_passed`, `items`, `at`), else the push still under way (`queued`) or
    refused (`refused`, with the dead letter's `reason`). Packages never queued are left out."""
    found: dict[str, dict[str, Any]] = {}
    if not package_ids:
        return found
    log = archive_access_log
    rows = conn.execute(
        select(log.c.package_id, log.c.at, log.c.detail)
        .where(log.c.package_id.in_(package_ids), log.c.action.in_((PUSHED, STATUS_CHANGED)))
        .order_by(log.c.at, log.c.id)
    )
    for row in rows:
        found[row.package_id] = {**_answer_detail(row.detail), "at": row.at.isoformat()}
    missing = [push_key(p) for p in package_ids if p not in found]
    if missing:
        for row in conn.execute(
            select(outbox.c.aggregate_id, outbox.c.status, outbox.c.last_error).where(
                outbox.c.idempotency_key.in_(missing)
            )
        ):
            if row.status == "dead":
                found[row.aggregate_id] = {"status": "refused", "check_passed": False,
                                           "items": [], "reason": row.last_error}  # fmt: skip
            elif row.status != "done":
                found[row.aggregate_id] = {"status": "queued", "check_passed": False, "items": []}
    return found


def counts_as_archived(view: dict[str, Any] | None) -> bool:
    """Whether the external archive holds the package as archived with its check passed."""
    return view is not None and view.get("status") == ARCHIVED and view.get("check_passed") is True
