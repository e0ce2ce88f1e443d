"""List totals, remembered briefly: counting a tenant's rows is the whole cost of a list at scale."""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from connhub.domain.listing import ListQuery


class ListTotals:
    """How many live rows match a list's filters, remembered for `ttl_s` per tenant and filters.

    Counting is the whole cost of a list at 100,000 rows (a scan of the tenant's rows: 20-50 ms of
    PostgreSQL CPU), while the page itself is an index range of 51 rows. Any write through this
    repository forgets its tenant's totals at once; writes by other processes show within `ttl_s`.
    One request counts at a time per key; the others asking meanwhile wait for its total.
    """

    def __init__(self, ttl_s: float = 2.0, max_entries: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[int, float, int]] = {}  # key -> (generation, at, total)
        self._generations: dict[str, int] = {}
        self._counting: dict[tuple[Any, ...], asyncio.Future[None]] = {}  # counts in flight

    @staticmethod
    def key(tenant: str, query: ListQuery) -> tuple[Any, ...]:
        """What the total depends on: the filters, not the page, cursor or order."""
        return (
            tenant,
            query.engine,
            query.host,
            query.database_name,
            query.config_name,
            query.product_name,
            query.start_date,
            query.end_date,
            tuple(sorted(query.metadata.items())),
            query.health,
            query.unassigned,
        )

    def generation(self, tenant: str) -> int:
        return self._generations.get(tenant, 0)

    async def get(self, key: tuple[Any, ...], wait: bool = False) -> int | None:
        """The remembered total; with `wait`, first the count another request is making of it."""
        counting = self._counting.get(key)
        if wait and counting is not None:
            await asyncio.shield(counting)
        entry = self._entries.get(key)
        if entry is None:
            return None
        generation, stored_at, total = entry
        if generation != self.generation(key[0]) or monotonic() - stored_at > self.ttl_s:
            del self._entries[key]
            return None
        return total

    def start_counting(self, key: tuple[Any, ...]) -> bool:
        """Whether the caller should count: False when another request already is (wait for it)."""
        if key in self._counting:
            return False
        self._counting[key] = asyncio.get_running_loop().create_future()
        return True

    def done_counting(self, key: tuple[Any, ...], total: int | None, generation: int) -> None:
        """Remember `total`, counted at `generation` (a write since then makes it stale at once)."""
        if total is not None:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (generation, monotonic(), total)
        self._counting.pop(key).set_result(None)

    def forget(self, tenant: str) -> None:
        self._generations[tenant] = self.generation(tenant) + 1
