"""The Reporter dialect's connection lifecycle, end to end over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from connhub.config import Settings
from connhub.store.migrate import migrate
from tests.conftest import CANARY_PASSWORD, PRODUCT, client_for, seed_body
from tests.support.pki import self_signed

BASE = "/v1/management/connections"
CA, _ = self_signed()
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=seed_body(**overrides), headers=PRODUCT)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert {"code", "title", "message"} <= set(body)
    assert body["code"].startswith("CONN-")
    for field in fields:
        assert field in body["fields"], body
    return body


# -- create ---------------------------------------------------------------------------------


async def test_create_answers_the_seed_shape_field_by_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        BASE, json=seed_body(ssl={"mode": "require", "ca": CA}), headers={"X-Product-Name": " My-Product "}
    )
    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "id",
        "configName",
        "productName",
        "type",
        "host",
        "port",
        "databaseName",
        "userName",
        "schema",
        "ssl",
        "metadata",
        "createdAt",
        "updatedAt",
    ]
    assert UUID(body["id"]).version == 7
    assert body["configName"] == "production-db"
    assert body["productName"] == "my-product"
    assert (body["type"], body["host"], body["port"]) == ("POSTGRESQL", "db.example.com", 5432)
    assert (body["databaseName"], body["userName"], body["schema"]) == ("mydatabase", "dbuser", "public")
    assert body["ssl"] == {"mode": "require", "hasCa": True, "hasCert": False, "hasKey": False}
    assert body["metadata"] == {"environment": "production", "team": "data-engineering"}
    assert RFC3339_Z.match(body["createdAt"]) and body["createdAt"] == body["updatedAt"]
    assert response.headers["etag"]
    assert "password" not in body and CANARY_PASSWORD not in response.text


async def test_optional_fields_absent_are_omitted(client: httpx.AsyncClient) -> None:
    body = await create(client, schema=None, metadata=None)
    assert "schema" not in body and "ssl" not in body and "metadata" not in body


async def test_ids_are_time_ordered(client: httpx.AsyncClient) -> None:
    first = await create(client, configName="first")
    second = await create(client, configName="second")
    assert first["id"] < second["id"]


async def test_product_name_header_is_required(client: httpx.AsyncClient) -> None:
    response = await client.post(BASE, json=seed_body())
    assert_error(response, 400, "X-Product-Name")
    response = await client.post(BASE, json=seed_body(), headers={"X-Product-Name": "bad name!"})
    assert_error(response, 400, "X-Product-Name")


async def test_each_bad_field_is_a_400_naming_it_and_nothing_is_written(client: httpx.AsyncClient) -> None:
    response = await client.post(BASE, json=seed_body(port="5432", host="a b", extra=1), headers=PRODUCT)
    body = assert_error(response, 400, "port", "host", "extra")
    assert CANARY_PASSWORD not in response.text and body["code"] == "CONN-1001"
    assert (await client.get(BASE)).json()["total"] == 0


async def test_name_clash_is_409_case_insensitive_and_after_trimming(client: httpx.AsyncClient) -> None:
    await create(client, configName="Sales DB")
    response = await client.post(BASE, json=seed_body(configName="  sales db "), headers=PRODUCT)
    assert_error(response, 409)
    assert CANARY_PASSWORD not in response.text


async def test_32_concurrent_creates_of_one_name_give_one_201(client: httpx.AsyncClient) -> None:
    async def attempt(index: int) -> int:
        body = seed_body(configName="Race" if index % 2 else "race ")
        return (await client.post(BASE, json=body, headers=PRODUCT)).status_code

    statuses = await asyncio.gather(*(attempt(i) for i in range(32)))
    assert sorted(statuses) == [201] + [409] * 31
    assert (await client.get(BASE)).json()["total"] == 1


async def test_creates_of_crossing_names_in_concurrent_batches_all_get_an_answer(client: httpx.AsyncClient) -> None:
    # On PostgreSQL two create transactions run at once (group_commit): 20 names sent three times
    # at once, in opposite orders, land in batches that share names. Rows are locked in one order,
    # so no two batches wait on each other: each name is created once, every copy is a 409.
    names = [f"crossing-{n:02d}" for n in range(20)]
    order = names + names[::-1] + names[10:] + names[:10]

    async def attempt(name: str) -> int:
        return (await client.post(BASE, json=seed_body(configName=name), headers=PRODUCT)).status_code

    statuses = await asyncio.gather(*(attempt(name) for name in order))
    assert sorted(statuses) == [201] * 20 + [409] * 40
    assert (await client.get(BASE)).json()["total"] == 20


async def test_creates_sharing_a_transaction_each_get_their_own_answer(client: httpx.AsyncClient) -> None:
    # 24 concurrent creates are written in a few shared transactions (group commit): 8 names, each
    # sent three times, some with an idempotency key. Only the clashing copies may fail.
    async def attempt(index: int) -> httpx.Response:
        name = f"shared-{index % 8}" if index % 3 else f"SHARED-{index % 8} "
        headers = {**PRODUCT, "X-Idempotency": f"key-{index}"} if index % 2 else PRODUCT
        return await client.post(BASE, json=seed_body(configName=name), headers=headers)

    responses = await asyncio.gather(*(attempt(i) for i in range(24)))
    assert sorted(r.status_code for r in responses) == [201] * 8 + [409] * 16
    created = [r.json() for r in responses if r.status_code == 201]
    assert sorted(body["configName"].strip().lower() for body in created) == [f"shared-{i}" for i in range(8)]
    for body in created:  # each row got its own secrets: the update opens and re-seals them
        patched = await client.patch(f"{BASE}/{body['id']}", json={"metadata": {"checked": "yes"}})
        assert patched.status_code == 200, patched.text
    # A key whose create lost the name race was not kept: it can be used again with another body.
    lost = next(i for i, r in enumerate(responses) if r.status_code == 409 and i % 2)
    retry = await client.post(
        BASE, json=seed_body(configName="retried"), headers={**PRODUCT, "X-Idempotency": f"key-{lost}"}
    )
    assert retry.status_code == 201, retry.text
    assert (await client.get(BASE)).json()["total"] == 9


async def test_bad_header_and_query_parameters_are_400s_naming_them(client: httpx.AsyncClient) -> None:
    body = seed_body()
    assert_error(await client.post(BASE, json=body, headers=PRODUCT, params={"validate": "maybe"}), 400, "validate")
    long_key = {**PRODUCT, "X-Idempotency": "k" * 201}
    assert_error(await client.post(BASE, json=body, headers=long_key), 400, "X-Idempotency")
    assert_error(await client.post(BASE, json=body, headers={"X-Product-Name": "no spaces"}), 400, "X-Product-Name")
    for params, field in (({"limit": ""}, "limit"), ({"page": "0"}, "page"), ({"sortOrder": "up"}, "sortOrder")):
        assert_error(await client.get(BASE, params=params), 400, field)
    assert_error(await client.get(f"{BASE}/unassigned", params={"limit": "x"}), 400, "limit")
    assert (await client.get(BASE, params={"sortOrder": "ASC", "sortBy": "configName"})).status_code == 200
    assert (await client.post(BASE, json=body, headers=PRODUCT, params={"validate": "false"})).status_code == 201


async def test_malformed_json_non_object_and_wrong_media_type(client: httpx.AsyncClient) -> None:
    headers = {**PRODUCT, "content-type": "application/json"}
    assert_error(await client.post(BASE, content=b'{"configName": ', headers=headers), 400, "body")
    assert_error(await client.post(BASE, content=b"[1, 2]", headers=headers), 400, "body")
    assert_error(await client.post(BASE, content=b"\xff\xfe{}", headers=headers), 400, "body")
    response = await client.post(
        BASE, content=b"configName=x", headers={**PRODUCT, "content-type": "text/plain"}
    )
    assert_error(response, 415)


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    big = seed_body(metadata={"blob": "x" * (1024 * 1024)})
    assert_error(await client.post(BASE, json=big, headers=PRODUCT), 413)


async def test_idempotent_create(client: httpx.AsyncClient) -> None:
    headers = {**PRODUCT, "X-Idempotency": "create-42"}
    first = await client.post(BASE, json=seed_body(), headers=headers)
    again = await client.post(BASE, json=seed_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = await client.post(BASE, json=seed_body(configName="other"), headers=headers)
    assert_error(other, 409)
    assert (await client.get(BASE)).json()["total"] == 1


async def test_concurrent_repeats_of_one_idempotency_key_create_once(client: httpx.AsyncClient) -> None:
    headers = {**PRODUCT, "X-Idempotency": "burst"}
    responses = await asyncio.gather(
        *(client.post(BASE, json=seed_body(), headers=headers) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1


# -- read -----------------------------------------------------------------------------------


async def test_get_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"{BASE}/0192f7a4-0000-7000-8000-000000000000"), 404)
    assert_error(await client.get(f"{BASE}/not-a-uuid"), 400, "id")


async def test_list_pages_and_totals(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await create(client, configName=f"conn-{index}")
    page = (await client.get(BASE, params={"limit": 2, "page": 2})).json()
    assert (page["page"], page["limit"], page["total"]) == (2, 2, 5)
    assert [item["configName"] for item in page["items"]] == ["conn-2", "conn-1"]


async def test_totals_follow_every_write_at_once_and_other_processes_within_two_seconds(
    store_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with client_for(make_settings(store_url)) as mine, client_for(make_settings(store_url)) as other:
        first = await create(mine, configName="first")
        assert (await mine.get(BASE)).json()["total"] == 1
        await create(mine, configName="second")
        assert (await mine.get(BASE, params={"limit": 1})).json()["total"] == 2  # own write: at once
        assert (await mine.delete(f"{BASE}/{first['id']}")).status_code == 204
        assert (await mine.get(BASE)).json()["total"] == 1
        await create(other, configName="third")  # another process (worker, instance) on the same store
        await asyncio.sleep(2.1)
        assert (await mine.get(BASE)).json()["total"] == 2
        assert (await mine.get(BASE, params={"configName": "third"})).json()["total"] == 1


async def test_keyset_cursor_walks_every_record_once(client: httpx.AsyncClient) -> None:
    names = [f"conn-{index:02d}" for index in range(7)]
    for name in names:
        await create(client, configName=name)
    for sort_by, order in (
        ("createdAt", "asc"),
        ("createdAt", "desc"),
        ("configName", "asc"),
        ("configName", "desc"),
    ):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 3, "sortBy": sort_by, "sortOrder": order}
        while True:
            page = (await client.get(BASE, params=params)).json()
            seen += [item["configName"] for item in page["items"]]
            if not page["nextCursor"]:
                break
            params["cursor"] = page["nextCursor"]
        assert seen == (names if order == "asc" else names[::-1]), (sort_by, order)


async def test_list_filters(client: httpx.AsyncClient) -> None:
    await create(client, configName="Orders PG", metadata={"team": "a"})
    await create(
        client,
        configName="orders-mongo",
        type="MONGODB",
        host="mongo.local",
        port=27017,
        metadata={"team": "b"},
    )
    await client.post(
        BASE, json=seed_body(configName="other", databaseName="x"), headers={"X-Product-Name": "bi"}
    )

    async def names(params: dict[str, Any], headers: dict[str, str] | None = None) -> list[str]:
        response = await client.get(BASE, params=params, headers=headers or {})
        assert response.status_code == 200, response.text
        return sorted(item["configName"] for item in response.json()["items"])

    assert await names({"type": "mongodb"}) == ["orders-mongo"]
    assert await names({"host": "mongo.local"}) == ["orders-mongo"]
    assert await names({"databaseName": "x"}) == ["other"]
    assert await names({"configName": "ORDERS"}) == ["Orders PG", "orders-mongo"]
    assert await names({"configName": "%"}) == []
    assert await names({"configName": "s-m"}) == ["orders-mongo"]
    assert await names({"configName": "s_m"}) == []  # `_` is itself, not any character
    assert await names({"metadata.team": "b"}) == ["orders-mongo"]
    assert await names({}, {"X-Product-Name": "BI"}) == ["other"]
    today = datetime.now(UTC).date()
    assert len(await names({"startDate": today.isoformat(), "endDate": today.isoformat()})) == 3
    assert await names({"endDate": (today - timedelta(days=1)).isoformat()}) == []
    assert await names({"startDate": (today + timedelta(days=1)).isoformat()}) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"sortBy": "host"}, "sortBy"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"type": "DB2"}, "type"),
        ({"startDate": "2024-13-01"}, "startDate"),
        ({"endDate": "yesterday"}, "endDate"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
async def test_bad_list_parameters_name_the_parameter(
    sqlite_client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    assert_error(await sqlite_client.get(BASE, params=params), 400, field)


# -- update ---------------------------------------------------------------------------------


async def test_patch_absent_keeps_null_clears(client: httpx.AsyncClient) -> None:
    created = await create(client, ssl={"mode": "require", "ca": CA})
    response = await client.patch(
        f"{BASE}/{created['id']}", json={"schema": None, "port": 6432, "metadata": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["port"] == 6432 and "schema" not in body and "metadata" not in body
    assert body["ssl"]["hasCa"] and body["configName"] == created["configName"]
    assert body["updatedAt"] >= created["updatedAt"] and body["createdAt"] == created["createdAt"]


async def test_patch_validates_like_create(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert_error(await client.patch(f"{BASE}/{created['id']}", json={"port": "x"}), 400, "port")
    assert_error(await client.patch(f"{BASE}/{created['id']}", json={"host": None}), 400, "host")
    assert_error(await client.patch(f"{BASE}/{created['id']}", json={"nope": 1}), 400, "nope")
    await create(client, configName="taken")
    assert_error(await client.patch(f"{BASE}/{created['id']}", json={"configName": "TAKEN"}), 409)
    unchanged = (await client.get(f"{BASE}/{created['id']}")).json()
    assert unchanged == created


async def test_if_match_with_a_stale_etag_is_412(client: httpx.AsyncClient) -> None:
    response = await client.post(BASE, json=seed_body(), headers=PRODUCT)
    url, etag = f"{BASE}/{response.json()['id']}", response.headers["etag"]
    first = await client.patch(url, json={"port": 1111}, headers={"If-Match": etag})
    assert first.status_code == 200 and first.headers["etag"] != etag
    assert_error(await client.patch(url, json={"port": 2222}, headers={"If-Match": etag}), 412)
    assert_error(await client.delete(url, headers={"If-Match": etag}), 412)
    assert (await client.delete(url, headers={"If-Match": first.headers["etag"]})).status_code == 204


# -- delete ---------------------------------------------------------------------------------


async def test_delete_is_soft_frees_the_name_and_hides_the_record(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert (await client.delete(f"{BASE}/{created['id']}")).status_code == 204
    assert_error(await client.get(f"{BASE}/{created['id']}"), 404)
    assert_error(await client.delete(f"{BASE}/{created['id']}"), 404)
    assert_error(await client.patch(f"{BASE}/{created['id']}", json={"port": 1}), 404)
    assert (await client.get(BASE)).json()["total"] == 0
    assert (await client.get("/v1/data-sources")).json() == []
    again = await create(client)
    assert again["id"] != created["id"]


# -- assignment and data sources -------------------------------------------------------------


async def test_unassigned_and_assign(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert (await client.get(f"{BASE}/unassigned")).json()["total"] == 0
    assert_error(await client.post(f"{BASE}/{created['id']}/assign", headers={"X-Product-Name": "x"}), 409)


async def test_data_sources(client: httpx.AsyncClient) -> None:
    await create(client, configName="ledger", databaseName="ledgerdb", type="sql_server", port=1433)
    listed = (await client.get("/v1/data-sources")).json()
    assert listed == [{"id": "ledger", "externalName": "ledgerdb", "type": "sql_server"}]
    assert_error(await client.get("/v1/data-sources/nothing-here"), 404)


# -- framework errors ------------------------------------------------------------------------


async def test_framework_errors_are_json(sqlite_client: httpx.AsyncClient) -> None:
    assert_error(await sqlite_client.get("/v1/nowhere"), 404)
    assert_error(await sqlite_client.put(BASE), 405)
    assert_error(await sqlite_client.get(BASE, params={"limit": "many"}), 400, "limit")


# -- issue 14.9 ------------------------------------------------------------------------------


@pytest.mark.parametrize("invisible", ["\u200b", "\u200d", "\u2060", "\ufeff", "\u202e", "\u00ad"])
async def test_a_name_with_an_invisible_character_is_refused_in_both_dialects(
    client: httpx.AsyncClient, invisible: str
) -> None:
    assert (await client.post(BASE, json=seed_body(configName="warehouse"), headers=PRODUCT)).status_code == 201

    look_alike = f"ware{invisible}house"
    assert_error(await client.post(BASE, json=seed_body(configName=look_alike), headers=PRODUCT), 400, "configName")
    chartbrew = {"name": look_alike, "type": "postgres", "host": "h", "port": 5432, "dbName": "d"}
    chartbrew |= {"username": "u", "password": "p"}
    answer = await client.post("/team/default/connections", json=chartbrew)
    assert answer.status_code == 400 and "name" in answer.json()["fields"], answer.text


async def test_if_match_honours_a_list_of_etags_and_the_star(client: httpx.AsyncClient) -> None:
    response = await client.post(BASE, json=seed_body(), headers=PRODUCT)
    url, etag = f"{BASE}/{response.json()['id']}", response.headers["etag"]

    listed = await client.patch(url, json={"port": 1111}, headers={"If-Match": f'"stale.1", {etag}, "other.2"'})
    assert listed.status_code == 200, listed.text
    current = listed.headers["etag"]
    assert_error(await client.patch(url, json={"port": 1}, headers={"If-Match": f'"stale.1", {etag}'}), 412)
    assert_error(await client.patch(url, json={"port": 1}, headers={"If-Match": f"W/{current}"}), 412)  # strong
    assert (await client.patch(url, json={"port": 2222}, headers={"If-Match": "*"})).status_code == 200


def test_a_new_sqlite_store_and_its_directory_are_private(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "store.db"
    migrate(f"sqlite:///{database}")

    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
