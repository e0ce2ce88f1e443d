"""Where a probe's driver may connect once the network guard has checked the target.

The guard checks one address before a probe starts. Drivers also open connections on their own:
a SQL Server's routing ENVCHANGE (Azure SQL's redirect, read-only routing), an Oracle listener's
REDIRECT, the members a MongoDB `hello` names, a failover partner. None of those were checked.
So while a probe runs, every connection its Python code opens must go to the checked address:
in the probe's task, in the tasks it starts (they copy its context) and in worker threads it hands
its context to (`asyncio.to_thread` does; `run_in_executor` needs `contextvars.copy_context`).
Anything else is refused before a packet leaves, and the attempt is recorded so the runner reports
HOST_FORBIDDEN rather than whatever the driver made of the refusal.

The check sits in a Python audit hook (PEP 578): it sees `socket.connect`, `sendto`, `sendmsg` and
the name lookups of the socket module, with their destinations, whatever library makes them.
Code in C that opens its own sockets is not seen: such a driver must not be able to hop at all
(libpq gets one `hostaddr` and no user options; FreeTDS, which follows routing by itself, is not
used). Another port of the checked address is allowed: the guard judges addresses, not ports, and
an Oracle listener hands clients to a dispatcher on its own host that way.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from connhub.probes.guard import destination_of

_DESTINATION_EVENTS = frozenset({"socket.connect", "socket.connect_ex", "socket.sendto", "socket.sendmsg"})
_LOOKUP_EVENTS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)


@dataclass
class Egress:
    """The one address a probe may reach, and the destinations its driver tried besides."""

    address: str  # the address the guard checked (as `destination_of` gives it)
    port: int | None = None  # when set, that port only (an SSH tunnel's local end on loopback)
    refused: list[str] = field(default_factory=list)


class ConnectionOutsideGuard(Exception):
    """The driver tried to reach a destination the network guard did not check.

    Not an OSError on purpose: socket.create_connection and asyncio would swallow it and try the
    next address; drivers that catch every Exception still fail, and `Egress.refused` says why.
    """

    def __init__(self, destination: str) -> None:
        super().__init__(destination)
        self.destination = destination


_current: ContextVar[Egress | None] = ContextVar("connhub_probe_egress", default=None)


@contextmanager
def confined(address: str, port: int | None = None) -> Iterator[Egress]:
    """While active (in this context and the contexts copied from it), connections may go to
    `address` only (and to `port` only, when given); yields the record of what else was tried."""
    _install()
    egress = Egress(destination_of(address), port)
    token = _current.set(egress)
    try:
        yield egress
    finally:
        _current.reset(token)


_installed = False


def _install() -> None:
    """Add the audit hook on first use (a hook cannot be removed: importing this module alone must
    not change the process)."""
    global _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _DESTINATION_EVENTS and event not in _LOOKUP_EVENTS:
        return
    egress = _current.get()
    if egress is None:
        return
    refused = _refused_destination(egress, event, args)
    if refused is not None:
        egress.refused.append(refused)
        raise ConnectionOutsideGuard(refused)


def _refused_destination(egress: Egress, event: str, args: tuple[Any, ...]) -> str | None:
    """What `event` would reach when that is not the checked address; None when it may go."""
    if event in _LOOKUP_EVENTS:
        # A name lookup of the checked address itself is harmless (drivers resolve the literal
        # they were given); any other name would lead somewhere the guard never saw.
        host = args[0] if args else None
        if host is None or _same_address(egress, host):
            return None
        port = args[1] if event == "socket.getaddrinfo" and len(args) > 1 and args[1] else None
        return f"{host}:{port}" if port is not None else str(host)
    address = args[1] if len(args) > 1 else None
    if address is None:  # sendmsg on a connected socket: the connect was judged
        return None
    if not isinstance(address, tuple) or not address:
        return str(address)  # a Unix socket path or a raw address: never a checked target
    host, port = address[0], address[1] if len(address) > 1 else None
    if _same_address(egress, host) and (egress.port is None or port == egress.port):
        return None
    return f"{host}:{port}" if port is not None else str(host)


def _same_address(egress: Egress, host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name: where it leads was not checked
    return destination_of(host) == egress.address
