"""On PostgreSQL, created_at and updated_at come from the database's clock, not the replica's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from connhub import service
from connhub.config import Settings
from tests.conftest import PRODUCT, client_for, seed_body, truncate_pg

SKEW = timedelta(hours=1)


async def test_write_times_ignore_a_skewed_replica_clock(
    pg_store_url: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_pg(pg_store_url)
    # This replica's clock runs an hour behind (the service asks it for "now" on every write).
    monkeypatch.setattr(service, "utc_now", lambda: datetime.now(UTC) - SKEW)
    async with client_for(make_settings(pg_store_url)) as http:
        created = await http.post("/v1/management/connections", json=seed_body(), headers=PRODUCT)
        assert created.status_code == 201
        path = f"/v1/management/connections/{created.json()['id']}"
        patched = await http.patch(path, json={"metadata": {"team": "x"}})
        read = await http.get(path)
    with psycopg.connect(pg_store_url) as conn:
        (database_now,) = conn.execute("SELECT now()").fetchone() or (None,)
    assert isinstance(database_now, datetime)
    for stamp in (created.json()["createdAt"], patched.json()["updatedAt"]):
        assert abs(database_now - _parse(stamp)) < SKEW / 2
    assert read.json()["createdAt"] == created.json()["createdAt"]
    assert read.json()["updatedAt"] == patched.json()["updatedAt"]


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
