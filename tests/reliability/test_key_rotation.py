"""Key rotation under load, then a restart with the new key only (SPEC.md section 6).

Connections are stored under key `old`. `connhub serve` is started with `new,old` (a key added,
`new` active), and `connhub keys rotate` runs twice at once while clients keep creating connections,
changing passwords and testing connections. The service is then restarted with `new` alone: every
secret still opens (no test answers DECRYPT_FAILED). A secret sealed under a key that is no longer
loaded makes its test answer DECRYPT_FAILED and `/readyz` name the key, and never a 500 anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from connhub.config import Settings
from connhub.store.migrate import migrate
from tests.conftest import client_for
from tests.reliability.conftest import Figures
from tests.support.pki import self_signed
from tests.support.reliability import connhub_serve, read_store
from tests.support.servers import free_port

BASE = "/v1/management/connections"
PRODUCT = {"X-Product-Name": "rotation"}
CLOSED_PORT = free_port()
MAX_CREATES = 120
PACE_S = 0.01  # each client's pause between requests: concurrent, without starving the rotation of CPU
CA, _ = self_signed("rotation-ca")
CERT, KEY = self_signed("rotation-client")


def key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def body(name: str, with_tls: bool = False) -> dict[str, Any]:
    created: dict[str, Any] = {
        "configName": name,
        "type": "POSTGRESQL",
        "host": "127.0.0.1",
        "port": CLOSED_PORT,
        "databaseName": "warehouse",
        "userName": "etl",
        "password": f"pw-{name}",
    }
    if with_tls:
        created["ssl"] = {"mode": "verify-ca", "ca": CA, "cert": CERT, "key": KEY}
    return created


class Load:
    """Creators, testers and password changers, until told to stop; counts every answer."""

    def __init__(self, http: httpx.AsyncClient, ids: list[str]) -> None:
        self.http = http
        self.ids = ids
        self.stop = asyncio.Event()
        self.sent = 0
        self.statuses: dict[str, int] = {}
        self.reports: dict[str, int] = {}
        self._names = itertools.count()

    def _count(self, what: str) -> None:
        self.statuses[what] = self.statuses.get(what, 0) + 1

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        await asyncio.sleep(PACE_S)
        self.sent += 1
        response = await self.http.request(method, url, **kwargs)
        self._count(f"{method} {response.status_code}")
        return response

    async def creator(self) -> None:
        while not self.stop.is_set():
            number = next(self._names)
            if number >= MAX_CREATES:  # enough new records; keep testing and changing
                await asyncio.sleep(0.05)
                continue
            created = await self._call("POST", BASE, json=body(f"during-{number}", number % 3 == 0), headers=PRODUCT)
            if created.status_code == 201:
                self.ids.append(created.json()["id"])

    async def tester(self, offset: int) -> None:
        for index in itertools.count(offset, 7):
            if self.stop.is_set():
                return
            report = (await self._call("POST", f"{BASE}/{self.ids[index % len(self.ids)]}/test")).json()
            category = (report.get("error") or {}).get("category", report.get("status"))
            self.reports[category] = self.reports.get(category, 0) + 1

    async def password_changer(self) -> None:
        """Changes passwords of the first ten records only, so the others wait for the rotation."""
        for index in itertools.count():
            if self.stop.is_set():
                return
            await self._call("PATCH", f"{BASE}/{self.ids[index % 10]}", json={"password": f"new-{index}"})

    async def run(self) -> None:
        await asyncio.gather(
            *(self.creator() for _ in range(3)), *(self.tester(n) for n in range(2)), self.password_changer()
        )


async def rotate(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("CONNHUB_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connhub.cli", "keys", "rotate", "--batch-size", "7",
        env={**clean, **env}, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode()


async def test_rotation_under_load_then_only_the_new_key(tmp_path: Path, figures: Figures) -> None:
    url = f"sqlite:///{tmp_path / 'rotation.db'}"
    migrate(url)
    old, new, gone = key("old"), key("new"), key("gone")
    settings = Settings(database_url=url, encryption_keys=old, data_dir=tmp_path / "data")
    async with client_for(settings) as http:  # what was stored before the new key existed
        ids = [
            (await http.post(BASE, json=body(f"before-{n}", n % 2 == 0), headers=PRODUCT)).json()["id"]
            for n in range(30)
        ]
    assert read_store(url).key_ids() == {"old": 15 * 1 + 15 * 4}

    common = {
        "CONNHUB_DATABASE_URL": url,
        "CONNHUB_PROBE_ALLOW_CIDRS": "127.0.0.0/8",
        "CONNHUB_PROBE_TIMEOUT_S": "2",
        "CONNHUB_TESTS_PER_MINUTE": "100000",
    }
    with connhub_serve(tmp_path / "serve", {**common, "CONNHUB_ENCRYPTION_KEYS": f"{new},{old}"}) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
            load = Load(http, ids)
            running = asyncio.create_task(load.run())
            await asyncio.sleep(0.5)
            env = {"CONNHUB_DATABASE_URL": url, "CONNHUB_ENCRYPTION_KEYS": f"{new},{old}"}
            # Two rotations at once (an operator runs it twice): each swaps only what it read.
            first, second = await asyncio.gather(rotate(env, tmp_path), rotate(env, tmp_path))
            await asyncio.sleep(0.3)
            load.stop.set()
            await running
        assert first[0] == second[0] == 0, (first[1], second[1])
        moved = sum(int(line.split()[1]) for line in (first[1] + second[1]).splitlines() if line.startswith("re-"))
        assert moved >= 10 + 10 * 4, (first[1], second[1])  # records 10-29 were left to the rotation
        assert load.reports.get("DECRYPT_FAILED", 0) == 0, load.reports
        assert all(not status.endswith(" 500") for status in load.statuses), load.statuses

        # Restart with the new key only: every secret opens.
        server.env["CONNHUB_ENCRYPTION_KEYS"] = new
        server.stop()
        server.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
            assert (await http.get("/readyz")).status_code == 200
            listed = (await http.get(BASE, params={"limit": 1000})).json()
            assert listed["total"] == len(ids)
            categories: dict[str, int] = {}
            gate = asyncio.Semaphore(8)

            async def test(connection_id: str) -> None:
                async with gate:
                    report = (await http.post(f"{BASE}/{connection_id}/test")).json()
                category = report["error"]["category"]
                categories[category] = categories.get(category, 0) + 1

            await asyncio.gather(*(test(item["id"]) for item in listed["items"]))
            assert categories == {"PORT_CLOSED": len(ids)}, categories  # opened, so the probe ran
            assert set(read_store(url).key_ids()) == {"new"}

            # A secret under a key the service does not have: DECRYPT_FAILED, named, never a 500.
            async with client_for(Settings(database_url=url, encryption_keys=f"{gone},{new}")) as other:
                orphan = (await other.post(BASE, json=body("sealed-under-gone", True), headers=PRODUCT)).json()
            await asserts_a_missing_key_is_named_never_a_500(http, orphan)

    figures.faults += 2  # a key added and rotated under load; a key removed
    figures.requests += load.sent + len(ids) + 20
    figures.verified += len(ids)
    figures.note(f"{moved} secrets re-encrypted by 2 concurrent rotations; tests meanwhile: {load.reports}")


async def asserts_a_missing_key_is_named_never_a_500(http: httpx.AsyncClient, orphan: dict[str, Any]) -> None:
    one = f"{BASE}/{orphan['id']}"
    report = (await http.post(f"{one}/test")).json()
    assert report["status"] == "failure" and report["error"]["category"] == "DECRYPT_FAILED"
    ready = await http.get("/readyz")
    assert ready.status_code == 503 and "gone" in ready.json()["message"]
    number = next(
        item["id"]
        for item in (await http.get("/team/default/connections")).json()
        if item["name"] == orphan["configName"]
    )
    answers = {
        "list": await http.get(BASE),
        "get": await http.get(one),
        "data sources": await http.get("/v1/data-sources"),
        "chartbrew get": await http.get(f"/team/default/connections/{number}"),
        "chartbrew test": await http.get(f"/team/default/connections/{number}/test"),
        "patch a plain field": await http.patch(one, json={"port": 5433}),
        "patch the password": await http.patch(one, json={"password": "a fresh one"}),
        "schema": await http.get(f"{one}/schema"),
        "duplicate": await http.post(f"/team/default/connections/{number}/duplicate", json={"name": "copy"}),
    }
    for what, response in answers.items():
        assert response.status_code < 500, (what, response.status_code, response.text)
    assert answers["list"].status_code == answers["get"].status_code == 200
    assert answers["chartbrew test"].json()["error"]["category"] == "DECRYPT_FAILED"
