"""Secrets never leak: not in a response, a log line, or a byte of the store; and they are bound to
their record, rotate without loss, and an unknown key is a DECRYPT_FAILED report, never a 500."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from connhub.config import Settings
from connhub.secrets import Binding, KeyRing, new_key_entry
from connhub.store.urls import sync_url
from tests.conftest import CANARY_PASSWORD, PRODUCT, client_for, seed_body
from tests.support.pki import self_signed
from tests.support.servers import free_port
from tests.support.store_contents import store_bytes

BASE = "/v1/management/connections"
CA, _ = self_signed("canary-ca")
CLIENT_CERT, CLIENT_KEY = self_signed("canary-client")
KEY_BODY = CLIENT_KEY.splitlines()[1]  # a line of the private key's base64
CLOSED_PORT = free_port()  # nothing listens: tests stay on loopback and fail fast


def local_body(**overrides: Any) -> dict[str, Any]:
    ssl = {"mode": "require", "ca": CA, "cert": CLIENT_CERT, "key": CLIENT_KEY}
    return seed_body(**{"host": "127.0.0.1", "port": CLOSED_PORT, "ssl": ssl, **overrides})


async def exercise_every_endpoint(http: httpx.AsyncClient) -> list[httpx.Response]:
    """Successes, validation errors, conflicts and failed tests, all carrying the canary."""
    responses = []
    created = await http.post(BASE, json=local_body(), headers={**PRODUCT, "X-Idempotency": "k"})
    responses.append(created)
    url = f"{BASE}/{created.json()['id']}"
    responses += [
        await http.post(BASE, json=local_body(), headers={**PRODUCT, "X-Idempotency": "k"}),
        await http.post(BASE, json=local_body(), headers=PRODUCT),  # 409
        await http.post(BASE, json=local_body(port="bad"), headers=PRODUCT),  # 400
        await http.post(
            BASE, json=local_body(configName="validated"), headers=PRODUCT, params={"validate": "true"}
        ),
        await http.post(f"{BASE}/test", json=local_body()),
        await http.post(f"{url}/test"),
        await http.get(f"{url}/schema"),
        await http.get(url),
        await http.get(BASE),
        await http.patch(url, json={"password": CANARY_PASSWORD + "2", "port": "x"}),
        await http.patch(url, json={"password": CANARY_PASSWORD + "2"}),
        await http.get("/v1/data-sources"),
        await http.get("/metrics"),
    ]
    return responses


async def test_the_canary_is_nowhere(
    store_url: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client_for(make_settings(store_url, log_level="DEBUG")) as http:
        responses = await exercise_every_endpoint(http)
    assert [r.status_code for r in responses][:5] == [201, 201, 409, 400, 422]
    for response in responses:
        for secret in (CANARY_PASSWORD, KEY_BODY, "BEGIN PRIVATE KEY", "BEGIN CERTIFICATE"):
            assert secret not in response.text, (response.request.url, response.text[:300])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert CANARY_PASSWORD not in logged and KEY_BODY not in logged
    at_rest = store_bytes(store_url)
    for secret in (CANARY_PASSWORD, KEY_BODY, CA.splitlines()[1]):
        assert secret.encode() not in at_rest
    assert b"canary" not in at_rest.lower()  # not even the CA's subject


async def test_a_ciphertext_moved_to_another_record_fails_to_decrypt(
    store_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with client_for(make_settings(store_url)) as http:
        first = (await http.post(BASE, json=local_body(configName="first"), headers=PRODUCT)).json()
        second = (await http.post(BASE, json=local_body(configName="second"), headers=PRODUCT)).json()
        engine = create_engine(sync_url(store_url))
        with engine.begin() as conn:
            numbers = dict(conn.execute(text("SELECT id, number FROM connections")).all())
            first_number = next(
                n for i, n in numbers.items() if str(i).replace("-", "") == first["id"].replace("-", "")
            )
            second_number = next(
                n for i, n in numbers.items() if str(i).replace("-", "") == second["id"].replace("-", "")
            )
            stolen = conn.execute(
                text(
                    "SELECT ciphertext FROM connection_secrets WHERE connection_number = :n AND field = 'password'"
                ),
                {"n": first_number},
            ).scalar_one()
            conn.execute(
                text(
                    "UPDATE connection_secrets SET ciphertext = :c WHERE connection_number = :n AND field = 'password'"
                ),
                {"c": stolen, "n": second_number},
            )
        engine.dispose()
        report = (await http.post(f"{BASE}/{second['id']}/test")).json()
        assert report["status"] == "failure" and report["error"]["category"] == "DECRYPT_FAILED"
        # The key is loaded (readiness says so): the message says the secret does not open for
        # this record, not that a key is missing (issue 14.8).
        assert "does not open for this record" in report["error"]["message"], report
        assert "not loaded" not in report["error"]["message"]
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get(f"{BASE}/{second['id']}")).status_code == 200
        first_report = (await http.post(f"{BASE}/{first['id']}/test")).json()
        assert first_report["error"]["category"] != "DECRYPT_FAILED"


def stored_secrets(store_url: str, config_name: str) -> dict[str, bytes]:
    engine = create_engine(sync_url(store_url))
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT s.field, s.ciphertext FROM connection_secrets s"
                " JOIN connections c ON c.number = s.connection_number WHERE c.config_name = :name"
            ),
            {"name": config_name},
        ).all()
    engine.dispose()
    return {field: bytes(ciphertext) for field, ciphertext in rows}


async def test_a_patch_rewrites_only_the_secrets_it_changes(
    store_url: str, make_settings: Callable[..., Settings], encryption_keys: str
) -> None:
    ring = KeyRing.parse(encryption_keys)
    async with client_for(make_settings(store_url)) as http:
        created = (await http.post(BASE, json=local_body(configName="patched"), headers=PRODUCT)).json()
        url, cid = f"{BASE}/{created['id']}", created["id"]
        first = stored_secrets(store_url, "patched")
        assert set(first) == {"password", "ssl.ca", "ssl.cert", "ssl.key"}
        assert (await http.patch(url, json={"metadata": {"team": "b"}})).status_code == 200
        assert stored_secrets(store_url, "patched") == first  # the same ciphertexts, byte for byte
        assert (await http.patch(url, json={"password": "a new one"})).status_code == 200
        second = stored_secrets(store_url, "patched")
        assert {f for f in first if first[f] != second[f]} == {"password"}
        assert ring.open(second["password"], Binding("default", cid, "password")) == "a new one"
        assert (await http.patch(url, json={"ssl": None})).status_code == 200
        assert set(stored_secrets(store_url, "patched")) == {"password"}
        body = (await http.get(url)).json()
        assert "ssl" not in body and body["metadata"] == {"team": "b"}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connhub.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_rotation_loses_nothing_and_a_removed_key_is_named(
    store_url: str, make_settings: Callable[..., Settings]
) -> None:
    old, new = new_key_entry("old"), new_key_entry("new")
    async with client_for(make_settings(store_url, encryption_keys=old)) as http:
        ids = [
            (await http.post(BASE, json=local_body(configName=f"conn-{i}"), headers=PRODUCT)).json()["id"]
            for i in range(7)
        ]
        await http.delete(f"{BASE}/{ids.pop()}")  # a deleted record has no secrets left to rotate

    # The old key removed too early: reads still work, tests say DECRYPT_FAILED, readiness names the key.
    async with client_for(make_settings(store_url, encryption_keys=new)) as http:
        assert (await http.get(BASE)).status_code == 200
        assert (await http.get(f"{BASE}/{ids[0]}")).status_code == 200
        report = (await http.post(f"{BASE}/{ids[0]}/test")).json()
        assert report["error"]["category"] == "DECRYPT_FAILED"
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and "old" in ready.json()["message"]

    env = {"CONNHUB_DATABASE_URL": store_url, "CONNHUB_ENCRYPTION_KEYS": f"{new},{old}"}
    rotated = run_cli("keys", "rotate", "--batch-size", "4", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 24 secret(s) from key old" in rotated.stdout  # 6 records x password, ca, cert, key
    again = run_cli("keys", "rotate", env=env)
    assert "already under the active key" in again.stdout

    async with client_for(make_settings(store_url, encryption_keys=new)) as http:
        assert (await http.get("/readyz")).status_code == 200
        for connection_id in ids:
            report = (await http.post(f"{BASE}/{connection_id}/test")).json()
            assert report["error"]["category"] == "PORT_CLOSED", report  # opened, so the probe ran
