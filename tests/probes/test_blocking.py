"""Blocking drivers run on their engine's own threads, never on the loop's default executor.

The default executor is where asyncio resolves host names. When MySQL probes ran there, calls stuck
on a silent server held its threads and a healthy PostgreSQL probe of `localhost` reported TIMEOUT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from connhub.probes.base import ProbeTarget
from connhub.probes.blocking import THREADS_PER_ENGINE
from connhub.probes.runner import ProbeRunner
from tests.support.listeners import LOOPBACK, SilentListener

STUCK = THREADS_PER_ENGINE + 2  # every MySQL thread busy, two more calls waiting for one


async def test_a_saturated_mysql_pool_leaves_name_lookups_to_other_probes(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    mysql_runner = make_runner(timeout_s=20)  # longer than the PostgreSQL probe below may take
    async with SilentListener() as silent:
        stuck_target = ProbeTarget("MYSQL", LOOPBACK, silent.port, "test", "root", "")
        stuck = [asyncio.create_task(mysql_runner.test(stuck_target)) for _ in range(STUCK)]
        while silent.accepted < THREADS_PER_ENGINE:  # each thread is connected and waits for a greeting
            await asyncio.sleep(0.05)

        report = await make_runner(timeout_s=10).test(
            ProbeTarget("POSTGRESQL", "localhost", 5432, "test", "postgres", "not-checked-by-trust")
        )
        still_stuck = sum(not task.done() for task in stuck)

    assert report.ok, report.to_json()
    assert still_stuck == STUCK  # the MySQL pool was saturated all along
    # Closing the listener hung up on them: they end as failures, not hangs.
    ended = await asyncio.wait_for(asyncio.gather(*stuck), 60)
    assert not any(report.ok for report in ended)
