"""SQL Server probe: python-tds (pytds, pure Python, TLS by pyOpenSSL) for every sslmode. It
blocks, so each connect-query-close sequence runs in a thread of SQL Server's pool (probes/blocking.py; not
asyncio's default executor, which getaddrinfo and other libraries share); the event loop only
awaits it, bounded by the budget. pytds is given the budget as its own timeouts too, so a thread
the loop stopped waiting for ends by itself soon after.

SQL Server negotiates TLS inside TDS: the PRELOGIN exchange says who wants encryption, then the
TLS handshake travels in PRELOGIN packets. Per sslmode:

- disable: PRELOGIN says ENCRYPT_NOT_SUP, nothing is encrypted (a server that insists on
  encryption refuses the login);
- allow, prefer: ENCRYPT_OFF, so the login packet (with the password) is encrypted, and the
  session too if the server insists; certificate not checked;
- require: ENCRYPT_ON, the whole session is encrypted or there is no login; certificate not
  checked (libpq's "require");
- verify-ca: ENCRYPT_ON, and the handshake fails unless the server's chain leads to `ssl.ca` (the
  system's CAs without one); no name check;
- verify-full: as verify-ca, and the certificate must name `target.host` (see
  `certificate_matches`), checked after the handshake and before LOGIN7, so the password is
  never sent to a server that fails either check.

pytds is given a socket this module connected to the guard-checked address (`sock=`), and
`target.host` as its server name: the name is what SNI, the certificate check and LOGIN7's
ServerName use, and pytds never resolves it. A server may answer a login with a routing
ENVCHANGE (Azure SQL's redirect, read-only routing) and pytds would then connect wherever it
says; the worker thread runs in the probe's egress confinement (probes/egress.py), so that
connection is refused before a packet leaves and the runner reports HOST_FORBIDDEN. FreeTDS
(pymssql) is not used: it follows routing in C, where no Python hook can see or stop it.

pytds's TLS context comes from `pytds.tls.create_context(cafile)`, which always verifies; for
the modes that encrypt without checking, pytds is given a marker instead of a CA file, and this
module's replacement of that function (`_install_tls_context`) answers it with a context that
does not verify. pytds's own host name check (`pytds.tls.validate_host`) fails on current
pyOpenSSL and accepts a Common Name beside SANs, so it is replaced by this module's
(`_install_host_check`); should a pytds release no longer call either, the modes that need them
refuse to run rather than checking less or more quietly.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import OpenSSL.crypto
import OpenSSL.SSL
import pytds
import pytds.tls
from cryptography import x509
from cryptography.x509.oid import NameOID

from connhub.domain.engines import Engine
from connhub.domain.reports import Column, ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget
from connhub.probes.blocking import run_blocking
from connhub.probes.support import (
    VERIFYING_MODES,
    private_files,
    system_ca_file,
    tables_from_columns,
    time_left,
    timed_out,
    where,
)

T = TypeVar("T")

DEFAULT_SCHEMA = Engine.SQL_SERVER.facts.default_schema
_LOGIN_ONLY_MODES = frozenset({"allow", "prefer"})  # ENCRYPT_OFF: TLS for the login packet
_MIN_TIMEOUT_S = 0.05  # what pytds and the socket get once the thread's own limit has passed

VERSION_QUERY = "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))"

# One catalog query: the columns of the schemas' tables and views in ordinal order, with whether
# each is part of the table's primary key. Tables of the own schema (the first parameter) are named
# bare, those of the other schemas asked for (the IN list) `schema.table`.
TABLES_QUERY = """
SELECT CASE WHEN c.TABLE_SCHEMA = %s THEN c.TABLE_NAME ELSE c.TABLE_SCHEMA + '.' + c.TABLE_NAME END,
       c.COLUMN_NAME, c.DATA_TYPE, c.CHARACTER_MAXIMUM_LENGTH,
       c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE,
       CASE WHEN k.COLUMN_NAME IS NULL THEN 0 ELSE 1 END AS PRIMARY_KEY
  FROM INFORMATION_SCHEMA.COLUMNS c
  LEFT JOIN INFORMATION_SCHEMA.TABLE_CONSTRAINTS t
    ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
   AND t.CONSTRAINT_TYPE = 'PRIMARY KEY'
  LEFT JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k
    ON k.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = t.CONSTRAINT_NAME
   AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME
 WHERE c.TABLE_SCHEMA IN ({schemas})
 ORDER BY CASE WHEN c.TABLE_SCHEMA = %s THEN 0 ELSE 1 END, c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION
