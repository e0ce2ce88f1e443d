"""The pure parts of scheduled health: the breaker's delays, window figures, which changes alert, signatures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from connhub.domain.reports import ErrorCategory, TestReport, TlsInfo, failure_report
from connhub.health.model import Claim, HealthPolicy, HealthState, alerts_on, assess, window_figures
from connhub.health.webhook import retry_delay, signature, verify

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
POLICY = HealthPolicy(interval_s=60, min_interval_s=6, backoff_max_s=600, jitter=0.0)


def claim(state: HealthState = HealthState.UP, failures: int = 0, warned: datetime | None = None) -> Claim:
    return Claim(1, uuid4(), "acme", state, NOW - timedelta(hours=1), failures, None, warned)


def test_the_breaker_doubles_from_the_third_failure_up_to_the_cap() -> None:
    delays = [POLICY.delay_after(60, failures) for failures in range(7)]
    assert delays == [60, 60, 60, 120, 240, 480, 600]


def test_an_interval_never_goes_below_what_the_rate_limit_allows() -> None:
    assert POLICY.interval_for(1) == 6
    assert POLICY.interval_for(None) == 60
    assert POLICY.interval_for(3600) == 3600


def test_a_failure_after_success_changes_state_and_alerts_a_first_success_does_not() -> None:
    down = assess(claim(), failure_report(ErrorCategory.AUTH_FAILED, "no"), NOW, POLICY, random.Random(1))
    assert down.state == HealthState.DOWN and down.state_since == NOW and down.consecutive_failures == 1
    assert alerts_on(claim(), down)
    up = TestReport("success", 3.0, "ok")
    first = assess(claim(HealthState.UNKNOWN), up, NOW, POLICY, random.Random(1))
    assert first.state_changed and not alerts_on(claim(HealthState.UNKNOWN), first)
    same = assess(claim(), up, NOW, POLICY, random.Random(1))
    assert not same.state_changed and same.state_since == NOW - timedelta(hours=1)


def test_a_certificate_inside_the_warning_window_is_announced_once() -> None:
    expires = NOW + timedelta(days=3)
    report = TestReport("success", 3.0, "ok", tls=TlsInfo(True, certificate_expires_at=expires))
    assert assess(claim(), report, NOW, POLICY, random.Random(1)).cert_warning
    assert not assess(claim(warned=expires), report, NOW, POLICY, random.Random(1)).cert_warning
    later = TestReport("success", 3.0, "ok", tls=TlsInfo(True, certificate_expires_at=NOW + timedelta(days=90)))
    assert not assess(claim(), later, NOW, POLICY, random.Random(1)).cert_warning


def test_window_figures_are_uptime_and_nearest_rank_latency_of_successes() -> None:
    results = [(NOW - timedelta(minutes=n), n % 4 != 0, float(n)) for n in range(1, 101)]
    results.append((NOW - timedelta(days=2), True, 999.0))  # outside the day
    day = window_figures(results, NOW - timedelta(days=1))
    assert day.checks == 100 and day.uptime == 0.75
    successes = sorted(float(n) for n in range(1, 101) if n % 4 != 0)  # 75: ranks ceil(37.5), ceil(71.25)
    assert day.latency_p50_ms == successes[38 - 1] and day.latency_p95_ms == successes[72 - 1]
    empty = window_figures([], NOW)
    assert (empty.checks, empty.uptime, empty.latency_p50_ms) == (0, None, None)


def test_signatures_verify_and_a_changed_body_does_not() -> None:
    header = signature("s3cret", 1764756000, b'{"a":1}')
    assert header.startswith("t=1764756000,v1=")
    assert verify("s3cret", header, b'{"a":1}') == 1764756000
    assert verify("s3cret", header, b'{"a":2}') is None
    assert verify("other", header, b'{"a":1}') is None


def test_webhook_retries_back_off_to_an_hour() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert retry_delay(20) == 3600
