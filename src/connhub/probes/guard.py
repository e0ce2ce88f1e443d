"""The network guard: where a probe may connect.

A probe opens connections to hosts a user typed in, from inside our network. Before it does, the
host is resolved once and every address it resolves to is checked against the deny list (and the
allow list when one is set). The probe then connects to the checked address itself, so a second
resolution (DNS rebinding) cannot send it elsewhere.

Names are resolved by the system resolver (getaddrinfo: /etc/hosts, then the machine's DNS) unless
DNS servers are configured (CONNHUB_PROBE_DNS_SERVERS): then A and AAAA records are asked of exactly
those servers and nothing else, not even /etc/hosts. IP literals are never resolved, nor are the
shorthand IPv4 forms the C library reads as numbers (`0`, `0x7f.1`).

An address is judged as written and as where the kernel sends it: an IPv4-mapped IPv6 address
reaches its IPv4 address, and the unspecified addresses (0.0.0.0/8, ::, ::ffff:0.0.0.0/104)
reach this machine, so they count as loopback and are denied whenever loopback is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from connhub.domain.reports import ErrorCategory
from connhub.probes.base import ProbeFailure

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
DnsServer = tuple[str, int]  # (IP address, UDP/TCP port)

DNS_PORT = 53

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


def parse_dns_servers(text: str) -> tuple[DnsServer, ...]:
    """Comma-separated DNS server addresses, each optionally with a port: `10.0.0.53`,
    `10.0.0.53:5353`, `fd00::53`, `[fd00::53]:5353`. Empty text is none (the system resolver)."""
    return tuple(_dns_server(entry) for entry in (part.strip() for part in text.split(",")) if entry)


def _dns_server(entry: str) -> DnsServer:
    host, port = entry, str(DNS_PORT)
    if entry.startswith("["):  # [v6] or [v6]:port
        host, closed, rest = entry[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            host = ""
        port = rest[1:] if rest else port
    elif entry.count(":") == 1:  # v4:port (a bare v6 address has two colons or more)
        host, port = entry.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(
            f"invalid DNS server {entry!r}: expected an IP address with an optional port, "
            "e.g. 10.0.0.53, 10.0.0.53:5353, fd00::53 or [fd00::53]:5353"
        )
    return str(address), int(port)


# The unspecified addresses: a connection to one of them goes to this machine (Linux sends
# 0.0.0.0/8 and :: to loopback), so they are judged as the loopback address they reach.
_UNSPECIFIED_V4 = IPv4Network("0.0.0.0/8")
_LOOPBACK_V4 = IPv4Address("127.0.0.1")
_LOOPBACK_V6 = IPv6Address("::1")


def normalise(address: Address) -> Address:
    """Where a connection to `address` really goes: an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
    reaches the IPv4 address, an unspecified address (0.0.0.0/8, ::, ::ffff:0.0.0.0/104) reaches
    loopback."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, IPv4Address) and address in _UNSPECIFIED_V4:
        return _LOOPBACK_V4
    if isinstance(address, IPv6Address) and address.is_unspecified:
        return _LOOPBACK_V6
    return address


def destination_of(literal: str) -> str:
    """The address a connection to the IP literal `literal` reaches, as text (see `normalise`);
    a zone (fe80::1%eth0) does not change it."""
    return str(normalise(ipaddress.ip_address(_strip_scope(literal).removeprefix("[").removesuffix("]"))))


def is_allowed(address: Address, deny: Sequence[Network], allow: Sequence[Network]) -> bool:
    """Neither as written nor where the kernel sends it (see `normalise`) in a denied network
    and, when an allow list is set, reaching an address in one of its networks."""
    reached = normalise(address)
    if any(_contains(network, candidate) for network in deny for candidate in (address, reached)):
        return False
    return not allow or any(_contains(network, reached) for network in allow)


def _contains(network: Network, address: Address) -> bool:
    # `in` across IP versions is False, but be explicit: a v4 network never holds a v6 address.
    return network.version == address.version and address in network


