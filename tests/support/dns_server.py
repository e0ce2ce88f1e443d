"""A tiny DNS server on 127.0.0.1, for tests that resolve host names without asking anyone else.

It answers A and AAAA questions from a dict of name -> addresses and NXDOMAIN for any name it does
not know (a known name without an address of the asked family gets an empty NOERROR answer). Point
the guard at it with `ProbePolicy(dns_servers=(dns.address,))` or
`CONNHUB_PROBE_DNS_SERVERS=<dns.setting>`:

    async with LoopbackDnsServer({"pg.connhub.test": ["127.0.0.1"]}) as dns:
        ...
        assert dns.queries == [("pg.connhub.test", "A"), ("pg.connhub.test", "AAAA")]  # in any order

`rebind_to` plays a DNS rebinding attacker: a name is answered from `records` the first time each
record type is asked, and from `rebind_to` ever after. `silent=True` never answers (a resolver that
times out); `rcode=dns.rcode.REFUSED` (or SERVFAIL) answers every question with that error. UDP
only; built on dnspython's message API.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping
from types import TracebackType

import dns.exception
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HOST = "127.0.0.1"
TTL = 60


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class LoopbackDnsServer(asyncio.DatagramProtocol):
    def __init__(
        self,
        records: Mapping[str, Iterable[str]] | None = None,
        *,
        rebind_to: Mapping[str, Iterable[str]] | None = None,
        silent: bool = False,
        rcode: dns.rcode.Rcode | None = None,
    ) -> None:
        self.records = {_key(name): list(addresses) for name, addresses in (records or {}).items()}
        self.rebind_to = {_key(name): list(addresses) for name, addresses in (rebind_to or {}).items()}
        self.silent = silent
        self.rcode = rcode
        self.queries: list[tuple[str, str]] = []  # (name without the final dot, record type) as they came
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def address(self) -> tuple[str, int]:
        """For `ProbePolicy.dns_servers`."""
        return HOST, self.port

    @property
    def setting(self) -> str:
        """For CONNHUB_PROBE_DNS_SERVERS."""
        return f"{HOST}:{self.port}"

    async def __aenter__(self) -> LoopbackDnsServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(HOST, 0))
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not DNS: a real server would drop it too
        if not query.question:
            return
        question = query.question[0]
        name = _key(question.name.to_text())
        self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
        if self.silent or self._transport is None:
            return
        response = dns.message.make_response(query)
        addresses = self._answer(name, question.rdtype)
        if self.rcode is not None:
            response.set_rcode(self.rcode)
        elif addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif addresses:
            response.answer.append(
                dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN, question.rdtype, addresses)
            )
        self._transport.sendto(response.to_wire(), addr)

    def _answer(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[str] | None:
        """The addresses of the asked family; None when the name is unknown (NXDOMAIN)."""
        if name not in self.records:
            return None
        asked_before = self.queries[:-1].count((name, dns.rdatatype.to_text(rdtype))) > 0
        addresses = self.rebind_to.get(name, self.records[name]) if asked_before else self.records[name]
        version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(rdtype)
        return [address for address in addresses if ipaddress.ip_address(address).version == version]

    def queries_for(self, name: str) -> list[str]:
        """The record types asked for `name`, in the order they came."""
        return [rdtype for asked, rdtype in self.queries if asked == _key(name)]
