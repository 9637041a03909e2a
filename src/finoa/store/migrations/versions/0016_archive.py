"""electronic accounting archive: packages, their invoices, the build queue, checks, use

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "archive_packages",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("voucher_id", sa.String(40), nullable=False),
        sa.Column("archive_no", sa.String(128), nullable=False),
        sa.Column("fonds", sa.String(32), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("word", sa.String(8), nullable=False),
        sa.Column("voucher_number", sa.Integer(), nullable=False),
        sa.Column("voucher_no", sa.String(32), nullable=False),
        sa.Column("record_kind", sa.String(32), nullable=False),
        sa.Column("retention", sa.String(16), nullable=False),
        sa.Column("retain_until", sa.Date()),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("claim_id", sa.String(40), nullable=False),
        sa.Column("applicant_id", sa.String(32), nullable=False),
        sa.Column("applicant_name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("metadata_sha256", sa.String(64), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_archive_packages"),
        sa.UniqueConstraint("voucher_id", name="uq_archive_packages_voucher_id"),
        sa.UniqueConstraint("archive_no", name="uq_archive_packages_archive_no"),
    )
    op.create_index(
        "ix_archive_packages_period", "archive_packages", ["period", "word", "voucher_number"]
    )
    op.create_index("ix_archive_packages_applicant", "archive_packages", ["applicant_id"])
    op.create_index("ix_archive_packages_total", "archive_packages", ["total_fen"])
    op.create_table(
        "archive_package_invoices",
        sa.Column("package_id", sa.String(48), nullable=False),
        sa.Column("invoice_number", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["archive_packages.id"],
            name="fk_archive_package_invoices_package_id_archive_packages",
        ),
        sa.PrimaryKeyConstraint("package_id", "invoice_number", name="pk_archive_package_invoices"),
    )
    op.create_index(
        "ix_archive_package_invoices_number", "archive_package_invoices", ["invoice_number"]
    )
    op.create_table(
        "archive_queue",
        sa.Column("voucher_id", sa.String(40), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("voucher_id", name="pk_archive_queue"),
    )
    op.create_table(
        "archive_checks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("package_id", sa.String(48), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_archive_checks"),
    )
    op.create_index("ix_archive_checks_package", "archive_checks", ["package_id", "checked_at"])
    op.create_table(
        "archive_access_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("package_id", sa.String(48), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_archive_access_log"),
    )
    op.create_index("ix_archive_access_log_package", "archive_access_log", ["package_id", "at"])


def downgrade() -> None:
    op.drop_table("archive_access_log")
    op.drop_table("archive_checks")
    op.drop_table("archive_queue")
    op.drop_table("archive_package_invoices")
    op.drop_table("archive_packages")
