"""`finoa invoices read` and `finoa sim tax-platform`: output and expected failures."""

from __future__ import annotations

from pathlib import Path

from support import invoices as build
from support.cli import finoa

from finoa.cli_errors import ExitCode


def test_read_shows_the_invoice_and_its_deductible_vat(tmp_path: Path) -> None:
    path = tmp_path / "ticket.ofd"
    path.write_bytes(build.ofd(build.railway_xbrl(fare="553.00")))
    result = finoa(
        "invoices", "read", str(path), "--company-tax-id", build.COMPANY_TAX_ID,
        data_dir=tmp_path / "data",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "railway" in result.stdout and "45.66" in result.stdout and "553.00" in result.stdout


def test_read_tells_why_a_printout_needs_manual_entry(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(build.pdf(None))
    result = finoa("invoices", "read", str(path), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "manual entry" in result.stdout


def test_read_failures_are_two_lines_with_their_exit_code(tmp_path: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_bytes(build.einv_xbrl(buyer=build.OTHER_TAX_ID))
    result = finoa(
        "invoices", "read", str(other), "--company-tax-id", build.COMPANY_TAX_ID,
        data_dir=tmp_path / "data",
    )  # fmt: skip
    assert result.returncode == ExitCode.CHECK_FAILED
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and "invoice.buyer_tax_id" in lines[0]
    assert lines[1].startswith("fix:")
    gif = tmp_path / "x.gif"
    gif.write_bytes(b"GIF89a")
    result = finoa("invoices", "read", str(gif), data_dir=tmp_path / "data")
    assert result.returncode == ExitCode.BAD_INPUT and "error: x.gif: file:" in result.stderr
    result = finoa("invoices", "read", str(tmp_path / "missing.xml"), data_dir=tmp_path / "data")
    assert result.returncode == ExitCode.BAD_INPUT and "error:" in result.stderr


def test_tax_platform_simulator_needs_its_key(tmp_path: Path) -> None:
    result = finoa(
        "sim", "tax-platform", data_dir=tmp_path / "data", env={"FINOA_TAX_PLATFORM_API_KEY": ""}
    )
    assert result.returncode == ExitCode.MISSING_SECRET
    assert "FINOA_TAX_PLATFORM_API_KEY" in result.stderr
