"""A store that stops answering gives 503 in the JSON shape, and the service recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import make_url

from connhub.config import Settings
from tests.conftest import PRODUCT, client_for, seed_body
from tests.support.tcp_proxy import TcpProxy

BASE = "/v1/management/connections"


async def test_postgres_outage_is_503_then_recovers(
    pg_store_url: str, make_settings: Callable[..., Settings]
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    url = make_url(pg_store_url).set(port=proxy.port).render_as_string(hide_password=False)
    async with client_for(make_settings(url)) as http:
        before = await http.post(BASE, json=seed_body(configName="before"), headers=PRODUCT)
        assert before.status_code == 201
        one = f"{BASE}/{before.json()['id']}"
        assert (await http.get(one)).status_code == 200  # a get by id has its own (prepared) sessions
        await proxy.stop()
        started = time.monotonic()
        for request in (
            http.post(BASE, json=seed_body(configName="during"), headers=PRODUCT),
            http.get(BASE),
            http.get(one),
            http.get("/readyz"),
        ):
            response = await request
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/json")
        assert time.monotonic() - started < 30
        assert (await http.get("/health")).status_code == 200  # liveness does not depend on the store
        await proxy.start()
        recovered = await http.post(BASE, json=seed_body(configName="after"), headers=PRODUCT)
        assert recovered.status_code == 201, recovered.text
        assert (await http.get(one)).status_code == 200
        names = {item["configName"] for item in (await http.get(BASE)).json()["items"]}
        assert {"before", "after"} <= names and "during" not in names
        assert (await http.get("/readyz")).status_code == 200
    await proxy.stop()
