"""What scheduled health costs the API (issue 18): throughput with and without the scheduler.

    python -m bench.health            # 10,000 connections checked every 60 s; 10 s per measurement
    python -m bench.health --quick    # CI smoke: 500 connections, 2 s per measurement

It starts a trivial PostgreSQL wire server (`bench.wire`, a process of its own) and `connhub serve`
on a PostgreSQL store made for the run, creates N connections to the wire server through the API,
then measures creates and gets by id three times: scheduler off, on (CONNHUB_HEALTH_INTERVAL_S), off
again. With it on, the checks made during the measurement are counted in the store (N / interval a
second is the load asked for). The figure is the ratio of each throughput with the scheduler to the
mean of the two runs without it. Reported, never asserted. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg

from bench.load import Figures, closed_loop
from bench.options import PG_ADMIN_URL, Options
from bench.run import git_rev
from bench.scenarios import Api, Call, expect, get_by_id
from bench.server import Server, clean_environment, free_port, generate_key, running_server
from bench.steps import measure, progress
from bench.stores import postgres_database, postmaster_pid

RESULTS = Path(__file__).parent / "results"
CONNECTIONS = "/v1/management/connections"
PRODUCT = {"X-Product-Name": "bench"}


def wire_body(name: str, port: int) -> dict[str, Any]:
    return {
        "configName": name,
        "type": "POSTGRESQL",
        "host": "127.0.0.1",
        "port": port,
        "databaseName": "bench",
        "userName": "bench",
        "password": "bench-password",
        "ssl": {"mode": "disable"},
    }


def create_to(api: Api, tag: str, port: int, ids: list[str]) -> Call:
    async def call(number: int) -> str | None:
        status, raw = await api.send("POST", CONNECTIONS, wire_body(f"{tag}-{number:07d}", port), PRODUCT)
        if status == 201:
            ids.append(orjson.loads(raw)["id"])
        return expect(status, 201)

    return call


def checks_done(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM health_results").fetchone()
    return int(row[0]) if row else 0


async def phase(
    label: str, server: Server, options: Options, port: int, ids: list[str], round_: int
) -> dict[str, Figures]:
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = Api(session, server.base_url)
        made: list[str] = []
        return {
            "create": await measure(label, "create", create_to(api, f"{label}{round_}", port, made), server, options),
            "get": await measure(label, "get by id", get_by_id(api, ids), server, options),
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    options = Options(
        duration_s=args.duration,
        warmup_s=min(1.0, args.duration / 4),
        rows=args.connections,
        stores=("postgresql",),
        concurrency=args.concurrency,
        workers=1,
        probe_s=0,
        fill_api_s=0,
        pg_admin_url=args.pg_admin_url,
        quick=args.quick,
        output=None,
    )
    wire_port = free_port()
    wire = subprocess.Popen([sys.executable, "-m", "bench.wire", str(wire_port)], start_new_session=True)
    env = clean_environment({"CONNHUB_ENCRYPTION_KEYS": generate_key(), "CONNHUB_LOG_LEVEL": "WARNING"})
    off_env = env | {"CONNHUB_HEALTH_INTERVAL_S": "0"}
    on_env = env | {
        "CONNHUB_HEALTH_INTERVAL_S": str(args.interval),
        "CONNHUB_HEALTH_CONCURRENCY": str(args.health_concurrency),
    }
    figures: dict[str, Any] = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="connhub-bench-health-") as cwd,
            postgres_database(args.pg_admin_url, env) as url,
        ):
            ids: list[str] = []
            async with running_server(workers=1, cwd=Path(cwd), env=off_env, database_url=url) as server:
                server.store_pid = postmaster_pid(args.pg_admin_url)
                progress(f"creating {args.connections:,} connections to the wire server on port {wire_port}")
                async with aiohttp.ClientSession() as session:
                    await closed_loop(
                        create_to(Api(session, server.base_url), "fill", wire_port, ids),
                        concurrency=args.concurrency,
                        duration_s=3600,
                        max_requests=args.connections,
                    )
                figures["off-1"] = await phase("off", server, options, wire_port, ids, 1)
            async with running_server(workers=1, cwd=Path(cwd), env=on_env, database_url=url) as server:
                server.store_pid = postmaster_pid(args.pg_admin_url)
                progress(f"scheduler on, every {args.interval} s: {args.warmup_s:.0f} s for checks to flow")
                await asyncio.sleep(args.warmup_s)
                before, started = checks_done(url), time.perf_counter()
                figures["on"] = await phase("on", server, options, wire_port, ids, 1)
                checks_per_s = (checks_done(url) - before) / (time.perf_counter() - started)
            async with running_server(workers=1, cwd=Path(cwd), env=off_env, database_url=url) as server:
                server.store_pid = postmaster_pid(args.pg_admin_url)
                figures["off-2"] = await phase("off", server, options, wire_port, ids, 2)
    finally:
        wire.terminate()
        wire.wait(10)
    return summary(args, figures, checks_per_s)


def summary(args: argparse.Namespace, figures: dict[str, Any], checks_per_s: float) -> dict[str, Any]:
    rev, dirty = git_rev()
    result: dict[str, Any] = {
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "rev": rev + ("-dirty" if dirty else ""),
        "connections": args.connections,
        "interval_s": args.interval,
        "health_concurrency": args.health_concurrency,
        "checks_asked_per_s": round(args.connections / args.interval, 1),
        "checks_done_per_s": round(checks_per_s, 1),
        "runs": {name: {kind: vars(f) for kind, f in run.items()} for name, run in figures.items()},
    }
    print(
        f"\nscheduled health: {args.connections:,} connections every {args.interval} s "
        f"(asked {result['checks_asked_per_s']}/s, done {result['checks_done_per_s']}/s while measuring)"
    )
    print(
        f"{'measurement':<12} | {'off req/s':>10} | {'on req/s':>10} | {'on / off':>8} | "
        f"{'ms/rq off':>9} | {'ms/rq on':>8}"
    )
    for kind in ("create", "get"):
        off = [figures["off-1"][kind], figures["off-2"][kind]]
        on = figures["on"][kind]
        off_rps = sum(f.rps for f in off) / 2
        off_ms = sum(f.server_cpu_ms for f in off) / 2
        ratio = on.rps / off_rps if off_rps else 0.0
        result[f"{kind}_ratio"] = round(ratio, 3)
        print(
            f"{kind:<12} | {off_rps:>10,.1f} | {on.rps:>10,.1f} | {ratio:>7.2f}x | {off_ms:>9.2f} | "
            f"{on.server_cpu_ms:>8.2f}"
        )
    print(
        "note: off = mean of the runs before and after; ms/rq = server CPU per request (with the scheduler "
        "it includes the checks' CPU); oth% of each run is in the JSON"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=None)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--warmup-s", type=float, default=None, help="scheduler on before measuring (20)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--health-concurrency", type=int, default=64, help="CONNHUB_HEALTH_CONCURRENCY of the server (64)"
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    args.connections = args.connections or (500 if args.quick else 10_000)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup_s = args.warmup_s if args.warmup_s is not None else (3.0 if args.quick else 20.0)
    result = asyncio.run(run(args))
    out = args.output or RESULTS / f"{result['date']}-{result['rev']}-health{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
