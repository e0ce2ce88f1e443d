"""PostgreSQL probe: psycopg 3 async, libpq `sslmode` semantics.

libpq is handed the checked address as `hostaddr` and the user's name as `host`, so it connects
where the guard allowed while verify-full still checks the certificate against the name.

Timings: libpq does TCP connect, TLS handshake and authentication in one call, so `connect`
covers all three and `tls`/`auth` stay None rather than guessed. `query` is the probe's query.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors

from connhub.domain.engines import Engine
from connhub.domain.reports import ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget, SslMaterial
from connhub.probes.support import (
    VERIFYING_MODES,
    PrivateFiles,
    certificate_expiry,
    private_files,
    system_ca_file,
    tables_from_catalog_rows,
)

DEFAULT_SCHEMA = Engine.POSTGRESQL.facts.default_schema
_LIBPQ_WITH_SSLCERTMODE = 160000

# One catalog query for the whole schema. pg_catalog rather than information_schema: the latter's
# views cost seconds on schemas with thousands of tables. Only what the user may SELECT is listed
# (as information_schema would); partitions are left out, their parent stands for them. Tables of
# the own schema are named bare, those of the other schemas asked for `schema.table`.
TABLES_QUERY = """
SELECT CASE WHEN n.nspname = %(schema)s THEN c.relname ELSE n.nspname || '.' || c.relname END,
       a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull,
       COALESCE(a.attnum = ANY (pk.indkey), false)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
WHERE n.nspname = ANY (%(schemas)s)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp)'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND pg_catalog.has_any_column_privilege(c.oid, 'SELECT')
ORDER BY n.nspname <> %(schema)s, n.nspname, c.relname, a.attnum
"""


class PostgresProbe:
    async def test(self, target: ProbeTarget, ctx: ProbeContext) -> None:
        async with _connected(target, ctx) as conn, _classified():
            with ctx.phase("query"):
                await conn.execute("SELECT 1")

    async def discover_tables(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        async with _connected(target, ctx) as conn, _classified():
            with ctx.phase("query"):
                schema = target.schema_name or DEFAULT_SCHEMA
                params = {"schema": schema, "schemas": [schema, *target.schemas]}
                cursor = await conn.execute(TABLES_QUERY, params)
                rows = await cursor.fetchall()
        return tables_from_catalog_rows(rows)


PROBE = PostgresProbe()


@asynccontextmanager
async def _connected(target: ProbeTarget, ctx: ProbeContext) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    ssl_material = target.ssl or SslMaterial(mode="prefer")  # libpq's default mode
    # The PEM files exist only while libpq reads them during the handshake.
    with private_files(ca=ssl_material.ca, cert=ssl_material.cert, key=ssl_material.key) as files:
        params = _connect_params(target, ctx, ssl_material, files)
        try:
            with ctx.phase("connect"):
                conn = await psycopg.AsyncConnection.connect(**params)
        except psycopg.Error as exc:
            raise classify(exc) from None
    try:
        _record_session(conn, ctx)
        yield conn
    finally:
        await conn.close()


def _connect_params(
    target: ProbeTarget, ctx: ProbeContext, material: SslMaterial, files: PrivateFiles
) -> dict[str, Any]:
    return {
        "host": target.host,  # what verify-full checks the certificate against
        "hostaddr": ctx.address,  # where the connection goes: the address the guard checked
        "port": ctx.dial_port(target),
        "dbname": target.database,
        "user": target.user,
        "password": target.password,
        # libpq counts whole seconds, at least 2; the runner's budget is the real bound.
        "connect_timeout": max(2, math.ceil(ctx.timeout_s)),
        "application_name": "connhub",
        "gssencmode": "disable",  # no Kerberos here, and no GSS round trip before TLS
        "autocommit": True,
        **_ssl_params(material, files),
    }


def _ssl_params(material: SslMaterial, files: PrivateFiles) -> dict[str, str]:
    """libpq TLS settings that depend only on what the connection stores, never on files in the
    service's home directory (~/.postgresql/root.crt, postgresql.crt would otherwise be used)."""
    params = {"sslmode": material.mode}
    if material.mode == "disable":
        return params
    if "ca" in files.paths:
        params["sslrootcert"] = files.paths["ca"]
    elif material.mode in VERIFYING_MODES:
        # Not libpq's `sslrootcert=system`: psycopg-binary's OpenSSL looks in a path the host lacks.
        params["sslrootcert"] = system_ca_file()
    else:
        # Named but absent: libpq then verifies nothing, as these modes promise without a CA.
        params["sslrootcert"] = str(files.directory / "no-root-certificate.pem")
    if "cert" in files.paths and "key" in files.paths:
        params["sslcert"], params["sslkey"] = files.paths["cert"], files.paths["key"]
    elif psycopg.pq.version() >= _LIBPQ_WITH_SSLCERTMODE:
        params["sslcertmode"] = "disable"  # never present a client certificate found by default
    return params


