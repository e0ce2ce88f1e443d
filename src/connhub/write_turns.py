"""Writers of one connection take turns within a process.

Thirty-two PATCHes of one row that all read version 7 would all race to write it: one wins, the
other 31 re-read and race again (optimistic retries collapse to ~25 updates/s and, once bounded,
412s). Queued here instead, they write one after the other, each on top of the last, and each hands
the row it wrote to the next, which then needs no read of its own. Across processes the store's
version check still decides (see `ConnectionService._write_latest`). Nothing outlives the queue:
when its last writer leaves, the turn and what it held (a row, its secrets in clear) are forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Row = TypeVar("Row")


@dataclass
class Turn(Generic[Row]):
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # the writer holding the lock and those waiting for it
    latest: Row | None = None  # what the last writer of this process wrote, for the next one


class WriteTurns(Generic[Row]):
    def __init__(self) -> None:
        self._turns: dict[Hashable, Turn[Row]] = {}

    @asynccontextmanager
    async def take(self, key: Hashable) -> AsyncIterator[Turn[Row]]:
        """Hold `key`'s turn. `turn.latest` is what the writer before wrote (None: nobody did, or
        it deleted); set it to what this writer wrote before leaving."""
        turn = self._turns.setdefault(key, Turn())
        turn.holders += 1
        try:
            async with turn.lock:
                yield turn
        finally:
            turn.holders -= 1
            if turn.holders == 0:
                del self._turns[key]  # nobody holds or awaits it: forget the key
