"""Clients that hang up: 1,000 requests abandoned mid-flight across the routes of a real
`connhub serve`, the ways real clients and networks abandon them (a request line cut short, headers
cut short, a body cut short, chunked or declared, a full request whose answer is never read, a
request left while its live test is still running, an aiohttp client timing out after 5 ms).

Afterwards the process lives and answers, and nothing is left behind: no store session
(pg_stat_activity on PostgreSQL), no file descriptor, no thread, no live-test slot (64 tests at once
still finish within the probe timeout), no 500 in the metrics.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.reliability.conftest import Figures
from tests.support.reliability import ConnhubProcess, connhub_serve, pg_sessions, scratch_pg_database
from tests.support.servers import free_port, require_server

ABORTS = 1000
BATCH = 50
POOL = 4  # CONNHUB_STORE_POOL_SIZE: the store sessions a server may keep open
PROBE_TIMEOUT_S = 1.0
CLOSED_PORT = free_port()
# Threads come from pools that grow on demand up to their size and shrink when idle: AnyIO's 40
# workers (FastAPI runs sync dependencies there), asyncio's default executor (cpu + 4), one per
# SQLite session, and a few of uvicorn's and the interpreter's. A leak would pass that cap; a pool
# growing within it is not one.
THREAD_CAP = 40 + min(32, (os.cpu_count() or 1) + 4) + POOL + 6
PRODUCT = {"X-Product-Name": "hangups"}
KINDS = ("request line cut", "headers cut", "body cut", "chunked body cut", "answer never read", "test left")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hangups.db'}"
        return
    require_server("PostgreSQL", "127.0.0.1", 5432)
    with scratch_pg_database("connhub_hangups") as url:
        yield url


@contextlib.asynccontextmanager
async def silent_database() -> AsyncIterator[int]:
    """A port that accepts connections and never says a word: a live test there waits out its budget."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()


def body(name: str, port: int = CLOSED_PORT) -> dict[str, Any]:
    return {
        "configName": name,
        "type": "POSTGRESQL",
        "host": "127.0.0.1",
        "port": port,
        "databaseName": "d",
        "userName": "u",
        "password": "hang-up-password",
    }


