"""Shared fixtures: a Connhub app on a real store (SQLite file, or the machine's PostgreSQL).

`client` runs every API test on both stores. Each test gets an empty store: a fresh SQLite file,
or the PostgreSQL test database truncated. PostgreSQL tests fail (not skip) under CI=true when the
server is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from connhub.api.app import create_app
from connhub.config import Settings
from connhub.secrets import new_key_entry
from connhub.store.migrate import migrate
from tests.support.servers import require_server

PG_ADMIN_URL = os.environ.get(
    "CONNHUB_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CANARY_PASSWORD = "Canary-pw:@/?#%é-7f3a9c"  # searched for in responses, logs and store bytes


@pytest.fixture(scope="session")
def pg_store_url() -> Iterator[str]:
    """A database of our own on the machine's PostgreSQL, migrated once, dropped at the end."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"connhub_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_pg(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE connection_secrets, idempotency_keys, key_checks, connections, connection_health,"
            " health_results, webhook_deliveries, audit_log RESTART IDENTITY CASCADE"
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated store of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'connhub.db'}"
        migrate(url)
        return url
    url: str = request.getfixturevalue("pg_store_url")
    truncate_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'connhub.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def encryption_keys() -> str:
    return new_key_entry("test1")


@pytest.fixture
def make_settings(tmp_path: Path, encryption_keys: str) -> Callable[..., Settings]:
    def build(database_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "encryption_keys": encryption_keys,
            "data_dir": tmp_path / "data",
            "probe_timeout_s": 3.0,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a fresh app in process; the app's store pools are closed after."""
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://connhub"
        ) as http:
            yield http
    finally:
        await app.state.hub.close()


@pytest.fixture
async def client(store_url: str, make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    """The Reporter/Chartbrew API on each store, auth disabled (tenant `default`)."""
    async with client_for(make_settings(store_url)) as http:
        yield http


@pytest.fixture
async def sqlite_client(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on SQLite only, for tests whose subject is not the store."""
    async with client_for(make_settings(sqlite_url)) as http:
        yield http


def seed_body(**overrides: Any) -> dict[str, Any]:
    """The Reporter seed's create body (without ssl), with `overrides` applied (None removes a field)."""
    body: dict[str, Any] = {
        "configName": "production-db",
        "type": "POSTGRESQL",
        "host": "db.example.com",
        "port": 5432,
        "databaseName": "mydatabase",
        "userName": "dbuser",
        "password": CANARY_PASSWORD,
        "schema": "public",
        "metadata": {"environment": "production", "team": "data-engineering"},
    }
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


PRODUCT = {"X-Product-Name": "My-Product"}
