"""Oracle probe: python-oracledb in thin mode (pure Python, no Oracle Client), async API.

The connection goes to `ctx.address` with `service_name=target.database`. TLS (protocol `tcps`)
is used for require, verify-ca and verify-full; disable, allow and prefer connect over plain
`tcp`: Oracle Net has no in-protocol upgrade, so "prefer" would be two whole connection attempts in
one budget (the password never crosses the wire in the clear either way: O5LOGON/O7LOGON).

Certificates are checked by an SSLContext the probe builds (oracledb's `ssl_context` parameter):
- the CA comes from memory (`cadata`), the client certificate and key from private temp files;
- for verify-full the context checks the certificate against `target.host` (see
  `_NamedContext`). oracledb's own check (`ssl_server_dn_match`) would compare it with the host it
  dials, our IP address, and fail for every certificate issued to a name, so it is turned off and
  OpenSSL's host name check does the job on the same handshake.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import oracledb

from connhub.domain.reports import Column, ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget, SslMaterial
from connhub.probes.support import (
    ERRNO_CATEGORIES,
    TLS_REQUIRED_MODES,
    causes,
    first_line,
    load_client_certificate,
    record_tls,
    server_name,
    tables_from_columns,
    timed_out,
    where,
)

# One catalog query: every column of the owner's tables and views, with the primary key columns.
# Dropped tables waiting in the recycle bin (BIN$...) are left out.
TABLES_QUERY = """
SELECT CASE WHEN c.owner = :owner THEN c.table_name ELSE c.owner || '.' || c.table_name END,
       c.column_name, c.data_type, c.data_length, c.char_length,
       c.data_precision, c.data_scale, c.nullable,
       CASE WHEN pk.column_name IS NULL THEN 0 ELSE 1 END AS primary_key
  FROM all_tab_columns c
  LEFT JOIN (SELECT cc.owner, cc.table_name, cc.column_name
               FROM all_constraints k
               JOIN all_cons_columns cc
                 ON cc.owner = k.owner AND cc.constraint_name = k.constraint_name
              WHERE k.constraint_type = 'P' AND k.owner IN ({owners})) pk
    ON pk.owner = c.owner AND pk.table_name = c.table_name AND pk.column_name = c.column_name
 WHERE c.owner IN ({owners})
   AND c.table_name NOT LIKE 'BIN$%'
 ORDER BY CASE WHEN c.owner = :owner THEN 0 ELSE 1 END, c.owner, c.table_name, c.column_id
"""


class OracleProbe:
    async def test(self, target: ProbeTarget, ctx: ProbeContext) -> None:
        async with _connection(target, ctx) as connection, connection.cursor() as cursor:
            with ctx.phase("query"):
                await cursor.execute("SELECT 1 FROM DUAL")
                await cursor.fetchall()

    async def discover_tables(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        async with _connection(target, ctx) as connection, connection.cursor() as cursor:
            with ctx.phase("query"):
                cursor.arraysize = 1000
                query, binds = tables_query(target)
                await cursor.execute(query, binds)
                rows = await cursor.fetchall()
        return tables_from_oracle_rows(rows)


PROBE = OracleProbe()


def tables_query(target: ProbeTarget) -> tuple[str, dict[str, str]]:
    """TABLES_QUERY over the target's own schema and the others it asks for, with its binds."""
    others = {f"other{index}": owner for index, owner in enumerate(target.schemas)}
    owners = ", ".join([":owner", *(f":{name}" for name in others)])
    return TABLES_QUERY.replace("{owners}", owners), {"owner": schema_owner(target), **others}


def schema_owner(target: ProbeTarget) -> str:
    """The schema to read: `target.schema_name` or the user, as Oracle stores unquoted names (upper
    case); a name written in double quotes keeps its case."""
    name = target.schema_name or target.user
    if len(name) > 1 and name.startswith('"') and name.endswith('"'):
        return name[1:-1]
    return name.upper()


# --- the connection ------------------------------------------------------------------------------


