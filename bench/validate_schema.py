"""validate-schema with a hung source (issue 13): the sources are read concurrently.

    python -m bench.validate_schema            # 10 sources, 1 of them hung; probe timeout 3 s; 3 runs
    python -m bench.validate_schema --hung 10  # every source hung

It starts `connhub serve` (SQLite store in a temporary directory, CONNHUB_PROBE_TIMEOUT_S=3), makes
the sources (a schema of its own in the machine's PostgreSQL `test` database; a hung source points at
a loopback listener that accepts and never answers) and times `POST .../connections/validate-schema`
naming them all. Read one after another, a hung source among ten would cost the whole timeout each; read
concurrently, the request takes about one timeout. Reported, never asserted. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench.probes import PRODUCT, RESULTS, TIMEOUT
from bench.run import git_rev
from bench.server import clean_environment, generate_key, running_server

PROBE_TIMEOUT_S = 3.0
TEST_DB = "postgresql://postgres@127.0.0.1:5432/test"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validate_schema", description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--hung", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.sources, args.hung, args.runs))
    print(json.dumps(figures, indent=2))
    rev, _dirty = git_rev()
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{rev}-validate-schema-{args.hung}-hung.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"results: {out}")
    return 0


async def measure(sources: int, hung: int, runs: int) -> dict[str, Any]:
    silent = await asyncio.start_server(_never_answer, "127.0.0.1", 0)
    silent_port = int(silent.sockets[0].getsockname()[1])
    schema = f"bench_validate_{os.getpid()}"
    with psycopg.connect(TEST_DB, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, total numeric)")
    try:
        with tempfile.TemporaryDirectory(prefix="connhub-bench-validate-") as scratch:
            env = clean_environment(
                {
                    "CONNHUB_ENCRYPTION_KEYS": generate_key(),
                    "CONNHUB_LOG_LEVEL": "WARNING",
                    "CONNHUB_PROBE_TIMEOUT_S": str(PROBE_TIMEOUT_S),
                }
            )
            async with (
                running_server(workers=1, cwd=Path(scratch), env=env) as server,
                aiohttp.ClientSession(timeout=TIMEOUT) as http,
            ):
                mapped = await _sources(http, server.base_url, sources, hung, silent_port, schema)
                timings, findings = await _validate(http, server.base_url, mapped, runs)
    finally:
        silent.close()
        with psycopg.connect(TEST_DB, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return {
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "sources": sources,
        "hung": hung,
        "probe_timeout_s": PROBE_TIMEOUT_S,
        "validate_best_s": round(min(timings), 3),
        "validate_median_s": round(statistics.median(timings), 3),
        "hung_read_one_after_another_s": hung * PROBE_TIMEOUT_S,
        "findings": findings,
    }


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass
    writer.close()


async def _sources(
    http: aiohttp.ClientSession, base: str, sources: int, hung: int, silent_port: int, schema: str
) -> dict[str, dict[str, list[str]]]:
    mapped: dict[str, dict[str, list[str]]] = {}
    for index in range(sources):
        name = f"source-{index:02d}"
        body = {
            "configName": name,
            "type": "POSTGRESQL",
            "host": "127.0.0.1",
            "port": silent_port if index < hung else 5432,
            "databaseName": "test",
            "userName": "postgres",
            "password": "unused-with-trust-auth",
            "schema": schema,
        }
        async with http.post(base + "/v1/management/connections", json=body, headers=PRODUCT) as response:
            if response.status != 201:
                raise RuntimeError(f"create answered {response.status}: {await response.text()}")
        mapped[name] = {"orders": ["id", "total"]}
    return mapped


async def _validate(
    http: aiohttp.ClientSession, base: str, mapped: dict[str, dict[str, list[str]]], runs: int
) -> tuple[list[float], list[dict[str, Any]]]:
    timings: list[float] = []
    findings: list[dict[str, Any]] = []
    for _ in range(runs):
        started = time.perf_counter()
        async with http.post(
            base + "/v1/management/connections/validate-schema", json={"mappedFields": mapped}
        ) as response:
            body = await response.json()
        timings.append(time.perf_counter() - started)
        findings = body.get("errors", [])
    return timings, findings


if __name__ == "__main__":
    raise SystemExit(main())