"""


class SqlServerProbe:
    async def test(self, target: ProbeTarget, ctx: ProbeContext) -> None:
        await _in_thread(target, ctx, lambda connection: None)

    async def discover_tables(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        schema = target.schema_name or DEFAULT_SCHEMA
        schemas = (schema, *target.schemas)
        query = TABLES_QUERY.replace("{schemas}", ", ".join(["%s"] * len(schemas)))

        def read(connection: Any) -> list[Table]:
            return tables_from_mssql_rows(_rows(connection, query, (schema, *schemas, schema)))

        return await _in_thread(target, ctx, read)


PROBE = SqlServerProbe()


# --- the connection ------------------------------------------------------------------------------


async def _in_thread(target: ProbeTarget, ctx: ProbeContext, work: Callable[[Any], T]) -> T:
    """Connect, read the version, run `work`, close: in a worker thread, bounded by the budget."""
    if ctx.timeout_s <= 0:
        raise timed_out(target, ctx)
    mode = target.ssl.mode if target.ssl else "disable"
    # The probe's context goes with it into the thread: its egress confinement included.
    session = functools.partial(contextvars.copy_context().run, _session, target, ctx, mode, work)
    _process_setup()
    try:
        async with asyncio.timeout(ctx.timeout_s):
            return await run_blocking(Engine.SQL_SERVER, session)
    except TimeoutError:
        raise timed_out(target, ctx) from None


class CertificateNameMismatch(Exception):
    """The server's certificate (chain verified) does not name the host the user typed."""

    def __init__(self, host: str, names: Sequence[str]) -> None:
        super().__init__(host, names)
        self.host = host
        self.names = tuple(names)


def _session(target: ProbeTarget, ctx: ProbeContext, mode: str, work: Callable[[Any], T]) -> T:
    """The blocking part; every failure leaves as a ProbeFailure, the connection always closed."""
    # The thread's own limit ends a little before the event loop's, so that a driver error that
    # pytds holds until its login timeout (it waits out the rest of it before raising some errors)
    # still reaches the classifier rather than becoming a bare timeout.
    deadline = time.monotonic() + max(0.05, ctx.timeout_s - min(0.5, ctx.timeout_s * 0.1))
    try:
        connection = _connect(target, ctx, mode, deadline)
        try:
            with ctx.phase("query"):
                _record_tls(connection, ctx)
                ctx.server_version = str(_rows(connection, VERSION_QUERY)[0][0])
                return work(connection)
        finally:
            connection.close()
    except ProbeFailure:
        raise
    except Exception as exc:
        raise classify(exc, target, ctx) from exc


def _connect(target: ProbeTarget, ctx: ProbeContext, mode: str, deadline: float) -> Any:
    if mode == "verify-full" and not _process_setup().host_check_installed:
        raise ProbeFailure(
            ErrorCategory.TLS_FAILED,
            "verify-full cannot be enforced with this python-tds version (its host name check could not be "
            "replaced by a correct one); use verify-ca, or a python-tds version this service supports",
        )
    if mode != "disable" and mode not in VERIFYING_MODES and not _process_setup().tls_context_installed:
        raise ProbeFailure(
            ErrorCategory.TLS_FAILED,
            f"sslmode {mode} cannot be served with this python-tds version (it cannot encrypt without checking "
            "the certificate); use verify-ca or verify-full",
        )
    server_name = tls_server_name(target.host)
    material = target.ssl
    with private_files(ca=material.ca if material and mode in VERIFYING_MODES else None) as files:
        cafile = _cafile(mode, files.paths.get("ca"))
        with ctx.phase("connect"):
            sock = socket.create_connection(
                (ctx.address, ctx.dial_port(target)), timeout=time_left(deadline, _MIN_TIMEOUT_S)
            )
        try:
            with ctx.phase("auth"):  # PRELOGIN, TLS handshake, certificate checks, LOGIN7
                return pytds.connect(
                    dsn=server_name,  # SNI, the certificate's expected name and LOGIN7's ServerName
                    port=ctx.dial_port(target),
                    sock=sock,  # connected to the checked address: pytds resolves nothing
                    user=target.user,
                    password=target.password,
                    database=target.database,
                    cafile=cafile,
                    validate_host=mode == "verify-full",
                    enc_login_only=mode in _LOGIN_ONLY_MODES,
                    login_timeout=time_left(deadline, _MIN_TIMEOUT_S),
                    timeout=time_left(deadline, _MIN_TIMEOUT_S),
                    disable_connect_retry=True,
                    pooling=False,
                    appname="connhub",
                    autocommit=True,
                )
        except BaseException:
            sock.close()
            raise


