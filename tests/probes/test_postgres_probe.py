"""Testing a PostgreSQL connection and discovering its tables, as a user of the API sees it: a report
that says what worked, or which category of failure and which field to fix.

The machine's PostgreSQL (trust auth, no TLS) serves the plain cases; a throw-away server with
scram-sha-256 and TLS serves passwords and certificates. Host names other than `localhost` are
resolved by a `LoopbackDnsServer`, as with CONNHUB_PROBE_DNS_SERVERS.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from connhub.domain.reports import Column, ErrorCategory, TestReport
from connhub.probes.base import ProbeTarget, SslMaterial
from connhub.probes.guard import parse_cidrs
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.probes.conftest import CERT_USER, silent_listener
from tests.support.dns_server import LoopbackDnsServer
from tests.support.listeners import SilentListener
from tests.support.pg_instance import PostgresInstance
from tests.support.pki import CertificateAuthority, assert_expiry_of_a_test_certificate
from tests.support.servers import POSTGRES_URL

pytestmark = pytest.mark.usefixtures("shared_postgres")

SECRET = "Pr0be-s3cret:@/?#%é"  # a wrong password with characters that change when percent-encoded


def shared_target(**changes: Any) -> ProbeTarget:
    """The machine's PostgreSQL: database `test`, user `postgres`, trust auth."""
    target = ProbeTarget("POSTGRESQL", "127.0.0.1", 5432, "test", "postgres", "not-checked-by-trust")
    return replace(target, **changes)


def throwaway_target(pg: PostgresInstance, **changes: Any) -> ProbeTarget:
    target = ProbeTarget("POSTGRESQL", "localhost", pg.port, "postgres", pg.user, pg.password)
    return replace(target, **changes)


def assert_failed(report: TestReport, category: ErrorCategory, field: str | None) -> None:
    assert report.status == "failure", report
    assert report.error is not None
    assert (report.error.category, report.error.field) == (category, field), report.error
    assert report.message == report.error.message


def report_text(report: TestReport) -> str:
    return json.dumps(report.to_json(), ensure_ascii=False)


# --- reaching the server ---------------------------------------------------------------------


async def test_a_reachable_database_reports_success_with_version_and_timings(runner: ProbeRunner) -> None:
    report = await runner.test(shared_target())

    assert report.status == "success", report
    assert report.error is None
    assert report.server_version and report.server_version[0].isdigit()
    assert report.message.startswith("Connected to PostgreSQL ")
    assert report.server_version.split()[0] in report.message
    assert report.tls.enabled is False  # the machine's server has no TLS; libpq's prefer fell back
    phases = report.phases
    assert phases.dns_ms is not None and phases.connect_ms is not None and phases.query_ms is not None
    # libpq connects, negotiates TLS and authenticates in one call: not split, not invented.
    assert phases.tls_ms is None and phases.auth_ms is None
    assert report.latency_ms >= phases.connect_ms + phases.query_ms


async def test_a_missing_database_is_reported_with_the_field_to_fix(runner: ProbeRunner) -> None:
    report = await runner.test(shared_target(database=f"missing_{uuid.uuid4().hex[:8]}"))
    assert_failed(report, ErrorCategory.DATABASE_NOT_FOUND, "databaseName")
    assert "does not exist" in report.message


async def test_a_closed_port_is_reported_as_such(runner: ProbeRunner, closed_port: int) -> None:
    report = await runner.test(shared_target(port=closed_port))
    assert_failed(report, ErrorCategory.PORT_CLOSED, "port")


async def test_an_unknown_host_is_a_dns_failure(make_runner: Callable[..., ProbeRunner]) -> None:
    async with LoopbackDnsServer() as dns:
        report = await make_runner(dns_servers=(dns.address,)).test(shared_target(host="nonexistent.invalid"))

    assert_failed(report, ErrorCategory.DNS_FAILED, "host")
    assert "nonexistent.invalid" in report.message
    assert report.phases.connect_ms is None
    assert sorted(dns.queries_for("nonexistent.invalid")) == ["A", "AAAA"]


async def test_a_host_name_is_resolved_by_the_configured_dns_server(make_runner: Callable[..., ProbeRunner]) -> None:
    async with LoopbackDnsServer({"pg.connhub.test": ["127.0.0.1"]}) as dns:
        report = await make_runner(dns_servers=(dns.address,)).test(shared_target(host="pg.connhub.test"))

    assert report.status == "success", report
    assert report.phases.dns_ms is not None
    assert sorted(dns.queries) == [("pg.connhub.test", "A"), ("pg.connhub.test", "AAAA")]


