"""The connection repository: every query the service needs, scoped by tenant, on SQLite or PostgreSQL.

Writes are single transactions whose first statement writes, so SQLite takes its write lock at once
(and waits on `busy_timeout`) instead of failing a read-to-write upgrade. Concurrent creates share
a transaction (`group_commit`), concurrent gets a SELECT (`batching`), lists a count (`totals`).
Store failures surface as `StoreUnavailable`; name clashes as `NameTaken`, decided by the unique
index, not by a prior read.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeGuard
from uuid import UUID

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Uuid,
    and_,
    any_,
    bindparam,
    delete,
    event,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from connhub.domain.connection import Connection, ConnectionSpec, SslMode, SslSummary, Stamp, normalized_text
from connhub.domain.engines import Engine
from connhub.domain.errors import STORE_NOT_ANSWERING, NameTaken, NotFound, StoreUnavailable
from connhub.domain.listing import MAX_LIMIT, Cursor, ListQuery, Page
from connhub.domain.ssh import SshSummary
from connhub.store.batching import Batcher
from connhub.store.driver_reads import DriverReads
from connhub.store.group_commit import GroupCommit, NewConnection
from connhub.store.group_update import GroupUpdate, PendingUpdate
from connhub.store.listing import count_statement, list_binds, stamps_statement
from connhub.store.revision import RevisionWatch
from connhub.store.tables import (
    DATABASE_NOW,
    UtcDateTime,
    as_utc,
    connection_secrets,
    connections,
    idempotency_keys,
    key_checks,
)
from connhub.store.totals import ListTotals
from connhub.store.urls import async_url, is_postgresql

Sealed = Mapping[str, tuple[str, bytes]]  # field -> (key id, ciphertext)
GET_BATCH = 128  # ids per SELECT
GET_BATCHES_IN_FLIGHT = 4  # SELECTs at once: a slow one does not hold every other get behind it


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str
    request_hash: str
    connection_id: UUID


@dataclass(frozen=True)
class StoredSecret:
    connection_number: int
    connection_id: UUID
    tenant: str
    field: str
    key_id: str
    ciphertext: bytes


# A store that hangs (rather than refuses) must not hold a request forever: every PostgreSQL session.
SESSION_OPTIONS = {"connect_timeout": 5, "options": "-c statement_timeout=15000"}
POOL_WAIT_S = 10  # for a free session, before the request is answered 503


def read_sessions(pool_size: int) -> int:
    """How many of a PostgreSQL store's `pool_size` sessions serve `DriverReads` (at least one)."""
    return max(1, pool_size // 4)


def create_store_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    """An async engine for `url`; SQLite gets WAL and a busy timeout so writers queue, not fail."""
    full = async_url(url)
    if full.startswith("sqlite"):
        engine = create_async_engine(full, pool_size=pool_size, max_overflow=0, pool_timeout=10)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        full,
        pool_size=pool_size,  # a fixed pool: opening sessions under load costs more than keeping them
        max_overflow=0,
        pool_timeout=POOL_WAIT_S,
        json_serializer=lambda value: orjson.dumps(value).decode(),
        json_deserializer=orjson.loads,
        connect_args=SESSION_OPTIONS,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class ConnectionRepository:
    def __init__(self, engine: AsyncEngine, reads: DriverReads | None = None) -> None:
        self.engine = engine
        self._driver_reads = reads  # PostgreSQL: the hottest reads skip SQLAlchemy's execution
        self._creates = GroupCommit(self._write, in_flight=2 if engine.dialect.name == "postgresql" else 1)
        # On PostgreSQL, gets by id that arrive together are one SELECT ... WHERE id IN (...), and so
        # are reads of connections' secrets (see `batching`). SQLite reads run in aiosqlite's
        # threads, one per session and in parallel: a batch would read its rows' pages one after
        # the other (SQLite get 957 -> 550/s at 100,000 rows), so there a get is one SELECT and only
        # the pool bounds how many run at once.
        if engine.dialect.name == "postgresql":
            batch, in_flight = GET_BATCH, GET_BATCHES_IN_FLIGHT
        else:
            batch, in_flight = 1, sys.maxsize
        self._gets: Batcher[tuple[str, UUID], Connection | None] = Batcher(
            partial(self._get_batch, "id"), max_batch=batch, max_in_flight=in_flight
        )
        self._gets_by_number: Batcher[tuple[str, int], Connection | None] = Batcher(
            partial(self._get_batch, "number"), max_batch=batch, max_in_flight=in_flight
        )
        self._secret_reads: Batcher[int, dict[str, bytes]] = Batcher(
            self._secrets_batch, max_batch=batch, max_in_flight=in_flight
        )
        self._totals = ListTotals()
        # PostgreSQL: updates of distinct connections that arrive together are one statement (SQLite
        # has one writer at a time: there an update stays one short transaction).
        # Its one statement runs in a `_read` session: those autocommit, and one statement is atomic.
        self._updates = GroupUpdate(self._read) if engine.dialect.name == "postgresql" else None
        self.revision = RevisionWatch(self._read)
        # SQLite has one writer at a time. Writers of this process queue here, in order, rather than
        # in SQLite's busy handler, which sleeps and retries (PATCH p99 1.4 s at concurrency 32).
        self._write_turn: AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @classmethod
    def open(cls, url: str, pool_size: int = 20) -> ConnectionRepository:
        """The repository of the store at `url`, keeping at most `pool_size` sessions (on PostgreSQL,
        `read_sessions` of them for the hottest reads, the others for everything else)."""
        if not is_postgresql(url):
            return cls(create_store_engine(url, pool_size))
        reads = read_sessions(pool_size)
        engine = create_store_engine(url, max(1, pool_size - reads))
        return cls(engine, DriverReads(url, reads, SESSION_OPTIONS, POOL_WAIT_S))

    async def close(self) -> None:
        if self._driver_reads is not None:
            await self._driver_reads.close()
        await self.engine.dispose()

    # -- transactions -------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_turn, self._guard(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._guard(), self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def _read_rows(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """The rows a read-only `statement` reads, by the shortest way this store has."""
        if self._driver_reads is not None:
            return await self._driver_reads.rows(statement, params)
        async with self._read() as conn:
            rows: Sequence[Sequence[Any]] = (await conn.execute(statement, params)).all()
        return rows

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Turn 'the store did not answer' into StoreUnavailable (never a 500, never its text)."""
        try:
            yield
        except IntegrityError:
            raise
        except (OperationalError, DBAPIError, PoolTimeout, OSError, TimeoutError) as error:
            if isinstance(error, DBAPIError) and not _is_outage(error):
                raise
            raise StoreUnavailable(STORE_NOT_ANSWERING) from None

    def _now(self, now: datetime) -> Any:
        """When a write happens: on PostgreSQL the database's clock (one for every replica), else `now`."""
        return _DATABASE_NOW if self.engine.dialect.name == "postgresql" else now

    def write_transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction in this process's writer turn, for the stores beside this one (audit, health)."""
        return self._write()

    def read_session(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A read-only session (autocommit on PostgreSQL) under the same outage guard."""
        return self._read()

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(select(1))

    # -- create -------------------------------------------------------------------------------

    async def add(
        self,
        *,
        tenant: str,
        connection_id: UUID,
        product_name: str | None,
        spec: ConnectionSpec,
        masked_uri: str | None,
        sealed: Sealed,
        now: datetime,
        idempotency: IdempotencyRecord | None = None,
    ) -> Connection:
        row = {
            "id": connection_id,
            "tenant": tenant,
            "product_name": product_name,
            **_spec_columns(spec, masked_uri),
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        keyed = None
        if idempotency:
            keyed = {
                "tenant": tenant,
                "key": idempotency.key,
                "request_hash": idempotency.request_hash,
                "response": {"connectionId": str(idempotency.connection_id)},
                "created_at": now,
            }
        number, created_at = await self._creates.add(NewConnection(row, _secret_rows(sealed), keyed))
        self._totals.forget(tenant)
        return _to_connection(
            {**row, "number": number, "created_at": created_at, "updated_at": created_at, "deleted_at": None}
        )

    async def find_idempotent(self, tenant: str, key: str) -> IdempotencyRecord | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(idempotency_keys).where(
                        idempotency_keys.c.tenant == tenant, idempotency_keys.c.key == key
                    )
                )
            ).first()
        if row is None:
            return None
        return IdempotencyRecord(key, row.request_hash, UUID(row.response["connectionId"]))

    # -- read ---------------------------------------------------------------------------------

    async def get(self, tenant: str, connection_id: UUID) -> Connection:
        found = await self._gets.submit((tenant, connection_id))
        if found is None:
            raise NotFound("connection not found")
        return found

    async def _get_batch(self, key: str, wanted: list[tuple[str, Any]]) -> list[Connection | Exception | None]:
        """The connections of `wanted` (tenant, `key` column value) pairs, read in one SELECT."""
        rows = await self._rows_by(key, sorted({value for _, value in wanted}))
        found: list[Connection | Exception | None] = []
        for tenant, value in wanted:
            row = rows.get(value)  # per request: a batch may hold several tenants' gets
            found.append(_to_connection(row) if _visible(row, tenant) else None)
        return found

    async def _rows_by(self, key: str, keys: list[Any]) -> dict[Any, Mapping[Any, Any]]:
        """The stored connections whose unique `key` column is among `keys`, by that value."""
        mapped: list[Mapping[Any, Any]]
        if self._driver_reads is not None:
            rows = await self._driver_reads.rows(_BY_KEY_ARRAY[key], {"keys": keys})
            mapped = [_stored_connection(row) for row in rows]
        else:
            async with self._read() as conn:
                mapped = [row._mapping for row in await conn.execute(_BY_KEYS[key], {"keys": keys})]
        return {row[key]: row for row in mapped}

    async def get_by_number(self, tenant: str, number: int) -> Connection:
        found = await self._gets_by_number.submit((tenant, number))
        if found is None:
            raise NotFound("connection not found")
        return found

    async def get_by_name(self, tenant: str, name: str) -> Connection:
        return await self._one(tenant, connections.c.name_key == normalized_text(name))

    async def _one(self, tenant: str, condition: ColumnElement[bool]) -> Connection:
        async with self._read() as conn:
            row = (await conn.execute(_live(tenant).where(condition))).first()
        if row is None:
            raise NotFound("connection not found")
        return _to_connection(row._mapping)

    async def list_stamps(self, tenant: str, query: ListQuery) -> Page[Stamp]:
        """One page of `query` as stamps (number, version): the caller reads the rows it lacks
        with `get_many`, so a list costs a row's decoding only where its copy is stale."""
        shape, params = list_binds(tenant, query)
        totals_key, generation = ListTotals.key(tenant, query), self._totals.generation(tenant)
        total = await self._totals.get(totals_key)
        counting = total is None and self._totals.start_counting(totals_key)
        try:
            rows = await self._read_rows(stamps_statement(shape, counting), params)
            if counting:  # the page and its total in one statement, one snapshot
                total = rows[0][3] if rows else (await self._read_rows(count_statement(shape), params))[0][0]
        finally:
            if counting:
                self._totals.done_counting(totals_key, total, generation)
        if total is None:  # another request was counting: its total
            total = await self._totals.get(totals_key, wait=True)
        if total is None:
            total = (await self._read_rows(count_statement(shape), params))[0][0]
        # `stamps_statement`'s columns; tuple.__new__ skips the NamedTuple's Python __new__ (once per row).
        items = [tuple.__new__(Stamp, (row[0], row[1])) for row in rows[: query.limit]]
        next_cursor = _cursor_after(rows[query.limit - 1], query) if len(rows) > query.limit else None
        return Page(items, query.page, query.limit, total, next_cursor)

    async def get_many(self, tenant: str, numbers: Sequence[int]) -> list[Connection]:
        """The live connections of `tenant` among `numbers`, in no particular order (one SELECT per
        page of them, by the unique key, as batched gets read)."""
        found: list[Connection] = []
        for start in range(0, len(numbers), MAX_LIMIT):
            wanted = [(tenant, number) for number in numbers[start : start + MAX_LIMIT]]
            rows = await self._get_batch("number", wanted)
            found.extend(row for row in rows if isinstance(row, Connection))
        return found

    async def secrets(self, connection: Connection) -> dict[str, bytes]:
        """The sealed secrets of `connection`, by field (batched with concurrent reads, like gets)."""
        return await self._secret_reads.submit(connection.number)

    async def _secrets_batch(self, numbers: list[int]) -> list[dict[str, bytes] | Exception]:
        found: dict[int, dict[str, bytes]] = {number: {} for number in numbers}
        async with self._read() as conn:
            for row in await conn.execute(_SECRETS_OF, {"numbers": sorted(found)}):
                found[row.connection_number][row.field] = row.ciphertext
        return [found[number] for number in numbers]

    # -- update, delete -----------------------------------------------------------------------

    async def replace(
        self,
        current: Connection,
        spec: ConnectionSpec,
        masked_uri: str | None,
        sealed: Sealed,
        dropped: AbstractSet[str],
        now: datetime,
    ) -> Connection | None:
        """Store `spec` over `current` if nobody changed it since it was read; None when someone did.

        Secrets: the fields in `dropped` are deleted, then `sealed` inserted; the others are kept.
        """
        columns = {**_spec_columns(spec, masked_uri), "updated_at": now, "version": current.version + 1}
        try:
            if self._updates is not None:
                removed = sorted(set(dropped) - set(sealed))  # the re-sealed ones are upserted
                pending = PendingUpdate(current.number, columns, _secret_rows(sealed), removed)
                stored = await self._updates.write(pending)
                return None if stored is None else _to_connection(stored._mapping)
            async with self._write() as conn:
                row = (await conn.execute(_REPLACE_IF_UNCHANGED, columns | _as_read(current))).first()
                if row is None:
                    return None
                if dropped:
                    await conn.execute(_DROP_SECRETS, {"number": current.number, "fields": sorted(dropped)})
                await _insert_secrets(conn, current.number, sealed)
        except IntegrityError:
            raise NameTaken(f"a connection named {spec.config_name!r} already exists") from None
        finally:
            self._totals.forget(current.tenant)
        return _to_connection(row._mapping)

    async def assign_product(
        self, current: Connection, product_name: str, now: datetime
    ) -> Connection | None:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(connections)
                    .where(*_UNCHANGED_SINCE_READ, connections.c.product_name.is_(None))
                    .values(product_name=product_name, updated_at=self._now(now), version=current.version + 1)
                    .returning(*connections.c),
                    _as_read(current),
                )
            ).first()
        self._totals.forget(current.tenant)
        return None if row is None else _to_connection(row._mapping)

    async def soft_delete(self, current: Connection, now: datetime) -> bool:
        """Mark deleted and wipe the secrets, if `current` is still as read; False when it changed."""
        async with self._write() as conn:
            changed = await conn.execute(
                update(connections)
                .where(*_UNCHANGED_SINCE_READ)
                .values(
                    deleted_at=self._now(now),
                    updated_at=self._now(now),
                    version=current.version + 1,
                    masked_connection_string=None,
                ),
                _as_read(current),
            )
            if changed.rowcount == 0:
                return False
            await conn.execute(
                delete(connection_secrets).where(connection_secrets.c.connection_number == current.number)
            )
        self._totals.forget(current.tenant)
        return True

    async def record_ssh_host_keys(self, current: Connection, ssh: SshSummary, now: datetime) -> Connection | None:
        """Store the host keys a successful test trusted on first use, if `current` is still as read.

        A new version (the representation changed: its ETag must too); None when the row changed
        meanwhile (the change wins; the next test records the keys then).
        """
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(connections)
                    .where(*_UNCHANGED_SINCE_READ)
                    .values(ssh=ssh.to_json(), updated_at=now, version=current.version + 1)
                    .returning(*connections.c),
                    _as_read(current),
                )
            ).first()
        self._totals.forget(current.tenant)
        return None if row is None else _to_connection(row._mapping)

    # -- key rotation and readiness ---------------------------------------------------------

    async def key_id_counts(self) -> dict[str, int]:
        async with self._read() as conn:
            rows = await conn.execute(
                select(connection_secrets.c.key_id, func.count()).group_by(connection_secrets.c.key_id)
            )
            return {key_id: count for key_id, count in rows}

    async def key_checks(self, ours: Mapping[str, str], now: datetime) -> dict[str, str]:
        """Record `ours` (key id -> check value) where the id is new; answer the stored value of each."""
        query = select(key_checks.c.key_id, key_checks.c.check_value).where(key_checks.c.key_id.in_(list(ours)))
        async with self._read() as conn:
            stored = {key_id: value for key_id, value in await conn.execute(query)}
        if stored.keys() == ours.keys():
            return stored  # the usual case: a read, no write
        new = [{"key_id": key_id, "check_value": ours[key_id], "created_at": now} for key_id in ours - stored.keys()]
        insert_new = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(key_checks)
        async with self._write() as conn:  # another process may record the same id meanwhile: its value wins
            await conn.execute(insert_new.on_conflict_do_nothing(), new)
            return {key_id: value for key_id, value in await conn.execute(query)}

    async def secrets_not_under(self, key_id: str, after: tuple[int, str], limit: int) -> list[StoredSecret]:
        """A batch of secrets sealed under another key than `key_id`, in (number, field) order."""
        number, field = after
        query = (
            select(
                connection_secrets,
                connections.c.id,
                connections.c.tenant,
            )
            .join(connections, connections.c.number == connection_secrets.c.connection_number)
            .where(
                connection_secrets.c.key_id != key_id,
                or_(
                    connection_secrets.c.connection_number > number,
                    and_(
                        connection_secrets.c.connection_number == number, connection_secrets.c.field > field
                    ),
                ),
            )
            .order_by(connection_secrets.c.connection_number, connection_secrets.c.field)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StoredSecret(r.connection_number, r.id, r.tenant, r.field, r.key_id, r.ciphertext) for r in rows
        ]

    async def reseal_batch(self, resealed: list[tuple[StoredSecret, bytes]], key_id: str) -> list[bool]:
        """Swap each ciphertext if it is still the one that was read (a concurrent update wins), in one
        transaction; whether each was swapped."""
        swapped = []
        async with self._write() as conn:
            for secret, ciphertext in resealed:
                changed = await conn.execute(
                    _RESEAL_IF_UNCHANGED,
                    {
                        "number": secret.connection_number,
                        "field_name": secret.field,
                        "read": secret.ciphertext,
                        "key_id": key_id,
                        "ciphertext": ciphertext,
                    },
                )
                swapped.append(bool(changed.rowcount))
        return swapped


