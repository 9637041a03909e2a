"""processes: deployed process definitions, document types, who heads what, fallback tasks

`process_definitions` keeps every deployed version of a process (BPMN + DMN, by key and a
number counting up; the same bytes again are the same version). A claim says which document
it is (`claims.document_type`: expense_claim, advance, payment_request, requisition; NULL
before 0017 is an expense claim) and may name the requisition it draws on
(`claims.requisition_id`). `cost_centers.owner_id` is the cost center's owner (成本中心负责人);
an approval task given to the fallback approver says why (`approval_tasks.fallback_reason`).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "process_definitions",
        sa.Column("process_key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec_version", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("bpmn", sa.Text(), nullable=False),
        sa.Column("dmn", sa.Text(), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployed_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("process_key", "version"),
        sa.UniqueConstraint("process_key", "spec_version", name="uq_process_definitions_digest"),
    )
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("document_type", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("requisition_id", sa.String(length=40), nullable=True))
    with op.batch_alter_table("cost_centers") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("approval_tasks") as batch:
        batch.add_column(sa.Column("fallback_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approval_tasks") as batch:
        batch.drop_column("fallback_reason")
    with op.batch_alter_table("cost_centers") as batch:
        batch.drop_column("owner_id")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("requisition_id")
        batch.drop_column("document_type")
    op.drop_table("process_definitions")