@asynccontextmanager
async def _connection(target: ProbeTarget, ctx: ProbeContext) -> AsyncIterator[oracledb.AsyncConnection]:
    """An open connection bounded by the budget; driver errors classified; always closed."""
    if ctx.timeout_s <= 0:
        raise timed_out(target, ctx)
    try:
        # Thin mode bounds the TCP connect only; a server that accepts and then says nothing
        # is bounded by this timeout.
        async with asyncio.timeout(ctx.timeout_s):
            tls = _tls_context(target)
            with ctx.phase("connect"):
                connection = await oracledb.connect_async(**_connect_params(target, ctx, tls))
            try:
                ctx.server_version = connection.version
                if tls is not None:
                    ctx.tls.enabled = True  # tcps connects over TLS or not at all, handshake kept or not
                    record_tls(ctx, tls.handshakes)
                yield connection
            finally:
                with suppress(oracledb.Error, OSError):
                    await connection.close()
    except TimeoutError:
        raise timed_out(target, ctx) from None
    except oracledb.Error as exc:
        raise classify(exc, target, ctx) from exc


def _connect_params(target: ProbeTarget, ctx: ProbeContext, tls: _NamedContext | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "user": target.user,
        "password": target.password,
        "host": ctx.address,
        "port": ctx.dial_port(target),
        "service_name": target.database,
        "tcp_connect_timeout": ctx.timeout_s,
        "retry_count": 0,
        "protocol": "tcp",
    }
    if tls is not None:
        params.update(protocol="tcps", ssl_context=tls, ssl_server_dn_match=False)
    return params


