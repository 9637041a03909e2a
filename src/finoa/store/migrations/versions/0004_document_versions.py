"""claims: content digests and superseded versions

Each claim keeps the digest of its submission's content, so that a resend of the same
business key is told apart from a changed document. A partial unique index keeps at most one
live claim per external document; claims recorded before this revision carry no digest and
stay outside it, so existing data never violates it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_DOCUMENT_CLAIM = (
    "content_digest IS NOT NULL AND status IN ('approved', 'in_approval', 'posted', 'submitted')"
)


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("content_digest", sa.String(64), nullable=True))
    op.create_index(
        "uq_claims_live_document",
        "claims",
        ["source", "external_id"],
        unique=True,
        sqlite_where=sa.text(LIVE_DOCUMENT_CLAIM),
        postgresql_where=sa.text(LIVE_DOCUMENT_CLAIM),
    )


def downgrade() -> None:
    op.drop_index("uq_claims_live_document", table_name="claims")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("content_digest")
