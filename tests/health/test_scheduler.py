"""Scheduled health end to end: the scheduler on a clock the test moves, real servers on loopback,
a real webhook receiver checking signatures, results read back through the API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connhub.config import Settings
from connhub.store.health import HealthStore
from tests.conftest import PRODUCT, seed_body
from tests.health.support import (
    BASE,
    WEBHOOK_SECRET,
    FakeClock,
    WebhookReceiver,
    check_when_due,
    health_of,
    parse_instant,
    served,
)
from tests.support.listeners import server_ssl_context
from tests.support.mongo_wire import MongoWireServer
from tests.support.pki import CertificateAuthority
from tests.support.servers import free_port, require_server
from tests.support.tcp_proxy import TcpProxy


async def create(http: httpx.AsyncClient, **fields: Any) -> str:
    response = await http.post(BASE, json=seed_body(**fields), headers=PRODUCT)
    assert response.status_code == 201, response.text
    connection_id: str = response.json()["id"]
    return connection_id


def closed_port() -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": free_port(), "ssl": {"mode": "disable"}}


@pytest.fixture
def health_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def build(store_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"health_interval_s": 60, **overrides}
        return make_settings(store_url, **values)

    return build


async def test_state_changes_reach_a_signed_webhook_and_the_health_endpoint(
    store_url: str, health_settings: Callable[..., Settings]
) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    clock = FakeClock()
    proxy = TcpProxy("127.0.0.1", 5432)  # the database, as the connection sees it: cut and restored
    await proxy.start()
    async with WebhookReceiver(clock) as receiver:
        settings = health_settings(store_url, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        async with served(settings, clock) as (http, hub):
            assert hub.scheduler is not None
            connection_id = await create(
                http, host="127.0.0.1", port=proxy.port, databaseName="test", userName="postgres", schema=None
            )
            never = await create(http, configName="never-checked", **closed_port())
            assert (await health_of(http, connection_id))["state"] == "unknown"
            # Off before the scheduler's first pass: a check of this closed port, due early in the
            # spread, would otherwise go down and send a webhook the asserts below do not expect.
            assert (await http.put(f"{BASE}/{never}/health", json={"intervalS": 0})).status_code == 200
            await hub.scheduler.run_once()  # enrolled: first checks spread over the interval
            first = await health_of(http, connection_id)
            if first["state"] == "unknown":  # not due within the enrolling pass's lookahead
                first = await check_when_due(http, hub, clock, connection_id)
            assert first["state"] == "up" and first["results"][0]["serverVersion"]
            assert receiver.attempts == []  # a first success is no news

            await proxy.stop()
            down = await check_when_due(http, hub, clock, connection_id)
            assert down["state"] == "down" and down["since"] == down["lastCheckedAt"]
            assert down["results"][0]["category"] == "PORT_CLOSED"

            await proxy.start()
            up = await check_when_due(http, hub, clock, connection_id)
            assert up["state"] == "up" and up["since"] == up["lastCheckedAt"]

            assert [r["status"] for r in up["results"]] == ["up", "down", "up"]
            day = up["windows"]["24h"]
            assert day["checks"] == 3 and day["uptime"] == pytest.approx(2 / 3, abs=1e-3)
            assert day["latencyP50Ms"] is not None and day["latencyP95Ms"] >= day["latencyP50Ms"]
            assert up["windows"]["7d"]["checks"] == 3
            assert up["breaker"] == {"open": False, "consecutiveFailures": 0}
            interval = (parse_instant(up["nextCheckAt"]) - parse_instant(up["lastCheckedAt"])).total_seconds()
            assert 54 <= interval <= 66  # the interval, jittered by up to 10%

            assert receiver.bad_signatures == 0
            changes = [(e["type"], e["previousState"], e["state"], e["cause"]) for e in receiver.events]
            assert changes == [
                ("connection.state_changed", "up", "down", "PORT_CLOSED"),
                ("connection.state_changed", "down", "up", None),
            ]
            assert receiver.events[0]["connection"]["id"] == connection_id
            assert receiver.events[0]["tenant"] == "default"

            listed = {
                state: [item["id"] for item in (await http.get(BASE, params={"health": state})).json()["items"]]
                for state in ("up", "down", "unknown")
            }
            assert listed == {"up": [connection_id], "down": [], "unknown": [never]}
            assert (await http.get(BASE, params={"health": "sideways"})).status_code == 400
            assert (await health_of(http, never))["results"] == []  # interval 0: never checked

            metrics = (await http.get("/metrics")).text
            assert 'connhub_connections{engine="POSTGRESQL",state="up"} 1.0' in metrics
            assert 'connhub_connections{engine="POSTGRESQL",state="unknown"} 1.0' in metrics
            assert connection_id not in metrics  # no per-connection series
    await proxy.stop()


async def test_a_failing_connection_backs_off_and_old_results_are_forgotten(
    sqlite_url: str, health_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    async with served(health_settings(sqlite_url, health_backoff_max_s=240), clock) as (http, hub):
        assert hub.scheduler is not None
        connection_id = await create(http, **closed_port())
        await hub.scheduler.run_once()
        delays = []
        for _ in range(6):
            view = await check_when_due(http, hub, clock, connection_id)
            delays.append((parse_instant(view["nextCheckAt"]) - parse_instant(view["lastCheckedAt"])).total_seconds())
        # Two failures at the interval, then doubling from the third, capped at 240 s (each +-10%).
        for delay, expected in zip(delays, [60, 60, 120, 240, 240, 240], strict=True):
            assert expected * 0.9 <= delay <= expected * 1.1, delays
        assert view["breaker"] == {"open": True, "consecutiveFailures": 6}
        assert view["state"] == "down" and view["windows"]["24h"]["uptime"] == 0
        assert view["windows"]["24h"]["latencyP50Ms"] is None  # latency figures are of successes

        clock.advance(31 * 24 * 3600)  # past CONNHUB_HEALTH_RETENTION_DAYS (30)
        await hub.scheduler.maintain()
        assert (await health_of(http, connection_id))["results"] == []


async def test_scheduled_checks_respect_the_test_rate_limit(
    sqlite_url: str, health_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    async with served(health_settings(sqlite_url), clock) as (http, hub):
        assert hub.scheduler is not None
        connection_id = await create(http, **closed_port())
        for _ in range(10):  # a user takes the whole minute's budget (before the scheduler's first
            # pass, whose spread may put this connection's first check at once and take one)
            assert (await http.post(f"{BASE}/{connection_id}/test")).status_code == 200
        assert (await http.post(f"{BASE}/{connection_id}/test")).status_code == 429
        await hub.scheduler.run_once()
        view = await check_when_due(http, hub, clock, connection_id)
        assert view["results"] == [] and view["state"] == "unknown"  # not tested: due again later
        assert parse_instant(view["nextCheckAt"]) > clock.now()


async def test_an_interval_of_its_own(sqlite_url: str, health_settings: Callable[..., Settings]) -> None:
    clock = FakeClock()
    async with served(health_settings(sqlite_url), clock) as (http, hub):
        connection_id = await create(http, **closed_port())
        url = f"{BASE}/{connection_id}/health"
        response = await http.put(url, json={"intervalS": 600})
        assert response.status_code == 200, response.text
        assert response.json()["ownIntervalS"] == 600 and response.json()["intervalS"] == 600
        view = await check_when_due(http, hub, clock, connection_id)
        delay = (parse_instant(view["nextCheckAt"]) - parse_instant(view["lastCheckedAt"])).total_seconds()
        assert 540 <= delay <= 660

        too_often = await http.put(url, json={"intervalS": 3})  # the rate limit allows one test per 6 s
        assert too_often.status_code == 400 and set(too_often.json()["fields"]) == {"intervalS"}
        for bad in ({"intervalS": "60"}, {"intervalS": True}, {"interval": 60}, {}):
            assert (await http.put(url, json=bad)).status_code == 400, bad
        back = await http.put(url, json={"intervalS": None})
        assert back.json()["ownIntervalS"] is None and back.json()["intervalS"] == 60

        audit = (await http.get("/v1/audit", params={"action": "update"})).json()["items"]
        assert [entry["fields"] for entry in audit] == [["health.intervalS"], ["health.intervalS"]]


async def test_a_webhook_that_keeps_failing_ends_as_a_dead_letter(
    sqlite_url: str, health_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    async with WebhookReceiver(clock, status=500) as receiver:
        settings = health_settings(
            sqlite_url, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET, webhook_max_attempts=3
        )
        async with served(settings, clock) as (http, hub):
            assert hub.scheduler is not None
            connection_id = await create(http, **closed_port())
            await hub.scheduler.run_once()
            await check_when_due(http, hub, clock, connection_id)  # unknown -> down: announced, refused
            assert len(receiver.attempts) == 1
            await hub.scheduler.deliver_webhooks()
            assert len(receiver.attempts) == 1  # the retry waits its backoff
            clock.advance(10)
            await hub.scheduler.deliver_webhooks()
            clock.advance(20)
            await hub.scheduler.deliver_webhooks()
            clock.advance(3600)
            await hub.scheduler.deliver_webhooks()
            assert len(receiver.attempts) == 3 and receiver.bad_signatures == 0
            assert {event["id"] for event in receiver.attempts} == {receiver.attempts[0]["id"]}
            assert await HealthStore(hub.repository).dead_letters() == 1
            clock.advance(15)
            await hub.scheduler.maintain()
            assert "connhub_webhook_dead_letters 1.0" in (await http.get("/metrics")).text


async def test_a_certificate_about_to_expire_is_announced_once(
    sqlite_url: str, health_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    leaf = CertificateAuthority().issue(["db.connhub.test"])  # valid for a day: inside the 14-day warning
    wire = MongoWireServer({"shop": {"orders": []}}, {"app": "wire-pw"}, tls=server_ssl_context(leaf))
    async with WebhookReceiver(clock) as receiver, wire:
        settings = health_settings(sqlite_url, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        async with served(settings, clock) as (http, hub):
            assert hub.scheduler is not None
            connection_id = await create(
                http,
                type="MONGODB",
                host="127.0.0.1",
                port=wire.port,
                databaseName="shop",
                userName="app",
                password="wire-pw",
                schema=None,
                ssl={"mode": "require"},
                # Driver options come through a connection string in the Reporter dialect (issue 12).
                connectionString=f"mongodb://app:wire-pw@127.0.0.1:{wire.port}/shop?authSource=admin",
            )
            await hub.scheduler.run_once()
            view = await check_when_due(http, hub, clock, connection_id)
            assert view["state"] == "up", view
            expires = parse_instant(view["certificateExpiresAt"])
            assert clock.now() < expires <= clock.now() + timedelta(days=1, minutes=1)
            await check_when_due(http, hub, clock, connection_id)
    assert [(e["type"], e["daysLeft"]) for e in receiver.events] == [("connection.certificate_expiring", 0)]
    assert receiver.events[0]["certificateExpiresAt"] == view["certificateExpiresAt"]


async def test_the_running_scheduler_checks_what_falls_due_and_stops(
    sqlite_url: str, health_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    async with served(health_settings(sqlite_url), clock) as (http, hub):
        assert hub.scheduler is not None
        connection_id = await create(http, **closed_port())
        hub.scheduler.start()  # what the app's lifespan does
        for _ in range(2000):  # each of its polls moves the clock 5 s: due within 60 s of clock time
            if (await health_of(http, connection_id))["results"]:
                break
            await asyncio.sleep(0.005)
        await hub.scheduler.stop()
        view = await health_of(http, connection_id)
        assert view["state"] == "down" and view["results"][0]["category"] == "PORT_CLOSED"


async def test_chartbrew_answers_carry_the_health_state(
    sqlite_url: str, health_settings: Callable[..., Settings]
) -> None:
    clock = FakeClock()
    async with served(health_settings(sqlite_url), clock) as (http, hub):
        assert hub.scheduler is not None
        made = await http.post(
            "/team/default/connections",
            json={
                "name": "warehouse",
                "type": "postgres",
                "host": "127.0.0.1",
                "port": str(free_port()),
                "dbName": "d",
                "username": "u",
                "password": "p",
            },
        )
        assert made.status_code == 200 and made.json()["health"] == "unknown"
        unassigned = (await http.get(f"{BASE}/unassigned")).json()["items"]
        await hub.scheduler.run_once()
        await check_when_due(http, hub, clock, unassigned[0]["id"])
        clock.advance(16)  # past the 15 s a status is remembered: it is read again
        listed = (await http.get("/team/default/connections")).json()
        assert [(item["name"], item["health"]) for item in listed] == [("warehouse", "down")]
        assert (await http.get(f"/team/default/connections/{made.json()['id']}")).json()["health"] == "down"
