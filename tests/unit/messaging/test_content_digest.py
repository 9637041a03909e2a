"""Content digests: one amount, however it is written; digests stored by earlier releases
still recognise the content they were taken of."""

from __future__ import annotations

from typing import Any

from finoa.messaging.inbox import content_digest, same_content
from finoa.schemas import ClaimSubmission
from finoa.security.audit import digest


def submission(amount: Any, tax: Any = "0") -> ClaimSubmission:
    return ClaimSubmission.model_validate(
        {
            "external_id": "DOC-1",
            "applicant_id": "E0011",
            "department_id": "D02",
            "title": "客户拜访",
            "lines": [
                {"category": "travel", "amount": amount, "tax": tax, "expense_date": "2026-11-03"}
            ],
        }
    )


def test_every_writing_of_one_amount_has_one_digest() -> None:
    writings = ["100", "100.0", "100.00", 100, 100.0]
    assert len({content_digest(submission(w)) for w in writings}) == 1
    assert content_digest(submission("100.01")) != content_digest(submission("100"))
    assert content_digest(submission("100", tax="6")) != content_digest(submission("100"))


def test_the_json_body_keeps_the_amount_as_written() -> None:
    dumped = submission("100.0").model_dump(mode="json")
    assert dumped["lines"][0]["amount"] == "100.0"


def test_a_digest_stored_before_canonical_amounts_still_matches_its_content() -> None:
    legacy = digest(submission("100.0").model_dump(mode="json"))
    assert legacy != content_digest(submission("100.0"))
    assert same_content(legacy, submission("100.0"))
    assert not same_content(legacy, submission("100.01"))
    assert same_content(content_digest(submission("100.0")), submission(100))
