"""invoices: e-invoices attached to claim lines, one active claim per invoice number

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_INVOICE = "released_at IS NULL AND number IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("claim_id", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("source_format", sa.String(length=16), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("seller_tax_id", sa.String(length=20), nullable=True),
        sa.Column("seller_name", sa.String(length=200), nullable=True),
        sa.Column("buyer_tax_id", sa.String(length=20), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("tax_fen", sa.BigInteger(), nullable=True),
        sa.Column("total_fen", sa.BigInteger(), nullable=True),
        sa.Column("deductible_vat_fen", sa.BigInteger(), nullable=False),
        sa.Column("vat_rule", sa.String(length=200), nullable=False),
        sa.Column("manual_entry_reason", sa.Text(), nullable=True),
        sa.Column("verification", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("data_path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name="fk_invoices_claim_id_claims"),
        sa.PrimaryKeyConstraint("id", name="pk_invoices"),
    )
    op.create_index(
        "uq_invoices_active_number",
        "invoices",
        ["number"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_INVOICE),
        postgresql_where=sa.text(ACTIVE_INVOICE),
    )
    op.create_index("ix_invoices_claim", "invoices", ["claim_id", "line_no"])
    op.create_index("ix_invoices_number", "invoices", ["number"])


def downgrade() -> None:
    op.drop_index("ix_invoices_number", table_name="invoices")
    op.drop_index("ix_invoices_claim", table_name="invoices")
    op.drop_index("uq_invoices_active_number", table_name="invoices")
    op.drop_table("invoices")
