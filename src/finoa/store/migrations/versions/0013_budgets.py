"""budgets: budgets per node, category and period, their ledger and change requests

`budgets` holds each budget with its running occupied and consumed amounts;
`budget_movements` is the ledger those totals always equal; `budget_requests` holds
adjustments and transfers waiting for (or decided by) a second person. A claim records what
the budgets said when it was submitted in `claims.budget_status` (NULL on earlier claims).

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-01 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("budget_status", sa.String(length=8), nullable=True))
    op.create_table(
        "budgets",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("node_kind", sa.String(16), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("occupied_fen", sa.BigInteger(), nullable=False),
        sa.Column("consumed_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budgets"),
        sa.UniqueConstraint(
            "node_kind",
            "node_id",
            "category",
            "period",
            name="uq_budgets_node_kind_node_id_category_period",
        ),
    )
    op.create_table(
        "budget_movements",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("budget_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("claim_id", sa.String(40)),
        sa.Column("request_id", sa.String(40)),
        sa.Column("amount_delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("occupied_delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("consumed_delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_budget_movements"),
        sa.ForeignKeyConstraint(
            ["budget_id"], ["budgets.id"], name="fk_budget_movements_budget_id_budgets"
        ),
    )
    op.create_index("ix_budget_movements_claim", "budget_movements", ["claim_id"])
    op.create_index("ix_budget_movements_budget", "budget_movements", ["budget_id"])
    op.create_table(
        "budget_requests",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("budget_id", sa.BigInteger(), nullable=False),
        sa.Column("to_budget_id", sa.BigInteger()),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("comment", sa.String(500)),
        sa.PrimaryKeyConstraint("id", name="pk_budget_requests"),
        sa.ForeignKeyConstraint(
            ["budget_id"], ["budgets.id"], name="fk_budget_requests_budget_id_budgets"
        ),
        sa.ForeignKeyConstraint(
            ["to_budget_id"], ["budgets.id"], name="fk_budget_requests_to_budget_id_budgets"
        ),
    )
    op.create_index("ix_budget_requests_status", "budget_requests", ["status"])


def downgrade() -> None:
    op.drop_index("ix_budget_requests_status", table_name="budget_requests")
    op.drop_table("budget_requests")
    op.drop_index("ix_budget_movements_budget", table_name="budget_movements")
    op.drop_index("ix_budget_movements_claim", table_name="budget_movements")
    op.drop_table("budget_movements")
    op.drop_table("budgets")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("budget_status")
