"""`finoa process deploy FILE… | list | export KEY`, run as real processes."""

from __future__ import annotations

from pathlib import Path

from support.cli import finoa

from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN


def test_deploy_list_and_export_a_changed_process(tmp_path: Path) -> None:
    """The controller exports the shipped claim process, relabels the manager's step and
    deploys it: version 1. Deploying it again adds nothing; the list shows it as the latest,
    and it exports byte for byte."""
    data = tmp_path / "data"
    exported = finoa("process", "export", "claim_approval", data_dir=data)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == DEFAULT_BPMN.read_text("utf-8")
    edited = tmp_path / "claim.bpmn"
    edited.write_text(exported.stdout.replace("Direct manager", "Line manager"), "utf-8")

    deployed = finoa("process", "deploy", str(edited), str(DEFAULT_DMN), data_dir=data)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.strip() == "deployed claim_approval version 1"
    again = finoa("process", "deploy", str(edited), data_dir=data)
    assert again.stdout.strip() == ("claim_approval version 1 has these bytes already; nothing new")
    listed = finoa("process", "list", data_dir=data, env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "claim_approval" in line]
    assert len(rows) == 2 and "0 (shipped)" in rows[0] and "latest" in rows[1], listed.stdout
    assert "latest" not in rows[0]
    back = finoa("process", "export", "claim_approval", "--version", "1", data_dir=data)
    assert back.stdout == edited.read_text("utf-8")
    dmn = finoa("process", "export", "claim_approval", "--dmn", data_dir=data)
    assert dmn.stdout == DEFAULT_DMN.read_text("utf-8")


def test_a_refused_definition_is_one_error_line_naming_element_and_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    text = DEFAULT_BPMN.read_text("utf-8").replace('value="cfo"', 'value="treasurer"')
    bad = tmp_path / "bad.bpmn"
    bad.write_text(text, "utf-8")
    line = text[: text.index('<bpmn:userTask id="cfo_approval"')].count("\n") + 1
    result = finoa("process", "deploy", str(bad), data_dir=data)
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        f"error: bad.bpmn, line {line}: cfo_approval: unknown role 'treasurer'; the org model "
        "knows ['cfo', 'cost_center_owner', 'department_head', 'finance_director', "
        "'manager', 'users']",
        "fix: correct the definition and deploy it again; nothing was stored",
    ]
    listed = finoa("process", "list", data_dir=data, env={"COLUMNS": "200"})
    assert "latest" in next(r for r in listed.stdout.splitlines() if "claim_approval" in r)


def test_unknown_process_and_missing_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    unknown = finoa("process", "export", "travel_approval", data_dir=data)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[0].startswith("error: process_key: no process")
    missing = finoa("process", "deploy", str(tmp_path / "none.bpmn"), data_dir=data)
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[0] == (
        f"error: {tmp_path / 'none.bpmn'}: cannot read it (No such file or directory)"
    )