# -- query building -------------------------------------------------------------------------


# Optimistic writes: the row as it was read (number and version), still live; see `_as_read`.
_UNCHANGED_SINCE_READ = (
    connections.c.number == bindparam("at_number"),
    connections.c.version == bindparam("at_version"),
    connections.c.deleted_at.is_(None),
)
# The database's clock as the columns keep it (naive UTC), for writes on PostgreSQL.
_DATABASE_NOW: ColumnElement[Any] = literal_column(DATABASE_NOW)
# SET comes from the parameters' column names (the same set every time: one cached statement).
_REPLACE_IF_UNCHANGED = update(connections).where(*_UNCHANGED_SINCE_READ).returning(*connections.c)
_DROP_SECRETS = delete(connection_secrets).where(
    connection_secrets.c.connection_number == bindparam("number"),
    connection_secrets.c.field.in_(bindparam("fields", expanding=True)),
)
_RESEAL_IF_UNCHANGED = (
    update(connection_secrets)
    .where(
        connection_secrets.c.connection_number == bindparam("number"),
        connection_secrets.c.field == bindparam("field_name"),
        connection_secrets.c.ciphertext == bindparam("read"),
    )
    .values(key_id=bindparam("key_id"), ciphertext=bindparam("ciphertext"))
)
# By id alone, so the unique index on id is the only plan: with tenant and deleted_at in the WHERE,
# a PostgreSQL without statistics (autovacuum off, or a fresh restore) walked the tenant's partial
# index and filtered every row of the tenant (~34 ms at 100,000 rows instead of ~0.1 ms).
_BY_IDS = select(connections).where(connections.c.id.in_(bindparam("keys", expanding=True)))
_BY_NUMBERS = select(connections).where(connections.c.number.in_(bindparam("keys", expanding=True)))  # likewise
_BY_KEYS = {"id": _BY_IDS, "number": _BY_NUMBERS}
# PostgreSQL reads them through `DriverReads`, by an array: one prepared statement serves every
# batch size (each size of IN (...) is a statement of its own). Same plan: the key's unique index.
_BY_KEY_ARRAY = {
    "id": select(connections).where(connections.c.id == any_(bindparam("keys", type_=postgresql.ARRAY(Uuid())))),
    "number": select(connections).where(
        connections.c.number == any_(bindparam("keys", type_=postgresql.ARRAY(BigInteger())))
    ),
}
_CONNECTION_COLUMNS = tuple(column.name for column in connections.columns)  # select(connections)'s order
_TIME_COLUMNS = tuple(column.name for column in connections.columns if isinstance(column.type, UtcDateTime))
_SECRETS_OF = select(
    connection_secrets.c.connection_number, connection_secrets.c.field, connection_secrets.c.ciphertext
).where(connection_secrets.c.connection_number.in_(bindparam("numbers", expanding=True)))


