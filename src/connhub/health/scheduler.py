"""The health scheduler: tests every stored connection on its interval, keeps the results, alerts.

Started from the app's lifespan when CONNHUB_HEALTH_INTERVAL_S > 0; every replica runs one, and the
store's leases make each check happen once. The clock is injected so tests drive time (`run_once`
after moving a fake clock) instead of sleeping.

- Due connections are claimed, at most `concurrency` checks in flight; each check goes through the
  service's own test (`probe_saved`), so the per-connection test rate limit and the global probe
  bound hold for scheduled checks too, and a rate-limited connection is simply due again later.
- Circuit breaker: past `BREAKER_FAILURES` consecutive failures a connection is checked at a
  doubling interval, up to CONNHUB_HEALTH_BACKOFF_MAX_S; one success closes it.
- Every delay is jittered, and first checks spread over one interval, so 10,000 connections do
  not fall due in the same second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import uuid4

from connhub.domain.connection import Connection
from connhub.domain.errors import NotFound, RateLimited
from connhub.health import metrics
from connhub.health.model import FOREVER, Claim, HealthPolicy, alerts_on, assess
from connhub.health.webhook import WebhookSender, events_for, retry_delay
from connhub.service import ConnectionService
from connhub.store.health import Delivery, HealthStore

log = logging.getLogger(__name__)
GAUGES_EVERY_S = 15.0
PRUNE_EVERY_S = 3600.0
DELIVERIES_PER_PASS = 20


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def replica_name() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is another owner)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid4().hex[:8]}"


class HealthScheduler:
    def __init__(
        self,
        service: ConnectionService,
        store: HealthStore,
        policy: HealthPolicy,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        webhook: WebhookSender | None = None,
        webhook_max_attempts: int = 8,
        owner: str | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.policy = policy
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.webhook = webhook
        self.webhook_max_attempts = webhook_max_attempts
        self.owner = owner or replica_name()
        self._slots = asyncio.Semaphore(policy.concurrency)
        self._gauges_at: datetime | None = None
        self._pruned_at: datetime | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- one pass (what tests drive) ----------------------------------------------------------

    async def run_once(self) -> int:
        """Watch new connections, check those due (up to `concurrency`), deliver due webhooks,
        refresh the gauges. Answers how many connections were checked."""
        await self.store.enroll(self.clock.now(), self.policy, self.rng)
        claims = await self._claim(self.policy.concurrency)
        await asyncio.gather(*(self._check(claim) for claim in claims))
        await self.deliver_webhooks()
        await self.maintain()
        return len(claims)

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._checks_forever()), loop.create_task(self._background_forever())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.webhook is not None:
            await self.webhook.close()

    async def _checks_forever(self) -> None:
        """Keep `concurrency` checks in flight while connections are due; look again every poll."""
        in_flight: set[asyncio.Task[None]] = set()
        enrolled_at: datetime | None = None
        try:
            while True:
                free = self.policy.concurrency - len(in_flight)
                claims: list[Claim] = []
                try:
                    if enrolled_at is None or self._elapsed(enrolled_at) >= self.policy.poll_s:
                        enrolled_at = self.clock.now()
                        await self.store.enroll(enrolled_at, self.policy, self.rng)
                    if free > 0:
                        claims = await self._claim(free)
                except Exception:  # the store is away: try again next poll, never die
                    log.warning("health: could not claim due connections", exc_info=True)
                in_flight |= {asyncio.get_running_loop().create_task(self._check(claim)) for claim in claims}
                if free > 0 and len(claims) == free:
                    continue  # more may be due: claim again as slots allow
                # A backlog (every slot busy) is claimed from again once half the slots are free, one
                # claim for many checks; otherwise nothing more is due within the lookahead.
                backlog = free == 0
                pause = asyncio.get_running_loop().create_task(self.clock.sleep(self.policy.lookahead_s))
                try:
                    while not pause.done():
                        done, _ = await asyncio.wait({*in_flight, pause}, return_when=asyncio.FIRST_COMPLETED)
                        in_flight -= done
                        if backlog and len(in_flight) <= self.policy.concurrency // 2:
                            break
                finally:
                    pause.cancel()
        finally:
            for task in in_flight:
                task.cancel()

    async def _background_forever(self) -> None:
        while True:
            try:
                while await self.deliver_webhooks() == DELIVERIES_PER_PASS:
                    pass
                await self.maintain()
            except Exception:
                log.warning("health: webhook delivery or upkeep failed", exc_info=True)
            await self.clock.sleep(self.policy.poll_s)

    async def _claim(self, limit: int) -> list[Claim]:
        policy = self.policy
        return await self.store.claim(self.clock.now(), self.owner, limit, policy.lease_s, policy.lookahead_s)

    def _elapsed(self, since: datetime) -> float:
        return (self.clock.now() - since).total_seconds()

    # -- one check ----------------------------------------------------------------------------

    async def _check(self, claim: Claim) -> None:
        async with self._slots:
            try:
                await self._check_claimed(claim)
            except Exception:  # the lease runs out and another pass checks it again
                log.warning("health: check of connection %d failed", claim.connection_number, exc_info=True)

    async def _check_claimed(self, claim: Claim) -> None:
        try:
            connection = await self.service.get(claim.tenant, claim.connection_id)
        except NotFound:  # deleted since it was claimed
            await self.store.release(claim, self.owner, FOREVER)
            return
        try:
            report = await self.service.probe_saved(claim.tenant, connection)
        except RateLimited as limited:  # users tested it this minute: due again when allowed
            later = self.clock.now() + timedelta(seconds=limited.retry_after_s)
            await self.store.release(claim, self.owner, later)
            return
        outcome = assess(claim, report, self.clock.now(), self.policy, self.rng)
        events = []
        if self.webhook is not None:
            events = events_for(claim, outcome, _summary(connection), state_change=alerts_on(claim, outcome))
        if await self.store.record(claim, self.owner, outcome, events):
            metrics.CHECKS.labels(connection.engine.value, outcome.state.value).inc()

    # -- webhooks and upkeep ------------------------------------------------------------------

    async def deliver_webhooks(self) -> int:
        """Send the due webhook events, oldest first; answers how many were attempted."""
        if self.webhook is None:
            return 0
        due = await self.store.claim_deliveries(self.clock.now(), self.owner, DELIVERIES_PER_PASS, self.policy.lease_s)
        for delivery in due:
            await self._deliver(delivery)
        return len(due)

    async def _deliver(self, delivery: Delivery) -> None:
        assert self.webhook is not None
        error = await self.webhook.send(delivery, self.clock.now())
        if error is None:
            metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
            await self.store.delivered(delivery)
            return
        attempts = delivery.attempts + 1
        if attempts >= self.webhook_max_attempts:
            metrics.WEBHOOK_ATTEMPTS.labels("dead").inc()
            log.error("webhook: event %s given up after %d attempts (%s)", delivery.event_id, attempts, error)
            await self.store.failed(delivery, error, None)
            return
        metrics.WEBHOOK_ATTEMPTS.labels("failed").inc()
        log.warning("webhook: event %s attempt %d failed (%s)", delivery.event_id, attempts, error)
        await self.store.failed(delivery, error, self.clock.now() + timedelta(seconds=retry_delay(attempts)))

    async def maintain(self) -> None:
        """Refresh the gauges (every 15 s) and forget results past retention (hourly)."""
        now = self.clock.now()
        if self._gauges_at is None or (now - self._gauges_at).total_seconds() >= GAUGES_EVERY_S:
            self._gauges_at = now
            metrics.publish_counts(await self.store.counts())
            metrics.DEAD_LETTERS.set(await self.store.dead_letters())
        if self._pruned_at is None or (now - self._pruned_at).total_seconds() >= PRUNE_EVERY_S:
            self._pruned_at = now
            await self.store.prune(now, self.policy.retention_days)


def _summary(connection: Connection) -> dict[str, str | int]:
    """What an alert says of a connection: where it is, never a secret. The webhook body's own shape
    (README, Alerts), written out rather than taken from domain.connection.stored_fields, so that a
    change of the canonical fields never changes what receivers get."""
    return {
        "id": str(connection.id),
        "configName": connection.config_name,
        "type": connection.engine.value,
        "host": connection.host,
        "port": connection.port,
        "databaseName": connection.database_name,
    }
