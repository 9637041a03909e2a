"""`finoa mapping preview` as a real process."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import finoa

FIXTURE = Path(__file__).parents[2] / "fixtures" / "dingtalk" / "instance_expense_claim.json"


def test_preview_prints_the_canonical_claim_of_a_gbk_document(tmp_path: Path) -> None:
    document = tmp_path / "instance.json"
    document.write_bytes(FIXTURE.read_text(encoding="utf-8").encode("gb18030"))
    done = finoa(
        "mapping", "preview", "dingtalk", "expense_claim", str(document), data_dir=tmp_path / "data"
    )
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition("\n")
    assert head == "# dingtalk/expense_claim version 1 (default)"
    claim = json.loads(body)
    assert claim["department_id"] == "D02" and claim["lines"][0]["amount"] == "1234.50"


def test_preview_lists_every_field_error_with_its_path(tmp_path: Path) -> None:
    document = json.loads(FIXTURE.read_text(encoding="utf-8"))
    document["originatorUserId"] = "E0404"
    document["formComponentValues"] = [
        c for c in document["formComponentValues"] if c["name"] != "费用明细"
    ]
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    done = finoa(
        "mapping", "preview", "dingtalk", "expense_claim", str(path), data_dir=tmp_path / "data"
    )
    assert done.returncode == 2
    errors = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith("error: applicant_id: 'E0404' is not in the code table employees")
    assert errors[1].startswith("error: lines: is required")
    assert len(errors) == 2


def test_preview_of_an_unknown_mapping_or_a_bad_file_is_one_clear_failure(tmp_path: Path) -> None:
    done = finoa(
        "mapping", "preview", "dingtalk", "invoice", str(FIXTURE), data_dir=tmp_path / "data"
    )
    assert done.returncode == 3
    assert "no such mapping" in done.stderr and "fix:" in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    done = finoa(
        "mapping", "preview", "dingtalk", "expense_claim", str(bad), data_dir=tmp_path / "data"
    )
    assert done.returncode == 2 and "is not JSON" in done.stderr
