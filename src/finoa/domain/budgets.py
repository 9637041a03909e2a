"""Budget control (预算控制): which budgets a claim counts against, and the rules of a budget.

A budget belongs to a dimension node (an org unit, a cost center or a project), an expense
category (or every category) and a period: a year (`2026`), a quarter (`2026-Q4`) or a month
(`2026-12`). Its amount is in fen. Claims occupy it while they are approved, consume it once
their voucher is posted, and give it back when they are rejected, withdrawn or reversed:

    balance = amount - consumed - occupied

A claim line counts against every budget whose node is the claim's department or one of its
parent units (roll-up along the org tree), its cost center or its project; whose category is
the line's or `all`; and whose period contains the day the claim was submitted, in company
time. Pure: this module touches no database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from finoa.domain.claim import ExpenseCategory
from finoa.domain.errors import Conflict, InvalidInput

ALL_CATEGORIES = "all"
PERIOD_PATTERN = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|(0[1-9]|1[0-2])))?$")


class BudgetMode(StrEnum):
    """What happens when a claim would take a budget below zero."""

    BLOCK = "block"  # the submission is refused
    WARN = "warn"  # accepted and flagged (`budget_status: exceeded`, DMN input budget_exceeded)
    NONE = "none"  # accepted; the budget only records what was spent


class NodeKind(StrEnum):
    """The dimension a budget is set on."""

    ORG_UNIT = "org_unit"
    COST_CENTER = "cost_center"
    PROJECT = "project"


class Movement(StrEnum):
    """A line of a budget's ledger; the budget row always equals the sum of its lines."""

    ALLOCATE = "allocate"  # the amount a budget was created with
    OCCUPY = "occupy"  # a submitted claim holds part of the balance
    RELEASE = "release"  # rejected, withdrawn, returned or terminated: the hold is given back
    CONSUME = "consume"  # the claim's voucher was posted: occupied becomes consumed
    REVERSE = "reverse"  # the voucher was reversed (红冲): consumed is given back
    ADJUST = "adjust"  # an approved change of the amount
    TRANSFER = "transfer"  # an approved move of amount between two budgets


class BudgetStatus(StrEnum):
    """What the budgets said about a claim when it was submitted (NULL: no budget applies)."""

    WITHIN = "within"
    EXCEEDED = "exceeded"  # a `warn` budget went below zero


def parse_period(text: str) -> str:
    """A budget period as given (`2026`, `2026-Q4`, `2026-12`), or ValueError."""
    value = text.strip().upper()
    if PERIOD_PATTERN.match(value) is None:
        raise ValueError(f"{text!r} is not a period: a year (2026), quarter (2026-Q4) or month")
    return value


def periods_containing(day: date) -> tuple[str, str, str]:
    """The year, quarter and month that contain `day`."""
    quarter = (day.month - 1) // 3 + 1
    return (f"{day.year}", f"{day.year}-Q{quarter}", f"{day.year}-{day.month:02}")


def parse_category(text: str | None) -> str:
    """An expense category, or `all` for an empty value; ValueError for anything else."""
    value = (text or "").strip().lower() or ALL_CATEGORIES
    if value != ALL_CATEGORIES and value not in ExpenseCategory.__members__.values():
        allowed = ", ".join([ALL_CATEGORIES, *(c.value for c in ExpenseCategory)])
        raise ValueError(f"{text!r} is not a category; one of {allowed}")
    return value


@dataclass(frozen=True, slots=True)
class BudgetKey:
    """What identifies a budget: node, category and period."""

    node_kind: str
    node_id: str
    category: str
    period: str

    def label(self) -> str:
        return f"{self.node_kind} {self.node_id} / {self.category} / {self.period}"


def org_chain(unit: str, parents: Mapping[str, str | None]) -> list[str]:
    """`unit` and every unit above it, nearest first (a cycle in the data ends the walk)."""
    chain: list[str] = []
    current: str | None = unit
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    return chain


@dataclass(frozen=True, slots=True)
class ClaimScope:
    """The dimension nodes of a claim: its department (and the units above), cost center
    and project."""

    department_id: str
    cost_center_id: str | None
    project_id: str | None


class BudgetIndex:
    """The budgets that exist, by key, for finding a claim's budgets without a query.

    Built from the budget keys and the org tree of one master-data snapshot; the roll-up
    chain of each department is worked out once and kept.
    """

    def __init__(self, budgets: Mapping[BudgetKey, int], parents: Mapping[str, str | None]):
        self._by_key = dict(budgets)
        self._parents = parents
        self._chains: dict[str, tuple[str, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def _nodes(self, scope: ClaimScope) -> Iterator[tuple[str, str]]:
        chain = self._chains.get(scope.department_id)
        if chain is None:
            chain = self._chains[scope.department_id] = tuple(
                org_chain(scope.department_id, self._parents)
            )
        for unit in chain:
            yield NodeKind.ORG_UNIT.value, unit
        if scope.cost_center_id:
            yield NodeKind.COST_CENTER.value, scope.cost_center_id
        if scope.project_id:
            yield NodeKind.PROJECT.value, scope.project_id

    def amounts(self, scope: ClaimScope, day: date, lines: list[tuple[str, int]]) -> dict[int, int]:
        """How much of each budget (by id) a claim's `(category, amount_fen)` lines take,
        the claim being submitted on `day` (company time)."""
        taken: dict[int, int] = {}
        if not self._by_key:
            return taken
        periods = periods_containing(day)
        nodes = list(self._nodes(scope))
        for category, amount in lines:
            for kind, node in nodes:
                for cat in (category, ALL_CATEGORIES):
                    for period in periods:
                        budget_id = self._by_key.get(BudgetKey(kind, node, cat, period))
                        if budget_id is not None:
                            taken[budget_id] = taken.get(budget_id, 0) + amount
        return taken


class BudgetExceeded(Conflict):
    """A `block` budget has less left than the claim needs; nothing was recorded."""

    title = "Budget exceeded"

    def __init__(self, budget_id: int, key: BudgetKey, balance_fen: int, needed_fen: int):
        shortfall = needed_fen - balance_fen
        super().__init__(
            "budget",
            f"budget {budget_id} ({key.label()}) has {balance_fen} fen left, the claim needs "
            f"{needed_fen} fen: short by {shortfall} fen",
        )
        self.extensions = {
            "budget": {"id": budget_id, **_key_members(key)},
            "balance_fen": balance_fen,
            "needed_fen": needed_fen,
            "shortfall_fen": shortfall,
        }


def _key_members(key: BudgetKey) -> dict[str, str]:
    return {
        "node_kind": key.node_kind,
        "node_id": key.node_id,
        "category": key.category,
        "period": key.period,
    }


@dataclass(frozen=True)
class RowError:
    """One refused cell of an import file: its row (1 is the header) and column."""

    row: int
    column: str
    message: str


class BudgetImportRefused(InvalidInput):
    """An import file with bad rows; none of its rows was imported."""

    title = "Budget import refused"

    def __init__(self, errors: list[RowError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"rows[{first.row}].{first.column}",
            f"row {first.row}, column {first.column}: {first.message}{more}; nothing imported",
        )
        self.row_errors = errors
        self.extensions = {
            "errors": [
                {
                    "field": f"rows[{e.row}].{e.column}",
                    "message": f"row {e.row}, column {e.column}: {e.message}",
                }
                for e in errors
            ]
        }
