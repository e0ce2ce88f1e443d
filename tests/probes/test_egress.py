"""The egress confinement (probes/egress.py): while a probe runs, its code reaches the checked
address only, in its task, the tasks it starts and the threads it hands its context to; code
outside it is free. Everything here stays on loopback: 127.0.0.2 is the place never reached."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading

import pytest

from connhub.probes import egress
from tests.support.listeners import SilentListener

ELSEWHERE = "127.0.0.2"


async def test_a_confined_task_reaches_the_checked_address_and_nothing_else() -> None:
    async with SilentListener() as checked, SilentListener(host=ELSEWHERE) as elsewhere:
        with egress.confined("127.0.0.1") as hops:
            _, writer = await asyncio.open_connection("127.0.0.1", checked.port)
            writer.close()
            with pytest.raises(egress.ConnectionOutsideGuard) as caught:
                await asyncio.open_connection(ELSEWHERE, elsewhere.port)
            with pytest.raises(egress.ConnectionOutsideGuard):
                await asyncio.get_running_loop().sock_connect(socket.socket(), (ELSEWHERE, elsewhere.port))
        await asyncio.sleep(0.05)

    assert caught.value.destination == f"{ELSEWHERE}:{elsewhere.port}"
    assert hops.refused == [f"{ELSEWHERE}:{elsewhere.port}"] * 2
    assert checked.accepted == 1 and elsewhere.accepted == 0


async def test_tasks_started_while_confined_stay_confined_and_others_do_not() -> None:
    async with SilentListener(host=ELSEWHERE) as elsewhere:

        async def reach() -> bool:
            try:
                _, writer = await asyncio.open_connection(ELSEWHERE, elsewhere.port)
            except egress.ConnectionOutsideGuard:
                return False
            writer.close()
            return True

        with egress.confined("127.0.0.1"):
            started_inside = asyncio.ensure_future(reach())
        started_outside = asyncio.ensure_future(reach())
        results = await asyncio.gather(started_inside, started_outside)
        await asyncio.sleep(0.05)

    assert results == [False, True]
    assert elsewhere.accepted == 1  # the one from outside


def test_a_thread_given_the_context_is_confined_while_other_threads_are_not() -> None:
    outcomes: dict[str, BaseException | None] = {}

    def lookup(name: str) -> None:
        try:
            socket.getaddrinfo("localhost", 1)
            outcomes[name] = None
        except BaseException as exc:
            outcomes[name] = exc

    with egress.confined("127.0.0.1") as hops:
        confined = threading.Thread(target=contextvars.copy_context().run, args=(lookup, "confined"))
        free = threading.Thread(target=lookup, args=("free",))
        for thread in (confined, free):
            thread.start()
            thread.join()
        socket.getaddrinfo("127.0.0.1", 1)  # the checked address itself may be looked up

    assert isinstance(outcomes["confined"], egress.ConnectionOutsideGuard)
    assert outcomes["free"] is None
    assert hops.refused == ["localhost:1"]
    socket.getaddrinfo("localhost", 1)  # released


@pytest.mark.parametrize("checked", ["0.0.0.0", "::ffff:127.0.0.1"])
def test_the_checked_address_is_compared_where_the_kernel_sends_it(checked: str) -> None:
    with egress.confined(checked), socket.socket() as sock:
        sock.settimeout(1)
        with pytest.raises(OSError):  # allowed through the hook: refused by the closed port
            sock.connect(("127.0.0.1", 1))
