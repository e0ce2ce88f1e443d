"""The network guard decides where a probe may connect. Nothing here opens a connection: IP
literals need no DNS, and the only names resolved are `localhost` (the hosts file) and a name
under `.invalid`, which never resolves."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connhub.domain.reports import ErrorCategory
from connhub.probes.base import ProbeFailure
from connhub.probes.guard import DEFAULT_DENY_CIDRS, parse_cidrs, resolve_checked

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


async def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    with pytest.raises(ProbeFailure) as failure:
        await resolve_checked("nonexistent.invalid", 5432, DEFAULT_DENY, (), timeout=10)
    assert failure.value.category is ErrorCategory.DNS_FAILED
    assert "nonexistent.invalid" in failure.value.message
