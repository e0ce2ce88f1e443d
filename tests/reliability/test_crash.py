"""`kill -9` of `connhub serve` in the middle of a create load, then a restart: every create that was
acknowledged (201) is there, once, and nothing is half-written (no connection without its secret,
no secret without its connection). On the embedded SQLite store and on PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import Figures
from tests.support.reliability import LoadResult, connhub_serve, create_load, read_store, scratch_pg_database
from tests.support.servers import free_port, require_server

CLOSED_PORT = free_port()
PRODUCT = {"X-Product-Name": "crash"}


def body(name: str) -> dict[str, Any]:
    return {
        "configName": name,
        "type": "MYSQL",
        "host": "127.0.0.1",
        "port": CLOSED_PORT,
        "databaseName": "sales",
        "userName": "reporting",
        "password": f"secret-of-{name}",
        "ssl": {"mode": "prefer"},
        "metadata": {"owner": "crash-test"},
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.db'}"  # `serve` migrates SQLite itself
        return
    require_server("PostgreSQL", "127.0.0.1", 5432)
    with scratch_pg_database("connhub_crash") as url:  # created, migrated, dropped at the end
        yield url


async def test_kill_9_mid_load_loses_nothing_acknowledged(store: str, tmp_path: Path, figures: Figures) -> None:
    env = {
        "CONNHUB_DATABASE_URL": store,
        "CONNHUB_ENCRYPTION_KEYS": "crash:" + base64.b64encode(os.urandom(32)).decode(),
    }
    result = LoadResult()
    with connhub_serve(tmp_path / "serve", env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            stop = asyncio.Event()
            load = asyncio.create_task(
                create_load(http, body, prefix="crash", workers=8, stop=stop, result=result, headers=PRODUCT)
            )
            while len(result.acknowledged) < 60:  # well into the load
                assert not load.done(), result.statuses
                await asyncio.sleep(0.05)
            server.kill9()  # the fault: no shutdown code runs, requests are cut mid-flight
            figures.faults += 1
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.wait_for(load, timeout=30)
            cut = sum(count for outcome, count in result.statuses.items() if not outcome.isdigit())
            assert cut > 0, result.statuses  # some requests really were in flight

        server.start()  # same store, same keys
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            for name, connection_id in result.acknowledged.items():
                fetched = await http.get(f"/v1/management/connections/{connection_id}")
                assert fetched.status_code == 200 and fetched.json()["configName"] == name
            after = await http.post("/v1/management/connections", json=body("after-restart"), headers=PRODUCT)
            assert after.status_code == 201, after.text
            assert (await http.get("/readyz")).status_code == 200

    assert set(result.statuses) - {"201"} <= {"ReadError", "RemoteProtocolError", "ConnectError", "ReadTimeout"}
    state = read_store(store)
    stored = state.names
    lost = [name for name, cid in result.acknowledged.items() if str(stored.get(name)) != cid]
    assert not lost, lost
    assert not state.duplicate_names
    assert not state.live_without_password, "a connection without its secret"
    assert not state.orphan_secrets, "a secret without its connection"
    for number, fields in state.secrets.items():  # every record whole: password and nothing else
        assert set(fields) == {"password"}, (number, fields)
    figures.requests += result.sent + 2 + len(result.acknowledged)
    figures.verified += len(result.acknowledged)
    figures.lost += len(lost)
    figures.note(
        f"{cut} requests cut by the kill; {len(stored) - len(result.acknowledged) - 1} unacknowledged but whole"
    )
