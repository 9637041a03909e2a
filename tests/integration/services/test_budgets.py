"""Budget control (F8) through the real use cases, on SQLite and PostgreSQL: claims occupy,
release, consume and reverse budgets; block / warn / none; roll-up along the org tree;
periods in company time; import errors; maker-checker changes; the execution report."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select
from support.budgets import (
    SUBMITTED_AT,
    approve_all,
    budget,
    load_budgets,
    meeting_claim,
    post,
    reject,
    reverse,
    submit,
)
from support.claims import row_counts

from finoa.domain.budgets import BudgetExceeded, BudgetImportRefused
from finoa.domain.errors import Conflict, DomainError, Forbidden, InvalidInput
from finoa.services.budgets import (
    BudgetChangeIn,
    BudgetFilter,
    budget_report,
    decide_change,
    import_budget_content,
    ledger_mismatches,
    list_budgets,
    request_change,
)
from finoa.services.context import Hub
from finoa.services.queries import get_claim
from finoa.store.tables import audit_events, budget_movements, claims, outbox, workflow_instances
from finoa.workflow import ApprovalEngine
from finoa.workflow.serialization import load_state
from finoa.workflow.specs import DEFAULT_DMN


@pytest.fixture
def hub(hub: Hub) -> Iterator[Hub]:
    """The sample company, every unit of work at SUBMITTED_AT."""
    hub.db.clock = lambda: SUBMITTED_AT
    yield hub


def movements(hub: Hub, claim_id: str) -> list[tuple[int, str, int, int]]:
    with hub.db.engine.connect() as conn:
        rows = conn.execute(
            select(
                budget_movements.c.budget_id,
                budget_movements.c.kind,
                budget_movements.c.occupied_delta_fen,
                budget_movements.c.consumed_delta_fen,
            )
            .where(budget_movements.c.claim_id == claim_id)
            .order_by(budget_movements.c.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_without_budgets_a_claim_records_nothing_about_them(hub: Hub) -> None:
    result = submit(hub, meeting_claim("NB-1", "880.00"))
    assert result.claim is not None and result.claim.budget_status is None
    assert get_claim(hub.db, result.claim_id).budget_status is None
    assert row_counts(hub, [budget_movements]) == {"budget_movements": 0}


def test_a_claim_occupies_its_department_and_every_unit_above_it(hub: Hub) -> None:
    """Marketing (D04) has 10,000 元 for 2026; the executive office (D00) above it has 3,000 元
    for meetings in Q4; projects and cost centers the claim does not name are not touched."""
    ids = load_budgets(
        hub,
        "org_unit,D04,,2026,10000.00,block\n"
        "org_unit,D00,meeting,2026-Q4,3000,warn\n"
        "org_unit,D00,travel,2026-Q4,3000,block\n"
        "org_unit,D02,,2026,500,block\n"
        "project,P001,,2026,1,block\n",
    ).budget_ids
    d04, d00_meeting, d00_travel, d02, project = ids
    result = submit(hub, meeting_claim("RU-1", "880.00"))
    assert result.claim is not None and result.claim.budget_status == "within"
    assert budget(hub, d04).occupied_fen == 88_000
    assert budget(hub, d04).balance_fen == 1_000_000 - 88_000
    assert budget(hub, d00_meeting).occupied_fen == 88_000
    for untouched in (d00_travel, d02, project):
        assert budget(hub, untouched).occupied_fen == 0
    assert movements(hub, result.claim_id) == [
        (d04, "occupy", 88_000, 0),
        (d00_meeting, "occupy", 88_000, 0),
    ]
    assert ledger_mismatches(hub.db) == []


def test_block_refuses_a_claim_above_the_balance_and_writes_nothing(hub: Hub) -> None:
    (d04,) = load_budgets(hub, "org_unit,D04,meeting,2026-11,1000.00,block\n").budget_ids
    first = submit(hub, meeting_claim("BL-1", "880.00"))
    tables = [claims, budget_movements, outbox, audit_events, workflow_instances]
    before = row_counts(hub, tables)
    with pytest.raises(BudgetExceeded) as refused:
        submit(hub, meeting_claim("BL-2", "120.01"))
    assert refused.value.field == "budget"
    assert refused.value.status == 409
    assert refused.value.extensions == {
        "budget": {
            "id": d04,
            "node_kind": "org_unit",
            "node_id": "D04",
            "category": "meeting",
            "period": "2026-11",
        },
        "balance_fen": 12_000,
        "needed_fen": 12_001,
        "shortfall_fen": 1,
    }
    assert row_counts(hub, tables) == before
    assert budget(hub, d04).occupied_fen == 88_000
    exactly = submit(hub, meeting_claim("BL-3", "120.00"))  # the balance to the fen fits
    assert exactly.claim is not None and exactly.claim.budget_status == "within"
    assert budget(hub, d04).balance_fen == 0
    assert first.claim_id != exactly.claim_id


def test_warn_accepts_flags_the_claim_and_tells_the_approval_process(hub: Hub) -> None:
    (d04,) = load_budgets(hub, "org_unit,D04,,2026,500.00,warn\n").budget_ids
    within = submit(hub, meeting_claim("WA-1", "400.00"))
    over = submit(hub, meeting_claim("WA-2", "400.00"))
    assert within.claim is not None and within.claim.budget_status == "within"
    assert over.claim is not None and over.claim.budget_status == "exceeded"
    assert get_claim(hub.db, over.claim_id).budget_status == "exceeded"
    assert budget(hub, d04).balance_fen == -30_000
    with hub.db.engine.connect() as conn:
        rows = conn.execute(select(workflow_instances.c.claim_id, workflow_instances.c.state))
        states = {row.claim_id: row.state for row in rows}
    facts = {
        cid: load_state(states[cid])[0].task_tree.data for cid in (within.claim_id, over.claim_id)
    }
    assert facts[within.claim_id]["budget_exceeded"] is False
    assert facts[over.claim_id]["budget_exceeded"] is True


def test_none_only_records_what_is_spent(hub: Hub) -> None:
    (d04,) = load_budgets(hub, "org_unit,D04,,2026,100.00,none\n").budget_ids
    result = submit(hub, meeting_claim("NO-1", "400.00"))
    assert result.claim is not None and result.claim.budget_status == "within"
    assert budget(hub, d04).balance_fen == -30_000


def test_the_period_is_the_submission_day_in_company_time(hub: Hub) -> None:
    """17:30 UTC on 31 December 2026 is already 1 January 2027 in Shanghai."""
    y2026, y2027 = load_budgets(
        hub, "org_unit,D04,,2026,1000,block\norg_unit,D04,,2027-01,1000,block\n"
    ).budget_ids
    hub.db.clock = lambda: datetime(2026, 12, 31, 17, 30, tzinfo=UTC)
    submit(hub, meeting_claim("PE-1", "100.00", expense_date="2026-12-31"))
    assert budget(hub, y2026).occupied_fen == 0
    assert budget(hub, y2027).occupied_fen == 10_000


def test_a_claims_life_moves_the_budget_and_the_row_always_equals_the_ledger(hub: Hub) -> None:
    """Gao Yuan's 880 元 claim occupies the budget, is approved and posted (consumed), then
    reversed (红冲: given back). A second claim is rejected, a third replaced by a new version
    of its document: both give back what they held."""
    (d04,) = load_budgets(hub, "org_unit,D04,,2026,10000,block\n").budget_ids
    posted = submit(hub, meeting_claim("LI-1", "880.00")).claim_id
    assert approve_all(hub, posted) == "approved"
    assert (budget(hub, d04).occupied_fen, budget(hub, d04).consumed_fen) == (88_000, 0)
    post(hub, posted)
    assert (budget(hub, d04).occupied_fen, budget(hub, d04).consumed_fen) == (0, 88_000)
    post(hub, posted)  # a replayed settlement changes nothing
    assert budget(hub, d04).consumed_fen == 88_000
    reverse(hub, posted)
    assert (budget(hub, d04).occupied_fen, budget(hub, d04).consumed_fen) == (0, 0)
    assert [m[1] for m in movements(hub, posted)] == ["occupy", "consume", "reverse"]

    rejected = submit(hub, meeting_claim("LI-2", "300.00")).claim_id
    reject(hub, rejected)
    assert budget(hub, d04).occupied_fen == 0
    first = submit(hub, meeting_claim("LI-3", "9000.00")).claim_id
    second = submit(hub, meeting_claim("LI-3", "9500.00", version=2)).claim_id
    # the first version's hold is given back before the second takes its share: both fit
    assert get_claim(hub.db, first).status.value == "withdrawn"
    assert budget(hub, d04).occupied_fen == 950_000
    assert [m[1] for m in movements(hub, first)] == ["occupy", "release"]
    assert movements(hub, second) == [(d04, "occupy", 950_000, 0)]
    assert ledger_mismatches(hub.db) == []


def test_a_refused_new_version_leaves_the_open_claim_as_it_was(hub: Hub) -> None:
    (d04,) = load_budgets(hub, "org_unit,D04,,2026,1000,block\n").budget_ids
    first = submit(hub, meeting_claim("NV-1", "800.00")).claim_id
    with pytest.raises(BudgetExceeded):
        submit(hub, meeting_claim("NV-1", "1000.01", version=2))
    assert get_claim(hub.db, first).status.value == "in_approval"
    assert budget(hub, d04).occupied_fen == 80_000


def test_an_import_names_every_bad_cell_and_imports_nothing(hub: Hub) -> None:
    rows = (
        "org_unit,D04,,2026,1000,block\n"  # row 2: good
        "team,D04,,2026,1000,block\n"  # row 3: node_kind
        "org_unit,D99,snacks,2026-13,12.345,strict\n"  # row 4: five bad cells
        "cost_center,CC01,,2026-Q4,-5,\n"  # row 5: amount
        "\n"  # blank lines are skipped
        "org_unit,D04,,2026,1000,block\n"  # row 7: the same budget as row 2
    )
    with pytest.raises(BudgetImportRefused) as refused:
        load_budgets(hub, rows)
    cells = [(e.row, e.column) for e in refused.value.row_errors]
    assert cells == [
        (3, "node_kind"),
        (4, "amount"),
        (4, "category"),
        (4, "mode"),
        (4, "node_id"),
        (4, "period"),
        (5, "amount"),
        (7, "period"),
    ]
    assert refused.value.field == "rows[3].node_kind"
    assert "row 7, column period: the same budget as row 2" in [
        e["message"] for e in refused.value.extensions["errors"]
    ]
    assert list_budgets(hub.db) == []


def test_an_import_needs_its_columns(hub: Hub) -> None:
    with pytest.raises(BudgetImportRefused) as refused:
        load_budgets(hub, "D04,2026,1000\n", header="node_id,period,amount,owner\n")
    assert [(e.row, e.column) for e in refused.value.row_errors] == [
        (1, "owner"),
        (1, "node_kind"),
    ]
    with pytest.raises(InvalidInput, match="file: budgets.txt: give a .csv or .xlsx file"):
        import_budget_content(
            hub.db, hub.masterdata.get(), "budgets.txt", b"", default_mode="block", actor="t"
        )
    with pytest.raises(InvalidInput, match="file: not a readable Excel workbook"):
        import_budget_content(
            hub.db, hub.masterdata.get(), "b.xlsx", b"not a zip", default_mode="block", actor="t"
        )


def test_an_excel_import_and_its_repetition(hub: Hub) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["node_kind", "node_id", "category", "period", "amount", "mode"])
    sheet.append(["org_unit", "D04", None, "2026", 120000.5, "warn"])
    sheet.append(["cost_center", "CC02", "travel", "2026-q4", 8000, None])
    sheet.append(["project", "P001", "all", 2026, "999.99", "none"])
    content = BytesIO()
    book.save(content)

    def run() -> list[int]:
        result = import_budget_content(
            hub.db,
            hub.masterdata.get(),
            "预算.xlsx",
            content.getvalue(),
            default_mode="block",
            actor="t",
        )
        return result.budget_ids

    ids = run()
    assert [
        (b.node_kind.value, b.node_id, b.category, b.period, b.mode.value, b.amount_fen)
        for b in list_budgets(hub.db)
    ] == [
        ("org_unit", "D04", "all", "2026", "warn", 12_000_050),
        ("cost_center", "CC02", "travel", "2026-Q4", "block", 800_000),
        ("project", "P001", "all", "2026", "none", 99_999),
    ]
    assert run() == ids  # the same file again: unchanged
    with pytest.raises(BudgetImportRefused, match="an amount changes by an adjustment request"):
        load_budgets(hub, "org_unit,D04,,2026,1,warn\n")


def test_adjustments_and_transfers_need_a_second_person(hub: Hub) -> None:
    d04, d02 = load_budgets(
        hub, "org_unit,D04,,2026,1000,block\norg_unit,D02,,2026,1000,block\n"
    ).budget_ids
    submit(hub, meeting_claim("MC-1", "800.00"))
    cut = request_change(
        hub.db,
        BudgetChangeIn(kind="adjust", budget_id=d04, amount="-300.00", reason="年中调整"),
        actor="client:maker",
    )
    assert cut.status == "pending" and budget(hub, d04).amount_fen == 100_000
    with pytest.raises(Forbidden, match="cannot decide it"):
        decide_change(hub.db, cut.id, True, None, actor="client:maker")
    with pytest.raises(Conflict, match="budget .* has 20000 fen left, less than the 30000 fen"):
        decide_change(hub.db, cut.id, True, None, actor="client:checker")
    assert decide_change(hub.db, cut.id, False, "no", actor="client:checker").status == "rejected"
    with pytest.raises(Conflict, match="already rejected"):
        decide_change(hub.db, cut.id, True, None, actor="client:checker")

    move = request_change(
        hub.db,
        BudgetChangeIn(
            kind="transfer", budget_id=d02, to_budget_id=d04, amount="600", reason="调拨"
        ),
        actor="client:maker",
    )
    done = decide_change(hub.db, move.id, True, "ok", actor="client:checker")
    assert (done.status, done.decided_by) == ("approved", "client:checker")
    assert (budget(hub, d02).amount_fen, budget(hub, d04).amount_fen) == (40_000, 160_000)
    assert ledger_mismatches(hub.db) == []
    with hub.db.engine.connect() as conn:
        actions = conn.execute(
            select(audit_events.c.action, audit_events.c.actor)
            .where(audit_events.c.object_type == "budget_request")
            .order_by(audit_events.c.seq)
        ).all()
    assert [tuple(a) for a in actions] == [
        ("budget.adjust_requested", "client:maker"),
        ("budget.adjust_rejected", "client:checker"),
        ("budget.transfer_requested", "client:maker"),
        ("budget.transfer_approved", "client:checker"),
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "transfer", "budget_id": 1, "amount": "10"}, "to_budget_id"),
        ({"kind": "transfer", "budget_id": 1, "to_budget_id": 1, "amount": "10"}, "to_budget_id"),
        ({"kind": "transfer", "budget_id": 1, "to_budget_id": 2, "amount": "-1"}, "amount"),
        ({"kind": "adjust", "budget_id": 1, "amount": "0"}, "amount"),
        ({"kind": "adjust", "budget_id": 1, "to_budget_id": 2, "amount": "1"}, "to_budget_id"),
        ({"kind": "adjust", "budget_id": 1, "amount": "1.001"}, "amount"),
        ({"kind": "adjust", "budget_id": 99, "amount": "1"}, "budget_id"),
    ],
)
def test_a_bad_change_request_names_its_field(
    hub: Hub, change: dict[str, object], field: str
) -> None:
    load_budgets(hub, "org_unit,D04,,2026,1000,block\norg_unit,D02,,2026,1000,block\n")
    with pytest.raises(DomainError) as refused:
        request_change(hub.db, BudgetChangeIn.model_validate({**change, "reason": "r"}), actor="m")
    assert refused.value.field == field


def test_the_execution_report_follows_the_org_tree(hub: Hub) -> None:
    top, marketing, sales, project = load_budgets(
        hub,
        "org_unit,D00,,2026,10000,block\n"
        "org_unit,D04,,2026,4000,block\n"
        "org_unit,D02,,2026,3000,block\n"
        "project,P001,,2026,500,none\n",
    ).budget_ids
    spent = submit(hub, meeting_claim("RP-1", "1000.00")).claim_id
    approve_all(hub, spent)
    post(hub, spent)
    submit(hub, meeting_claim("RP-2", "600.00"))
    report = budget_report(hub.db, hub.masterdata.get())
    assert [(r.id, r.depth) for r in report] == [(top, 0), (sales, 1), (marketing, 1), (project, 0)]
    by_id = {r.id: r for r in report}
    assert (by_id[top].consumed_fen, by_id[top].occupied_fen) == (100_000, 60_000)
    assert by_id[top].balance_fen == 1_000_000 - 160_000
    assert by_id[top].rate == 0.16
    assert by_id[top].allocated_below_fen == 700_000  # Marketing's and Sales' own budgets
    assert by_id[marketing].rate == 0.4
    assert by_id[sales].rate == 0.0
    only_d04 = budget_report(hub.db, hub.masterdata.get(), BudgetFilter(node_id="D04"))
    assert [r.id for r in only_d04] == [marketing]


def budget_aware_dmn(directory: Path) -> Path:
    """The shipped approval levels plus a first rule: an exceeded budget brings in the
    finance director, whatever the amount."""
    text = DEFAULT_DMN.read_text(encoding="utf-8")
    text = text.replace(
        '      <output id="output_needs_finance_director"',
        '      <input id="input_budget_exceeded" label="Budget exceeded">\n'
        '        <inputExpression id="input_budget_exceeded_expression" typeRef="boolean">\n'
        "          <text>budget_exceeded</text>\n"
        "        </inputExpression>\n"
        "      </input>\n"
        '      <output id="output_needs_finance_director"',
        1,
    )
    entries = itertools.count()
    text = re.sub(
        r"(</inputEntry>)(\s*<outputEntry)",
        lambda m: f'{m[1]}<inputEntry id="any_{next(entries)}"><text>-</text></inputEntry>{m[2]}',
        text,
    )
    others = text.count("<input id=") - 1  # every input but the flag: any value
    first_rule = (
        '<rule id="rule_budget_exceeded">'
        + "".join(
            f'<inputEntry id="rule_budget_exceeded_{i}"><text>-</text></inputEntry>'
            for i in range(others)
        )
        + '<inputEntry id="rule_budget_exceeded_flag"><text>true</text></inputEntry>'
        '<outputEntry id="rule_budget_exceeded_fd"><text>true</text></outputEntry>'
        '<outputEntry id="rule_budget_exceeded_cfo"><text>false</text></outputEntry>'
        "</rule>\n      "
    )
    text = text.replace(
        '<rule id="rule_manager_only">', first_rule + '<rule id="rule_manager_only">', 1
    )
    path = directory / "budget_levels.dmn"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_decision_table_can_route_an_exceeded_claim_to_another_approver(
    hub: Hub, tmp_path: Path
) -> None:
    """Marketing's warn budget has 500 元 left. A second 400 元 meeting claim goes over it, and
    the company's table sends such claims to the finance director (赵敏, E0003) as well."""
    hub.engine = ApprovalEngine(dmn_path=budget_aware_dmn(tmp_path))
    load_budgets(hub, "org_unit,D04,,2026,500.00,warn\n")
    within = submit(hub, meeting_claim("DM-1", "400.00")).claim_id
    over = submit(hub, meeting_claim("DM-2", "400.00")).claim_id
    assert approve_all(hub, within) == "approved"
    assert approve_all(hub, over) == "approved"
    roles = {cid: sorted(t.role for t in get_claim(hub.db, cid).tasks) for cid in (within, over)}
    assert roles == {within: ["manager"], over: ["finance_director", "manager"]}