def _visible(row: Mapping[Any, Any] | None, tenant: str) -> TypeGuard[Mapping[Any, Any]]:
    """Whether a row read by its unique key is a live connection of `tenant` (checked here, not in
    the WHERE clause, so that the key's index stays the only plan: see `_BY_IDS`)."""
    return row is not None and row["tenant"] == tenant and row["deleted_at"] is None


def _stored_connection(row: Sequence[Any]) -> dict[str, Any]:
    """A `DriverReads` row of `select(connections)` as SQLAlchemy would map it: by column name, its
    timestamps aware UTC (`UtcDateTime`); JSON columns the driver decodes itself (`DriverReads`)."""
    found = dict(zip(_CONNECTION_COLUMNS, row, strict=True))
    for name in _TIME_COLUMNS:
        if found[name] is not None:
            found[name] = as_utc(found[name])
    return found


def _live(tenant: str) -> Select[Any]:
    return select(connections).where(connections.c.tenant == tenant, connections.c.deleted_at.is_(None))


def _as_read(current: Connection) -> dict[str, int]:
    """The parameters of `_UNCHANGED_SINCE_READ` for `current`."""
    return {"at_number": current.number, "at_version": current.version}


def _cursor_after(last: Sequence[Any], query: ListQuery) -> str:
    """The cursor of the page after `last`, a `stamps_statement` row."""
    value = as_utc(last[2]).isoformat() if query.sort_by == "createdAt" else last[2]
    return Cursor(query.sort_by, query.sort_order, value, last[0]).encode()


