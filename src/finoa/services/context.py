"""What every use case needs: the database, settings, the approval engine, the rules and
the connector instances messages are routed to."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from finoa.config import Settings
from finoa.connectors.instances import ConnectorInstances, load_instances
from finoa.domain.claim import ExpenseCategory
from finoa.domain.errors import InvalidInput
from finoa.domain.voucher import VoucherRules
from finoa.services.budgets import BudgetCache
from finoa.services.directory import MasterDataCache
from finoa.store.group_commit import GroupCommit
from finoa.store.uow import Database
from finoa.workflow.engine import ApprovalEngine


def load_voucher_rules(path: Path | None = None) -> VoucherRules:
    """Voucher rules from YAML; the shipped defaults when no path is given."""
    text = (
        path.read_text(encoding="utf-8")
        if path
        else resources.files("finoa.rules").joinpath("voucher_rules.yaml").read_text("utf-8")
    )
    raw = yaml.safe_load(text)
    if raw.get("payment_debit", "payable") not in ("payable", "expense"):
        raise InvalidInput("payment_debit", "give payable (2202 应付账款) or expense")
    try:
        expense = {ExpenseCategory(k): str(v) for k, v in raw["expense_accounts"].items()}
    except ValueError as exc:
        raise InvalidInput("expense_accounts", str(exc)) from None
    return VoucherRules(
        expense_accounts=expense,
        input_vat_account=str(raw.get("input_vat_account", "2221.01.01")),
        payable_account=str(raw.get("payable_account", "2241")),
        word=str(raw.get("word", "记")),
        advance_account=str(raw.get("advance_account", "1221")),
        advance_credit_account=str(raw.get("advance_credit_account", "1002")),
        payment_debit=str(raw.get("payment_debit", "payable")),
        trade_payable_account=str(raw.get("trade_payable_account", "2202")),
        bank_account=str(raw.get("bank_account", "1002")),
    )


def open_database(settings: Settings, *, pool_size: int = 10) -> Database:
    """The settings' database, on the hub's clock (a test process's clock can be moved)."""
    db = Database.connect(
        settings.effective_database_url,
        pool_size=pool_size,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    if settings.clock_offset_file:
        from finoa.services.timers import offset_clock

        db.clock = offset_clock(Path(settings.clock_offset_file))
    return db


@dataclass
class Hub:
    """The application's services bundle, built once per process."""

    settings: Settings
    db: Database
    engine: ApprovalEngine
    rules: VoucherRules
    masterdata: MasterDataCache
    commands: GroupCommit  # where request handlers send their writes
    instances: ConnectorInstances  # the connector instances, and where messages go
    budgets: BudgetCache  # which budgets exist, for the submissions' budget check

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        pool_size: int = 10,
        instances: ConnectorInstances | None = None,
    ) -> Hub:
        rules_path = settings.extra.get("voucher_rules")
        instances = instances or load_instances(settings)  # a config error stops us here
        db = open_database(settings, pool_size=pool_size)
        return cls(
            settings=settings,
            db=db,
            engine=ApprovalEngine(),
            rules=load_voucher_rules(Path(rules_path) if rules_path else None),
            masterdata=MasterDataCache(db, fallback_approver=settings.fallback_approver),
            commands=GroupCommit(db, writers=settings.group_commit_writers or None),
            instances=instances,
            budgets=BudgetCache(db, settings.budget_cache_seconds),
        )

    def close(self) -> None:
        self.db.dispose()
