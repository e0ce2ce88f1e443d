from __future__ import annotations

import httpx

from tests.conftest import PRODUCT, seed_body


async def test_create_then_get(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/management/connections", json=seed_body(), headers=PRODUCT)
    assert created.status_code == 201, created.text
    got = await client.get(f"/v1/management/connections/{created.json()['id']}")
    assert got.json() == created.json()