# -- row mapping ----------------------------------------------------------------------------


def _spec_columns(spec: ConnectionSpec, masked_uri: str | None) -> dict[str, Any]:
    # The store's own shape (column names, name_key, ssl and ssh as their stored summaries), not the
    # canonical fields of domain.connection.stored_fields: kept apart on purpose.
    ssl = spec.ssl.summary if spec.ssl else None
    return {
        "config_name": spec.config_name,
        "name_key": normalized_text(spec.config_name),
        "engine": spec.engine.value,
        "host": spec.host,
        "port": spec.port,
        "database_name": spec.database_name,
        "user_name": spec.user_name,
        "schema_name": spec.schema_name,
        "ssl": None
        if ssl is None
        else {"mode": ssl.mode.value, "hasCa": ssl.has_ca, "hasCert": ssl.has_cert, "hasKey": ssl.has_key},
        "metadata": spec.metadata,
        "options": spec.options,
        "sub_type": spec.sub_type,
        "masked_connection_string": masked_uri,
        "ssh": spec.ssh.summary.to_json() if spec.ssh else None,
    }


def _secret_rows(sealed: Sealed) -> list[dict[str, Any]]:
    return [
        {"field": field, "key_id": key_id, "ciphertext": ciphertext} for field, (key_id, ciphertext) in sealed.items()
    ]


