"""The audit trail: a whole lifecycle in both dialects on both stores, read back through GET /v1/audit.

Every secret field of every request carries a canary; neither the trail's answers nor the stored
rows ever hold one. The table refuses UPDATE and DELETE (a trigger on both stores).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import psycopg
import pytest

from connhub.config import Settings
from tests.conftest import CANARY_PASSWORD, PRODUCT, client_for, seed_body
from tests.support.pki import self_signed
from tests.support.servers import free_port

REPORTER = "/v1/management/connections"
TEAM = "/team/default/connections"
CA_PEM, _ = self_signed("audit-test-ca")
CERT_PEM, KEY_PEM = self_signed("audit-test-client")
KEY_LINE = KEY_PEM.splitlines()[1]
CANARY_URI = f"postgresql://auditor:{quote(CANARY_PASSWORD, safe='')}@127.0.0.1:1/x"
SECRET = "hs256-audit-secret-that-is-long-enough"


def closed_port_body(**overrides: Any) -> dict[str, Any]:
    """A connection to a loopback port nobody listens on: tests fail fast, nothing leaves the machine."""
    return seed_body(
        host="127.0.0.1",
        port=free_port(),
        ssl={"mode": "require", "ca": CA_PEM, "cert": CERT_PEM, "key": KEY_PEM},
        **overrides,
    )


def assert_no_secret(text: str) -> None:
    for secret in (CANARY_PASSWORD, KEY_LINE, "Canary-pw"):
        assert secret not in text


async def trail(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    assert_no_secret(response.text)
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_whole_lifecycle_in_both_dialects_is_in_the_trail(client: httpx.AsyncClient) -> None:
    rid = {"X-Request-Id": "req-audit-1"}
    created = await client.post(REPORTER, json=closed_port_body(), headers={**PRODUCT, **rid})
    assert created.status_code == 201, created.text
    one = created.json()["id"]
    assert (
        await client.patch(f"{REPORTER}/{one}", json={"metadata": {"a": "b"}, "password": CANARY_PASSWORD + "2"})
    ).status_code == 200
    assert (await client.post(f"{REPORTER}/{one}/test")).json()["error"]["category"] == "PORT_CLOSED"
    assert (await client.get(f"{REPORTER}/{one}/schema")).status_code == 422
    assert (await client.delete(f"{REPORTER}/{one}")).status_code == 204

    body = {
        "name": "chartbrew-made",
        "type": "postgres",
        "host": "127.0.0.1",
        "port": str(free_port()),
        "dbName": "x",
        "username": "u",
        "password": CANARY_PASSWORD,
        "connectionString": CANARY_URI,
    }
    made = (await client.post(TEAM, json=body)).json()
    number, uuid = made["id"], None
    assert (
        await client.put(f"{TEAM}/{number}", json={"username": "v", "password": CANARY_PASSWORD})
    ).status_code == 200
    # A failed test is Chartbrew's 400 with the report (issue 13); it is audited all the same.
    assert (await client.get(f"{TEAM}/{number}/test")).status_code == 400
    upload = await client.post(f"{TEAM}/{number}/files", files={"sslCa": ("ca.pem", CA_PEM)})
    assert upload.status_code == 200
    unassigned = (await client.get(f"{REPORTER}/unassigned")).json()["items"]
    uuid = next(item["id"] for item in unassigned if item["configName"] == "chartbrew-made")
    assert (await client.post(f"{REPORTER}/{uuid}/assign", headers=PRODUCT)).status_code == 200
    copy = (await client.post(f"{TEAM}/{number}/duplicate", json={"name": "the copy"})).json()
    assert (await client.delete(f"{TEAM}/{number}")).status_code == 200

    entries = list(reversed(await trail(client)))
    seen = [(entry["action"], entry["dialect"]) for entry in entries]
    assert seen == [
        ("create", "reporter"),
        ("update", "reporter"),
        ("test", "reporter"),
        ("schema_read", "reporter"),
        ("delete", "reporter"),
        ("create", "chartbrew"),
        ("update", "chartbrew"),
        ("test", "chartbrew"),
        ("file_upload", "chartbrew"),
        ("assign", "reporter"),
        ("create", "chartbrew"),
        ("delete", "chartbrew"),
    ]
    first = entries[0]
    assert first["connectionId"] == one and first["requestId"] == "req-audit-1" and first["tenant"] == "default"
    assert first["actor"] is None  # auth disabled: nobody to name
    assert first["source"] == "127.0.0.1"
    assert {"password", "ssl.key", "ssl.cert", "ssl.ca", "ssl.mode", "host", "configName"} <= set(first["fields"])
    assert entries[1]["fields"] == ["metadata", "password"]
    assert entries[2]["details"] == {"status": "failure", "category": "PORT_CLOSED"}
    assert entries[3]["details"]["status"] == "failure"
    assert {"userName", "password"} <= set(entries[6]["fields"])  # a secret sent counts as written
    assert entries[8]["fields"] == ["ssl.ca", "ssl.mode"]
    assert entries[9]["connectionId"] == uuid and entries[9]["fields"] == ["productName"]
    assert entries[10]["connectionId"] != uuid
    assert copy["name"] == "the copy"

    # Filters and keyset paging.
    assert [e["action"] for e in await trail(client, connectionId=one)] == [
        "delete",
        "schema_read",
        "test",
        "update",
        "create",
    ]
    assert {e["action"] for e in await trail(client, action="test")} == {"test"}
    everything: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = (await client.get("/v1/audit", params={"limit": "5", **({"cursor": cursor} if cursor else {})})).json()
        everything.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert [e["id"] for e in everything] == [e["id"] for e in reversed(entries)]
    assert await trail(client, **{"from": "2999-01-01T00:00:00Z"}) == []
    assert len(await trail(client, to="2999-01-01T00:00:00Z")) == len(entries)


async def test_bad_parameters_are_400_naming_them(sqlite_client: httpx.AsyncClient) -> None:
    response = await sqlite_client.get(
        "/v1/audit",
        params={
            "limit": "0",
            "connectionId": "x",
            "action": "fly",
            "from": "yesterday",
            "cursor": "zz",
            "to": "0001-01-01T00:00:00+01:00",
        },
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"limit", "connectionId", "action", "from", "to", "cursor"}


async def test_the_trail_refuses_update_and_delete(client: httpx.AsyncClient, store_url: str) -> None:
    assert (await client.post(REPORTER, json=closed_port_body(), headers=PRODUCT)).status_code == 201
    assert len(await trail(client)) == 1
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        if store_url.startswith("sqlite"):
            with (
                sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn,
                pytest.raises(sqlite3.IntegrityError, match="append-only"),
            ):
                conn.execute(statement)
        else:
            with psycopg.connect(store_url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
    assert len(await trail(client)) == 1


async def test_with_jwt_the_actor_is_the_subject_and_the_trail_needs_its_scope(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    def bearer(scope: str, tenant: str = "acme") -> dict[str, str]:
        claims = {"tenantId": tenant, "scope": scope, "sub": "alice@acme", "exp": int(time.time()) + 300}
        return {"Authorization": f"Bearer {jwt.encode(claims, SECRET)}", **PRODUCT}

    async with client_for(make_settings(sqlite_url, auth="jwt", jwt_secret=SECRET)) as client:
        writer = bearer("connections:read connections:write")
        assert (await client.post(REPORTER, json=closed_port_body(), headers=writer)).status_code == 201
        assert (await client.get("/v1/audit", headers=writer)).status_code == 403
        entries = (await client.get("/v1/audit", headers=bearer("audit:read"))).json()["items"]
        assert [(e["action"], e["actor"], e["tenant"]) for e in entries] == [("create", "alice@acme", "acme")]
        assert (await client.get("/v1/audit", headers=bearer("audit:read", "other"))).json()["items"] == []
        assert (await client.get("/v1/audit", params={"actor": "bob"}, headers=bearer("audit:read"))).json()[
            "items"
        ] == []


async def test_key_rotation_is_in_each_tenants_trail(
    sqlite_url: str, make_settings: Callable[..., Settings], encryption_keys: str
) -> None:
    from connhub.cli import _rotate
    from connhub.secrets import new_key_entry

    async with client_for(make_settings(sqlite_url)) as client:
        assert (await client.post(REPORTER, json=closed_port_body(), headers=PRODUCT)).status_code == 201
    rotated = make_settings(sqlite_url, encryption_keys=f"{new_key_entry('test2')},{encryption_keys}")
    assert await _rotate(rotated, 100) == 0
    async with client_for(rotated) as client:
        entries = await trail(client, action="key_rotation")
    assert len(entries) == 1
    assert entries[0]["details"] == {"activeKeyId": "test2", "resealed": 4}
    assert entries[0]["dialect"] == "cli"
