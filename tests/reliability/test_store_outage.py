"""The store goes away under load and comes back: nothing acknowledged is lost, nothing is doubled.

A throw-away PostgreSQL (initdb on a free port) is stopped while clients keep creating connections,
then started again. Clients behave as a careful client does: a create that failed (503 or a broken
connection) is retried with the same `X-Idempotency` key until it is acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from connhub.config import Settings
from connhub.store.migrate import migrate
from tests.conftest import client_for
from tests.reliability.conftest import Figures
from tests.support.pg_instance import PG_BIN, PostgresInstance, start_postgres
from tests.support.reliability import is_problem, read_store, require_binary
from tests.support.servers import free_port

BASE = "/v1/management/connections"
CLOSED_PORT = free_port()
REQUEST_BOUND_S = 15.0  # connect_timeout 5 s + pool_timeout 10 s: no request may take longer
RECOVERY_BOUND_S = 5.0


def body(name: str) -> dict[str, Any]:
    return {
        "configName": name,
        "type": "POSTGRESQL",
        "host": "127.0.0.1",
        "port": CLOSED_PORT,
        "databaseName": "orders",
        "userName": "reporter",
        "password": f"pw-{name}",
    }


class CarefulClients:
    """Workers that each create connections one after the other, retrying each until it is
    acknowledged (same name, same idempotency key), and remember every answer."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.acknowledged: dict[str, str] = {}  # name -> id
        self.statuses: dict[str, int] = {}
        self.sent = 0
        self.slowest_s = 0.0
        self.malformed: list[str] = []
        self.stop = asyncio.Event()

    async def run(self, workers: int) -> None:
        await asyncio.gather(*(self._worker(number) for number in range(workers)))

    async def _worker(self, worker: int) -> None:
        sequence = 0
        while not self.stop.is_set():
            name = f"w{worker}-{sequence:04d}"
            while name not in self.acknowledged:
                await self._create(name)
                if name not in self.acknowledged:
                    await asyncio.sleep(0.05)
            sequence += 1

    async def _create(self, name: str) -> None:
        started = time.monotonic()
        self.sent += 1
        headers = {"X-Product-Name": "outage", "X-Idempotency": f"create-{name}"}
        try:
            response = await self.http.post(BASE, json=body(name), headers=headers)
        except httpx.HTTPError as error:
            self._count(type(error).__name__)
            return
        finally:
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
        self._count(str(response.status_code))
        if response.status_code == 201:
            self.acknowledged[name] = response.json()["id"]
        elif not is_problem(response.json()) or response.headers.get("content-type") != "application/json":
            self.malformed.append(response.text[:200])

    def _count(self, outcome: str) -> None:
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


def stop_immediately(pg: PostgresInstance) -> None:
    """`pg_ctl stop -m immediate`: the server quits without a checkpoint, as in a crash, and runs
    crash recovery when started again."""
    command = [str(PG_BIN / "pg_ctl"), "-D", str(pg.data), "stop", "-w", "-m", "immediate"]
    if os.geteuid() == 0:  # the server runs as `postgres` (see pg_instance)
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


async def outage(http: httpx.AsyncClient, clients: CarefulClients, stop: Any, start: Any) -> float:
    """Take the store away under load, check the service says so, bring it back; the recovery time."""
    await asyncio.to_thread(stop)
    await asyncio.sleep(1.5)
    during = await http.get("/readyz")
    assert during.status_code == 503 and during.json()["checks"]["store"] == "unavailable"
    assert (await http.get("/health")).status_code == 200
    stalled = len(clients.acknowledged)
    await asyncio.to_thread(start)
    back = time.monotonic()
    while (await http.get("/readyz")).status_code != 200:
        assert time.monotonic() - back < RECOVERY_BOUND_S, "not ready 5 s after the store came back"
        await asyncio.sleep(0.05)
    while len(clients.acknowledged) <= stalled + 6:  # creating again (6 workers)
        assert time.monotonic() - back < RECOVERY_BOUND_S, f"creates stalled after recovery: {clients.statuses}"
        await asyncio.sleep(0.05)
    return time.monotonic() - back