def _record_session(conn: psycopg.AsyncConnection[Any], ctx: ProbeContext) -> None:
    ctx.server_version = conn.info.parameter_status("server_version")
    ctx.tls.enabled = conn.pgconn.ssl_in_use
    if ctx.tls.enabled:
        ctx.tls.version = _ssl_attribute(conn, "protocol")
        ctx.tls.cipher = _ssl_attribute(conn, "cipher")
        ctx.tls.certificate_expires_at = certificate_expiry(_peer_certificate(conn))


def _ssl_attribute(conn: psycopg.AsyncConnection[Any], name: str) -> str | None:
    """libpq's PQsslAttribute, which psycopg does not wrap: called through `pgconn_ptr`, the
    documented way to reach unwrapped libpq functions. None when libpq cannot be located."""
    pointer: int | None = getattr(conn.pgconn, "pgconn_ptr", None)  # not in psycopg's type stubs
    library = _loaded_libpq()
    if pointer is None or library is None:
        return None
    function = library.PQsslAttribute
    function.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    function.restype = ctypes.c_char_p
    value: bytes | None = function(pointer, name.encode())
    return value.decode() if value else None


def _peer_certificate(conn: psycopg.AsyncConnection[Any]) -> bytes | None:
    """The server's certificate (DER) through libpq's PQsslStruct and the OpenSSL libpq uses;
    None when either cannot be reached. psycopg shows neither the SSL object nor the certificate."""
    pointer: int | None = getattr(conn.pgconn, "pgconn_ptr", None)
    libpq, libssl = _loaded_libpq(), _loaded_library("/libssl", beside="/libpq")
    if pointer is None or libpq is None or libssl is None:
        return None
    libpq.PQsslStruct.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    libpq.PQsslStruct.restype = ctypes.c_void_p
    ssl_object = libpq.PQsslStruct(pointer, b"OpenSSL")
    # OpenSSL 3 renamed SSL_get_peer_certificate; both return a reference the caller frees.
    get_peer = getattr(libssl, "SSL_get1_peer_certificate", None) or getattr(libssl, "SSL_get_peer_certificate", None)
    if not ssl_object or get_peer is None:
        return None
    get_peer.argtypes, get_peer.restype = [ctypes.c_void_p], ctypes.c_void_p
    libssl.i2d_X509.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)]
    libssl.i2d_X509.restype = ctypes.c_int
    libssl.X509_free.argtypes, libssl.X509_free.restype = [ctypes.c_void_p], None
    certificate = get_peer(ssl_object)
    if not certificate:
        return None
    try:
        size = libssl.i2d_X509(certificate, None)
        if size <= 0:
            return None
        buffer = ctypes.create_string_buffer(size)
        cursor = ctypes.c_char_p(ctypes.addressof(buffer))  # i2d_X509 moves it past what it wrote
        libssl.i2d_X509(certificate, ctypes.byref(cursor))
        return buffer.raw[:size]
    finally:
        libssl.X509_free(certificate)


