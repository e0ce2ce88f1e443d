"""Calling one engine's probe directly, as the runner would after the guard checked the address."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from connhub.probes.base import ProbeContext, ProbeFailure


def context(timeout_s: float = 5.0, address: str = "127.0.0.1") -> ProbeContext:
    return ProbeContext(address=address, timeout_s=timeout_s)


async def failure_of(coroutine: Awaitable[Any], bound_s: float = 10.0) -> ProbeFailure:
    """The ProbeFailure `coroutine` raises, within `bound_s` (a hang fails the test)."""
    async with asyncio.timeout(bound_s):
        with pytest.raises(ProbeFailure) as caught:
            await coroutine
    return caught.value
