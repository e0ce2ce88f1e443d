"""List totals: remembered briefly, never past a write of this process, one count at a time."""

from __future__ import annotations

import asyncio

from connhub.domain.listing import ListQuery
from connhub.store.totals import ListTotals

KEY = ListTotals.key("acme", ListQuery(host="db.example.com"))


async def test_a_total_is_remembered_for_its_filters_whatever_the_page() -> None:
    totals = ListTotals(ttl_s=60)
    assert totals.start_counting(KEY)
    totals.done_counting(KEY, 7, totals.generation("acme"))
    assert await totals.get(ListTotals.key("acme", ListQuery(host="db.example.com", page=3, limit=5))) == 7
    assert await totals.get(ListTotals.key("acme", ListQuery(host="other"))) is None
    assert await totals.get(ListTotals.key("globex", ListQuery(host="db.example.com"))) is None


async def test_a_write_forgets_the_tenant_s_totals_even_one_counted_before_it() -> None:
    totals = ListTotals(ttl_s=60)
    counted_at = totals.generation("acme")
    assert totals.start_counting(KEY)
    totals.forget("acme")  # a create commits while the count runs
    totals.done_counting(KEY, 7, counted_at)
    assert await totals.get(KEY) is None  # that count may have missed the new row


async def test_a_total_expires() -> None:
    totals = ListTotals(ttl_s=0.01)
    totals.start_counting(KEY)
    totals.done_counting(KEY, 7, totals.generation("acme"))
    await asyncio.sleep(0.02)
    assert await totals.get(KEY) is None


async def test_one_count_at_a_time_and_the_others_wait_for_it() -> None:
    totals = ListTotals(ttl_s=60)
    assert totals.start_counting(KEY)
    assert not totals.start_counting(KEY)
    waiting = asyncio.ensure_future(totals.get(KEY, wait=True))
    await asyncio.sleep(0)
    assert not waiting.done()
    totals.done_counting(KEY, 9, totals.generation("acme"))
    assert await waiting == 9
    assert totals.start_counting(KEY)  # the count is over: a later miss may count again
