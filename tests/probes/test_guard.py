"""The network guard decides where a probe may connect. Nothing here opens a connection: IP
literals need no DNS, the system resolver is only asked for `localhost` (the hosts file), and every
other name is resolved by a `LoopbackDnsServer` on 127.0.0.1, as CONNHUB_PROBE_DNS_SERVERS does."""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

import dns.rcode
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connhub.config import ConfigError, Settings, load_settings
from connhub.domain.reports import ErrorCategory
from connhub.probes.base import ProbeFailure, ProbeTarget
from connhub.probes.guard import DEFAULT_DENY_CIDRS, parse_cidrs, parse_dns_servers, resolve_checked
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.support.dns_server import LoopbackDnsServer
from tests.support.listeners import SilentListener

DEFAULT_DENY = parse_cidrs(DEFAULT_DENY_CIDRS)
LOOPBACK = parse_cidrs("127.0.0.0/8, ::1/128")


def test_the_default_deny_list_is_link_local_and_cloud_metadata() -> None:
    assert [str(network) for network in DEFAULT_DENY] == [
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
    ]


def test_cidr_lists_tolerate_whitespace_and_empty_entries() -> None:
    assert parse_cidrs(" 10.0.0.0/8 ,\t192.168.0.0/16,, fd00::/8 ") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert parse_cidrs("") == ()
    assert parse_cidrs(" , ") == ()


def test_a_bare_address_is_a_single_host() -> None:
    assert parse_cidrs("10.1.2.3") == (ipaddress.ip_network("10.1.2.3/32"),)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-a-network", "300.1.1.1/32", "fe80::/129"])
def test_a_bad_entry_is_rejected_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_cidrs(f"10.0.0.0/8,{bad}")


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",  # AWS, GCP, Azure metadata
        "::ffff:169.254.169.254",  # the same, as an IPv4-mapped IPv6 address
        "[::ffff:a9fe:a9fe]",  # and in hex, in brackets
        "fe80::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
    ],
)
async def test_metadata_and_link_local_addresses_are_forbidden(host: str) -> None:
    with pytest.raises(ProbeFailure) as failure:
        await resolve_checked(host, 80, DEFAULT_DENY, (), timeout=5)
    assert failure.value.category is ErrorCategory.HOST_FORBIDDEN


@given(st.integers(min_value=0, max_value=2**16 - 1))
async def test_every_link_local_address_is_forbidden_in_either_notation(offset: int) -> None:
    address = ipaddress.IPv4Address("169.254.0.0") + offset
    for host in (str(address), f"::ffff:{address}"):
        with pytest.raises(ProbeFailure) as failure:
            await resolve_checked(host, 5432, DEFAULT_DENY, (), timeout=5)
        assert failure.value.category is ErrorCategory.HOST_FORBIDDEN


async def test_an_allowed_literal_is_returned_as_the_address_to_connect_to() -> None:
    assert await resolve_checked("127.0.0.1", 5432, DEFAULT_DENY, (), timeout=5) == "127.0.0.1"
    assert await resolve_checked("::ffff:127.0.0.1", 5432, DEFAULT_DENY, (), timeout=5) == "127.0.0.1"


async def test_a_name_is_resolved_and_its_address_returned() -> None:
    assert await resolve_checked("localhost", 5432, DEFAULT_DENY, (), timeout=5) in ("127.0.0.1", "::1")


async def test_a_name_resolving_into_a_denied_range_is_forbidden() -> None:
    with pytest.raises(ProbeFailure) as failure:
        await resolve_checked("localhost", 5432, LOOPBACK, (), timeout=5)
    assert failure.value.category is ErrorCategory.HOST_FORBIDDEN
    assert "localhost" in failure.value.message


async def test_with_an_allow_list_only_its_ranges_are_reachable() -> None:
    allow_private = parse_cidrs("10.0.0.0/8")
    with pytest.raises(ProbeFailure) as failure:
        await resolve_checked("127.0.0.1", 5432, DEFAULT_DENY, allow_private, timeout=5)
    assert failure.value.category is ErrorCategory.HOST_FORBIDDEN
    assert await resolve_checked("127.0.0.1", 5432, DEFAULT_DENY, LOOPBACK, timeout=5) == "127.0.0.1"


async def test_deny_wins_over_allow() -> None:
    with pytest.raises(ProbeFailure) as failure:
        await resolve_checked("169.254.169.254", 80, DEFAULT_DENY, parse_cidrs("0.0.0.0/0"), timeout=5)
    assert failure.value.category is ErrorCategory.HOST_FORBIDDEN


# --- configured DNS servers (CONNHUB_PROBE_DNS_SERVERS) ----------------------------------------


async def failure_of(
    host: str, dns: LoopbackDnsServer, deny: str = DEFAULT_DENY_CIDRS, timeout: float = 5
) -> ProbeFailure:
    with pytest.raises(ProbeFailure) as failure:
        await resolve_checked(host, 5432, parse_cidrs(deny), (), timeout, dns_servers=(dns.address,))
    return failure.value


