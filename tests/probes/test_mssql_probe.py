"""The SQL Server probe (pytds for every sslmode) on real loopback sockets.

No SQL Server can run here. What is verified: refused ports, silent servers, the encryption level
announced for each sslmode (read from the PRELOGIN really sent), login failures played back by a
scripted server in real TDS bytes (PRELOGIN answer, then ERROR and DONE tokens), and a server's
routing ENVCHANGE, which must take nothing anywhere in any mode. The tables query's row mapping is
checked on rows shaped as it returns them.

The TLS modes run against `TdsServer` (tests/support/tds_server.py), an in-process TDS responder
that does what SQL Server does with encryption: PRELOGIN, then the TLS handshake inside PRELOGIN
packets with a certificate from a throwaway CA, then LOGIN7 and queries inside TLS. So the
certificate checks are real OpenSSL checks of a real handshake; what the responder answers after
the login (LOGINACK, result sets) is the subset of TDS pytds needs, not a real server's.
"""

from __future__ import annotations

import datetime
import ipaddress
import struct
import time
from dataclasses import replace
from typing import Any

import pytds
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connhub.domain.reports import ErrorCategory
from connhub.probes import mssql
from connhub.probes.base import ProbeTarget, SslMaterial
from connhub.probes.guard import parse_cidrs
from connhub.probes.mssql import PROBE, certificate_matches, classify, tables_from_mssql_rows
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.support import tds_server
from tests.support.listeners import ScriptedListener, SilentListener, TlsListener
from tests.support.pki import CertificateAuthority
from tests.support.probing import context, failure_of
from tests.support.servers import free_port
from tests.support.tds_server import TdsServer

PASSWORD = "Str0ng-Pa55word!"
CA = CertificateAuthority("Connhub Test SQL Server CA")  # issues the TDS responder's certificates
OTHER_CA = CertificateAuthority("Some Other CA")


def target(port: int, **changes: Any) -> ProbeTarget:
    fields: dict[str, Any] = {
        "engine": "SQL_SERVER",
        "host": "127.0.0.1",
        "port": port,
        "database": "shop",
        "user": "sa",
        "password": PASSWORD,
    }
    fields.update(changes)
    return ProbeTarget(**fields)


# --- TDS bytes, as SQL Server sends them (MS-TDS) ----------------------------------------------

PRELOGIN, LOGIN7, TABULAR_RESULT = 0x12, 0x10, 0x04
ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP = 0, 1, 2


def tds_packet(payload: bytes, kind: int = TABULAR_RESULT) -> bytes:
    # type, status (end of message), length, SPID, packet id, window
    return struct.pack(">BBHHBB", kind, 1, 8 + len(payload), 0, 1, 0) + payload


def prelogin_answer(encryption: int = ENCRYPT_NOT_SUP) -> bytes:
    return tds_packet(tds_server.prelogin_answer(encryption))


def done_with_error() -> bytes:
    return b"\xfd" + struct.pack("<HHQ", 0x0002, 0, 0)


def login_refused(*errors: tuple[int, str, int]) -> list[bytes]:
    """What SQL Server answers a login it refuses: PRELOGIN, then the errors and DONE."""
    tokens = b"".join(tds_server.error_token(*error) for error in errors) + done_with_error()
    return [prelogin_answer(), tds_packet(tokens)]


BAD_PASSWORD = (18456, "Login failed for user 'sa'.", 14)
NO_DATABASE = (4060, 'Cannot open database "shop" requested by the login. The login failed.', 11)


def announced_encryption(prelogin: bytes) -> int:
    """The ENCRYPTION option of a client's PRELOGIN packet."""
    return tds_server.prelogin_option(prelogin[8:], 1)[0]


# --- network failures ------------------------------------------------------------------------


async def test_refused_port_is_port_closed() -> None:
    failure = await failure_of(PROBE.test(target(free_port()), context()))

    assert failure.category is ErrorCategory.PORT_CLOSED


