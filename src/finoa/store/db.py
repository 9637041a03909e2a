"""Database engines and migrations.

SQLite (the embedded default) runs in WAL mode; write transactions start with BEGIN IMMEDIATE
and are serialized in-process by a lock, so writers queue instead of spinning on SQLITE_BUSY.
Commits are durable by default: `synchronous=FULL` syncs the write-ahead log to disk at every
commit, so an acknowledged claim survives a power loss. `NORMAL` (faster; it can lose the
last commits on power loss, though never corrupts the database) is an explicit option.
PostgreSQL is used as is.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
WRITE_OPTION = "finoa_write"  # execution option marking a unit of work's connection
SQLITE_SYNCHRONOUS_MODES = ("full", "extra", "normal")


def make_engine(url: str, *, pool_size: int = 10, sqlite_synchronous: str = "full") -> Engine:
    """An engine tuned for the backend; the SQLite file's folder is created if needed."""
    if url.startswith("sqlite"):
        if sqlite_synchronous.lower() not in SQLITE_SYNCHRONOUS_MODES:
            raise ValueError(
                f"sqlite_synchronous: {sqlite_synchronous!r} is not one of "
                f"{', '.join(SQLITE_SYNCHRONOUS_MODES)}"
            )
        synchronous = sqlite_synchronous.upper()
        create_private_sqlite_file(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock up front; readers use a deferred snapshot.
            immediate = conn.get_execution_options().get(WRITE_OPTION)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        engine.info_write_lock = threading.Lock()  # type: ignore[attr-defined]
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def write_lock(engine: Engine) -> threading.Lock | None:
    return getattr(engine, "info_write_lock", None)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (`finoa db upgrade`)."""
    create_private_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)


def create_private_sqlite_file(url: str) -> None:
    """Create the SQLite file of `url` (and its folder) readable by its owner only, unless it
    exists; SQLite gives the -wal and -shm files the database's mode."""
    if not url.startswith("sqlite"):
        return
    path = url.split("///", 1)[-1] if "///" in url else ""
    if not path or path == ":memory:" or Path(path).exists():
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def current_revision(url: str) -> str | None:
    create_private_sqlite_file(url)
    engine = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), poolclass=NullPool
    )
    try:
        with engine.connect() as conn:
            return revision_of(conn)
    finally:
        engine.dispose()


def revision_of(conn: Connection) -> str | None:
    """The migration revision the database is at, or None when it was never migrated."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return row[0] if row else None