@contextmanager
def private_store(tmp_path: Path) -> Iterator[tuple[PostgresInstance, Settings]]:
    """A throw-away PostgreSQL with a migrated `connhub` database, and settings that use it."""
    require_binary(PG_BIN / "initdb")
    with start_postgres(tmp_path, ssl=False) as pg:
        pg.execute("CREATE DATABASE connhub")
        url = f"postgresql://postgres:{pg.password}@127.0.0.1:{pg.port}/connhub"
        migrate(url)
        yield pg, Settings(
            database_url=url,
            encryption_keys="outage:" + base64.b64encode(os.urandom(32)).decode(),
            data_dir=tmp_path / "data",
            store_pool_size=4,
        )


async def test_store_outage_under_load_loses_and_doubles_nothing(tmp_path: Path, figures: Figures) -> None:
    with private_store(tmp_path) as (pg, settings):
        url = settings.database_url
        async with client_for(settings) as http:
            clients = CarefulClients(http)
            load = asyncio.create_task(clients.run(workers=6))
            await asyncio.sleep(1.0)
            assert clients.acknowledged, clients.statuses
            recoveries = []
            for stop in (pg.stop, lambda: stop_immediately(pg)):  # a clean shutdown, then a crash
                recoveries.append(await outage(http, clients, stop, pg.start))
                figures.faults += 1
                await asyncio.sleep(0.5)
            clients.stop.set()
            await asyncio.wait_for(load, timeout=REQUEST_BOUND_S * 2)

            # What clients saw: acknowledgements or 503s in the JSON shape, never a 500, never a hang.
            assert clients.statuses.get("503", 0) > 0, clients.statuses
            assert set(clients.statuses) <= {"201", "503"}, clients.statuses
            assert not clients.malformed, clients.malformed[:3]
            assert clients.slowest_s < REQUEST_BOUND_S

            # Every acknowledged create is readable through the API...
            for name, connection_id in clients.acknowledged.items():
                fetched = await http.get(f"{BASE}/{connection_id}")
                assert fetched.status_code == 200 and fetched.json()["configName"] == name

        # ... and in the store: once, with its secret.
        state = read_store(url)
        assert not state.duplicate_names
        stored = state.names
        lost = [name for name, cid in clients.acknowledged.items() if str(stored.get(name)) != cid]
        assert not lost, lost
        assert not state.live_without_password and not state.orphan_secrets
        assert len(stored) == len(clients.acknowledged)  # retried creates were replayed, not doubled

    figures.requests += clients.sent
    figures.verified += len(clients.acknowledged)
    figures.lost += len(lost)
    figures.note(
        f"{clients.statuses.get('503', 0)} answered 503; back in "
        + " and ".join(f"{seconds:.2f} s" for seconds in recoveries)
    )


async def test_lists_answer_503_while_the_store_is_down_and_at_once_after_a_restart(tmp_path: Path) -> None:
    """A list's page is read on PostgreSQL's own driver pool (store/driver_reads.py): the store
    down, it answers 503 in the JSON shape; after a restart, whose sessions the pool still holds,
    the first list already answers (a read on a session the server closed is read again once)."""
    with private_store(tmp_path) as (pg, settings):
        async with client_for(settings) as http:
            for n in range(3):
                created = await http.post(BASE, json=body(f"listed-{n}"), headers={"X-Product-Name": "outage"})
                assert created.status_code == 201, created.text

            async def listed() -> httpx.Response:
                return await asyncio.wait_for(http.get(BASE, params={"limit": "2"}), REQUEST_BOUND_S)

            assert len((await listed()).json()["items"]) == 2
            pg.stop()
            down = await listed()
            assert down.status_code == 503 and is_problem(down.json()), down.text
            pg.start()
            pg.stop()  # a restart between two lists: the pool's sessions are all dead now
            pg.start()
            for _ in range(3):  # every session of the pool was closed by the restart
                back = await listed()
                assert back.status_code == 200, back.text
                assert len(back.json()["items"]) == 2
            team = await asyncio.wait_for(http.get("/team/default/connections"), REQUEST_BOUND_S)
            assert team.status_code == 200 and len(team.json()) == 3
