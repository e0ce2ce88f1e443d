"""Redis implementations: every replica that names the same Redis and prefix shares one state.

- Test rate limit: a sorted set of test times per connection, trimmed and counted in one Lua script
  on Redis's own clock (replicas' clocks may differ), so the limit is exact across replicas.
- Probe bound: a sorted set of holders scored by when their lease ends. A holder that dies (a
  killed replica) stops counting when its lease ends; a lease outlives the longest probe, which
  CONNHUB_PROBE_TIMEOUT_S bounds, waiting included.
- Tables cache: one key per connection holding the version it was read at and the tables; what one
  replica stores (a `?refresh=true`) is what every replica answers next.

When Redis does not answer (CONNHUB_REDIS_TIMEOUT_S): the limit fails closed (503, CONN-1021: a
test is never let through uncounted), the cache and the probe bound fall back to this process's
own. A failed call keeps Redis out of the path for `RETRY_AFTER_S`, so an outage costs each
request nothing rather than a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, TypeVar
from uuid import UUID, uuid4

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from connhub.config import Settings
from connhub.coordination import Coordination
from connhub.coordination.local import WINDOW_S, LocalProbeSlots, LocalTablesCache, limited
from connhub.domain.connection import Connection, Versioned
from connhub.domain.errors import SharedStateUnavailable
from connhub.domain.reports import Column, Table

log = logging.getLogger("connhub.coordination")
T = TypeVar("T")
RETRY_AFTER_S = 1.0
LEASE_MARGIN_S = 5.0

_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
# KEYS[1] the connection's window; ARGV limit, window ms, a unique member. -1: taken; else ms to wait.
_TAKE_TEST = _NOW_MS + """
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return -1
"""
# KEYS[1] the holders; ARGV limit, lease ms, a unique member. 1: held; 0: full.
_TAKE_SLOT = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisLink:
    """The client, the key prefix, and the rule for a Redis that does not answer."""

    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection Redis closed meanwhile
        )
        self.prefix = prefix
        self._down_until = 0.0

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() < self._down_until:
            raise SharedStateUnavailable(_DOWN)
        try:
            return await operation()
        except (RedisError, OSError) as error:
            if self._down_until == 0.0:
                log.warning("Redis (CONNHUB_REDIS_URL) is not answering: %s", type(error).__name__)
            self._down_until = time.monotonic() + RETRY_AFTER_S
            raise SharedStateUnavailable(_DOWN) from None

    def up(self) -> None:
        if self._down_until:
            log.warning("Redis (CONNHUB_REDIS_URL) answers again")
        self._down_until = 0.0

    async def ping(self) -> bool:
        try:
            await self.call(self.client.ping)
        except SharedStateUnavailable:
            return False
        self.up()
        return True

    async def close(self) -> None:
        await self.client.aclose()


_DOWN = "the shared test rate limit (Redis, CONNHUB_REDIS_URL) is not answering; try again shortly"


class RedisRateLimiter:
    def __init__(self, link: RedisLink, per_minute: int) -> None:
        self._link = link
        self.per_minute = per_minute
        self._script = link.client.register_script(_TAKE_TEST)

    async def take(self, tenant: str, connection_id: UUID) -> None:
        # Connection ids are unique across tenants: the id alone names the window.
        keys = [self._link.key("tests", str(connection_id))]
        args: list[int | str] = [self.per_minute, int(WINDOW_S * 1000), uuid4().hex]
        wait_ms = int(await self._link.call(lambda: self._script(keys=keys, args=args)))
        self._link.up()
        if wait_ms >= 0:
            raise limited(self.per_minute, wait_ms / 1000)


class RedisTablesCache:
    """Shared by every replica; this process's copy answers while Redis does not."""

    def __init__(self, link: RedisLink, ttl_s: float) -> None:
        self._link = link
        self._ttl_ms = int(ttl_s * 1000)
        self._local = LocalTablesCache(ttl_s)

    def get(self, connection: Versioned, schemas: tuple[str, ...] = ()) -> list[Table] | None:
        return self._local.get(connection, schemas)

    async def lookup(self, connection: Connection, schemas: tuple[str, ...] = ()) -> list[Table] | None:
        if self._ttl_ms < 1:
            return None
        key = self._key(connection.id, schemas)
        try:
            raw = await self._link.call(lambda: self._link.client.get(key))
        except SharedStateUnavailable:
            return self._local.get(connection, schemas)
        if raw is None:
            return None
        version, tables = _decode(raw)
        if version != connection.version:
            return None
        found = [_table(item) for item in tables]
        self._local.keep(connection, found, schemas)
        return found

    async def put(self, connection: Connection, tables: list[Table], schemas: tuple[str, ...] = ()) -> None:
        self._local.keep(connection, tables, schemas)
        if self._ttl_ms < 1:
            return
        key = self._key(connection.id, schemas)
        value = orjson.dumps([connection.version, [_encoded(table) for table in tables]])
        with suppress(SharedStateUnavailable):
            await self._link.call(lambda: self._link.client.set(key, value, px=self._ttl_ms))

    async def drop(self, connection_id: UUID) -> None:
        self._local.forget(connection_id)
        with suppress(SharedStateUnavailable):
            await self._link.call(lambda: self._link.client.delete(self._key(connection_id)))

    def _key(self, connection_id: UUID, schemas: tuple[str, ...] = ()) -> str:
        # Entries with other schemas are not dropped with the plain one: each holds the version it
        # was read at, and any write makes that version old (and the TTL ends them). The key keeps
        # its old word, "schema": replicas of the previous version, during a rolling restart, share it.
        return self._link.key("schema", str(connection_id), *schemas)


