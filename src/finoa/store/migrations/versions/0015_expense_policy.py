"""expense policy: employee grades, and what the policy said of each claim

`employees.grade` (职级) is what the policy's limits depend on; `claims.policy_check` keeps
the versions, limits and breaches the claim was checked against (NULL: no rule applied, and
on earlier claims).

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("employees") as batch:
        batch.add_column(sa.Column("grade", sa.String(length=16), nullable=True))
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("policy_check", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("policy_check")
    with op.batch_alter_table("employees") as batch:
        batch.drop_column("grade")
