"""approval patterns: task rows per turn, rounds, delegations

`approval_tasks.step_id` is the workflow step a task belongs to (NULL: the task's own id, as
on every task before 0018): a step may now have several tasks in turn (转交, 加签, 退回 and
resubmission), each a row of its own, so history is kept. `round` counts submissions (1 for
the first; a resubmission after 退回 starts the next). `on_behalf_of` is the delegator when a
task went to their delegate (委托). `approval_delegations` holds the delegations, and
`approval_timers` the durable timers of open tasks: a reminder (催办) and an escalation each,
due after so many working hours, claimed by one process at a time under a lease.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approval_tasks") as batch:
        batch.add_column(sa.Column("step_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("round", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("on_behalf_of", sa.String(length=32), nullable=True))
    op.create_table(
        "approval_delegations",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("delegator_id", sa.String(length=32), nullable=False),
        sa.Column("delegate_id", sa.String(length=32), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_approval_delegations_delegator", "approval_delegations", ["delegator_id", "starts_on"]
    )
    op.create_table(
        "approval_timers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fired_by", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.UniqueConstraint("task_id", "kind", name="uq_approval_timers_task_kind"),
    )
    op.create_index("ix_approval_timers_due", "approval_timers", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_approval_timers_due", table_name="approval_timers")
    op.drop_table("approval_timers")
    op.drop_index("ix_approval_delegations_delegator", table_name="approval_delegations")
    op.drop_table("approval_delegations")
    with op.batch_alter_table("approval_tasks") as batch:
        batch.drop_column("on_behalf_of")
        batch.drop_column("round")
        batch.drop_column("step_id")
