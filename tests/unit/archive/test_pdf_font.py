"""The voucher PDF without a CJK TrueType font on the system: the built-in CID font."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pypdf import PdfReader

from finoa.archive import pdf

VIEW: dict[str, Any] = {
    "archive_no": "F001-2026-KJ·2026-11-30Y-记-0007",
    "company": "示例科技有限公司",
    "voucher_no": "记-0007",
    "date": "2026-11-30",
    "summary": "差旅费报销 北京出差",
    "entries": [
        {
            "account": "660201",
            "name": "管理费用-差旅费",
            "summary": "差旅费",
            "debit_fen": 55300,
            "credit_fen": 0,
        },
        {
            "account": "2241",
            "name": "其他应付款",
            "summary": "应付报销款",
            "debit_fen": 0,
            "credit_fen": 55300,
        },
    ],
    "total_fen": 55300,
    "preparer": "王芳",
    "approvals": [
        {"at": "2026-11-30T10:00", "role": "部门经理", "who": "李强", "action": "同意", "oa": "dt"}
    ],
    "invoices": [{"number": "26117000000012345678", "total_fen": 55300}],
}


@pytest.fixture
def no_truetype_font(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "FONT_CANDIDATES", ("/nonexistent/wqy-zenhei.ttc",))


def fonts_of(reader: PdfReader) -> dict[str, Any]:
    resources = reader.pages[0]["/Resources"]["/Font"]
    return {str(font["/BaseFont"]): font for font in resources.values()}


@pytest.mark.usefixtures("no_truetype_font")
def test_without_a_truetype_font_the_pdf_uses_the_cid_font_and_says_so() -> None:
    assert pdf.find_font() is None
    chosen = pdf.pdf_font()
    assert (chosen.name, chosen.embedded) == ("STSong-Light", False)

    reader = PdfReader(io.BytesIO(pdf.voucher_pdf(VIEW)))

    text = reader.pages[0].extract_text().replace("\n", "")  # a line per font run
    for shown in ("记 账 凭 证", "档号：F001-2026-KJ·2026-11-30Y-记-0007", "示例科技有限公司"):
        assert shown in text, shown
    for shown in ("660201 管理费用-差旅费", "制单：王芳", "部门经理", "价税合计 553.00"):
        assert shown in text, shown
    fonts = fonts_of(reader)
    assert "/STSong-Light" in fonts
    descendant = fonts["/STSong-Light"]["/DescendantFonts"][0]
    descriptor = descendant["/FontDescriptor"]
    assert not {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor)  # named only
    keywords = str(reader.metadata["/Keywords"])
    assert "STSong-Light" in keywords and "not embedded" in keywords
    assert "fonts-wqy-zenhei" in keywords


@pytest.mark.usefixtures("no_truetype_font")
def test_the_cid_font_pdf_is_the_same_bytes_each_time() -> None:
    assert pdf.voucher_pdf(VIEW) == pdf.voucher_pdf(dict(VIEW))
    other = pdf.voucher_pdf({**VIEW, "summary": "办公用品采购"})
    assert other != pdf.voucher_pdf(VIEW)
    assert "办公用品采购" in PdfReader(io.BytesIO(other)).pages[0].extract_text()


def test_latin_text_is_set_in_the_standard_font_beside_the_cid_font() -> None:
    assert pdf._cid_runs("STSong-Light", "KJ·记-07") == [
        ("Helvetica", "KJ·"),
        ("STSong-Light", "记"),
        ("Helvetica", "-07"),
    ]


def test_a_configured_font_that_is_not_truetype_is_refused(tmp_path: Any) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font at all")
    with pytest.raises(pdf.FontMissing, match="not a TrueType font"):
        pdf.pdf_font(str(broken))
