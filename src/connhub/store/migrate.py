"""The store's migrations: Alembic's configuration for a store URL, and `migrate` (under a lock on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, pool, text

from connhub.store.urls import sync_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock's key for migrations: any constant of our own ("connhub migrate" in ASCII hex).
MIGRATION_LOCK = 0x636F6E6E6875626D


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
