"""archive use: borrowing requests, destruction runs, their approval tasks

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "archive_borrowings",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("borrower_id", sa.String(32), nullable=False),
        sa.Column("package_ids", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_archive_borrowings_borrower", "archive_borrowings", ["borrower_id", "status"]
    )
    op.create_table(
        "archive_destructions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("package_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True)),
        sa.Column("documents", sa.JSON(), nullable=False),
    )
    op.create_table(
        "archive_tasks",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("assignee_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_archive_tasks_subject", "archive_tasks", ["subject_type", "subject_id", "step"]
    )


def downgrade() -> None:
    op.drop_index("ix_archive_tasks_subject", table_name="archive_tasks")
    op.drop_table("archive_tasks")
    op.drop_table("archive_destructions")
    op.drop_index("ix_archive_borrowings_borrower", table_name="archive_borrowings")
    op.drop_table("archive_borrowings")
