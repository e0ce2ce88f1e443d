"""Where one request's CPU goes: `python -m bench.profile cb_list_full --rows 2000`.

The app runs in this process on a fresh, migrated PostgreSQL database, filled through the API with
the load generator's bodies, and is called directly as an ASGI app (no HTTP, no client library: the
CPU per request is the app's own, from its middleware to its answer). Then the
named request is sent `--requests` times, one after another, under cProfile; the table gives the
CPU per request (process time, so the machine's other load does not count) and the functions that
spent it. The store server's own CPU is not in it: that is the full benchmark's `store ms` column.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import orjson

from bench import scenarios
from bench.options import PG_ADMIN_URL
from bench.server import clean_environment, generate_key
from bench.stores import postgres_database
from connhub.api.app import create_app
from connhub.config import Settings

PRODUCT = {"X-Product-Name": scenarios.PRODUCT}
Request = Callable[["AsgiClient", int], Awaitable["Answer"]]


class Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def ok(self) -> Answer:
        if self.status >= 400:
            raise RuntimeError(f"HTTP {self.status}: {self.body[:300]!r}")
        return self

    def json(self) -> Any:
        return orjson.loads(self.body)


class AsgiClient:
    """Requests made by calling the ASGI app itself, as a server would, minus the socket."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def get(self, path: str, params: dict[str, str] | None = None) -> Answer:
        return await self.request("GET", path, query=urlencode(params or {}))

    async def post(self, path: str, json: Any, headers: dict[str, str] | None = None) -> Answer:
        return await self.request("POST", path, json, headers)

    async def patch(self, path: str, json: Any) -> Answer:
        return await self.request("PATCH", path, json)

    async def request(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None, query: str = ""
    ) -> Answer:
        body = b"" if json is None else orjson.dumps(json)
        sent = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
        if json is not None:
            sent += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": sent, "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
        }  # fmt: skip
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        return Answer(messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:]))


def _requests(ids: list[str], numbers: list[int]) -> dict[str, Request]:
    team = scenarios.chartbrew_connections(scenarios.CHARTBREW_TEAM)
    return {
        "health": lambda http, _n: http.get("/health"),  # the floor: the middleware and the framework
        "get": lambda http, n: http.get(f"{scenarios.CONNECTIONS}/{ids[n % len(ids)]}"),
        "list_first": lambda http, _n: http.get(scenarios.CONNECTIONS, params={"limit": "50"}),
        "cb_get": lambda http, n: http.get(f"{team}/{numbers[n % len(numbers)]}"),
        "cb_list_full": lambda http, _n: http.get(team),
        "create": lambda http, n: http.post(
            scenarios.CONNECTIONS, json=scenarios.create_body(f"profile-{n:07d}"), headers=PRODUCT
        ),
        "patch": lambda http, n: http.patch(
            f"{scenarios.CONNECTIONS}/{ids[n % len(ids)]}", json={"metadata": {"rev": str(n)}}
        ),
    }


async def _fill(http: AsgiClient, rows: int) -> tuple[list[str], list[int]]:
    """`rows` connections, half through each dialect (the Chartbrew ones in its bench team)."""
    ids: list[str] = []
    numbers: list[int] = []
    team = scenarios.chartbrew_connections(scenarios.CHARTBREW_TEAM)
    for n in range(rows):
        if n % 2:
            answer = await http.post(team, json=scenarios.chartbrew_body(f"fill-cb-{n:07d}"))
            numbers.append(answer.ok().json()["id"])
        else:
            body = scenarios.create_body(f"fill-{n:07d}")
            answer = await http.post(scenarios.CONNECTIONS, json=body, headers=PRODUCT)
            ids.append(answer.ok().json()["id"])
    return ids, numbers


async def _send_all(send: Request, http: AsgiClient, numbers: range, concurrency: int) -> None:
    """`send` each number, `concurrency` at a time (a wave of gets is then one batched SELECT)."""
    for start in range(numbers.start, numbers.stop, concurrency):
        wave = range(start, min(start + concurrency, numbers.stop))
        for answer in await asyncio.gather(*(send(http, n) for n in wave)):
            answer.ok()


async def _profile(
    url: str, name: str, rows: int, count: int, concurrency: int, top: int, callers: str | None, callees: str | None
) -> None:
    settings = Settings(database_url=url, encryption_keys=generate_key(), log_level="WARNING")
    app = create_app(settings)
    try:
        # The app's lifespan is not run (no health scheduler in the background), as in the tests.
        http = AsgiClient(app)
        ids, numbers = await _fill(http, rows)
        send = _requests(ids, numbers)[name]
        await _send_all(send, http, range(min(count, 20)), concurrency)  # warm caches and code paths
        started = time.process_time()
        await _send_all(send, http, range(count, 2 * count), concurrency)
        spent = time.process_time() - started
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        await _send_all(send, http, range(2 * count, 3 * count), concurrency)
        profiler.disable()
    finally:
        await app.state.hub.close()
    print(
        f"{name}: {rows:,} rows, {count} requests {concurrency} at a time, "
        f"{spent / count * 1000:.2f} ms CPU per request (then profiled:)"
    )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(top)
    if callers:
        stats.print_callers(callers)
    if callees:
        stats.print_callees(callees)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("request", choices=sorted(_requests([], [])))
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=1000, help="timed, then as many profiled [1000]")
    parser.add_argument("--concurrency", type=int, default=1, help="requests sent together [1]")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--callers", help="also print who called the functions matching this regex")
    parser.add_argument("--callees", help="also print what the functions matching this regex called")
    parser.add_argument("--pg-admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL", PG_ADMIN_URL))
    args = parser.parse_args()
    with postgres_database(args.pg_admin_url, clean_environment({})) as url:
        profiled = _profile(
            url, args.request, args.rows, args.requests, args.concurrency, args.top, args.callers, args.callees
        )
        asyncio.run(profiled)


if __name__ == "__main__":
    main()