async def test_a_listener_that_never_answers_is_a_timeout_within_the_budget() -> None:
    async with SilentListener() as silent:
        started = time.perf_counter()
        failure = await failure_of(PROBE.test(target(silent.port), context(timeout_s=1)), bound_s=5)

    assert failure.category is ErrorCategory.TIMEOUT
    assert time.perf_counter() - started < 5
    assert silent.accepted == 1


async def test_an_exhausted_budget_is_a_timeout_without_connecting() -> None:
    failure = await failure_of(PROBE.test(target(free_port()), context(timeout_s=0)))

    assert failure.category is ErrorCategory.TIMEOUT


# --- logins played back in TDS ---------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2])  # twice: no login state may linger between attempts
async def test_a_refused_login_is_auth_failed_without_the_password(attempt: int) -> None:
    async with ScriptedListener(login_refused(BAD_PASSWORD)) as server:
        failure = await failure_of(PROBE.test(target(server.port), context()))

    assert failure.category is ErrorCategory.AUTH_FAILED
    assert "'sa'" in failure.message and PASSWORD not in failure.message
    assert [message[0] for message in server.received] == [PRELOGIN, LOGIN7]


async def test_a_database_the_login_cannot_open_is_database_not_found() -> None:
    async with ScriptedListener(login_refused(NO_DATABASE, BAD_PASSWORD)) as server:
        failure = await failure_of(PROBE.discover_tables(target(server.port), context()))

    assert failure.category is ErrorCategory.DATABASE_NOT_FOUND
    assert "'shop'" in failure.message


async def test_a_connection_after_a_refused_login_is_still_classified_by_what_happened() -> None:
    async with ScriptedListener(login_refused(BAD_PASSWORD)) as server:
        await failure_of(PROBE.test(target(server.port), context()))

    failure = await failure_of(PROBE.test(target(free_port()), context()))

    assert failure.category is ErrorCategory.PORT_CLOSED


# --- encryption ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "announced"),
    [
        (None, ENCRYPT_NOT_SUP),
        ("disable", ENCRYPT_NOT_SUP),
        ("allow", ENCRYPT_OFF),  # the login packet is encrypted
        ("prefer", ENCRYPT_OFF),
        ("require", ENCRYPT_ON),  # the whole session, certificate not checked
        ("verify-ca", ENCRYPT_ON),  # the whole session, certificate checked
        ("verify-full", ENCRYPT_ON),
    ],
)
async def test_each_mode_announces_its_encryption_level(mode: str | None, announced: int) -> None:
    ssl = SslMaterial(mode, ca=CA.cert_pem) if mode else None
    async with ScriptedListener([b""]) as server:  # reads the PRELOGIN, answers nothing, hangs up
        await failure_of(PROBE.test(target(server.port, ssl=ssl), context(timeout_s=2)))

    assert announced_encryption(server.received[0]) == announced


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_a_tls_first_listener_fails_without_success(mode: str) -> None:
    # TDS negotiates TLS inside PRELOGIN; a listener that speaks TLS from the first byte (an
    # untrusted certificate) sees a cleartext PRELOGIN and hangs up.
    async with TlsListener() as listener:
        failure = await failure_of(PROBE.test(target(listener.port, ssl=SslMaterial(mode, ca=CA.cert_pem)), context()))

    assert failure.category is ErrorCategory.DRIVER_ERROR
    assert "closed the connection" in failure.message


# --- through the runner ----------------------------------------------------------------------


async def test_runner_reports_a_refused_login_with_the_field_to_fix() -> None:
    async with ScriptedListener(login_refused(BAD_PASSWORD)) as server:
        report = await ProbeRunner(ProbePolicy(timeout_s=5)).test(target(server.port))

    assert report.error is not None
    assert report.error.category is ErrorCategory.AUTH_FAILED
    assert report.error.field == "password"
    assert PASSWORD not in str(report.to_json())


async def test_runner_bounds_a_silent_server() -> None:
    async with SilentListener() as silent:
        started = time.perf_counter()
        report = await ProbeRunner(ProbePolicy(timeout_s=1)).test(target(silent.port))

    assert report.error is not None and report.error.category is ErrorCategory.TIMEOUT
    assert time.perf_counter() - started < 5


