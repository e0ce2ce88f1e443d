"""Which schema revision a store is at, read without loading Alembic (~9 MB) into the serving process.

`connhub serve` refuses a PostgreSQL store that is not at HEAD (run `connhub migrate`), and /readyz
says "schema behind" while it is not (an older schema answers every route with a 500).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy import Connection, create_engine, inspect, pool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from connhub.store.urls import sync_url

# The newest migration's revision id. tests/store/test_revision.py checks it against Alembic's head,
# so a new migration that forgets to move it fails there, not in production.
HEAD = "0006"
VERSION_TABLE = "alembic_version"
_VERSION = text(f"SELECT version_num FROM {VERSION_TABLE}")
AT_HEAD_TTL_S = 30.0  # a store seen at head is asked again after this long; one behind, every time


def behind_message(revision: str | None) -> str:
    """What a person reads when the store is not at HEAD, naming the command that fixes it."""
    found = "has never been migrated" if revision is None else f"is at schema revision {revision}"
    return f"the store {found}; this connhub needs revision {HEAD}: run `connhub migrate`"


def read_revision(connection: Connection) -> str | None:
    """The store's revision; None when it was never migrated (no version table)."""
    try:
        return connection.execute(_VERSION).scalar_one_or_none()
    except DBAPIError:
        # Rare path only: the one catalog look-up that tells "no table" from a real failure.
        connection.rollback()
        if inspect(connection).has_table(VERSION_TABLE):
            raise
        return None


def store_revision(url: str) -> str | None:
    """The revision of the store at `url` (a short-lived synchronous connection, for the CLI)."""
    engine = create_engine(sync_url(url), poolclass=pool.NullPool, connect_args=_connect_args(url))
    try:
        with engine.connect() as connection:
            return read_revision(connection)
    finally:
        engine.dispose()


def _connect_args(url: str) -> dict[str, object]:
    return {"connect_timeout": 5} if url.startswith("postgres") else {}


class RevisionWatch:
    """The store's revision for /readyz: asked at most every AT_HEAD_TTL_S once it is at HEAD."""

    def __init__(self, connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]]) -> None:
        self._connect = connect
        self._at_head_until = 0.0

    async def behind(self) -> str | None:
        """None when the store is at HEAD, else the message saying what to run."""
        if time.monotonic() < self._at_head_until:
            return None
        async with self._connect() as connection:
            revision = await connection.run_sync(read_revision)
        if revision != HEAD:
            return behind_message(revision)
        self._at_head_until = time.monotonic() + AT_HEAD_TTL_S
        return None
