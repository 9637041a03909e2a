"""`finoa mapping preview wecom expense_claim`: the approval detail as WeCom answers it."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import finoa

FIXTURE = Path(__file__).parents[2] / "fixtures" / "wecom" / "approval_detail_expense.json"


def test_the_detail_of_an_approval_previews_as_a_claim(tmp_path: Path) -> None:
    info = json.loads(FIXTURE.read_text(encoding="utf-8"))["info"]
    document = tmp_path / "approval.json"
    document.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    done = finoa(
        "mapping", "preview", "wecom", "expense_claim", str(document), data_dir=tmp_path / "data"
    )
    assert done.returncode == 0, done.stderr
    claim = json.loads(done.stdout.split("\n", 1)[1])
    assert (claim["external_id"], claim["applicant_id"], claim["department_id"]) == (
        "202611200001",
        "E0031",
        "D04",
    )
    assert claim["lines"][0]["category"] == "transport"
    assert claim["lines"][0]["expense_date"] == "2026-11-20"

    del info["apply_data"]["contents"][1]["value"]["children"][0]["list"][1]  # no amount
    document.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    bad = finoa(
        "mapping", "preview", "wecom", "expense_claim", str(document), data_dir=tmp_path / "data"
    )
    assert bad.returncode == 2 and "lines[0].amount" in bad.stdout
