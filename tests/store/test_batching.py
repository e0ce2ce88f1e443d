"""The Batcher behind group commit and group read: what each waiting request gets back."""

from __future__ import annotations

import asyncio

import pytest

from connhub.domain.errors import StoreUnavailable
from connhub.store.batching import Batcher


class Recorder:
    """A handler that records its batches and answers each item with its double (odd ones: an error)."""

    def __init__(
        self, delay_s: float = 0.001, fail: Exception | None = None, at_fault: int | None = None
    ) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.fail = fail  # raised for the whole batch: always, or when it holds `at_fault`
        self.at_fault = at_fault
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay_s)
            if self.fail is not None and (self.at_fault is None or self.at_fault in items):
                raise self.fail
            return [ValueError(f"odd {item}") if item % 2 else item * 2 for item in items]
        finally:
            self.running -= 1


async def test_concurrent_items_share_batches_and_each_gets_its_own_outcome() -> None:
    handler = Recorder()
    batcher: Batcher[int, int] = Batcher(handler, max_batch=8)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(20)), return_exceptions=True)
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [
        i * 2 if i % 2 == 0 else f"odd {i}" for i in range(20)
    ]
    assert sorted(i for batch in handler.batches for i in batch) == list(range(20))
    assert max(len(batch) for batch in handler.batches) == 8  # bounded by max_batch
    assert len(handler.batches) <= 4  # 20 items in 8 + 8 + 4 (the first may be served alone)


async def test_a_store_outage_answers_every_item_with_its_own_503() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(fail=StoreUnavailable("down")), max_batch=8)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(0, 10, 2)), return_exceptions=True)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert len({id(o) for o in outcomes}) == len(outcomes)  # not one exception object raised in many tasks


async def test_only_the_item_at_fault_gets_the_error_of_a_failed_batch() -> None:
    handler = Recorder(fail=RuntimeError("bad row"), at_fault=13)
    batcher: Batcher[int, int] = Batcher(handler, max_batch=8)
    outcomes = await asyncio.gather(batcher.submit(2), batcher.submit(13), batcher.submit(4), return_exceptions=True)
    assert outcomes[0] == 4 and outcomes[2] == 8
    assert isinstance(outcomes[1], RuntimeError)


async def test_batches_in_flight_are_bounded() -> None:
    handler = Recorder(delay_s=0.01)
    batcher: Batcher[int, int] = Batcher(handler, max_batch=1, max_in_flight=3)
    await asyncio.gather(*(batcher.submit(i * 2) for i in range(12)))
    assert handler.most_running == 3


async def test_a_request_that_goes_away_does_not_disturb_the_others() -> None:
    handler = Recorder(delay_s=0.02)
    batcher: Batcher[int, int] = Batcher(handler, max_batch=8)
    leaving = asyncio.ensure_future(batcher.submit(2))
    staying = asyncio.ensure_future(batcher.submit(4))
    await asyncio.sleep(0.005)
    leaving.cancel()
    assert await staying == 8
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert handler.batches == [[2, 4]]  # the item was served all the same (a create stays written)


async def test_an_item_arriving_just_after_a_batch_is_served() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder(delay_s=0), max_batch=8)
    for value in range(0, 40, 2):  # one at a time: every submit finds the previous drain gone
        assert await batcher.submit(value) == value * 2
