"""Benchmark: archive packages built and checked per second, and fixity speed.

On a fresh embedded database it approves and posts N claims (each with a railway e-ticket),
then measures:

1. build: `build_packages` — each package's files (voucher XML and PDF, claim, approval trail,
   invoice, metadata with SHA-256 and SM3), the write-once store, the catalog row and the
   四性检测 at archiving — in packages/s, in one process (the reference) and then, for as
   many more vouchers, by a started pool of one builder process per core (as the hub's
   keeper and `finoa archive build` run it);
2. check: `check_archive` over the period (every package read back and checked again, plus
   the numbering and 档号 checks over the set), in packages/s;
3. store: files written write-once and durable, per file, through the archive store's
   batch (`put_many`) against one file at a time (`WriteOnceFiles.put`, then one `sync`:
   the reference, in the same run);
4. PDF: voucher PDFs rendered per second with the embedded TrueType font (when the system
   has one) and with the built-in CID font;
5. fixity: SHA-256 and SM3 over one large buffer, in MB/s, each with its ratio to copying
   the same buffer (the reference measured in the same run).

Wall-clock figures on a shared machine vary from run to run; the CPU seconds of the build
are printed beside them.

Usage: python bench/archive.py [--packages 300] [--megabytes 256] [--files 700]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import invoices as build  # noqa: E402
from support.claims import one_line_claim  # noqa: E402

from finoa.archive import pdf  # noqa: E402
from finoa.archive.builders import PackageBuilders  # noqa: E402
from finoa.archive.service import Archive, PackageQuery, build_packages, check_archive  # noqa: E402
from finoa.archive.storage import FilesystemArchiveStore, sm3_hex  # noqa: E402
from finoa.config import load_settings  # noqa: E402
from finoa.invoices.service import check_upload, invoice_attachment  # noqa: E402
from finoa.invoices.storage import InvoiceFiles, WriteOnceFiles  # noqa: E402
from finoa.invoices.verification import VerificationState  # noqa: E402
from finoa.services.approvals import decide_task  # noqa: E402
from finoa.services.claims import submit_claim  # noqa: E402
from finoa.services.context import Hub  # noqa: E402
from finoa.services.masterdata import load_masterdata  # noqa: E402
from finoa.services.queries import get_claim  # noqa: E402
from finoa.services.vouchers import record_voucher_posted  # noqa: E402
from finoa.store.db import upgrade  # noqa: E402


def posted_vouchers(hub: Hub, count: int, prefix: str = "BENCH") -> str:
    """Approve and post `count` claims; the period of their vouchers."""
    files = InvoiceFiles(hub.settings.invoice_path)
    period = ""
    for n in range(count):
        claim_id = submit_claim(
            hub,
            one_line_claim(f"{prefix}-{n}", applicant_id="E0011", department_id="D02",
                           category="travel", amount="553.00"),
            source="bench",
            actor="bench",
        ).claim_id  # fmt: skip
        invoice = build.railway_xbrl(fare="553.00")
        upload = check_upload(
            invoice, "ticket.xml", company_tax_id=hub.settings.company_tax_id, max_bytes=1 << 20
        )
        files.put(invoice)
        hub.db.perform(
            invoice_attachment(upload, claim_id, 1, VerificationState.NOT_CHECKED), actor="b"
        )
        while (claim := get_claim(hub.db, claim_id)).status == "in_approval":
            task = next(t for t in claim.tasks if t.status == "pending")
            decide_task(hub, task.id, task.assignee_id, True, "同意", actor="bench")
        voucher = get_claim(hub.db, claim_id).voucher
        assert voucher is not None
        with hub.db.uow("erp") as uow:
            record_voucher_posted(
                uow, voucher.id, {"erp_voucher_no": f"{prefix}{n}", "erp_id": "x"}
            )
            uow.commit()
        period = voucher.period
    return period


def rate(megabytes: float, seconds: float) -> float:
    return megabytes / seconds if seconds else float("inf")


def fixity(megabytes: int) -> None:
    buffer = bytes(range(256)) * (megabytes * 4096)
    started = time.perf_counter()
    copy = bytearray(buffer)
    reference = time.perf_counter() - started
    del copy
    started = time.perf_counter()
    hashlib.sha256(buffer).hexdigest()
    sha = time.perf_counter() - started
    started = time.perf_counter()
    sm3_hex(buffer)
    sm3 = time.perf_counter() - started
    print(f"fixity over {megabytes} MB: copy (reference) {rate(megabytes, reference):,.0f} MB/s")
    print(f"  SHA-256 {rate(megabytes, sha):,.0f} MB/s  ({sha / reference:.1f}× the copy's time)")
    print(f"  SM3     {rate(megabytes, sm3):,.0f} MB/s  ({sm3 / reference:.1f}× the copy's time)")


def store(count: int, rounds: int = 3) -> None:
    """Per file: one at a time then one sync (reference) against the archive store's batch,
    alternating, `rounds` times each; the medians."""
    reference: list[float] = []
    batched: list[float] = []
    with tempfile.TemporaryDirectory(prefix="finoa-bench-store-") as directory:
        root = Path(directory)
        one_by_one = WriteOnceFiles(root / "reference")
        for n in range(rounds):
            files = [os.urandom(4096) for _ in range(count)]
            started = time.perf_counter()
            one_by_one.sync([one_by_one.put(data, sync=False) for data in files])
            reference.append((time.perf_counter() - started) / count)
            files = [os.urandom(4096) for _ in range(count)]
            started = time.perf_counter()
            FilesystemArchiveStore(root / f"archive-{n}").put_many(files)
            batched.append((time.perf_counter() - started) / count)
    one, many = statistics.median(reference), statistics.median(batched)
    print(f"store {count} files of 4 KB: one at a time (reference) {one * 1e3:.2f} ms/file")
    print(f"  archive store batch {many * 1e3:.2f} ms/file  ({many / one:.2f}× the reference)")


PDF_VIEW = {
    "archive_no": "F001-2026-KJ·2026-11-30Y-记-0001",
    "company": "示例科技有限公司",
    "voucher_no": "记-0001",
    "date": "2026-11-30",
    "summary": "差旅费报销",
    "entries": [
        {"account": "660201", "name": "管理费用-差旅费", "summary": "差旅费",
         "debit_fen": 55300, "credit_fen": 0},
        {"account": "2241", "name": "其他应付款", "summary": "应付报销款",
         "debit_fen": 0, "credit_fen": 55300},
    ],
    "total_fen": 55300,
    "preparer": "王芳",
    "approvals": [{"at": "2026-11-30T10:00:00", "role": "部门经理审批", "who": "李强",
                   "action": "同意", "oa": "dingtalk"}],
    "invoices": [{"number": "26117000000012345678", "total_fen": 55300}],
}  # fmt: skip


def pdfs(count: int) -> None:
    """Voucher PDFs per second, each font; the staff's names vary as in a month's vouchers."""
    people = "王芳李强张伟刘洋陈静杨磊赵敏黄勇周杰吴娜"
    candidates = pdf.FONT_CANDIDATES
    for label, found in (("embedded TrueType", candidates), ("CID STSong-Light", ())):
        pdf.FONT_CANDIDATES = found
        chosen = pdf.pdf_font()  # loading the font is once per process: not timed
        if label.startswith("embedded") and not chosen.embedded:
            print("PDF with an embedded TrueType font: none on this system")
            continue
        started = time.perf_counter()
        for n in range(count):
            who = people[2 * (n % 10) : 2 * (n % 10) + 2]
            pdf.voucher_pdf({**PDF_VIEW, "preparer": who, "summary": f"差旅费报销 {who}"})
        seconds = time.perf_counter() - started
        print(f"PDF, {label} ({chosen.face}): {count / seconds:,.0f} vouchers/s")
    pdf.FONT_CANDIDATES = candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--files", type=int, default=700)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finoa-bench-archive-") as directory:
        url = f"sqlite:///{Path(directory) / 'finoa.db'}"
        upgrade(url)
        settings = load_settings(
            data_dir=Path(directory) / "data", database_url=url, company_tax_id=build.COMPANY_TAX_ID
        )
        hub = Hub.create(settings)
        load_masterdata(hub.db)
        try:
            started = time.perf_counter()
            period = posted_vouchers(hub, args.packages)
            print(
                f"setup: {args.packages} posted vouchers in {time.perf_counter() - started:.1f} s"
            )
            archive = Archive.from_settings(settings)
            started, cpu = time.perf_counter(), time.process_time()
            summary = build_packages(hub.db, archive)
            built, cpu = time.perf_counter() - started, time.process_time() - cpu
            assert len(summary.built) == args.packages and summary.checks_failed == 0, summary
            print(
                f"build + 四性检测 at archiving, in one process (reference): "
                f"{args.packages / built:,.1f} packages/s "
                f"({cpu / args.packages * 1e3:.1f} ms CPU per package)"
            )
            posted_vouchers(hub, args.packages, prefix="POOL")
            builders = PackageBuilders(settings, workers=settings.archive_builders)
            try:
                builders.warm()  # a hub's pool is started once and kept
                started = time.perf_counter()
                pooled = builders.build(hub.db)
                in_pool = time.perf_counter() - started
            finally:
                builders.close()
            assert len(pooled.built) == args.packages and pooled.checks_failed == 0, pooled
            print(
                f"  by {builders.workers} builder processes: {args.packages / in_pool:,.1f} "
                f"packages/s ({built / in_pool:.2f}× the reference)"
            )
            started = time.perf_counter()
            run = check_archive(hub.db, archive, PackageQuery(period=period, limit=1000))
            checked = time.perf_counter() - started
            assert run.passed
            print(f"四性检测 on demand over {period}: {len(run.reports) / checked:,.1f} packages/s")
        finally:
            hub.close()
    store(args.files)
    pdfs(max(50, args.packages // 2))
    fixity(args.megabytes)


if __name__ == "__main__":
    main()
