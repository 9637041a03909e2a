"""OA-led approvals: the OA's approval instance of a claim and its final result

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oa_approvals",
        sa.Column("claim_id", sa.String(length=40), sa.ForeignKey("claims.id"), primary_key=True),
        sa.Column("oa_instance", sa.String(length=64), nullable=False),
        sa.Column("oa_approval_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result_comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("oa_instance", "oa_approval_id", name="uq_oa_approvals_oa_id"),
    )


def downgrade() -> None:
    op.drop_table("oa_approvals")
