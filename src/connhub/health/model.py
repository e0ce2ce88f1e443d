"""What scheduled health is made of: states, the circuit breaker, one check's outcome, window figures.

Pure: no I/O. The scheduler feeds `assess` a claimed connection and its test report and stores
what comes out.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from connhub.domain.reports import TestReport

BREAKER_FAILURES = 3  # consecutive failures that open the breaker: checks then back off
FOREVER = datetime(9999, 12, 31)  # no check due (a connection whose own interval is 0)


class HealthState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"  # never checked (yet)


@dataclass(frozen=True)
class HealthPolicy:
    interval_s: float  # CONNHUB_HEALTH_INTERVAL_S
    min_interval_s: float  # what the test rate limit allows (60 / tests a minute)
    backoff_max_s: float = 3600.0
    jitter: float = 0.1  # each delay is stretched or shrunk by up to this fraction
    concurrency: int = 16
    lease_s: float = 60.0  # a claim not answered by then is another replica's to take
    cert_warn_days: int = 14
    retention_days: int = 30
    poll_s: float = 5.0  # how often new connections are enrolled, webhooks delivered, gauges refreshed
    # Claims take what falls due within this much from now, and an idle scheduler looks again this
    # often: due times are spread, so waiting a whole poll would leave most of them waiting.
    lookahead_s: float = 1.0

    def interval_for(self, own_interval_s: int | None) -> float:
        """The interval of a connection: its own if set, never shorter than the rate limit allows."""
        interval = self.interval_s if own_interval_s is None else own_interval_s
        return max(float(interval), self.min_interval_s)

    def delay_after(self, interval_s: float, consecutive_failures: int) -> float:
        """Seconds to the next check: the interval, doubled per failure past the breaker's threshold."""
        if consecutive_failures < BREAKER_FAILURES:
            return interval_s
        doubled = interval_s * 2.0 ** (consecutive_failures - BREAKER_FAILURES + 1)
        return max(interval_s, min(doubled, self.backoff_max_s))

    def jittered(self, seconds: float, rng: random.Random) -> timedelta:
        return timedelta(seconds=seconds * rng.uniform(1 - self.jitter, 1 + self.jitter))


@dataclass(frozen=True)
class Claim:
    """A due connection leased to this scheduler for one check."""

    connection_number: int
    connection_id: UUID
    tenant: str
    state: HealthState
    state_since: datetime
    consecutive_failures: int
    interval_s: int | None  # the connection's own interval, if set
    cert_warned_for: datetime | None


@dataclass(frozen=True)
class CheckResult:
    checked_at: datetime
    state: HealthState  # up or down
    category: str | None
    latency_ms: float
    server_version: str | None
    cert_expires_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    """What one check changes: the result kept, the new state, the next due time, alerts owed."""

    result: CheckResult
    state: HealthState
    state_since: datetime
    consecutive_failures: int
    next_check_at: datetime
    state_changed: bool
    cert_warning: bool  # the server's certificate expires within the warning window, not yet announced


def assess(claim: Claim, report: TestReport, now: datetime, policy: HealthPolicy, rng: random.Random) -> Outcome:
    state = HealthState.UP if report.ok else HealthState.DOWN
    failures = 0 if report.ok else claim.consecutive_failures + 1
    expires = report.tls.certificate_expires_at
    result = CheckResult(
        checked_at=now,
        state=state,
        category=report.error.category.value if report.error else None,
        latency_ms=report.latency_ms,
        server_version=report.server_version,
        cert_expires_at=expires,
    )
    delay = policy.delay_after(policy.interval_for(claim.interval_s), failures)
    warn_from = None if expires is None else expires - timedelta(days=policy.cert_warn_days)
    return Outcome(
        result=result,
        state=state,
        state_since=claim.state_since if state == claim.state else now,
        consecutive_failures=failures,
        next_check_at=now + policy.jittered(delay, rng),
        state_changed=state != claim.state,
        cert_warning=warn_from is not None and now >= warn_from and claim.cert_warned_for != expires,
    )


def alerts_on(claim: Claim, outcome: Outcome) -> bool:
    """Whether a state change is announced. A connection's first successful check is not (a fresh
    start would announce every connection); every other change is, unknown -> down included."""
    return outcome.state_changed and not (claim.state == HealthState.UNKNOWN and outcome.state == HealthState.UP)


# -- figures over a window ------------------------------------------------------------------


@dataclass(frozen=True)
class WindowFigures:
    checks: int
    uptime: float | None  # share of checks that succeeded; None without checks
    latency_p50_ms: float | None  # of successful checks (a failure's latency is how fast it failed)
    latency_p95_ms: float | None


def window_figures(results: Sequence[tuple[datetime, bool, float]], since: datetime) -> WindowFigures:
    """Figures of the (checked_at, succeeded, latency_ms) results at or after `since`."""
    inside = [(ok, latency) for at, ok, latency in results if at >= since]
    latencies = sorted(latency for ok, latency in inside if ok)
    return WindowFigures(
        checks=len(inside),
        uptime=sum(ok for ok, _ in inside) / len(inside) if inside else None,
        latency_p50_ms=_percentile(latencies, 0.50),
        latency_p95_ms=_percentile(latencies, 0.95),
    )


def _percentile(ordered: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: a latency some check really had."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * share // 1))  # ceil(n * share), at least the first
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class HealthView:
    """What `GET .../{id}/health` shows."""

    connection_id: UUID
    state: HealthState
    since: datetime | None
    last_checked_at: datetime | None
    next_check_at: datetime | None
    interval_s: float | None  # the effective interval; None while the scheduler is off
    own_interval_s: int | None
    consecutive_failures: int
    cert_expires_at: datetime | None
    last_day: WindowFigures
    last_week: WindowFigures
    results: list[CheckResult]

    @property
    def breaker_open(self) -> bool:
        return self.consecutive_failures >= BREAKER_FAILURES
