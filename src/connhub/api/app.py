"""The app factory: settings in, a ready ASGI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from connhub import __version__
from connhub.api import audit, chartbrew, errors, health, ops, reporter
from connhub.api.acting import ActingContext
from connhub.api.auth import Authenticator
from connhub.api.http import BodyLimit, BodyTooLarge, Hub, UnsupportedMediaType
from connhub.api.metrics import RequestMetrics
from connhub.api.openapi import install_openapi
from connhub.api.responses import Json
from connhub.config import Settings
from connhub.health.model import HealthPolicy
from connhub.health.monitor import HealthMonitor
from connhub.health.scheduler import Clock, HealthScheduler, SystemClock
from connhub.health.webhook import WebhookSender
from connhub.probes.guard import parse_cidrs, parse_dns_servers
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, development_key_ring
from connhub.service import ConnectionService
from connhub.store.audit import AuditStore
from connhub.store.health import HealthStore
from connhub.store.repository import ConnectionRepository

log = logging.getLogger("connhub")


def load_key_ring(settings: Settings) -> KeyRing:
    if settings.encryption_keys:
        return KeyRing.parse(settings.encryption_keys)
    if settings.env == "production":
        raise RuntimeError("CONNHUB_ENCRYPTION_KEYS is required in production")
    return development_key_ring(settings.key_file)


def build_hub(settings: Settings, clock: Clock | None = None) -> Hub:
    """Everything a process serves with; `clock` drives the health scheduler (tests pass their own)."""
    repository = ConnectionRepository.open(settings.database_url, settings.store_pool_size)
    key_ring = load_key_ring(settings)
    policy = ProbePolicy(
        timeout_s=settings.probe_timeout_s,
        deny=parse_cidrs(settings.probe_deny_cidrs),
        allow=parse_cidrs(settings.probe_allow_cidrs),
        max_concurrent=settings.probe_max_concurrent,
        dns_servers=_dns_servers(settings),
    )
    audit_store = AuditStore(repository)
    service = ConnectionService(
        repository,
        key_ring,
        ProbeRunner(policy),
        tests_per_minute=settings.tests_per_minute,
        schema_cache_ttl_s=settings.schema_cache_ttl_s,
        audit=audit_store,
    )
    health_store = HealthStore(repository)
    clock = clock or SystemClock()
    monitor = HealthMonitor(health_store, health_policy(settings), audit=audit_store, now=clock.now)
    scheduler = None
    if settings.health_interval_s > 0:
        webhook = None
        if settings.webhook_url and settings.webhook_secret:
            webhook = WebhookSender(settings.webhook_url, settings.webhook_secret)
        scheduler = HealthScheduler(
            service,
            health_store,
            monitor.policy,
            clock=clock,
            webhook=webhook,
            webhook_max_attempts=settings.webhook_max_attempts,
        )
    return Hub(settings, service, repository, key_ring, Authenticator(settings), audit_store, monitor, scheduler)


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


def _dns_servers(settings: Settings) -> tuple[tuple[str, int], ...]:
    try:
        return parse_dns_servers(settings.probe_dns_servers)
    except ValueError as problem:
        raise ValueError(f"CONNHUB_PROBE_DNS_SERVERS: {problem}") from None


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    hub = build_hub(settings, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if hub.scheduler is not None:
            hub.scheduler.start()
        yield
        await hub.close()

    app = FastAPI(
        title="Connhub",
        version=__version__,
        description="An organization's database connections: stored safely, tested live, described.",
        lifespan=lifespan,
        default_response_class=Json,
    )
    app.state.hub = hub
    errors.install(app)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(UnsupportedMediaType, _not_json)
    app.include_router(ops.router)
    app.include_router(reporter.router)
    app.include_router(chartbrew.router)
    app.include_router(audit.router)
    app.include_router(health.router)
    install_openapi(app)
    app.add_middleware(RequestMetrics)
    app.add_middleware(BodyLimit)
    app.add_middleware(ActingContext)
    return app


async def _too_large(_request: Request, _error: Exception) -> Response:
    return errors.http_problem(413, "the request body is over this route's size limit")


async def _not_json(_request: Request, _error: Exception) -> Response:
    return errors.http_problem(415, "the request body must be JSON (Content-Type: application/json)")
