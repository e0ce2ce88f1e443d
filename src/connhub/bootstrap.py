"""The composition root: the service and what it stands on, built from settings.

The one place that picks the store, the key ring, the probe policy and the caches' sizes, for the
app (`api/app.py`) and the CLI (`connhub keys rotate`) alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from connhub import coordination
from connhub.config import Settings
from connhub.coordination import Coordination
from connhub.health.model import HealthPolicy
from connhub.health.monitor import HealthMonitor
from connhub.health.scheduler import Clock, HealthScheduler, SystemClock
from connhub.health.webhook import WebhookSender
from connhub.probes.guard import parse_cidrs, parse_dns_servers
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, RequestDigests, development_key_ring, parse_key
from connhub.service import ConnectionService
from connhub.store.audit import AuditStore
from connhub.store.health import HealthStore
from connhub.store.repository import ConnectionRepository


@dataclass(frozen=True)
class Core:
    """The service with the parts it owns; `close` stops the scheduler, writes the queued audit
    entries and releases the store's pool."""

    service: ConnectionService
    repository: ConnectionRepository
    key_ring: KeyRing
    coordination: Coordination  # the rate limit, probe bound and tables cache: this process's, or Redis's
    audit: AuditStore
    health: HealthMonitor
    scheduler: HealthScheduler | None = None  # None: CONNHUB_HEALTH_INTERVAL_S=0

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.audit.close()
        await self.repository.close()
        await self.coordination.close()


def build(settings: Settings, clock: Clock | None = None) -> Core:
    """Everything from settings. A bad setting raises ValueError/RuntimeError naming it, before the
    store is opened (so no pool is left behind). `clock` drives the health scheduler."""
    shared = coordination.build(settings)
    probes = ProbeRunner(probe_policy(settings), shared.probe_slots)
    key_ring = load_key_ring(settings)
    repository = ConnectionRepository.open(settings.database_url, settings.store_pool_size)
    audit = AuditStore(repository)
    service = ConnectionService(
        repository,
        key_ring,
        probes,
        rate_limiter=shared.rate_limiter,
        tables_cache=shared.tables_cache,
        digests=RequestDigests(key_ring, _idempotency_key(settings)),
        audit=audit,
    )
    clock = clock or SystemClock()
    health_store = HealthStore(repository)
    monitor = HealthMonitor(health_store, health_policy(settings), audit=audit, now=clock.now)
    scheduler = _scheduler(settings, service, monitor, clock)
    return Core(service, repository, key_ring, shared, audit, monitor, scheduler)


def _scheduler(
    settings: Settings, service: ConnectionService, monitor: HealthMonitor, clock: Clock
) -> HealthScheduler | None:
    if settings.health_interval_s == 0:
        return None
    webhook = None
    if settings.webhook_url and settings.webhook_secret:  # the settings refuse a URL without a secret
        webhook = WebhookSender(settings.webhook_url, settings.webhook_secret)
    return HealthScheduler(
        service,
        monitor.store,
        monitor.policy,
        clock=clock,
        webhook=webhook,
        webhook_max_attempts=settings.webhook_max_attempts,
    )


def health_policy(settings: Settings) -> HealthPolicy:
    return HealthPolicy(
        interval_s=settings.health_interval_s,
        # Never more often than the test rate limit lets a user test the connection.
        min_interval_s=60 / settings.tests_per_minute,
        backoff_max_s=settings.health_backoff_max_s,
        concurrency=settings.health_concurrency,
        # A claim outlives the longest check (the probe's budget) plus store time to record it.
        lease_s=settings.probe_timeout_s + 30,
        cert_warn_days=settings.health_cert_warn_days,
        retention_days=settings.health_retention_days,
    )


def load_key_ring(settings: Settings) -> KeyRing:
    if settings.encryption_keys:
        return KeyRing.parse(settings.encryption_keys)
    if settings.env == "production":
        raise RuntimeError("CONNHUB_ENCRYPTION_KEYS is required in production")
    if settings.shared_store:
        # Every process on a PostgreSQL store must hold the same keys; a generated one is this host's alone.
        raise RuntimeError("CONNHUB_ENCRYPTION_KEYS is required with a PostgreSQL store")
    return development_key_ring(settings.key_file)


def probe_policy(settings: Settings) -> ProbePolicy:
    return ProbePolicy(
        timeout_s=settings.probe_timeout_s,
        deny=parse_cidrs(settings.probe_deny_cidrs),
        allow=parse_cidrs(settings.probe_allow_cidrs),
        max_concurrent=settings.probe_max_concurrent,
        dns_servers=_dns_servers(settings),
    )


def _idempotency_key(settings: Settings) -> bytes | None:
    if not settings.idempotency_key:
        return None
    return parse_key("CONNHUB_IDEMPOTENCY_KEY", settings.idempotency_key)


def _dns_servers(settings: Settings) -> tuple[tuple[str, int], ...]:
    try:
        return parse_dns_servers(settings.probe_dns_servers)
    except ValueError as problem:
        raise ValueError(f"CONNHUB_PROBE_DNS_SERVERS: {problem}") from None
