"""Three schedulers on one PostgreSQL, each with its own store engine as separate replicas would be:
every due check runs once, and a replica that dies holding leases loses only those checks, which
another takes up when the leases run out."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
import pytest

from connhub.domain.reports import ErrorCategory, failure_report
from connhub.health.model import HealthPolicy, assess
from connhub.health.scheduler import HealthScheduler
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing
from connhub.service import ConnectionService
from connhub.store.health import HealthStore
from connhub.store.repository import ConnectionRepository
from tests.conftest import truncate_pg
from tests.health.support import FakeClock
from tests.support.servers import free_port

CONNECTIONS = 40
POLICY = HealthPolicy(interval_s=60, min_interval_s=6, concurrency=16, lease_s=33)


@dataclass
class Replica:
    repository: ConnectionRepository
    service: ConnectionService
    scheduler: HealthScheduler


@pytest.fixture
async def replicas(pg_store_url: str, encryption_keys: str) -> AsyncIterator[list[Replica]]:
    truncate_pg(pg_store_url)
    clock = FakeClock()
    made = []
    for number in range(3):
        repository = ConnectionRepository.open(pg_store_url, pool_size=4)
        service = ConnectionService(repository, KeyRing.parse(encryption_keys), ProbeRunner(ProbePolicy(timeout_s=3)))
        scheduler = HealthScheduler(
            service, HealthStore(repository), POLICY, clock=clock, rng=random.Random(number), owner=f"replica-{number}"
        )
        made.append(Replica(repository, service, scheduler))
    yield made
    for replica in made:
        await replica.repository.close()


def results_per_connection(url: str) -> dict[int, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT connection_number, count(*) FROM health_results GROUP BY 1").fetchall()
    return dict(rows)


async def test_each_check_runs_once_and_a_dead_replica_loses_only_its_checks(
    replicas: list[Replica], pg_store_url: str
) -> None:
    first = replicas[0]
    port = free_port()  # nobody listens: each check is a quick PORT_CLOSED
    for number in range(CONNECTIONS):
        fields = {
            "configName": f"db-{number}",
            "type": "POSTGRESQL",
            "host": "127.0.0.1",
            "port": port,
            "databaseName": "d",
            "userName": "u",
            "password": "p",
            "ssl": {"mode": "disable"},
        }
        await first.service.create("acme", fields, "product")
    clock = first.scheduler.clock
    assert isinstance(clock, FakeClock)

    rng = random.Random(1)
    await asyncio.gather(*(replica.scheduler.store.enroll(clock.now(), POLICY, rng) for replica in replicas))
    clock.advance(POLICY.interval_s + 1)  # every first check is due
    checked = [0, 0, 0]
    while True:
        passes = await asyncio.gather(*(replica.scheduler.run_once() for replica in replicas))
        checked = [total + now for total, now in zip(checked, passes, strict=True)]
        if not any(passes):
            break
    assert sum(checked) == CONNECTIONS
    assert sum(1 for count in checked if count) >= 2  # the work was shared
    counts = results_per_connection(pg_store_url)
    assert len(counts) == CONNECTIONS and set(counts.values()) == {1}  # each once, none twice

    # Replica 0 claims five connections and dies before checking them (its claims are the test's).
    # Nothing else is due for 54 s at least (the interval less its jitter), more than a lease.
    store = first.scheduler.store
    with psycopg.connect(pg_store_url, autocommit=True) as conn:  # make five due now
        conn.execute(
            "UPDATE connection_health SET next_check_at = %s WHERE connection_number IN "
            "(SELECT connection_number FROM connection_health ORDER BY connection_number LIMIT 5)",
            (clock.now().replace(tzinfo=None),),
        )
    orphaned = await store.claim(clock.now(), "replica-0", 5, POLICY.lease_s)
    assert len(orphaned) == 5
    survivors = replicas[1:]
    assert await asyncio.gather(*(r.scheduler.run_once() for r in survivors)) == [0, 0]  # still leased

    clock.advance(POLICY.lease_s + 1)  # the dead replica's leases run out
    assert sum(await asyncio.gather(*(r.scheduler.run_once() for r in survivors))) == 5
    counts = results_per_connection(pg_store_url)
    assert sorted(counts.values()) == [1] * (CONNECTIONS - 5) + [2] * 5

    # Should the "dead" replica come back with a result, it no longer holds the lease: not kept.
    report = failure_report(ErrorCategory.PORT_CLOSED, "late")
    late = assess(orphaned[0], report, clock.now(), POLICY, random.Random())
    assert await store.record(orphaned[0], "replica-0", late, []) is False
    assert results_per_connection(pg_store_url)[orphaned[0].connection_number] == 2
