"""The README's command table is the CLI's: generated from it, and checked against it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finoa.cli_reference import BEGIN, END, command_table, commands, table_examples, with_table

README = Path(__file__).parents[3] / "README.md"


def test_the_readme_table_is_the_one_the_cli_generates() -> None:
    document = README.read_text(encoding="utf-8")
    assert with_table(document, command_table()) == document, (
        "README.md's command table differs from the CLI: run `make readme`"
    )


def test_every_command_is_a_row_with_its_example() -> None:
    rows = commands()
    document = README.read_text(encoding="utf-8")
    assert [example for _, _, example in rows] == table_examples(document)
    paths = [path for path, _, _ in rows]
    assert {"finoa doctor", "finoa audit verify", "finoa replay", "finoa token"} <= set(paths)
    assert all(summary and example.startswith(path) for path, summary, example in rows)


def test_pipes_survive_the_table_and_missing_markers_are_named() -> None:
    table = command_table([("finoa x", "keep | forget", "finoa x --mode 'a|b'")])
    assert "keep \\| forget" in table
    assert table_examples(f"intro\n{table}\nrest") == ["finoa x --mode 'a|b'"]
    with pytest.raises(ValueError, match="markers"):
        with_table("no table here", table)
    assert with_table(f"a\n{BEGIN}\nold\n{END}\nb", table) == f"a\n{table}\nb"


def test_check_fails_on_a_drifted_readme_and_write_repairs_it(tmp_path: Path) -> None:
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text(encoding="utf-8").replace("`finoa doctor --json`", "`x`"))
    module = [sys.executable, "-m", "finoa.cli_reference"]
    drifted = subprocess.run([*module, "--check", str(copy)], capture_output=True, text=True)
    assert drifted.returncode == 1 and "make readme" in drifted.stderr
    subprocess.run([*module, "--write", str(copy)], check=True)
    assert copy.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")
    fixed = subprocess.run([*module, "--check", str(copy)], capture_output=True, text=True)
    assert fixed.returncode == 0