async def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    async with LoopbackDnsServer({"db.connhub.test": ["127.0.0.1"]}) as dns:
        failure = await failure_of("nonexistent.invalid", dns)

    assert failure.category is ErrorCategory.DNS_FAILED
    assert "nonexistent.invalid" in failure.message
    assert sorted(dns.queries_for("nonexistent.invalid")) == ["A", "AAAA"]  # NXDOMAIN came from our server


async def test_a_name_is_asked_once_for_a_and_aaaa_and_ipv4_comes_first() -> None:
    async with LoopbackDnsServer({"db.connhub.test": ["::1", "127.0.0.1"]}) as dns:
        address = await resolve_checked("db.connhub.test", 5432, DEFAULT_DENY, (), 5, dns_servers=(dns.address,))

    assert address == "127.0.0.1"
    assert sorted(dns.queries) == [("db.connhub.test", "A"), ("db.connhub.test", "AAAA")]


async def test_names_are_case_insensitive_and_may_end_with_a_dot() -> None:
    async with LoopbackDnsServer({"db.connhub.test": ["127.0.0.1"]}) as dns:
        address = await resolve_checked("DB.Connhub.Test.", 5432, DEFAULT_DENY, (), 5, dns_servers=(dns.address,))
    assert address == "127.0.0.1"


async def test_an_ipv6_only_name_gives_its_ipv6_address() -> None:
    async with LoopbackDnsServer({"v6.connhub.test": ["::1"]}) as dns:
        assert await resolve_checked("v6.connhub.test", 5432, DEFAULT_DENY, (), 5, dns_servers=(dns.address,)) == "::1"


async def test_a_name_without_any_address_is_a_dns_failure() -> None:
    async with LoopbackDnsServer({"mail-only.connhub.test": []}) as dns:  # NOERROR, no A, no AAAA
        failure = await failure_of("mail-only.connhub.test", dns)
    assert failure.category is ErrorCategory.DNS_FAILED
    assert "resolves to no address" in failure.message


@pytest.mark.parametrize(
    ("addresses", "deny"),
    [
        (["127.0.0.1", "127.0.0.2"], "127.0.0.2/32"),  # the first address is fine, the second is not
        (["127.0.0.1", "169.254.169.254"], DEFAULT_DENY_CIDRS),  # cloud metadata behind a public name
        (["127.0.0.1", "fe80::1"], DEFAULT_DENY_CIDRS),  # a link-local AAAA next to a fine A
        (["127.0.0.1", "::ffff:169.254.169.254"], DEFAULT_DENY_CIDRS),  # metadata as an IPv4-mapped AAAA
    ],
)
async def test_every_address_of_a_name_is_checked(addresses: list[str], deny: str) -> None:
    async with LoopbackDnsServer({"mixed.connhub.test": addresses}) as dns:
        failure = await failure_of("mixed.connhub.test", dns, deny=deny)
    assert failure.category is ErrorCategory.HOST_FORBIDDEN
    assert "mixed.connhub.test" in failure.message


async def test_with_dns_servers_set_the_system_resolver_is_never_asked() -> None:
    # `localhost` is in /etc/hosts, which getaddrinfo reads; the configured server does not know it.
    async with LoopbackDnsServer() as dns:
        failure = await failure_of("localhost", dns)
    assert failure.category is ErrorCategory.DNS_FAILED
    assert sorted(dns.queries_for("localhost")) == ["A", "AAAA"]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1"])
async def test_ip_literals_are_never_sent_to_the_dns_servers(host: str) -> None:
    async with LoopbackDnsServer() as dns:
        address = await resolve_checked(host, 5432, DEFAULT_DENY, (), 5, dns_servers=(dns.address,))
    assert address in ("127.0.0.1", "::1")
    assert dns.queries == []


async def test_a_dns_server_that_never_answers_is_a_timeout_within_the_bound() -> None:
    async with LoopbackDnsServer({"db.connhub.test": ["127.0.0.1"]}, silent=True) as dns:
        started = time.monotonic()
        failure = await failure_of("db.connhub.test", dns, timeout=0.5)
        elapsed = time.monotonic() - started

    assert failure.category is ErrorCategory.TIMEOUT
    assert "0.5 s" in failure.message
    assert 0.4 < elapsed < 2
    assert dns.queries  # it was asked


async def test_servers_are_asked_in_order_until_one_answers() -> None:
    records = {"db.connhub.test": ["127.0.0.1"]}
    async with LoopbackDnsServer(records, rcode=dns.rcode.REFUSED) as refusing, LoopbackDnsServer(records) as good:
        servers = (refusing.address, good.address)
        address = await resolve_checked("db.connhub.test", 5432, DEFAULT_DENY, (), 5, dns_servers=servers)

    assert address == "127.0.0.1"
    assert refusing.queries and good.queries


