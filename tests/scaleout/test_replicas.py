"""The multi-replica harness: three `connhub serve` on one fresh PostgreSQL database and the real
Redis, behind HAProxy (round-robin, health-checked on /readyz), each promise checked through it.

One cluster serves the whole module (starting it is most of the cost); the tests run in file order
and the last one, the rolling key rotation, leaves every replica on a new key.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from connhub.secrets import new_key_entry
from tests.conftest import PRODUCT, seed_body
from tests.scaleout.conftest import execute_in
from tests.support.cluster import Cluster
from tests.support.haproxy import HAPROXY
from tests.support.reliability import read_store, require_binary
from tests.support.servers import free_port, require_server

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_binary(HAPROXY)
    require_server("PostgreSQL", "127.0.0.1", 5432)
    require_server("Redis", "127.0.0.1", 6379)
    with Cluster.started(Path(tmp_path_factory.mktemp("cluster")), replicas=3) as started:
        yield started


def test_three_migrates_raced_on_the_fresh_database_all_succeeded(cluster: Cluster) -> None:
    assert cluster.migrate_exit_codes == [0, 0, 0]


async def test_the_test_limit_is_exact_over_replicas(cluster: Cluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as http:
        connection = await _create(http, host="127.0.0.1", port=free_port())
        answers = [await http.post(f"/v1/management/connections/{connection}/test") for _ in range(30)]
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 10, 429: 20}
    assert {answer.headers["x-served-by"] for answer in answers} == {"r0", "r1", "r2"}


async def test_a_refresh_on_one_replica_is_seen_by_all(cluster: Cluster, target_database: str) -> None:
    async with _direct(cluster) as replicas, httpx.AsyncClient(base_url=cluster.url, timeout=30) as http:
        connection = await _create(
            http, host="127.0.0.1", port=5432, databaseName=target_database, userName="postgres", schema=None
        )
        path = f"/v1/management/connections/{connection}/schema"
        assert [_tables(await replica.get(path)) for replica in replicas] == [["before"]] * 3
        execute_in(target_database, "CREATE TABLE after (id int)")
        assert _tables(await replicas[1].get(path + "?refresh=true")) == ["after", "before"]
        assert [_tables(await replica.get(path)) for replica in replicas] == [["after", "before"]] * 3


async def test_a_replica_killed_mid_burst_loses_no_acknowledged_write(cluster: Cluster) -> None:
    load = Load(cluster.url)
    async with load.running(creators=8):
        await load.until(acknowledged=150)
        await asyncio.to_thread(cluster.replicas[1].kill9)
        await load.until(acknowledged=len(load.acknowledged) + 150)
    await asyncio.to_thread(cluster.replicas[1].start)
    _assert_all_stored(cluster, load)
    assert load.server_errors() == {}, load.statuses
    print(f"\nkill -9 mid-burst: {len(load.acknowledged)} acknowledged, {dict(load.statuses)}, {dict(load.dropped)}")


async def test_a_rolling_key_rotation_under_load_loses_nothing(cluster: Cluster) -> None:
    old, new = cluster.env["CONNHUB_ENCRYPTION_KEYS"], new_key_entry("k2")
    load = Load(cluster.url)
    # A steady load rather than a saturating one: on two cores a saturated machine starts each
    # replica in 5 s instead of 2, and the nine restarts are the test's whole cost.
    async with load.running(creators=2, testers=2, repeaters=1, pause_s=0.05):
        await load.until(acknowledged=40)
        await asyncio.to_thread(cluster.set_everywhere, CONNHUB_ENCRYPTION_KEYS=f"{old},{new}")  # 1. add second
        await asyncio.to_thread(cluster.set_everywhere, CONNHUB_ENCRYPTION_KEYS=f"{new},{old}")  # 2. promote
        rotated = await asyncio.to_thread(cluster.cli, "keys", "rotate")  # 3. re-encrypt
        await asyncio.to_thread(cluster.set_everywhere, CONNHUB_ENCRYPTION_KEYS=new)  # 4. drop the old key
        await load.until(acknowledged=len(load.acknowledged) + 40)
    assert rotated.returncode == 0, rotated.stderr
    assert load.categories["DECRYPT_FAILED"] == 0, load.categories
    assert load.statuses[409] == 0 and load.server_errors() == {}, load.statuses
    assert load.repeats_answered_first == load.repeats > 0
    assert load.tests > 0
    _assert_all_stored(cluster, load)
    assert set(read_store(cluster.database_url).key_ids()) == {"k2"}
    print(
        f"\nrolling rotation: {len(load.acknowledged)} acknowledged, {load.repeats} repeats, {load.tests} tested, "
        f"statuses {dict(load.statuses)}, categories {dict(load.categories)}, dropped {dict(load.dropped)}"
    )


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Load:
    """Clients through HAProxy: creators (each create with an X-Idempotency key), repeaters (an
    earlier create sent again: the first answer expected), testers (a live test of a new connection,
    and a schema read that must open the stored secrets)."""

    url: str
    acknowledged: dict[str, str] = field(default_factory=dict)  # idempotency key (= name) -> id
    statuses: Counter[int] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # transport errors, by kind (then retried)
    repeats: int = 0
    repeats_answered_first: int = 0
    tests: int = 0
    pause_s: float = 0.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _closed_port: int = field(default_factory=free_port)

    def server_errors(self) -> dict[int, int]:
        return {status: count for status, count in self.statuses.items() if status >= 500}

    async def until(self, acknowledged: int) -> None:
        while len(self.acknowledged) < acknowledged:
            await asyncio.sleep(0.05)

    def running(self, creators: int, testers: int = 0, repeaters: int = 0, pause_s: float = 0.0) -> Any:
        load = self
        self.pause_s = pause_s

        class _Running:
            async def __aenter__(self) -> None:
                self.http = httpx.AsyncClient(base_url=load.url, timeout=60)
                roles = [load._creator] * creators + [load._tester] * testers + [load._repeater] * repeaters
                self.tasks = [asyncio.create_task(role(self.http)) for role in roles]

            async def __aexit__(self, *_exc: object) -> None:
                load._stop.set()
                await asyncio.gather(*self.tasks)
                await self.http.aclose()

        return _Running()

    def _body(self, name: str) -> dict[str, Any]:
        return seed_body(configName=name, host="127.0.0.1", port=self._closed_port)

    async def _creator(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            name = f"load-{uuid.uuid4().hex[:12]}"
            answer = await self._create(http, name)
            if answer is not None and answer.status_code == 201:
                self.acknowledged[name] = answer.json()["id"]
            await asyncio.sleep(self.pause_s)

    async def _repeater(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(max(self.pause_s, 0.02))
            if not self.acknowledged:
                continue
            name, first = random.choice(list(self.acknowledged.items()))
            answer = await self._create(http, name)
            self.repeats += 1
            if answer is not None and answer.status_code == 201 and answer.json()["id"] == first:
                self.repeats_answered_first += 1

    async def _tester(self, http: httpx.AsyncClient) -> None:
        tested: set[str] = set()
        while not self._stop.is_set():
            await asyncio.sleep(max(self.pause_s, 0.02))
            fresh = [cid for cid in self.acknowledged.values() if cid not in tested]
            if not fresh:
                continue
            connection = random.choice(fresh)
            tested.add(connection)  # once each: never near the limit of 10 a minute
            test = await http.post(f"/v1/management/connections/{connection}/test")
            schema = await http.get(f"/v1/management/connections/{connection}/schema?refresh=true")
            for answer in (test, schema):
                self.statuses[answer.status_code] += 1
                report = answer.json() if answer.status_code == 200 else answer.json().get("report")
                if report:
                    self.categories[(report.get("error") or {}).get("category", "none")] += 1
            self.tests += 1

    async def _create(self, http: httpx.AsyncClient, name: str) -> httpx.Response | None:
        """A create; on a dropped connection sent again with the same key, as a client should."""
        headers = {**PRODUCT, "X-Idempotency": name}
        for _ in range(5):
            try:
                answer = await http.post("/v1/management/connections", json=self._body(name), headers=headers)
            except httpx.TransportError as error:
                self.dropped[type(error).__name__] += 1
                continue
            self.statuses[answer.status_code] += 1
            return answer
        return None


def _assert_all_stored(cluster: Cluster, load: Load) -> None:
    store = read_store(cluster.database_url)
    names = store.names
    missing = [name for name, cid in load.acknowledged.items() if str(names.get(name)) != cid]
    assert missing == []
    assert store.live_without_password == [] and store.duplicate_names == []



@contextlib.asynccontextmanager
async def _direct(cluster: Cluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    """A client of each replica, bypassing HAProxy."""
    clients = [httpx.AsyncClient(base_url=replica.base_url, timeout=30) for replica in cluster.replicas]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


async def _create(http: httpx.AsyncClient, **fields: Any) -> str:
    body = seed_body(configName=f"replica-{uuid.uuid4().hex[:8]}", **fields)
    answer = await http.post("/v1/management/connections", json=body, headers=PRODUCT)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _tables(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(table["name"] for table in answer.json()["tables"])
