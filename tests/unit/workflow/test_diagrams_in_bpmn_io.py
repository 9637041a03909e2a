"""Every shipped definition opens in bpmn.io: the moddle parsers its modelers import with
(npm `bpmn-moddle`, `dmn-moddle`, pinned in tests/js/package.json) read each file without a
single warning, and every flow element and decision has a diagram element, so it renders.

The packages are installed from the npm registry into tests/js/node_modules on first use."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from finoa.services.processes import shipped_paths

JS = Path(__file__).resolve().parents[2] / "js"


@pytest.fixture(scope="module")
def read_definitions() -> Any:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed to read the diagrams as bpmn.io does"
    if (
        not (JS / "node_modules" / "bpmn-moddle").is_dir()
        or not (JS / "node_modules" / "dmn-moddle").is_dir()
    ):
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True
        )

    def read(*files: Path) -> list[dict[str, Any]]:
        done = subprocess.run(
            [node, str(JS / "read_definitions.mjs"), *map(str, files)],
            cwd=JS,
            check=True,
            capture_output=True,
            text=True,
        )
        return [json.loads(line) for line in done.stdout.splitlines()]

    return read


def test_every_shipped_definition_reads_without_warnings_and_is_drawn(
    read_definitions: Any,
) -> None:
    results = read_definitions(*shipped_paths())
    assert [Path(r["file"]).name for r in results] == [p.name for p in shipped_paths()]
    for result in results:
        assert result["warnings"] == [], result
        assert result["undrawn"] == [], result
    processes = {p["id"] for r in results for p in r.get("processes", [])}
    assert processes == {
        "claim_approval",
        "advance_approval",
        "payment_approval",
        "requisition_approval",
    }
    (dmn,) = (r for r in results if "decisions" in r)
    assert dmn["decisions"] == [{"id": "approval_levels", "inputs": 4, "rules": 6}]


def test_the_reader_reports_a_broken_reference_and_an_undrawn_task(
    read_definitions: Any, tmp_path: Path
) -> None:
    """The check can fail: a flow to a task that does not exist, a task without a shape."""
    text = shipped_paths()[0].read_text("utf-8")
    text = text.replace('targetRef="determine_levels"', 'targetRef="no_such_task"', 1)
    text = text.replace('<bpmndi:BPMNShape id="manager_approval_di"', "<bpmndi:BPMNShape", 1)
    text = text.replace('bpmnElement="manager_approval">', ">", 1)
    broken = tmp_path / "broken.bpmn"
    broken.write_text(text, encoding="utf-8")
    (result,) = read_definitions(broken)
    assert any("no_such_task" in w for w in result["warnings"]), result
    assert "manager_approval" in result["undrawn"]
