"""Connections written straight through the driver: the raw insert ceiling and the fast fill.

Each row is what a create stores (SPEC.md 3, 6): the connection and its password and CA PEM
sealed with the server's own key ring, bound to tenant, id and field, so a row written here is a
real connection that the API reads, lists and updates. Raw-ceiling rows go to tenant `bench-raw`
(no listing sees them); fill rows to tenant `default`, the one the API serves with auth disabled.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from uuid6 import uuid7

from bench.load import Call
from bench.scenarios import PRODUCT, create_body
from connhub.secrets import Binding, KeyRing

RAW_TENANT = "bench-raw"
API_TENANT = "default"
FILL_BATCH = 1000
COLUMNS = (
    "id, tenant, product_name, config_name, name_key, engine, host, port, database_name, user_name, "
    "schema_name, ssl, metadata, options, sub_type, masked_connection_string, created_at, updated_at, "
    "deleted_at, version"
)
SSL_SUMMARY = json.dumps({"mode": "require", "hasCa": True, "hasCert": False, "hasKey": False})

Row = tuple[list[Any], list[tuple[str, str, bytes]]]  # the connection's columns; (field, key id, blob)


class RowMaker:
    """Rows as a create of `bench-<tag>-<n>` would store them, for one store's column encoding."""

    def __init__(self, key_ring: KeyRing, *, sqlite: bool, tenant: str, tag: str) -> None:
        self.key_ring = key_ring
        self.sqlite = sqlite
        self.tenant = tenant
        self.tag = tag

    def row(self, number: int, created: datetime) -> Row:
        body = create_body(f"bench-{self.tag}-{number:07d}")
        connection_id = uuid7()
        moment = created.astimezone(UTC).replace(tzinfo=None)
        stamp: Any = moment.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else moment
        columns = [
            connection_id.hex if self.sqlite else connection_id,
            self.tenant, PRODUCT, body["configName"], body["configName"].casefold(), body["type"],
            body["host"], body["port"], body["databaseName"], body["userName"], body["schema"],
            SSL_SUMMARY, json.dumps(body["metadata"]), "{}", None, None, stamp, stamp, None, 1,
        ]  # fmt: skip
        secrets = [
            self._sealed(str(connection_id), "password", body["password"]),
            self._sealed(str(connection_id), "ssl.ca", body["ssl"]["ca"]),
        ]
        return columns, secrets

    def _sealed(self, connection_id: str, field: str, plaintext: str) -> tuple[str, str, bytes]:
        blob = self.key_ring.seal(plaintext, Binding(self.tenant, connection_id, field))
        return field, self.key_ring.active_id, blob


def _insert_row(placeholder: str) -> str:
    params = ", ".join([placeholder] * len(COLUMNS.split(",")))
    return f"INSERT INTO connections ({COLUMNS}) VALUES ({params}) RETURNING number"


def _insert_secrets(placeholder: str, rows: int) -> str:
    values = ", ".join(["(" + ", ".join([placeholder] * 4) + ")"] * rows)
    return f"INSERT INTO connection_secrets (connection_number, field, key_id, ciphertext) VALUES {values}"


# -- the raw insert ceiling: one create's transaction per call --------------------------------


@asynccontextmanager
async def postgres_raw_insert(url: str, concurrency: int, maker: RowMaker) -> AsyncIterator[Call]:
    """psycopg 3 async, one connection per client: INSERT the row, INSERT its secrets, COMMIT."""
    connections = [await psycopg.AsyncConnection.connect(url) for _ in range(concurrency)]
    idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    insert_row, insert_secrets = _insert_row("%s"), _insert_secrets("%s", 2)

    async def call(number: int) -> str | None:
        columns, secrets = maker.row(number, datetime.now(UTC))
        connection = await idle.get()
        try:
            async with connection.transaction():
                created = await (await connection.execute(insert_row, columns)).fetchone()
                assert created is not None
                await connection.execute(insert_secrets, [v for s in secrets for v in (created[0], *s)])
        finally:
            idle.put_nowait(connection)
        return None

    try:
        yield call
    finally:
        for connection in connections:
            await connection.close()


@contextmanager
def _sqlite_writer(path: Path) -> Iterator[tuple[sqlite3.Connection, ThreadPoolExecutor]]:
    """The sqlite3 driver with the server's pragmas, used from one thread (SQLite has one writer)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-sqlite")
    try:
        for pragma in ("journal_mode=WAL", "busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=ON"):
            connection.execute(f"PRAGMA {pragma}")
        yield connection, writer
    finally:
        writer.shutdown(wait=True)
        connection.close()


def _sqlite_write(connection: sqlite3.Connection, rows: list[Row]) -> None:
    insert_row, insert_secret = _insert_row("?"), _insert_secrets("?", 1)
    connection.execute("BEGIN IMMEDIATE")
    try:
        for columns, secrets in rows:
            number = connection.execute(insert_row, columns).fetchone()[0]
            connection.executemany(insert_secret, [(number, *secret) for secret in secrets])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


@asynccontextmanager
async def sqlite_raw_insert(path: Path, maker: RowMaker) -> AsyncIterator[Call]:
    """One transaction per call on the single writer thread; the clients queue for it."""
    loop = asyncio.get_running_loop()
    with _sqlite_writer(path) as (connection, writer):

        async def call(number: int) -> str | None:
            row = maker.row(number, datetime.now(UTC))
            await loop.run_in_executor(writer, _sqlite_write, connection, [row])
            return None

        yield call


# -- the fast fill: many rows per transaction -------------------------------------------------


def fill_rows(maker: RowMaker, count: int) -> Iterator[list[Row]]:
    """`count` rows in batches, dated a day ago (older than every row the API made)."""
    since = datetime.now(UTC) - timedelta(days=1)
    for first in range(0, count, FILL_BATCH):
        numbers = range(first, min(first + FILL_BATCH, count))
        yield [maker.row(n, since + timedelta(milliseconds=n)) for n in numbers]


def _row_id(row: Row) -> str:
    value = row[0][0]
    return str(UUID(hex=value)) if isinstance(value, str) else str(value)


async def sqlite_fill(path: Path, maker: RowMaker, count: int) -> str:
    """Write `count` rows; the id of the first."""
    loop = asyncio.get_running_loop()
    first = ""
    with _sqlite_writer(path) as (connection, writer):
        for batch in fill_rows(maker, count):
            first = first or _row_id(batch[0])
            await loop.run_in_executor(writer, _sqlite_write, connection, batch)
    return first


async def postgres_fill(url: str, maker: RowMaker, count: int) -> str:
    """Write `count` rows, a batch per transaction, pipelined; the id of the first."""
    first = ""
    async with await psycopg.AsyncConnection.connect(url) as connection:
        for batch in fill_rows(maker, count):
            first = first or _row_id(batch[0])
            async with connection.transaction(), connection.cursor() as cursor:
                await _postgres_batch(cursor, batch)
    return first


async def _postgres_batch(cursor: psycopg.AsyncCursor[Any], batch: list[Row]) -> None:
    await cursor.executemany(_insert_row("%s"), [columns for columns, _ in batch], returning=True)
    numbers = []
    while True:
        row = await cursor.fetchone()
        assert row is not None
        numbers.append(int(row[0]))
        if not cursor.nextset():
            break
    secrets = [(n, *s) for n, (_, sealed) in zip(numbers, batch, strict=True) for s in sealed]
    await cursor.executemany(_insert_secrets("%s", 1), secrets)