def _cafile(mode: str, given: str | None) -> str | None:
    """What pytds is given as `cafile`: none (no TLS offered) for disable, the marker of a context
    that does not verify for allow, prefer and require, a CA file for the verifying modes."""
    if mode == "disable":
        return None
    if mode not in VERIFYING_MODES:
        return _UNVERIFIED
    if given is None:
        return system_ca_file()  # pytds takes a CA file, nothing else
    _check_ca_file(given)
    return given


def _rows(connection: Any, query: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    cursor = connection.cursor()
    try:
        cursor.execute(query, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _check_ca_file(path: str) -> None:
    """Load `ssl.ca` as pytds will, before connecting, so a bad PEM is named as such."""
    try:
        OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD).load_verify_locations(cafile=path)
    except OpenSSL.SSL.Error as exc:
        raise ProbeFailure(
            ErrorCategory.TLS_FAILED, f"ssl.ca holds no CA certificate OpenSSL can use: {_openssl_reasons(exc)}"
        ) from None


def _record_tls(connection: Any, ctx: ProbeContext) -> None:
    """Whether the session is encrypted: pytds keeps its TLS connection as the session's transport
    after the login unless the login alone was encrypted (ENCRYPT_OFF both ways), when it goes back
    to the clear socket. Version and cipher are read from it; nothing depends on them."""
    transport = getattr(getattr(connection, "_tds_socket", None), "sock", None)
    ctx.tls.enabled = isinstance(transport, pytds.tls.EncryptedSocket)
    tls = getattr(transport, "_tls_conn", None)
    if ctx.tls.enabled and isinstance(tls, OpenSSL.SSL.Connection):
        ctx.tls.version = tls.get_protocol_version_name()
        ctx.tls.cipher = tls.get_cipher_name()


def tls_server_name(host: str) -> str:
    """The name pytds is given for `host`: an IP address as is, a DNS name in ASCII (IDNA),
    lower case, without a trailing dot."""
    name = host.strip().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if "\\" in name:  # pytds would read host\instance and ask the SQL Browser (UDP) for the port
        raise ProbeFailure(
            ErrorCategory.DRIVER_ERROR, "Named instances (host\\instance) are not supported: give the port"
        )
    try:
        return name.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ProbeFailure(ErrorCategory.TLS_FAILED, f"{host!r} cannot be checked against a certificate") from None


# The host name check. RFC 6125 as libpq's verify-full applies it: a DNS name against the
# certificate's dNSName SANs (a leading "*." matches exactly one label), an IP address against its
# iPAddress SANs; the subject's Common Name only when the certificate has no SAN of that kind
# (an IP address: no SAN extension at all). Case-insensitive; no partial wildcards.


def certificate_matches(cert: x509.Certificate, host: str) -> bool:
    host = host.rstrip(".").lower()
    try:
        san: x509.SubjectAlternativeName | None = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        san = None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if san is not None:
            return address in san.get_values_for_type(x509.IPAddress)
        return any(name.strip() == host for name in _common_names(cert))
    dns_names = san.get_values_for_type(x509.DNSName) if san is not None else []
    patterns = dns_names or _common_names(cert)
    return any(_dns_name_matches(pattern, host) for pattern in patterns)


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The names a certificate is for (SANs, else the Common Name), for messages."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return _common_names(cert)
    names = [*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))]
    return names or _common_names(cert)


