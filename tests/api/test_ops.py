"""Operational endpoints and the OpenAPI description."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from connhub.config import Settings
from connhub.store.migrate import migrate
from tests.conftest import PRODUCT, client_for, seed_body
from tests.support.migrations import rewind


async def test_health_readiness_version(sqlite_client: httpx.AsyncClient) -> None:
    assert (await sqlite_client.get("/health")).json() == {"status": "ok"}
    ready = await sqlite_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert (await sqlite_client.get("/version")).json()["version"]


async def test_metrics_count_requests_by_route_template_not_by_value(
    sqlite_client: httpx.AsyncClient,
) -> None:
    created = await sqlite_client.post("/v1/management/connections", json=seed_body(), headers=PRODUCT)
    await sqlite_client.get(f"/v1/management/connections/{created.json()['id']}")
    text = (await sqlite_client.get("/metrics")).text
    assert 'route="/v1/management/connections/{id}"' in text
    assert created.json()["id"] not in text
    assert "connhub_http_request_seconds_bucket" in text


async def test_openapi_describes_every_operation(sqlite_client: httpx.AsyncClient) -> None:
    document = (await sqlite_client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path, method in [
        ("/v1/management/connections", "post"),
        ("/v1/management/connections", "get"),
        ("/v1/management/connections/{id}", "patch"),
        ("/v1/management/connections/{id}", "delete"),
        ("/v1/management/connections/{id}/test", "post"),
        ("/v1/management/connections/{id}/schema", "get"),
        ("/v1/management/connections/test", "post"),
        ("/v1/management/connections/validate-schema", "post"),
        ("/v1/data-sources", "get"),
        ("/v1/data-sources/{id}", "get"),
    ]:
        assert method in paths[path], (path, method)
    body = paths["/v1/management/connections"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ConnectionInput")
    assert "ConnectionInput" in document["components"]["schemas"]
    assert (await sqlite_client.get("/docs")).status_code == 200


async def test_readiness_says_schema_behind_until_the_store_is_migrated(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    rewind(sqlite_url, "0001")
    async with client_for(make_settings(sqlite_url)) as http:
        behind = await http.get("/readyz")
        assert behind.status_code == 503
        assert behind.json()["checks"]["schema"] == "behind"
        assert behind.json()["message"].startswith("schema behind: the store is at schema revision 0001")
        assert "run `connhub migrate`" in behind.json()["message"]
        migrate(sqlite_url)
        ready = await http.get("/readyz")  # a store behind is asked again at every call
        assert ready.status_code == 200 and ready.json()["checks"]["schema"] == "ok"


async def test_readiness_of_a_store_never_migrated_says_so(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    async with client_for(make_settings(f"sqlite:///{tmp_path / 'empty.db'}")) as http:
        answer = await http.get("/readyz")
    assert answer.status_code == 503 and "never been migrated" in answer.json()["message"]
