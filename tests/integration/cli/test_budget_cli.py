"""`finoa budget import FILE | list | report`, run as real processes on an embedded hub."""

from __future__ import annotations

import subprocess
from pathlib import Path

from openpyxl import Workbook
from support.cli import finoa

GOOD = (
    "node_kind,node_id,category,period,amount,mode\n"
    "org_unit,D00,,2026,100000.00,block\n"
    "org_unit,D04,meeting,2026-Q4,20000,warn\n"
    "project,P001,,2026-12,5000,\n"
)


def two_line_error(result: subprocess.CompletedProcess[str], *contains: str) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: "), lines
    assert lines[1].startswith("fix: "), lines
    for text in contains:
        assert text in lines[0], lines
    return lines[0]


def test_import_list_and_report(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert finoa("masterdata", "load", data_dir=data).returncode == 0
    file = tmp_path / "budgets-2026.csv"
    file.write_text(GOOD, encoding="utf-8")
    imported = finoa("budget", "import", str(file), data_dir=data)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "imported 3 budget(s), 0 unchanged: 1, 2, 3"
    again = finoa("budget", "import", str(file), data_dir=data)
    assert again.stdout.strip() == "imported 0 budget(s), 3 unchanged: 1, 2, 3"

    env = {"COLUMNS": "200"}
    listing = finoa("budget", "list", "--period", "2026-q4", data_dir=data, env=env)
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if "org_unit" in line]
    assert len(rows) == 1 and "D04" in rows[0] and "20,000.00" in rows[0] and "warn" in rows[0]
    report = finoa("budget", "report", data_dir=data, env=env)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    top = next(i for i, line in enumerate(lines) if "org_unit D00" in line)
    below = next(i for i, line in enumerate(lines) if "org_unit D04" in line)
    assert top < below and "  org_unit D04" in lines[below]  # a unit sits below its parent
    assert "0.0%" in lines[top] and "100,000.00" in lines[top]


def test_an_excel_file_is_imported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert finoa("masterdata", "load", data_dir=data).returncode == 0
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["node_kind", "node_id", "period", "amount"])
    sheet.append(["cost_center", "CC01", "2026", 1234.5])
    book.save(tmp_path / "预算.xlsx")
    imported = finoa("budget", "import", str(tmp_path / "预算.xlsx"), data_dir=data)
    assert imported.returncode == 0, imported.stderr
    listing = finoa("budget", "list", data_dir=data, env={"COLUMNS": "200"})
    assert "1,234.50" in listing.stdout and "block" in listing.stdout


def test_bad_files_and_options_are_one_error_and_a_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert finoa("masterdata", "load", data_dir=data).returncode == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("node_kind,node_id,period,amount\norg_unit,D04,2026,1e3\nteam,D04,2026,1\n")
    line = two_line_error(
        finoa("budget", "import", str(bad), data_dir=data),
        "2 bad cell(s), nothing imported",
        "row 2, column amount",
        "row 3, column node_kind",
    )
    assert "'1e3'" in line
    two_line_error(finoa("budget", "import", str(tmp_path / "nope.csv"), data_dir=data), "file:")
    text = tmp_path / "budgets.txt"
    text.write_text("x")
    two_line_error(finoa("budget", "import", str(text), data_dir=data), "give a .csv or .xlsx")
    two_line_error(finoa("budget", "list", "--period", "26", data_dir=data), "--period:")
    listing = finoa("budget", "list", data_dir=data)
    assert listing.returncode == 0 and "D04" not in listing.stdout


def test_every_budget_command_shows_an_example(tmp_path: Path) -> None:
    for command in ("import", "list", "report"):
        shown = finoa("budget", command, "--help", data_dir=tmp_path / "data")
        assert shown.returncode == 0
        assert f"Example: finoa budget {command}" in shown.stdout
