"""Migration 0006 drops `idempotency_keys.status` (always 201, never read), on both stores.

What a user sees: an X-Idempotency key stored before the upgrade still replays after it, and one
reused with another body is still a 409. A store taken back to 0005 has the column again, each row
holding what connhub at 0005 wrote there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, pool, text

from connhub.config import Settings
from connhub.store.migrate import migrate
from connhub.store.urls import sync_url
from tests.conftest import PG_ADMIN_URL, client_for, seed_body
from tests.support.migrations import rewind
from tests.support.servers import require_server

BASE = "/v1/management/connections"
HEADERS = {"X-Product-Name": "reports", "X-Idempotency": "before-the-upgrade"}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store of each kind of its own, migrated to head (this test takes it back and forth)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        migrate(url)
        yield url
        return
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"connhub_0006_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def idempotency_rows(url: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """The table's columns, and its rows as (key, status if the column is there)."""
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            columns = [column["name"] for column in inspect(conn).get_columns("idempotency_keys")]
            status = ", status" if "status" in columns else ""
            rows = [tuple(row) for row in conn.execute(text(f"SELECT key{status} FROM idempotency_keys"))]
    finally:
        engine.dispose()
    return columns, rows


async def test_a_key_stored_before_the_upgrade_still_replays_after_it(
    fresh_store: str, make_settings: Callable[..., Settings]
) -> None:
    async with client_for(make_settings(fresh_store)) as http:
        first = await http.post(BASE, json=seed_body(), headers=HEADERS)
    assert first.status_code == 201, first.text
    columns, _ = idempotency_rows(fresh_store)
    assert "status" not in columns

    rewind(fresh_store, "0005")  # 0006's downgrade: the column is back, as 0005's connhub wrote it
    columns, rows = idempotency_rows(fresh_store)
    assert "status" in columns and rows == [("before-the-upgrade", 201)]

    migrate(fresh_store)  # and 0006 again, over a row with a status
    assert "status" not in idempotency_rows(fresh_store)[0]
    async with client_for(make_settings(fresh_store)) as http:
        again = await http.post(BASE, json=seed_body(), headers=HEADERS)
        other = await http.post(BASE, json=seed_body(configName="another"), headers=HEADERS)
        total = (await http.get(BASE)).json()["total"]
    assert (again.status_code, again.json()) == (201, first.json())
    assert other.status_code == 409
    assert total == 1
