"""Scheduled health in the store: who is due, leases, results, the webhook outbox, figures.

Claims are one statement: `WITH due AS (SELECT ... FOR UPDATE SKIP LOCKED) UPDATE ... WHERE number IN
(SELECT number FROM due)`, so on
PostgreSQL replicas claiming at once each get other rows, and a row is leased until `lease_until`:
a replica killed mid-check loses that check only, which the next claim after the lease takes up.
SQLite runs the same statement under its single writer (FOR UPDATE is not rendered there).
A result is kept only by the scheduler still holding the lease, in the transaction that moves the
connection's state and queues its webhook events: a check either happened entirely or not at all.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Table, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from connhub.health.model import (
    FOREVER,
    CheckResult,
    Claim,
    HealthPolicy,
    HealthState,
    Outcome,
)
from connhub.store.batching import Batcher
from connhub.store.repository import ConnectionRepository
from connhub.store.tables import connection_health, connections, health_results, webhook_deliveries

ENROLL_BATCH = 5000
RECORD_BATCH = 64
HISTORY_WINDOW = timedelta(days=7)

h = connection_health


@dataclass(frozen=True)
class HealthRow:
    state: HealthState
    state_since: datetime
    next_check_at: datetime
    consecutive_failures: int
    interval_s: int | None
    last_checked_at: datetime | None
    cert_expires_at: datetime | None


@dataclass(frozen=True)
class PendingEvent:
    event_id: UUID
    event_type: str
    body: str


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: UUID
    event_type: str
    body: str
    attempts: int


@dataclass(frozen=True)
class _Record:
    claim: Claim
    owner: str
    outcome: Outcome
    events: tuple[PendingEvent, ...]


class HealthStore:
    def __init__(self, repository: ConnectionRepository) -> None:
        self._repository = repository
        self._records: Batcher[_Record, bool] = Batcher(self._record_batch, max_batch=RECORD_BATCH)

    # -- scheduling ---------------------------------------------------------------------------

    async def enroll(self, now: datetime, policy: HealthPolicy, rng: random.Random) -> int:
        """Watch live connections not watched yet; first checks spread over one interval."""
        unwatched = (
            select(connections.c.number, connections.c.id, connections.c.tenant)
            .where(
                connections.c.deleted_at.is_(None),
                ~exists().where(h.c.connection_number == connections.c.number),
            )
            .limit(ENROLL_BATCH)
        )
        async with self._repository.read_session() as conn:
            found = (await conn.execute(unwatched)).all()
        if not found:
            return 0
        spread = policy.interval_for(None)
        rows = [
            _unchecked(number, connection_id, tenant, now, now + timedelta(seconds=spread * rng.random()))
            for number, connection_id, tenant in found
        ]
        async with self._repository.write_transaction() as conn:
            await _insert_new(conn, h, rows, "connection_number")
        return len(rows)

    async def claim(
        self, now: datetime, owner: str, limit: int, lease_s: float, lookahead_s: float = 0.0
    ) -> list[Claim]:
        """Lease to `owner` up to `limit` connections due by `now + lookahead_s`, most overdue first."""
        due = (
            select(h.c.connection_number)
            .join(connections, connections.c.number == h.c.connection_number)
            .where(
                connections.c.deleted_at.is_(None),
                h.c.next_check_at <= now + timedelta(seconds=lookahead_s),
                or_(h.c.lease_until.is_(None), h.c.lease_until < now),
                or_(h.c.interval_s.is_(None), h.c.interval_s > 0),
            )
            .order_by(h.c.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=h)
            .cte("due")  # a CTE with FOR UPDATE runs exactly once (a subquery may be run again)
        )
        statement = (
            update(h)
            .where(h.c.connection_number.in_(select(due.c.connection_number)))
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            .returning(
                h.c.connection_number,
                h.c.connection_id,
                h.c.tenant,
                h.c.state,
                h.c.state_since,
                h.c.consecutive_failures,
                h.c.interval_s,
                h.c.cert_warned_for,
            )
        )
        async with self._repository.write_transaction() as conn:
            rows = (await conn.execute(statement)).all()
        return [
            Claim(
                r.connection_number,
                r.connection_id,
                r.tenant,
                HealthState(r.state),
                r.state_since,
                r.consecutive_failures,
                r.interval_s,
                r.cert_warned_for,
            )
            for r in rows
        ]

    async def record(self, claim: Claim, owner: str, outcome: Outcome, events: Iterable[PendingEvent]) -> bool:
        """Keep a check's result and its consequences if `owner` still holds the lease (else False).

        Checks that end together are kept in one transaction (`Batcher`): one commit for many."""
        return await self._records.submit(_Record(claim, owner, outcome, tuple(events)))

    async def _record_batch(self, batch: list[_Record]) -> list[bool | Exception]:
        kept: list[bool | Exception] = []
        async with self._repository.write_transaction() as conn:
            for item in batch:
                moved = await conn.execute(
                    update(h)
                    .where(h.c.connection_number == item.claim.connection_number, h.c.lease_owner == item.owner)
                    .values(**_state_columns(item.outcome))
                )
                kept.append(moved.rowcount == 1)  # 0: the lease expired and another scheduler took it
            done = [item for item, ok in zip(batch, kept, strict=True) if ok]
            if done:
                await conn.execute(
                    insert(health_results),
                    [
                        {"connection_number": i.claim.connection_number, **_result_columns(i.outcome.result)}
                        for i in done
                    ],
                )
            await _queue(conn, [event for item in done for event in item.events], self._now_of(done))
        return kept

    @staticmethod
    def _now_of(done: list[_Record]) -> datetime:
        return max((item.outcome.result.checked_at for item in done), default=datetime.min)

    async def release(self, claim: Claim, owner: str, next_check_at: datetime) -> None:
        """Give a claim back unchecked (rate limited, or the connection is gone), due again then."""
        async with self._repository.write_transaction() as conn:
            await conn.execute(
                update(h)
                .where(h.c.connection_number == claim.connection_number, h.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, next_check_at=next_check_at)
            )

    async def set_interval(
        self, number: int, connection_id: UUID, tenant: str, interval_s: int | None, now: datetime
    ) -> None:
        """The connection's own interval (None: back to the default; 0: never checked). With an
        interval it is next due within that interval; back on the default, at once."""
        next_check_at = FOREVER if interval_s == 0 else now + timedelta(seconds=interval_s or 0)
        async with self._repository.write_transaction() as conn:
            await _insert_new(conn, h, [_unchecked(number, connection_id, tenant, now, now)], "connection_number")
            await conn.execute(
                update(h)
                .where(h.c.connection_number == number)
                .values(interval_s=interval_s, next_check_at=next_check_at)
            )

    async def prune(self, now: datetime, retention_days: int) -> int:
        """Forget results past retention, and the watch of connections deleted since."""
        async with self._repository.write_transaction() as conn:
            gone = await conn.execute(
                delete(health_results).where(health_results.c.checked_at < now - timedelta(days=retention_days))
            )
            deleted = select(connections.c.number).where(connections.c.deleted_at.is_not(None))
            await conn.execute(delete(h).where(h.c.connection_number.in_(deleted)))
        return int(gone.rowcount or 0)

    # -- reading ------------------------------------------------------------------------------

    async def row(self, number: int) -> HealthRow | None:
        async with self._repository.read_session() as conn:
            found = (await conn.execute(select(h).where(h.c.connection_number == number))).first()
        if found is None:
            return None
        return HealthRow(
            HealthState(found.state),
            found.state_since,
            found.next_check_at,
            found.consecutive_failures,
            found.interval_s,
            found.last_checked_at,
            found.cert_expires_at,
        )

    async def history(self, number: int, now: datetime) -> list[CheckResult]:
        """Every result of the last seven days, newest first."""
        query = (
            select(health_results)
            .where(health_results.c.connection_number == number, health_results.c.checked_at >= now - HISTORY_WINDOW)
            .order_by(health_results.c.checked_at.desc(), health_results.c.id.desc())
        )
        async with self._repository.read_session() as conn:
            rows = (await conn.execute(query)).all()
        return [
            CheckResult(
                r.checked_at, HealthState(r.status), r.category, r.latency_ms, r.server_version, r.cert_expires_at
            )
            for r in rows
        ]

    async def states(self, tenant: str) -> dict[int, HealthState]:
        """Every checked connection of `tenant` (by number) and its state."""
        query = select(h.c.connection_number, h.c.state).where(h.c.tenant == tenant)
        async with self._repository.read_session() as conn:
            return {number: HealthState(state) for number, state in await conn.execute(query)}

    async def counts(self) -> dict[tuple[str, str], int]:
        """Live connections by (engine, state); never checked counts as unknown."""
        state = func.coalesce(h.c.state, HealthState.UNKNOWN.value)
        query = (
            select(connections.c.engine, state, func.count())
            .select_from(connections.outerjoin(h, h.c.connection_number == connections.c.number))
            .where(connections.c.deleted_at.is_(None))
            .group_by(connections.c.engine, state)
        )
        async with self._repository.read_session() as conn:
            return {(engine, state_): count for engine, state_, count in await conn.execute(query)}

    # -- webhook outbox -----------------------------------------------------------------------

    async def claim_deliveries(self, now: datetime, owner: str, limit: int, lease_s: float) -> list[Delivery]:
        w = webhook_deliveries
        due = (
            select(w.c.id)
            .where(
                w.c.status == "pending",
                w.c.next_attempt_at <= now,
                or_(w.c.lease_until.is_(None), w.c.lease_until < now),
            )
            .order_by(w.c.next_attempt_at, w.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        statement = (
            update(w)
            .where(w.c.id.in_(select(due.c.id)))
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            .returning(w.c.id, w.c.event_id, w.c.event_type, w.c.body, w.c.attempts)
        )
        async with self._repository.write_transaction() as conn:
            rows = (await conn.execute(statement)).all()
        return sorted((Delivery(r.id, r.event_id, r.event_type, r.body, r.attempts) for r in rows), key=lambda d: d.id)

    async def delivered(self, delivery: Delivery) -> None:
        async with self._repository.write_transaction() as conn:
            await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id))

    async def failed(self, delivery: Delivery, error: str, retry_at: datetime | None) -> None:
        """Count a failed attempt: due again at `retry_at`, or a dead letter when None."""
        values: dict[str, Any] = {
            "attempts": delivery.attempts + 1,
            "last_error": error[:500],
            "lease_owner": None,
            "lease_until": None,
        }
        values |= {"next_attempt_at": retry_at} if retry_at is not None else {"status": "dead"}
        async with self._repository.write_transaction() as conn:
            await conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(values))

    async def dead_letters(self) -> int:
        async with self._repository.read_session() as conn:
            query = select(func.count()).select_from(webhook_deliveries).where(webhook_deliveries.c.status == "dead")
            return int((await conn.execute(query)).scalar_one())


def _unchecked(number: int, connection_id: UUID, tenant: str, now: datetime, due: datetime) -> dict[str, Any]:
    return {
        "connection_number": number,
        "connection_id": connection_id,
        "tenant": tenant,
        "state": HealthState.UNKNOWN.value,
        "state_since": now,
        "next_check_at": due,
        "consecutive_failures": 0,
    }


def _state_columns(outcome: Outcome) -> dict[str, Any]:
    result = outcome.result
    values: dict[str, Any] = {
        "state": outcome.state.value,
        "state_since": outcome.state_since,
        "consecutive_failures": outcome.consecutive_failures,
        "next_check_at": outcome.next_check_at,
        "lease_owner": None,
        "lease_until": None,
        "last_checked_at": result.checked_at,
        "last_category": result.category,
        "cert_expires_at": result.cert_expires_at,
    }
    if outcome.cert_warning:
        values["cert_warned_for"] = result.cert_expires_at
    return values


def _result_columns(result: CheckResult) -> dict[str, Any]:
    return {
        "checked_at": result.checked_at,
        "status": result.state.value,
        "category": result.category,
        "latency_ms": result.latency_ms,
        "server_version": None if result.server_version is None else result.server_version[:200],
        "cert_expires_at": result.cert_expires_at,
    }


async def _queue(conn: AsyncConnection, events: list[PendingEvent], now: datetime) -> None:
    if events:
        await conn.execute(
            insert(webhook_deliveries),
            [
                {
                    "event_id": e.event_id,
                    "event_type": e.event_type,
                    "body": e.body,
                    "created_at": now,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for e in events
            ],
        )


async def _insert_new(conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], key: str) -> None:
    """INSERT the rows whose `key` is not in `table` yet (another replica may have just added them)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(dialect.insert(table).on_conflict_do_nothing(index_elements=[key]), rows)
