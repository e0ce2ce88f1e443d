"""Crafted parameters are 400s naming the parameter, on both stores (issue 14.5): dates at the end
of the calendar, tampered cursors, NUL bytes (PostgreSQL refuses them in text; SQLite keeps them),
in list filters, ids, metadata and validate-schema names. None may be a 500 or a 503."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.conftest import PRODUCT, seed_body

BASE = "/v1/management/connections"


def cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def assert_names(response: httpx.Response, name: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert name in (response.json().get("fields") or {}), response.json()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"endDate": "9999-12-31"}, "endDate"),
        ({"startDate": "0001-01-01", "endDate": "9999-12-31"}, "endDate"),
        ({"startDate": "9999-12-31"}, "startDate"),
        ({"cursor": cursor("createdAt", "desc", "not-a-timestamp", 1)}, "cursor"),
        ({"cursor": cursor("createdAt", "desc", "2026-01-01T00:00:00+00:00", 10**30)}, "cursor"),
        ({"cursor": cursor("createdAt", "desc", "2026-01-01T00:00:00+00:00", 2**63)}, "cursor"),
        ({"cursor": cursor("createdAt", "desc", "2026-01-01T00:00:00+00:00", -(2**70))}, "cursor"),
        ({"cursor": cursor("configName", "desc", "a\x00b", 1), "sortBy": "configName"}, "cursor"),
        ({"cursor": cursor("createdAt", "desc", "9999-12-31T23:59:59.999999-23:59", 1)}, "cursor"),
        ({"configName": "a\x00b"}, "configName"),
        ({"host": "\x00"}, "host"),
        ({"databaseName": "x\x00"}, "databaseName"),
        ({"metadata.team": "a\x00"}, "metadata.team"),
        ({"metadata.a\x00": "b"}, "metadata.a\x00"),
    ],
)
async def test_crafted_list_parameters_are_400s_naming_them(
    client: httpx.AsyncClient, params: dict[str, str], name: str
) -> None:
    assert (await client.post(BASE, json=seed_body(), headers=PRODUCT)).status_code == 201

    assert_names(await client.get(BASE, params=params, headers=PRODUCT), name)


async def test_the_deepest_page_and_the_largest_cursor_number_are_empty_pages(client: httpx.AsyncClient) -> None:
    # The store's 64-bit OFFSET and row number, bound as such (a 32-bit bind overflowed on PostgreSQL: 500).
    assert (await client.post(BASE, json=seed_body(), headers=PRODUCT)).status_code == 201
    for params in (
        {"page": str(10**9), "limit": "1000"},
        {"cursor": cursor("createdAt", "desc", "2000-01-01T00:00:00+00:00", 2**63 - 1)},
    ):
        answer = await client.get(BASE, params=params)
        assert answer.status_code == 200 and answer.json()["items"] == [], answer.text


async def test_a_nul_in_an_id_or_a_data_source_name_is_a_400(client: httpx.AsyncClient) -> None:
    assert_names(await client.get("/v1/data-sources/a%00b"), "id")
    assert_names(await client.get(f"{BASE}/a%00b"), "id")


async def test_a_nul_in_metadata_or_validate_schema_names_is_a_400(client: httpx.AsyncClient) -> None:
    made = await client.post(BASE, json=seed_body(metadata={"team": "a\x00"}), headers=PRODUCT)
    assert_names(made, "metadata.team")
    made = await client.post(BASE, json=seed_body(metadata={"a\x00": "b"}), headers=PRODUCT)
    assert made.status_code == 400, made.text
    checked = await client.post(f"{BASE}/validate-schema", json={"mappedFields": {"a\x00b": {"t": ["c"]}}})
    assert checked.status_code == 400 and "mappedFields" in str(checked.json()), checked.text


@pytest.mark.parametrize(
    ("mapped", "limit"),
    [
        ({f"source-{n}": {"t": ["c"]} for n in range(20_000)}, "10 data sources"),
        ({"source": {f"t{n}": ["c"] for n in range(21)}}, "20 tables"),
        ({"source": {"t": [f"c{n}" for n in range(51)]}}, "50 fields"),
    ],
)
async def test_validate_schema_past_reporters_limits_is_refused_before_any_lookup(
    client: httpx.AsyncClient, mapped: dict[str, Any], limit: str
) -> None:
    # No source of these exists: a lookup would have answered 422 DATA_SOURCE_NOT_FOUND instead.
    checked = await client.post(f"{BASE}/validate-schema", json={"mappedFields": mapped})

    assert checked.status_code == 400, checked.text
    assert any(limit in reason for reason in checked.json()["fields"].values()), checked.text


async def test_validate_schema_within_the_limits_still_looks_up(client: httpx.AsyncClient) -> None:
    mapped = {f"source-{n}": {f"t{t}": [f"c{f}" for f in range(50)] for t in range(20)} for n in range(10)}
    checked = await client.post(f"{BASE}/validate-schema", json={"mappedFields": mapped})

    assert checked.status_code == 422, checked.text
