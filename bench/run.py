"""One command that measures Connhub against its ceilings: `python -m bench [--quick]`.

For each store it starts `connhub serve` as a subprocess and drives it from this process with an
aiohttp closed-loop load generator. Targets are reported (PASS/MISS); the exit status is 1 when the
benchmark itself could not run (a server that does not start, a store that cannot be reached, a
measurement whose requests mostly fail), and with `--check` EXIT_MISSED when any target is a MISS.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import uvloop

from bench import scenarios
from bench.load import LoadError
from bench.options import Options, parse_args
from bench.report import Run, StoreResult, missed, table, write_json
from bench.server import ServerError, clean_environment, generate_key, machine_busy_s, stop_all
from bench.steps import BenchFailure, StoreRun, measure, progress, served
from bench.stores import drop_all_databases, postgres_reachable
from connhub.secrets import KeyRing

BENCH_DIR = Path(__file__).resolve().parent
FAILURES = (BenchFailure, ServerError, LoadError, subprocess.SubprocessError, psycopg.Error, OSError)
MORE_CREATES_FOR_TWO_WORKERS = 1.10  # a second worker must earn its memory
BUSY_WARNING_PCT = 25.0
EXIT_MISSED = 3  # --check: the benchmark ran, and some target was missed


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            run = runner.run(benchmark(options))
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, databases dropped", file=sys.stderr)
        return 130
    except FAILURES as error:
        print(f"bench: failed: {error}", file=sys.stderr)
        return 1
    finally:
        stop_all()
        drop_all_databases()
    print(table(run))
    print(f"results: {write_json(run, options.output or _default_output(options))}")
    misses = missed(run)
    if options.check and misses:
        print(f"bench: --check: {len(misses)} target(s) missed: " + "; ".join(misses), file=sys.stderr)
        return EXIT_MISSED
    return 0


def _interrupted(_signal: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def benchmark(options: Options) -> Run:
    if "postgresql" in options.stores and (why := postgres_reachable(options.pg_admin_url)):
        raise BenchFailure(f"PostgreSQL is not reachable ({why}); run with --stores sqlite")
    busy = await machine_busy_pct()
    if busy > BUSY_WARNING_PCT:
        progress(f"warning: other processes keep the machine {busy:.0f}% busy (100 = one core): figures will be low")
    key = generate_key()
    env = clean_environment({"CONNHUB_ENCRYPTION_KEYS": key})
    scenarios.ca_pem()  # made once, before any clock runs
    workers = await choose_workers(options, env)
    stores = {}
    for store in options.stores:
        progress(f"{store}: {workers['chosen']} worker(s), {options.rows:,} rows")
        async with served(store, workers["chosen"], options, env) as (server, api, place):
            run = StoreRun(server, api, place, options, KeyRing.parse(key), StoreResult(store))
            stores[store] = await run.run()
    return Run(_meta(options, busy), workers, stores)


async def choose_workers(options: Options, env: dict[str, str]) -> dict[str, Any]:
    """Measure create and /health with 1 and 2 workers once; recommend the better for creates."""
    if options.workers:
        summary = f"{options.workers} worker(s) (--workers; 1 is the README's advice)"
        return {"chosen": options.workers, "summary": summary}
    store = "postgresql" if "postgresql" in options.stores else "sqlite"
    probe = replace(options, duration_s=options.probe_s, warmup_s=min(0.5, options.probe_s / 4))
    found: dict[str, Any] = {"store": store, "probe_s": options.probe_s, "rounds": []}
    for _ in range(1 if options.quick else 2):  # alternate, so a noisy moment does not decide alone
        found["rounds"].append({str(count): await _probe_workers(store, count, probe, env) for count in (1, 2)})
    one, two = (max(r[count]["create_rps"] for r in found["rounds"]) for count in ("1", "2"))
    found["chosen"] = 2 if two > MORE_CREATES_FOR_TWO_WORKERS * one else 1
    found["summary"] = (
        f"{found['chosen']} worker(s) recommended and used "
        f"(best creates/s on {store}: 1 worker {one:.0f}, 2 workers {two:.0f})"
    )
    progress(f"workers: {found['summary']}")
    return found


async def _probe_workers(store: str, count: int, probe: Options, env: dict[str, str]) -> dict[str, float]:
    label = f"{store} {count}w"
    async with served(store, count, probe, env) as (server, api, _place):
        idle_rss = server.rss_mb()
        health = await measure(label, "health", scenarios.health(api), server, probe)
        create = await measure(label, "create", scenarios.create(api, "w", []), server, probe)
    return {
        "health_rps": health.rps,
        "create_rps": create.rps,
        "create_p99_ms": create.p99_ms,
        "create_server_cpu_ms": create.server_cpu_ms,
        "idle_rss_mb": round(idle_rss, 1),
    }


# -- metadata -------------------------------------------------------------------------------------


async def machine_busy_pct(seconds: float = 2.0) -> float:
    """How busy the machine is before the benchmark starts anything (100 = one core)."""
    before = machine_busy_s()
    await asyncio.sleep(seconds)
    return 100 * (machine_busy_s() - before) / seconds


def _meta(options: Options, busy_pct: float) -> dict[str, Any]:
    rev, dirty = git_rev()
    return {
        "date": date.today().isoformat(),
        "git_rev": rev,
        "git_dirty": dirty,
        "quick": options.quick,
        "concurrency": options.concurrency,
        "duration_s": options.duration_s,
        "warmup_s": options.warmup_s,
        "rows": options.rows,
        "fill_api_s": options.fill_api_s,
        "stores": list(options.stores),
        "cpus": os.cpu_count(),
        "machine_busy_before_pct": round(busy_pct, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "notes": [
            f"before the run, other processes kept the machine {busy_pct:.0f}% busy (100 = one core)",
            "RSS: sum over the server's processes (master + workers); growth = after the fill - idle",
            "the load generator shares the cores with the server; cpu% = server CPU / wall time "
            "(100 = one core), ms/rq = server CPU ms per request, db% = PostgreSQL's processes, "
            "oth% = every other process on the machine (noise)",
        ],
    }


def git_rev() -> tuple[str, bool]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=BENCH_DIR, capture_output=True, text=True, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev, bool(git("status", "--porcelain", "--untracked-files=no"))


def _default_output(options: Options) -> Path:
    rev, _ = git_rev()
    suffix = "-quick" if options.quick else ""
    return BENCH_DIR / "results" / f"{date.today().isoformat()}-{rev}{suffix}.json"
