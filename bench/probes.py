"""Probe benchmarks (issue 3): schema discovery of a large PostgreSQL database, and many live tests.

    python -m bench.probes            # 2,000 tables x 20 columns; 500 tests at concurrency 50
    python -m bench.probes --quick    # CI smoke: 200 tables, 50 tests

It starts `connhub serve` (SQLite store in a temporary directory), creates a database of its own on
the machine's PostgreSQL with the tables, and measures through the HTTP API:
- `GET /v1/management/connections/{id}/schema?refresh=true` (one catalog query), best and median of 3;
- N `POST .../{id}/test` of saved connections to the local PostgreSQL at concurrency C (spread over
  N/10 connections: the service allows 10 tests a minute per connection), with the server's open
  file descriptors and PostgreSQL sessions counted before and after.
Targets are reported (schema < 2 s, tests < 10 s, nothing left open), never asserted. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench.run import git_rev
from bench.server import clean_environment, generate_key, running_server

RESULTS = Path(__file__).parent / "results"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TIMEOUT = aiohttp.ClientTimeout(total=60)
PRODUCT = {"X-Product-Name": "bench", "Content-Type": "application/json"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probes", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: 200 tables, 50 tests")
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    if args.quick:
        args.tables, args.tests = 200, 50
    figures = asyncio.run(measure(args.tables, args.columns, args.tests, args.concurrency))
    print(table(figures))
    rev, _dirty = git_rev()
    suffix = "-quick" if args.quick else ""
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{rev}-probes{suffix}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"results: {out}")
    return 0


async def measure(tables: int, columns: int, tests: int, concurrency: int) -> dict[str, Any]:
    admin = PG_ADMIN_URL
    database = f"connhub_bench_schema_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        _create_tables(admin.rsplit("/", 1)[0] + f"/{database}", tables, columns)
        with tempfile.TemporaryDirectory(prefix="connhub-bench-probes-") as scratch:
            env = clean_environment({"CONNHUB_ENCRYPTION_KEYS": generate_key(), "CONNHUB_LOG_LEVEL": "WARNING"})
            async with running_server(workers=1, cwd=Path(scratch), env=env) as server:
                async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                    schema = await _schema(http, server.base_url, database, tables)
                live = await _tests(server.base_url, server.process.pid, tests, concurrency)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return {"date": f"{datetime.now(UTC):%Y-%m-%d}", "tables": tables, "columns": columns, **schema, **live}


def _create_tables(url: str, tables: int, columns: int) -> None:
    cols = ", ".join(["id bigint PRIMARY KEY"] + [f"c{i} text" for i in range(1, columns)])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{tables} LOOP EXECUTE format('CREATE TABLE t%s ({cols})', i); END LOOP; END $$"
        )


async def _create(http: aiohttp.ClientSession, base: str, name: str, database: str) -> str:
    body = {
        "configName": name,
        "type": "POSTGRESQL",
        "host": "127.0.0.1",
        "port": 5432,
        "databaseName": database,
        "userName": "postgres",
        "password": "unused-with-trust-auth",
    }
    async with http.post(base + "/v1/management/connections", json=body, headers=PRODUCT) as response:
        if response.status != 201:
            raise RuntimeError(f"create answered {response.status}: {await response.text()}")
        created: dict[str, Any] = await response.json()
        return str(created["id"])


async def _schema(http: aiohttp.ClientSession, base: str, database: str, tables: int) -> dict[str, Any]:
    connection_id = await _create(http, base, "schema-bench", database)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        async with http.get(f"{base}/v1/management/connections/{connection_id}/schema?refresh=true") as response:
            body = await response.json()
        timings.append(time.perf_counter() - started)
        if response.status != 200 or len(body["tables"]) != tables:
            raise RuntimeError(f"schema answered {response.status} with {len(body.get('tables', []))} tables")
    return {"schema_best_s": round(min(timings), 3), "schema_median_s": round(statistics.median(timings), 3)}


async def _tests(base: str, pid: int, tests: int, concurrency: int) -> dict[str, Any]:
    """Warm up (pools fill), count, run the measured tests in a session of their own, close it, count."""
    warm = min(tests, concurrency)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        ids = [await _create(http, base, f"tested-{index:04d}", "test") for index in range((tests + 9) // 10)]
        spare = [await _create(http, base, f"warm-{index:04d}", "test") for index in range((warm + 9) // 10)]
        await _run_tests(http, base, spare, warm, concurrency)
    await asyncio.sleep(0.5)  # let closed sockets leave the process's table
    before = {"fds": _open_fds(pid), "pg_sessions": _pg_sessions()}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        started = time.perf_counter()
        statuses = await _run_tests(http, base, ids, tests, concurrency)
        elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)
    after = {"fds": _open_fds(pid), "pg_sessions": _pg_sessions()}
    return {
        "tests": tests,
        "concurrency": concurrency,
        "tests_s": round(elapsed, 3),
        "tests_per_s": round(tests / elapsed, 1),
        "tests_succeeded": statuses.count("success"),
        "before": before,
        "after": after,
    }


async def _run_tests(http: aiohttp.ClientSession, base: str, ids: list[str], tests: int, concurrency: int) -> list[str]:
    slots = asyncio.Semaphore(concurrency)
    statuses: list[str] = []

    async def one(index: int) -> None:
        async with slots, http.post(f"{base}/v1/management/connections/{ids[index % len(ids)]}/test") as response:
            statuses.append((await response.json()).get("status", str(response.status)))

    await asyncio.gather(*(one(index) for index in range(tests)))
    return statuses


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _pg_sessions() -> int:
    """Sessions on the `test` database, where the probes connect."""
    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'test'").fetchone()
        return int(row[0]) if row else 0


def table(f: dict[str, Any]) -> str:
    left_open = f["after"]["fds"] > f["before"]["fds"] or f["after"]["pg_sessions"] > f["before"]["pg_sessions"]
    rows = [
        f"Connhub probe benchmark {f['date']}: 1 worker, SQLite store, the machine's PostgreSQL",
        f"{'measurement':<52} | {'figure':>14} | target",
        f"{'schema of ' + str(f['tables']) + ' tables x ' + str(f['columns']) + ' columns (best / median of 3)':<52} | "
        f"{f['schema_best_s']:>6.3f} / {f['schema_median_s']:.3f} s | < 2 s "
        + ("PASS" if f["schema_median_s"] < 2 else "MISS"),
        f"{str(f['tests']) + ' tests of saved connections at concurrency ' + str(f['concurrency']):<52} | "
        f"{f['tests_s']:>12.3f} s | < 10 s " + ("PASS" if f["tests_s"] < 10 else "MISS"),
        f"{'tests that succeeded':<52} | {f['tests_succeeded']:>14} | all",
        f"{'server fds / PostgreSQL sessions before -> after':<52} | "
        f"{f['before']['fds']}/{f['before']['pg_sessions']} -> {f['after']['fds']}/{f['after']['pg_sessions']:<3}| "
        + ("nothing left open " + ("MISS" if left_open else "PASS")),
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