# --- errors after login ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "message", "category"),
    [
        (229, "The SELECT permission was denied on the object 'COLUMNS'", ErrorCategory.PERMISSION_DENIED),
        (916, 'The server principal "app" is not able to access the database', ErrorCategory.PERMISSION_DENIED),
        (911, "Database 'shop' does not exist.", ErrorCategory.DATABASE_NOT_FOUND),
        (102, "Incorrect syntax near 'x'.", ErrorCategory.DRIVER_ERROR),
    ],
)
def test_errors_on_an_open_connection_are_classified_by_number(
    number: int, message: str, category: ErrorCategory
) -> None:
    # pytds raises OperationalError(message) with the server message's number as msg_no.
    error = pytds.OperationalError(message)
    error.msg_no = number

    assert classify(error, target(1433), context()).category is category


# --- tables ----------------------------------------------------------------------------------


def test_rows_become_tables_in_query_order_with_primary_keys() -> None:
    rows = [
        ("customers", "id", "int", None, 10, 0, "NO", 1),
        ("customers", "name", "nvarchar", 100, None, None, "YES", 0),
        ("customers", "notes", "nvarchar", -1, None, None, "YES", 0),
        ("order_lines", "order_id", "int", None, 10, 0, "NO", 1),
        ("order_lines", "line", "smallint", None, 5, 0, "NO", 1),
        ("order_lines", "price", "decimal", None, 12, 2, "NO", 0),
    ]

    customers, lines = tables_from_mssql_rows(rows)

    assert customers.name == "customers" and customers.fields == ["id", "name", "notes"]
    assert [(c.type, c.nullable, c.primary_key) for c in customers.columns] == [
        ("int", False, True),
        ("nvarchar(100)", True, False),
        ("nvarchar(max)", True, False),
    ]
    assert [c.name for c in lines.columns if c.primary_key] == ["order_id", "line"]
    assert lines.columns[2].type == "decimal(12,2)"


# --- verify-ca and verify-full: real certificate checks against the TDS responder --------------


def verified(port: int, mode: str = "verify-full", host: str = "localhost", ca: str | None = None) -> ProbeTarget:
    return target(port, host=host, ssl=SslMaterial(mode, ca=CA.cert_pem if ca is None else ca))


async def test_verify_full_with_the_right_ca_and_name_logs_in_over_tls() -> None:
    async with TdsServer(CA.issue(["localhost"])) as server:
        ctx = context()  # connects to 127.0.0.1, checks the certificate against "localhost"
        await PROBE.test(verified(server.port), ctx)

    assert ctx.server_version == "16.0.1000.6"
    assert ctx.tls.enabled and ctx.tls.version == "TLSv1.2" and ctx.tls.cipher
    assert ctx.phases.connect_ms is not None and ctx.phases.auth_ms is not None and ctx.phases.query_ms is not None
    seen = server.received
    assert seen.prelogin_encryption == [tds_server.ENCRYPT_ON]
    assert seen.sni == ["localhost"] and seen.handshakes == 1
    [login] = seen.logins
    assert login.encrypted  # the password only ever travels inside the verified TLS session
    assert (login.user, login.password, login.database, login.server_name) == ("sa", PASSWORD, "shop", "localhost")
    assert login.app_name == "connhub"


async def test_verify_full_discovers_the_tables_with_the_one_catalog_query() -> None:
    rows = [
        ("customers", "id", "int", None, 10, 0, "NO", 1),
        ("customers", "name", "nvarchar", 100, None, None, "YES", 0),
        ("orders", "total", "decimal", None, 12, 2, "NO", 0),
    ]
    async with TdsServer(CA.issue(["localhost"]), catalog_rows=rows) as server:
        tables = await PROBE.discover_tables(verified(server.port), context())

    assert [(t.name, t.fields) for t in tables] == [("customers", ["id", "name"]), ("orders", ["total"])]
    assert [c.type for c in tables[0].columns] == ["int", "nvarchar(100)"] and tables[0].columns[0].primary_key
    assert tables[1].columns[0].type == "decimal(12,2)"
    version_query, tables_query = server.received.queries
    assert "ProductVersion" in version_query
    assert "INFORMATION_SCHEMA.COLUMNS" in tables_query and "dbo" in tables_query  # the schema, as a parameter


