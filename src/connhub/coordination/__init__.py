"""What replicas must agree on: the test rate limit, the probe concurrency bound, the cache of discovered tables.

Each has one small interface and two implementations: `local` (this process's memory: one process
is the whole service) and `redis` (shared by every process that names the same CONNHUB_REDIS_URL
and CONNHUB_REDIS_PREFIX). `build` picks them from the settings.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from connhub.config import Settings
from connhub.domain.connection import Connection, Versioned
from connhub.domain.reports import Table


class RateLimiter(Protocol):
    async def take(self, tenant: str, connection_id: UUID) -> None:
        """Count one test of the connection, or raise RateLimited (or SharedStateUnavailable)."""


class TablesCache(Protocol):
    """Discovered tables by connection version; `schemas`: the other schemas read with its own
    (validate-schema may name `schema.table` keys), cached apart from the plain read."""

    def get(self, connection: Versioned, schemas: tuple[str, ...] = ()) -> list[Table] | None:
        """This process's copy, without a network call (what a rendering may show in passing)."""

    async def lookup(self, connection: Connection, schemas: tuple[str, ...] = ()) -> list[Table] | None:
        """The tables every replica serves for this version of the connection, while fresh."""

    async def put(self, connection: Connection, tables: list[Table], schemas: tuple[str, ...] = ()) -> None: ...

    async def drop(self, connection_id: UUID) -> None: ...


class ProbeSlots(Protocol):
    def slot(self) -> AbstractAsyncContextManager[None]:
        """Held for the whole of one probe; waits while the bound is reached."""


class SharedLink(Protocol):
    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Coordination:
    rate_limiter: RateLimiter
    tables_cache: TablesCache
    probe_slots: ProbeSlots
    link: SharedLink | None = None  # what the three share (Redis), when they share one

    async def shared_state_answers(self) -> bool | None:
        """None when nothing is shared; else whether Redis answers."""
        return None if self.link is None else await self.link.ping()

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()


def build(settings: Settings) -> Coordination:
    from connhub.coordination import local

    if not settings.redis_url:
        return Coordination(
            local.LocalRateLimiter(settings.tests_per_minute),
            local.LocalTablesCache(settings.tables_cache_ttl_s),
            local.LocalProbeSlots(settings.probe_max_concurrent),
        )
    from connhub.coordination import shared  # redis-py is loaded only when Redis is used

    return shared.coordination(settings)
