"""Lists answer each row from a copy rendered per version (api/rendered.py): what a user sees must
be what a fresh read answers, after every kind of change, in both dialects and on both stores."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import uuid4

import httpx

from connhub.api.rendered import RenderedRows, json_array_with_fields, json_object_with
from connhub.domain.connection import Connection
from tests.api.test_chartbrew import TEAM, chartbrew_body, postgres_body
from tests.conftest import PRODUCT, seed_body
from tests.unit.test_chartbrew_translate import STORED

BASE = "/v1/management/connections"


async def reporter_list(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    answer = await client.get(BASE, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    return body


async def test_a_reporter_list_shows_each_change_as_a_get_does(client: httpx.AsyncClient) -> None:
    made = [
        (await client.post(BASE, json=seed_body(configName=f"db-{n}"), headers=PRODUCT)).json() for n in range(3)
    ]
    first = await reporter_list(client)  # renders and keeps all three
    assert [item["id"] for item in first["items"]] == [m["id"] for m in reversed(made)]

    await client.patch(f"{BASE}/{made[0]['id']}", json={"metadata": {"team": "billing"}, "port": 6543})
    await client.delete(f"{BASE}/{made[1]['id']}")

    again = await reporter_list(client)
    fresh = [(await client.get(f"{BASE}/{item['id']}")).json() for item in again["items"]]
    assert again["items"] == fresh
    assert [item["id"] for item in again["items"]] == [made[2]["id"], made[0]["id"]]
    assert again["items"][1]["port"] == 6543 and again["items"][1]["metadata"] == {"team": "billing"}
    assert again["total"] == 2 and again["page"] == 1 and again["nextCursor"] is None


async def test_a_reporter_list_pages_by_cursor_over_kept_rows(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await client.post(BASE, json=seed_body(configName=f"db-{n}"), headers=PRODUCT)
    await reporter_list(client, limit="5")
    seen: list[str] = []
    params = {"limit": "2", "sortBy": "configName", "sortOrder": "asc"}
    while True:
        page = await reporter_list(client, **params)
        seen.extend(item["configName"] for item in page["items"])
        if page["nextCursor"] is None:
            break
        params["cursor"] = page["nextCursor"]
    assert seen == [f"db-{n}" for n in range(5)]


async def test_a_chartbrew_list_shows_each_change_as_a_get_does(client: httpx.AsyncClient) -> None:
    first = (await client.post(TEAM, json=chartbrew_body())).json()
    second = (await client.post(TEAM, json=postgres_body(name="Orders replica"))).json()
    assert (await client.get(TEAM)).json() == [second, first]

    await client.put(f"{TEAM}/{first['id']}", json={"host": "db2.example.com", "port": "27018"})
    listed = (await client.get(TEAM)).json()
    assert listed == [(await client.get(f"{TEAM}/{item['id']}")).json() for item in listed]
    assert listed[1]["host"] == "db2.example.com" and listed[1]["port"] == "27018"


def stored_connection(number: int, name: str, version: int = 1) -> Connection:
    return replace(STORED, id=uuid4(), number=number, config_name=name, version=version)


def test_kept_rows_are_dropped_oldest_first_past_their_bound() -> None:
    rows = RenderedRows(lambda connection: {"name": connection.config_name}, max_rows=2)
    a, b, c = (stored_connection(number=n, name=f"conn-{n}") for n in (1, 2, 3))
    rows.keep(a)
    rows.keep(b)
    assert rows.held_all([a.stamp])[0] is not None  # a is now the most recently used
    rows.keep(c)
    assert len(rows) == 2 and rows.held_all([b.stamp])[0] is None and rows.held_all([a.stamp])[0] is not None
    held = rows.held_all([c.stamp])[0]
    assert held is not None and held.json == b'{"name":"conn-3"}'
    newer = replace(c, config_name="renamed", version=2)
    assert rows.held_all([newer.stamp])[0] is None  # a new version is never answered from an old copy
    spliced = json_array_with_fields([(held, b',"health":"up"'), (held, b"")])
    assert spliced == b'[{"name":"conn-3","health":"up"},{"name":"conn-3"}]'
    assert json_array_with_fields([]) == b"[]"


def test_a_page_object_is_spliced_as_orjson_would_write_it() -> None:
    spliced = json_object_with("items", b'[{"a":1},[2]]', {"page": 1, "nextCursor": None})
    assert spliced == b'{"items":[{"a":1},[2]],"page":1,"nextCursor":null}'
    assert json_object_with("items", b"[]", {}) == b'{"items":[]}'
