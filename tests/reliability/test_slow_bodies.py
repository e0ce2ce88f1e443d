"""Slow request bodies against a real `connhub serve` (issue 14.4).

A client that sends its head quickly and then its body a byte every second or so held a socket
(and a request task) for as long as it liked: 100 such clients were all still connected after 75 s.
Now a whole request must arrive within CONNHUB_REQUEST_TIMEOUT_S (short here: 3 s), or it is
answered 408 and closed; a request without a valid token is answered 401 and closed at once,
without waiting for a body it will never use. 200 trickling clients at once, half of each kind:
/health keeps answering meanwhile, and the server ends up holding none of their sockets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.reliability.conftest import Figures
from tests.support.reliability import ConnhubProcess, connhub_serve

REQUEST_TIMEOUT_S = 3
SECRET = "slow-bodies-hs256-secret-of-32-bytes!"
TRICKLERS = 200
BODY_BYTES = 10_000  # declared; a byte a second would take hours


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnhubProcess]:
    workdir: Path = tmp_path_factory.mktemp("slow-bodies")
    env = {
        "CONNHUB_DATABASE_URL": f"sqlite:///{workdir / 'slow.db'}",
        "CONNHUB_ENCRYPTION_KEYS": "slow:" + base64.b64encode(os.urandom(32)).decode(),
        "CONNHUB_AUTH": "jwt",
        "CONNHUB_JWT_SECRET": SECRET,
        "CONNHUB_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
    }
    with connhub_serve(workdir / "serve", env) as started:
        yield started


def token() -> str:
    claims = {"tenantId": "slow", "scope": "connections:read connections:write", "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def trickle(server: ConnhubProcess, authorization: str | None) -> tuple[int, bytes]:
    """A POST whose body comes a byte every 0.5 s; what the server answered (b"" if it only closed),
    and how many body bytes it took. Gives up (b"never cut off") after 10 times the timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        "POST /v1/management/connections HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Product-Name: slow\r\nContent-Length: {BODY_BYTES}\r\n"
        + (f"Authorization: Bearer {authorization}\r\n" if authorization else "")
        + "\r\n"
    )
    sent = 0
    started = time.monotonic()
    try:
        writer.write(head.encode())
        while time.monotonic() - started < REQUEST_TIMEOUT_S * 10:
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(-1), 0.5)  # to EOF: the server closed
                return sent, answer
            writer.write(b" ")
            sent += 1
        return sent, b"never cut off"
    except ConnectionError:
        return sent, b""
    finally:
        writer.transport.abort()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


async def test_trickled_bodies_are_cut_off_and_unauthenticated_ones_not_waited_for(
    server: ConnhubProcess, figures: Figures
) -> None:
    sockets_before = server.sockets()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        authenticated = [asyncio.create_task(trickle(server, token())) for _ in range(TRICKLERS // 2)]
        anonymous = [asyncio.create_task(trickle(server, None)) for _ in range(TRICKLERS // 2)]
        everyone = authenticated + anonymous
        health = 0
        while not all(task.done() for task in everyone):
            assert (await http.get("/health")).status_code == 200  # served all along
            health += 1
            await asyncio.sleep(0.1)
        timed_out = [await task for task in authenticated]
        refused = [await task for task in anonymous]
        await asyncio.sleep(0.5)
        assert (await http.get("/health")).status_code == 200

    # A socket closed with the trickled body unread may reach the client as a reset that drops the
    # 408 already sent (TCP discards it): seen about once in four CI runs. Every answer is then the
    # 408 or nothing, and nearly all are the 408.
    answered = [answer for _, answer in timed_out if answer]
    assert {status_of(answer) for answer in answered} == {408}, {answer[:80] for _, answer in timed_out}
    assert len(answered) >= 0.9 * len(timed_out)
    assert all(b"CONNHUB_REQUEST_TIMEOUT_S" in answer for answer in answered)
    assert {status_of(answer) for _, answer in refused} == {401}, {answer[:80] for _, answer in refused}
    # Answered and closed before most of the body could come: nowhere near BODY_BYTES.
    assert max(sent for sent, _ in refused) < BODY_BYTES and max(sent for sent, _ in timed_out) < BODY_BYTES
    assert server.sockets() <= sockets_before + 1  # every trickling socket was closed by the server
    figures.faults += TRICKLERS
    figures.requests += TRICKLERS + health
    figures.note(f"{health} /health answers during {TRICKLERS} trickled bodies; all cut off")
