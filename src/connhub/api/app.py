"""The app factory: settings in, a ready ASGI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from connhub import __version__
from connhub.api import audit, chartbrew, errors, ops, reporter
from connhub.api.acting import ActingContext
from connhub.api.auth import Authenticator
from connhub.api.http import BodyLimit, BodyTooLarge, Hub, UnsupportedMediaType
from connhub.api.metrics import RequestMetrics
from connhub.api.openapi import install_openapi
from connhub.api.responses import Json
from connhub.config import Settings
from connhub.probes.guard import parse_cidrs, parse_dns_servers
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, development_key_ring
from connhub.service import ConnectionService
from connhub.store.audit import AuditStore
from connhub.store.repository import ConnectionRepository

log = logging.getLogger("connhub")


def load_key_ring(settings: Settings) -> KeyRing:
    if settings.encryption_keys:
        return KeyRing.parse(settings.encryption_keys)
    if settings.env == "production":
        raise RuntimeError("CONNHUB_ENCRYPTION_KEYS is required in production")
    return development_key_ring(settings.key_file)


def build_hub(settings: Settings) -> Hub:
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
    return Hub(settings, service, repository, key_ring, Authenticator(settings), audit_store)


def _dns_servers(settings: Settings) -> tuple[tuple[str, int], ...]:
    try:
        return parse_dns_servers(settings.probe_dns_servers)
    except ValueError as problem:
        raise ValueError(f"CONNHUB_PROBE_DNS_SERVERS: {problem}") from None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    hub = build_hub(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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
    install_openapi(app)
    app.add_middleware(RequestMetrics)
    app.add_middleware(BodyLimit)
    app.add_middleware(ActingContext)
    return app


async def _too_large(_request: Request, _error: Exception) -> Response:
    return errors.http_problem(413, "the request body is over this route's size limit")


async def _not_json(_request: Request, _error: Exception) -> Response:
    return errors.http_problem(415, "the request body must be JSON (Content-Type: application/json)")