class RedisProbeSlots:
    """At most `limit` probes at once over every replica; this process's own bound first."""

    def __init__(self, link: RedisLink, limit: int, lease_s: float) -> None:
        self._link = link
        self._limit = limit
        self._lease_ms = int(lease_s * 1000)
        self._local = LocalProbeSlots(limit)
        self._script = link.client.register_script(_TAKE_SLOT)
        self._key = link.key("probe-slots")

    def slot(self) -> AbstractAsyncContextManager[None]:
        return self._held()

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        async with self._local.slot():
            member = uuid4().hex
            shared = await self._acquire(member)
            try:
                yield
            finally:
                if shared:
                    with suppress(SharedStateUnavailable):
                        await self._link.call(lambda: self._link.client.zrem(self._key, member))

    async def _acquire(self, member: str) -> bool:
        """True once a shared slot is held; False when Redis does not answer (the local bound alone)."""
        pause = 0.01
        args: list[int | str] = [self._limit, self._lease_ms, member]
        while True:
            try:
                if await self._link.call(lambda: self._script(keys=[self._key], args=args)):
                    return True
            except SharedStateUnavailable:
                return False
            await asyncio.sleep(pause)  # the probe's time budget (asyncio.timeout) bounds the wait
            pause = min(pause * 2, 0.2)


def coordination(settings: Settings) -> Coordination:
    assert settings.redis_url
    link = RedisLink(settings.redis_url, settings.redis_prefix, settings.redis_timeout_s)
    return Coordination(
        RedisRateLimiter(link, settings.tests_per_minute),
        RedisTablesCache(link, settings.tables_cache_ttl_s),
        RedisProbeSlots(link, settings.probe_max_concurrent, settings.probe_timeout_s + LEASE_MARGIN_S),
        link,
    )


def _encoded(table: Table) -> list[Any]:
    return [table.name, [[c.name, c.type, c.nullable, c.primary_key] for c in table.columns]]


def _table(item: list[Any]) -> Table:
    name, columns = item
    return Table(name, tuple(Column(*column) for column in columns))


def _decode(raw: bytes | str) -> tuple[int, list[Any]]:
    version, tables = orjson.loads(raw)
    return int(version), tables
