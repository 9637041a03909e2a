"""outbox: partial index on rows not yet done, per destination in id order

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_lane",
        "outbox",
        ["destination", "id"],
        sqlite_where=sa.text("status <> 'done'"),
        postgresql_where=sa.text("status <> 'done'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_lane", table_name="outbox")
