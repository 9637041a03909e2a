"""outbox: lease owner and version, unknown outcomes, retry budget, held rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(120)))
        batch.add_column(
            sa.Column("lease_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("needs_lookup", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
        batch.add_column(sa.Column("failing_since", sa.Float()))
    # rows in flight when the hub stopped may have reached their peer
    op.execute("UPDATE outbox SET needs_lookup = true WHERE status = 'inflight'")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("needs_lookup")
        batch.drop_column("lease_version")
        batch.drop_column("lease_owner")
