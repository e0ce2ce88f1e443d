"""Group update on PostgreSQL: updates of distinct connections that arrive together are one statement.

An update on its own costs BEGIN, UPDATE, DELETE and INSERT of its secrets, and COMMIT: five round
trips. Here a batch is one statement, sent in autocommit (one statement is one transaction): the rows
as one JSON document, each written only if it is still the version its writer read, its removed
secrets deleted and its re-sealed ones upserted, for the rows that were written. Each writer gets
its own outcome: the row as stored, None when someone else wrote it first, or, for a name another
live connection holds, the unique index's refusal (the batch is then retried writer by writer, see
`batching`). Writers of one connection take turns in the service, so a batch never holds a row twice.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from connhub.store.batching import Batcher
from connhub.store.json_rows import JsonRows, json_document
from connhub.store.tables import DATABASE_NOW, connections

MAX_BATCH = 256


@dataclass(frozen=True)
class PendingUpdate:
    """One update waiting for its statement."""

    number: int
    columns: dict[str, Any]  # the columns it sets, `version` (the read version + 1) included
    sealed: list[dict[str, Any]]  # connection_secrets rows to upsert: field, key_id, ciphertext
    removed: list[str]  # secret fields to delete


Session = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


class GroupUpdate:
    def __init__(self, session: Session, max_batch: int = MAX_BATCH) -> None:
        self._session = session
        self._batches: Batcher[PendingUpdate, Row[Any] | None] = Batcher(self._write, max_batch=max_batch)

    async def write(self, update: PendingUpdate) -> Row[Any] | None:
        """The stored row, or None when the row is no longer the version that was read (or is gone)."""
        return await self._batches.submit(update)

    async def _write(self, batch: list[PendingUpdate]) -> list[Row[Any] | Exception | None]:
        rows = [{**update.columns, "number": update.number} for update in batch]
        removed = [{"number": update.number, "field": field} for update in batch for field in update.removed]
        sealed = [
            {**secret, "number": update.number, "ciphertext": base64.b64encode(secret["ciphertext"]).decode()}
            for update in batch
            for secret in update.sealed
        ]
        params = {"rows": _ROWS.document(rows), "removed": json_document(removed), "sealed": json_document(sealed)}
        async with self._session() as conn:
            written = {row.number: row for row in await conn.execute(_UPDATE_BATCH, params)}
        return [written.get(update.number) for update in batch]


# What an update rewrites: everything but the row's identity, owner, product and life span (the
# product changes only by assign, deletion only by delete). tests/store pins it to what `replace` sends.
KEPT_COLUMNS = ("number", "id", "tenant", "product_name", "created_at", "deleted_at")
SET_COLUMNS = [str(column.name) for column in connections.c if column.name not in KEPT_COLUMNS]
_ROWS = JsonRows(connections)


def _assignment(column: str) -> str:
    # When a row changed is the database's clock (one for every replica), not the writer's.
    return f"{column} = {DATABASE_NOW}" if column == "updated_at" else f"{column} = wanted.{column}"


# The version check is `version = new version - 1`: a writer always writes the version after the one
# it read. Secrets are touched only for rows the UPDATE wrote (the joins on `written`); the removed
# and the upserted fields of one row are disjoint, so the two never meet on one key.
_UPDATE_BATCH = text(
    f"""
WITH wanted AS (
    SELECT * FROM json_populate_recordset(NULL::connections, CAST(:rows AS json))
), written AS (
    UPDATE connections AS stored SET {", ".join(_assignment(name) for name in SET_COLUMNS)}
    FROM wanted
    WHERE stored.number = wanted.number AND stored.version = wanted.version - 1 AND stored.deleted_at IS NULL
    RETURNING stored.*
), removed AS (
    DELETE FROM connection_secrets AS secret
    USING json_to_recordset(CAST(:removed AS json)) AS gone(number BIGINT, field TEXT), written
    WHERE written.number = gone.number AND secret.connection_number = gone.number AND secret.field = gone.field
), sealed AS (
    INSERT INTO connection_secrets (connection_number, field, key_id, ciphertext)
    SELECT written.number, fresh.field, fresh.key_id, decode(fresh.ciphertext, 'base64')
    FROM json_to_recordset(CAST(:sealed AS json)) AS fresh(number BIGINT, field TEXT, key_id TEXT, ciphertext TEXT)
    JOIN written ON written.number = fresh.number
    ON CONFLICT (connection_number, field) DO UPDATE SET key_id = EXCLUDED.key_id, ciphertext = EXCLUDED.ciphertext
)
SELECT * FROM written
"""
).columns(*connections.c)


