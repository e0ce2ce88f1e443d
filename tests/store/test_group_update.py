"""Group update (PostgreSQL): concurrent updates of distinct connections share one statement, and
each writer still gets its own outcome."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter

import httpx
import psycopg

from connhub.domain.connection import validate_spec
from connhub.store.group_update import SET_COLUMNS
from connhub.store.repository import _spec_columns
from tests.conftest import PRODUCT, seed_body

BASE = "/v1/management/connections"


def test_an_update_rewrites_exactly_the_columns_replace_sends() -> None:
    # The copy kept on purpose: the batch statement's SET list is fixed; `replace` builds its
    # columns from the spec. They must name the same columns.
    spec = validate_spec(seed_body())
    assert set(SET_COLUMNS) == {*_spec_columns(spec, None), "updated_at", "version"}


async def test_distinct_rows_updated_together_each_get_their_own_outcome(
    client: httpx.AsyncClient, store_url: str
) -> None:
    ids = []
    for n in range(12):
        made = await client.post(BASE, json=seed_body(configName=f"row-{n:02d}"), headers=PRODUCT)
        ids.append(made.json()["id"])
    before = _passwords(store_url)
    # Eleven rows get a new port and password; one asks for a name another row holds.
    patches = [
        client.patch(f"{BASE}/{i}", json={"port": 6000 + n, "password": f"new-pw-{n}"}) for n, i in enumerate(ids[1:])
    ]
    clash = client.patch(f"{BASE}/{ids[0]}", json={"configName": "ROW-05"})
    answers = await asyncio.gather(clash, *patches)
    assert answers[0].status_code == 409, answers[0].text
    assert Counter(answer.status_code for answer in answers[1:]) == {200: 11}
    for n, connection_id in enumerate(ids[1:]):
        body = (await client.get(f"{BASE}/{connection_id}")).json()
        assert body["port"] == 6000 + n
    assert (await client.get(f"{BASE}/{ids[0]}")).json()["configName"] == "row-00"
    after = _passwords(store_url)
    assert len(after) == 12  # one password each: none duplicated or lost
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {f"row-{n:02d}" for n in range(1, 12)}  # re-sealed; the clashing row's kept


def _passwords(store_url: str) -> dict[str, bytes]:
    """Each row's stored password ciphertext, read straight from the store."""
    query = (
        "SELECT c.config_name, s.ciphertext FROM connection_secrets s"
        " JOIN connections c ON c.number = s.connection_number WHERE s.field = 'password'"
    )
    if store_url.startswith("postgresql"):
        with psycopg.connect(store_url) as conn:
            return {name: bytes(blob) for name, blob in conn.execute(query)}
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
        return {name: bytes(blob) for name, blob in conn.execute(query)}
