"""The composition root: the service and what it stands on, built from settings.

The one place that picks the store, the key ring, the probe policy and the caches' sizes, for the
app (`api/app.py`) and the CLI (`connhub keys rotate`) alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from connhub import coordination
from connhub.config import Settings
from connhub.coordination import Coordination
from connhub.probes.guard import parse_cidrs, parse_dns_servers
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, RequestDigests, development_key_ring, parse_key
from connhub.service import ConnectionService
from connhub.store.repository import ConnectionRepository


@dataclass(frozen=True)
class Core:
    """The service with the parts it owns; `close` releases the store's pool."""

    service: ConnectionService
    repository: ConnectionRepository
    key_ring: KeyRing
    coordination: Coordination  # the rate limit, probe bound and schema cache: this process's, or Redis's

    async def close(self) -> None:
        await self.repository.close()
        await self.coordination.close()


def build(settings: Settings) -> Core:
    """Everything from settings. A bad setting raises ValueError/RuntimeError naming it, before the
    store is opened (so no pool is left behind)."""
    shared = coordination.build(settings)
    probes = ProbeRunner(probe_policy(settings), shared.probe_slots)
    key_ring = load_key_ring(settings)
    repository = ConnectionRepository.open(settings.database_url, settings.store_pool_size)
    service = ConnectionService(
        repository,
        key_ring,
        probes,
        rate_limiter=shared.rate_limiter,
        schema_cache=shared.schema_cache,
        digests=RequestDigests(key_ring, _idempotency_key(settings)),
    )
    return Core(service, repository, key_ring, shared)


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
