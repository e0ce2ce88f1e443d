"""The audit trail in the store: written in batches beside the request, read by keyset pages.

`record` only queues the entry (with the acting context of the request that made it) and returns:
a writer task inserts whatever has queued within GATHER_S as one multi-row INSERT, so an audited
request pays no store round trip of its own and a busy server writes one statement for many. Reads of the
trail first wait for this process's queue (`flush`), so a client reads its own actions. A process
killed outright loses the entries still queued (milliseconds of them); a store outage keeps them
queued and retried, up to `max_queued`.

The table is append-only: nothing here updates or deletes it, and a trigger refuses both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select

from connhub.audit import Action, AuditEntry, AuditPage, AuditQuery, Detail, acting, encode_cursor
from connhub.domain.errors import StoreUnavailable
from connhub.store.json_rows import JsonRows
from connhub.store.repository import ConnectionRepository
from connhub.store.tables import audit_log

log = logging.getLogger(__name__)
BATCH = 500
RETRY_MAX_S = 5.0
# The writer waits this long before each INSERT, so one statement carries what many requests
# queued meanwhile (no request waits for it; without the wait a busy PATCH load wrote nearly one
# INSERT per request: +0.5 ms of server CPU each).
GATHER_S = 0.02


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditStore:
    """The `AuditLog` the service writes to, and the reader of `GET /v1/audit`."""

    def __init__(
        self,
        repository: ConnectionRepository,
        *,
        now: Callable[[], datetime] = _utc_now,
        max_queued: int = 100_000,
    ) -> None:
        self._repository = repository
        self._now = now
        self._max_queued = max_queued
        self._queued: list[AuditEntry] = []
        self._writer: asyncio.Task[None] | None = None

    def record(
        self,
        tenant: str,
        action: Action,
        connection_id: UUID | None = None,
        *,
        fields: Collection[str] = (),
        details: Mapping[str, Detail] | None = None,
    ) -> None:
        context = acting()
        self._queued.append(
            AuditEntry(
                tenant=tenant,
                action=action,
                at=self._now(),
                connection_id=connection_id,
                actor=_bounded(context.subject, 255),
                request_id=_bounded(context.request_id, 200),
                dialect=_bounded(context.dialect, 16),
                source=_bounded(context.source, 64),
                fields=tuple(sorted(fields)),
                details=dict(details or {}),
            )
        )
        if len(self._queued) > self._max_queued:
            dropped = len(self._queued) - self._max_queued
            del self._queued[:dropped]
            log.error("audit queue full (store not answering): %d oldest entries dropped", dropped)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every entry queued so far is in the store (or `timeout_s` passed)."""
        async with asyncio.timeout(timeout_s):
            while self._writer is not None and not self._writer.done():
                await asyncio.shield(self._writer)

    async def close(self) -> None:
        try:
            await self.flush(5.0)
        except TimeoutError:
            log.error("audit: %d entries not written at shutdown (store not answering)", len(self._queued))
        if self._writer is not None:
            self._writer.cancel()

    async def _drain(self) -> None:
        pause = 0.1
        while self._queued:
            if len(self._queued) < BATCH:
                await asyncio.sleep(GATHER_S)
            batch, self._queued = self._queued[:BATCH], self._queued[BATCH:]
            try:
                await self._insert(batch)
                pause = 0.1
            except StoreUnavailable:
                self._queued[:0] = batch  # kept, in order, for the next try
                log.warning("audit: store not answering; %d entries queued, retrying", len(self._queued))
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
            except Exception:  # a bug must not loop forever nor kill later batches
                log.exception("audit: %d entries could not be written", len(batch))

    async def _insert(self, batch: list[AuditEntry]) -> None:
        rows = [_row(entry) for entry in batch]
        async with self._repository.write_transaction() as conn:
            if conn.dialect.name == "postgresql":  # one constant statement, not a bind per row
                await conn.exec_driver_sql(_INSERT_POSTGRES, {"rows": _ROWS.document(rows)})
            else:
                await conn.execute(insert(audit_log), rows)

    # -- reading --------------------------------------------------------------------------

    async def page(self, tenant: str, query: AuditQuery) -> AuditPage:
        await self.flush()
        statement = select(audit_log).where(audit_log.c.tenant == tenant)
        if query.before_id is not None:
            statement = statement.where(audit_log.c.id < query.before_id)
        if query.connection_id is not None:
            statement = statement.where(audit_log.c.connection_id == query.connection_id)
        if query.actor is not None:
            statement = statement.where(audit_log.c.actor == query.actor)
        if query.action is not None:
            statement = statement.where(audit_log.c.action == query.action.value)
        if query.since is not None:
            statement = statement.where(audit_log.c.at >= query.since)
        if query.until is not None:
            statement = statement.where(audit_log.c.at < query.until)
        statement = statement.order_by(audit_log.c.id.desc()).limit(query.limit + 1)
        async with self._repository.read_session() as conn:
            rows = (await conn.execute(statement)).all()
        items = [_entry(row._mapping) for row in rows[: query.limit]]
        last = items[-1].id if items else None
        return AuditPage(items, encode_cursor(last) if last is not None and len(rows) > query.limit else None)


def _bounded(text: str | None, length: int) -> str | None:
    return None if text is None else text[:length]


_COLUMNS = [str(column.name) for column in audit_log.c if column.name != "id"]
# In the batch's order, so that ids (the trail's cursor) follow the order entries were recorded in.
_INSERT_POSTGRES = (
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join('entry.' + name for name in _COLUMNS)} "
    "FROM json_populate_recordset(NULL::audit_log, %(rows)s::json) WITH ORDINALITY AS entry ORDER BY entry.ordinality"
)
_ROWS = JsonRows(audit_log)


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "tenant": entry.tenant,
        "at": entry.at,
        "action": entry.action.value,
        "connection_id": entry.connection_id,
        "actor": entry.actor,
        "request_id": entry.request_id,
        "dialect": entry.dialect,
        "source": entry.source,
        "fields": list(entry.fields),
        "details": dict(entry.details),
    }


def _entry(row: Mapping[Any, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        tenant=row["tenant"],
        at=row["at"],
        action=Action(row["action"]),
        connection_id=row["connection_id"],
        actor=row["actor"],
        request_id=row["request_id"],
        dialect=row["dialect"],
        source=row["source"],
        fields=tuple(row["fields"] or ()),
        details=row["details"] or {},
    )