async def test_other_schemas_are_read_in_the_same_catalog_query() -> None:
    rows = [("orders", "id", "int", None, 10, 0, "NO", 1), ("sales.invoices", "id", "int", None, 10, 0, "NO", 1)]
    async with TdsServer(CA.issue(["localhost"]), catalog_rows=rows) as server:
        target = replace(verified(server.port), schemas=("sales", "audit"))
        tables = await PROBE.discover_tables(target, context())

    assert [t.name for t in tables] == ["orders", "sales.invoices"]
    _, tables_query = server.received.queries
    assert tables_query.count("INFORMATION_SCHEMA.COLUMNS") == 1
    assert all(name in tables_query for name in ("dbo", "sales", "audit"))  # all three, as parameters


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_a_certificate_from_another_ca_fails_tls_before_the_login(mode: str) -> None:
    async with TdsServer(CA.issue(["localhost"])) as server:
        failure = await failure_of(PROBE.test(verified(server.port, mode, ca=OTHER_CA.cert_pem), context()))

    assert failure.category is ErrorCategory.TLS_FAILED
    assert "certificate verify failed" in failure.message
    assert server.received.handshakes == 0 and server.received.logins == []


async def test_an_unreadable_ca_is_tls_failed_before_connecting() -> None:
    async with TdsServer(CA.issue(["localhost"])) as server:
        failure = await failure_of(PROBE.test(verified(server.port, ca="not a PEM"), context()))

    assert failure.category is ErrorCategory.TLS_FAILED and "ssl.ca" in failure.message
    assert server.accepted == 0


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_without_a_ca_the_system_cas_are_used_and_do_not_know_a_private_ca(mode: str) -> None:
    async with TdsServer(CA.issue(["localhost"])) as server:
        failure = await failure_of(PROBE.test(target(server.port, host="localhost", ssl=SslMaterial(mode)), context()))

    assert failure.category is ErrorCategory.TLS_FAILED
    assert server.received.logins == []


async def test_a_certificate_for_another_name_fails_verify_full_before_the_login() -> None:
    async with TdsServer(CA.issue(["db.example.test"])) as server:
        failure = await failure_of(PROBE.test(verified(server.port, "verify-full"), context()))

    assert failure.category is ErrorCategory.TLS_FAILED
    assert "db.example.test" in failure.message and "not localhost" in failure.message
    assert server.received.handshakes == 1  # the chain was fine; the name was not
    assert server.received.logins == []


async def test_a_certificate_for_another_name_passes_verify_ca() -> None:
    async with TdsServer(CA.issue(["db.example.test"])) as server:
        ctx = context()
        await PROBE.test(verified(server.port, "verify-ca"), ctx)

    assert ctx.server_version == "16.0.1000.6" and ctx.tls.enabled
    assert server.received.logins[0].encrypted


async def test_verify_full_by_ip_address_matches_the_certificates_ip_san() -> None:
    async with TdsServer(CA.issue(["127.0.0.1"])) as server:
        await PROBE.test(verified(server.port, host="127.0.0.1"), context())
    async with TdsServer(CA.issue(["localhost"])) as server:
        failure = await failure_of(PROBE.test(verified(server.port, host="127.0.0.1"), context()))

    assert failure.category is ErrorCategory.TLS_FAILED and "not 127.0.0.1" in failure.message
    assert server.received.logins == []


async def test_a_server_without_encryption_fails_the_verify_modes_before_the_login() -> None:
    async with TdsServer(CA.issue(["localhost"]), encryption=tds_server.ENCRYPT_NOT_SUP) as server:
        failure = await failure_of(PROBE.test(verified(server.port), context()))

    assert failure.category is ErrorCategory.TLS_FAILED
    assert "does not offer encryption" in failure.message
    assert server.received.logins == []


