"""Requests that reach the store together are served by one statement (group commit, group read).

Under load most of a request's store cost is per statement, not per row: a round trip, SQLAlchemy's
execution context, psycopg's query handling, SQLite's thread hop. A `Batcher` queues what concurrent
requests ask and hands whatever has queued to one call that serves them all, then answers each
request with its own outcome (a value, or the error only it hit).

No delay is added to gather a batch: a batch is whatever arrived while the previous one was being
served, so a lone request is served at once and a busy server runs fewer, larger statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from connhub.domain.errors import StoreUnavailable

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
Handler = Callable[[list[Item]], Awaitable[list[Outcome | Exception]]]  # one outcome per item, in order


class Batcher(Generic[Item, Outcome]):
    """Serves queued items through `handle`, at most `max_batch` at a time, `max_in_flight` batches at once.

    A store outage answers every item of the batch with StoreUnavailable. Any other error of a whole
    batch is retried item by item, so only the item at fault gets it (a create with a row the store
    refuses, a get of a row that does not decode) and no exception object is raised in two tasks.
    """

    def __init__(
        self, handle: Handler[Item, Outcome], *, max_batch: int, max_in_flight: int = 1
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch being served."""
        return not self._queue and not self._in_flight

    async def submit(self, item: Item) -> Outcome:
        """`item`'s outcome, once the batch holding it has been served."""
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, answer))
        if len(self._in_flight) < self._max_in_flight:
            self._in_flight.add(asyncio.get_running_loop().create_task(self._drain()))
        return await answer

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                await self._serve(batch)
            batch = []
        finally:
            # Leave in the same step that saw the queue empty, so a new item always finds a drain.
            self._in_flight.discard(asyncio.current_task())
            if batch:  # cancelled (the server is stopping): nobody may wait forever for an answer
                left, self._queue = batch + self._queue, []
                for _, answer in left:
                    _resolve(answer, StoreUnavailable("the connection store is shutting down"))

    async def _serve(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self._handle([item for item, _ in batch])
        except StoreUnavailable as outage:
            outcomes = [StoreUnavailable(outage.message) for _ in batch]
        except Exception as error:
            if len(batch) == 1:
                _resolve(batch[0][1], error)
                return
            for single in batch:
                await self._serve([single])
            return
        for (_, answer), outcome in zip(batch, outcomes, strict=True):
            _resolve(answer, outcome)


def _resolve(answer: asyncio.Future[Outcome], outcome: Outcome | Exception) -> None:
    if answer.done():  # the request went away (cancelled); its item was served all the same
        return
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
