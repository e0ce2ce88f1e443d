"""Turns: one holder per key at a time, and nothing kept once a key is free."""

from __future__ import annotations

import asyncio

from connhub.turns import Turns


async def test_one_holder_per_key_and_other_keys_run_meanwhile() -> None:
    turns = Turns()
    held: list[str] = []
    overlap: list[bool] = []

    async def hold(key: str, name: str) -> None:
        async with turns.turn(key):
            overlap.append(any(h.startswith(key) for h in held))
            held.append(f"{key}:{name}")
            await asyncio.sleep(0.01)
            held.remove(f"{key}:{name}")

    await asyncio.gather(*(hold("a", str(n)) for n in range(4)), hold("b", "0"))
    assert overlap.count(True) == 0
    assert len(turns) == 0


async def test_a_holder_that_fails_frees_its_key() -> None:
    turns = Turns()
    try:
        async with turns.turn("a"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert len(turns) == 0
    async with turns.turn("a"):
        assert len(turns) == 1
