"""1 replica vs 3 behind HAProxy, same run, same PostgreSQL database and Redis: what scaling out buys.

    python -m bench.replicas             # 8 s per measurement, concurrency 64
    python -m bench.replicas --quick     # a smoke run (2 s per measurement); nothing CI-critical

Each layout is `connhub serve` (1 worker each) behind HAProxy (round-robin, loopback), so both pay
the same proxy hop; the replicas share one PostgreSQL database and one Redis (CONNHUB_REDIS_URL,
a key prefix of this run's own). Measured in each: GET /health, create (the seed's body with a CA
PEM), get by id of what was created. Printed: figures per layout and the 3/1 ratios.

This machine has two cores shared by the load generator, HAProxy, PostgreSQL and every replica: three
replicas cannot do more than two cores allow, so the ratio measures the overhead of scaling out here
more than its gain. On N cores (or N hosts) the same layout scales with them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.haproxy import haproxy

from bench import scenarios
from bench.load import Figures, closed_loop, summarize
from bench.scenarios import Api
from bench.server import clean_environment, generate_key, running_server, stop_all
from bench.stores import postgres_database

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,3", help="layouts to compare [1,3]")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement [8]")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="2 s per measurement")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else args.duration
    layouts = [int(count) for count in args.replicas.split(",")]
    try:
        results = asyncio.run(_compare(layouts, duration, args.concurrency))
    finally:
        stop_all()
    _print(results, layouts)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


async def _compare(layouts: list[int], duration: float, concurrency: int) -> dict[str, Any]:
    env = clean_environment(
        {
            "CONNHUB_ENCRYPTION_KEYS": generate_key(),
            "CONNHUB_IDEMPOTENCY_KEY": base64.b64encode(os.urandom(32)).decode(),
            "CONNHUB_REDIS_URL": REDIS_URL,
            "CONNHUB_REDIS_PREFIX": f"connhub-bench-{uuid.uuid4().hex[:12]}:",
            "CONNHUB_STORE_POOL_SIZE": "10",
        }
    )
    results: dict[str, Any] = {"load_average": os.getloadavg(), "duration_s": duration, "layouts": {}}
    with postgres_database(PG_ADMIN_URL, env) as url, tempfile.TemporaryDirectory(prefix="connhub-replicas-") as cwd:
        for count in layouts:
            print(f"{count} replica(s) behind HAProxy ...", flush=True)
            async with _layout(count, Path(cwd) / f"r{count}", env, url) as api:
                results["layouts"][str(count)] = await _measure(api, duration, concurrency)
    return results


@asynccontextmanager
async def _layout(count: int, workdir: Path, env: dict[str, str], database_url: str) -> AsyncIterator[Api]:
    workdir.mkdir(parents=True)
    async with AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(
                running_server(workers=1, cwd=workdir, env=env, database_url=database_url)
            )
            for _ in range(count)
        ]
        url = stack.enter_context(haproxy(workdir / "haproxy", [server.port for server in servers]))
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30))
        )
        yield Api(session, url)


async def _measure(api: Api, duration: float, concurrency: int) -> dict[str, Any]:
    ids: list[str] = []
    figures: list[Figures] = []
    tag = uuid.uuid4().hex[:6]
    for name, call in (
        ("GET /health", scenarios.health(api)),
        ("create", scenarios.create(api, tag, ids)),
        ("get by id", None),
    ):
        call = call or scenarios.get_by_id(api, ids)
        tally = await closed_loop(call, concurrency=concurrency, duration_s=duration, warmup_s=min(1.0, duration / 4))
        figures.append(summarize(name, tally))
    return {figure.name: asdict(figure) for figure in figures}


def _print(results: dict[str, Any], layouts: list[int]) -> None:
    load = ", ".join(f"{value:.1f}" for value in results["load_average"])
    print(f"\nreplicas behind HAProxy, PostgreSQL store, Redis shared; load average at start {load}")
    print(f"{'measurement':<14}" + "".join(f" | {count} replica(s) req/s  p50 ms  p99 ms" for count in layouts))
    base = results["layouts"][str(layouts[0])]
    for name in base:
        row = f"{name:<14}"
        for count in layouts:
            figure = results["layouts"][str(count)][name]
            row += f" | {figure['rps']:>17,.0f} {figure['p50_ms']:>7.2f} {figure['p99_ms']:>7.2f}"
        print(row)
    for count in layouts[1:]:
        ratios = ", ".join(
            f"{name} {results['layouts'][str(count)][name]['rps'] / max(base[name]['rps'], 1e-9):.2f}x" for name in base
        )
        print(f"{count}/{layouts[0]} throughput: {ratios}  (2 cores bound the gain: see the module's docstring)")


if __name__ == "__main__":
    raise SystemExit(main())
