"""Store URLs and migrations: one place that knows which driver serves which URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, pool, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock's key for migrations: any constant of our own ("connhub migrate" in ASCII hex).
MIGRATION_LOCK = 0x636F6E6E6875626D


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
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


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
            if connection.dialect.name == "postgresql":
                # Replicas that all migrate on start take turns: the first upgrades, the others then
                # find the schema at head (Alembic reads the version after the lock is held). The lock
                # ends with this transaction, committed or not.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
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
