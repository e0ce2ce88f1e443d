"""Screenshots of the main pages, light and dark, taken in the real browser against a fresh server.

They go to a temporary folder; with CONNHUB_CONSOLE_SCREENSHOTS=1 to docs/console/ (the README shows
them):  CONNHUB_CONSOLE_SCREENSHOTS=1 python -m pytest tests/console/test_screenshots.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.console.conftest import LOCAL_PG, PRODUCT, Served
from tests.support.reliability import connhub_serve
from tests.support.servers import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"


@pytest.fixture
def showcase(tmp_path: Path, encryption_keys: str, schema_database: str) -> Iterator[tuple[Served, dict[str, str]]]:
    """A fresh server holding a few connections that look like a data team's."""
    env = {"CONNHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "CONNHUB_ENCRYPTION_KEYS": encryption_keys}
    with connhub_serve(tmp_path, env) as process:
        served = Served(process, "sqlite")
        ids = {
            "warehouse": served.create(configName="analytics-warehouse", metadata={"team": "data"})["id"],
            "orders": served.create(configName="orders-db", databaseName=schema_database, schema="public")["id"],
            "crm": served.create(
                configName="crm-sqlserver", type="SQL_SERVER", host="127.0.0.1", port=free_port(),
                databaseName="crm", userName="reporter", metadata={"team": "sales"},
            )["id"],
        }
        served.create(configName="billing-mysql", type="MYSQL", host="127.0.0.1", port=3306,
                      databaseName="billing", userName="root")
        served.create(configName="events-mongo", type="MONGODB", host="mongo.internal", port=27017,
                      databaseName="events", userName="reader", ssl={"mode": "require"})
        served.create(configName="ledger-oracle", type="ORACLE", host="oracle.internal", port=1521,
                      databaseName="LEDGER", userName="ledger_ro", schema="LEDGER")
        assert LOCAL_PG and PRODUCT
        yield served, ids


async def shoot(page: Page, folder: Path, name: str) -> None:
    await page.wait_for_timeout(250)  # let the progress bar and transitions settle
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


async def test_screenshots_of_the_main_pages(
    browser: Browser, showcase: tuple[Served, dict[str, str]], tmp_path: Path
) -> None:
    served, ids = showcase
    folder = DOCS if os.environ.get("CONNHUB_CONSOLE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
        page = await context.new_page()
        base = served.console

        await page.goto(f"{base}#/c/{ids['warehouse']}")
        await page.get_by_test_id("test").click()
        await expect(page.get_by_test_id("verdict")).to_contain_text("Connected")
        await shoot(page, folder, f"test-success-{scheme}")

        await page.goto(f"{base}#/c/{ids['crm']}")
        await page.get_by_test_id("test").click()
        await expect(page.get_by_test_id("verdict")).to_contain_text("PORT_CLOSED")
        await shoot(page, folder, f"test-failure-{scheme}")

        await page.get_by_role("link", name="← Connections").click()
        await expect(page.locator("tbody tr")).to_have_count(6)
        await shoot(page, folder, f"list-{scheme}")

        await page.goto(f"{base}#/new")
        await page.get_by_label("Name", exact=True).fill("ab")
        await page.get_by_label("Product").fill("reports")
        await page.get_by_label("Host").fill("db .example.com")
        await page.get_by_label("Database").fill("sales")
        await page.get_by_label("User").fill("reporter")
        await page.get_by_label("Password").fill("s3cret")
        await page.get_by_test_id("save").click()
        await expect(page.locator('[data-field="host"] .field-error')).not_to_be_empty()
        await shoot(page, folder, f"form-error-{scheme}")

        await page.goto(f"{base}#/c/{ids['orders']}/schema")
        await page.get_by_role("button", name="console_orders").click()
        await expect(page.get_by_test_id("columns")).to_be_visible()
        await shoot(page, folder, f"schema-{scheme}")

        await page.set_viewport_size({"width": 360, "height": 740})
        await page.goto(f"{base}#/")
        await expect(page.locator("tbody tr")).to_have_count(6)
        await shoot(page, folder, f"list-narrow-{scheme}")
        await context.close()
