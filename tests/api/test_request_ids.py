"""Request ids and access lines: every answer names its request, every request gets one line."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from tests.conftest import PRODUCT, seed_body

BASE = "/v1/management/connections"
GENERATED = re.compile(r"[0-9a-f]{32}")


async def test_every_answer_carries_a_request_id_and_every_error_body_the_same(
    sqlite_client: httpx.AsyncClient,
) -> None:
    ok = await sqlite_client.get("/health")
    assert GENERATED.fullmatch(ok.headers["X-Request-Id"])
    errors = [
        await sqlite_client.get(f"{BASE}/not-a-uuid"),  # 400 naming the field
        await sqlite_client.get("/nowhere"),  # 404 of no route
        await sqlite_client.put(BASE),  # 405
        await sqlite_client.post(BASE, content=b"x" * (2 * 1024 * 1024), headers=PRODUCT),  # 413, body limit
        await sqlite_client.post(BASE, content=b"{}", headers={**PRODUCT, "Content-Type": "text/plain"}),  # 415
    ]
    for answer in errors:
        body = answer.json()
        assert {"code", "title", "message", "requestId"} <= set(body), body
        assert body["requestId"] == answer.headers["X-Request-Id"]
        assert answer.headers.get_list("X-Request-Id") == [body["requestId"]]  # once, not twice
    assert len({answer.headers["X-Request-Id"] for answer in [ok, *errors]}) == 6


async def test_the_callers_request_id_is_kept_when_it_is_safe_to_repeat(sqlite_client: httpx.AsyncClient) -> None:
    for given in ("abc-123", "Root=1-5759e988-bd862e3fe1be46a994272793", "a" * 128, "0f:1e.2d_3c/4b+5a"):
        answer = await sqlite_client.get(f"{BASE}/not-a-uuid", headers={"X-Request-Id": given})
        assert answer.headers["X-Request-Id"] == given and answer.json()["requestId"] == given


@pytest.mark.parametrize("given", ["a" * 129, "two words", "<script>", 'quote"d', "tab\there", "é"])
async def test_an_unsafe_request_id_is_replaced_not_repeated(sqlite_client: httpx.AsyncClient, given: str) -> None:
    answer = await sqlite_client.get("/health", headers={"X-Request-Id": given.encode()})
    assert GENERATED.fullmatch(answer.headers["X-Request-Id"])


async def test_one_access_line_per_request_names_the_route_template_not_the_path(
    sqlite_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = await sqlite_client.post(BASE, json=seed_body(), headers=PRODUCT)
    connection_id = created.json()["id"]
    with caplog.at_level(logging.INFO, logger="connhub.access"):
        caplog.clear()
        answer = await sqlite_client.get(f"{BASE}/{connection_id}", headers={"X-Request-Id": "trace-7"})
    lines = [record for record in caplog.records if record.name == "connhub.access"]
    assert len(lines) == 1
    line = lines[0]
    assert answer.status_code == 200
    fields = {name: getattr(line, name) for name in ("method", "route", "status", "tenant", "requestId")}
    assert fields == {
        "method": "GET",
        "route": "/v1/management/connections/{id}",
        "status": 200,
        "tenant": "default",
        "requestId": "trace-7",
    }
    assert line.durationMs >= 0
    assert connection_id not in line.getMessage()


async def test_a_chartbrew_access_line_names_the_team_as_the_tenant(
    sqlite_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="connhub.access"):
        caplog.clear()
        assert (await sqlite_client.get("/team/analytics/connections")).status_code == 200
    (line,) = [record for record in caplog.records if record.name == "connhub.access"]
    assert line.tenant == "analytics" and line.route == "/team/{team_id}/connections"
