"""Appraisal and destruction (鉴定销毁) of archive packages past their retention.

`start_destruction` refuses, naming each, the packages that may not go: retention not
expired (or permanent), the claim not final, a borrowing still open, a reversal of the
voucher not yet posted. Otherwise it writes the 鉴定意见书 (write-once, kept) and opens the
approval chain: archive keeper -> accounting -> audit (each `archive_<role>` in the
settings' extra section, else the finance director). Once the last step approves,
`carry_out` writes the 销毁清册 (XML and XLSX, kept), removes the packages' content files
from the write-once store (the one removal it allows, each file audited), and marks the
catalog rows destroyed; the catalog row, the 清册 and the audit trail remain.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from lxml import etree
from openpyxl import Workbook
from sqlalchemy import select, update

from finoa.archive.borrowing import log_access, open_borrowings, resolve_packages
from finoa.archive.service import Archive
from finoa.archive.storage import DestructibleStore
from finoa.archive.tasks import ACCOUNTING, ARCHIVE_KEEPER, AUDIT, Step, open_steps, role_holder
from finoa.domain.claim import FINAL_STATUSES
from finoa.domain.errors import Conflict, InvalidInput
from finoa.services.context import Hub
from finoa.store.tables import archive_destructions, archive_packages, claims, vouchers
from finoa.store.uow import UnitOfWork

CHAIN = (ARCHIVE_KEEPER, ACCOUNTING, AUDIT)


class DestructionRefused(Conflict):
    """Some packages may not be destroyed; `problems` names each and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("packages", "; ".join(problems))
        self.problems = problems


def refusals(uow: UnitOfWork, rows: Sequence[Any], today: date) -> list[str]:
    """Why each of `rows` may not be destroyed (empty: all may)."""
    problems: list[str] = []
    borrowed = open_borrowings(uow.conn, [r.id for r in rows], uow.now)
    claim_status: dict[str, str] = dict(
        uow.conn.execute(
            select(claims.c.id, claims.c.status).where(claims.c.id.in_([r.claim_id for r in rows]))
        ).all()
    )
    pending_reversals: dict[str, str] = dict(
        uow.conn.execute(
            select(vouchers.c.reversal_of, vouchers.c.id).where(
                vouchers.c.reversal_of.in_([r.voucher_id for r in rows]),
                vouchers.c.status != "posted",
            )
        ).all()
    )
    for row in rows:
        if row.status == "destroyed":
            problems.append(f"{row.archive_no}: already destroyed")
        elif row.retain_until is None:
            problems.append(f"{row.archive_no}: retention is permanent (永久)")
        elif row.retain_until > today:
            problems.append(
                f"{row.archive_no}: retention has not expired (until {row.retain_until})"
            )
        status = claim_status.get(row.claim_id)
        if status is not None and status not in FINAL_STATUSES:
            problems.append(f"{row.archive_no}: claim {row.claim_id} is not final ({status})")
        if row.id in borrowed:
            problems.append(f"{row.archive_no}: borrowing {borrowed[row.id]} is open")
        if row.voucher_id in pending_reversals:
            problems.append(
                f"{row.archive_no}: reversal {pending_reversals[row.voucher_id]} is pending"
            )
    return problems


@dataclass(frozen=True)
class DestructionStarted:
    destruction_id: str
    task_ids: list[str]
    packages: list[str]  # 档号
    opinion_sha256: str


def _opinion_xml(destruction_id: str, rows: Sequence[Any], today: date) -> bytes:
    root = etree.Element("鉴定意见书", 编号=destruction_id, 日期=today.isoformat())
    etree.SubElement(root, "意见").text = "以下会计档案保管期限已满, 无未结事项, 建议销毁。"
    items = etree.SubElement(root, "档案")
    for row in rows:
        etree.SubElement(items, "条目", 档号=row.archive_no, 凭证号=row.voucher_no,
                         保管期限=row.retention, 到期=str(row.retain_until))  # fmt: skip
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True))


