"""The SQL Server probe (pymssql / FreeTDS) on real loopback sockets.

No SQL Server can run here. What is verified: refused ports, silent servers, the encryption level
FreeTDS announces for each sslmode (read from the PRELOGIN it really sends), the modes that are
refused because certificates cannot be checked, and login failures played back by a scripted
server in real TDS bytes (PRELOGIN answer, then ERROR and DONE tokens), which FreeTDS parses as it
would SQL Server's. The schema query's row mapping is checked on rows shaped as it returns them.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import pymssql
import pytest

from connhub.domain.reports import ErrorCategory
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget, SslMaterial
from connhub.probes.mssql import PROBE, classify, tables_from_rows
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.support.listeners import ScriptedListener, SilentListener, TlsListener
from tests.support.servers import free_port

PASSWORD = "Str0ng-Pa55word!"


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


def context(timeout_s: float = 5.0) -> ProbeContext:
    return ProbeContext(address="127.0.0.1", timeout_s=timeout_s)


async def failure_of(coroutine: Any, bound_s: float = 10.0) -> ProbeFailure:
    async with asyncio.timeout(bound_s):
        with pytest.raises(ProbeFailure) as caught:
            await coroutine
    return caught.value


# --- TDS bytes, as SQL Server sends them (MS-TDS) ----------------------------------------------

PRELOGIN, LOGIN7, TABULAR_RESULT = 0x12, 0x10, 0x04
ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP = 0, 1, 2


def tds_packet(payload: bytes, kind: int = TABULAR_RESULT) -> bytes:
    # type, status (end of message), length, SPID, packet id, window
    return struct.pack(">BBHHBB", kind, 1, 8 + len(payload), 0, 1, 0) + payload


def prelogin_answer(encryption: int = ENCRYPT_NOT_SUP) -> bytes:
    options = [(0, bytes([16, 0, 3, 232, 0, 0])), (1, bytes([encryption])), (2, b"\x00"), (3, b""), (4, b"\x00")]
    header_size = 5 * len(options) + 1
    header, data = b"", b""
    for token, value in options:
        header += struct.pack(">BHH", token, header_size + len(data), len(value))
        data += value
    return tds_packet(header + b"\xff" + data)


def _b_varchar(text: str) -> bytes:
    return bytes([len(text)]) + text.encode("utf-16-le")


def _us_varchar(text: str) -> bytes:
    return struct.pack("<H", len(text)) + text.encode("utf-16-le")


def error_token(number: int, message: str, severity: int) -> bytes:
    body = struct.pack("<iBB", number, 1, severity) + _us_varchar(message) + _b_varchar("sql1") + _b_varchar("")
    body += struct.pack("<i", 1)  # line number
    return b"\xaa" + struct.pack("<H", len(body)) + body


def done_with_error() -> bytes:
    return b"\xfd" + struct.pack("<HHQ", 0x0002, 0, 0)


def login_refused(*errors: tuple[int, str, int]) -> list[bytes]:
    """What SQL Server answers a login it refuses: PRELOGIN, then the errors and DONE."""
    tokens = b"".join(error_token(*error) for error in errors) + done_with_error()
    return [prelogin_answer(), tds_packet(tokens)]


BAD_PASSWORD = (18456, "Login failed for user 'sa'.", 14)
NO_DATABASE = (4060, 'Cannot open database "shop" requested by the login. The login failed.', 11)


def announced_encryption(prelogin: bytes) -> int:
    """The ENCRYPTION option of a client's PRELOGIN packet."""
    payload, position = prelogin[8:], 0
    while payload[position] != 0xFF:
        token, offset, _ = struct.unpack(">BHH", payload[position : position + 5])
        if token == 1:
            return int(payload[offset])
        position += 5
    raise AssertionError("no ENCRYPTION option")


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


@pytest.mark.parametrize("attempt", [1, 2])  # twice: pymssql's stale login state must not matter
async def test_a_refused_login_is_auth_failed_without_the_password(attempt: int) -> None:
    async with ScriptedListener(login_refused(BAD_PASSWORD)) as server:
        failure = await failure_of(PROBE.test(target(server.port), context()))

    assert failure.category is ErrorCategory.AUTH_FAILED
    assert "'sa'" in failure.message and PASSWORD not in failure.message
    assert [message[0] for message in server.received] == [PRELOGIN, LOGIN7]


