"""Signing in with a token, read-only tokens, and what keeps the console safe (CSP, no HTML from data)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from connhub.api import console as console_module
from tests.console.conftest import READ, WRITE, Console, Served, mint, open_console, unique
from tests.support.pg_instance import PostgresInstance
from tests.support.pki import CertificateAuthority

STATIC = Path(console_module.STATIC)


@pytest.fixture
async def jwt_tab(browser: Browser, jwt_server: Served) -> AsyncIterator[Console]:
    console, made = await open_console(browser, jwt_server)
    yield console
    await made.close()
    assert console.problems == [] and console.dialogs == []


async def sign_in(tab: Console, token: str) -> None:
    await tab.open("/")
    await tab.page.get_by_label("Bearer token").fill(token)
    await tab.page.get_by_role("button", name="Sign in").click()


async def test_sign_in_refuses_a_bad_token_then_keeps_a_good_one_in_the_tab_only(jwt_tab: Console) -> None:
    page = jwt_tab.page
    tenant = unique("acme")
    token = mint(tenant, f"{READ} {WRITE}")
    await sign_in(jwt_tab, "not-a-jwt")
    await expect(page.locator("#token-error")).to_have_text("the token is invalid")
    await page.get_by_label("Bearer token").fill(mint(tenant, "profile email"))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_have_text("the token lacks the connections:read scope")
    await expect(page.get_by_label("Bearer token")).to_have_attribute("aria-invalid", "true")

    await page.get_by_label("Bearer token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("tenant")).to_have_text(tenant)
    await expect(page.get_by_test_id("new")).to_be_visible()
    assert await page.evaluate("localStorage.length") == 0
    assert await page.evaluate("sessionStorage.length") == 1
    assert token not in page.url

    await page.reload()  # the same tab keeps the session
    await expect(page.get_by_test_id("tenant")).to_have_text(tenant)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Bearer token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_a_read_only_token_sees_no_write_buttons(jwt_tab: Console) -> None:
    page = jwt_tab.page
    tenant = unique("readers")
    created = jwt_tab.server.create(mint(tenant, f"{READ} {WRITE}"), configName=unique("shared"))
    await sign_in(jwt_tab, mint(tenant, READ))
    await expect(page.get_by_test_id("read-only")).to_be_visible()
    await expect(page.locator("tbody a.name")).to_have_text(created["configName"])
    assert await page.get_by_test_id("new").count() == 0

    await page.locator("tbody a.name").click()
    await expect(page.get_by_role("heading", name=created["configName"])).to_be_visible()
    await expect(page.get_by_role("link", name="Browse schema")).to_be_visible()
    for action in ("test", "edit", "duplicate", "delete"):
        assert await page.get_by_test_id(action).count() == 0, action

    await jwt_tab.open(f"/c/{created['id']}/edit")
    await expect(page.get_by_role("heading", name="Read-only")).to_be_visible()
    assert await page.locator("form.connection-form").count() == 0


async def test_a_new_organization_sees_the_empty_state(jwt_tab: Console) -> None:
    await sign_in(jwt_tab, mint(unique("newcomer"), f"{READ} {WRITE}"))
    await expect(jwt_tab.page.get_by_text("No connections yet.")).to_be_visible()
    await jwt_tab.page.get_by_role("link", name="Create the first connection").click()
    await expect(jwt_tab.page.get_by_role("heading", name="New connection")).to_be_visible()


async def test_another_tenants_connection_is_not_found(jwt_tab: Console) -> None:
    theirs = jwt_tab.server.create(mint(unique("them"), f"{READ} {WRITE}"), configName=unique("private"))
    await sign_in(jwt_tab, mint(unique("us"), READ))
    await expect(jwt_tab.page.get_by_test_id("tenant")).to_be_visible()
    await jwt_tab.open(f"/c/{theirs['id']}")
    await expect(jwt_tab.page.get_by_role("heading", name="No such connection")).to_be_visible()


async def test_edit_keeps_the_password_when_left_empty(tab: Console, password_postgres: PostgresInstance) -> None:
    page = tab.page
    pg = password_postgres
    created = tab.server.create(
        configName=unique("scram"), host=pg.host, port=pg.port, userName=pg.user, password=pg.password
    )
    await tab.open(f"/c/{created['id']}")
    await page.get_by_test_id("test").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("Connected in")

    await page.get_by_test_id("edit").click()
    await expect(page.get_by_label("Password")).to_have_value("")  # never read back
    await page.get_by_label("Name", exact=True).fill(created["configName"] + "-renamed")
    await page.get_by_label("Metadata").fill("owner=console")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.get_by_role("heading", name=created["configName"] + "-renamed")).to_be_visible()
    await page.get_by_test_id("test").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("Connected in")  # the password was kept

    await page.get_by_test_id("edit").click()
    await page.get_by_label("Password").fill("a-wrong-password")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await page.get_by_test_id("test").click()
    await expect(page.get_by_test_id("verdict")).to_contain_text("AUTH_FAILED")
    await expect(page.locator('.facts [data-field="password"]')).to_have_class(re.compile(r"\bto-fix\b"))


async def test_a_certificate_is_read_in_the_browser_and_sent_as_pem(tab: Console, tmp_path: Path) -> None:
    page = tab.page
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(CertificateAuthority().cert_pem)
    created = tab.server.create(configName=unique("tls"))
    await tab.open(f"/c/{created['id']}/edit")
    await page.get_by_label("TLS mode").select_option("verify-ca")
    await page.get_by_label("CA certificate").set_input_files(str(ca_file))
    await expect(page.get_by_test_id("ssl.ca-status")).to_contain_text("ca.pem")
    await page.get_by_test_id("save").click()
    await expect(page.locator('[data-field="ssl"] dd')).to_have_text("verify-ca, with CA")
    assert "BEGIN CERTIFICATE" not in await page.content()
    stored = tab.server.get(created["id"]).json()["ssl"]
    assert stored == {"mode": "verify-ca", "hasCa": True, "hasCert": False, "hasKey": False}

    await page.get_by_test_id("edit").click()
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    await page.get_by_label("Client certificate").set_input_files(str(bad))
    await page.get_by_test_id("save").click()
    await expect(page.locator('[data-field="ssl.cert"] .field-error')).not_to_be_empty()


async def test_saving_over_a_change_made_meanwhile_says_so(tab: Console) -> None:
    page = tab.page
    created = tab.server.create(configName=unique("contested"))
    await tab.open(f"/c/{created['id']}/edit")
    await expect(page.get_by_label("Host")).to_have_value("127.0.0.1")
    meanwhile = httpx.patch(
        f"{tab.server.url}/v1/management/connections/{created['id']}", json={"metadata": {"by": "someone"}}, timeout=30
    )
    assert meanwhile.status_code == 200
    await page.get_by_label("Database").fill("other")
    await page.get_by_test_id("save").click()
    await expect(page.locator(".error-summary")).to_contain_text("changed since you opened it")
    assert tab.server.get(created["id"]).json()["databaseName"] == "postgres"


def test_console_responses_carry_a_strict_policy(server: Served) -> None:
    for path in ("/console/", "/console/app.js", "/console/views/form.js", "/console/app.css"):
        response = httpx.get(server.url + path, timeout=10)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe" not in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(server.url + "/console", timeout=10).headers["location"] == "/console/"
    assert httpx.get(server.url + "/console/missing.js", timeout=10).status_code == 404


def test_the_console_has_no_inline_script_and_builds_no_html_from_strings() -> None:
    html = (STATIC / "index.html").read_text()
    assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", html))
    assert re.search(r"<script[^>]*>\s*[^<\s]", html) is None
    assert re.search(r"\son[a-z]+=", html) is None
    for source in STATIC.rglob("*.js"):
        code = source.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{source.name} uses {sink}"
        assert "localStorage" not in code, source.name
