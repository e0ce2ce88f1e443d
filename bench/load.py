"""A closed-loop load generator: `concurrency` clients, each sending its next request once the last answered.

A call returns None when the answer was the expected one, or a short label of what went wrong
(`HTTP 503`, `ServerDisconnectedError`). Latency is measured around the whole call, body read included.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

Call = Callable[[int], Awaitable[str | None]]  # sequence number -> None (ok) or an error label


class LoadError(RuntimeError):
    """The load could not be driven (too many failures): the benchmark machinery failed."""


@dataclass
class Tally:
    """What one measurement saw, from the end of the warm-up on."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    window_start: float = 0.0
    window_end: float = 0.0

    def record(self, outcome: str | None, latency_ms: float, ended: float) -> None:
        if outcome is None:
            self.latencies_ms.append(latency_ms)
        else:
            self.errors[outcome] += 1
        self.window_end = max(self.window_end, ended)

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def elapsed_s(self) -> float:
        return max(self.window_end - self.window_start, 1e-9)


@dataclass(frozen=True)
class Figures:
    """One measurement's summary, as it goes to the table and the JSON file."""

    name: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    error_kinds: dict[str, int]
    server_cpu_pct: float = 0.0  # of one core: 200 = both cores of a 2-core machine
    server_cpu_ms: float = 0.0  # server CPU time per answered request
    store_cpu_pct: float = 0.0  # the PostgreSQL server's processes (SQLite runs inside the server)
    client_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0  # every other process on the machine: noise in the figures


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarize(name: str, tally: Tally) -> Figures:
    ordered = sorted(tally.latencies_ms)
    return Figures(
        name=name,
        requests=tally.ok + tally.failed,
        errors=tally.failed,
        seconds=round(tally.elapsed_s, 3),
        rps=round(tally.ok / tally.elapsed_s, 1),
        p50_ms=round(percentile(ordered, 0.50), 2),
        p90_ms=round(percentile(ordered, 0.90), 2),
        p99_ms=round(percentile(ordered, 0.99), 2),
        max_ms=round(ordered[-1], 2) if ordered else 0.0,
        error_kinds=dict(tally.errors),
    )


async def closed_loop(
    call: Call,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    max_requests: int | None = None,
) -> Tally:
    """Run `call` from `concurrency` clients for warm-up + `duration_s` (or until `max_requests`)."""
    sequence = itertools.count()
    tally = Tally()
    started = time.perf_counter()
    tally.window_start = tally.window_end = started + warmup_s
    deadline = tally.window_start + duration_s
    error_budget = _error_budget(max_requests)

    def going() -> bool:
        # Past the deadline only while nothing has been measured yet: a request slower than the
        # whole window (a saturated machine, a quick run) must still yield a figure, not none.
        in_time = time.perf_counter() < deadline or tally.ok + tally.failed == 0
        return in_time and tally.failed <= error_budget

    async def client() -> None:
        while going():
            number = next(sequence)
            if max_requests is not None and number >= max_requests:
                return
            began = time.perf_counter()
            outcome = await _attempt(call, number)
            ended = time.perf_counter()
            if began >= tally.window_start:
                tally.record(outcome, (ended - began) * 1000, ended)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    if tally.failed > error_budget:
        raise LoadError(f"too many failed requests: {dict(tally.errors.most_common(3))}")
    return tally


def _error_budget(max_requests: int | None) -> int:
    """Failures tolerated before the load is abandoned: the figures would mean nothing past it."""
    return 1000 if max_requests is None else max(100, max_requests // 20)


async def _attempt(call: Call, number: int) -> str | None:
    try:
        return await call(number)
    except (aiohttp.ClientError, TimeoutError) as error:
        return type(error).__name__