async def test_a_database_the_login_cannot_open_is_database_not_found() -> None:
    async with ScriptedListener(login_refused(NO_DATABASE, BAD_PASSWORD)) as server:
        failure = await failure_of(PROBE.read_schema(target(server.port), context()))

    assert failure.category is ErrorCategory.DATABASE_NOT_FOUND
    assert "'shop'" in failure.message


async def test_a_connection_after_a_refused_login_is_still_classified_by_what_happened() -> None:
    async with ScriptedListener(login_refused(BAD_PASSWORD)) as server:
        await failure_of(PROBE.test(target(server.port), context()))

    failure = await failure_of(PROBE.test(target(free_port()), context()))

    assert failure.category is ErrorCategory.PORT_CLOSED  # pymssql still reports 18456 here


# --- encryption ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "announced"),
    [
        (None, ENCRYPT_NOT_SUP),
        ("disable", ENCRYPT_NOT_SUP),
        ("allow", ENCRYPT_OFF),  # FreeTDS "request": the login packet is encrypted
        ("prefer", ENCRYPT_OFF),
        ("require", ENCRYPT_ON),
    ],
)
async def test_each_mode_announces_its_encryption_level(mode: str | None, announced: int) -> None:
    ssl = SslMaterial(mode) if mode else None
    async with ScriptedListener([b""]) as server:  # reads the PRELOGIN, answers nothing, hangs up
        await failure_of(PROBE.test(target(server.port, ssl=ssl), context(timeout_s=2)))

    assert announced_encryption(server.received[0]) == announced


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
async def test_certificate_checking_modes_are_refused_before_connecting(mode: str) -> None:
    async with TlsListener() as listener:
        failure = await failure_of(PROBE.test(target(listener.port, ssl=SslMaterial(mode, ca="x")), context()))

    assert failure.category is ErrorCategory.TLS_FAILED
    assert "cannot be enforced" in failure.message
    assert listener.accepted == 0


async def test_require_against_a_tls_first_listener_fails_without_success() -> None:
    # TDS negotiates TLS inside PRELOGIN; a listener that speaks TLS from the first byte (an
    # untrusted certificate) sees a cleartext PRELOGIN and hangs up.
    async with TlsListener() as listener:
        failure = await failure_of(PROBE.test(target(listener.port, ssl=SslMaterial("require")), context()))

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
        (20003, "Adaptive Server connection timed out", ErrorCategory.TIMEOUT),
        (102, "Incorrect syntax near 'x'.", ErrorCategory.DRIVER_ERROR),
    ],
)
def test_errors_on_an_open_connection_are_classified_by_number(
    number: int, message: str, category: ErrorCategory
) -> None:
    # pymssql raises OperationalError((number, message bytes)) for server messages.
    error = pymssql.OperationalError((number, message.encode() + b"DB-Lib error message 20018, severity 14:\n"))

    assert classify(error, target(1433), context()).category is category


# --- schema ----------------------------------------------------------------------------------


def test_rows_become_tables_in_query_order_with_primary_keys() -> None:
    rows = [
        ("customers", "id", "int", None, 10, 0, "NO", 1),
        ("customers", "name", "nvarchar", 100, None, None, "YES", 0),
        ("customers", "notes", "nvarchar", -1, None, None, "YES", 0),
        ("order_lines", "order_id", "int", None, 10, 0, "NO", 1),
        ("order_lines", "line", "smallint", None, 5, 0, "NO", 1),
        ("order_lines", "price", "decimal", None, 12, 2, "NO", 0),
    ]

    customers, lines = tables_from_rows(rows)

    assert customers.name == "customers" and customers.fields == ["id", "name", "notes"]
    assert [(c.type, c.nullable, c.primary_key) for c in customers.columns] == [
        ("int", False, True),
        ("nvarchar(100)", True, False),
        ("nvarchar(max)", True, False),
    ]
    assert [c.name for c in lines.columns if c.primary_key] == ["order_id", "line"]
    assert lines.columns[2].type == "decimal(12,2)"
