"""One store's run: a fresh store and server, then every measurement in order.

Order: /health, create, raw insert (small table); fill to N rows (API creates for a bounded time,
then direct SQL); get, first page, deep page through `cursor`, deep page through `page`, PATCH.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from bench import rows, scenarios
from bench.load import Call, Figures, closed_loop, summarize
from bench.options import Options
from bench.report import FULL_TEAM_ROWS, StoreResult
from bench.scenarios import Api
from bench.server import Server, machine_busy_s, running_server
from bench.stores import analyze, postgres_database, postmaster_pid, sqlite_path
from connhub.secrets import KeyRing

MAX_ERROR_RATIO = 0.05
FILL_REPORT_EVERY_S = 30.0


class BenchFailure(RuntimeError):
    """The benchmark machinery could not do its job (never a missed target)."""


def progress(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Place:
    """Where one server keeps its data: a working directory and, for PostgreSQL, a database."""

    store: str
    cwd: Path
    database_url: str | None = None
    store_pid: int | None = None  # PostgreSQL's postmaster, when it runs on this machine


@asynccontextmanager
async def served(
    store: str, workers: int, options: Options, env: dict[str, str]
) -> AsyncIterator[tuple[Server, Api, Place]]:
    """A fresh store, a server on it, and a client session; all gone on exit."""
    with tempfile.TemporaryDirectory(prefix=f"connhub-bench-{store}-") as cwd:
        if store == "sqlite":
            async with _serving(Place(store, Path(cwd)), workers, options, env) as ready:
                yield ready
            return
        with postgres_database(options.pg_admin_url, env) as url:
            place = Place(store, Path(cwd), url, postmaster_pid(options.pg_admin_url))
            async with _serving(place, workers, options, env) as ready:
                yield ready


@asynccontextmanager
async def _serving(
    place: Place, workers: int, options: Options, env: dict[str, str]
) -> AsyncIterator[tuple[Server, Api, Place]]:
    starting = running_server(workers=workers, cwd=place.cwd, env=env, database_url=place.database_url)
    async with starting as server:
        server.store_pid = place.store_pid
        connector = aiohttp.TCPConnector(limit=options.concurrency, limit_per_host=options.concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            yield server, Api(session, server.base_url), place


# -- one measurement ------------------------------------------------------------------------------


async def measure(
    label: str, name: str, call: Call, server: Server, options: Options, max_requests: int | None = None
) -> Figures:
    """Drive `call` closed-loop; the figures, with the CPU the server, its store, this client and the rest used."""
    before = _cpu_clocks(server)
    tally = await closed_loop(
        call,
        concurrency=options.concurrency,
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        max_requests=max_requests,
    )
    wall = tally.elapsed_s + options.warmup_s
    used = [now - was for now, was in zip(_cpu_clocks(server), before, strict=True)]
    figures = _with_cpu(summarize(name, tally), used, wall, tally.elapsed_s)
    _check(label, figures, options.allow_errors)
    progress(
        f"  {label} {name}: {figures.rps:,.0f}/s p50 {figures.p50_ms:.1f} ms p99 {figures.p99_ms:.1f} ms"
        + (f" ({figures.errors} errors)" if figures.errors else "")
    )
    return figures


def _cpu_clocks(server: Server) -> tuple[float, float, float, float]:
    """CPU seconds used so far by the server, its PostgreSQL, this process, and the whole machine."""
    return server.cpu_s(), server.store_cpu_s(), time.process_time(), machine_busy_s()


def _with_cpu(figures: Figures, used: list[float], wall: float, measured: float) -> Figures:
    """CPU shares over the whole run (warm-up included); per request over the measured part only."""
    server_s, store_s, client_s, machine_s = used
    return replace(
        figures,
        server_cpu_pct=round(100 * server_s / wall, 1),
        server_cpu_ms=round(1000 * server_s * (measured / wall) / max(figures.requests, 1), 3),
        store_cpu_pct=round(100 * store_s / wall, 1),
        client_cpu_pct=round(100 * client_s / wall, 1),
        other_cpu_pct=round(max(0.0, 100 * (machine_s - server_s - store_s - client_s) / wall), 1),
    )


def _check(label: str, figures: Figures, allow_errors: bool) -> None:
    too_many = figures.errors > MAX_ERROR_RATIO * figures.requests and not allow_errors
    if figures.requests == 0 or too_many:
        failed = f"{figures.errors} of {figures.requests} requests failed"
        raise BenchFailure(f"{label} {figures.name}: {failed} {figures.error_kinds}")


# -- one store ------------------------------------------------------------------------------------


@dataclass
class StoreRun:
    """The measurements of one store against one running server."""

    server: Server
    api: Api
    place: Place
    options: Options
    key_ring: KeyRing
    result: StoreResult
    ids: list[str] = field(default_factory=list)  # connections the API created, in order

    async def measure(self, name: str, call: Call, max_requests: int | None = None) -> Figures:
        figures = await measure(self.place.store, name, call, self.server, self.options, max_requests)
        self.result.figures[name] = figures
        return figures

    async def run(self) -> StoreResult:
        self.result.rss_mb["idle"] = self.server.rss_mb()
        await self.measure("health", scenarios.health(self.api))
        await self.measure("create", scenarios.create(self.api, "m", self.ids))
        async with self._raw_inserter() as raw:
            await self.measure("raw_insert", raw)
        await self.fill()
        self.result.rss_mb["after_creates"] = self.server.rss_mb()
        await self.reads()
        await self.measure("patch", scenarios.patch_metadata(self.api, self.ids))
        await self.measure("patch_hot", scenarios.patch_hot(self.api, self.ids[0]))
        await self.chartbrew()
        self.result.rss_mb["end"] = self.server.rss_mb()
        return self.result

    def _maker(self, tenant: str, tag: str) -> rows.RowMaker:
        return rows.RowMaker(self.key_ring, sqlite=self.place.database_url is None, tenant=tenant, tag=tag)

    @asynccontextmanager
    async def _raw_inserter(self) -> AsyncIterator[Call]:
        maker = self._maker(rows.RAW_TENANT, "raw")
        if self.place.database_url is None:
            async with rows.sqlite_raw_insert(sqlite_path(self.place.cwd), maker) as call:
                yield call
        else:
            async with rows.postgres_raw_insert(self.place.database_url, self.options.concurrency, maker) as call:
                yield call

    # -- fill -------------------------------------------------------------------------------------

    async def fill(self) -> None:
        """Create through the API until N rows exist or the time budget ends; the rest by direct SQL."""
        made_before = len(self.ids)
        if made_before < self.options.rows:
            await self._fill_through_api()
        by_api = len(self.ids)
        by_sql = self.options.rows - by_api
        if by_sql > 0:
            await self._fill_through_sql(by_sql)
        self.result.fill = {"api_creates": by_api, "sql_rows": max(by_sql, 0), "measured_creates": made_before}
        if self.place.database_url:
            autovacuum = analyze(self.place.database_url)
            self.result.notes.append(
                f"ANALYZE after the fill, as autovacuum would in time (autovacuum is {autovacuum} here): "
                "without statistics PostgreSQL reads get by id through the tenant index"
            )
        how = f"{by_api:,} connections made by API creates at concurrency {self.options.concurrency}"
        if by_sql > 0:
            how += f", {by_sql:,} more by direct SQL (sealed with the server's key, readable through the API)"
        self.result.notes.append(how + "; raw inserts went to tenant bench-raw, which no list sees")

    async def _fill_through_api(self) -> None:
        missing = self.options.rows - len(self.ids)
        budget = self.options.fill_api_s
        progress(f"  {self.place.store} fill: up to {missing:,} API creates within {budget:.0f} s")
        reporter = asyncio.create_task(self._report_fill())
        try:
            filling = replace(self.options, duration_s=budget, warmup_s=0.0)
            create = scenarios.create(self.api, "f", self.ids)
            figures = await measure(self.place.store, "fill", create, self.server, filling, missing)
            self.result.figures["fill"] = figures
        finally:
            reporter.cancel()

    async def _report_fill(self) -> None:
        while True:
            await asyncio.sleep(FILL_REPORT_EVERY_S)
            progress(f"  {self.place.store} fill: {len(self.ids):,}/{self.options.rows:,}")

    async def _fill_through_sql(self, count: int) -> None:
        progress(f"  {self.place.store} fill: {count:,} rows by direct SQL")
        maker = self._maker(rows.API_TENANT, "s")
        started = time.perf_counter()
        if self.place.database_url is None:
            first_id = await rows.sqlite_fill(sqlite_path(self.place.cwd), maker, count)
        else:
            first_id = await rows.postgres_fill(self.place.database_url, maker, count)
        self.result.notes.append(f"direct SQL fill: {count:,} rows in {time.perf_counter() - started:.1f} s")
        await self._check_readable(first_id)

    async def _check_readable(self, connection_id: str) -> None:
        """A row the fill wrote must read and update through the API like any other."""
        status, _ = await self.api.get(f"{scenarios.CONNECTIONS}/{connection_id}")
        patched, _ = await self.api.send(
            "PATCH", f"{scenarios.CONNECTIONS}/{connection_id}", {"metadata": {"filled": "sql"}}, {}
        )
        if (status, patched) != (200, 200):
            raise BenchFailure(f"a row of the SQL fill is not a readable connection (GET {status}, PATCH {patched})")

    # -- the Chartbrew dialect -------------------------------------------------------------------

    async def chartbrew(self) -> None:
        """The shared operations through the Chartbrew dialect, and the whole-team list it loads."""
        numbers: list[int] = []
        await self.measure("cb_create", scenarios.chartbrew_create(self.api, "m", numbers))
        team = scenarios.chartbrew_connections(scenarios.CHARTBREW_TEAM)
        await self.measure("cb_get", scenarios.get_by_id(self.api, numbers, team))
        await self.measure("cb_put", scenarios.chartbrew_put(self.api, numbers))
        team_rows = self.result.team_rows = min(FULL_TEAM_ROWS, self.options.rows)
        maker = self._maker(scenarios.CHARTBREW_LIST_TEAM, "cbl")
        if self.place.database_url is None:
            await rows.sqlite_fill(sqlite_path(self.place.cwd), maker, team_rows)
        else:
            await rows.postgres_fill(self.place.database_url, maker, team_rows)
            analyze(self.place.database_url)
        self.result.notes.append(f"Chartbrew whole-team list: {team_rows:,} connections of team bench-cb")
        await self.measure("cb_list_full", scenarios.chartbrew_list(self.api, scenarios.CHARTBREW_LIST_TEAM))

    # -- reads ------------------------------------------------------------------------------------

    async def reads(self) -> None:
        api = self.api
        self.result.rows = await scenarios.total_connections(api)
        await self.measure("get", scenarios.get_by_id(api, self.ids))
        await self.measure("list_first", scenarios.list_page(api, {"limit": "50"}))
        cursor, self.result.deep_offset = await scenarios.deep_cursor(api, max(self.result.rows - 50, 1))
        await self.measure("list_deep", scenarios.list_page(api, {"limit": "50", "cursor": cursor}))
        page = str(self.result.deep_offset // 50 + 1)
        await self.measure("list_deep_offset", scenarios.list_page(api, {"limit": "50", "page": page}))