async def test_the_connection_goes_to_the_checked_address_whatever_dns_says_next(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    # DNS rebinding: the first answer passes the guard; every later one points at 127.0.0.2, where a
    # silent listener waits on the same port. Any second resolution would connect there and time out.
    async with (
        LoopbackDnsServer({"pg.connhub.test": ["127.0.0.1"]}, rebind_to={"pg.connhub.test": ["127.0.0.2"]}) as dns,
        silent_listener("127.0.0.2", 5432) as rebound,
    ):
        report = await make_runner(timeout_s=3, dns_servers=(dns.address,)).test(shared_target(host="pg.connhub.test"))

    assert report.status == "success", report
    assert rebound.accepted == 0
    assert sorted(dns.queries_for("pg.connhub.test")) == ["A", "AAAA"]  # resolved once


async def test_a_name_that_resolves_to_a_denied_address_is_never_contacted(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    async with silent_listener("127.0.0.2") as listener:
        async with LoopbackDnsServer({"evil.connhub.test": ["127.0.0.2"]}) as dns:
            runner = make_runner(deny="127.0.0.2/32", dns_servers=(dns.address,))
            report = await runner.test(shared_target(host="evil.connhub.test", port=listener.port))
        assert listener.accepted == 0

    assert_failed(report, ErrorCategory.HOST_FORBIDDEN, "host")
    assert "evil.connhub.test" in report.message
    assert report.phases.connect_ms is None


async def test_a_name_with_an_allowed_and_a_denied_address_is_forbidden(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    # The allowed address comes first (it is the one a probe would connect to): the denied second
    # one must still refuse the name, and neither address may be contacted.
    async with silent_listener("127.0.0.1") as allowed, silent_listener("127.0.0.2", allowed.port) as denied:
        async with LoopbackDnsServer({"mixed.connhub.test": ["127.0.0.1", "127.0.0.2"]}) as dns:
            runner = make_runner(deny="127.0.0.2/32", dns_servers=(dns.address,))
            report = await runner.test(shared_target(host="mixed.connhub.test", port=allowed.port))
        assert (allowed.accepted, denied.accepted) == (0, 0)

    assert_failed(report, ErrorCategory.HOST_FORBIDDEN, "host")


async def test_a_server_that_never_answers_times_out_within_the_budget(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    async with silent_listener() as listener:
        started = time.monotonic()
        report = await make_runner(timeout_s=1).test(shared_target(port=listener.port))
        elapsed = time.monotonic() - started

    assert_failed(report, ErrorCategory.TIMEOUT, "host")
    assert listener.accepted == 1
    assert elapsed < 5
    assert 900 <= report.latency_ms < 5000


async def test_a_forbidden_address_is_never_contacted(make_runner: Callable[..., ProbeRunner]) -> None:
    async with silent_listener("127.0.0.2") as listener:
        forbidden = await make_runner(deny="127.0.0.2/32").test(shared_target(host="127.0.0.2", port=listener.port))
        assert listener.accepted == 0

        # The same target with the range allowed does reach the listener: the check above means something.
        allowed = await make_runner(timeout_s=1).test(shared_target(host="127.0.0.2", port=listener.port))
        assert listener.accepted == 1

    assert_failed(forbidden, ErrorCategory.HOST_FORBIDDEN, "host")
    assert forbidden.phases.connect_ms is None
    assert_failed(allowed, ErrorCategory.TIMEOUT, "host")


async def test_outside_the_allow_list_nothing_is_reachable(make_runner: Callable[..., ProbeRunner]) -> None:
    report = await make_runner(allow="10.0.0.0/8").test(shared_target())
    assert_failed(report, ErrorCategory.HOST_FORBIDDEN, "host")


async def test_a_probe_beyond_the_concurrency_bound_waits_and_the_wait_counts_against_its_budget(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    runner = make_runner(timeout_s=1, max_concurrent=1)
    async with silent_listener() as first, silent_listener() as second:
        holding = asyncio.create_task(runner.test(shared_target(port=first.port)))
        while first.accepted == 0:  # the first probe has the only slot
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(runner.test(shared_target(port=second.port)))
        await asyncio.sleep(0.5)
        assert second.accepted == 0  # the second waits for the slot instead of connecting
        reports = await asyncio.gather(holding, waiting)

    for report in reports:
        assert_failed(report, ErrorCategory.TIMEOUT, "host")
    assert reports[1].latency_ms < 1500  # its budget ran while it waited


async def test_tls_required_against_a_server_without_tls_fails(runner: ProbeRunner) -> None:
    report = await runner.test(shared_target(ssl=SslMaterial("require")))
    assert_failed(report, ErrorCategory.TLS_FAILED, "ssl")
    assert "does not support SSL" in report.message


# --- passwords -------------------------------------------------------------------------------


@pytest.fixture
def password_role(throwaway_postgres: PostgresInstance) -> Iterator[tuple[str, str]]:
    name, password = f"alice_{uuid.uuid4().hex[:8]}", "correct horse battery"
    throwaway_postgres.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    yield name, password
    throwaway_postgres.execute(f"DROP ROLE {name}")


async def test_the_right_password_logs_in(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance, password_role: tuple[str, str]
) -> None:
    user, password = password_role
    report = await runner.test(throwaway_target(throwaway_postgres, user=user, password=password))
    assert report.status == "success", report


async def test_a_wrong_password_is_an_auth_failure_that_never_shows_the_password(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance, password_role: tuple[str, str]
) -> None:
    user, _ = password_role
    report = await runner.test(throwaway_target(throwaway_postgres, user=user, password=SECRET))

    assert_failed(report, ErrorCategory.AUTH_FAILED, "password")
    assert "password authentication failed" in report.message
    text = report_text(report)
    assert SECRET not in text and quote(SECRET, safe="") not in text


async def test_a_server_message_that_happens_to_hold_the_password_is_masked(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    # The server echoes the user name; a user named like the password makes it echo the password.
    secret = f"echo_{uuid.uuid4().hex[:8]}"
    report = await runner.test(throwaway_target(throwaway_postgres, user=secret, password=secret))

    assert_failed(report, ErrorCategory.AUTH_FAILED, "password")
    assert 'for user "***"' in report.message
    assert secret not in report_text(report)


async def test_a_user_without_connect_privilege_gets_permission_denied(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance, password_role: tuple[str, str]
) -> None:
    user, password = password_role
    database = f"closed_{uuid.uuid4().hex[:8]}"
    throwaway_postgres.execute(f"CREATE DATABASE {database}", f"REVOKE CONNECT ON DATABASE {database} FROM PUBLIC")
    try:
        report = await runner.test(
            throwaway_target(throwaway_postgres, user=user, password=password, database=database)
        )
    finally:
        throwaway_postgres.execute(f"DROP DATABASE {database}")
    assert_failed(report, ErrorCategory.PERMISSION_DENIED, "userName")


# --- TLS -------------------------------------------------------------------------------------


def ssl_with_ca(pg: PostgresInstance, mode: str) -> SslMaterial:
    assert pg.ca is not None
    return SslMaterial(mode, ca=pg.ca.cert_pem)


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_tls_modes_succeed_with_the_servers_ca(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance, mode: str
) -> None:
    report = await runner.test(throwaway_target(throwaway_postgres, ssl=ssl_with_ca(throwaway_postgres, mode)))

    assert report.status == "success", report
    assert report.tls.enabled is True
    assert report.tls.version is not None and report.tls.version.startswith("TLSv1.")
    assert report.tls.cipher
    assert_expiry_of_a_test_certificate(report.tls.certificate_expires_at)


async def test_require_without_a_ca_encrypts_without_checking(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    report = await runner.test(throwaway_target(throwaway_postgres, ssl=SslMaterial("require")))
    assert report.status == "success", report
    assert report.tls.enabled is True
    assert_expiry_of_a_test_certificate(report.tls.certificate_expires_at)  # read, though not verified


async def test_prefer_uses_tls_when_the_server_offers_it(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    report = await runner.test(throwaway_target(throwaway_postgres, ssl=SslMaterial("prefer")))
    assert report.status == "success", report
    assert report.tls.enabled is True


async def test_disable_connects_in_plain_text(runner: ProbeRunner, throwaway_postgres: PostgresInstance) -> None:
    report = await runner.test(throwaway_target(throwaway_postgres, ssl=SslMaterial("disable")))
    assert report.status == "success", report
    assert report.tls.enabled is False
    assert report.tls.version is None and report.tls.cipher is None


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_a_certificate_from_another_ca_is_refused(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance, mode: str
) -> None:
    other_ca = CertificateAuthority("Some Other CA")
    report = await runner.test(throwaway_target(throwaway_postgres, ssl=SslMaterial(mode, ca=other_ca.cert_pem)))
    assert_failed(report, ErrorCategory.TLS_FAILED, "ssl")
    assert "certificate verify failed" in report.message


async def test_verify_full_refuses_a_certificate_for_another_name(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    # The server's certificate names `localhost` only; reaching it as 127.0.0.1 must not pass.
    ssl = ssl_with_ca(throwaway_postgres, "verify-full")
    report = await runner.test(throwaway_target(throwaway_postgres, host="127.0.0.1", ssl=ssl))
    assert_failed(report, ErrorCategory.TLS_FAILED, "ssl")
    assert "does not match host name" in report.message


async def test_verify_ca_does_not_check_the_name(runner: ProbeRunner, throwaway_postgres: PostgresInstance) -> None:
    ssl = ssl_with_ca(throwaway_postgres, "verify-ca")
    report = await runner.test(throwaway_target(throwaway_postgres, host="127.0.0.1", ssl=ssl))
    assert report.status == "success", report


async def test_verify_full_without_a_ca_trusts_only_the_system_store(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    report = await runner.test(throwaway_target(throwaway_postgres, ssl=SslMaterial("verify-full")))
    assert_failed(report, ErrorCategory.TLS_FAILED, "ssl")


async def test_a_client_certificate_logs_in(runner: ProbeRunner, throwaway_postgres: PostgresInstance) -> None:
    assert throwaway_postgres.ca is not None
    client = throwaway_postgres.ca.issue(CERT_USER, client=True)
    ssl = SslMaterial("verify-full", ca=throwaway_postgres.ca.cert_pem, cert=client.cert_pem, key=client.key_pem)
    report = await runner.test(throwaway_target(throwaway_postgres, user=CERT_USER, password="unused", ssl=ssl))
    assert report.status == "success", report


async def test_a_missing_or_untrusted_client_certificate_is_a_tls_failure(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    without = await runner.test(
        throwaway_target(
            throwaway_postgres,
            user=CERT_USER,
            password="unused",
            ssl=ssl_with_ca(throwaway_postgres, "verify-full"),
        )
    )
    assert_failed(without, ErrorCategory.TLS_FAILED, "ssl")

    stranger = CertificateAuthority("Untrusted Client CA").issue(CERT_USER, client=True)
    assert throwaway_postgres.ca is not None
    ssl = SslMaterial("verify-full", ca=throwaway_postgres.ca.cert_pem, cert=stranger.cert_pem, key=stranger.key_pem)
    untrusted = await runner.test(throwaway_target(throwaway_postgres, user=CERT_USER, password="unused", ssl=ssl))
    assert_failed(untrusted, ErrorCategory.TLS_FAILED, "ssl")
    key_body = [line for line in stranger.key_pem.splitlines() if not line.startswith("-----")]
    assert not any(line in report_text(untrusted) for line in key_body)


async def test_certificate_files_live_only_during_the_connection(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    def probe_dirs() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("connhub-probe-*"))

    before = probe_dirs()
    assert throwaway_postgres.ca is not None
    client = throwaway_postgres.ca.issue(CERT_USER, client=True)
    ssl = SslMaterial("verify-full", ca=throwaway_postgres.ca.cert_pem, cert=client.cert_pem, key=client.key_pem)
    report = await runner.test(throwaway_target(throwaway_postgres, user=CERT_USER, password="unused", ssl=ssl))
    assert report.status == "success", report
    assert probe_dirs() <= before


# --- tables ----------------------------------------------------------------------------------


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    """Two schemas of our own in database `test`: one to read, one whose tables must not show."""
    mine, other = f"probe_{uuid.uuid4().hex[:8]}", f"probe_other_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {mine}")
        conn.execute(f"CREATE SCHEMA {other}")
        conn.execute(f"""
            CREATE TABLE {mine}.customers (
                id bigserial PRIMARY KEY,
                email varchar(120) NOT NULL,
                nickname text,
                obsolete int,
                created_at timestamptz NOT NULL DEFAULT now(),
                balance numeric(12, 2),
                tags text[]
            );
            ALTER TABLE {mine}.customers DROP COLUMN obsolete;
            CREATE TABLE {mine}.order_lines (
                order_id integer,
                line_no smallint,
                sku text NOT NULL,
                quantity integer,
                PRIMARY KEY (order_id, line_no)
            );
            CREATE VIEW {mine}.active_customers AS SELECT id, email FROM {mine}.customers;
            CREATE TABLE {other}.not_mine (id int PRIMARY KEY);
        """)  # fmt: skip
    yield mine, other
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {mine} CASCADE")
        conn.execute(f"DROP SCHEMA {other} CASCADE")


async def test_discovery_lists_tables_and_views_with_columns_in_order(
    runner: ProbeRunner, schemas: tuple[str, str]
) -> None:
    mine, _ = schemas
    tables, report = await runner.discover_tables(shared_target(schema_name=mine))

    assert report.status == "success", report
    assert "read 3 tables" in report.message
    assert tables is not None
    by_name = {table.name: table for table in tables}
    assert sorted(by_name) == ["active_customers", "customers", "order_lines"]
    assert by_name["customers"].columns == (
        Column("id", "bigint", nullable=False, primary_key=True),
        Column("email", "character varying(120)", nullable=False, primary_key=False),
        Column("nickname", "text", nullable=True, primary_key=False),
        Column("created_at", "timestamp with time zone", nullable=False, primary_key=False),
        Column("balance", "numeric(12,2)", nullable=True, primary_key=False),
        Column("tags", "text[]", nullable=True, primary_key=False),
    )
    assert by_name["order_lines"].columns == (
        Column("order_id", "integer", nullable=False, primary_key=True),
        Column("line_no", "smallint", nullable=False, primary_key=True),
        Column("sku", "text", nullable=False, primary_key=False),
        Column("quantity", "integer", nullable=True, primary_key=False),
    )
    assert by_name["active_customers"].fields == ["id", "email"]
    assert not any(column.primary_key for column in by_name["active_customers"].columns)


async def test_without_a_schema_public_is_read_and_system_tables_never_show(
    runner: ProbeRunner, schemas: tuple[str, str]
) -> None:
    # `schemas` made a table `not_mine` in another schema: it must not show either.
    table = f"probe_public_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY)")
    try:
        tables, report = await runner.discover_tables(shared_target())
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP TABLE public.{table}")

    assert report.status == "success", report
    assert tables is not None
    names = {t.name for t in tables}
    assert table in names
    assert "not_mine" not in names
    assert not any(name.startswith("pg_") or name in ("tables", "columns") for name in names)


async def test_system_schemas_are_never_listed(runner: ProbeRunner) -> None:
    for schema in ("pg_catalog", "information_schema"):
        tables, report = await runner.discover_tables(shared_target(schema_name=schema))
        assert report.status == "success", report
        assert tables == []


async def test_a_discovery_that_cannot_connect_returns_no_tables_and_says_why(
    runner: ProbeRunner, closed_port: int
) -> None:
    tables, report = await runner.discover_tables(shared_target(port=closed_port))
    assert tables is None
    assert_failed(report, ErrorCategory.PORT_CLOSED, "port")


# --- hops libpq could make on its own --------------------------------------------------------

ELSEWHERE = "127.0.0.2"  # a loopback alias the policy denies


@pytest.mark.parametrize(
    "changes",
    [
        # a connection string in the database name (libpq expands one only when told to)
        lambda port: {"database": f"host={ELSEWHERE} hostaddr={ELSEWHERE} port={port} dbname=test"},
        lambda port: {"database": f"postgresql://postgres@{ELSEWHERE}:{port}/test"},
        # driver options that would add hosts or a service file are not passed to libpq
        lambda port: {"options": {"host": ELSEWHERE, "hostaddr": ELSEWHERE, "port": str(port), "service": "x"}},
    ],
)
async def test_libpq_is_never_sent_to_a_second_host(changes: Callable[[int], dict[str, Any]]) -> None:
    async with SilentListener(host=ELSEWHERE) as elsewhere:
        runner = ProbeRunner(ProbePolicy(timeout_s=5, deny=parse_cidrs(f"{ELSEWHERE}/32")))
        await runner.test(shared_target(**changes(elsewhere.port)))

    assert elsewhere.accepted == 0  # whatever the report says (the options are ignored: a success)
