"""The voucher as a human-readable PDF (记账凭证), in Chinese, with an embedded CJK font.

ReportLab embeds a subset of a TrueType font; the font is found at run time (setting
`archive_font`, else the Debian packages fonts-wqy-zenhei, fonts-wqy-microhei,
fonts-arphic-uming) and registered once per process. Output is invariant: the same voucher
gives the same bytes.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finoa.domain.money import format_fen

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
)
FONT_NAME = "finoa-cjk"
_registered: dict[str, str] = {}
_lock = threading.Lock()


class FontMissing(Exception):
    """No CJK TrueType font to write Chinese into the PDF."""


def find_font(configured: str = "") -> Path:
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FontMissing(f"archive_font: {configured} does not exist")
        return path
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FontMissing(
        "no CJK TrueType font for archive PDFs: install one "
        "(apt-get install -y fonts-wqy-zenhei) or set archive_font to a .ttf/.ttc file"
    )


def _font(configured: str) -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    path = find_font(configured)
    with _lock:
        key = str(path)
        if key not in _registered:
            name = f"{FONT_NAME}-{len(_registered)}"
            try:
                pdfmetrics.registerFont(TTFont(name, key, subfontIndex=0))
            except TTFError as exc:
                raise FontMissing(
                    f"{path}: not a TrueType font ReportLab can embed ({exc}); "
                    "use a TrueType CJK font such as fonts-wqy-zenhei"
                ) from None
            _registered[key] = name
        return _registered[key]


def voucher_pdf(view: dict[str, Any], *, font: str = "") -> bytes:
    """`view`: archive_no, company, voucher_no, date, summary, entries (account, name, summary,
    debit_fen, credit_fen), total_fen, preparer, approvals (who, role, action, at, oa),
    invoices (number, total_fen)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    name = _font(font)
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4, invariant=True, pageCompression=1)
    page.setTitle(f"记账凭证 {view['voucher_no']}")
    page.setAuthor(str(view.get("company", "")))
    width, height = A4
    y = height - 60

    def line(text: str, x: float = 50, size: float = 10) -> None:
        nonlocal y
        if y < 60:
            page.showPage()
            y = height - 60
        page.setFont(name, size)
        page.drawString(x, y, text)

    def row(cells: Sequence[tuple[float, str]], size: float = 9, step: float = 16) -> None:
        nonlocal y
        for x, text in cells:
            line(text, x, size)
        y -= step

    page.setFont(name, 18)
    page.drawCentredString(width / 2, y, "记 账 凭 证")
    y -= 26
    row([(50, f"档号：{view['archive_no']}"), (330, f"凭证号：{view['voucher_no']}")], 10)
    row([(50, f"单位：{view.get('company', '')}"), (330, f"日期：{view['date']}")], 10)
    row([(50, f"摘要：{view['summary']}")], 10, 22)
    row([(50, "科目"), (190, "摘要"), (380, "借方金额"), (470, "贷方金额")], 10, 18)
    for entry in view["entries"]:
        debit = format_fen(entry["debit_fen"]) if entry["debit_fen"] else ""
        credit = format_fen(entry["credit_fen"]) if entry["credit_fen"] else ""
        row(
            [
                (50, f"{entry['account']} {entry['name']}"[:24]),
                (190, str(entry["summary"])[:22]),
                (380, debit),
                (470, credit),
            ]
        )
    total = format_fen(view["total_fen"])
    row([(50, "合计"), (380, total), (470, total)], 10, 24)
    row([(50, f"制单：{view.get('preparer', '')}"), (330, f"附单据：{len(view['invoices'])} 张")])
    y -= 6
    row([(50, "审批记录")], 11, 18)
    for step in view["approvals"]:
        row([(50, f"{step['at']}  {step['role']}  {step['who']}  {step['action']}  {step['oa']}")])
    if view["invoices"]:
        y -= 6
        row([(50, "原始凭证（电子发票）")], 11, 18)
        for invoice in view["invoices"]:
            row([(50, f"{invoice['number']}  价税合计 {format_fen(invoice['total_fen'])}")])
    page.showPage()
    page.save()
    return buffer.getvalue()