async def test_a_login_refused_over_verified_tls_is_auth_failed() -> None:
    async with TdsServer(CA.issue(["localhost"]), login_errors=[tds_server.BAD_PASSWORD]) as server:
        failure = await failure_of(PROBE.test(verified(server.port), context()))

    assert failure.category is ErrorCategory.AUTH_FAILED
    assert "'sa'" in failure.message and PASSWORD not in failure.message
    assert server.received.logins[0].encrypted


async def test_a_database_refused_over_verified_tls_is_database_not_found() -> None:
    errors = [tds_server.NO_DATABASE, tds_server.BAD_PASSWORD]  # as SQL Server sends them
    async with TdsServer(CA.issue(["localhost"]), login_errors=errors) as server:
        failure = await failure_of(PROBE.discover_tables(verified(server.port), context()))

    assert failure.category is ErrorCategory.DATABASE_NOT_FOUND
    assert "'shop'" in failure.message


ELSEWHERE = "127.0.0.2"  # a loopback alias the policy denies: a redirect's target
DENY_ELSEWHERE = ProbePolicy(timeout_s=5, deny=parse_cidrs(f"{ELSEWHERE}/32"))
# What a server answers each mode's PRELOGIN with, so that each mode gets as far as its login.
_SERVER_ENCRYPTION = {
    None: tds_server.ENCRYPT_NOT_SUP,
    "disable": tds_server.ENCRYPT_NOT_SUP,
    "allow": tds_server.ENCRYPT_OFF,  # the login packet inside TLS, then the clear
    "prefer": tds_server.ENCRYPT_OFF,
    "require": tds_server.ENCRYPT_ON,
    "verify-ca": tds_server.ENCRYPT_ON,
    "verify-full": tds_server.ENCRYPT_ON,
}


@pytest.mark.parametrize("mode", list(_SERVER_ENCRYPTION))
async def test_a_routing_answer_takes_no_mode_anywhere(mode: str | None) -> None:
    # Azure SQL's redirect: LOGINACK with a routing ENVCHANGE naming another server, here a denied
    # address. The driver would connect there on its own, past the network guard (FreeTDS did, in
    # the modes it served); the probe refuses, reports HOST_FORBIDDEN, and nothing gets there.
    async with SilentListener(host=ELSEWHERE) as elsewhere:
        leaf = CA.issue(["127.0.0.1"])
        async with TdsServer(leaf, encryption=_SERVER_ENCRYPTION[mode], route_to=(ELSEWHERE, elsewhere.port)) as server:
            ssl = SslMaterial(mode, ca=CA.cert_pem) if mode else None
            report = await ProbeRunner(DENY_ELSEWHERE).test(target(server.port, ssl=ssl))

    assert report.error is not None and report.error.category is ErrorCategory.HOST_FORBIDDEN, report
    assert f"{ELSEWHERE}:{elsewhere.port}" in report.error.message
    assert elsewhere.accepted == 0
    assert len(server.received.logins) == 1  # the server did answer the login with its redirect
    assert PASSWORD not in str(report.to_json())


@pytest.mark.parametrize(("mode", "encrypted_session"), [("allow", False), ("prefer", False), ("require", True)])
async def test_the_modes_that_do_not_verify_log_in_over_tls_whatever_the_certificate(
    mode: str, encrypted_session: bool
) -> None:
    untrusted = OTHER_CA.issue(["somewhere.else"])
    encryption = tds_server.ENCRYPT_ON if encrypted_session else tds_server.ENCRYPT_OFF
    async with TdsServer(untrusted, encryption=encryption) as server:
        report = await ProbeRunner(ProbePolicy(timeout_s=5)).test(target(server.port, ssl=SslMaterial(mode)))

    assert report.status == "success", report
    assert report.tls.enabled is encrypted_session
    assert server.received.logins[0].encrypted and server.received.logins[0].password == PASSWORD


async def test_disable_logs_in_without_tls() -> None:
    async with TdsServer(CA.issue(["127.0.0.1"]), encryption=tds_server.ENCRYPT_NOT_SUP) as server:
        report = await ProbeRunner(ProbePolicy(timeout_s=5)).test(target(server.port, ssl=SslMaterial("disable")))

    assert report.status == "success", report
    assert report.tls.enabled is False
    assert server.received.handshakes == 0 and not server.received.logins[0].encrypted


