"""`finoa policy check FILE | show`, run as real processes."""

from __future__ import annotations

from pathlib import Path

from support.cli import finoa
from support.policy import TRAVEL_POLICY


def test_check_accepts_a_valid_file_and_names_its_versions(tmp_path: Path) -> None:
    result = finoa("policy", "check", str(TRAVEL_POLICY), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{TRAVEL_POLICY}: valid; versions 2026-H1, 2026-H2"


def test_check_lists_each_problem_on_a_line_with_its_path(tmp_path: Path) -> None:
    """Two problems: a category that does not exist, and a tier no city table defines."""
    bad = tmp_path / "policy.yaml"
    text = TRAVEL_POLICY.read_text(encoding="utf-8")
    text = text.replace("category: lodging", "category: hotel", 1)
    text = text.replace("per: day", "per: fortnight", 1)
    bad.write_text(text, encoding="utf-8")
    result = finoa("policy", "check", str(bad), data_dir=tmp_path / "data")
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith(f"{bad}: versions[0].rules[0].category: ")
    assert lines[1].startswith(f"{bad}: versions[1].rules[1].per: ")
    assert lines[2] == f"error: {bad}: 2 problem(s), each on a line above; the file is not usable"
    assert lines[3].startswith("fix: ")


def test_check_of_a_missing_file(tmp_path: Path) -> None:
    result = finoa("policy", "check", str(tmp_path / "none.yaml"), data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'none.yaml'}: no such policy file",
        "fix: give the path of a policy YAML file (the shipped one: `finoa policy show`)",
    ]


def test_show_prints_the_default_or_the_configured_policy(tmp_path: Path) -> None:
    env = {"COLUMNS": "200"}
    shipped = finoa("policy", "show", data_dir=tmp_path / "data", env=env)
    assert shipped.returncode == 0, shipped.stderr
    assert "expense policy from finoa/rules/expense_policy.yaml" in shipped.stdout
    assert "version 2026.1: 2026-01-01 to 2026-12-31" in shipped.stdout
    config = tmp_path / "finoa.yaml"
    config.write_text(f"policy_file: {TRAVEL_POLICY}\n", encoding="utf-8")
    configured = finoa("policy", "show", "--config", str(config), data_dir=tmp_path / "d", env=env)
    assert configured.returncode == 0, configured.stderr
    assert f"expense policy from {TRAVEL_POLICY}" in configured.stdout
    assert "version 2026-H2: 2026-07-01 to open-ended" in configured.stdout
    row = next(line for line in configured.stdout.splitlines() if "entertainment_per_line" in line)
    assert "block" in row


def test_show_with_a_broken_configured_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("versions: [\n", encoding="utf-8")
    result = finoa(
        "policy", "show", data_dir=tmp_path / "data", env={"FINOA_POLICY_FILE": str(broken)}
    )
    assert result.returncode == 3, result
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: policy_file {broken}: line 2: not valid YAML (ParserError)"
    assert lines[1].startswith("fix: ")
