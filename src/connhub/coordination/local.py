"""In-process implementations: exact for one process, and the fallback of the shared ones."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from contextlib import AbstractAsyncContextManager
from uuid import UUID

from connhub.domain.connection import Connection, Versioned
from connhub.domain.errors import RateLimited
from connhub.domain.reports import Table

WINDOW_S = 60.0


class LocalRateLimiter:
    """At most `per_minute` live tests of one connection in any 60 s window (both dialects share it)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[tuple[str, UUID], deque[float]] = {}

    async def take(self, tenant: str, connection_id: UUID) -> None:
        now = time.monotonic()
        window = self._windows.setdefault((tenant, connection_id), deque())
        while window and now - window[0] >= WINDOW_S:
            window.popleft()
        if len(window) >= self.per_minute:
            raise limited(self.per_minute, WINDOW_S - (now - window[0]))
        window.append(now)
        if len(self._windows) > 100_000:  # forget idle connections rather than grow without bound
            self._windows = {key: w for key, w in self._windows.items() if w and now - w[-1] < WINDOW_S}


def limited(per_minute: int, wait_s: float) -> RateLimited:
    return RateLimited(f"at most {per_minute} tests a minute per connection", max(1, int(wait_s) + 1))


class LocalTablesCache:
    """Discovered tables by connection (and by the other schemas read with its own), valid for
    `ttl_s` and only for the version they were read at."""

    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[UUID, tuple[str, ...]], tuple[int, float, list[Table]]] = OrderedDict()

    def get(self, connection: Versioned, schemas: tuple[str, ...] = ()) -> list[Table] | None:
        if not self._entries:  # the common case, asked once per row of a list: no hashing a UUID
            return None
        key = (connection.id, schemas)
        entry = self._entries.get(key)
        if entry is None:
            return None
        version, stored_at, tables = entry
        if version != connection.version or time.monotonic() - stored_at > self.ttl_s:
            del self._entries[key]
            return None
        return tables

    async def lookup(self, connection: Connection, schemas: tuple[str, ...] = ()) -> list[Table] | None:
        return self.get(connection, schemas)

    def keep(self, connection: Connection, tables: list[Table], schemas: tuple[str, ...] = ()) -> None:
        key = (connection.id, schemas)
        self._entries[key] = (connection.version, time.monotonic(), tables)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def put(self, connection: Connection, tables: list[Table], schemas: tuple[str, ...] = ()) -> None:
        self.keep(connection, tables, schemas)

    def forget(self, connection_id: UUID) -> None:
        for key in [key for key in self._entries if key[0] == connection_id]:
            del self._entries[key]

    async def drop(self, connection_id: UUID) -> None:
        self.forget(connection_id)


class LocalProbeSlots:
    """At most `limit` probes at once in this process."""

    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)

    def slot(self) -> AbstractAsyncContextManager[None]:
        return _Held(self._semaphore)


class _Held:
    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()

    async def __aexit__(self, *_exc: object) -> None:
        self._semaphore.release()
