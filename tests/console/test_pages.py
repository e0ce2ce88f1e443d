"""What a user does in the console, in a real browser, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import expect

from tests.console.conftest import LOCAL_PG, PRODUCT, SCHEMA_TABLE, Console, seed_many, unique
from tests.support.listeners import SilentListener
from tests.support.servers import free_port

TO_FIX = re.compile(r"\bto-fix\b")
DASH = "\N{EN DASH}"  # the list's range: 1-50 of 1,000, typeset
NO_VALUE = "\N{EN DASH}"


async def test_auth_disabled_opens_straight_to_the_list_with_the_tenant(tab: Console) -> None:
    await tab.open("/")
    await expect(tab.page.get_by_role("heading", name="Connections")).to_be_visible()
    await expect(tab.page.get_by_test_id("tenant")).to_have_text("default")
    await expect(tab.page.get_by_test_id("new")).to_be_visible()


async def test_create_through_the_form_shows_the_field_error_then_saves(tab: Console) -> None:
    page = tab.page
    name = unique("form-made")
    await tab.open("/")
    await page.get_by_test_id("new").click()
    await page.get_by_label("Name", exact=True).fill("ab")  # too short: the server says why
    await page.get_by_label("Product").fill(PRODUCT)
    await page.get_by_label("Host").fill("127.0.0.1")
    await page.get_by_label("Database").fill("postgres")
    await page.get_by_label("User").fill("postgres")
    await page.get_by_label("Password").fill("unused-under-trust")
    await page.get_by_label("Metadata").fill("team=data\nenvironment=test")
    await page.get_by_test_id("save").click()

    name_field = page.locator('[data-field="configName"]')
    await expect(name_field.locator(".field-error")).to_contain_text("3-100 characters")
    await expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Name", exact=True)).to_be_focused()

    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_test_id("save").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()
    facts = page.get_by_test_id("facts")
    await expect(facts.locator('[data-field="host"] dd')).to_have_text("127.0.0.1")
    await expect(facts.locator('[data-field="metadata"] dd')).to_have_text("team=data, environment=test")
    await expect(facts.locator('[data-field="productName"] dd')).to_have_text(PRODUCT)
    # The password is held but never rendered: no input, no masked value, anywhere.
    assert await page.locator("input[type=password], input[type=hidden]").count() == 0
    assert "unused-under-trust" not in await page.content()


async def test_an_unsaved_test_highlights_the_field_in_the_form_and_stores_nothing(tab: Console) -> None:
    page = tab.page
    name = unique("unsaved")
    await tab.open("/new")
    await page.get_by_label("Paste a connection string").fill(f"postgresql://postgres:pw@127.0.0.1:{free_port()}/postgres")
    await page.get_by_test_id("fill").click()
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_test_id("test-unsaved").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("PORT_CLOSED")
    await expect(page.locator('.field[data-field="port"]')).to_have_class(TO_FIX)
    await expect(page.get_by_label("Port")).to_be_focused()
    listed = httpx.get(f"{tab.server.url}/v1/management/connections", params={"configName": name}, timeout=30)
    assert listed.json()["total"] == 0


async def test_a_pasted_connection_string_fills_the_form(tab: Console) -> None:
    page = tab.page
    await tab.open("/new")
    await page.get_by_label("Paste a connection string").fill(
        "jdbc:mysql://report%40er:p%40ss:w@db.internal:3307/sales?sslmode=require&charset=utf8"
    )
    await page.get_by_test_id("fill").click()
    await expect(page.get_by_label("Engine")).to_have_value("MYSQL")
    await expect(page.get_by_label("Host")).to_have_value("db.internal")
    await expect(page.get_by_label("Port")).to_have_value("3307")
    await expect(page.get_by_label("Database")).to_have_value("sales")
    await expect(page.get_by_label("User")).to_have_value("report@er")
    await expect(page.get_by_label("Password")).to_have_value("p@ss:w")
    await expect(page.get_by_label("TLS mode")).to_have_value("require")
    await expect(page.get_by_label("Paste a connection string")).to_have_value("")  # it held a password
    await expect(page.locator('[data-field="connectionString"]')).to_contain_text("Not used: charset")
    await expect(page.locator('[data-field="schema"]')).to_be_hidden()  # MySQL takes no schema


async def test_live_test_success_shows_phases_version_and_the_status_dot(tab: Console) -> None:
    page = tab.page
    created = tab.server.create(configName=unique("live-ok"))
    await tab.open(f"/c/{created['id']}")
    await page.get_by_test_id("test").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("Connected in")
    await expect(page.get_by_test_id("server-version")).not_to_have_text(NO_VALUE)
    legend = page.locator(".phase-legend")
    for phase in ("dnsMs", "connectMs", "queryMs"):  # trust auth: no auth phase
        await expect(legend.locator(f'[data-phase="{phase}"]')).to_be_visible()
    await expect(page.locator(".phase-bar .phase")).not_to_have_count(0)
    await expect(page.get_by_test_id("tls")).not_to_be_empty()

    await page.get_by_role("link", name="← Connections").click()
    await page.get_by_label("Search by name").fill(created["configName"])
    row = page.locator("tbody tr", has_text=created["configName"])
    await expect(row.get_by_test_id("status-dot")).to_have_class("dot success")


async def test_live_test_failure_names_the_cause_and_the_field_to_fix(tab: Console) -> None:
    page = tab.page
    created = tab.server.create(configName=unique("live-closed"), port=free_port())  # nothing listens there
    await tab.open(f"/c/{created['id']}")
    panel = page.get_by_test_id("test-panel")
    height_before = await panel.evaluate("node => node.getBoundingClientRect().height")
    await page.get_by_test_id("test").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("PORT_CLOSED")
    await expect(page.get_by_test_id("cause")).not_to_be_empty()
    await expect(page.get_by_test_id("fix")).to_contain_text("port")
    await expect(page.locator('[data-field="port"]')).to_have_class(TO_FIX)
    # The panel keeps its reserved height: the result does not push the page around.
    assert await panel.evaluate("node => node.getBoundingClientRect().height") == height_before

    await page.get_by_test_id("fix").get_by_role("link").click()
    await expect(page.locator('.field[data-field="port"]')).to_have_class(TO_FIX)
    await expect(page.get_by_label("Port")).to_be_focused()


async def test_a_slow_test_shows_progress_and_moves_nothing(tab: Console) -> None:
    page = tab.page
    async with SilentListener() as silent:  # accepts, never answers: the probe runs to its timeout
        created = tab.server.create(configName=unique("silent"), port=silent.port)
        await tab.open(f"/c/{created['id']}")
        boxes = [page.get_by_test_id("facts"), page.get_by_test_id("test-panel"), page.get_by_test_id("test")]
        before = [await box.bounding_box() for box in boxes]
        await page.get_by_test_id("test").click()
        await expect(page.get_by_test_id("test")).to_have_attribute("aria-busy", "true")
        await expect(page.get_by_role("progressbar")).to_be_visible()
        assert [await box.bounding_box() for box in boxes] == before
        await expect(page.get_by_test_id("verdict")).to_contain_text("TIMEOUT", timeout=30_000)
        await expect(page.get_by_role("progressbar")).to_be_hidden()
        await expect(page.get_by_test_id("fix")).to_contain_text("host")


async def test_schema_browser_lists_tables_then_columns_and_searches(tab: Console, schema_database: str) -> None:
    page = tab.page
    created = tab.server.create(configName=unique("schema"), databaseName=schema_database)
    await tab.open(f"/c/{created['id']}")
    await page.get_by_role("link", name="Browse schema").click()
    tables = page.get_by_role("list", name="Tables")
    await expect(tables.get_by_role("button")).to_have_count(2)
    await tables.get_by_role("button", name=SCHEMA_TABLE).click()
    columns = page.get_by_test_id("columns")
    await expect(columns.locator("caption")).to_have_text(SCHEMA_TABLE)
    id_row = columns.locator("tbody tr", has_text="id")
    await expect(id_row.first).to_contain_text("integer")
    await expect(id_row.first).to_contain_text("primary")
    note = columns.locator("tbody tr", has_text="note")
    await expect(note).to_contain_text("character varying(200)")
    await expect(note.locator('[data-label="Nullable"]')).to_have_text("yes")
    await expect(columns.locator("tbody tr", has_text="customer").locator('[data-label="Nullable"]')).to_have_text("no")

    await page.get_by_label("Search 2 tables").fill("email")  # a column of the other table
    await expect(tables.get_by_role("button")).to_have_count(1)
    await expect(tables.get_by_role("button")).to_contain_text("console_customers")


async def test_delete_asks_first_then_removes(tab: Console) -> None:
    page = tab.page
    created = tab.server.create(configName=unique("to-delete"))
    await tab.open(f"/c/{created['id']}")
    await page.get_by_test_id("delete").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"Delete {created['configName']}?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    assert tab.server.get(created["id"]).status_code == 200

    await page.get_by_test_id("delete").click()
    await page.get_by_test_id("confirm").click()
    await expect(page.get_by_role("status")).to_have_text(f"Deleted {created['configName']}.")
    assert tab.server.get(created["id"]).status_code == 404


async def test_duplicate_asks_for_the_password_again(tab: Console) -> None:
    page = tab.page
    created = tab.server.create(configName=unique("original"), metadata={"team": "data"})
    await tab.open(f"/c/{created['id']}")
    await page.get_by_test_id("duplicate").click()
    await expect(page.get_by_label("Name", exact=True)).to_have_value(f"{created['configName']} (copy)")
    await expect(page.get_by_label("Password")).to_have_value("")
    await page.get_by_test_id("save").click()
    await expect(page.locator('[data-field="password"] .field-error')).to_contain_text("required")

    await page.get_by_label("Password").fill("unused-under-trust")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_role("heading", name=f"{created['configName']} (copy)")).to_be_visible()
    await expect(page.locator('[data-field="metadata"] dd')).to_have_text("team=data")
    await page.get_by_test_id("test").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("Connected in")


async def test_paging_through_1000_connections(tab: Console) -> None:
    page = tab.page
    prefix = unique("bulk")
    names = [f"{prefix}-{number:04d}" for number in range(1000)]
    await seed_many(tab.server, names)
    await tab.open("/")
    await page.get_by_label("Sort").select_option("configName:asc")
    await page.get_by_label("Search by name").fill(prefix)
    await expect(page.get_by_test_id("range")).to_have_text(f"1{DASH}50 of 1,000")

    seen: list[str] = []
    for number in range(20):
        first = f"{number * 50 + 1:,}"
        await expect(page.get_by_test_id("range")).to_have_text(f"{first}{DASH}{(number + 1) * 50:,} of 1,000")
        seen.extend(await page.locator("tbody a.name").all_inner_texts())
        if number < 19:
            await page.get_by_test_id("next").click()
    assert seen == names
    await expect(page.get_by_test_id("next")).to_be_disabled()
    await page.get_by_test_id("previous").click()
    await expect(page.get_by_test_id("range")).to_have_text(f"901{DASH}950 of 1,000")
    await expect(page.locator("tbody a.name").first).to_have_text(names[900])


async def test_a_name_made_of_markup_renders_as_text(tab: Console) -> None:
    page = tab.page
    name = f"<img src=x onerror=alert(1)> {unique('xss')}"
    created = tab.server.create(configName=name, metadata={"<b>key</b>": "<script>alert(2)</script>"})
    await tab.open("/")
    await page.get_by_label("Search by name").fill(name[-12:])
    await expect(page.get_by_test_id("range")).to_have_text(f"1{DASH}1 of 1")
    await expect(page.locator("tbody a.name")).to_have_text(name)
    await page.locator("tbody a.name").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()
    await expect(page.locator('[data-field="metadata"] dd')).to_have_text("<b>key</b>=<script>alert(2)</script>")
    assert await page.locator("main img, main script, main b").count() == 0
    await page.get_by_test_id("edit").click()
    await expect(page.get_by_label("Name", exact=True)).to_have_value(name)
    assert created["id"] in page.url
    # The tab fixture fails the test if any dialog opened or any script error happened.


async def test_empty_filters_say_so(tab: Console) -> None:
    await tab.open("/")
    await tab.page.get_by_label("Search by name").fill(unique("nothing-has-this-name"))
    await expect(tab.page.get_by_text("No connection matches these filters.")).to_be_visible()


async def test_narrow_and_wide_screens_do_not_scroll_sideways(tab: Console) -> None:
    created = tab.server.create(configName=unique("layout"), metadata={"team": "data"})
    for width in (360, 1440):
        await tab.page.set_viewport_size({"width": width, "height": 800})
        for route in ("/", f"/c/{created['id']}", f"/c/{created['id']}/edit", "/new"):
            await tab.open(route)
            await expect(tab.page.locator("main h1")).to_be_visible()
            overflow = await tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (width, route)


async def test_every_control_is_labelled_and_keyboard_reachable(tab: Console) -> None:
    created = tab.server.create(configName=unique("a11y"), **{**LOCAL_PG})
    for route in ("/", "/new", f"/c/{created['id']}/edit"):
        await tab.open(route)
        await expect(tab.page.locator("main h1")).to_be_visible()
        unlabelled = await tab.page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                 .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.name || el.id)"""
        )
        assert unlabelled == [], route
    await tab.open("/")
    await expect(tab.page.locator("main h1")).to_be_visible()
    reached = set()
    for _ in range(12):
        await tab.page.keyboard.press("Tab")
        focused = "document.activeElement.getAttribute('data-testid') || document.activeElement.id"
        reached.add(await tab.page.evaluate(focused))
    assert {"new", "filter-configName", "filter-type"} <= reached
