"""The Oracle probe (python-oracledb thin mode) on real loopback sockets.

No Oracle server can run here, so what is verified is everything up to the server's answer:
refused ports, silent servers, TLS with trusted and untrusted certificates (verify-full against
the typed host name while dialing the IP address), a listener's real TNS REFUSE packet for an
unknown service, and the classification of oracledb's own error objects for what only a real
database says (ORA-01017 and friends). The tables query's row mapping is checked on rows shaped
as the query returns them.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import oracledb
import pytest
from oracledb import errors as oracle_errors

from connhub.domain.reports import ErrorCategory
from connhub.probes.base import ProbeTarget, SslMaterial
from connhub.probes.guard import parse_cidrs
from connhub.probes.oracle import PROBE, classify, oracle_code, schema_owner, tables_from_oracle_rows, tables_query
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.support.listeners import ScriptedListener, SilentListener, TlsListener
from tests.support.pki import CertificateAuthority
from tests.support.probing import context, failure_of
from tests.support.servers import free_port

PASSWORD = "tiger-Pa55word!"
SERVER_NAME = "db.connhub.test"


def target(port: int, **changes: Any) -> ProbeTarget:
    fields: dict[str, Any] = {
        "engine": "ORACLE",
        "host": "127.0.0.1",
        "port": port,
        "database": "FREEPDB1",
        "user": "scott",
        "password": PASSWORD,
    }
    fields.update(changes)
    return ProbeTarget(**fields)


def tns_refuse(error: int) -> bytes:
    """A TNS REFUSE packet (type 4) as a listener sends it for a service it does not know."""
    data = f"(DESCRIPTION=(TMP=)(VSNNUM=0)(ERR={error})(ERROR_STACK=(ERROR=(CODE={error})(EMFI=4))))".encode()
    body = bytes([1, 0]) + struct.pack(">H", len(data)) + data  # user and system reason, data length
    return struct.pack(">HHBBH", 8 + len(body), 0, 4, 0, 0) + body


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


async def test_a_listener_refusing_an_unknown_service_is_database_not_found() -> None:
    async with ScriptedListener([tns_refuse(12514)]) as listener:
        failure = await failure_of(PROBE.test(target(listener.port), context()))

    assert failure.category is ErrorCategory.DATABASE_NOT_FOUND
    assert "FREEPDB1" in failure.message
    assert b"SERVICE_NAME=FREEPDB1" in listener.received[0]  # the service asked for is the database


async def test_an_exhausted_budget_is_a_timeout_without_connecting() -> None:
    failure = await failure_of(PROBE.test(target(free_port()), context(timeout_s=0)))

    assert failure.category is ErrorCategory.TIMEOUT


# --- TLS -------------------------------------------------------------------------------------


async def test_an_untrusted_certificate_is_tls_failed() -> None:
    async with TlsListener() as listener:
        failure = await failure_of(PROBE.test(target(listener.port, ssl=SslMaterial("verify-ca")), context()))

    assert failure.category is ErrorCategory.TLS_FAILED
    assert "unable to get local issuer certificate" in failure.message


async def test_plain_modes_do_not_use_tls() -> None:
    # Against a TLS listener a plain connection gets no TLS error: nothing was negotiated.
    async with TlsListener() as listener:
        for mode in ("disable", "allow", "prefer"):
            failure = await failure_of(
                PROBE.test(target(listener.port, ssl=SslMaterial(mode)), context(timeout_s=1)), bound_s=5
            )
            assert failure.category is not ErrorCategory.TLS_FAILED


async def test_verify_full_checks_the_typed_host_name_while_connecting_to_the_address() -> None:
    ca = CertificateAuthority()
    # The listener completes the handshake, then hangs up: the failure that follows is not TLS.
    async with TlsListener(ca.issue([SERVER_NAME]), hang_up=True) as listener:
        good = SslMaterial("verify-full", ca=ca.cert_pem)
        after_tls = await failure_of(PROBE.test(target(listener.port, host=SERVER_NAME, ssl=good), context()))
        wrong_name = await failure_of(PROBE.test(target(listener.port, host="other.connhub.test", ssl=good), context()))
        chain_only = await failure_of(
            PROBE.test(
                target(listener.port, host="other.connhub.test", ssl=SslMaterial("verify-ca", ca=ca.cert_pem)),
                context(),
            )
        )

    assert after_tls.category is ErrorCategory.DRIVER_ERROR
    assert "closed the connection" in after_tls.message
    assert wrong_name.category is ErrorCategory.TLS_FAILED
    assert "other.connhub.test" in wrong_name.message
    assert chain_only.category is ErrorCategory.DRIVER_ERROR  # verify-ca does not check the name


async def test_require_encrypts_without_verifying() -> None:
    async with TlsListener(hang_up=True) as listener:
        failure = await failure_of(PROBE.test(target(listener.port, ssl=SslMaterial("require")), context()))

    assert failure.category is ErrorCategory.DRIVER_ERROR  # the untrusted certificate was accepted


async def test_an_unusable_client_key_is_tls_failed_before_connecting() -> None:
    ca = CertificateAuthority()
    client = ca.issue(["scott"], client=True)
    other_key = ca.issue(["someone"], client=True).key_pem
    material = SslMaterial("verify-full", ca=ca.cert_pem, cert=client.cert_pem, key=other_key)

    failure = await failure_of(PROBE.test(target(free_port(), ssl=material), context()))

    assert failure.category is ErrorCategory.TLS_FAILED


# --- through the runner ----------------------------------------------------------------------


async def test_runner_reports_an_unknown_service_with_the_field_to_fix() -> None:
    async with ScriptedListener([tns_refuse(12514)]) as listener:
        report = await ProbeRunner(ProbePolicy(timeout_s=5)).test(target(listener.port))

    assert report.error is not None
    assert report.error.category is ErrorCategory.DATABASE_NOT_FOUND
    assert report.error.field == "databaseName"
    assert PASSWORD not in str(report.to_json())


async def test_runner_bounds_a_silent_server() -> None:
    async with SilentListener() as silent:
        started = time.perf_counter()
        report = await ProbeRunner(ProbePolicy(timeout_s=1)).test(target(silent.port))

    assert report.error is not None and report.error.category is ErrorCategory.TIMEOUT
    assert time.perf_counter() - started < 5


# --- classification of oracledb's own errors -------------------------------------------------


def database_error(message: str, code: int) -> oracledb.Error:
    """The exception oracledb raises for an error the database sends (message and number)."""
    error = oracle_errors._Error(message, code=code)
    exception: oracledb.Error = error.exc_type(error)
    return exception


@pytest.mark.parametrize(
    ("message", "code", "category"),
    [
        ("ORA-01017: invalid credential or not authorized; logon denied", 1017, ErrorCategory.AUTH_FAILED),
        ("ORA-28001: the password has expired", 28001, ErrorCategory.AUTH_FAILED),
        ("ORA-28000: The account is locked.", 28000, ErrorCategory.PERMISSION_DENIED),
        (
            "ORA-01045: Login denied. User SCOTT does not have CREATE SESSION privilege.",
            1045,
            ErrorCategory.PERMISSION_DENIED,
        ),
        ("ORA-12514: Cannot connect to database. Service x is not registered", 12514, ErrorCategory.DATABASE_NOT_FOUND),
        ("ORA-00600: internal error code", 600, ErrorCategory.DRIVER_ERROR),
    ],
)
def test_database_errors_are_classified_by_their_code(message: str, code: int, category: ErrorCategory) -> None:
    failure = classify(database_error(message, code), target(1521), context())

    assert failure.category is category
    assert PASSWORD not in failure.message


def test_a_listener_refusal_is_classified_by_the_ora_code_it_is_similar_to() -> None:
    refused = oracle_errors._create_exception(oracle_errors.ERR_LISTENER_REFUSED_CONNECTION, error_code="12505")

    assert oracle_code(refused) == "ORA-12505"
    assert classify(refused, target(1521), context()).category is ErrorCategory.DATABASE_NOT_FOUND


def test_an_auth_failure_names_the_user() -> None:
    failure = classify(database_error("ORA-01017: invalid credential", 1017), target(1521), context())

    assert "'scott'" in failure.message


# --- tables ----------------------------------------------------------------------------------


def test_rows_become_tables_in_query_order_with_primary_keys() -> None:
    rows = [
        ("CUSTOMERS", "ID", "NUMBER", 22, 0, 10, 0, "N", 1),
        ("CUSTOMERS", "NAME", "VARCHAR2", 400, 100, None, None, "Y", 0),
        ("ORDERS", "ORDER_ID", "NUMBER", 22, 0, None, None, "N", 1),
        ("ORDERS", "LINE", "NUMBER", 22, 0, 5, 0, "N", 1),
        ("ORDERS", "TOTAL", "NUMBER", 22, 0, 12, 2, "Y", 0),
        ("ORDERS", "PLACED", "DATE", 7, 0, None, None, "Y", 0),
        ("ORDERS", "TOKEN", "RAW", 16, 0, None, None, "Y", 0),
    ]

    tables = tables_from_oracle_rows(rows)

    assert [table.name for table in tables] == ["CUSTOMERS", "ORDERS"]
    customers, orders = tables
    assert customers.fields == ["ID", "NAME"]
    assert [(c.type, c.nullable, c.primary_key) for c in customers.columns] == [
        ("NUMBER(10)", False, True),
        ("VARCHAR2(100)", True, False),
    ]
    assert [c.name for c in orders.columns if c.primary_key] == ["ORDER_ID", "LINE"]  # composite key
    assert [c.type for c in orders.columns] == ["NUMBER", "NUMBER(5)", "NUMBER(12,2)", "DATE", "RAW(16)"]


@pytest.mark.parametrize(
    ("schema", "user", "owner"),
    [(None, "scott", "SCOTT"), ("hr", "scott", "HR"), ('"MixedCase"', "scott", "MixedCase")],
)
def test_the_owner_is_the_schema_or_the_user_as_oracle_stores_it(schema: str | None, user: str, owner: str) -> None:
    assert schema_owner(target(1521, schema_name=schema, user=user)) == owner


# --- a listener's REDIRECT (issue 14.1) -------------------------------------------------------

ELSEWHERE = "127.0.0.2"  # a loopback alias the policy denies


def tns_redirect(host: str, port: int) -> bytes:
    """A TNS REDIRECT packet (type 5, flag 0x04: its data follows in a DATA packet) sending the
    client to another address, as a RAC SCAN listener or a shared-server dispatcher does. Without
    the egress confinement python-oracledb follows it (checked by hand: the other listener got a
    connection)."""
    address = f"(ADDRESS=(PROTOCOL=tcp)(HOST={host})(PORT={port}))"
    data = (address + "\x00" + f"(DESCRIPTION={address}(CONNECT_DATA=(SERVICE_NAME=FREEPDB1)))").encode()
    redirect = struct.pack(">HHBBH", 8 + 2, 0, 5, 0x04, 0) + struct.pack(">H", len(data))
    return redirect + struct.pack(">HHBBH", 8 + 2 + len(data), 0, 6, 0, 0) + b"\x00\x00" + data


async def test_a_listener_redirect_to_a_denied_address_is_host_forbidden_and_never_followed() -> None:
    runner = ProbeRunner(ProbePolicy(timeout_s=5, deny=parse_cidrs(f"{ELSEWHERE}/32")))
    async with SilentListener(host=ELSEWHERE) as elsewhere:
        redirect = tns_redirect(ELSEWHERE, elsewhere.port)
        async with ScriptedListener([redirect]) as listener:
            report = await runner.test(target(listener.port))

    assert report.error is not None and report.error.category is ErrorCategory.HOST_FORBIDDEN, report
    assert ELSEWHERE in report.error.message
    assert listener.received  # the listener was asked, and answered with its redirect
    assert elsewhere.accepted == 0


def test_other_schemas_join_the_one_catalog_query_as_binds() -> None:
    query, binds = tables_query(target(1521, schema_name=None, user="scott", schemas=("GL", "HR")))
    assert binds == {"owner": "SCOTT", "other0": "GL", "other1": "HR"}
    assert query.count("IN (:owner, :other0, :other1)") == 2 and "{owners}" not in query
    alone, only_owner = tables_query(target(1521, schema_name=None, user="scott"))
    assert "IN (:owner)" in alone and only_owner == {"owner": "SCOTT"}
