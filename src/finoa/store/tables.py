"""The schema, as SQLAlchemy Core tables. Alembic migrations create it; keep them in step."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from finoa.domain.claim import LIVE_STATUSES

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Money = BigInteger  # integer fen

org_units = Table(
    "org_units",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("parent_id", String(32)),
    Column("manager_id", String(32)),
)

employees = Table(
    "employees",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("department_id", String(32), ForeignKey("org_units.id"), nullable=False),
    Column("manager_id", String(32)),
    Column("role", String(32), nullable=False, default="employee"),
    Column("email", String(200)),
    Column("active", Boolean, nullable=False, default=True),
    Column("grade", String(16)),  # 职级 for the expense policy; NULL: the policy's default grade
)

cost_centers = Table(
    "cost_centers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("department_id", String(32)),
    Column("owner_id", String(32)),  # 成本中心负责人 (0017); NULL: nobody
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("name_zh", String(200), nullable=False),
    Column("name_en", String(200), nullable=False),
    Column("balance_side", String(8), nullable=False),
)

LIVE_DOCUMENT_CLAIM = "content_digest IS NOT NULL AND status IN ({})".format(
    ", ".join(f"'{status}'" for status in sorted(LIVE_STATUSES))
)

claims = Table(
    "claims",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("applicant_id", String(32), ForeignKey("employees.id"), nullable=False),
    Column("department_id", String(32), ForeignKey("org_units.id"), nullable=False),
    Column("cost_center_id", String(32)),
    Column("project_id", String(32)),
    Column("currency", String(3), nullable=False),
    Column("title", String(200), nullable=False),
    Column("total_fen", Money, nullable=False),
    Column("tax_fen", Money, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("voucher_id", String(40)),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("submitted_epoch", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("status_seq", Integer, nullable=False, default=0),
    # SHA-256 of the submission's canonical content; NULL on claims recorded before 0004.
    Column("content_digest", String(64)),
    # The OA connector instance its todos and write-backs go to; NULL before 0007 (default OA).
    Column("oa_instance", String(64)),
    # What the budgets said at submission: within / exceeded (a warn budget); NULL: none applied.
    Column("budget_status", String(8)),
    # What the expense policy said at submission (finoa.services.policy); NULL: no rule applied.
    Column("policy_check", JSON),
    # expense_claim / advance / payment_request / requisition (0017); NULL: an expense claim.
    Column("document_type", String(24)),
    Column("requisition_id", String(40)),  # the approved requisition it draws on (0017)
    UniqueConstraint("source", "external_id", "version"),
    # At most one live claim per external document (the others are withdrawn or rejected).
    Index(
        "uq_claims_live_document",
        "source",
        "external_id",
        unique=True,
        sqlite_where=text(LIVE_DOCUMENT_CLAIM),
        postgresql_where=text(LIVE_DOCUMENT_CLAIM),
    ),
    Index("ix_claims_status_submitted", "status", "submitted_at"),
    Index("ix_claims_applicant", "applicant_id"),
    Index("ix_claims_department", "department_id"),
)

claim_lines = Table(
    "claim_lines",
    metadata,
    Column("claim_id", String(40), ForeignKey("claims.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("category", String(32), nullable=False),
    Column("amount_fen", Money, nullable=False),
    Column("tax_fen", Money, nullable=False),
    Column("expense_date", Date, nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("invoice_refs", JSON, nullable=False),
)

attachments = Table(
    "attachments",
    metadata,
    Column("claim_id", String(40), ForeignKey("claims.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(100), nullable=False),
)

workflow_instances = Table(
    "workflow_instances",
    metadata,
    Column("claim_id", String(40), ForeignKey("claims.id"), primary_key=True),
    Column("spec_version", String(64), nullable=False),
    Column("state", Text, nullable=False),
    # format of `state` (finoa.workflow.serialization); rows from before it was kept hold 1
    Column("state_format_version", Integer, nullable=False, server_default=text("1")),
    Column("outcome", String(16)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

approval_tasks = Table(
    "approval_tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("claim_id", String(40), ForeignKey("claims.id"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("label", String(200), nullable=False),
    Column("assignee_id", String(32), nullable=False),
    # pending / approved / rejected / withdrawn / transferred / returned / superseded
    Column("status", String(16), nullable=False),
    Column("comment", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    # Why the fallback approver has it (nobody holds the role, 0017); NULL: the role's holder.
    Column("fallback_reason", Text),
    # 0018: the workflow step (NULL: the task's id), the submission round (NULL: 1) and the
    # delegator a delegate decides for (委托).
    Column("step_id", String(64)),
    Column("round", Integer),
    Column("on_behalf_of", String(32)),
    Index("ix_approval_tasks_claim", "claim_id"),
    Index("ix_approval_tasks_assignee_status", "assignee_id", "status"),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("claim_id", String(40), ForeignKey("claims.id"), nullable=False),
    Column("period", String(7), nullable=False),
    Column("word", String(8), nullable=False),
    Column("number", Integer, nullable=False),
    Column("voucher_no", String(32), nullable=False),
    Column("voucher_date", Date, nullable=False),
    Column("summary", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_fen", Money, nullable=False),
    Column("status", String(16), nullable=False),  # posting / posted / reversed
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("erp_voucher_no", String(64)),
    Column("erp_id", String(64)),
    Column("reversal_of", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("posted_at", DateTime(timezone=True)),
    # The ERP connector instance it is posted to; NULL before 0007 (the default ERP).
    Column("erp_instance", String(64)),
    UniqueConstraint("period", "word", "number"),
    Index("ix_vouchers_claim", "claim_id"),
)

voucher_entries = Table(
    "voucher_entries",
    metadata,
    Column("voucher_id", String(40), ForeignKey("vouchers.id"), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("account_code", String(32), nullable=False),
    Column("summary", String(200), nullable=False),
    Column("debit_fen", Money, nullable=False),
    Column("credit_fen", Money, nullable=False),
    Column("aux_department", String(32)),
    Column("aux_employee", String(32)),
    Column("aux_project", String(32)),
)

voucher_sequences = Table(
    "voucher_sequences",
    metadata,
    Column("period", String(7), primary_key=True),
    Column("word", String(8), primary_key=True),
    Column("last_number", Integer, nullable=False),
)

accounting_periods = Table(
    "accounting_periods",
    metadata,
    Column("period", String(7), primary_key=True),  # YYYY-MM in company time
    Column("status", String(8), nullable=False),  # open / closed; a period absent here is open
    Column("closed_at", DateTime(timezone=True)),
    Column("closed_by", String(100)),
)

inbox = Table(
    "inbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("source", String(64), nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("business_key", String(300)),
    Column("digest", String(64), nullable=False),
    Column("result", JSON),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("source", "message_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("aggregate_type", String(32), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("ordering_key", String(200), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending / inflight / done / dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    # who holds the lease ("<worker id>/<boot id>") and which lease it is: a settler whose
    # lease was taken over changes nothing
    Column("lease_owner", String(120)),
    Column("lease_version", Integer, nullable=False, default=0, server_default="0"),
    # the last attempt may have reached the peer: ask its posted-lookup before sending again
    Column("needs_lookup", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("failing_since", Float),  # first failure of the current run of failures
    Column("last_error", Text),
    Column("error_class", String(16)),
    Column("response", JSON),
    Column("created_epoch", Float, nullable=False),
    Column("done_epoch", Float),
    Index("ix_outbox_due", "status", "next_attempt_at", "id"),
    Index("ix_outbox_ordering", "ordering_key", "id"),
    # Rows not yet done, per document: keeps the ordering check cheap however many rows are done.
    Index(
        "ix_outbox_open",
        "ordering_key",
        "id",
        sqlite_where=text("status <> 'done'"),
        postgresql_where=text("status <> 'done'"),
    ),
    Index("ix_outbox_aggregate", "aggregate_id"),
    # Rows not yet done, per destination in id order: the dispatcher's windows (one lane each).
    Index(
        "ix_outbox_lane",
        "destination",
        "id",
        sqlite_where=text("status <> 'done'"),
        postgresql_where=text("status <> 'done'"),
    ),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("data_digest", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_object", "object_type", "object_id"),
)

budgets = Table(
    "budgets",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("node_kind", String(16), nullable=False),  # org_unit / cost_center / project
    Column("node_id", String(32), nullable=False),
    Column("category", String(32), nullable=False),  # an expense category, or "all"
    Column("period", String(7), nullable=False),  # 2026 / 2026-Q4 / 2026-12
    Column("mode", String(8), nullable=False),  # block / warn / none
    # Running totals; each equals the sum of the budget's movements.
    Column("amount_fen", Money, nullable=False),
    Column("occupied_fen", Money, nullable=False),
    Column("consumed_fen", Money, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("node_kind", "node_id", "category", "period"),
)

budget_movements = Table(
    "budget_movements",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("budget_id", BigInteger, ForeignKey("budgets.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # finoa.domain.budgets.Movement
    Column("claim_id", String(40)),  # the claim moved, for occupy/release/consume/reverse
    Column("request_id", String(40)),  # the approved change, for adjust/transfer
    Column("amount_delta_fen", Money, nullable=False),
    Column("occupied_delta_fen", Money, nullable=False),
    Column("consumed_delta_fen", Money, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Index("ix_budget_movements_claim", "claim_id"),
    Index("ix_budget_movements_budget", "budget_id"),
)

budget_requests = Table(
    "budget_requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),  # adjust / transfer
    Column("budget_id", BigInteger, ForeignKey("budgets.id"), nullable=False),
    Column("to_budget_id", BigInteger, ForeignKey("budgets.id")),  # a transfer's receiver
    Column("amount_fen", Money, nullable=False),  # adjust: signed change; transfer: > 0
    Column("reason", String(500), nullable=False),
    Column("status", String(16), nullable=False),  # pending / approved / rejected
    Column("requested_by", String(100), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(100)),
    Column("decided_at", DateTime(timezone=True)),
    Column("comment", String(500)),
    Index("ix_budget_requests_status", "status"),
)

# An invoice attached to a claim line. While `released_at` is NULL it holds its number
# against every other claim (防止重复入账); a rejected or withdrawn claim releases it.
ACTIVE_INVOICE = "released_at IS NULL AND number IS NOT NULL"

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("claim_id", String(40), ForeignKey("claims.id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("number", String(20)),  # NULL while the invoice awaits manual entry
    Column("kind", String(16)),
    Column("source_format", String(16), nullable=False),
    Column("issue_date", Date),
    Column("seller_tax_id", String(20)),
    Column("seller_name", String(200)),
    Column("buyer_tax_id", String(20)),
    Column("amount_fen", Money),
    Column("tax_fen", Money),
    Column("total_fen", Money),
    Column("deductible_vat_fen", Money, nullable=False),
    Column("vat_rule", String(200), nullable=False),
    Column("manual_entry_reason", Text),
    Column("verification", String(16), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("data_path", String(255), nullable=False, default=""),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("uploaded_by", String(100), nullable=False),
    Column("released_at", DateTime(timezone=True)),
    Column("released_reason", Text),
    Index(
        "uq_invoices_active_number",
        "number",
        unique=True,
        sqlite_where=text(ACTIVE_INVOICE),
        postgresql_where=text(ACTIVE_INVOICE),
    ),
    Index("ix_invoices_claim", "claim_id", "line_no"),
    Index("ix_invoices_number", "number"),
)

# OA-led approvals (0009): the approval of a claim runs in its OA's own approval app. The
# OA's instance id is kept against the claim (NULL while finoa's request to create it is on
# its way); `status` is running, then the OA's final result.
oa_approvals = Table(
    "oa_approvals",
    metadata,
    Column("claim_id", String(40), ForeignKey("claims.id"), primary_key=True),
    Column("oa_instance", String(64), nullable=False),
    Column("oa_approval_id", String(128)),
    Column("status", String(16), nullable=False),  # creating / running / agree / refuse / …
    Column("result_comment", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("oa_instance", "oa_approval_id", name="uq_oa_approvals_oa_id"),
)

# Deployed process definitions (0017): every version of a process, BPMN and the DMN it uses,
# numbered per key; the same bytes deployed again are the same version (`spec_version` is
# their digest, finoa.workflow.specs). New claims start on the latest version of their key.
process_definitions = Table(
    "process_definitions",
    metadata,
    Column("process_key", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec_version", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("bpmn", Text, nullable=False),
    Column("dmn", Text, nullable=False),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
    Column("deployed_by", String(100), nullable=False),
    UniqueConstraint("process_key", "spec_version", name="uq_process_definitions_digest"),
)

# The electronic accounting archive (finoa.archive): one package per posted voucher.
archive_packages = Table(
    "archive_packages",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("voucher_id", String(40), nullable=False, unique=True),
    Column("archive_no", String(128), nullable=False, unique=True),  # 档号
    Column("fonds", String(32), nullable=False),  # 全宗号
    Column("fiscal_year", Integer, nullable=False),  # 会计年度
    Column("period", String(7), nullable=False),
    Column("word", String(8), nullable=False),
    Column("voucher_number", Integer, nullable=False),
    Column("voucher_no", String(32), nullable=False),  # 凭证号
    Column("record_kind", String(32), nullable=False),  # what 会计档案 it is (vouchers)
    Column("retention", String(16), nullable=False),  # 保管期限: D30, D10, Y (永久)
    Column("retain_until", Date),  # NULL: permanent
    Column("total_fen", Money, nullable=False),  # 金额合计
    Column("currency", String(3), nullable=False),
    Column("claim_id", String(40), nullable=False),
    Column("applicant_id", String(32), nullable=False),
    Column("applicant_name", String(200), nullable=False),  # 责任者
    # archived now; lent / appraised / destroyed are for borrowing and destruction later
    Column("status", String(16), nullable=False),
    Column("origin", String(16), nullable=False),  # built here, or imported from a handover
    Column("files", JSON, nullable=False),  # name, role, media type, size, SHA-256, SM3
    Column("metadata_sha256", String(64), nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Index("ix_archive_packages_period", "period", "word", "voucher_number"),
    Index("ix_archive_packages_applicant", "applicant_id"),
    Index("ix_archive_packages_total", "total_fen"),
)

archive_package_invoices = Table(
    "archive_package_invoices",
    metadata,
    Column("package_id", String(48), ForeignKey("archive_packages.id"), primary_key=True),
    Column("invoice_number", String(32), primary_key=True),
    Index("ix_archive_package_invoices_number", "invoice_number"),
)

# Posted vouchers whose package is not built yet: written in the posting transaction.
archive_queue = Table(
    "archive_queue",
    metadata,
    Column("voucher_id", String(40), primary_key=True),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)

# 四性检测 results: one row per package per run.
archive_checks = Table(
    "archive_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("package_id", String(48), nullable=False),
    Column("stage", String(16), nullable=False),  # archiving / import / on_demand
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("items", JSON, nullable=False),  # [{item, group, outcome, detail}]
    Index("ix_archive_checks_package", "package_id", "checked_at"),
)

# Who used a package how (viewed, exported, lent, destroyed …).
archive_access_log = Table(
    "archive_access_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("package_id", String(48), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_archive_access_log_package", "package_id", "at"),
)

# Delegations (0018, 委托): from `starts_on` to `ends_on` (company dates, inclusive) new
# approval tasks of `delegator_id` go to `delegate_id`, for every document type or only
# `document_type`; the task keeps the delegator as `on_behalf_of`.
approval_delegations = Table(
    "approval_delegations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("delegator_id", String(32), nullable=False),
    Column("delegate_id", String(32), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("document_type", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Index("ix_approval_delegations_delegator", "delegator_id", "starts_on"),
)

# Durable approval timers (0018): per open task a reminder (催办) and an escalation, due after
# so many working hours. `pending` until fired (`fired`) or found moot (`cancelled`: the task
# was decided first); a process claims due rows under a short lease (`lease_owner`,
# `lease_until`), and the firing transaction re-checks the row under lock, so each fires once.
approval_timers = Table(
    "approval_timers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # remind / escalate
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),  # pending / fired / cancelled
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime(timezone=True)),
    Column("fired_at", DateTime(timezone=True)),
    Column("fired_by", String(200)),
    Column("outcome", Text),
    UniqueConstraint("task_id", "kind", name="uq_approval_timers_task_kind"),
    Index("ix_approval_timers_due", "status", "due_at"),
)

# Archive use (finoa.archive.borrowing / destruction): borrowing requests (利用), destruction
# runs (鉴定销毁), and the approval tasks of both, pushed to the OA todo list.
archive_borrowings = Table(
    "archive_borrowings",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("borrower_id", String(32), nullable=False),
    Column("package_ids", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("days", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # pending / granted / rejected / expired
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Index("ix_archive_borrowings_borrower", "borrower_id", "status"),
)

archive_destructions = Table(
    "archive_destructions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("package_ids", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # in_appraisal / rejected / destroyed
    Column("requested_by", String(100), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("destroyed_at", DateTime(timezone=True)),
    Column("documents", JSON, nullable=False),  # 鉴定意见书 / 销毁清册: name -> SHA-256
)

archive_tasks = Table(
    "archive_tasks",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("subject_type", String(16), nullable=False),  # borrowing / destruction
    Column("subject_id", String(40), nullable=False),
    Column("step", Integer, nullable=False),
    Column("role", String(32), nullable=False),
    Column("assignee_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # waiting / pending / approved / rejected
    Column("comment", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Index("ix_archive_tasks_subject", "subject_type", "subject_id", "step"),
)
