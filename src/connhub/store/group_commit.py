"""Group commit: creates that arrive together are written in one transaction (see `batching`).

One transaction per create costs BEGIN, three statements and COMMIT: five round trips to
PostgreSQL (or five hops to SQLite's thread, behind its single write lock). Here a batch of creates
is one transaction of multi-row statements, and each request gets its own outcome: its row number
and creation time, or the name (or idempotency key) clash that only it hit. On PostgreSQL the
creation time is the database's clock (replicas' clocks may differ; keyset cursors order by it).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import Insert, Table, delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from connhub.domain.errors import IdempotencyKeyTaken, NameTaken
from connhub.store.batching import Batcher
from connhub.store.json_rows import JsonRows, json_document, read_back
from connhub.store.tables import DATABASE_NOW, connection_secrets, connections, idempotency_keys

MAX_BATCH = 256  # rows per transaction: bounds one statement's size and one batch's latency


@dataclass(frozen=True)
class NewConnection:
    """One create waiting for its transaction."""

    row: dict[str, Any]  # the connections row, without its number (the store assigns it)
    secrets: list[dict[str, Any]]  # connection_secrets rows, without connection_number
    idempotency: dict[str, Any] | None  # the idempotency_keys row, when the request carried a key

    @property
    def id(self) -> UUID:
        connection_id: UUID = self.row["id"]
        return connection_id


Transaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


class Stored(NamedTuple):
    number: int
    created_at: datetime


class GroupCommit:
    """Writes queued creates, batch after batch, at most `in_flight` transactions at once per process.

    Two at once on PostgreSQL: while one waits for its COMMIT (a WAL flush), the next batch is made
    ready and sent, instead of the process idling (creates used ~65% of a core at concurrency 32).
    Their rows' locks are taken in one order (`_in_lock_order`), so two batches never deadlock.
    """

    def __init__(self, transaction: Transaction, max_batch: int = MAX_BATCH, in_flight: int = 1) -> None:
        self._transaction = transaction
        self._batches: Batcher[NewConnection, Stored] = Batcher(
            self._write, max_batch=max_batch, max_in_flight=in_flight
        )

    async def add(self, new: NewConnection) -> Stored:
        """The stored row's number and creation time, once the transaction holding it has committed."""
        return await self._batches.submit(new)

    async def _write(self, batch: list[NewConnection]) -> list[Stored | Exception]:
        async with self._transaction() as conn:
            outcomes = await _insert_batch(conn, batch)
        return [outcomes[new.id] for new in batch]


async def _insert_batch(conn: AsyncConnection, batch: list[NewConnection]) -> dict[UUID, Stored | Exception]:
    """Insert `batch`; a row whose name or idempotency key is taken is skipped, not fatal to the rest."""
    dialect = conn.dialect.name
    outcomes: dict[UUID, Stored | Exception] = {}
    batch = _in_lock_order(batch)
    keyed = sorted(
        (new for new in batch if new.idempotency is not None),
        key=lambda new: (new.row["tenant"], new.idempotency["key"] if new.idempotency else ""),
    )
    if keyed:
        stored = await conn.execute(
            _insert_skipping_clashes(dialect, idempotency_keys).returning(idempotency_keys.c.response),
            [new.idempotency for new in keyed if new.idempotency is not None],
        )
        kept = {response["connectionId"] for (response,) in stored}
        for new in keyed:
            if str(new.id) not in kept:
                outcomes[new.id] = IdempotencyKeyTaken("a request with this X-Idempotency key is being stored")
    pending = [new for new in batch if new.id not in outcomes]
    stored = await _insert_connections(conn, pending) if pending else {}
    for new in pending:
        if new.id in stored:
            outcomes[new.id] = stored[new.id]
            continue
        outcomes[new.id] = NameTaken(f"a connection named {new.row['config_name']!r} already exists")
        if new.idempotency is not None:  # its key must stay free for a retry with another name
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.tenant == new.idempotency["tenant"],
                    idempotency_keys.c.key == new.idempotency["key"],
                )
            )
    return outcomes


def _in_lock_order(batch: list[NewConnection]) -> list[NewConnection]:
    """`batch` by (tenant, name key): the unique index's order, in which every batch then takes its
    rows' locks. Two transactions that lock in one order cannot wait on each other in a cycle."""
    return sorted(batch, key=lambda new: (new.row["tenant"], new.row["name_key"]))


async def _insert_connections(conn: AsyncConnection, pending: list[NewConnection]) -> dict[UUID, Stored]:
    """Insert the rows and their secrets, skipping rows whose name is taken; id -> how each was stored."""
    if conn.dialect.name == "postgresql":
        return await _insert_connections_postgres(conn, pending)
    inserted = await conn.execute(
        _insert_skipping_clashes(conn.dialect.name, connections).returning(connections.c.id, connections.c.number),
        [new.row for new in pending],
    )
    numbers: dict[UUID, int] = {connection_id: number for connection_id, number in inserted}
    stored = {new.id: Stored(numbers[new.id], new.row["created_at"]) for new in pending if new.id in numbers}
    secrets = [
        {**secret, "connection_number": numbers[new.id]}
        for new in pending
        if new.id in numbers
        for secret in new.secrets
    ]
    if secrets:
        # RETURNING makes SQLAlchemy send one multi-row INSERT rather than one statement per row.
        await conn.execute(insert(connection_secrets).returning(connection_secrets.c.field), secrets)
    return stored


def _insert_skipping_clashes(dialect: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a row that breaks a unique index is left out, not an error."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


# -- PostgreSQL: the whole batch as one statement of one JSON document (see json_rows) ---------

_ROW_COLUMNS = ", ".join(column.name for column in connections.c if column.name != "number")
_ROW_VALUES = ", ".join(
    DATABASE_NOW if column.name in ("created_at", "updated_at") else column.name
    for column in connections.c
    if column.name != "number"
)
_ROWS = JsonRows(connections)

_INSERT_BATCH_POSTGRES = f"""
WITH stored AS (
    INSERT INTO connections ({_ROW_COLUMNS})
    SELECT {_ROW_VALUES} FROM json_populate_recordset(NULL::connections, %(rows)s::json)
    ON CONFLICT DO NOTHING
    RETURNING id, number, created_at
), sealed AS (
    INSERT INTO connection_secrets (connection_number, field, key_id, ciphertext)
    SELECT stored.number, secret.field, secret.key_id, decode(secret.ciphertext, 'base64')
    FROM json_to_recordset(%(secrets)s::json) AS secret(owner UUID, field TEXT, key_id TEXT, ciphertext TEXT)
    JOIN stored ON stored.id = secret.owner
)
SELECT id, number, created_at FROM stored
"""


async def _insert_connections_postgres(conn: AsyncConnection, pending: list[NewConnection]) -> dict[UUID, Stored]:
    secrets = [
        {**secret, "owner": new.id, "ciphertext": base64.b64encode(secret["ciphertext"]).decode()}
        for new in pending
        for secret in new.secrets
    ]
    params = {"rows": _ROWS.document([new.row for new in pending]), "secrets": json_document(secrets)}
    stored = await conn.exec_driver_sql(_INSERT_BATCH_POSTGRES, params)
    return {row.id: Stored(row.number, read_back(row.created_at)) for row in stored}
