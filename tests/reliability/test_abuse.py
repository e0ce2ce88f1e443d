"""Abuse of a real `connhub serve`: bodies over 1 MiB (declared, or chunked without a length), JSON
nested 10,000 deep or 10,000 keys wide, numbers no driver can hold, invalid UTF-8 in the body, a
header, the path or the query, huge request heads, and slow clients trickling their headers.

Each gets a clear 4xx in the JSON error shape (or, for request heads, a 4xx and a closed
connection) and never a 5xx; the server's memory stays bounded (RSS measured around each abuse),
and it keeps answering everybody else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import Figures
from tests.support.reliability import ConnhubProcess, connhub_serve, is_problem

MiB = 1024 * 1024
RSS_SLACK_KIB = 64 * 1024  # what one abuse may add to the server's resident memory
HEAD_TIMEOUT_S = 10.0  # connhub.api.protocol.HEAD_TIMEOUT_S, as a user sees it
BASE = "/v1/management/connections"
JSON = {"Content-Type": "application/json", "X-Product-Name": "abuse"}


def valid_body(name: str = "abused") -> dict[str, Any]:
    return {
        "configName": name,
        "type": "POSTGRESQL",
        "host": "db.example.com",
        "port": 5432,
        "databaseName": "d",
        "userName": "u",
        "password": "abuse-password",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnhubProcess]:
    workdir: Path = tmp_path_factory.mktemp("abuse")
    env = {
        "CONNHUB_DATABASE_URL": f"sqlite:///{workdir / 'abuse.db'}",
        "CONNHUB_ENCRYPTION_KEYS": "abuse:" + base64.b64encode(os.urandom(32)).decode(),
    }
    with connhub_serve(workdir / "serve", env) as started:
        yield started


@pytest.fixture
async def http(server: ConnhubProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


@contextlib.asynccontextmanager
async def bounded_memory(server: ConnhubProcess, http: httpx.AsyncClient, figures: Figures) -> AsyncIterator[None]:
    """The abuse inside must leave the server alive, answering, and within RSS_SLACK_KIB of memory."""
    before = server.rss_kib()
    yield
    assert server.alive(), server.log()[-3000:]
    assert (await http.get("/health")).status_code == 200
    assert (await http.get(BASE)).status_code == 200
    grown = server.rss_kib() - before
    assert grown < RSS_SLACK_KIB, f"RSS grew {grown} KiB"
    figures.note(f"server RSS {before // 1024} -> {server.rss_kib() // 1024} MiB")


async def raw_exchange(server: ConnhubProcess, data: bytes, read_timeout: float = 10) -> tuple[bytes, int]:
    """Send raw bytes (as many as the server takes), then read one response (or nothing, if the server
    closed the connection instead). Returns the response and how many bytes were sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    sent = 0
    try:
        for start in range(0, len(data), 64 * 1024):
            writer.write(data[start : start + 64 * 1024])
            await writer.drain()
            sent = start + len(data[start : start + 64 * 1024])
        return await asyncio.wait_for(read_response(reader), read_timeout), sent
    except ConnectionError:  # the server refused to read on, or reset the connection
        with contextlib.suppress(ConnectionError, TimeoutError):
            return await asyncio.wait_for(read_response(reader), 1), sent
        return b"", sent
    finally:
        writer.transport.abort()


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0
    )
    return head + await reader.readexactly(length)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def problem_of(answer: bytes) -> Any:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def assert_refused(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json" and is_problem(response.json())
    if field is not None:
        assert field in response.json()["fields"], response.json()


async def test_bodies_over_1_mib_are_413_whether_declared_or_streamed(
    server: ConnhubProcess, http: httpx.AsyncClient, figures: Figures
) -> None:
    padding = {"metadata": {"pad": "x" * 2000}, "schema": "s"}
    big = json.dumps({**valid_body(), **padding, "subType": "y" * (2 * MiB)}).encode()
    async with bounded_memory(server, http, figures):
        assert_refused(await http.post(BASE, content=big, headers=JSON), 413)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
            for start in range(0, len(big), 64 * 1024):
                yield big[start : start + 64 * 1024]

        assert_refused(await http.post(BASE, content=chunks(), headers=JSON), 413)
        assert_refused(await http.post("/team/7/connections", content=big, headers=JSON), 413)
        # Declared but never sent: refused at once, without waiting for 100 MiB that never comes.
        head = (
            f"POST {BASE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {100 * MiB}\r\n\r\n"
        )
        started = time.monotonic()
        answer, _ = await raw_exchange(server, head.encode() + big[: 64 * 1024])
        assert status_of(answer) == 413 and is_problem(problem_of(answer)) and time.monotonic() - started < 5
        # The certificate upload allows three files of 1 MiB, but not a body of 8 MiB.
        chartbrew = {"name": "abused-cb", "type": "postgres", "host": "db.example.com", "port": "5432"}
        chartbrew |= {"dbName": "d", "username": "u", "password": "p"}
        number = (await http.post("/team/7/connections", json=chartbrew)).json()
        files = {"sslCa": ("ca.pem", b"A" * 8 * MiB, "text/plain")}
        assert_refused(await http.post(f"/team/7/connections/{number['id']}/files", files=files), 413)
    figures.faults += 5
    figures.requests += 6


async def test_deep_wide_and_odd_json_is_a_400_naming_the_problem(
    server: ConnhubProcess, http: httpx.AsyncClient, figures: Figures
) -> None:
    deep = b'{"configName": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    deep_objects = b'{"metadata": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000 + b"}"
    wide = json.dumps({**valid_body(), "metadata": {f"key-{n}": "v" for n in range(10_000)}}).encode()
    odd: list[tuple[bytes, str]] = [
        (deep, "body"),
        (deep_objects, "body"),
        (wide, "metadata"),
        (json.dumps(valid_body()).replace("5432", "1e999").encode(), "body"),  # infinity
        (json.dumps(valid_body()).replace("5432", str(2**70)).encode(), "port"),  # read as a float
        (json.dumps(valid_body()).replace("5432", "5432.000000001").encode(), "port"),
        (json.dumps(valid_body()).replace('"d"', '"d\\u0000b"').encode(), "databaseName"),  # NUL
        (json.dumps(valid_body()).replace('"u"', '"\\ud800"').encode(), "body"),  # a lone surrogate
        (b"[" + json.dumps(valid_body()).encode() + b"]", "body"),
        (b"null", "body"),
        (b"", "body"),
        (b'{"configName": "a", "configName": "bb"}', "configName"),  # the last one wins, and is short
    ]
    async with bounded_memory(server, http, figures):
        for raw, field in odd:
            response = await http.post(BASE, content=raw, headers=JSON)
            assert_refused(response, 400, field)
            for chartbrew in ("/team/7/connections", "/team/7/connections/postgres/test"):
                assert (await http.post(chartbrew, content=raw, headers=JSON)).status_code == 400
    figures.faults += 3 * len(odd)
    figures.requests += 3 * len(odd)


async def test_invalid_utf8_anywhere_is_a_clear_400(
    server: ConnhubProcess, http: httpx.AsyncClient, figures: Figures
) -> None:
    body = json.dumps(valid_body("utf8-check")).encode()
    async with bounded_memory(server, http, figures):
        assert_refused(await http.post(BASE, content=body.replace(b"utf8", b"\xff\xfe"), headers=JSON), 400, "body")
        bad_header = {b"Content-Type": b"application/json", b"X-Product-Name": b"\xff\xfeabuse"}
        assert_refused(await http.post(BASE, content=body, headers=bad_header), 400, "X-Product-Name")
        assert_refused(await http.get(f"{BASE}/%FF%FE"), 400, "id")
        assert (
            await http.get(BASE, params={"configName": "\udcff".encode("utf-8", "surrogatepass")})
        ).status_code < 500
        assert (await http.get(f"{BASE}?configName=%FF%FE")).status_code == 200
        assert (await http.get("/team/%FF/connections")).status_code in (200, 400)
        answer, _ = await raw_exchange(server, b"GET /v1/management/connections/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
        assert 400 <= status_of(answer) < 500 or answer == b""
    figures.faults += 7
    figures.requests += 7


async def test_huge_request_heads_are_refused_with_bounded_memory(
    server: ConnhubProcess, http: httpx.AsyncClient, figures: Figures
) -> None:
    heads = {
        "one 64 KiB header": b"X-Big: " + b"a" * 64 * 1024 + b"\r\n",
        "one 32 MiB header": b"X-Big: " + b"a" * 32 * MiB + b"\r\n",
        "20,000 headers": b"".join(b"X-H%d: %s\r\n" % (n, b"b" * 100) for n in range(20_000)),
        "a 1 MiB URL": b"",
    }
    refused: list[str] = []
    async with bounded_memory(server, http, figures):
        for name, headers in heads.items():
            path = b"/health" if headers else b"/health?" + b"q" * MiB
            request = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
            answer, sent = await raw_exchange(server, request)
            if answer:
                assert status_of(answer) == 431 and is_problem(problem_of(answer)), (name, answer[:300])
            else:  # refused by closing, in the middle of the head
                assert sent < len(request), name
            refused.append(name)
        assert (
            status_of((await raw_exchange(server, b"GET /health HTTP/1.1\r\nX: " + b"a" * 65536 + b"\r\n\r\n"))[0])
            == 431
        )
        # An ordinary big head (a long JWT, many proxies) is still served.
        fine = {"X-Forwarded-For": ", ".join(["10.0.0.1"] * 500), "Authorization": "Bearer " + "t" * 8000}
        assert (await http.get("/health", headers=fine)).status_code == 200
    figures.faults += len(heads)
    figures.requests += len(heads) + 1


async def test_slow_clients_are_cut_off_and_do_not_starve_others(
    server: ConnhubProcess, http: httpx.AsyncClient, figures: Figures
) -> None:
    slow_count = 40
    sockets_before = server.sockets()

    async def trickle() -> tuple[float, bytes]:
        """Slowloris: a head that never ends, one byte every 0.4 s; how long the server put up with it."""
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        writer.write(f"POST {BASE} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        try:
            while time.monotonic() - started < HEAD_TIMEOUT_S * 3:
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(reader.read(-1), 0.4)
                    return time.monotonic() - started, answer
                writer.write(b"z")
        except ConnectionError:
            return time.monotonic() - started, b""
        finally:
            writer.transport.abort()
        return time.monotonic() - started, b"never cut off"

    async def slow_but_honest() -> bytes:
        """A head sent a few bytes at a time over ~3 s, well within the deadline: served."""
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = b"GET /v1/management/connections HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 100 + b"\r\n\r\n"
        try:
            for start in range(0, len(head), 3):
                writer.write(head[start : start + 3])
                await writer.drain()
                await asyncio.sleep(3 / (len(head) / 3))
            return await asyncio.wait_for(read_response(reader), 5)
        finally:
            writer.transport.abort()

    async with bounded_memory(server, http, figures):
        honest = asyncio.create_task(slow_but_honest())
        slow = [asyncio.create_task(trickle()) for _ in range(slow_count)]
        await asyncio.sleep(0.5)
        assert server.sockets() >= sockets_before + slow_count  # they are all held open now
        latencies = []
        while not all(task.done() for task in slow):
            started = time.monotonic()
            response = await http.get(BASE)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200
            await asyncio.sleep(0.05)
        cut = [await task for task in slow]
        assert status_of(await honest) == 200
        await asyncio.sleep(0.2)
        assert server.sockets() <= sockets_before + 1  # every slow socket was closed by the server
    assert all(HEAD_TIMEOUT_S - 1 <= seconds <= HEAD_TIMEOUT_S + 3 for seconds, _ in cut), [s for s, _ in cut]
    assert all(status_of(answer) == 408 for _, answer in cut), {answer[:60] for _, answer in cut}
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    assert p99 < 1.0, latencies[-5:]  # everybody else was served meanwhile
    figures.faults += slow_count
    figures.requests += slow_count + len(latencies)
    figures.note(f"{len(latencies)} requests served during the slowloris, p99 {p99 * 1000:.0f} ms")
