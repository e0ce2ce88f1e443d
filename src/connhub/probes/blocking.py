"""Blocking driver calls off the event loop: one bounded thread pool per engine.

Never asyncio's default executor: the loop's `getaddrinfo` (every name lookup, the network
guard's included) runs there, so calls stuck on silent servers would hold its few threads and
make every other tenant's probe of a host *name* time out (8 MySQL tests of a silent host did that
to a PostgreSQL test of `localhost`). Each engine's calls wait for that engine's threads only.

Pools are made on first use, not at import. A call runs in a copy of the caller's context (as
`asyncio.to_thread` does), so context variables set for a probe hold in its worker thread too.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from connhub.domain.engines import Engine

P = ParamSpec("P")
T = TypeVar("T")

# Threads per engine. A call the budget gave up on still runs until its driver's own timeout (at most
# the budget), so a pool is sized for a burst of silent servers; further calls queue for a thread.
THREADS_PER_ENGINE = 16

_pools: dict[Engine, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def pool_of(engine: Engine) -> ThreadPoolExecutor:
    """`engine`'s thread pool, made the first time it is asked for."""
    with _pools_lock:
        pool = _pools.get(engine)
        if pool is None:
            prefix = f"connhub-{engine.facts.probe_module}"
            pool = _pools[engine] = ThreadPoolExecutor(THREADS_PER_ENGINE, thread_name_prefix=prefix)
        return pool


async def run_blocking(engine: Engine, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(*args, **kwargs)` in a thread of `engine`'s pool; the loop only awaits it."""
    context = contextvars.copy_context()
    work = functools.partial(context.run, call, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool_of(engine), work)
