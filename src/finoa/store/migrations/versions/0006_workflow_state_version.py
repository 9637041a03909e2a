"""workflow instances: serializer version tag

Each workflow state records the format it is written in; the row keeps a copy so that rows
still in an older format can be found with SQL. Rows written before the tag existed are in
format 1, the format of the release that wrote them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_instances") as batch:
        batch.add_column(
            sa.Column(
                "state_format_version",
                sa.Integer(),
                nullable=False,
                server_default=sa.text("1"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_instances") as batch:
        batch.drop_column("state_format_version")
