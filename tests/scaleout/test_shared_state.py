"""Two Connhub apps on one store and one Redis behave as one service (in process, real Redis).

The multi-process version, behind HAProxy, is `test_replicas.py`; this one checks the same
promises quickly, and what happens when Redis goes away mid-run (a TCP proxy in front of the real
Redis, cut and restored).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest

from connhub.config import Settings
from tests.conftest import PRODUCT, client_for, seed_body
from tests.scaleout.conftest import REDIS_HOST, REDIS_PORT, execute_in
from tests.support.listeners import SilentListener
from tests.support.servers import free_port
from tests.support.tcp_proxy import TcpProxy

Replicas = list[httpx.AsyncClient]


@pytest.fixture
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def replicas(
    sqlite_url: str, make_settings: Callable[..., Settings], redis_prefix: str, redis_proxy: TcpProxy
) -> Callable[..., AsyncExitStack]:
    """`async with replicas(n, **settings) as stack`: n apps sharing the store and Redis (via the proxy)."""

    def build(**overrides: object) -> AsyncExitStack:
        return _Replicas(
            make_settings(
                sqlite_url,
                redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0",
                redis_prefix=redis_prefix,
                **overrides,
            )
        )

    return build


class _Replicas(AsyncExitStack):
    def __init__(self, settings: Settings, count: int = 2) -> None:
        super().__init__()
        self.settings = settings
        self.count = count
        self.clients: Replicas = []

    async def __aenter__(self) -> _Replicas:  # type: ignore[override]
        await super().__aenter__()
        for _ in range(self.count):
            self.clients.append(await self.enter_async_context(client_for(self.settings)))
        return self


async def _create(http: httpx.AsyncClient, **fields: object) -> str:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    answer = await http.post(
        "/v1/management/connections", json=seed_body(configName=name, **fields), headers=PRODUCT
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def test_the_test_limit_counts_every_replica(replicas: Callable[..., _Replicas]) -> None:
    async with replicas() as stack:
        one, two = stack.clients
        connection = await _create(one, host="127.0.0.1", port=free_port())  # nobody listens: PORT_CLOSED
        answers = [await (one, two)[n % 2].post(f"/v1/management/connections/{connection}/test") for n in range(16)]
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 10, statuses
    assert statuses[10:] == [429] * 6
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in answers[10:])


async def test_a_refresh_on_one_replica_is_what_every_replica_serves(
    replicas: Callable[..., _Replicas], target_database: str
) -> None:
    async with replicas() as stack:
        one, two = stack.clients
        connection = await _create(
            one, host="127.0.0.1", port=5432, databaseName=target_database, userName="postgres", schema=None
        )
        schema = f"/v1/management/connections/{connection}/schema"
        assert _tables(await one.get(schema)) == ["before"]
        execute_in(target_database, "CREATE TABLE after (id int)")
        assert _tables(await two.get(schema)) == ["before"]  # the shared cache, read by the other replica
        assert _tables(await one.get(schema + "?refresh=true")) == ["after", "before"]
        assert _tables(await two.get(schema)) == ["after", "before"]


async def test_redis_going_away_fails_the_limit_closed_and_the_cache_over_to_local(
    replicas: Callable[..., _Replicas], redis_proxy: TcpProxy, target_database: str
) -> None:
    async with replicas() as stack:
        one, _two = stack.clients
        target = await _create(
            one, host="127.0.0.1", port=5432, databaseName=target_database, userName="postgres", schema=None
        )
        schema = f"/v1/management/connections/{target}/schema"
        assert _tables(await one.get(schema)) == ["before"]
        never_read = await _create(
            one, host="127.0.0.1", port=5432, databaseName=target_database, userName="postgres", schema=None
        )
        await redis_proxy.stop()

        test = await one.post(f"/v1/management/connections/{target}/test")
        assert test.status_code == 503
        assert test.json()["code"] == "CONN-1021"
        assert "CONNHUB_REDIS_URL" in test.json()["message"]
        assert test.headers["Retry-After"] == "1"
        assert _tables(await one.get(schema)) == ["before"]  # this replica's own copy
        # A refresh counts as a test (issue 14), so it fails closed too; a first read is not a test and
        # its probe runs under this replica's own bound.
        assert (await one.get(schema + "?refresh=true")).json()["code"] == "CONN-1021"
        assert _tables(await one.get(f"/v1/management/connections/{never_read}/schema")) == ["before"]
        assert (await one.get("/v1/management/connections")).status_code == 200
        ready = await one.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["sharedState"] == "unavailable"

        await redis_proxy.start()
        assert (await _first_test_not_refused(one, target)).status_code == 200
        assert (await one.get("/readyz")).json()["checks"]["sharedState"] == "ok"


async def test_the_probe_bound_holds_over_replicas(replicas: Callable[..., _Replicas], redis_prefix: str) -> None:
    await _hold_probe_slot(redis_prefix, "another-replica", lease_ms=60_000)  # the one slot, taken elsewhere
    async with replicas(probe_max_concurrent=1, probe_timeout_s=1.0) as stack, SilentListener() as silent:
        one, two = stack.clients
        body = seed_body(host="127.0.0.1", port=silent.port)
        reports = await asyncio.gather(
            one.post("/v1/management/connections/test", json=body),
            two.post("/v1/management/connections/test", json=body),
        )
    assert [report.json()["error"]["category"] for report in reports] == ["TIMEOUT", "TIMEOUT"]
    # Each replica's own bound (1) was free: only the shared one kept both probes from connecting.
    assert silent.accepted == 0


async def test_a_dead_replicas_probe_slot_comes_back_when_its_lease_ends(
    replicas: Callable[..., _Replicas], redis_prefix: str
) -> None:
    await _hold_probe_slot(redis_prefix, "dead-replica", lease_ms=1000)  # it died holding the one slot
    async with replicas(probe_max_concurrent=1, probe_timeout_s=2.5) as stack, SilentListener() as silent:
        one, _ = stack.clients
        report = await one.post("/v1/management/connections/test", json=seed_body(host="127.0.0.1", port=silent.port))
    assert report.json()["error"]["category"] == "TIMEOUT"
    assert silent.accepted == 1  # it got the slot once the dead holder's lease ended


async def _hold_probe_slot(prefix: str, holder: str, lease_ms: int) -> None:
    """A probe slot held by another process until `lease_ms` from now (Redis's clock)."""
    import redis.asyncio as aioredis

    from tests.scaleout.conftest import REDIS_URL

    client = aioredis.Redis.from_url(REDIS_URL)
    seconds, micros = await client.time()
    await client.zadd(f"{prefix}probe-slots", {holder: seconds * 1000 + micros // 1000 + lease_ms})
    await client.aclose()


async def _first_test_not_refused(http: httpx.AsyncClient, connection: str) -> httpx.Response:
    """Redis is back: the first test that is not 503 (the replica retries Redis after a pause)."""
    for _ in range(100):
        answer = await http.post(f"/v1/management/connections/{connection}/test")
        if answer.status_code != 503:
            return answer
        await asyncio.sleep(0.1)
    return answer


def _tables(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(table["name"] for table in answer.json()["tables"])
