"""A reused message id, Idempotency-Key or business key answers as a duplicate only when the
content is the same; with other content it is refused (409 naming the key) and nothing
changes. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from support.claims import decide_by_message, one_line_claim, row_counts

from finoa.domain.errors import Conflict
from finoa.schemas import ClaimSubmission
from finoa.services.claims import submit_claim
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.store.tables import approval_tasks, audit_events, claims, inbox, outbox

SOURCE = "oa"


def claim(external_id: str, amount: str = "420.00", **overrides: Any) -> ClaimSubmission:
    return one_line_claim(
        external_id,
        applicant_id="E0011",
        department_id="D02",
        category="transport",
        amount=amount,
        title="市内交通 taxi",
        **overrides,
    )


def counts(hub: Hub) -> dict[str, int]:
    return row_counts(hub, (claims, approval_tasks, outbox, audit_events, inbox))


def test_same_message_id_with_other_content_is_refused_naming_message_id(hub: Hub) -> None:
    first = submit_claim(hub, claim("IDEM-1"), source=SOURCE, actor="t", message_id="m-1")
    before = counts(hub)
    with pytest.raises(Conflict) as refused:
        submit_claim(
            hub, claim("IDEM-1", amount="999.00"), source=SOURCE, actor="t", message_id="m-1"
        )
    assert refused.value.status == 409
    assert refused.value.field == "message_id"
    assert "m-1" in refused.value.message and "different content" in refused.value.message
    assert counts(hub) == before
    assert get_claim(hub.db, first.claim_id).total_fen == 42000


def test_same_idempotency_key_with_other_content_is_refused_naming_the_header(hub: Hub) -> None:
    def post(body: ClaimSubmission) -> Any:
        return submit_claim(
            hub, body, source="client-1", actor="t", message_id="k-1", key_field="Idempotency-Key"
        )

    # REST claims often carry no external id: the key alone identifies the request
    first = post(claim("IDEM-2").model_copy(update={"external_id": None}))
    again = post(claim("IDEM-2").model_copy(update={"external_id": None}))
    assert again.duplicate and again.claim_id == first.claim_id
    before = counts(hub)
    with pytest.raises(Conflict) as refused:
        post(claim("IDEM-2", amount="1.00").model_copy(update={"external_id": None}))
    assert refused.value.field == "Idempotency-Key"
    assert counts(hub) == before


def test_whitespace_and_key_order_do_not_make_content_different(hub: Hub) -> None:
    body = claim("IDEM-3").model_dump(mode="json")
    compact = orjson.dumps(body)
    reordered = orjson.dumps(dict(reversed(list(body.items()))), option=orjson.OPT_INDENT_2)
    assert compact != reordered
    first = submit_claim(
        hub,
        ClaimSubmission.model_validate_json(compact),
        source=SOURCE,
        actor="t",
        message_id="m-3",
    )
    before = counts(hub)
    for message_id in ("m-3", "m-3-resync"):
        again = submit_claim(
            hub,
            ClaimSubmission.model_validate_json(reordered),
            source=SOURCE,
            actor="t",
            message_id=message_id,
        )
        assert again.duplicate and again.claim_id == first.claim_id
    assert counts(hub) == {**before, "inbox": before["inbox"] + 1}


@pytest.mark.parametrize("message_id", [None, "m-4b"])
def test_same_business_key_with_other_content_is_refused_naming_version(
    hub: Hub, message_id: str | None
) -> None:
    first = submit_claim(hub, claim("IDEM-4"), source=SOURCE, actor="t", message_id="m-4a")
    before = counts(hub)
    with pytest.raises(Conflict) as refused:
        submit_claim(
            hub, claim("IDEM-4", amount="421.00"), source=SOURCE, actor="t", message_id=message_id
        )
    assert refused.value.field == "version"
    assert first.claim_id in refused.value.message
    assert "current version is 1" in refused.value.message
    assert counts(hub) == before


def test_same_decision_message_id_with_other_content_is_refused(hub: Hub) -> None:
    claim_id = submit_claim(hub, claim("IDEM-5"), source=SOURCE, actor="t").claim_id
    (task,) = get_claim(hub.db, claim_id).tasks
    first = decide_by_message(hub, task, True, "同意", "d-5")
    assert first.claim_status == "approved" and not first.duplicate
    before = counts(hub)
    again = decide_by_message(hub, task, True, "同意", "d-5")
    assert again.duplicate
    for approve, comment in ((True, "changed comment"), (False, "不同意 no")):
        with pytest.raises(Conflict) as refused:
            decide_by_message(hub, task, approve, comment, "d-5")
        assert refused.value.field == "message_id"
        assert "different content" in refused.value.message
    assert counts(hub) == before