async def _insert_secrets(conn: AsyncConnection, number: int, sealed: Sealed) -> None:
    if sealed:
        await conn.execute(
            insert(connection_secrets), [{**row, "connection_number": number} for row in _secret_rows(sealed)]
        )


def _to_connection(row: Mapping[Any, Any]) -> Connection:
    ssl = row["ssl"]
    return Connection(
        id=row["id"],
        number=row["number"],
        tenant=row["tenant"],
        product_name=row["product_name"],
        config_name=row["config_name"],
        engine=Engine(row["engine"]),
        host=row["host"],
        port=row["port"],
        database_name=row["database_name"],
        user_name=row["user_name"],
        schema_name=row["schema_name"],
        ssl=None
        if ssl is None
        else SslSummary(SslMode(ssl["mode"]), ssl["hasCa"], ssl["hasCert"], ssl["hasKey"]),
        metadata=row["metadata"],
        options=row["options"] or {},
        sub_type=row["sub_type"],
        masked_connection_string=row["masked_connection_string"],
        ssh=SshSummary.from_json(row["ssh"]) if row["ssh"] else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def _is_outage(error: DBAPIError) -> bool:
    """Whether a driver error means the store is unreachable (rather than a bug in a query)."""
    return bool(error.connection_invalidated) or isinstance(error, OperationalError)
