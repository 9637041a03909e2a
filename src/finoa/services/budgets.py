"""Budget control (F8): claims occupy, release, consume and reverse budgets; budgets are
imported, changed through a second person's approval, and reported on.

On the hot path a submission finds its budgets in a per-process `BudgetCache` (no query when
no budget applies) and takes its share with one conditional UPDATE per budget:

    UPDATE budgets SET occupied_fen = occupied_fen + :x
     WHERE id = :id AND (mode <> 'block' OR amount_fen - consumed_fen - occupied_fen >= :x)

On PostgreSQL a concurrent writer of the same row waits for the row lock and then checks the
condition again against the committed row, so two claims can never both take the last of a
`block` budget. A claim touches its budgets in ascending id order. Every change of a budget's
totals is written to `budget_movements` in the same transaction, so the row always equals
the sum of its ledger (`ledger_mismatches` checks it).
"""

from __future__ import annotations

import csv
import io
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, func, insert, or_, select, update

from finoa.domain.budgets import (
    BudgetExceeded,
    BudgetImportRefused,
    BudgetIndex,
    BudgetKey,
    BudgetMode,
    BudgetStatus,
    ClaimScope,
    Movement,
    NodeKind,
    RowError,
    org_chain,
    parse_category,
    parse_period,
)
from finoa.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from finoa.domain.money import yuan_to_fen
from finoa.domain.periods import company_date
from finoa.services.directory import MasterDataSnapshot
from finoa.store import repositories as repo
from finoa.store.prepared import Prepared
from finoa.store.repositories import LINES_OF_CLAIM
from finoa.store.tables import budget_movements, budget_requests, budgets, claims
from finoa.store.uow import Database, UnitOfWork

if TYPE_CHECKING:
    from finoa.services.context import Hub

balance_left = budgets.c.amount_fen - budgets.c.consumed_fen - budgets.c.occupied_fen
OCCUPY = (
    update(budgets)
    .where(
        budgets.c.id == bindparam("b_id"),
        or_(budgets.c.mode != BudgetMode.BLOCK.value, balance_left >= bindparam("b_amount")),
    )
    .values(
        occupied_fen=budgets.c.occupied_fen + bindparam("b_amount"), updated_at=bindparam("b_now")
    )
    .returning(budgets.c.mode, balance_left.label("balance"))
)
MOVE = update(budgets).where(budgets.c.id == bindparam("b_id"))
INSERT_MOVEMENTS = Prepared(insert(budget_movements))
HOLDINGS_OF_CLAIM = Prepared(
    select(
        budget_movements.c.budget_id,
        func.sum(budget_movements.c.occupied_delta_fen).label("occupied"),
        func.sum(budget_movements.c.consumed_delta_fen).label("consumed"),
    )
    .where(budget_movements.c.claim_id == bindparam("claim_id"))
    .group_by(budget_movements.c.budget_id)
    .order_by(budget_movements.c.budget_id)
)
KEYS = select(
    budgets.c.id, budgets.c.node_kind, budgets.c.node_id, budgets.c.category, budgets.c.period
)
IMPORT_COLUMNS = ("node_kind", "node_id", "category", "period", "amount", "mode")
REQUIRED_COLUMNS = ("node_kind", "node_id", "period", "amount")


class BudgetCache:
    """Which budgets exist, per process, as a `BudgetIndex` for the master-data snapshot in
    use. Reloaded after `ttl_seconds` or when this process changed the budgets; a budget
    created by another process applies within that time. Only the keys are kept here: the
    amounts and modes are read by the UPDATE that takes a claim's share."""

    def __init__(self, db: Database, ttl_seconds: float = 5.0) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._keys: dict[BudgetKey, int] | None = None
        self._loaded_at = 0.0
        self._index: tuple[MasterDataSnapshot, BudgetIndex] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._keys, self._index = None, None

    def index(self, people: MasterDataSnapshot) -> BudgetIndex:
        built = self._index
        if (
            built is not None
            and built[0] is people
            and time.monotonic() - self._loaded_at < self._ttl
        ):
            return built[1]
        with self._lock:
            if self._keys is None or time.monotonic() - self._loaded_at >= self._ttl:
                with self._db.engine.connect() as conn:
                    self._keys = {
                        BudgetKey(r.node_kind, r.node_id, r.category, r.period): r.id
                        for r in conn.execute(KEYS)
                    }
                self._loaded_at = time.monotonic()
                self._index = None
            if self._index is None or self._index[0] is not people:
                self._index = (people, BudgetIndex(self._keys, people.org_parents))
            return self._index[1]