def _loaded_libpq() -> ctypes.CDLL | None:
    # It must be the very libpq that made the connection (psycopg-binary bundles its own): find
    # it among the loaded libraries, and refuse to load another copy (RTLD_NOLOAD).
    return _loaded_library("/libpq")


def _loaded_library(marker: str, beside: str | None = None) -> ctypes.CDLL | None:
    """A library already loaded whose path holds `marker` (in the directory of the one holding
    `beside`, if given: the libssl next to the libpq that uses it), never loading another copy."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            loaded = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    paths = sorted(path for path in loaded if marker in path)
    if beside is not None:
        directories = {os.path.dirname(path) for path in loaded if beside in path}
        paths = [path for path in paths if os.path.dirname(path) in directories]
    for path in paths:
        try:
            return ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_NOW)
        except OSError:
            continue
    return None


# --- errors ------------------------------------------------------------------------------------

_SQLSTATE_CATEGORIES = {
    "28P01": ErrorCategory.AUTH_FAILED,
    "28000": ErrorCategory.AUTH_FAILED,
    "3D000": ErrorCategory.DATABASE_NOT_FOUND,
    "42501": ErrorCategory.PERMISSION_DENIED,
    "57014": ErrorCategory.TIMEOUT,  # query_canceled, e.g. by statement_timeout
}

# Connection failures carry no SQLSTATE in psycopg: libpq only gives their text, so they are told
# apart by it, first match wins. The server's part (FATAL: ...) is English unless its lc_messages
# says otherwise; what is not recognised stays DRIVER_ERROR with libpq's explanation.
_MESSAGE_CATEGORIES: tuple[tuple[re.Pattern[str], ErrorCategory], ...] = tuple(
    (re.compile(pattern), category)
    for pattern, category in (
        (r"certificate|does not match host name", ErrorCategory.TLS_FAILED),
        (r"server does not support ssl|ssl error|ssl syscall|sslmode", ErrorCategory.TLS_FAILED),
        (r"permission denied", ErrorCategory.PERMISSION_DENIED),
        (r'database ".*" does not exist', ErrorCategory.DATABASE_NOT_FOUND),
        (r"authentication failed|no pg_hba\.conf entry|no password supplied", ErrorCategory.AUTH_FAILED),
        (r'role ".*" does not exist|not permitted to log in', ErrorCategory.AUTH_FAILED),
        (r"connection refused", ErrorCategory.PORT_CLOSED),
        (r"no route to host|network is unreachable|host is unreachable", ErrorCategory.HOST_UNREACHABLE),
        (r"timeout expired|timed out", ErrorCategory.TIMEOUT),
    )
)


def classify(exc: psycopg.Error) -> ProbeFailure:
    """The failure a psycopg error means for the user. The text keeps libpq's explanation but not
    psycopg's "connection failed:" prefix."""
    message = str(exc).removeprefix("connection failed: ").removeprefix("connection is bad: ")
    return ProbeFailure(_category(exc, message.lower()), message)


def _category(exc: psycopg.Error, text: str) -> ErrorCategory:
    if isinstance(exc, errors.ConnectionTimeout):
        return ErrorCategory.TIMEOUT
    if exc.sqlstate in _SQLSTATE_CATEGORIES:
        return _SQLSTATE_CATEGORIES[exc.sqlstate]
    for pattern, category in _MESSAGE_CATEGORIES:
        if pattern.search(text):
            return category
    return ErrorCategory.DRIVER_ERROR


@asynccontextmanager
async def _classified() -> AsyncIterator[None]:
    """Errors of the queries after connecting (e.g. SQLSTATE 42501) mapped like connect errors."""
    try:
        yield
    except psycopg.Error as exc:
        raise classify(exc) from None
