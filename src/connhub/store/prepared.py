"""PostgreSQL's hot read, a get by id, through psycopg's own pool as a prepared statement.

Reading one connection is most of a registry's traffic. Through SQLAlchemy's async engine a get
costs ~380 us of CPU here (pool checkout, isolation level, execution context, result proxy); the same
SELECT prepared on a psycopg_pool connection costs ~135 us. The statement is still the Core one from
`store/repository.py`, compiled once for PostgreSQL, so the schema stays in one place; only its
execution skips SQLAlchemy. SQLite (in-process, no round trips) reads through SQLAlchemy as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import make_url

from connhub.domain.errors import StoreUnavailable
from connhub.store.tables import UtcDateTime, connections

POOL_TIMEOUT_S = 10  # as the SQLAlchemy pool: a store that does not answer is a 503, not a hang
CONNECT_ARGS = {"connect_timeout": 5, "options": "-c statement_timeout=15000"}
_AWARE_COLUMNS = [(column.name, column.type) for column in connections.c if isinstance(column.type, UtcDateTime)]
_DIALECT = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]


class PreparedReads:
    """Single-row SELECTs on PostgreSQL, prepared once per pooled session."""

    def __init__(self, url: str, max_sessions: int) -> None:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]] = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_sessions,
            open=False,
            timeout=POOL_TIMEOUT_S,
            configure=_configure,
            kwargs={"autocommit": True, "row_factory": dict_row, **CONNECT_ARGS},
        )
        self._checking: asyncio.Task[None] | None = None

    async def one(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row `sql` selects (with timestamps made aware, as SQLAlchemy's UtcDateTime does), or None."""
        await self._pool.open()  # the first call opens it (it needs a running loop); then a no-op
        try:
            async with self._pool.connection() as session:
                cursor = await session.execute(sql, params, prepare=True)
                row = await cursor.fetchone()
        except (psycopg.OperationalError, PoolTimeout, OSError):
            self._forget_broken_sessions()
            raise StoreUnavailable("the connection store is not answering; try again shortly") from None
        if row is None:
            return None
        for name, column_type in _AWARE_COLUMNS:
            row[name] = column_type.process_result_value(row[name], _DIALECT)
        return row

    def _forget_broken_sessions(self) -> None:
        """After a lost store, check the idle sessions at once, so only this request pays for them."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self._pool.check())

    async def close(self) -> None:
        await self._pool.close()


def compiled(statement: Select[Any]) -> str:
    """`statement` as psycopg SQL with %(name)s placeholders."""
    return str(statement.compile(dialect=_DIALECT))


async def _configure(session: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, session)
