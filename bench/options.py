"""The command line of `python -m bench`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STORES = ("sqlite", "postgresql")
RECOMMENDED_WORKERS = 1  # the README's advice for 2 cores: a second worker costs ~90 MB for ~10% more
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Options:
    duration_s: float
    warmup_s: float
    rows: int
    stores: tuple[str, ...]
    concurrency: int
    workers: int | None  # None (--compare-workers): measure 1 and 2 workers, use the better
    probe_s: float
    fill_api_s: float  # at most this long creating through the API; the rest of the rows by SQL
    pg_admin_url: str
    quick: bool
    check: bool  # a MISS verdict makes the exit status non-zero (EXIT_MISSED)
    allow_errors: bool  # failed requests are counted, not fatal (to measure an older revision)
    output: Path | None


def parse_args(argv: Sequence[str] | None) -> Options:
    args = _parser().parse_args(argv)
    stores = tuple(name.strip() for name in args.stores.split(",") if name.strip())
    if not stores or set(stores) - set(STORES):
        _parser().error(f"--stores takes a comma-separated subset of {','.join(STORES)}")
    if args.concurrency < 1 or (args.rows is not None and args.rows < 100) or (args.duration or 1) <= 0:
        _parser().error("--concurrency must be >= 1, --rows >= 100, --duration > 0")
    duration = args.duration or (2.0 if args.quick else 10.0)
    return Options(
        duration_s=duration,
        warmup_s=min(1.0, duration / 4),
        rows=args.rows or (300 if args.quick else 100_000),
        stores=stores,
        concurrency=args.concurrency,
        workers=None if args.compare_workers else args.workers,
        probe_s=min(duration, 5.0),
        fill_api_s=args.fill_api_s if args.fill_api_s is not None else (60.0 if args.quick else 240.0),
        pg_admin_url=args.pg_admin_url,
        quick=args.quick,
        check=args.check,
        allow_errors=args.allow_errors,
        output=args.output,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure Connhub (connhub serve, as a subprocess) against its ceilings.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="CI smoke: 2 s per measurement, 300 rows")
    add("--check", action="store_true", help="exit 3 when any target is a MISS (figures are printed either way)")
    add("--allow-errors", action="store_true",
        help="count failed requests instead of stopping at 5%% (to measure a revision that answered 412s)")
    add("--duration", type=float, help="seconds per measurement [10; --quick 2]")
    add("--rows", type=int, help="connections that exist before the reads are measured [100000; --quick 300]")
    add("--stores", default=",".join(STORES), help="comma-separated: sqlite,postgresql [both]")
    add("--concurrency", type=int, default=32, help="closed-loop clients [32]")
    add("--workers", type=int, default=RECOMMENDED_WORKERS, help="server workers [1: the README's advice]")
    add("--compare-workers", action="store_true", help="measure 1 and 2 workers first, then use the better")
    add("--fill-api-s", type=float, help="seconds of API creates to fill to --rows; the rest by SQL [240]")
    add(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", PG_ADMIN_URL),
        help="a PostgreSQL URL allowed to CREATE/DROP DATABASE [BENCH_PG_ADMIN_URL, postgres@127.0.0.1]",
    )
    add("--output", type=Path, help="JSON path [bench/results/<date>-<rev>.json]")
    return parser
