"""Writes of one connection that arrive while it is being written are served together.

PostgreSQL makes every commit wait for its WAL to reach the disk (4-6 ms here, more under load),
and writers of one row cannot overlap: one row's updates, one commit each, top out near 200/s
whatever the server does. So writes of one connection queue here, per connection, and whatever
queued while one write was being stored is served as one batch: the service folds consecutive
updates into one stored write (one commit), in arrival order. Between batches the last write is
kept for the next writer, which then needs no read of its own. Nothing outlives the queue: once it
is empty, the connection's entry and what it held (a row, its secrets in clear) are forgotten.
Across processes the store's version check still decides (see `ConnectionService`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from connhub.store.batching import Batcher

Item = TypeVar("Item")
Kept = TypeVar("Kept")
Outcome = TypeVar("Outcome")

MAX_BATCH = 256  # queued writes served together at most


@dataclass
class RowState(Generic[Item, Kept, Outcome]):
    """One connection's queue, and what its last write left for the next (None: nothing yet)."""

    batches: Batcher[Item, Outcome] = field(init=False)
    latest: Kept | None = None


Serve = Callable[[RowState[Item, Kept, Outcome], list[Item]], Awaitable[list[Outcome | Exception]]]


class RowWrites(Generic[Item, Kept, Outcome]):
    def __init__(self, serve: Serve[Item, Kept, Outcome]) -> None:
        self._serve = serve
        self._rows: dict[Hashable, RowState[Item, Kept, Outcome]] = {}

    async def submit(self, key: Hashable, item: Item) -> Outcome:
        """`item`'s outcome, once the batch of `key`'s writes holding it has been served."""
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = RowState()
            row.batches = Batcher(partial(self._serve, row), max_batch=MAX_BATCH)
        try:
            return await row.batches.submit(item)
        finally:
            if row.batches.idle and self._rows.get(key) is row:
                del self._rows[key]
