"""Writers of one connection take turns within a process.

Thirty-two PATCHes of one row that all read version 7 would all race to write it: one wins, the
other 31 re-read and race again (optimistic retries collapse to ~25 updates/s and, once bounded,
412s). Queued here instead, they write one after the other, each on top of the last. Across
processes the store's version check still decides (see `ConnectionService._write_latest`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class WriteTurns:
    def __init__(self) -> None:
        self._turns: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def take(self, key: Hashable) -> AsyncIterator[bool]:
        """Hold `key`'s turn; yields whether another writer of `key` went first (so what was read is stale)."""
        lock, users = self._turns.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._turns[key] = (lock, users + 1)
        waited = lock.locked()
        try:
            async with lock:
                yield waited
        finally:
            lock, users = self._turns[key]
            if users == 1:
                del self._turns[key]  # no one else holds or awaits it: forget the key
            else:
                self._turns[key] = (lock, users - 1)
