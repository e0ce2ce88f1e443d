"""Prometheus figures of scheduled health. Labels are engines, states and outcomes: bounded sets,
never a connection (10,000 connections must not be 10,000 series)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from connhub.domain.engines import Engine
from connhub.health.model import HealthState

CONNECTIONS = Gauge("connhub_connections", "Live connections by health state and engine", ["engine", "state"])
CHECKS = Counter("connhub_health_checks_total", "Scheduled health checks by engine and result", ["engine", "state"])
WEBHOOK_ATTEMPTS = Counter("connhub_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
DEAD_LETTERS = Gauge("connhub_webhook_dead_letters", "Webhook events given up on, kept in the store")


def publish_counts(counts: Mapping[tuple[str, str], int]) -> None:
    """Set every (engine, state) gauge, zeros included, from the store's counts."""
    for engine in Engine:
        for state in HealthState:
            CONNECTIONS.labels(engine.value, state.value).set(counts.get((engine.value, state.value), 0))
