"""Testing a MySQL/MariaDB connection and discovering its tables, as a user of the API sees it.

The machine's MariaDB (root without password, no TLS) serves the plain cases; a throw-away
MariaDB with TLS serves certificates. Host names other than `localhost` are resolved by a
`LoopbackDnsServer`, as with CONNHUB_PROBE_DNS_SERVERS.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import pymysql
import pytest

from connhub.domain.reports import Column, ErrorCategory, TestReport
from connhub.probes.base import ProbeTarget, SslMaterial
from connhub.probes.runner import ProbeRunner
from tests.probes.conftest import MariadbInstance, silent_listener
from tests.support.dns_server import LoopbackDnsServer
from tests.support.pki import CertificateAuthority, assert_expiry_of_a_test_certificate
from tests.support.servers import MARIADB_HOST, MARIADB_PORT

pytestmark = pytest.mark.usefixtures("shared_mariadb")

SECRET = "Pr0be-s3cret:@/?#%é"  # a wrong password with characters that change when percent-encoded


def shared_target(**changes: Any) -> ProbeTarget:
    """The machine's MariaDB: database `test`, user `root` without password."""
    return replace(ProbeTarget("MYSQL", MARIADB_HOST, MARIADB_PORT, "test", "root", ""), **changes)


def admin(host: str = MARIADB_HOST, port: int = MARIADB_PORT) -> pymysql.connections.Connection:
    return pymysql.connect(host=host, port=port, user="root", password="", autocommit=True)


def run(*statements: str, host: str = MARIADB_HOST, port: int = MARIADB_PORT) -> None:
    with admin(host, port) as conn, conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def assert_failed(report: TestReport, category: ErrorCategory, field: str | None) -> None:
    assert report.status == "failure", report
    assert report.error is not None
    assert (report.error.category, report.error.field) == (category, field), report.error


def report_text(report: TestReport) -> str:
    return json.dumps(report.to_json(), ensure_ascii=False)


