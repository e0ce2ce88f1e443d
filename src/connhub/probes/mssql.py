"""SQL Server probe: pymssql (FreeTDS) for the modes without certificate checks, python-tds
(pytds, pure Python, TLS by pyOpenSSL) for verify-ca and verify-full. Both drivers block, so each
connect-query-close sequence runs in a thread of a small dedicated pool (not asyncio's default
executor, which getaddrinfo and other libraries share); the event loop only awaits it, bounded by
the budget. The drivers are given the budget as their own timeouts too, so a thread the loop
stopped waiting for ends by itself soon after.

SQL Server negotiates TLS inside TDS: the PRELOGIN exchange says who wants encryption, then the
TLS handshake travels in PRELOGIN packets. Per sslmode:

- disable (pymssql): encryption "off": PRELOGIN says ENCRYPT_NOT_SUP, nothing is encrypted (a
  server that insists on encryption refuses the login);
- allow, prefer (pymssql): "request": PRELOGIN says ENCRYPT_OFF, so the login packet (with the
  password) is encrypted and the session too if the server insists; certificate not checked;
- require (pymssql): "require": ENCRYPT_ON, the whole session is encrypted or the login fails;
  certificate not checked (libpq's "require"). pytds cannot encrypt without verifying, and
  pymssql cannot verify per connection, hence the two drivers;
- verify-ca (pytds): ENCRYPT_ON, the whole session is encrypted, and the handshake fails unless
  the server's chain leads to `ssl.ca` (the system's CAs without one); no name check;
- verify-full (pytds): as verify-ca, and the certificate must name `target.host` (see
  `certificate_matches`), checked after the handshake and before LOGIN7, so the password is
  never sent to a server that fails either check.

pytds is given a socket this module connected to the guard-checked address (`sock=`), and
`target.host` as its server name: the name is what SNI, the certificate check and LOGIN7's
ServerName use, and pytds never resolves it. Two more things keep pytds to that one connection:
a server may answer a login with a routing ENVCHANGE (Azure SQL's redirect, read-only routing)
and pytds would then connect wherever it says, unchecked; so while pytds runs, the worker thread
is confined (see `_confined`) and any new socket or name lookup from it fails, reported as
HOST_FORBIDDEN. And pytds's own host name check (`pytds.tls.validate_host`) fails on current
pyOpenSSL and accepts a Common Name beside SANs, so it is replaced by this module's, in one
place (`_install_host_check`); should a pytds release no longer call it, verify-full refuses to
run rather than checking less.

Login errors: pymssql keeps the messages of a failed login in process-wide variables that it
never resets (its `clr_err(None)` assigns to locals), so after the first failed login in a process
every later one reports that first message number, and server messages of no higher severity are
dropped. A pymssql login failure is therefore classified from the DB-Lib messages FreeTDS adds for
that attempt (refused, timed out, "General SQL Server error" with the server message's severity
class), never from the reported number. Concurrent failing logins can still mix their texts.
pytds reports each connection's own messages (the last one's number, all of their text).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import OpenSSL.crypto
import OpenSSL.SSL
import pymssql
import pytds
import pytds.tls
from cryptography import x509
from cryptography.x509.oid import NameOID

from connhub.domain.engines import Engine
from connhub.domain.reports import Column, ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget
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
TDS_VERSION = "7.4"  # SQL Server 2012+; older servers answer with their own version in LOGINACK.
# Fixed rather than negotiated: FreeTDS's "auto" retries older versions, each with the full login
# timeout, which multiplies the time a silent server costs.

_ENCRYPTION = {"disable": "off", "allow": "request", "prefer": "request", "require": "require"}
_MIN_TIMEOUT_S = 0.05  # what pytds and the socket get once the thread's own limit has passed

# Threads for blocking driver calls. A thread the budget gave up on still runs until the driver's
# own timeout (at most the budget, rounded up), so the pool is sized for a burst of silent servers.
_THREADS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="connhub-mssql")

VERSION_QUERY = "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))"
ENCRYPTION_QUERY = "SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID"

# One catalog query: the columns of the schema's tables and views in ordinal order, with whether
# each is part of the table's primary key.
SCHEMA_QUERY = """
SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.CHARACTER_MAXIMUM_LENGTH,
       c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE,
       CASE WHEN k.COLUMN_NAME IS NULL THEN 0 ELSE 1 END AS PRIMARY_KEY
  FROM INFORMATION_SCHEMA.COLUMNS c
  LEFT JOIN INFORMATION_SCHEMA.TABLE_CONSTRAINTS t
    ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
   AND t.CONSTRAINT_TYPE = 'PRIMARY KEY'
  LEFT JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k
    ON k.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = t.CONSTRAINT_NAME
   AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME
 WHERE c.TABLE_SCHEMA = %s
 ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""


