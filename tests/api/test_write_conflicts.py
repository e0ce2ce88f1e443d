"""One conflict policy for every write (update, delete, assign), on SQLite and PostgreSQL.

Without If-Match the last writer wins and nobody gets a 412; with If-Match exactly one writer of a
version wins. Two apps on one store stand for two processes: their writers meet in the store.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx

from connhub.config import Settings
from tests.conftest import PRODUCT, client_for, seed_body

BASE = "/v1/management/connections"


async def test_concurrent_patches_without_if_match_all_succeed_and_stack(
    client: httpx.AsyncClient, store_url: str, make_settings: Callable[..., Settings]
) -> None:
    created = (await client.post(BASE, json=seed_body(), headers=PRODUCT)).json()
    url = f"{BASE}/{created['id']}"
    async with client_for(make_settings(store_url)) as other_process:
        writers = [client, other_process] * 20
        answers = await asyncio.gather(
            *(http.patch(url, json={"metadata": {"writer": str(n)}}) for n, http in enumerate(writers))
        )
    assert Counter(answer.status_code for answer in answers) == {200: 40}
    # Writes that queued together were stored together: each answers the connection as the stored
    # write holding it left it, so one ETag is always one body, and the newest is what a read sees.
    by_etag = {answer.headers["etag"]: answer.json() for answer in answers}
    for answer in answers:
        assert answer.json() == by_etag[answer.headers["etag"]]
    final = await client.get(url)
    newest = max(by_etag, key=lambda etag: int(etag.strip('"').rsplit(".", 1)[1]))
    assert final.headers["etag"] == newest and final.json() == by_etag[newest]
    assert final.json()["metadata"]["writer"] in {str(n) for n in range(40)}


async def test_concurrent_patches_with_one_if_match_have_exactly_one_winner(
    client: httpx.AsyncClient, store_url: str, make_settings: Callable[..., Settings]
) -> None:
    response = await client.post(BASE, json=seed_body(), headers=PRODUCT)
    url, etag = f"{BASE}/{response.json()['id']}", response.headers["etag"]
    async with client_for(make_settings(store_url)) as other_process:
        writers = [client, other_process] * 10
        answers = await asyncio.gather(
            *(http.patch(url, json={"port": 1000 + n}, headers={"If-Match": etag}) for n, http in enumerate(writers))
        )
    assert Counter(answer.status_code for answer in answers) == {200: 1, 412: 19}


async def test_patches_racing_a_delete_are_200_or_404_never_400(client: httpx.AsyncClient) -> None:
    created = (await client.post(BASE, json=seed_body(), headers=PRODUCT)).json()
    url = f"{BASE}/{created['id']}"
    answers = await asyncio.gather(
        *(client.patch(url, json={"port": 2000 + n}) for n in range(10)), client.delete(url)
    )
    assert answers[-1].status_code == 204
    assert {answer.status_code for answer in answers[:-1]} <= {200, 404}
    assert (await client.get(url)).status_code == 404


async def test_assign_after_an_unrelated_change_is_not_already_assigned(client: httpx.AsyncClient) -> None:
    made = await client.post("/team/default/connections", json={
        "name": "no-product", "type": "postgres", "host": "db.example.com", "port": "5432",
        "dbName": "app", "username": "u", "password": "pw-123456",
    })
    assert made.status_code == 200, made.text
    listed = (await client.get(f"{BASE}/unassigned")).json()["items"]
    url = f"{BASE}/{listed[0]['id']}"
    # Assign and a metadata patch race: the assign must not mistake the patch for an assignment.
    assigned, patched = await asyncio.gather(
        client.post(f"{url}/assign", headers={"X-Product-Name": "billing"}),
        client.patch(url, json={"metadata": {"k": "v"}}),
    )
    assert (assigned.status_code, patched.status_code) == (200, 200), (assigned.text, patched.text)
    final = (await client.get(url)).json()
    assert final["productName"] == "billing" and final["metadata"] == {"k": "v"}
    again = await client.post(f"{url}/assign", headers={"X-Product-Name": "other"})
    assert again.status_code == 409


async def test_a_bad_patch_among_concurrent_good_ones_is_refused_alone(client: httpx.AsyncClient) -> None:
    created = (await client.post(BASE, json=seed_body(), headers=PRODUCT)).json()
    url = f"{BASE}/{created['id']}"
    bodies = [{"metadata": {"n": str(n)}} for n in range(12)]
    bodies[0] = {"port": "not-a-port"}  # the first of a batch decides which secrets are opened
    bodies[5] = {"host": "bad host"}
    bodies[8] = {"password": None}  # a required field cleared
    answers = await asyncio.gather(*(client.patch(url, json=body) for body in bodies))
    refused = {n: answer.json()["fields"] for n, answer in enumerate(answers) if answer.status_code == 400}
    assert set(refused) == {0, 5, 8} and "port" in refused[0] and "host" in refused[5] and "password" in refused[8]
    assert all(answers[n].status_code == 200 for n in set(range(12)) - {0, 5, 8})
    final = (await client.get(url)).json()
    assert final["port"] == created["port"] and final["host"] == created["host"]