def start_destruction(
    hub: Hub,
    archive: Archive,
    refs: Sequence[str] = (),
    *,
    period: str | None = None,
    actor: str,
) -> DestructionStarted:
    """Appraise packages (by id/档号, or every package of `period`) and open the chain."""
    people = hub.masterdata.get()
    chain = [Step(role, role_holder(people, hub.settings.extra, role)) for role in CHAIN]

    def command(uow: UnitOfWork) -> DestructionStarted:
        if period is not None:
            rows = uow.conn.execute(
                select(archive_packages).where(archive_packages.c.period == period)
            ).all()
            if not rows:
                raise InvalidInput("period", f"no archive packages in {period}")
        else:
            rows = resolve_packages(uow.conn, refs)
        today = uow.now.date()
        problems = refusals(uow, rows, today)
        if problems:
            raise DestructionRefused(problems)
        destruction_id = "DS-" + secrets.token_hex(6)
        opinion = _opinion_xml(destruction_id, rows, today)
        digest = archive.store.put_many([opinion])[0]
        uow.conn.execute(
            archive_destructions.insert().values(
                id=destruction_id,
                package_ids=[r.id for r in rows],
                status="in_appraisal",
                requested_by=actor,
                requested_at=uow.now,
                documents={"鉴定意见书.xml": digest},
            )
        )
        uow.audit("archive.destruction_appraised", "archive_destruction", destruction_id,
                  {"packages": [r.archive_no for r in rows], "opinion_sha256": digest})  # fmt: skip
        title = f"档案销毁鉴定 {destruction_id}: {len(rows)} 卷"
        tasks = open_steps(uow, "destruction", destruction_id, chain, title)
        return DestructionStarted(destruction_id, tasks, [r.archive_no for r in rows], digest)

    return hub.db.perform(command, actor=actor)


def finish_destruction(uow: UnitOfWork, task: Any, approved: bool) -> str:
    """The chain's end: approved (files removed by `carry_out` after commit) or rejected."""
    status = "approved" if approved else "rejected"
    uow.conn.execute(
        update(archive_destructions)
        .where(archive_destructions.c.id == task.subject_id)
        .values(status=status)
    )
    uow.audit(f"archive.destruction_{status}", "archive_destruction", task.subject_id, {})
    return status


def _inventory(destruction_id: str, rows: Sequence[Any], today: date) -> tuple[bytes, bytes]:
    root = etree.Element("销毁清册", 编号=destruction_id, 销毁日期=today.isoformat())
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "销毁清册"
    sheet.append(["档号", "凭证号", "会计期间", "保管期限", "到期", "金额合计(分)", "文件数"])
    for row in rows:
        etree.SubElement(root, "条目", 档号=row.archive_no, 凭证号=row.voucher_no,
                         会计期间=row.period, 保管期限=row.retention, 到期=str(row.retain_until),
                         金额合计分=str(row.total_fen), 文件数=str(len(row.files)))  # fmt: skip
        sheet.append([row.archive_no, row.voucher_no, row.period, row.retention,
                      str(row.retain_until), row.total_fen, len(row.files)])  # fmt: skip
    buffer = io.BytesIO()
    book.save(buffer)
    xml = etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
    return bytes(xml), buffer.getvalue()


def carry_out(hub: Hub, archive: Archive, destruction_id: str) -> dict[str, str]:
    """Destroy an approved run: 清册 written and kept, content files removed, rows marked.
    Idempotent (a file already gone is fine); returns the run's documents."""
    with hub.db.engine.connect() as conn:
        run = conn.execute(
            select(archive_destructions).where(archive_destructions.c.id == destruction_id)
        ).one()
        if run.status == "destroyed":
            return dict(run.documents)
        if run.status != "approved":
            raise InvalidInput("destruction", f"{destruction_id} is {run.status}, not approved")
        rows = conn.execute(
            select(archive_packages).where(archive_packages.c.id.in_(run.package_ids))
        ).all()
        keep = {
            f["sha256"]
            for other in conn.execute(
                select(archive_packages.c.files).where(
                    archive_packages.c.id.not_in(run.package_ids),
                    archive_packages.c.status != "destroyed",
                )
            )
            for f in other.files
        }
    today = hub.db.clock().date()
    xml, xlsx = _inventory(destruction_id, rows, today)
    xml_sha, xlsx_sha = archive.store.put_many([xml, xlsx])
    documents = {**run.documents, "销毁清册.xml": xml_sha, "销毁清册.xlsx": xlsx_sha}
    store = archive.store
    if not isinstance(store, DestructibleStore):
        raise InvalidInput("archive", "this archive store cannot destroy files")
    removed: dict[str, list[str]] = {}
    for row in rows:
        removed[row.id] = []
        for f in row.files:
            if f["sha256"] in keep:
                continue
            if store.remove(f["sha256"]):
                removed[row.id].append(f["sha256"])

    def record(uow: UnitOfWork) -> None:
        uow.conn.execute(
            update(archive_destructions)
            .where(archive_destructions.c.id == destruction_id)
            .values(status="destroyed", destroyed_at=uow.now, documents=documents)
        )
        for row in rows:
            uow.conn.execute(
                update(archive_packages)
                .where(archive_packages.c.id == row.id)
                .values(status="destroyed")
            )
            detail = {"destruction_id": destruction_id, "removed_files": removed[row.id],
                      "inventory_sha256": xml_sha}  # fmt: skip
            log_access(uow, row.id, uow.actor, "destroyed", detail)
            uow.audit("archive.package_destroyed", "archive_package", row.id,
                      {"archive_no": row.archive_no, **detail})  # fmt: skip

    hub.db.perform(record, actor="archive")
    return documents