# -- the claim's side: occupy, release, consume, reverse --------------------------------------


def occupy_claim_budgets(
    hub: Hub, uow: UnitOfWork, claim: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]
) -> str | None:
    """Take a new claim's lines from every budget they count against, in the claim's own
    transaction. Returns the claim's `budget_status`: None when no budget applies,
    `exceeded` when a `warn` budget went below zero, else `within`. A `block` budget without
    room raises `BudgetExceeded` (409, naming `budget`) and the caller's step is undone."""
    index = hub.budgets.index(hub.masterdata.get())
    if not index:
        return None
    day = company_date(claim["submitted_at"], hub.settings.company_zone)
    scope = ClaimScope(claim["department_id"], claim["cost_center_id"], claim["project_id"])
    taken = index.amounts(scope, day, [(line["category"], line["amount_fen"]) for line in lines])
    if not taken:
        return None
    conn = uow.conn
    status = BudgetStatus.WITHIN
    movements = []
    for budget_id in uow.take_in_order("budgets", taken):  # ascending: no deadlocks
        amount = taken[budget_id]
        row = conn.execute(
            OCCUPY, {"b_id": budget_id, "b_amount": amount, "b_now": uow.now}
        ).first()
        if row is None:
            current = _budget(conn, budget_id)
            if current is None:
                continue  # removed since the cache was loaded
            raise BudgetExceeded(budget_id, _key(current), _balance(current), amount)
        if row.mode == BudgetMode.WARN.value and row.balance < 0:
            status = BudgetStatus.EXCEEDED
        movements.append(_movement(uow, budget_id, Movement.OCCUPY, claim["id"], occupied=amount))
    if not movements:
        return None
    INSERT_MOVEMENTS.run_many(conn, movements)
    return status.value


def reoccupy_claim_budgets(hub: Hub, uow: UnitOfWork, claim: Any) -> None:
    """A returned claim is resubmitted: its lines take their budgets again, as on its first
    submission (same date, same scope). Raises `BudgetExceeded` when a `block` budget has no
    room left for it now; its `budget_status` follows what the budgets say now."""
    lines = [
        {"category": line.category, "amount_fen": int(line.amount_fen)}
        for line in LINES_OF_CLAIM.all(uow.conn, {"claim_id": claim.id})
    ]
    record = dict(claim._mapping)
    if record["submitted_at"].tzinfo is None:  # SQLite keeps UTC without its zone
        record["submitted_at"] = record["submitted_at"].replace(tzinfo=UTC)
    status = occupy_claim_budgets(hub, uow, record, lines)
    if status != claim.budget_status:
        uow.conn.execute(update(claims).where(claims.c.id == claim.id).values(budget_status=status))


def release_claim_budgets(uow: UnitOfWork, claim: Any) -> None:
    """Give back what a claim occupies (rejected, withdrawn, returned, terminated). A claim
    that holds nothing, or was released already, changes nothing."""
    _move_holdings(uow, claim, Movement.RELEASE)


def consume_claim_budgets(uow: UnitOfWork, claim: Any) -> None:
    """The claim's voucher was posted: what it occupies becomes consumed."""
    _move_holdings(uow, claim, Movement.CONSUME)


def reverse_claim_budgets(uow: UnitOfWork, claim_id: str) -> None:
    """The claim's voucher was reversed (红冲) in the ERP: what it consumed is given back."""
    claim = repo.claim_row(uow.conn, claim_id)
    if claim is not None:
        _move_holdings(uow, claim, Movement.REVERSE)


