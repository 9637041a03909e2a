"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from support.databases import HEAD_REVISION

from finoa.store.db import current_revision
from finoa.store.tables import metadata


def test_migrated_schema_matches_the_tables(db_url: str) -> None:
    assert current_revision(db_url) == HEAD_REVISION
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("outbox")}
    finally:
        engine.dispose()
    assert diff == []
    assert {"ix_outbox_due", "ix_outbox_open", "ix_outbox_ordering", "ix_outbox_lane"} <= indexes
