"""The console's list at scale: how long a user waits for a page, in the real browser.

    python -m bench.console                 # PostgreSQL, 100,000 connections, 50 pages
    python -m bench.console --rows 20000 --pages 20

Starts `connhub serve` on a fresh PostgreSQL database (created, migrated, dropped at the end), fills
it straight through the driver (bench.rows: real sealed rows of tenant `default`), ANALYZEs it, then
drives Debian's chromium with Playwright: the first page of the list, `--pages` clicks on Next
(keyset paging through `cursor`), the same after sorting by name, a name search and an engine
filter. Each figure is the time from the user's action to the new range ("51-100 of 100,000")
being on screen: request, server, rendering. Timings are for information (no target in the issue).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright

from bench.rows import API_TENANT, RowMaker, postgres_fill
from bench.server import clean_environment, generate_key, running_server
from bench.stores import analyze, postgres_database
from connhub.secrets import KeyRing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def timed(page: Page, action: Any, old_range: str) -> tuple[float, str]:
    """Milliseconds from `action` to the range text changing from `old_range`."""
    started = time.perf_counter()
    await action()
    await page.wait_for_function(
        "old => { const r = document.querySelector('[data-testid=range]'); return r && r.textContent !== old; }",
        arg=old_range,
    )
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, await page.get_by_test_id("range").inner_text()


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "max_ms": round(ordered[-1], 1),
        "mean_ms": round(statistics.fmean(ordered), 1),
    }


async def walk(page: Page, pages: int, start_range: str) -> tuple[list[float], str]:
    """`pages` clicks on Next: each one's time, and the range shown at the end."""
    samples = []
    current = start_range
    for _ in range(pages):
        elapsed, current = await timed(page, page.get_by_test_id("next").click, current)
        samples.append(elapsed)
    return samples, current


async def measure(base_url: str, pages: int) -> dict[str, Any]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        results: dict[str, Any] = {}
        started = time.perf_counter()
        await page.goto(f"{base_url}/console/#/")
        await page.get_by_test_id("range").wait_for()
        results["first_page_ms"] = round((time.perf_counter() - started) * 1000, 1)
        started = time.perf_counter()
        await page.reload()  # the same, with the browser warm (its first page load includes its own start-up)
        await page.get_by_test_id("range").wait_for()
        results["reload_ms"] = round((time.perf_counter() - started) * 1000, 1)
        first_range = await page.get_by_test_id("range").inner_text()
        results["first_range"] = first_range
        samples, current = await walk(page, pages, first_range)
        results["next_newest_first"] = summary(samples)

        elapsed, by_name = await timed(page, lambda: page.get_by_label("Sort").select_option("configName:asc"), current)
        results["sort_by_name_ms"] = round(elapsed, 1)
        samples, current = await walk(page, pages, by_name)
        results["next_by_name"] = summary(samples)

        elapsed, engine = await timed(page, lambda: page.get_by_label("Engine").select_option("POSTGRESQL"), current)
        results["engine_filter"] = {"ms": round(elapsed, 1), "range": engine}
        search = page.get_by_label("Search by name")
        elapsed, found = await timed(page, lambda: search.fill("console-000001"), engine)  # -0000010 to -0000019
        results["search_by_name"] = {"ms_including_300ms_typing_pause": round(elapsed, 1), "range": found}
        await browser.close()
        return results


async def run(rows: int, pages: int) -> dict[str, Any]:
    key = generate_key()
    env = clean_environment({"CONNHUB_ENCRYPTION_KEYS": key})
    with tempfile.TemporaryDirectory() as directory, postgres_database(ADMIN_URL, env) as url:
        maker = RowMaker(KeyRing.parse(key), sqlite=False, tenant=API_TENANT, tag="console")
        started = time.perf_counter()
        await postgres_fill(url, maker, rows)
        fill_s = time.perf_counter() - started
        analyze(url)
        async with running_server(workers=1, cwd=Path(directory), env=env, database_url=url) as server:
            results = await measure(server.base_url, pages)
    return {"store": "postgresql", "rows": rows, "pages": pages, "fill_s": round(fill_s, 1), **results}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=50, help="Next clicks per walk")
    parser.add_argument("--output", type=Path, help="also write the results here as JSON")
    arguments = parser.parse_args()
    results = asyncio.run(run(arguments.rows, arguments.pages))
    text = json.dumps(results, indent=2)
    print(text)
    if arguments.output:
        arguments.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
