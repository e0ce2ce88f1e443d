"""The network guard: where a probe may connect.

A probe opens connections to hosts a user typed in, from inside our network. Before it does, the
host is resolved once and every address it resolves to is checked against the deny list (and the
allow list when one is set). The probe then connects to the checked address itself, so a second
resolution (DNS rebinding) cannot send it elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from connhub.domain.reports import ErrorCategory
from connhub.probes.base import ProbeFailure

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

# Link-local (where cloud metadata services live) and the metadata addresses of AWS (IPv6) and
# Alibaba Cloud. The same text is CONNHUB_PROBE_DENY_CIDRS' default.
DEFAULT_DENY_CIDRS = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32"


def parse_cidrs(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address means a single host); empty text is no networks."""
    networks: list[Network] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"invalid CIDR {entry!r}: expected e.g. 10.0.0.0/8 or fd00::/8") from None
    return tuple(networks)


def normalise(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it reaches."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_allowed(address: Address, deny: Sequence[Network], allow: Sequence[Network]) -> bool:
    """Not in any denied network and, when an allow list is set, in one of its networks."""
    address = normalise(address)
    if any(_contains(network, address) for network in deny):
        return False
    return not allow or any(_contains(network, address) for network in allow)


def _contains(network: Network, address: Address) -> bool:
    # `in` across IP versions is False, but be explicit: a v4 network never holds a v6 address.
    return network.version == address.version and address in network


async def resolve_checked(
    host: str, port: int, deny: Sequence[Network], allow: Sequence[Network], timeout: float
) -> str:
    """Resolve `host` once, check every address it resolves to, and return the one to connect to.

    Raises ProbeFailure: HOST_FORBIDDEN when any address is not allowed (a name that resolves to
    both a public and a metadata address is refused), DNS_FAILED when it does not resolve, and
    TIMEOUT when resolving takes longer than `timeout` seconds.
    """
    addresses = await _resolve(host, port, timeout)
    if not all(is_allowed(address, deny, allow) for address in addresses):
        raise ProbeFailure(
            ErrorCategory.HOST_FORBIDDEN,
            f"Connections to {host} are not allowed: it resolves to an address in a forbidden network range",
        )
    return str(addresses[0])


async def _resolve(host: str, port: int, timeout: float) -> list[Address]:
    literal = _ip_literal(host)
    if literal is not None:
        return [normalise(literal)]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except TimeoutError:
        message = f"Resolving {host} took longer than {timeout:g} s"
        raise ProbeFailure(ErrorCategory.TIMEOUT, message) from None
    except (OSError, UnicodeError):
        # socket.gaierror (an OSError) for unknown names; UnicodeError for names IDNA rejects.
        raise ProbeFailure(ErrorCategory.DNS_FAILED, f"Could not resolve host {host}") from None
    addresses = _unique(normalise(ipaddress.ip_address(_strip_scope(str(info[4][0])))) for info in infos)
    if not addresses:
        raise ProbeFailure(ErrorCategory.DNS_FAILED, f"Host {host} resolves to no address")
    return addresses


def _ip_literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _strip_scope(text: str) -> str:
    # getaddrinfo may return "fe80::1%eth0"; the zone does not change which network it is in.
    return text.split("%", 1)[0]


def _unique(addresses: Iterable[Address]) -> list[Address]:
    return list(dict.fromkeys(addresses))
