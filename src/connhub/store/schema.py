"""Store URLs and migrations: one place that knows which driver serves which URL."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a user's URL: a plain postgresql:// means psycopg 3."""
    return _with_driver(url, sqlite="sqlite+aiosqlite", postgresql="postgresql+psycopg")


def sync_url(url: str) -> str:
    return _with_driver(url, sqlite="sqlite", postgresql="postgresql+psycopg")


def _with_driver(url: str, *, sqlite: str, postgresql: str) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _ensure_sqlite_dir(parsed.database)
        return parsed.set(drivername=sqlite).render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername=postgresql).render_as_string(hide_password=False)
    raise ValueError("the store must be sqlite:/// or postgresql://")


def _ensure_sqlite_dir(database: str | None) -> None:
    """The SQLite file, created private as the development key file is: a directory made for it is
    0700, a new database file 0600 (SQLite gives its -wal and -shm files the database's mode).
    Existing directories and files keep their modes: the directory may be the user's own."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def alembic_config(url: str) -> Config:
    from alembic.config import Config  # Alembic (~11 MB) is loaded only by those who migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the store at `url` to the newest schema (idempotent)."""
    from alembic import command

    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            _analyze(connection)
    finally:
        engine.dispose()


def _analyze(connection: Connection) -> None:
    """Give PostgreSQL's planner statistics for what migrations made (autovacuum may be off or late)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE connections, connection_secrets, idempotency_keys"))
