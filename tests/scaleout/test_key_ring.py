"""Keys across replicas: the store remembers what each key id's bytes give, idempotency survives rotation."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

from connhub.config import Settings
from connhub.secrets import new_key_entry
from tests.conftest import PRODUCT, client_for, seed_body, truncate_pg


async def test_a_replica_with_other_bytes_for_a_known_key_id_is_unready(
    pg_store_url: str, make_settings: Callable[..., Settings]
) -> None:
    truncate_pg(pg_store_url)
    first, second = new_key_entry("dev1"), new_key_entry("dev1")  # same id, other bytes
    async with client_for(make_settings(pg_store_url, encryption_keys=first)) as one:
        assert (await one.get("/readyz")).status_code == 200
        async with client_for(make_settings(pg_store_url, encryption_keys=second)) as two:
            unready = await two.get("/readyz")
        assert (await one.get("/readyz")).status_code == 200
    assert unready.status_code == 503
    assert unready.json()["checks"]["keys"] == {"differing": ["dev1"]}
    assert "dev1" in unready.json()["message"]
    assert first.split(":")[1] not in unready.text and second.split(":")[1] not in unready.text


async def test_an_idempotent_repeat_after_a_key_change_gets_the_first_answer(
    pg_store_url: str, make_settings: Callable[..., Settings]
) -> None:
    truncate_pg(pg_store_url)
    old, new = new_key_entry("old"), new_key_entry("new")
    dedicated = base64.b64encode(os.urandom(32)).decode()
    body, headers = seed_body(), {**PRODUCT, "X-Idempotency": "once"}
    other_body, other_headers = seed_body(configName="other-db"), {**PRODUCT, "X-Idempotency": "twice"}
    # Before CONNHUB_IDEMPOTENCY_KEY: digests under the active key, `old`.
    async with client_for(make_settings(pg_store_url, encryption_keys=old)) as http:
        first = await http.post("/v1/management/connections", json=body, headers=headers)
    # The new key promoted, the dedicated key set: the old digest still matches (its key is loaded).
    steps = [f"{new},{old}", new]
    answers = []
    for keys in steps:
        async with client_for(make_settings(pg_store_url, encryption_keys=keys, idempotency_key=dedicated)) as http:
            answers.append(await http.post("/v1/management/connections", json=other_body, headers=other_headers))
            if keys == steps[0]:
                answers.append(await http.post("/v1/management/connections", json=body, headers=headers))
    assert first.status_code == 201
    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert answers[1].json()["id"] == first.json()["id"]
    # The dedicated key does not rotate: the repeat under a ring without `old` is still the first answer.
    assert answers[2].json()["id"] == answers[0].json()["id"]
