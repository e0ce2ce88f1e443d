"""Health as the API shows it: a connection's state, history and figures; its own interval."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connhub.audit import Action, AuditLog, NoAudit
from connhub.domain.connection import Connection
from connhub.domain.errors import ValidationFailed
from connhub.health.model import HealthPolicy, HealthState, HealthView, WindowFigures, window_figures
from connhub.store.health import HealthStore

MAX_INTERVAL_S = 7 * 24 * 3600
MAX_RESULTS = 100
STATES_TTL_S = 15.0  # how stale the simple status of a list may be


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HealthMonitor:
    def __init__(
        self,
        store: HealthStore,
        policy: HealthPolicy,
        *,
        audit: AuditLog | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.policy = policy
        self.audit: AuditLog = audit or NoAudit()
        self._now = now
        self._states: dict[str, tuple[datetime, dict[int, HealthState]]] = {}  # tenant -> (read at, states)

    @property
    def scheduled(self) -> bool:
        return self.policy.interval_s > 0

    async def view(self, connection: Connection, results: int = 20) -> HealthView:
        now = self._now()
        row = await self.store.row(connection.number)
        history = await self.store.history(connection.number, now)
        figures = [(r.checked_at, r.state == HealthState.UP, r.latency_ms) for r in history]
        interval = None
        if self.scheduled and not (row is not None and row.interval_s == 0):
            interval = self.policy.interval_for(row.interval_s if row else None)
        return HealthView(
            connection_id=connection.id,
            state=row.state if row else HealthState.UNKNOWN,
            since=row.state_since if row else None,
            last_checked_at=row.last_checked_at if row else None,
            next_check_at=row.next_check_at if row and interval is not None else None,
            interval_s=interval,
            own_interval_s=row.interval_s if row else None,
            consecutive_failures=row.consecutive_failures if row else 0,
            cert_expires_at=row.cert_expires_at if row else None,
            last_day=window_figures(figures, now - timedelta(days=1)),
            last_week=window_figures(figures, now - timedelta(days=7)),
            results=history[:results],
        )

    async def states(self, tenant: str) -> Mapping[int, HealthState]:
        """The state of each of a tenant's connections by number (absent: unknown), as of at most
        STATES_TTL_S ago: one read a tenant every 15 s serves every answer that shows a status."""
        now = self._now()
        read_at, states = self._states.get(tenant, (datetime.min.replace(tzinfo=UTC), {}))
        if (now - read_at).total_seconds() > STATES_TTL_S:
            states = await self.store.states(tenant)
            self._states[tenant] = (now, states)
            if len(self._states) > 10_000:  # forget tenants read long ago rather than grow
                self._states = {t: e for t, e in self._states.items() if (now - e[0]).total_seconds() <= STATES_TTL_S}
        return states

    async def set_interval(self, connection: Connection, interval_s: int | None) -> None:
        await self.store.set_interval(connection.number, connection.id, connection.tenant, interval_s, self._now())
        self.audit.record(connection.tenant, Action.UPDATE, connection.id, fields=("health.intervalS",))

    def parse_settings(self, body: dict[str, Any]) -> int | None:
        """`{"intervalS": N | 0 | null}` checked: N within what the rate limit allows, 0 never, null the default."""
        unknown = {name: "unknown field" for name in body if name != "intervalS"}
        if unknown:
            raise ValidationFailed(unknown)
        if "intervalS" not in body:
            raise ValidationFailed({"intervalS": "required: seconds between checks, 0 (never) or null (the default)"})
        value = body["intervalS"]
        if value is None or (value == 0 and not isinstance(value, bool)):
            return None if value is None else 0
        low = math.ceil(self.policy.min_interval_s)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INTERVAL_S:
            raise ValidationFailed({"intervalS": f"must be 0, null or an integer from {low} to {MAX_INTERVAL_S}"})
        return value


def render_window(figures: WindowFigures) -> dict[str, Any]:
    return {
        "checks": figures.checks,
        "uptime": None if figures.uptime is None else round(figures.uptime, 4),
        "latencyP50Ms": _ms(figures.latency_p50_ms),
        "latencyP95Ms": _ms(figures.latency_p95_ms),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
