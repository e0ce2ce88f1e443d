"""The bodies /openapi.json documents are the bodies the translators accept, per dialect.

"Accepted" is read from each translator's own constant (reporter.translate.FIELDS, chartbrew.translate.KNOWN),
so a field added to one side only fails here; a field outside it is refused with its name (400).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connhub.api.dialects.chartbrew import translate as chartbrew
from connhub.api.dialects.reporter import translate as reporter
from tests.conftest import PRODUCT, seed_body

REPORTER = "/v1/management/connections"
CHARTBREW = "/team/{team_id}/connections"
# (path, method) of every operation that takes a connection body, and the fields its translator accepts.
BODIES = [
    (REPORTER, "post", reporter.FIELDS),
    (REPORTER + "/{id}", "patch", reporter.FIELDS),
    (REPORTER + "/test", "post", reporter.FIELDS),
    (CHARTBREW, "post", chartbrew.KNOWN),
    (CHARTBREW + "/{connection_id}", "put", chartbrew.KNOWN),
    (CHARTBREW + "/{type}/test", "post", chartbrew.KNOWN),
]


@pytest.fixture
async def document(sqlite_client: httpx.AsyncClient) -> dict[str, Any]:
    document: dict[str, Any] = (await sqlite_client.get("/openapi.json")).json()
    return document


def body_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    reference = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema: dict[str, Any] = document["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize(("path", "method", "accepted"), BODIES)
async def test_documented_body_fields_are_the_accepted_ones(
    document: dict[str, Any], path: str, method: str, accepted: tuple[str, ...] | frozenset[str]
) -> None:
    schema = body_schema(document, path, method)

    assert set(schema["properties"]) == set(accepted)
    assert schema["additionalProperties"] is False  # and nothing else is


async def test_reporter_create_documents_the_connection_string_alternative(document: dict[str, Any]) -> None:
    schema = body_schema(document, REPORTER, "post")

    assert schema["required"] == ["configName"]
    assert {"required": ["connectionString"]} in schema["anyOf"]
    assert {"required": ["type", "host", "port", "databaseName", "userName", "password"]} in schema["anyOf"]


async def test_reporter_create_with_only_a_connection_string_is_201(sqlite_client: httpx.AsyncClient) -> None:
    body = {"configName": "by-uri", "connectionString": "postgresql://app:s3cret@db.example.com:5433/shop"}

    created = await sqlite_client.post(REPORTER, json=body, headers=PRODUCT)

    assert created.status_code == 201, created.text
    assert (created.json()["host"], created.json()["port"], created.json()["type"]) == (
        "db.example.com",
        5433,
        "POSTGRESQL",
    )


@pytest.mark.parametrize("field", ["options", "subType"])
async def test_reporter_refuses_chartbrews_fields_naming_them(sqlite_client: httpx.AsyncClient, field: str) -> None:
    value: Any = [{"authSource": "admin"}] if field == "options" else "timescaledb"

    created = await sqlite_client.post(REPORTER, json=seed_body(**{field: value}), headers=PRODUCT)
    unsaved = await sqlite_client.post(REPORTER + "/test", json=seed_body(**{field: value}))
    stored = await sqlite_client.post(REPORTER, json=seed_body(), headers=PRODUCT)
    patched = await sqlite_client.patch(f"{REPORTER}/{stored.json()['id']}", json={field: value})

    for refused in (created, unsaved, patched):
        assert refused.status_code == 400, refused.text
        assert refused.json()["fields"] == {field: "unknown field"}
    listed = (await sqlite_client.get(REPORTER)).json()
    assert listed["total"] == 1  # the refused create stored nothing


async def test_one_reporter_400_names_unknown_and_bad_fields(sqlite_client: httpx.AsyncClient) -> None:
    refused = await sqlite_client.post(REPORTER, json=seed_body(subType="x", port=0), headers=PRODUCT)

    assert refused.status_code == 400
    assert set(refused.json()["fields"]) == {"subType", "port"}
