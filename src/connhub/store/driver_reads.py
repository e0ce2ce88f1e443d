"""PostgreSQL's hottest reads (a list's page) executed straight through psycopg and its pool.

Measured on this machine, one short read through SQLAlchemy's async engine (pool checkout,
execution, result rows) costs ~300 µs of CPU, ~120 µs through psycopg's own pool: on a first
page of 50 rows, that difference was a quarter of the request's CPU, and a 2,000-row list also
paid ~1 µs a row for SQLAlchemy's result rows. The statements stay SQLAlchemy's (`listing.py`):
each is compiled once for PostgreSQL, and only its execution goes this way. Its parameters must
need no conversion (`listing.py` binds timestamps as stored); the rows come back as the driver
reads them.

Failures mean what they mean everywhere in the store: `StoreUnavailable` when PostgreSQL is not
answering. A read on a session the server closed since (a restart) is read again once, on a new
one: reads are safe to repeat, and the first requests after a restart need not fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url

from connhub.domain.errors import STORE_NOT_ANSWERING, StoreUnavailable

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


class DriverReads:
    """A small pool of autocommit psycopg sessions for read-only statements."""

    def __init__(self, url: str, size: int, session_options: Mapping[str, Any], wait_s: float) -> None:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True, **session_options},
            timeout=wait_s,
            open=False,
            name="connhub-reads",
            configure=_decode_json_with_orjson,
        )

    async def rows(self, statement: Select[Any], params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows `statement` reads with `params` (plain tuples, values as the driver reads them)."""
        sql, defaults = _compiled(statement)
        bound = {**defaults, **params}
        try:
            if self._pool.closed:  # opened by the first read, on the serving event loop
                await self._pool.open(wait=False)  # safe to call twice; a closed pool stays closed
            return await self._read(sql, bound)
        except psycopg.OperationalError:  # the pool's PoolTimeout and PoolClosed are ones too
            raise StoreUnavailable(STORE_NOT_ANSWERING) from None

    async def _read(self, sql: str, bound: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            async with self._pool.connection() as session:
                try:
                    cursor = await session.cursor(binary=True).execute(sql, bound, prepare=True)
                    return await cursor.fetchall()
                except psycopg.OperationalError:
                    # A session PostgreSQL closed since (a restart) is broken now, and the pool
                    # drops it: once, the read is made again on another.
                    if attempt == 2 or not session.broken:
                        raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def close(self) -> None:
        await self._pool.close()  # nothing to do for a pool never opened


async def _decode_json_with_orjson(session: psycopg.AsyncConnection[Any]) -> None:
    """JSON columns decoded as the SQLAlchemy engine decodes them (`create_store_engine`)."""
    set_json_loads(orjson.loads, session)


@lru_cache(maxsize=512)
def _compiled(statement: Select[Any]) -> tuple[str, dict[str, Any]]:
    """`statement` as PostgreSQL SQL with %(name)s placeholders, and the values of the parameters
    the statement carries itself (a literal list's members, say)."""
    compiled = statement.compile(dialect=_DIALECT)
    if "POSTCOMPILE" in compiled.string:  # an expanding IN: its SQL depends on each execution's values
        raise ValueError("DriverReads runs statements whose SQL is fixed: use = ANY(array), not IN (...)")
    return compiled.string, dict(compiled.params)
