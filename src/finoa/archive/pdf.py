"""The voucher as a human-readable PDF (记账凭证), in Chinese.

With a CJK TrueType font (setting `archive_font`, else the Debian packages fonts-wqy-zenhei,
fonts-wqy-microhei, fonts-arphic-uming) ReportLab embeds a subset of it, as PDF/A practice
asks. Without one, the PDF names ReportLab's built-in CID font STSong-Light (Adobe-GB1, not
embedded): every PDF reader with the Adobe CJK fonts, and poppler with poppler-data, shows it.
Which font a PDF uses is written into its document information (Keywords), so the 四性检测's
usability item and anyone opening the file can tell. The font is loaded once per process and
each distinct glyph subset is built once; output is invariant: the same voucher gives the
same bytes.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
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
CID_FONT = "STSong-Light"  # ReportLab's built-in Adobe-GB1 font: named, not embedded
SUBSETS_KEPT = 512  # distinct glyph subsets kept built, per font
_registered: dict[str, PdfFont] = {}
_lock = threading.Lock()


class FontMissing(Exception):
    """The configured CJK TrueType font is missing or cannot be embedded."""


@dataclass(frozen=True)
class PdfFont:
    """The font a voucher PDF is written in."""

    name: str  # as registered with ReportLab
    face: str  # the font's own name, or its file
    embedded: bool

    @property
    def description(self) -> str:
        if self.embedded:
            return f"font: {self.face} (TrueType subset, embedded)"
        return (
            f"font: {self.face} (CID font, not embedded; install fonts-wqy-zenhei "
            "to embed a TrueType CJK font)"
        )


def find_font(configured: str = "") -> Path | None:
    """The CJK TrueType font to embed; None when the system has none (and none is set)."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FontMissing(f"archive_font: {configured} does not exist")
        return path
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def pdf_font(configured: str = "") -> PdfFont:
    """The registered font for voucher PDFs: the TrueType CJK font when there is one, else
    the built-in CID font STSong-Light."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    path = find_font(configured)
    key = str(path) if path is not None else CID_FONT
    with _lock:
        if key in _registered:
            return _registered[key]
        if path is None:
            from reportlab.pdfbase.cidfonts import UnicodeCIDFont

            pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
            font = PdfFont(CID_FONT, CID_FONT, embedded=False)
        else:
            name = f"{FONT_NAME}-{len(_registered)}"
            try:
                truetype = TTFont(name, key, subfontIndex=0)
            except TTFError as exc:
                raise FontMissing(
                    f"{path}: not a TrueType font ReportLab can embed ({exc}); "
                    "use a TrueType CJK font such as fonts-wqy-zenhei"
                ) from None
            _keep_subsets(truetype.face)
            pdfmetrics.registerFont(truetype)
            font = PdfFont(name, path.name, embedded=True)
        _registered[key] = font
        return font


def _keep_subsets(face: Any) -> None:
    """Build each distinct glyph subset of `face` once: vouchers mostly repeat the same
    characters (the form's labels, the company, the staff), and building a subset from the
    font's tables is most of a PDF's cost."""
    build = face.makeSubset
    kept: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
    guard = threading.Lock()

    def make_subset(subset: Sequence[int]) -> bytes:
        key = tuple(subset)
        with guard:
            if key in kept:
                kept.move_to_end(key)
                return kept[key]
        data: bytes = build(subset)
        with guard:
            kept[key] = data
            if len(kept) > SUBSETS_KEPT:
                kept.popitem(last=False)
        return data

    face.makeSubset = make_subset


LATIN_FONT = "Helvetica"  # the standard font, for Latin text beside the CID font


def _cid_runs(cid_font: str, text: str) -> list[tuple[str, str]]:
    """`text` split into runs of one font: Latin text in the standard font, the rest in the
    CID font (whose UniGB-UCS2-H CMap has no Latin-1 supplement characters: the 档号's
    middle dot U+00B7, for one)."""
    runs: list[tuple[str, str]] = []
    for char in text:
        font = LATIN_FONT if char <= "\u00ff" else cid_font
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + char)
        else:
            runs.append((font, char))
    return runs


def voucher_pdf(view: dict[str, Any], *, font: str = "") -> bytes:
    """`view`: archive_no, company, voucher_no, date, summary, entries (account, name, summary,
    debit_fen, credit_fen), total_fen, preparer, approvals (who, role, action, at, oa),
    invoices (number, total_fen)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfgen import canvas

    chosen = pdf_font(font)
    name = chosen.name
    buffer = io.BytesIO()
    page = canvas.Canvas(
        buffer, pagesize=A4, invariant=True, pageCompression=1, initialFontName=name
    )
    page.setTitle(f"记账凭证 {view['voucher_no']}")
    page.setAuthor(str(view.get("company", "")))
    page.setKeywords(chosen.description)
    width, height = A4
    y = height - 60

    def line(text: str, x: float = 50, size: float = 10) -> None:
        nonlocal y
        if y < 60:
            page.showPage()
            y = height - 60
        if chosen.embedded:
            page.setFont(name, size)
            page.drawString(x, y, text)
            return
        for run_font, run in _cid_runs(name, text):
            page.setFont(run_font, size)
            page.drawString(x, y, run)
            x += pdfmetrics.stringWidth(run, run_font, size)

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