def _move_holdings(uow: UnitOfWork, claim: Any, kind: Movement) -> None:
    if claim.budget_status is None:
        return  # no budget applied when it was submitted: nothing to look up
    conn = uow.conn
    changes = {}
    for held in HOLDINGS_OF_CLAIM.all(conn, {"claim_id": claim.id}):
        if kind is Movement.REVERSE:
            occupied, consumed = 0, -int(held.consumed)
        else:
            occupied = -int(held.occupied)
            consumed = int(held.occupied) if kind is Movement.CONSUME else 0
        if occupied or consumed:
            changes[held.budget_id] = (occupied, consumed)
    movements = []
    for budget_id in uow.take_in_order("budgets", changes):  # ascending: no deadlocks
        occupied, consumed = changes[budget_id]
        conn.execute(
            MOVE.values(
                occupied_fen=budgets.c.occupied_fen + occupied,
                consumed_fen=budgets.c.consumed_fen + consumed,
                updated_at=uow.now,
            ),
            {"b_id": budget_id},
        )
        movements.append(
            _movement(uow, budget_id, kind, claim.id, occupied=occupied, consumed=consumed)
        )
    if movements:
        INSERT_MOVEMENTS.run_many(conn, movements)


def _movement(
    uow: UnitOfWork,
    budget_id: int,
    kind: Movement,
    claim_id: str | None = None,
    *,
    request_id: str | None = None,
    amount: int = 0,
    occupied: int = 0,
    consumed: int = 0,
) -> dict[str, Any]:
    return {
        "budget_id": budget_id,
        "kind": kind.value,
        "claim_id": claim_id,
        "request_id": request_id,
        "amount_delta_fen": amount,
        "occupied_delta_fen": occupied,
        "consumed_delta_fen": consumed,
        "at": uow.now,
        "actor": uow.actor,
    }