# --- the verify modes' network failures ------------------------------------------------------


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_verify_modes_report_a_refused_port_as_port_closed(mode: str) -> None:
    failure = await failure_of(PROBE.test(verified(free_port(), mode), context()))

    assert failure.category is ErrorCategory.PORT_CLOSED


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_verify_modes_give_up_on_a_silent_listener_within_the_budget(mode: str) -> None:
    async with SilentListener() as silent:
        started = time.perf_counter()
        failure = await failure_of(PROBE.test(verified(silent.port, mode), context(timeout_s=1)), bound_s=5)

    assert failure.category is ErrorCategory.TIMEOUT
    assert time.perf_counter() - started < 3
    assert silent.accepted == 1


# --- through the runner, verified --------------------------------------------------------------


async def test_runner_reports_a_verified_session() -> None:
    async with TdsServer(CA.issue(["127.0.0.1"])) as server:
        report = await ProbeRunner(ProbePolicy(timeout_s=5)).test(verified(server.port, host="127.0.0.1"))

    assert report.ok, report.message
    assert report.message == "Connected to SQL Server 16.0.1000.6"
    assert report.tls.enabled and report.tls.version == "TLSv1.2"


async def test_runner_reports_a_name_mismatch_with_the_field_to_fix() -> None:
    async with TdsServer(CA.issue(["db.example.test"])) as server:
        report = await ProbeRunner(ProbePolicy(timeout_s=5)).test(verified(server.port, host="127.0.0.1"))

    assert report.error is not None
    assert report.error.category is ErrorCategory.TLS_FAILED and report.error.field == "ssl"
    assert PASSWORD not in str(report.to_json())


# --- the host name rules (verify-full) ---------------------------------------------------------


def certificate(common_name: str, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> x509.Certificate:
    """A self-signed certificate with that Common Name and SANs (none at all when both are empty)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("cert", "host", "matches"),
    [
        (certificate("x", dns=("db.example.test",)), "db.example.test", True),
        (certificate("x", dns=("DB.Example.Test",)), "db.example.test.", True),  # case, trailing dot
        (certificate("x", dns=("other.example.test", "db.example.test")), "db.example.test", True),
        (certificate("x", dns=("db.example.test",)), "example.test", False),
        (certificate("x", dns=("Ddb.example.test",)), "db.example.test", False),  # pytds' lstrip("DNS:") would pass
        (certificate("x", dns=("*.example.test",)), "db.example.test", True),
        (certificate("x", dns=("*.example.test",)), "example.test", False),
        (certificate("x", dns=("*.example.test",)), "a.db.example.test", False),
        (certificate("x", dns=("*.test",)), "example.test", False),
        (certificate("x", dns=("db*.example.test",)), "db1.example.test", False),
        # the Common Name counts only without a SAN of the kind asked for
        (certificate("db.example.test", dns=("other.example.test",)), "db.example.test", False),
        (certificate("db.example.test"), "db.example.test", True),
        (certificate("127.0.0.1", dns=("localhost",)), "127.0.0.1", False),
        (certificate("x", ips=("127.0.0.1",)), "127.0.0.1", True),
        (certificate("x", ips=("::1",)), "::1", True),
        (certificate("x", dns=("127.0.0.1",)), "127.0.0.1", False),  # an IP is matched against IP SANs
        (certificate("127.0.0.1"), "127.0.0.1", True),
    ],
)
def test_host_name_rules(cert: x509.Certificate, host: str, matches: bool) -> None:
    assert certificate_matches(cert, host) is matches


def test_pytds_uses_this_host_name_check() -> None:
    import pytds.tls

    assert mssql._process_setup().host_check_installed
    assert pytds.tls.validate_host is mssql._pytds_validate_host


@pytest.mark.parametrize(
    ("host", "name"),
    [("DB.Example.Test.", "db.example.test"), ("[::1]", "::1"), ("bücher.example", "xn--bcher-kva.example")],
)
def test_the_name_given_to_pytds(host: str, name: str) -> None:
    assert mssql.tls_server_name(host) == name