class SqlServerProbe:
    async def test(self, target: ProbeTarget, ctx: ProbeContext) -> None:
        await _in_thread(target, ctx, lambda connection: None)

    async def read_schema(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        schema = target.schema or DEFAULT_SCHEMA

        def read(connection: Any) -> list[Table]:
            return tables_from_rows(_rows(connection, SCHEMA_QUERY, (schema,)))

        return await _in_thread(target, ctx, read)


PROBE = SqlServerProbe()


# --- the connection ------------------------------------------------------------------------------


async def _in_thread(target: ProbeTarget, ctx: ProbeContext, work: Callable[[Any], T]) -> T:
    """Connect, read the version, run `work`, close: in a worker thread, bounded by the budget."""
    if ctx.timeout_s <= 0:
        raise timed_out(target, ctx)
    mode = target.ssl.mode if target.ssl else "disable"
    session: Callable[[], T]
    if mode in VERIFYING_MODES:  # served by pytds
        session = functools.partial(_verified_session, target, ctx, mode, work)
    else:
        session = functools.partial(_session, target, ctx, _ENCRYPTION.get(mode, "off"), work)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(ctx.timeout_s):
            return await loop.run_in_executor(_THREADS, session)
    except TimeoutError:
        raise timed_out(target, ctx) from None
    except pymssql.Error as exc:
        raise classify(exc, target, ctx) from exc


# --- pymssql: disable, allow, prefer, require ----------------------------------------------------


def _session(target: ProbeTarget, ctx: ProbeContext, encryption: str, work: Callable[[Any], T]) -> T:
    """The blocking part. Runs in a worker thread; the connection is closed whatever happens."""
    seconds = max(1, math.ceil(ctx.timeout_s))
    with ctx.phase("connect"):
        connection = _connect(target, ctx, encryption, seconds)
    try:
        with ctx.phase("query"):
            ctx.server_version = str(_rows(connection, VERSION_QUERY)[0][0])
            ctx.tls.enabled = _encrypted(connection, encryption)
            return work(connection)
    except pymssql.Error as exc:
        raise classify(exc, target, ctx) from exc
    finally:
        connection.close()


def _connect(target: ProbeTarget, ctx: ProbeContext, encryption: str, seconds: int) -> Any:
    try:
        # login_timeout is process-wide in FreeTDS (dbsetlogintime): concurrent probes may apply
        # each other's value, but all are derived from the same global budget.
        return pymssql.connect(
            server=ctx.address,
            port=str(ctx.dial_port(target)),
            user=target.user,
            password=target.password,
            database=target.database,
            login_timeout=seconds,
            timeout=seconds,
            encryption=encryption,
            tds_version=target.options.get("tds_version", TDS_VERSION),
            appname="connhub",
            autocommit=True,
        )
    except pymssql.Error as exc:
        raise classify_login(exc, target, ctx) from exc


def _rows(connection: Any, query: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    cursor = connection.cursor()
    try:
        cursor.execute(query, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _encrypted(connection: Any, encryption: str) -> bool:
    """Whether the session is encrypted. The DMV needs VIEW SERVER STATE; without it, only a
    "require" login is known to be encrypted (FreeTDS fails it otherwise)."""
    try:
        return str(_rows(connection, ENCRYPTION_QUERY)[0][0]).upper() == "TRUE"
    except (pymssql.Error, IndexError):
        return encryption == "require"


# --- pytds: verify-ca, verify-full --------------------------------------------------------------


class CertificateNameMismatch(Exception):
    """The server's certificate (chain verified) does not name the host the user typed."""

    def __init__(self, host: str, names: Sequence[str]) -> None:
        super().__init__(host, names)
        self.host = host
        self.names = tuple(names)


class ConnectionOutsideGuard(Exception):
    """The driver tried to open a connection or resolve a name the network guard did not check.

    Not an OSError on purpose: socket.create_connection would swallow it and try the next address.
    """

    def __init__(self, event: str, destination: str | None) -> None:
        super().__init__(event, destination)
        self.event = event
        self.destination = destination


def _verified_session(target: ProbeTarget, ctx: ProbeContext, mode: str, work: Callable[[Any], T]) -> T:
    """The blocking part for verify-ca and verify-full; every failure leaves as a ProbeFailure."""
    # The thread's own limit ends a little before the event loop's, so that a driver error that
    # pytds holds until its login timeout (it waits out the rest of it before raising some errors)
    # still reaches the classifier rather than becoming a bare timeout.
    deadline = time.monotonic() + max(0.05, ctx.timeout_s - min(0.5, ctx.timeout_s * 0.1))
    try:
        connection = _verified_connect(target, ctx, mode, deadline)
        try:
            with ctx.phase("query"), _confined():
                _record_tls(connection, ctx)
                ctx.server_version = str(_rows(connection, VERSION_QUERY)[0][0])
                return work(connection)
        finally:
            with _confined():
                connection.close()
    except ProbeFailure:
        raise
    except Exception as exc:
        raise classify_verified(exc, target, ctx) from exc


def _verified_connect(target: ProbeTarget, ctx: ProbeContext, mode: str, deadline: float) -> Any:
    if mode == "verify-full" and not _HOST_CHECK_INSTALLED:
        raise ProbeFailure(
            ErrorCategory.TLS_FAILED,
            "verify-full cannot be enforced with this python-tds version (its host name check could not be "
            "replaced by a correct one); use verify-ca, or a python-tds version this service supports",
        )
    server_name = tls_server_name(target.host)
    material = target.ssl
    with private_files(ca=material.ca if material else None) as files:
        cafile = files.paths.get("ca") or system_ca_file()  # pytds takes a CA file, nothing else
        if "ca" in files.paths:
            _check_ca_file(cafile)
        with ctx.phase("connect"):
            sock = socket.create_connection(
                (ctx.address, ctx.dial_port(target)), timeout=time_left(deadline, _MIN_TIMEOUT_S)
            )
        try:
            with ctx.phase("auth"), _confined():  # PRELOGIN, TLS handshake, certificate checks, LOGIN7
                return pytds.connect(
                    dsn=server_name,  # SNI, the certificate's expected name and LOGIN7's ServerName
                    port=ctx.dial_port(target),
                    sock=sock,  # connected to the checked address: pytds resolves nothing
                    user=target.user,
                    password=target.password,
                    database=target.database,
                    cafile=cafile,
                    validate_host=mode == "verify-full",
                    enc_login_only=False,  # ENCRYPT_ON: the whole session, or no login at all
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


def _check_ca_file(path: str) -> None:
    """Load `ssl.ca` as pytds will, before connecting, so a bad PEM is named as such."""
    try:
        OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD).load_verify_locations(cafile=path)
    except OpenSSL.SSL.Error as exc:
        raise ProbeFailure(
            ErrorCategory.TLS_FAILED, f"ssl.ca holds no CA certificate OpenSSL can use: {_openssl_reasons(exc)}"
        ) from None


def _record_tls(connection: Any, ctx: ProbeContext) -> None:
    """pytds logs in only over a session encrypted from PRELOGIN on (ENCRYPT_ON; it refuses a
    server that answers otherwise). Version and cipher are read where pytds keeps its TLS
    connection, if it still does; nothing depends on them."""
    ctx.tls.enabled = True
    transport = getattr(getattr(connection, "_tds_socket", None), "sock", None)
    tls = getattr(transport, "_tls_conn", None)
    if isinstance(tls, OpenSSL.SSL.Connection):
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
    once, at import; pytds looks the function up in its module when it calls it. False when this
    pytds no longer calls it that way (verify-full then refuses to run)."""
    establish_channel = getattr(pytds.tls, "establish_channel", None)
    code = getattr(establish_channel, "__code__", None)
    if code is None or "validate_host" not in code.co_names or not hasattr(pytds.tls, "validate_host"):
        return False
    pytds.tls.validate_host = _pytds_validate_host
    return True


_HOST_CHECK_INSTALLED = _install_host_check()


# The confinement. Python's audit hooks see every socket created, connected or resolved in the
# process; while a worker thread runs pytds, any of these from that thread is refused (the hook
# raises). Our own socket is connected before; pytds then needs none of them unless it follows a
# server's redirect (or asks the SQL Browser for a port), which would bypass the network guard.
_NEW_CONNECTIONS = frozenset(
    {
        "socket.__new__",
        "socket.connect",
        "socket.connect_ex",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_confinement = threading.local()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in _NEW_CONNECTIONS and getattr(_confinement, "active", False):
        raise ConnectionOutsideGuard(event, _destination(event, args))


def _destination(event: str, args: tuple[Any, ...]) -> str | None:
    try:
        if event == "socket.getaddrinfo":
            return f"{args[0]}:{args[1]}" if args[1] else str(args[0])
        if event in ("socket.connect", "socket.connect_ex", "socket.sendto", "socket.sendmsg"):
            address = args[1]
            return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        if event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
            return str(args[0])
    except (IndexError, TypeError):
        pass
    return None


sys.addaudithook(_audit)


@contextmanager
def _confined() -> Iterator[None]:
    """While active, this thread can open no socket and resolve no name (see `_audit`)."""
    outer = getattr(_confinement, "active", False)
    _confinement.active = True
    try:
        yield
    finally:
        _confinement.active = outer


# --- errors --------------------------------------------------------------------------------------

# Server message numbers (sys.messages) that name a failure after login.
_SERVER_CATEGORIES = {
    229: ErrorCategory.PERMISSION_DENIED,  # permission denied on object
    230: ErrorCategory.PERMISSION_DENIED,  # permission denied on column
    262: ErrorCategory.PERMISSION_DENIED,  # permission denied in database
    916: ErrorCategory.PERMISSION_DENIED,  # the server principal cannot access the database
    911: ErrorCategory.DATABASE_NOT_FOUND,  # database does not exist
}

_OS_ERRORS = {
    "Connection refused": ErrorCategory.PORT_CLOSED,
    "No route to host": ErrorCategory.HOST_UNREACHABLE,
    "Network is unreachable": ErrorCategory.HOST_UNREACHABLE,
}

# DB-Lib 20018 ("General SQL Server error: Check messages from the SQL Server") carries the
# severity class of the server message it stands for. During a login, SQL Server answers a bad
# password with 18456 (class 14) and a database it cannot open with 4060 (class 11) then 18456.
_LOGIN_CLASS_11 = "20018, severity 11"
_LOGIN_CLASS_14 = "20018, severity 14"


def classify_login(exc: BaseException, target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The category of an error pymssql.connect raised, from the text of this attempt's messages
    (the number pymssql reports for a login may be stale, see the module docstring)."""
    _, text = error_details(exc)
    place = where(target, ctx)
    for os_error, category in _OS_ERRORS.items():
        if os_error in text:
            return ProbeFailure(category, f"{place}: {os_error.lower()}")
    if "20003" in text or "timed out" in text:  # SYBETIME: no answer within the login timeout
        return timed_out(target, ctx)
    if "Cannot open database" in text or _LOGIN_CLASS_11 in text:
        return ProbeFailure(
            ErrorCategory.DATABASE_NOT_FOUND,
            f"Cannot open database '{target.database}': it does not exist or the login cannot use it",
        )
    if "Login failed" in text or _LOGIN_CLASS_14 in text:
        return ProbeFailure(ErrorCategory.AUTH_FAILED, f"Login failed for user '{target.user}'")
    if "20017" in text or "Unexpected EOF" in text:  # SYBESEOF: the server hung up
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{place} closed the connection during login")
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"SQL Server login at {place} failed: {_first_line(text)}")


def classify(exc: BaseException, target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The category of an error on an open connection: ((number, b"message text"),)."""
    number, text = error_details(exc)
    category = _SERVER_CATEGORIES.get(number)
    if category is not None:
        return ProbeFailure(category, _first_line(text))
    if number == 20003 or "timed out" in text:
        return timed_out(target, ctx)
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"SQL Server error {number}: {_first_line(text)}")


# Login failures SQL Server reports with their own number (pytds reports the last message's).
_LOGIN_FAILURES = {18456, 18452, 18470, 18486, 18487, 18488}


def classify_verified(exc: BaseException, target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The category of an error from the pytds path (our socket, pytds, pyOpenSSL)."""
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
    if isinstance(exc, ConnectionOutsideGuard):
        destination = f" to {exc.destination}" if exc.destination else ""
        return ProbeFailure(
            ErrorCategory.HOST_FORBIDDEN,
            f"SQL Server at {place} redirected the connection{destination}; redirects are not followed, "
            "only the address the network guard checked is used: test the server it names directly",
        )
    if isinstance(exc, pytds.DatabaseError):
        return _classify_server_error(exc, target)
    if isinstance(exc, pytds.InterfaceError) and "closed" in str(exc).lower():
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{place} closed the connection during login")
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


def error_details(exc: BaseException) -> tuple[int, str]:
    """(message number, all message text) of a pymssql exception."""
    detail = exc.args[0] if exc.args else None
    if isinstance(detail, tuple) and len(detail) == 2:
        number, message = detail
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        return (int(number) if isinstance(number, int) else 0), text
    return 0, str(exc)


def _first_line(text: str) -> str:
    # The first message FreeTDS collected, without its "DB-Lib error message N, severity N:" label.
    lines = [line.strip() for line in text.splitlines() if line.strip() and "error message" not in line]
    return lines[0] if lines else text.strip() or "unknown error"


# --- the schema ----------------------------------------------------------------------------------


def tables_from_rows(rows: Sequence[Sequence[Any]]) -> list[Table]:
    """Rows of SCHEMA_QUERY (ordered by table, then ordinal position) as tables."""
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