def _budget(conn: Connection, budget_id: int, *, lock: bool = False) -> Any:
    stmt = select(budgets).where(budgets.c.id == budget_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def _key(row: Any) -> BudgetKey:
    return BudgetKey(row.node_kind, row.node_id, row.category, row.period)


def _balance(row: Any) -> int:
    return int(row.amount_fen - row.consumed_fen - row.occupied_fen)


# -- reading ----------------------------------------------------------------------------------


class BudgetOut(BaseModel):
    """A budget with its running totals (all in fen)."""

    id: int
    node_kind: NodeKind
    node_id: str
    category: str = Field(description="an expense category, or `all`")
    period: str = Field(description="2026, 2026-Q4 or 2026-12")
    mode: BudgetMode
    amount_fen: int
    occupied_fen: int
    consumed_fen: int
    balance_fen: int = Field(description="amount - consumed - occupied")


class BudgetReportRow(BudgetOut):
    """A line of the execution report (预算执行情况)."""

    rate: float | None = Field(description="(occupied + consumed) / amount, None for a zero budget")
    depth: int = Field(description="how far below the top of the org tree the node is")
    allocated_below_fen: int = Field(
        description="the amounts of the budgets of the units directly below, same category "
        "and period (how much of this budget is handed down)"
    )


@dataclass(frozen=True)
class BudgetFilter:
    period: str | None = None
    node_kind: str | None = None
    node_id: str | None = None

    def apply(self, stmt: Any) -> Any:
        for column, value in (
            (budgets.c.period, self.period),
            (budgets.c.node_kind, self.node_kind),
            (budgets.c.node_id, self.node_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        return stmt


def _out(row: Any) -> BudgetOut:
    return BudgetOut.model_validate({**row._mapping, "balance_fen": _balance(row)})


def list_budgets(db: Database, flt: BudgetFilter | None = None) -> list[BudgetOut]:
    stmt = (flt or BudgetFilter()).apply(select(budgets)).order_by(budgets.c.id)
    with db.engine.connect() as conn:
        return [_out(row) for row in conn.execute(stmt)]


def budget_report(
    db: Database, people: MasterDataSnapshot, flt: BudgetFilter | None = None
) -> list[BudgetReportRow]:
    """Budget, occupied, consumed, balance and rate per node and period, org units in tree
    order (a unit before the units below it). A unit's budget already counts the claims of
    the units below it; `allocated_below_fen` shows how much of it their own budgets hold."""
    rows = list_budgets(db, flt)
    with db.engine.connect() as conn:
        every = [_out(row) for row in conn.execute(select(budgets))]
    below: dict[tuple[str, str, str], int] = {}
    for b in every:
        parent = people.org_parents.get(b.node_id) if b.node_kind is NodeKind.ORG_UNIT else None
        if parent is not None:
            slot = (parent, b.category, b.period)
            below[slot] = below.get(slot, 0) + b.amount_fen

    def path(b: BudgetOut) -> tuple[str, ...]:
        if b.node_kind is not NodeKind.ORG_UNIT:
            return (b.node_id,)
        return tuple(reversed(org_chain(b.node_id, people.org_parents)))

    kinds = list(NodeKind)
    rows.sort(key=lambda b: (kinds.index(b.node_kind), path(b), b.category, b.period))
    report = []
    for b in rows:
        used = b.occupied_fen + b.consumed_fen
        report.append(
            BudgetReportRow(
                **b.model_dump(),
                rate=round(used / b.amount_fen, 4) if b.amount_fen else None,
                depth=len(path(b)) - 1,
                allocated_below_fen=below.get((b.node_id, b.category, b.period), 0)
                if b.node_kind is NodeKind.ORG_UNIT
                else 0,
            )
        )
    return report


class MovementOut(BaseModel):
    """A line of a budget's ledger (all amounts are changes, in fen)."""

    id: int
    budget_id: int
    kind: Movement
    claim_id: str | None
    request_id: str | None
    amount_delta_fen: int
    occupied_delta_fen: int
    consumed_delta_fen: int
    at: datetime
    actor: str


def budget_movements_of(db: Database, budget_id: int) -> list[MovementOut]:
    """A budget's ledger, oldest first; its totals are the sums of these lines."""
    with db.engine.connect() as conn:
        if _budget(conn, budget_id) is None:
            raise NotFound("budget_id", f"unknown budget {budget_id}")
        rows = conn.execute(
            select(budget_movements)
            .where(budget_movements.c.budget_id == budget_id)
            .order_by(budget_movements.c.id)
        )
        return [MovementOut.model_validate(r._mapping) for r in rows]


def ledger_mismatches(db: Database) -> list[int]:
    """Ids of budgets whose totals differ from the sum of their movements (none, normally)."""
    sums = (
        select(
            budget_movements.c.budget_id,
            func.sum(budget_movements.c.amount_delta_fen).label("amount"),
            func.sum(budget_movements.c.occupied_delta_fen).label("occupied"),
            func.sum(budget_movements.c.consumed_delta_fen).label("consumed"),
        )
        .group_by(budget_movements.c.budget_id)
        .subquery()
    )
    stmt = (
        select(budgets.c.id)
        .outerjoin(sums, sums.c.budget_id == budgets.c.id)
        .where(
            or_(
                func.coalesce(sums.c.amount, 0) != budgets.c.amount_fen,
                func.coalesce(sums.c.occupied, 0) != budgets.c.occupied_fen,
                func.coalesce(sums.c.consumed, 0) != budgets.c.consumed_fen,
            )
        )
        .order_by(budgets.c.id)
    )
    with db.engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(stmt)]


# -- import -----------------------------------------------------------------------------------


class ImportResult(BaseModel):
    created: int = Field(description="budgets created")
    unchanged: int = Field(description="rows equal to an existing budget (a repeated import)")
    budget_ids: list[int] = Field(description="the ids of the rows' budgets, in file order")


def read_budget_file(name: str, content: bytes) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a CSV (UTF-8, a BOM allowed) or Excel (.xlsx, first sheet) budget file,
    each with its row number in the file (the header is row 1)."""
    if name.lower().endswith((".xlsx", ".xlsm")):
        table = _excel_rows(content)
    elif name.lower().endswith(".csv"):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("file", f"{name} is not UTF-8 text (byte {exc.start})") from None
        table = [list(row) for row in csv.reader(io.StringIO(text))]
    else:
        raise InvalidInput("file", f"{name}: give a .csv or .xlsx file")
    if not table or not any(str(c or "").strip() for c in table[0]):
        raise BudgetImportRefused([RowError(1, "header", "the file has no header row")])
    header = [str(c or "").strip().lower() for c in table[0]]
    errors = [
        RowError(
            1, column or f"#{i + 1}", f"unknown column; the columns are {', '.join(IMPORT_COLUMNS)}"
        )
        for i, column in enumerate(header)
        if column not in IMPORT_COLUMNS
    ]
    errors += [
        RowError(1, column, "this column is required")
        for column in REQUIRED_COLUMNS
        if column not in header
    ]
    if errors:
        raise BudgetImportRefused(errors)
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        if not any(str(c if c is not None else "").strip() for c in cells):
            continue  # blank lines are skipped
        rows.append(
            (number, {h: cells[i] if i < len(cells) else None for i, h in enumerate(header)})
        )
    return rows


def _excel_rows(content: bytes) -> list[list[Any]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as exc:
        raise InvalidInput("file", f"not a readable Excel workbook ({exc})") from None
    try:
        sheet = book.worksheets[0]
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def import_budgets(
    db: Database,
    people: MasterDataSnapshot,
    rows: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    default_mode: str,
    actor: str,
) -> ImportResult:
    """Create the budgets of `rows`, all or none: every bad cell is named (row and column)
    in one `BudgetImportRefused`. A row equal to an existing budget is left as it is; one
    that differs from it is refused (an amount changes by an approved adjustment)."""
    errors: list[RowError] = []
    parsed: list[tuple[int, BudgetKey, int, str]] = []
    seen: dict[BudgetKey, int] = {}
    known = {
        NodeKind.ORG_UNIT.value: people.org_units,
        NodeKind.COST_CENTER.value: people.cost_centers,
        NodeKind.PROJECT.value: people.projects,
    }
    for number, row in rows:
        row_errors = len(errors)

        kind, node_id = _cell(row, "node_kind").lower(), _cell(row, "node_id")
        if kind not in known:
            errors.append(
                RowError(number, "node_kind", f"{kind!r} is not one of {', '.join(known)}")
            )
        elif node_id not in known[kind]:
            errors.append(RowError(number, "node_id", f"unknown {kind} {node_id!r}"))
        try:
            category = parse_category(_cell(row, "category"))
        except ValueError as exc:
            errors.append(RowError(number, "category", str(exc)))
        try:
            period = parse_period(_cell(row, "period"))
        except ValueError as exc:
            errors.append(RowError(number, "period", str(exc)))
        amount_text = row.get("amount")
        try:
            if amount_text is None or _cell(row, "amount") == "":
                raise InvalidInput("amount", "is empty")
            # Excel numbers come as int or float; a float's shortest text is its decimal value
            value = amount_text if isinstance(amount_text, int) else _cell(row, "amount")
            amount = yuan_to_fen(value, field="amount")
            if amount < 0:
                raise InvalidInput("amount", "must not be negative")
        except InvalidInput as exc:
            errors.append(RowError(number, "amount", f"{exc.message} (yuan, e.g. 120000.00)"))
        mode = _cell(row, "mode").lower() or default_mode
        if mode not in BudgetMode.__members__.values():
            errors.append(RowError(number, "mode", f"{mode!r} is not one of block, warn, none"))
        if len(errors) > row_errors:
            continue
        key = BudgetKey(kind, node_id, category, period)
        if key in seen:
            errors.append(RowError(number, "period", f"the same budget as row {seen[key]}"))
            continue
        seen[key] = number
        parsed.append((number, key, amount, mode))
    if not parsed and not errors:
        errors.append(RowError(2, "node_kind", "the file has no budget rows"))
    created, unchanged = 0, 0
    ids: list[int | None] = []
    with db.uow(actor) as uow:
        conn = uow.conn
        new: list[tuple[BudgetKey, int, str]] = []
        for number, key, amount, mode in parsed:
            existing = conn.execute(
                select(budgets).where(
                    budgets.c.node_kind == key.node_kind,
                    budgets.c.node_id == key.node_id,
                    budgets.c.category == key.category,
                    budgets.c.period == key.period,
                )
            ).first()
            if existing is None:
                new.append((key, amount, mode))
                ids.append(None)
            elif existing.amount_fen == amount and existing.mode == mode:
                unchanged += 1
                ids.append(existing.id)
            else:
                errors.append(
                    RowError(
                        number,
                        "amount" if existing.amount_fen != amount else "mode",
                        f"budget {existing.id} ({key.label()}) exists with amount "
                        f"{existing.amount_fen} fen and mode {existing.mode}; an amount changes "
                        "by an adjustment request",
                    )
                )
        if errors:
            raise BudgetImportRefused(sorted(errors, key=lambda e: (e.row, e.column)))
        fresh = iter([_create(uow, key, amount, mode) for key, amount, mode in new])
        budget_ids = [i if i is not None else next(fresh) for i in ids]
        created = len(new)
        uow.audit(
            "budget.imported",
            "budget",
            "import",
            {"created": created, "unchanged": unchanged, "budget_ids": budget_ids},
        )
        uow.commit()
    return ImportResult(created=created, unchanged=unchanged, budget_ids=budget_ids)


def _cell(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def _create(uow: UnitOfWork, key: BudgetKey, amount: int, mode: str) -> int:
    budget_id: int = uow.conn.execute(
        insert(budgets)
        .returning(budgets.c.id)
        .values(
            node_kind=key.node_kind,
            node_id=key.node_id,
            category=key.category,
            period=key.period,
            mode=mode,
            amount_fen=amount,
            occupied_fen=0,
            consumed_fen=0,
            created_at=uow.now,
            updated_at=uow.now,
        )
    ).scalar_one()
    INSERT_MOVEMENTS.run(uow.conn, _movement(uow, budget_id, Movement.ALLOCATE, amount=amount))
    return budget_id


def import_budget_content(
    db: Database,
    people: MasterDataSnapshot,
    name: str,
    content: bytes,
    *,
    default_mode: str,
    actor: str,
) -> ImportResult:
    """Import the content of a .csv or .xlsx file called `name` (see `import_budgets`)."""
    rows = read_budget_file(name, content)
    return import_budgets(db, people, rows, default_mode=default_mode, actor=actor)


def import_budget_file(
    db: Database, people: MasterDataSnapshot, path: Path, *, default_mode: str, actor: str
) -> ImportResult:
    """Import a .csv or .xlsx file (see `import_budgets`)."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise InvalidInput("file", f"cannot read {path}: {exc.strerror}") from None
    return import_budget_content(
        db, people, path.name, content, default_mode=default_mode, actor=actor
    )


# -- adjustments and transfers (maker-checker) ------------------------------------------------


class BudgetChangeIn(BaseModel):
    """A request to change a budget's amount, or to move amount to another budget."""

    model_config = {"extra": "forbid"}

    kind: Literal["adjust", "transfer"]
    budget_id: int = Field(ge=1, le=2**62, description="the budget adjusted, or the giver")
    to_budget_id: int | None = Field(
        default=None, ge=1, le=2**62, description="a transfer's receiver"
    )
    amount: str = Field(
        max_length=32,
        description="yuan: an adjustment's signed change (-5000.00), a transfer's amount (> 0)",
    )
    reason: str = Field(min_length=1, max_length=500)


class BudgetChangeOut(BaseModel):
    id: str
    kind: str
    budget_id: int
    to_budget_id: int | None
    amount_fen: int
    reason: str
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None


def request_change(db: Database, change: BudgetChangeIn, *, actor: str) -> BudgetChangeOut:
    """Record an adjustment or transfer for another person to approve; nothing moves yet."""
    amount = yuan_to_fen(change.amount, field="amount")
    if change.kind == "transfer":
        if change.to_budget_id is None:
            raise InvalidInput("to_budget_id", "a transfer names the budget that receives it")
        if change.to_budget_id == change.budget_id:
            raise InvalidInput("to_budget_id", "a transfer goes to another budget")
        if amount <= 0:
            raise InvalidInput("amount", "a transfer moves a positive amount")
    else:
        if change.to_budget_id is not None:
            raise InvalidInput("to_budget_id", "only a transfer names a receiving budget")
        if amount == 0:
            raise InvalidInput("amount", "an adjustment changes the amount (not 0)")
    request_id = f"BR{int(time.time() * 1000):011x}{secrets.token_hex(4)}"
    with db.uow(actor) as uow:
        for field, budget_id in (
            ("budget_id", change.budget_id),
            ("to_budget_id", change.to_budget_id),
        ):
            if budget_id is not None and _budget(uow.conn, budget_id) is None:
                raise NotFound(field, f"unknown budget {budget_id}")
        row = {
            "id": request_id,
            "kind": change.kind,
            "budget_id": change.budget_id,
            "to_budget_id": change.to_budget_id,
            "amount_fen": amount,
            "reason": change.reason,
            "status": "pending",
            "requested_by": actor,
            "requested_at": uow.now,
        }
        uow.conn.execute(insert(budget_requests).values(**row))
        uow.audit(
            f"budget.{change.kind}_requested",
            "budget_request",
            request_id,
            {k: v for k, v in row.items() if k not in ("id", "requested_at")},
        )
        uow.commit()
    return get_change(db, request_id)


def get_change(db: Database, request_id: str) -> BudgetChangeOut:
    with db.engine.connect() as conn:
        row = conn.execute(
            select(budget_requests).where(budget_requests.c.id == request_id)
        ).first()
    if row is None:
        raise NotFound("request_id", f"unknown budget request {request_id}")
    return BudgetChangeOut.model_validate(row._mapping)


def list_changes(db: Database, status: str | None = None) -> list[BudgetChangeOut]:
    stmt = select(budget_requests).order_by(budget_requests.c.requested_at, budget_requests.c.id)
    if status is not None:
        stmt = stmt.where(budget_requests.c.status == status)
    with db.engine.connect() as conn:
        return [BudgetChangeOut.model_validate(r._mapping) for r in conn.execute(stmt)]


def decide_change(
    db: Database, request_id: str, approve: bool, comment: str | None, *, actor: str
) -> BudgetChangeOut:
    """Approve (and apply) or reject a pending request. Whoever asked for it cannot decide
    it. An approval that would take a budget below what its claims already hold is refused
    and leaves the request pending."""
    with db.uow(actor) as uow:
        conn = uow.conn
        stmt = select(budget_requests).where(budget_requests.c.id == request_id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        request = conn.execute(stmt).first()
        if request is None:
            raise NotFound("request_id", f"unknown budget request {request_id}")
        if request.status != "pending":
            raise Conflict("request_id", f"budget request {request_id} is already {request.status}")
        if request.requested_by == actor:
            raise Forbidden(
                "request_id", f"{actor} asked for budget request {request_id} and cannot decide it"
            )
        if approve:
            _apply(uow, request)
        status = "approved" if approve else "rejected"
        conn.execute(
            update(budget_requests)
            .where(budget_requests.c.id == request_id)
            .values(status=status, decided_by=actor, decided_at=uow.now, comment=comment)
        )
        uow.audit(
            f"budget.{request.kind}_{status}",
            "budget_request",
            request_id,
            {
                "budget_id": request.budget_id,
                "to_budget_id": request.to_budget_id,
                "amount_fen": request.amount_fen,
                "comment": comment,
            },
        )
        uow.commit()
    return get_change(db, request_id)


def _apply(uow: UnitOfWork, request: Any) -> None:
    """Move the amounts of an approved request, budgets in ascending id order."""
    if request.kind == "adjust":
        changes = {request.budget_id: request.amount_fen}
    else:
        changes = {request.budget_id: -request.amount_fen, request.to_budget_id: request.amount_fen}
    kind = Movement.ADJUST if request.kind == "adjust" else Movement.TRANSFER
    movements = []
    for budget_id in uow.take_in_order("budgets", changes):
        delta = changes[budget_id]
        stmt = MOVE.values(amount_fen=budgets.c.amount_fen + delta, updated_at=uow.now)
        if delta < 0:
            stmt = stmt.where(balance_left >= -delta)
        if uow.conn.execute(stmt, {"b_id": budget_id}).rowcount != 1:
            row = _budget(uow.conn, budget_id)
            raise Conflict(
                "amount",
                f"budget {budget_id} has {_balance(row)} fen left, less than the {-delta} fen "
                "this would take from it",
            )
        movements.append(_movement(uow, budget_id, kind, request_id=request.id, amount=delta))
    INSERT_MOVEMENTS.run_many(uow.conn, movements)