def request_bytes(method: str, path: str, payload: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if payload and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Aborter:
    """Sends requests to every route over raw sockets and hangs up, in turn each of the ways in KINDS."""

    def __init__(self, server: ConnhubProcess, ids: list[str], numbers: list[int], slow_id: str) -> None:
        self.port = server.port
        self.ids, self.numbers, self.slow_id = ids, numbers, slow_id
        self.by_kind: dict[str, int] = {}

    def requests(self, n: int) -> list[bytes]:
        one, number = self.ids[n % len(self.ids)], self.numbers[n % len(self.numbers)]
        created = json.dumps(body(f"hangup-{n}")).encode()
        chartbrew = json.dumps(
            {"name": f"cb-{n}", "type": "postgres", "host": "127.0.0.1", "port": str(CLOSED_PORT), "dbName": "d"}
            | {"username": "u", "password": "hang-up-password"}
        ).encode()
        json_headers = {"Content-Type": "application/json", **PRODUCT}
        boundary = "hangupboundary"
        multipart = f'--{boundary}\r\nContent-Disposition: form-data; name="sslCa"; filename="ca.pem"\r\n\r\n'
        return [
            request_bytes("POST", "/v1/management/connections", created, json_headers),
            request_bytes("PATCH", f"/v1/management/connections/{one}", b'{"port": 5433}', json_headers),
            request_bytes("GET", "/v1/management/connections?limit=100"),
            request_bytes("GET", f"/v1/management/connections/{one}"),
            request_bytes("POST", f"/v1/management/connections/{one}/test"),
            request_bytes("GET", f"/v1/management/connections/{one}/schema?refresh=true"),
            request_bytes("POST", "/team/default/connections", chartbrew, json_headers),
            request_bytes("PUT", f"/team/default/connections/{number}", b'{"port": "5434"}', json_headers),
            request_bytes(
                "POST",
                f"/team/default/connections/{number}/files",
                (multipart + "-----BEGIN CERTIFICATE-----\r\n").encode() * 40,
                {"Content-Type": f"multipart/form-data; boundary={boundary}"},
            ),
            request_bytes("GET", "/v1/data-sources"),
        ]  # fmt: skip

    async def abort(self, n: int) -> None:
        raw = self.requests(n)[n % 10]
        kind = KINDS[(n // 10) % len(KINDS)]
        if kind == "test left":
            raw = request_bytes("POST", f"/v1/management/connections/{self.slow_id}/test")
        head, _, payload = raw.partition(b"\r\n\r\n")
        if kind == "request line cut":
            data = raw[: raw.index(b"\r\n") // 2]
        elif kind == "headers cut":
            data = head[: len(head) * 2 // 3]
        elif kind == "body cut":
            data = head + b"\r\n\r\n" + payload[: len(payload) // 2] if payload else raw[:-2]  # else: no end of head
        elif kind == "chunked body cut":
            chunked = head.replace(b"Content-Length", b"X-Was-Length") + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            data = chunked + f"{len(payload) or 10:x}\r\n".encode() + payload[: len(payload) // 2]
        else:
            data = raw
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(0.005 if kind != "test left" else 0.2)
        finally:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, as a crash
            writer.transport.abort()

    async def aiohttp_timeouts(self, count: int) -> int:
        """An impatient client library: a 5 ms total timeout on requests that take longer."""
        timed_out = 0
        timeout = aiohttp.ClientTimeout(total=0.005)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{self.port}", timeout=timeout) as session:
            for _n in range(count):
                with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                    async with session.post(f"/v1/management/connections/{self.slow_id}/test") as response:
                        await response.read()
                    continue
                timed_out += 1
        self.by_kind["aiohttp timeout"] = self.by_kind.get("aiohttp timeout", 0) + timed_out
        return timed_out


def snapshot(server: ConnhubProcess, database: str | None) -> dict[str, int]:
    taken = {"fds": server.open_fds(), "threads": server.threads(), "rss_kib": server.rss_kib()}
    if database:
        taken["pg_sessions"] = pg_sessions(database)
    return taken


async def many_tests_at_once(base_url: str, connection_id: str, count: int) -> float:
    """`count` live tests at once over as many connections, closed afterwards; the seconds taken."""
    started = time.monotonic()
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        url = f"/v1/management/connections/{connection_id}/test"
        answers = await asyncio.gather(*(http.post(url) for _ in range(count)))
    assert all(answer.status_code == 200 for answer in answers)
    return time.monotonic() - started


async def test_a_thousand_hang_ups_leave_nothing_behind(store: str, tmp_path: Path, figures: Figures) -> None:
    database = make_url(store).database if store.startswith("postgresql") else None
    async with silent_database() as silent_port:
        env = {
            "CONNHUB_DATABASE_URL": store,
            "CONNHUB_ENCRYPTION_KEYS": "hangups:" + base64.b64encode(os.urandom(32)).decode(),
            "CONNHUB_STORE_POOL_SIZE": str(POOL),
            "CONNHUB_PROBE_TIMEOUT_S": str(PROBE_TIMEOUT_S),
            "CONNHUB_PROBE_MAX_CONCURRENT": "8",
            "CONNHUB_PROBE_ALLOW_CIDRS": "127.0.0.0/8",
            "CONNHUB_TESTS_PER_MINUTE": "1000000",
        }
        with connhub_serve(tmp_path / "serve", env) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:

                async def create(name: str, port: int = CLOSED_PORT) -> str:
                    created = await http.post("/v1/management/connections", json=body(name, port), headers=PRODUCT)
                    assert created.status_code == 201, created.text
                    return str(created.json()["id"])

                ids = [await create(f"base-{n}") for n in range(5)]
                slow_id = await create("silent", silent_port)
                numbers = [item["id"] for item in (await http.get("/team/default/connections")).json()]
                # Warm up every route, the store pool and the worker threads to their high-water
                # marks, then take the baseline.
                await many_tests_at_once(server.base_url, slow_id, 64)
                aborter = Aborter(server, ids, numbers, slow_id)
                for n in range(10):
                    method, path, kwargs = _as_httpx(aborter.requests(n)[n])
                    await http.request(method, path, **kwargs)
                before = snapshot(server, database)

                started = time.monotonic()
                for first in range(0, ABORTS - 50, BATCH):
                    await asyncio.gather(*(aborter.abort(n) for n in range(first, first + BATCH)))
                await aborter.aiohttp_timeouts(50)
                storm_s = time.monotonic() - started
                assert server.alive(), server.log()[-2000:]

                await asyncio.sleep(PROBE_TIMEOUT_S + 1.0)  # abandoned live tests run out their budget
                assert (await http.get("/health")).status_code == 200
                assert (await http.get("/readyz")).status_code == 200
                # No live-test slot leaked: 64 tests at once (8 slots) still end within their budgets.
                assert await many_tests_at_once(server.base_url, slow_id, 64) < 64 / 8 * PROBE_TIMEOUT_S + 5
                assert (await http.get(f"/v1/management/connections/{ids[0]}")).status_code == 200
                after = snapshot(server, database)
                metrics = (await http.get("/metrics")).text

    assert sum(aborter.by_kind.values()) == ABORTS, aborter.by_kind
    assert 'status="500"' not in metrics, [line for line in metrics.splitlines() if 'status="500"' in line]
    assert after["fds"] <= before["fds"] + 2 * POOL, (before, after)  # a SQLite session holds 2 files
    assert after["threads"] <= THREAD_CAP, (before, after)
    if database:
        assert after["pg_sessions"] <= POOL, (before, after)
    assert after["rss_kib"] - before["rss_kib"] < 64 * 1024, (before, after)  # MiB of slack, not a leak
    figures.faults += ABORTS
    figures.requests += ABORTS + 64 + 30
    figures.note(
        f"{ABORTS} aborted in {storm_s:.1f} s ({', '.join(f'{k}: {v}' for k, v in sorted(aborter.by_kind.items()))}); "
        f"before/after {before} / {after}"
    )


def _as_httpx(raw: bytes) -> tuple[str, str, Any]:
    """A raw request as (method, path, kwargs) for a well-behaved client (the warm-up)."""
    head, _, payload = raw.partition(b"\r\n\r\n")
    method, path, _ = head.split(b"\r\n")[0].decode().split(" ")
    headers = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n")[1:])
    headers.pop("Content-Length", None)
    return method, path, {"content": payload, "headers": headers}
