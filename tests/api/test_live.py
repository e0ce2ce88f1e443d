"""Live tests and table discovery through the Reporter API, against the machine's real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PRODUCT, seed_body
from tests.support.servers import free_port, require_server

BASE = "/v1/management/connections"
PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A schema of our own in the `test` database with two tables, dropped afterwards."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"live_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(f"CREATE TABLE {name}.orders (id bigint PRIMARY KEY, total numeric(10,2) NOT NULL, note text)")
        conn.execute(f"CREATE TABLE {name}.customers (id int PRIMARY KEY, email text)")
    yield name
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def live_body(schema: str | None = None, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 5432,
        "databaseName": "test",
        "userName": "postgres",
        "password": "unused-with-trust-auth",
        "schema": schema,
        **overrides,
    }
    return seed_body(**values)


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=live_body(**overrides), headers=PRODUCT)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def add_table(schema: str, table: str) -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {schema}.{table} (id int)")


async def test_a_stored_connection_tests_successfully(sqlite_client: httpx.AsyncClient, pg_schema: str) -> None:
    created = await create(sqlite_client, schema=pg_schema)
    report = (await sqlite_client.post(f"{BASE}/{created['id']}/test")).json()
    assert report["status"] == "success", report
    assert report["serverVersion"].startswith("15")
    assert isinstance(report["latencyMs"], int) and report["phases"]["dnsMs"] is not None
    assert report["error"] is None


async def test_a_failed_test_is_200_with_a_typed_cause(sqlite_client: httpx.AsyncClient) -> None:
    created = await create(sqlite_client, port=free_port())
    response = await sqlite_client.post(f"{BASE}/{created['id']}/test")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "failure"
    assert report["error"] == {"category": "PORT_CLOSED", "message": report["error"]["message"], "field": "port"}


async def test_unsaved_test_stores_nothing(sqlite_client: httpx.AsyncClient) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    report = (await sqlite_client.post(f"{BASE}/test", json=live_body())).json()
    assert report["status"] == "success"
    missing = (await sqlite_client.post(f"{BASE}/test", json=live_body(databaseName="no_such_db_here"))).json()
    assert missing["error"]["category"] == "DATABASE_NOT_FOUND" and missing["error"]["field"] == "databaseName"
    assert (await sqlite_client.get(BASE)).json()["total"] == 0
    invalid = await sqlite_client.post(f"{BASE}/test", json=live_body(port="x"))
    assert invalid.status_code == 400 and "port" in invalid.json()["fields"]


async def test_validate_on_create_stores_nothing_when_the_test_fails(sqlite_client: httpx.AsyncClient) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    failed = await sqlite_client.post(
        BASE, json=live_body(databaseName="no_such_db_here"), headers=PRODUCT, params={"validate": "true"}
    )
    assert failed.status_code == 422
    assert failed.json()["report"]["error"]["category"] == "DATABASE_NOT_FOUND"
    assert (await sqlite_client.get(BASE)).json()["total"] == 0
    passed = await sqlite_client.post(BASE, json=live_body(), headers=PRODUCT, params={"validate": "true"})
    assert passed.status_code == 201


async def test_schema_discovery_and_its_cache(sqlite_client: httpx.AsyncClient, pg_schema: str) -> None:
    created = await create(sqlite_client, schema=pg_schema)
    url = f"{BASE}/{created['id']}/schema"
    schema = (await sqlite_client.get(url)).json()
    assert (schema["id"], schema["configName"], schema["type"]) == (created["id"], "production-db", "POSTGRESQL")
    tables = {table["name"]: table for table in schema["tables"]}
    assert sorted(tables) == ["customers", "orders"]
    assert tables["orders"]["fields"] == ["id", "total", "note"]
    assert tables["orders"]["columns"][0] == {"name": "id", "type": "bigint", "nullable": False, "primaryKey": True}
    assert tables["orders"]["columns"][2]["nullable"] is True

    add_table(pg_schema, "invoices")
    cached = {table["name"] for table in (await sqlite_client.get(url)).json()["tables"]}
    assert "invoices" not in cached  # served from the cache
    refreshed = {table["name"] for table in (await sqlite_client.get(url, params={"refresh": "true"})).json()["tables"]}
    assert "invoices" in refreshed

    add_table(pg_schema, "refunds")
    await sqlite_client.patch(f"{BASE}/{created['id']}", json={"metadata": {"changed": "yes"}})
    after_change = {table["name"] for table in (await sqlite_client.get(url)).json()["tables"]}
    assert "refunds" in after_change  # a change to the connection drops its cached tables


async def test_schema_of_an_unreachable_database_is_422_with_the_report(sqlite_client: httpx.AsyncClient) -> None:
    created = await create(sqlite_client, port=free_port())
    response = await sqlite_client.get(f"{BASE}/{created['id']}/schema")
    assert response.status_code == 422
    assert response.json()["report"]["error"]["category"] == "PORT_CLOSED"


async def test_data_source_with_tables_and_validate_schema(sqlite_client: httpx.AsyncClient, pg_schema: str) -> None:
    created = await create(sqlite_client, schema=pg_schema, configName="ledger")
    by_name = (await sqlite_client.get("/v1/data-sources/ledger")).json()
    by_id = (await sqlite_client.get(f"/v1/data-sources/{created['id']}")).json()
    assert by_name == by_id
    assert (by_name["id"], by_name["externalName"], by_name["type"]) == ("ledger", "test", "postgresql")
    assert {table["name"] for table in by_name["tables"]} == {"orders", "customers"}

    valid = {"mappedFields": {"ledger": {"orders": ["id", "total"], "customers": ["email"]}}}
    response = await sqlite_client.post(f"{BASE}/validate-schema", json=valid)
    assert response.status_code == 200 and response.json()["status"] == "success"

    broken = {"mappedFields": {"ledger": {"orders": ["id", "color"], "ghosts": ["id"]}, "nowhere": {"t": ["f"]}}}
    response = await sqlite_client.post(f"{BASE}/validate-schema", json=broken)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert sorted((e.get("dataSourceId"), e.get("table"), e.get("field"), e["type"]) for e in errors) == [
        ("ledger", "ghosts", None, "TABLE_NOT_FOUND"),
        ("ledger", "orders", "color", "FIELD_NOT_FOUND"),
        ("nowhere", None, None, "DATA_SOURCE_NOT_FOUND"),
    ]
    bad = await sqlite_client.post(f"{BASE}/validate-schema", json={"mappedFields": {"ledger": ["orders"]}})
    assert bad.status_code == 400 and "mappedFields" in bad.json()["fields"]


async def test_ten_tests_a_minute_per_connection_across_both_dialects(sqlite_client: httpx.AsyncClient) -> None:
    created = await create(sqlite_client, port=free_port())
    number = (await sqlite_client.get("/team/default/connections")).json()[0]["id"]
    for index in range(10):
        if index % 2:
            response = await sqlite_client.post(f"{BASE}/{created['id']}/test")
        else:
            response = await sqlite_client.get(f"/team/default/connections/{number}/test")
        assert response.status_code == (200 if index % 2 else 400), response.text  # a failed Chartbrew test is 400
    limited = await sqlite_client.post(f"{BASE}/{created['id']}/test")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["code"] == "CONN-1013"
    assert (await sqlite_client.get(f"/team/default/connections/{number}/test")).status_code == 429
    other = await create(sqlite_client, configName="another", port=free_port())
    assert (await sqlite_client.post(f"{BASE}/{other['id']}/test")).status_code == 200