@pytest.fixture
def make_user() -> Iterator[Callable[..., str]]:
    """Creates users (dropped afterwards): make_user(password, grants on databases...)."""
    made: list[str] = []

    def make(password: str, *databases: str, name: str | None = None) -> str:
        user = name or f"probe_{uuid.uuid4().hex[:8]}"
        made.append(user)
        run(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        for database in databases:
            run(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'")
        return user

    yield make
    for user in made:
        run(f"DROP USER IF EXISTS '{user}'@'%'")


# --- reaching the server ---------------------------------------------------------------------


async def test_a_reachable_database_reports_success_with_version_and_timings(runner: ProbeRunner) -> None:
    report = await runner.test(shared_target())

    assert report.status == "success", report
    assert report.server_version and report.server_version[0].isdigit()
    assert not report.server_version.startswith("5.5.5-")  # MariaDB's compatibility prefix is dropped
    assert report.message.startswith(("Connected to MariaDB ", "Connected to MySQL "))
    assert report.tls.enabled is False  # the machine's MariaDB has TLS disabled; prefer fell back
    phases = report.phases
    assert None not in (phases.dns_ms, phases.connect_ms, phases.auth_ms, phases.query_ms)
    assert phases.tls_ms is None  # no handshake happened, so none is reported


async def test_a_user_with_the_right_password_logs_in_even_with_non_ascii_characters(
    runner: ProbeRunner, make_user: Callable[..., str]
) -> None:
    password = "naïve-€-pässword"
    user = make_user(password, "test")
    report = await runner.test(shared_target(user=user, password=password))
    assert report.status == "success", report


async def test_a_wrong_password_is_an_auth_failure_that_never_shows_the_password(
    runner: ProbeRunner, make_user: Callable[..., str]
) -> None:
    user = make_user("the-right-one", "test")
    report = await runner.test(shared_target(user=user, password=SECRET))

    assert_failed(report, ErrorCategory.AUTH_FAILED, "password")
    assert "Access denied" in report.message
    text = report_text(report)
    assert SECRET not in text and quote(SECRET, safe="") not in text


async def test_a_server_message_that_happens_to_hold_the_password_is_masked(runner: ProbeRunner) -> None:
    # The server echoes the user name; a user named like the password makes it echo the password.
    secret = f"echo_{uuid.uuid4().hex[:8]}"
    report = await runner.test(shared_target(user=secret, password=secret))

    assert_failed(report, ErrorCategory.AUTH_FAILED, "password")
    assert "'***'" in report.message
    assert secret not in report_text(report)


async def test_a_missing_database_is_reported_with_the_field_to_fix(runner: ProbeRunner) -> None:
    report = await runner.test(shared_target(database=f"missing_{uuid.uuid4().hex[:8]}"))
    assert_failed(report, ErrorCategory.DATABASE_NOT_FOUND, "databaseName")
    assert "Unknown database" in report.message


async def test_a_user_without_rights_on_the_database_gets_permission_denied(
    runner: ProbeRunner, make_user: Callable[..., str]
) -> None:
    user = make_user("pw-of-a-nobody")  # no grant at all
    report = await runner.test(shared_target(user=user, password="pw-of-a-nobody"))
    assert_failed(report, ErrorCategory.PERMISSION_DENIED, "userName")


async def test_a_closed_port_is_reported_as_such(runner: ProbeRunner, closed_port: int) -> None:
    report = await runner.test(shared_target(port=closed_port))
    assert_failed(report, ErrorCategory.PORT_CLOSED, "port")


async def test_an_unknown_host_is_a_dns_failure(make_runner: Callable[..., ProbeRunner]) -> None:
    async with LoopbackDnsServer() as dns:
        report = await make_runner(dns_servers=(dns.address,)).test(shared_target(host="nonexistent.invalid"))

    assert_failed(report, ErrorCategory.DNS_FAILED, "host")
    assert report.phases.connect_ms is None
    assert sorted(dns.queries_for("nonexistent.invalid")) == ["A", "AAAA"]


async def test_a_host_name_is_resolved_by_the_configured_dns_server(make_runner: Callable[..., ProbeRunner]) -> None:
    async with LoopbackDnsServer({"maria.connhub.test": [MARIADB_HOST]}) as dns:
        report = await make_runner(dns_servers=(dns.address,)).test(shared_target(host="maria.connhub.test"))

    assert report.status == "success", report
    assert sorted(dns.queries) == [("maria.connhub.test", "A"), ("maria.connhub.test", "AAAA")]


async def test_a_name_that_resolves_to_a_denied_address_is_never_contacted(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    async with silent_listener("127.0.0.2") as listener:
        async with LoopbackDnsServer({"evil.connhub.test": ["127.0.0.1", "127.0.0.2"]}) as dns:
            runner = make_runner(deny="127.0.0.2/32", dns_servers=(dns.address,))
            report = await runner.test(shared_target(host="evil.connhub.test", port=listener.port))
        assert listener.accepted == 0

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
    assert report.phases.connect_ms is not None  # TCP got through; the server never spoke
    assert elapsed < 5


async def test_a_forbidden_address_is_never_contacted(make_runner: Callable[..., ProbeRunner]) -> None:
    async with silent_listener("127.0.0.2") as listener:
        report = await make_runner(deny="127.0.0.2/32").test(shared_target(host="127.0.0.2", port=listener.port))
        assert listener.accepted == 0
    assert_failed(report, ErrorCategory.HOST_FORBIDDEN, "host")


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_tls_required_against_a_server_without_tls_fails(runner: ProbeRunner, mode: str) -> None:
    report = await runner.test(shared_target(ssl=SslMaterial(mode)))
    assert_failed(report, ErrorCategory.TLS_FAILED, "ssl")


async def test_disable_connects_in_plain_text(runner: ProbeRunner) -> None:
    report = await runner.test(shared_target(ssl=SslMaterial("disable")))
    assert report.status == "success", report
    assert report.tls.enabled is False


# --- TLS, on a throw-away MariaDB --------------------------------------------------------------


def tls_target(server: MariadbInstance, **changes: Any) -> ProbeTarget:
    return replace(ProbeTarget("MYSQL", "localhost", server.port, "mysql", "root", ""), **changes)


@pytest.mark.parametrize("mode", ["prefer", "require", "verify-ca", "verify-full"])
async def test_tls_modes_succeed_with_the_servers_ca(
    runner: ProbeRunner, throwaway_mariadb: MariadbInstance, mode: str
) -> None:
    report = await runner.test(tls_target(throwaway_mariadb, ssl=SslMaterial(mode, ca=throwaway_mariadb.ca.cert_pem)))

    assert report.status == "success", report
    assert report.tls.enabled is True
    assert report.tls.version is not None and report.tls.version.startswith("TLSv1.")
    assert report.tls.cipher
    assert_expiry_of_a_test_certificate(report.tls.certificate_expires_at)
    assert report.phases.tls_ms is not None


async def test_require_without_a_ca_encrypts_without_checking(
    runner: ProbeRunner, throwaway_mariadb: MariadbInstance
) -> None:
    report = await runner.test(tls_target(throwaway_mariadb, ssl=SslMaterial("require")))
    assert report.status == "success", report
    assert report.tls.enabled is True
    assert_expiry_of_a_test_certificate(report.tls.certificate_expires_at)  # read, though not verified


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_a_certificate_from_another_ca_is_refused(
    runner: ProbeRunner, throwaway_mariadb: MariadbInstance, mode: str
) -> None:
    other_ca = CertificateAuthority("Some Other CA")
    report = await runner.test(tls_target(throwaway_mariadb, ssl=SslMaterial(mode, ca=other_ca.cert_pem)))
    assert_failed(report, ErrorCategory.TLS_FAILED, "ssl")
    assert "CERTIFICATE_VERIFY_FAILED" in report.message


async def test_verify_full_without_a_ca_trusts_only_the_system_store(
    runner: ProbeRunner, throwaway_mariadb: MariadbInstance
) -> None:
    report = await runner.test(tls_target(throwaway_mariadb, ssl=SslMaterial("verify-full")))
    assert_failed(report, ErrorCategory.TLS_FAILED, "ssl")


async def test_verify_full_checks_the_name_the_user_gave_not_the_address(
    runner: ProbeRunner, throwaway_mariadb: MariadbInstance
) -> None:
    # The certificate names `localhost` only; both targets connect to 127.0.0.1.
    full = SslMaterial("verify-full", ca=throwaway_mariadb.ca.cert_pem)
    by_ip = await runner.test(tls_target(throwaway_mariadb, host="127.0.0.1", ssl=full))
    assert_failed(by_ip, ErrorCategory.TLS_FAILED, "ssl")
    assert "localhost" in by_ip.message or "match" in by_ip.message

    chain_only = SslMaterial("verify-ca", ca=throwaway_mariadb.ca.cert_pem)
    assert (await runner.test(tls_target(throwaway_mariadb, host="127.0.0.1", ssl=chain_only))).status == "success"


async def test_a_client_certificate_is_presented_when_required(
    runner: ProbeRunner, throwaway_mariadb: MariadbInstance
) -> None:
    user = f"cert_{uuid.uuid4().hex[:8]}"
    run(f"CREATE USER '{user}'@'%' REQUIRE X509", host=throwaway_mariadb.host, port=throwaway_mariadb.port)
    try:
        client = throwaway_mariadb.ca.issue(user, client=True)
        ca = throwaway_mariadb.ca.cert_pem
        with_cert = SslMaterial("verify-full", ca=ca, cert=client.cert_pem, key=client.key_pem)
        report = await runner.test(tls_target(throwaway_mariadb, user=user, database="", ssl=with_cert))
        assert report.status == "success", report

        # Without one the server refuses the login; MySQL does not say why (its "Access denied").
        refused = await runner.test(
            tls_target(throwaway_mariadb, user=user, database="", ssl=SslMaterial("verify-full", ca=ca))
        )
        assert_failed(refused, ErrorCategory.AUTH_FAILED, "password")
    finally:
        run(f"DROP USER '{user}'@'%'", host=throwaway_mariadb.host, port=throwaway_mariadb.port)


# --- tables ----------------------------------------------------------------------------------


@pytest.fixture
def tables() -> Iterator[tuple[str, str]]:
    """Two tables of our own in `test` (named with a unique prefix) and a database not to show."""
    prefix, other = f"probe_{uuid.uuid4().hex[:8]}", f"probe_other_{uuid.uuid4().hex[:8]}"
    run(
        f"""CREATE TABLE test.{prefix}_customers (
            id bigint AUTO_INCREMENT PRIMARY KEY,
            email varchar(120) NOT NULL,
            nickname text NULL,
            created_at datetime NOT NULL,
            balance decimal(12, 2)
        )""",
        f"""CREATE TABLE test.{prefix}_lines (
            order_id int NOT NULL,
            line_no smallint NOT NULL,
            sku varchar(40) NOT NULL,
            quantity int,
            PRIMARY KEY (order_id, line_no)
        )""",
        f"CREATE DATABASE {other}",
        f"CREATE TABLE {other}.{prefix}_elsewhere (id int PRIMARY KEY)",
    )
    yield prefix, other
    run(f"DROP TABLE test.{prefix}_customers, test.{prefix}_lines", f"DROP DATABASE {other}")


async def test_discovery_lists_the_databases_tables_with_columns_in_order(
    runner: ProbeRunner, tables: tuple[str, str]
) -> None:
    prefix, _ = tables
    found, report = await runner.discover_tables(shared_target())

    assert report.status == "success", report
    assert found is not None
    mine = {table.name: table for table in found if table.name.startswith(prefix)}
    assert sorted(mine) == [f"{prefix}_customers", f"{prefix}_lines"]  # not the other database's

    customers = mine[f"{prefix}_customers"].columns
    assert [c.name for c in customers] == ["id", "email", "nickname", "created_at", "balance"]
    assert customers[0].type.startswith("bigint") and customers[0].primary_key and not customers[0].nullable
    assert customers[1:] == (
        Column("email", "varchar(120)", nullable=False, primary_key=False),
        Column("nickname", "text", nullable=True, primary_key=False),
        Column("created_at", "datetime", nullable=False, primary_key=False),
        Column("balance", "decimal(12,2)", nullable=True, primary_key=False),
    )
    lines = mine[f"{prefix}_lines"].columns
    assert [(c.name, c.primary_key, c.nullable) for c in lines] == [
        ("order_id", True, False),
        ("line_no", True, False),
        ("sku", False, False),
        ("quantity", False, True),
    ]


async def test_system_tables_are_not_part_of_a_user_database(runner: ProbeRunner, tables: tuple[str, str]) -> None:
    found, report = await runner.discover_tables(shared_target())
    assert report.status == "success", report
    assert found is not None
    names = {table.name for table in found}
    assert not names & {"user", "db", "COLUMNS", "TABLES", "proc"}


async def test_a_discovery_that_cannot_connect_returns_no_tables_and_says_why(
    runner: ProbeRunner, closed_port: int
) -> None:
    found, report = await runner.discover_tables(shared_target(port=closed_port))
    assert found is None
    assert_failed(report, ErrorCategory.PORT_CLOSED, "port")
