"""The console in a real browser: Debian's chromium driven by Playwright, against `connhub serve`
subprocesses on SQLite and on PostgreSQL (a fresh database of the machine's server, migrated first).

Servers live for the whole package (starting one costs seconds): every test makes its own uniquely
named connections and filters on them, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from playwright.async_api import Browser, Page, async_playwright

from connhub.store.migrate import migrate
from tests.conftest import PG_ADMIN_URL
from tests.support.pg_instance import PG_BIN, PostgresInstance, start_postgres
from tests.support.reliability import ConnhubProcess, connhub_serve, require_binary
from tests.support.servers import require_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JWT_SECRET = "console-test-hs256-secret-long-enough-for-hs256"
READ, WRITE = "connections:read", "connections:write"
BASE = "/v1/management/connections"
PRODUCT = "console-tests"
# The machine's PostgreSQL: trust auth for `postgres`, so any password logs in.
LOCAL_PG = {"host": "127.0.0.1", "port": 5432, "databaseName": "postgres", "userName": "postgres"}
SCHEMA_TABLE = "console_orders"


def mint(tenant: str, scope: str) -> str:
    claims = {"tenantId": tenant, "scope": scope, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Served:
    """A running `connhub serve` and how to reach its API directly (to seed and to check)."""

    process: ConnhubProcess
    store: str
    auth: bool = False

    @property
    def url(self) -> str:
        return self.process.base_url

    @property
    def console(self) -> str:
        return f"{self.url}/console/"

    def headers(self, token: str | None = None) -> dict[str, str]:
        headers = {"X-Product-Name": PRODUCT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def create(self, token: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"type": "POSTGRESQL", **LOCAL_PG, "password": "unused-under-trust", **fields}
        response = httpx.post(f"{self.url}{BASE}", json=body, headers=self.headers(token), timeout=30)
        assert response.status_code == 201, response.text
        found: dict[str, Any] = response.json()
        return found

    def get(self, connection_id: str, token: str | None = None) -> httpx.Response:
        return httpx.get(f"{self.url}{BASE}/{connection_id}", headers=self.headers(token), timeout=30)


@pytest.fixture(scope="package")
def chromium_path() -> Path:
    require_binary(CHROMIUM)
    return CHROMIUM


@pytest.fixture(scope="package")
def console_pg_url() -> Iterator[str]:
    """A fresh store database on the machine's PostgreSQL, migrated before the server starts."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = unique("connhub_console").replace("-", "_")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def schema_database() -> Iterator[str]:
    """A database on the machine's PostgreSQL holding one known table, for the schema browser."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = unique("connhub_console_target").replace("-", "_")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as target:
        target.execute(
            f"CREATE TABLE {SCHEMA_TABLE} (id integer PRIMARY KEY, customer text NOT NULL, note varchar(200))"
        )
        target.execute("CREATE TABLE console_customers (email text PRIMARY KEY, since date)")
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def password_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInstance]:
    """A throw-away PostgreSQL that checks passwords (scram), so a test can prove one was kept."""
    require_binary(PG_BIN / "initdb")
    with start_postgres(tmp_path_factory.mktemp("pg-password"), ssl=False) as instance:
        yield instance


def _serve(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, keys: str, auth: bool
) -> Iterator[Served]:
    store: str = request.param
    workdir = tmp_path_factory.mktemp(f"console-{store}-{'jwt' if auth else 'open'}")
    url = (
        request.getfixturevalue("console_pg_url") if store == "postgresql" else f"sqlite:///{workdir / 'store.db'}"
    )
    env = {"CONNHUB_DATABASE_URL": url, "CONNHUB_ENCRYPTION_KEYS": keys, "CONNHUB_PROBE_TIMEOUT_S": "5"}
    if auth:
        env.update({"CONNHUB_AUTH": "jwt", "CONNHUB_JWT_SECRET": JWT_SECRET})
    with connhub_serve(workdir, env) as process:
        yield Served(process, store, auth)


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, encryption_keys: str
) -> Iterator[Served]:
    """`connhub serve` with auth disabled: the console opens straight away, tenant `default`."""
    yield from _serve(tmp_path_factory, request, encryption_keys, auth=False)


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def jwt_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, encryption_keys: str
) -> Iterator[Served]:
    """`connhub serve` with CONNHUB_AUTH=jwt (HS256): the console asks for a token."""
    yield from _serve(tmp_path_factory, request, encryption_keys, auth=True)


@pytest.fixture(scope="package")
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Console:
    """A browser tab on the console, recording what a user must never get: dialogs, script errors,
    CSP violations."""

    page: Page
    server: Served
    dialogs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def open(self, route: str = "/") -> None:
        await self.page.goto(f"{self.server.console}#{route}")


async def open_console(browser: Browser, server: Served, **context: Any) -> tuple[Console, Any]:
    made = await browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    made.set_default_timeout(20_000)
    page = await made.new_page()
    console = Console(page, server)

    async def dismiss(dialog: Any) -> None:
        console.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    page.on("pageerror", lambda error: console.problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: console.problems.append(message.text)
        if "Content Security Policy" in message.text
        else None,
    )
    return console, made


@pytest.fixture
async def tab(browser: Browser, server: Served) -> AsyncIterator[Console]:
    """A fresh browser context (no storage) on the open server; fails the test on any script
    error, CSP violation or dialog."""
    console, made = await open_console(browser, server)
    yield console
    await made.close()
    assert console.problems == [] and console.dialogs == []


async def seed_many(server: Served, names: list[str]) -> None:
    """Create connections through the API, a few at a time (the store batches them)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        gate = asyncio.Semaphore(16)

        async def one(name: str) -> None:
            async with gate:
                body = {"configName": name, "type": "POSTGRESQL", **LOCAL_PG, "password": "unused-under-trust"}
                response = await http.post(BASE, json=body, headers=server.headers())
                assert response.status_code == 201, response.text

        await asyncio.gather(*(one(name) for name in names))
