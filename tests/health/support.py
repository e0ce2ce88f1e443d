"""What the health tests share: a clock they move, an app on it, a webhook receiver that checks signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web

from connhub.api.app import create_app
from connhub.api.http import Hub
from connhub.config import Settings
from tests.support.servers import free_port

BASE = "/v1/management/connections"
WEBHOOK_SECRET = "webhook-test-secret-7c1d"


class FakeClock:
    """The scheduler's time, moved by the test: no test waits for an interval to pass."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        """The time passes at once; a real millisecond lets the rest of the loop run meanwhile."""
        self.advance(seconds)
        await asyncio.sleep(0.001)


@asynccontextmanager
async def served(settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[httpx.AsyncClient, Hub]]:
    """The API in process on `clock`, with its hub: the test drives `hub.scheduler` itself."""
    app = create_app(settings, clock)
    hub: Hub = app.state.hub
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://connhub") as http:
            yield http, hub
    finally:
        await hub.close()


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def health_of(http: httpx.AsyncClient, connection_id: str) -> dict[str, Any]:
    response = await http.get(f"{BASE}/{connection_id}/health")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def check_when_due(http: httpx.AsyncClient, hub: Hub, clock: FakeClock, connection_id: str) -> dict[str, Any]:
    """Move the clock to the connection's next check, run one pass, and answer its health after it."""
    due = (await health_of(http, connection_id))["nextCheckAt"]
    assert due is not None
    clock.moment = max(clock.moment, parse_instant(due) + timedelta(milliseconds=1))
    assert hub.scheduler is not None
    assert await hub.scheduler.run_once() >= 1
    return await health_of(http, connection_id)


class WebhookReceiver:
    """A real HTTP server on loopback that keeps each event whose signature is right.

    It checks what a receiver should: `t` and `v1` in X-Connhub-Signature, the HMAC-SHA256 of
    `<t>.<body>` under the shared secret, and a `t` within five minutes of `clock`.
    """

    def __init__(self, clock: FakeClock, status: int = 200) -> None:
        self.clock = clock
        self.status = status
        self.port = free_port()
        self.events: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/connhub"

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hooks/connhub", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body)
        self.attempts.append(event)
        if not self._signed(request.headers.get("X-Connhub-Signature", ""), body):
            self.bad_signatures += 1
            return web.Response(status=400)
        if self.status == 200:
            self.events.append(event)
        return web.Response(status=self.status)

    def _signed(self, header: str, body: bytes) -> bool:
        parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        if not parts.get("t", "").isdigit() or "v1" not in parts:
            return False
        expected = hmac.new(WEBHOOK_SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = abs(int(parts["t"]) - self.clock.now().timestamp()) < 300
        return fresh and hmac.compare_digest(expected, parts["v1"])