async def resolve_checked(
    host: str,
    port: int,
    deny: Sequence[Network],
    allow: Sequence[Network],
    timeout: float,
    *,
    dns_servers: Sequence[DnsServer] = (),
) -> str:
    """Resolve `host` once, check every address it resolves to, and return the one to connect to.

    `dns_servers`, when given, are the only DNS servers asked (A and AAAA); otherwise the system
    resolver is. Raises ProbeFailure: HOST_FORBIDDEN when any address is not allowed (a name that
    resolves to both a public and a metadata address is refused), DNS_FAILED when it does not
    resolve, and TIMEOUT when resolving takes longer than `timeout` seconds.
    """
    literal = ip_literal(host)
    if literal is not None:
        addresses = [literal]
    elif dns_servers:
        addresses = await _resolve_with(dns_servers, host, timeout)
    else:
        addresses = await _resolve(host, port, timeout)
    if not all(is_allowed(address, deny, allow) for address in addresses):
        raise ProbeFailure(
            ErrorCategory.HOST_FORBIDDEN,
            f"Connections to {host} are not allowed: it resolves to an address in a forbidden network range",
        )
    return str(normalise(addresses[0]))


async def _resolve(host: str, port: int, timeout: float) -> list[Address]:
    """The system resolver (getaddrinfo), as every client library would ask it."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except TimeoutError:
        raise _timed_out(host, timeout) from None
    except (OSError, UnicodeError):
        # socket.gaierror (an OSError) for unknown names; UnicodeError for names IDNA rejects.
        raise ProbeFailure(ErrorCategory.DNS_FAILED, f"Could not resolve host {host}") from None
    addresses = _unique(ipaddress.ip_address(_strip_scope(str(info[4][0]))) for info in infos)
    if not addresses:
        raise ProbeFailure(ErrorCategory.DNS_FAILED, f"Host {host} resolves to no address")
    return addresses


async def _resolve_with(servers: Sequence[DnsServer], host: str, timeout: float) -> list[Address]:
    """A and AAAA records of `host`, asked of `servers` only (in order, the next when one fails).

    Both queries run at once and both must succeed: a name is resolved completely or not at all.
    IPv4 addresses come first. No search domains, no cache, no /etc/hosts.
    """
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in servers]
    resolver.lifetime = timeout  # dnspython's own bound; asyncio.timeout below is the hard one

    async def query(rdtype: dns.rdatatype.RdataType) -> dns.resolver.Answer:
        return await resolver.resolve(host, rdtype, raise_on_no_answer=False, search=False)

    try:
        async with asyncio.timeout(timeout):
            answers = await asyncio.gather(query(dns.rdatatype.A), query(dns.rdatatype.AAAA), return_exceptions=True)
    except TimeoutError:
        raise _timed_out(host, timeout) from None
    errors = [answer for answer in answers if isinstance(answer, BaseException)]
    if any(isinstance(error, dns.resolver.NXDOMAIN) for error in errors):
        raise ProbeFailure(ErrorCategory.DNS_FAILED, f"Could not resolve host {host}")
    if any(isinstance(error, dns.exception.Timeout) for error in errors):
        raise _timed_out(host, timeout)
    for error in errors:
        # NoNameservers (every server failed or refused), names dnspython rejects (too long, bad
        # IDNA), a server that cannot be reached: the name did not resolve.
        if isinstance(error, dns.exception.DNSException | OSError | UnicodeError | ValueError):
            raise ProbeFailure(ErrorCategory.DNS_FAILED, f"Could not resolve host {host}") from None
        raise error
    addresses = _unique(
        ipaddress.ip_address(record.to_text())
        for answer in answers
        if isinstance(answer, dns.resolver.Answer) and answer.rrset is not None
        for record in answer.rrset
    )
    if not addresses:
        raise ProbeFailure(ErrorCategory.DNS_FAILED, f"Host {host} resolves to no address")
    return addresses


def _timed_out(host: str, timeout: float) -> ProbeFailure:
    return ProbeFailure(ErrorCategory.TIMEOUT, f"Resolving {host} took longer than {timeout:g} s")


_INET_ATON_FORM = re.compile(r"^[0-9A-Fa-fXx.]+$")


def ip_literal(host: str) -> Address | None:
    """The address `host` is as an IP literal, including the shorthand IPv4 forms the C library
    reads as numbers before any DNS (inet_aton: `0`, `0x0`, `0.0`, `127.1`, `0177.0.0.1`)."""
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        pass
    if not _INET_ATON_FORM.match(host):
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _strip_scope(text: str) -> str:
    # getaddrinfo may return "fe80::1%eth0"; the zone does not change which network it is in.
    return text.split("%", 1)[0]


def _unique(addresses: Iterable[Address]) -> list[Address]:
    return list(dict.fromkeys(addresses))
