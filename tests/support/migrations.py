"""A store taken back to an older schema revision, as an older connhub left it."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, pool

from connhub.store.migrate import alembic_config
from connhub.store.urls import sync_url


def rewind(url: str, revision: str) -> None:
    """Run Alembic's own downgrades of the store at `url` down to `revision` (tables of later
    revisions are gone, as they never were there; re-migrating then creates them again)."""
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()
