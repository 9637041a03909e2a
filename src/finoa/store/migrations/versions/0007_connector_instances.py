"""connector instances: the OA instance of each claim, the ERP instance of each voucher

A claim's todos and status write-backs go back to the OA instance it came from (REST claims:
the default OA instance at submission); a voucher, and its reversal, to the ERP instance its
org unit is mapped to. Rows from before hold NULL and use the default instances.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("oa_instance", sa.String(length=64), nullable=True))
    with op.batch_alter_table("vouchers") as batch:
        batch.add_column(sa.Column("erp_instance", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vouchers") as batch:
        batch.drop_column("erp_instance")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("oa_instance")