@pytest.mark.parametrize("rcode", [dns.rcode.REFUSED, dns.rcode.SERVFAIL])
async def test_when_no_server_gives_an_answer_the_name_does_not_resolve(rcode: dns.rcode.Rcode) -> None:
    async with LoopbackDnsServer({"db.connhub.test": ["127.0.0.1"]}, rcode=rcode) as server:
        failure = await failure_of("db.connhub.test", server)
    assert failure.category is ErrorCategory.DNS_FAILED


@pytest.mark.parametrize("host", ["a" * 64 + ".connhub.test", "a..connhub.test"])
async def test_a_name_dns_cannot_carry_is_a_dns_failure_without_a_query(host: str) -> None:
    async with LoopbackDnsServer() as server:
        failure = await failure_of(host, server)
    assert failure.category is ErrorCategory.DNS_FAILED
    assert server.queries == []


# --- the setting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        ("", ()),
        (" , ", ()),
        ("10.0.0.53", (("10.0.0.53", 53),)),
        ("10.0.0.53:5353", (("10.0.0.53", 5353),)),
        ("fd00::53", (("fd00::53", 53),)),
        ("[fd00::53]", (("fd00::53", 53),)),
        ("[FD00:0::53]:5353", (("fd00::53", 5353),)),
        (" 127.0.0.1:1053 ,\t::1 ", (("127.0.0.1", 1053), ("::1", 53))),
    ],
)
def test_dns_servers_are_ip_addresses_with_an_optional_port(text: str, servers: tuple[tuple[str, int], ...]) -> None:
    assert parse_dns_servers(text) == servers


@pytest.mark.parametrize(
    "bad",
    ["dns.google", "10.0.0.53:0", "10.0.0.53:65536", "10.0.0.53:", "10.0.0.53:dns", "[fd00::53", "[fd00::53]53",
     "fd00::53:5353x", "300.1.1.1", "10.0.0.53:\uff15\uff13"],
)  # fmt: skip
def test_a_bad_dns_server_is_rejected_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_dns_servers(f"127.0.0.1,{bad}")


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().probe_dns_servers == ""
    monkeypatch.setenv("CONNHUB_PROBE_DNS_SERVERS", "127.0.0.1:1053")
    assert Settings().probe_dns_servers == "127.0.0.1:1053"


def test_a_bad_setting_stops_the_app_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^CONNHUB_PROBE_DNS_SERVERS: invalid DNS server 'dns.google'"):
        load_settings(
            database_url=f"sqlite:///{tmp_path / 'connhub.db'}", data_dir=tmp_path, probe_dns_servers="dns.google"
        )



# --- the unspecified addresses: the kernel sends them to loopback -------------------------------

UNSPECIFIED_V4 = ["0.0.0.0", "0", "0x0", "0.0", "0.0.0.1", "::ffff:0.0.0.0", "[::ffff:0.0.0.0]"]
UNSPECIFIED_V6 = ["::", "[::]", "0:0:0:0:0:0:0:0"]


@pytest.mark.parametrize("host", UNSPECIFIED_V4 + UNSPECIFIED_V6)
async def test_the_unspecified_addresses_are_loopback_when_loopback_is_denied(host: str) -> None:
    with pytest.raises(ProbeFailure) as failure:
        await resolve_checked(host, 5432, LOOPBACK, (), timeout=5)
    assert failure.value.category is ErrorCategory.HOST_FORBIDDEN


@pytest.mark.parametrize(("host", "reached"), [("0.0.0.0", "127.0.0.1"), ("0", "127.0.0.1"), ("::", "::1")])
async def test_an_unspecified_address_is_connected_as_the_loopback_it_reaches(host: str, reached: str) -> None:
    assert await resolve_checked(host, 5432, DEFAULT_DENY, (), timeout=5) == reached


async def test_a_name_resolving_to_an_unspecified_address_is_loopback() -> None:
    async with LoopbackDnsServer({"zero.connhub.test": ["0.0.0.0"], "zero6.connhub.test": ["::"]}) as dns:
        for name in ("zero.connhub.test", "zero6.connhub.test"):
            with pytest.raises(ProbeFailure) as failure:
                await resolve_checked(name, 5432, LOOPBACK, (), 5, dns_servers=(dns.address,))
            assert failure.value.category is ErrorCategory.HOST_FORBIDDEN


@pytest.mark.parametrize("host", UNSPECIFIED_V4 + UNSPECIFIED_V6)
async def test_with_loopback_denied_no_unspecified_address_reaches_a_loopback_listener(host: str) -> None:
    # Through the runner, as a test of a saved connection: listeners on 127.0.0.1 and ::1 on the
    # port the connection names see no connection.
    async with SilentListener() as v4, SilentListener(host="::1") as v6:
        v6_host = host in UNSPECIFIED_V6
        port = v6.port if v6_host else v4.port
        runner = ProbeRunner(ProbePolicy(timeout_s=5, deny=LOOPBACK))
        target = ProbeTarget(engine="MYSQL", host=host, port=port, database="d", user="u", password="p")
        report = await runner.test(target)

    assert report.error is not None and report.error.category is ErrorCategory.HOST_FORBIDDEN
    assert v4.accepted == 0 and v6.accepted == 0
