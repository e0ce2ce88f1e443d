"""MySQL / MariaDB probe: PyMySQL, run in a thread of MySQL's pool (probes/blocking.py) so it never
blocks the event loop.

The TCP connection is opened here, to the checked address, and handed to PyMySQL (its public
`defer_connect` + `connect(sock)`); TLS goes through our own SSLContext, which verifies the name
the user gave (PyMySQL would check the address it connected to) and times the handshake.

TLS modes, in libpq's vocabulary: disable = no TLS; allow/prefer = TLS when the server offers it;
require = TLS, certificate not checked; verify-ca = certificate chain checked; verify-full = chain
and host name checked. As with libpq, a CA that was given is used to check the chain in any mode.

Timings: `connect` is the TCP connect, `tls` the handshake, `auth` the rest of the MySQL handshake
(greeting, authentication, session setup), `query` the probe's query.

If the budget runs out the runner stops waiting, but the thread goes on until PyMySQL's own
timeouts (set from the same budget) end it; it then closes its connection.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pymysql
from pymysql.constants import CR

from connhub.domain.engines import Engine
from connhub.domain.reports import ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget, SslMaterial
from connhub.probes.blocking import run_blocking
from connhub.probes.support import (
    TLS_REQUIRED_MODES,
    VERIFYING_MODES,
    load_client_certificate,
    record_tls,
    tables_from_catalog_rows,
    time_left,
)

T = TypeVar("T")

_MIN_TIMEOUT_S = 0.5

# One information_schema query for the whole database; COLUMN_KEY = 'PRI' marks primary keys.
TABLES_QUERY = """
SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES', COLUMN_KEY = 'PRI'
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = %s
ORDER BY TABLE_NAME, ORDINAL_POSITION
"""


class MysqlProbe:
    async def test(self, target: ProbeTarget, ctx: ProbeContext) -> None:
        await run_blocking(Engine.MYSQL, _with_connection, target, ctx, _ping)

    async def discover_tables(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        database = target.schema_name or target.database
        rows = await run_blocking(Engine.MYSQL, _with_connection, target, ctx, lambda c: _columns(c, database))
        return tables_from_catalog_rows(rows)


PROBE = MysqlProbe()


def _ping(conn: Any) -> None:
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchall()


def _columns(conn: Any, database: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(TABLES_QUERY, (database,))
        return list(cursor.fetchall())


# --- connecting (all of this runs in the worker thread) ----------------------------------------


def _with_connection(target: ProbeTarget, ctx: ProbeContext, work: Callable[[Any], T]) -> T:
    deadline = time.monotonic() + ctx.timeout_s
    with _classified():
        conn, tls = _connect(target, ctx, deadline)
        try:
            _record_session(conn, tls, ctx)
            with ctx.phase("query"):
                return work(conn)
        finally:
            conn.close()


def _connect(target: ProbeTarget, ctx: ProbeContext, deadline: float) -> tuple[Any, _ProbeTlsContext | None]:
    material = target.ssl or SslMaterial(mode="prefer")
    tls = _tls_context(material, target.host, ctx)
    conn = pymysql.connections.Connection(
        user=target.user,
        # PyMySQL would encode a str as latin-1; servers compare the UTF-8 bytes CREATE USER saw.
        password=target.password.encode("utf-8"),
        database=target.database,
        port=ctx.dial_port(target),
        host=ctx.address,
        connect_timeout=time_left(deadline, _MIN_TIMEOUT_S),
        read_timeout=time_left(deadline, _MIN_TIMEOUT_S),
        write_timeout=time_left(deadline, _MIN_TIMEOUT_S),
        charset="utf8mb4",
        autocommit=True,
        # Given a context, PyMySQL insists on TLS. Not given one, it would build (slowly: the whole
        # system store) a context of its own; allow/prefer get ours below instead.
        ssl=tls if material.mode in TLS_REQUIRED_MODES else None,
        ssl_disabled=material.mode not in TLS_REQUIRED_MODES,
        defer_connect=True,
    )
    if tls is not None and material.mode not in TLS_REQUIRED_MODES:
        # PyMySQL's "preferred" mode: TLS when the server offers it, plain text otherwise.
        conn.ssl, conn.ctx = True, tls
    sock = _open_socket(ctx, ctx.dial_port(target), deadline)
    handshake_started = time.perf_counter()
    conn.connect(sock)
    handshake_ms = (time.perf_counter() - handshake_started) * 1000
    ctx.phases.auth_ms = handshake_ms - (ctx.phases.tls_ms or 0.0)
    return conn, tls


def _open_socket(ctx: ProbeContext, port: int, deadline: float) -> socket.socket:
    try:
        with ctx.phase("connect"):
            sock = socket.create_connection((ctx.address, port), timeout=time_left(deadline, _MIN_TIMEOUT_S))
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ProbeFailure(_os_category(exc), f"Can't connect to {ctx.address}:{port} ({reason})") from None
    # What PyMySQL sets on the sockets it opens itself.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


def _record_session(conn: Any, tls: _ProbeTlsContext | None, ctx: ProbeContext) -> None:
    version = str(conn.get_server_info())
    # MariaDB < 11 prefixes its version with "5.5.5-" for the sake of old clients.
    ctx.server_version = version.removeprefix("5.5.5-") if "mariadb" in version.lower() else version
    sock = tls.tls_socket if tls is not None else None
    record_tls(ctx, [sock] if sock is not None else [])
    mode = tls.mode if tls is not None else "disable"
    if mode in TLS_REQUIRED_MODES and sock is None:
        # Older PyMySQL releases fall back to plain text silently; the mode forbids it.
        raise ProbeFailure(ErrorCategory.TLS_FAILED, f"TLS is required ({mode}) but the server does not offer it")


class _ProbeTlsContext(ssl.SSLContext):
    """Checks the certificate against the name the user gave (and sends it as SNI), whatever
    address PyMySQL connected to; remembers the TLS socket and times the handshake."""

    mode: str
    server_name: str
    probe_ctx: ProbeContext
    tls_socket: ssl.SSLSocket | None = None

    def wrap_socket(  # the same call; the host PyMySQL passes is replaced
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        with self.probe_ctx.phase("tls"):
            self.tls_socket = super().wrap_socket(
                sock,
                server_side=server_side,
                do_handshake_on_connect=do_handshake_on_connect,
                suppress_ragged_eofs=suppress_ragged_eofs,
                server_hostname=self.server_name,
                session=session,
            )
        return self.tls_socket


def _tls_context(material: SslMaterial, host: str, probe_ctx: ProbeContext) -> _ProbeTlsContext | None:
    if material.mode == "disable":
        return None
    context = _ProbeTlsContext(ssl.PROTOCOL_TLS_CLIENT)
    context.mode, context.server_name, context.probe_ctx = material.mode, host, probe_ctx
    # Like libpq: the chain is checked in verify-* modes, and in any mode when a CA was given.
    verify = material.mode in VERIFYING_MODES or material.ca is not None
    context.check_hostname = material.mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    # MySQL's self-generated certificates fail Python 3.13's strict X.509 checks; libpq skips them too.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if material.ca is not None:
        context.load_verify_locations(cadata=material.ca)
    elif verify:
        context.load_default_certs()
    if material.cert is not None and material.key is not None:
        # An unusable certificate or key (ssl.SSLError) is reported by _classified.
        load_client_certificate(context, material.cert, material.key)
    return context


# --- errors ------------------------------------------------------------------------------------

_SERVER_CODES = {
    1045: ErrorCategory.AUTH_FAILED,  # access denied (wrong user or password)
    1698: ErrorCategory.AUTH_FAILED,  # access denied (e.g. unix_socket auth for this user)
    1049: ErrorCategory.DATABASE_NOT_FOUND,
    1044: ErrorCategory.PERMISSION_DENIED,  # no access to that database
    1142: ErrorCategory.PERMISSION_DENIED,  # command denied on a table
    3159: ErrorCategory.TLS_FAILED,  # the server requires secure transport
    CR.CR_SSL_CONNECTION_ERROR: ErrorCategory.TLS_FAILED,
}


@contextmanager
def _classified() -> Iterator[None]:
    try:
        yield
    except pymysql.MySQLError as exc:
        raise _from_pymysql(exc) from None
    except ssl.SSLError as exc:  # a CA, certificate or key that OpenSSL cannot load
        raise ProbeFailure(ErrorCategory.TLS_FAILED, f"Invalid TLS material: {exc}") from None


def _from_pymysql(exc: pymysql.MySQLError) -> ProbeFailure:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    original = getattr(exc, "original_exception", None)
    if isinstance(original, OSError):  # PyMySQL wraps socket and TLS errors as 2003
        return ProbeFailure(_os_category(original), message)
    if code in _SERVER_CODES:
        return ProbeFailure(_SERVER_CODES[code], message)
    if code == CR.CR_SERVER_LOST and "timed out" in message:
        return ProbeFailure(ErrorCategory.TIMEOUT, message)
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, message)


def _os_category(exc: OSError) -> ErrorCategory:
    if isinstance(exc, ssl.SSLError):
        return ErrorCategory.TLS_FAILED
    if isinstance(exc, TimeoutError):
        return ErrorCategory.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return ErrorCategory.PORT_CLOSED
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ErrorCategory.HOST_UNREACHABLE
    return ErrorCategory.DRIVER_ERROR