def _common_names(cert: x509.Certificate) -> list[str]:
    return [str(attribute.value) for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _dns_name_matches(pattern: str, host: str) -> bool:
    pattern = pattern.strip().rstrip(".").lower()
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and "*" not in pattern[2:] and rest == pattern[2:] and "." in rest
    return "*" not in pattern and pattern == host


def _pytds_validate_host(cert: OpenSSL.crypto.X509, name: bytes) -> bool:
    """Stands in for `pytds.tls.validate_host(cert, name)`: pytds calls it after the TLS handshake
    (chain already verified) and before LOGIN7, with the server name it was given (ours)."""
    certificate = cert.to_cryptography()
    host = name.decode("ascii")
    if not certificate_matches(certificate, host):
        raise CertificateNameMismatch(host, certificate_names(certificate))
    return True


def _install_host_check() -> bool:
    """The one change made to pytds: its `validate_host` (it calls X509.get_extension, which
    pyOpenSSL no longer has, and accepts a Common Name beside SANs) is replaced by ours. Done
    once, by `_process_setup`; pytds looks the function up in its module when it calls it. False when this
    pytds no longer calls it that way (verify-full then refuses to run)."""
    establish_channel = getattr(pytds.tls, "establish_channel", None)
    code = getattr(establish_channel, "__code__", None)
    if code is None or "validate_host" not in code.co_names or not hasattr(pytds.tls, "validate_host"):
        return False
    pytds.tls.validate_host = _pytds_validate_host
    return True


# The marker given to pytds as `cafile` for a TLS context that does not verify (see the module
# docstring); not a path, so it never names a file.
_UNVERIFIED = "connhub:encrypt-without-verifying"


def _install_tls_context() -> bool:
    """The other change made to pytds: `create_context` answers `_UNVERIFIED` with a context that
    encrypts without checking the certificate (and any real CA file as pytds does). False when this
    pytds builds its context another way (allow, prefer and require then refuse to run)."""
    original = getattr(pytds.tls, "create_context", None)
    code = getattr(getattr(pytds, "connect", None), "__code__", None)
    if original is None or code is None or "create_context" not in code.co_names:
        return False

    def create_context(cafile: str) -> OpenSSL.SSL.Context:
        if cafile != _UNVERIFIED:
            verifying: OpenSSL.SSL.Context = original(cafile)
            return verifying
        # TLS 1.2, as pytds's own contexts: its handshake loop inside PRELOGIN packets ends when the
        # client's handshake does, before a TLS 1.3 client has sent its Finished.
        context = OpenSSL.SSL.Context(OpenSSL.SSL.TLSv1_2_METHOD)
        context.set_verify(OpenSSL.SSL.VERIFY_NONE)
        return context

    pytds.tls.create_context = create_context
    return True


@dataclass(frozen=True)
class _ProcessSetup:
    host_check_installed: bool
    tls_context_installed: bool


@functools.cache
def _process_setup() -> _ProcessSetup:
    """The two process-wide changes to pytds, made once, on this probe's first use (never at import)."""
    return _ProcessSetup(_install_host_check(), _install_tls_context())


# --- errors --------------------------------------------------------------------------------------

# Server message numbers (sys.messages) that name a failure after login.
_SERVER_CATEGORIES = {
    229: ErrorCategory.PERMISSION_DENIED,  # permission denied on object
    230: ErrorCategory.PERMISSION_DENIED,  # permission denied on column
    262: ErrorCategory.PERMISSION_DENIED,  # permission denied in database
    916: ErrorCategory.PERMISSION_DENIED,  # the server principal cannot access the database
    911: ErrorCategory.DATABASE_NOT_FOUND,  # database does not exist
}

# Login failures SQL Server reports with their own number (pytds reports the last message's).
_LOGIN_FAILURES = {18456, 18452, 18470, 18486, 18487, 18488}


def classify(exc: BaseException, target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The category of an error from our socket, pytds or pyOpenSSL."""
    place = where(target, ctx)
    if isinstance(exc, TimeoutError) and exc.__cause__ is not None and not isinstance(exc.__cause__, TimeoutError):
        exc = exc.__cause__  # pytds waited out its login timeout after this error, then raised TimeoutError
    if isinstance(exc, ProbeFailure):
        return exc
    if isinstance(exc, CertificateNameMismatch):
        names = ", ".join(exc.names) or "no name"
        return ProbeFailure(
            ErrorCategory.TLS_FAILED, f"The certificate of {place} is for {names}, not {exc.host} (verify-full)"
        )
    if isinstance(exc, OpenSSL.SSL.Error):
        return ProbeFailure(ErrorCategory.TLS_FAILED, f"TLS handshake with {place} failed: {_openssl_reasons(exc)}")
    if isinstance(exc, pytds.DatabaseError):
        return _classify_server_error(exc, target)
    if isinstance(exc, pytds.InterfaceError) and "closed" in str(exc).lower():
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{place} closed the connection during login")
    if isinstance(exc, pytds.Error) and "required by server" in str(exc):
        return ProbeFailure(
            ErrorCategory.TLS_FAILED, f"{place} requires encryption, which sslmode disable does not offer: use require"
        )
    if isinstance(exc, pytds.Error) and "not supported by server" in str(exc):
        return ProbeFailure(
            ErrorCategory.TLS_FAILED, f"{place} does not offer encryption (no certificate), which {_mode(target)} needs"
        )
    if isinstance(exc, TimeoutError):
        return timed_out(target, ctx)
    if isinstance(exc, ConnectionRefusedError):
        return ProbeFailure(ErrorCategory.PORT_CLOSED, f"{place}: connection refused")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ProbeFailure(ErrorCategory.HOST_UNREACHABLE, f"{place}: {os.strerror(exc.errno)}")
    if isinstance(exc, ConnectionError):
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{place} closed the connection during login")
    if isinstance(exc, pytds.InterfaceError):
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{place} did not answer as SQL Server: {exc}")
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{type(exc).__name__}: {exc}")


def _classify_server_error(exc: Any, target: ProbeTarget) -> ProbeFailure:
    """A server message raised by pytds: `msg_no` is the last message's number, args[0] holds the
    text of all of them (SQL Server refuses a database it cannot open with 4060 then 18456)."""
    number = int(getattr(exc, "msg_no", 0) or 0)
    text = str(exc.args[0]) if exc.args else str(exc)
    if number == 4060 or "Cannot open database" in text:
        return ProbeFailure(
            ErrorCategory.DATABASE_NOT_FOUND,
            f"Cannot open database '{target.database}': it does not exist or the login cannot use it",
        )
    if number in _LOGIN_FAILURES or "Login failed" in text:
        return ProbeFailure(ErrorCategory.AUTH_FAILED, f"Login failed for user '{target.user}'")
    category = _SERVER_CATEGORIES.get(number)
    if category is not None:
        return ProbeFailure(category, _first_line(text))
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"SQL Server error {number}: {_first_line(text)}")


def _openssl_reasons(exc: OpenSSL.SSL.Error) -> str:
    """OpenSSL's reason strings, e.g. "certificate verify failed" (the chain does not lead to the
    CA given, or a certificate is expired or not yet valid)."""
    detail = exc.args[0] if exc.args else None
    if isinstance(detail, list):
        reasons = [str(entry[-1]) for entry in detail if isinstance(entry, tuple) and entry]
        if reasons:
            return "; ".join(reasons)
    return str(exc) or type(exc).__name__


def _mode(target: ProbeTarget) -> str:
    return target.ssl.mode if target.ssl else "disable"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text.strip() or "unknown error"


# --- the tables ----------------------------------------------------------------------------------


def tables_from_mssql_rows(rows: Sequence[Sequence[Any]]) -> list[Table]:
    """Rows of TABLES_QUERY (ordered by table, then ordinal position) as tables."""
    return tables_from_columns(
        (
            str(table),
            Column(
                name=str(column),
                type=_type_name(str(data_type), length, precision, scale),
                nullable=str(nullable).upper() == "YES",
                primary_key=bool(primary_key),
            ),
        )
        for table, column, data_type, length, precision, scale, nullable, primary_key in rows
    )


def _type_name(data_type: str, length: Any, precision: Any, scale: Any) -> str:
    if length is not None and data_type in {"char", "nchar", "varchar", "nvarchar", "binary", "varbinary"}:
        return f"{data_type}(max)" if int(length) == -1 else f"{data_type}({int(length)})"
    if data_type in {"decimal", "numeric"} and precision is not None:
        return f"{data_type}({int(precision)},{int(scale or 0)})"
    return data_type