class _NamedContext(ssl.SSLContext):
    """An SSLContext that presents `server_name` (SNI) and, with `verify_name`, checks the
    certificate against it, whatever host name the driver passes (our IP address, or None).

    oracledb hands its `ssl_context` to asyncio's start_tls, which calls `wrap_bio`; it also turns
    `check_hostname` off on the context, so the check is turned back on here, just before each
    TLS object is made. The TLS objects are kept to report the protocol version and cipher.
    """

    def __init__(self, protocol: int, *, server_name: str, verify_name: bool) -> None:
        self.server_name = server_name
        self.verify_name = verify_name
        self.handshakes: list[ssl.SSLObject] = []

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        self.check_hostname = self.verify_name
        tls_object = super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)
        self.handshakes.append(tls_object)
        return tls_object

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        # The blocking path, should a driver version use it: same name, same check.
        self.check_hostname = self.verify_name
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def _tls_context(target: ProbeTarget) -> _NamedContext | None:
    material = target.ssl
    if material is None or material.mode not in TLS_REQUIRED_MODES:
        return None
    context = _NamedContext(
        ssl.PROTOCOL_TLS_CLIENT,
        server_name=server_name(target.host),
        verify_name=material.mode == "verify-full",
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if material.mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # encrypted, not authenticated: libpq's "require"
    elif material.ca:
        context.load_verify_locations(cadata=material.ca)
    else:
        context.load_default_certs()
    _load_client_certificate(context, material)
    return context


def _load_client_certificate(context: ssl.SSLContext, material: SslMaterial) -> None:
    if not (material.cert and material.key):
        return
    try:
        load_client_certificate(context, material.cert, material.key)
    except ssl.SSLError as exc:
        raise ProbeFailure(
            ErrorCategory.TLS_FAILED, f"The client certificate or key is unusable: {exc.reason}"
        ) from None


# --- errors --------------------------------------------------------------------------------------

# Oracle and oracledb codes that name the failure; the rest are DRIVER_ERROR with their message.
_CODE_CATEGORIES = {
    "ORA-01017": ErrorCategory.AUTH_FAILED,  # invalid username/password
    "ORA-28001": ErrorCategory.AUTH_FAILED,  # the password has expired
    "ORA-28000": ErrorCategory.PERMISSION_DENIED,  # the account is locked
    "ORA-01045": ErrorCategory.PERMISSION_DENIED,  # no CREATE SESSION privilege
    "ORA-01031": ErrorCategory.PERMISSION_DENIED,  # insufficient privileges
    "ORA-12514": ErrorCategory.DATABASE_NOT_FOUND,  # service unknown to the listener
    "ORA-12505": ErrorCategory.DATABASE_NOT_FOUND,  # SID unknown to the listener
    "DPY-6001": ErrorCategory.DATABASE_NOT_FOUND,  # thin mode's ORA-12514
    "DPY-6003": ErrorCategory.DATABASE_NOT_FOUND,  # thin mode's ORA-12505
    "ORA-12541": ErrorCategory.PORT_CLOSED,  # no listener
    "ORA-12170": ErrorCategory.TIMEOUT,
    "ORA-12535": ErrorCategory.TIMEOUT,
    "DPY-4024": ErrorCategory.TIMEOUT,  # call timeout exceeded
    "DPY-6006": ErrorCategory.TLS_FAILED,  # the name on the server certificate does not match
    "DPY-6002": ErrorCategory.TLS_FAILED,  # the DN on the server certificate does not match
}


def classify(exc: BaseException, target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The category of an oracledb error, from the codes and the socket errors chained in it.

    Thin mode wraps connection failures in DPY-6005 ("cannot connect to database") with the
    socket, TLS or listener error as the cause.
    """
    chain = causes(exc)
    place = where(target, ctx)
    for error in chain:
        category = _category_of(error)
        if category is not None:
            return ProbeFailure(category, _message(category, error, target, place))
    # The innermost error says what happened ("DPY-4011: ... closed the connection"), the outer
    # DPY-6005 only that connecting failed.
    innermost = next((error for error in reversed(chain) if isinstance(error, oracledb.Error)), exc)
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"Oracle connection to {place} failed: {_first_line(innermost)}")


def _category_of(error: BaseException) -> ErrorCategory | None:
    if isinstance(error, ssl.SSLError | ssl.CertificateError):
        return ErrorCategory.TLS_FAILED
    if isinstance(error, ConnectionRefusedError):
        return ErrorCategory.PORT_CLOSED
    if isinstance(error, TimeoutError):
        return ErrorCategory.TIMEOUT
    if isinstance(error, socket.gaierror):
        return ErrorCategory.DNS_FAILED
    if isinstance(error, OSError) and error.errno in ERRNO_CATEGORIES:
        return ERRNO_CATEGORIES[error.errno]
    code = oracle_code(error)
    return _CODE_CATEGORIES.get(code) if code else None


def oracle_code(error: BaseException) -> str | None:
    """ORA-NNNNN or DPY-NNNN of an oracledb error; for a DPY error that only says "Similar to
    ORA-NNNNN" (a listener's refusal), that ORA code."""
    if not isinstance(error, oracledb.Error) or not error.args:
        return None
    detail = error.args[0]
    full_code = str(getattr(detail, "full_code", "") or "")
    similar = re.search(r"Similar to (ORA-\d{5})", str(getattr(detail, "message", "")))
    if full_code == "DPY-6000" and similar:
        return similar.group(1)
    return full_code or None


def _message(category: ErrorCategory, error: BaseException, target: ProbeTarget, place: str) -> str:
    if category is ErrorCategory.PORT_CLOSED:
        return f"Connection refused by {place}"
    if category is ErrorCategory.TIMEOUT:
        return f"No answer from {place} in time"
    if category is ErrorCategory.DNS_FAILED:
        return f"Could not resolve host {target.host}"
    if category is ErrorCategory.HOST_UNREACHABLE:
        return f"{place} is unreachable"
    if category is ErrorCategory.TLS_FAILED:
        return f"TLS handshake with {place} failed: {_tls_reason(error)}"
    if category is ErrorCategory.AUTH_FAILED:
        return f"Authentication failed for user '{target.user}': {_first_line(error)}"
    if category is ErrorCategory.DATABASE_NOT_FOUND:
        return f"Service '{target.database}' is not known to the listener at {place}: {_first_line(error)}"
    return _first_line(error)


def _tls_reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return error.verify_message
    if isinstance(error, ssl.SSLError) and error.reason:
        return error.reason
    return _first_line(error)


# oracledb adds "Help: https://..." lines (dropped with all but the first line) and the connection id.
_NOISE = re.compile(r"\s*\(CONNECTION_ID=[^)]*\)")


def _first_line(error: BaseException) -> str:
    return first_line(str(error).strip(), _NOISE, type(error).__name__)


# --- the tables ----------------------------------------------------------------------------------


def tables_from_oracle_rows(rows: Sequence[Sequence[Any]]) -> list[Table]:
    """Rows of TABLES_QUERY (ordered by table, then column) as tables."""
    return tables_from_columns(
        (
            str(table),
            Column(
                name=str(column),
                type=_type_name(str(data_type), length, char_length, precision, scale),
                nullable=nullable == "Y",
                primary_key=bool(primary_key),
            ),
        )
        for table, column, data_type, length, char_length, precision, scale, nullable, primary_key in rows
    )


def _type_name(data_type: str, length: Any, char_length: Any, precision: Any, scale: Any) -> str:
    if data_type in {"VARCHAR2", "NVARCHAR2", "CHAR", "NCHAR"} and char_length:
        return f"{data_type}({int(char_length)})"
    if data_type == "RAW" and length:
        return f"RAW({int(length)})"
    if data_type == "NUMBER" and precision is not None:
        return f"NUMBER({int(precision)},{int(scale)})" if scale else f"NUMBER({int(precision)})"
    return data_type
