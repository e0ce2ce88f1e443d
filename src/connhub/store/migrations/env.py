"""Alembic environment: runs migrations on the connection `connhub.store.migrate` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from connhub.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def run() -> None:
    if connection is not None:
        _migrate(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {}, poolclass=pool.NullPool)
    with engine.connect() as fresh:
        _migrate(fresh)


def _migrate(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
