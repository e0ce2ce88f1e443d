"""SQL Server probe: pymssql (FreeTDS, bundled in its wheel), run in worker threads.

pymssql blocks, so the whole connect-query-close sequence runs in a thread of a small dedicated
pool (not asyncio's default executor, which getaddrinfo and other libraries share); the event loop
only awaits it, bounded by the budget. FreeTDS is also given the budget as its own login and query
timeouts (whole seconds), so a thread the loop stopped waiting for ends by itself soon after.

TLS, honestly: FreeTDS negotiates encryption in the TDS PRELOGIN exchange, and pymssql exposes
only its encryption level, not certificate checks (FreeTDS verifies a certificate only with a
`ca file` from freetds.conf, found through the process-wide FREETDSCONF, and checks the name
against the host it dials, which is our IP address). So:

- disable: encryption "off": PRELOGIN says ENCRYPT_NOT_SUP, nothing is encrypted (a server that
  insists on encryption refuses the login);
- allow, prefer: "request": PRELOGIN says ENCRYPT_OFF, so the login packet (with the password) is
  encrypted and the session too if the server insists; certificate not checked;
- require: "require": ENCRYPT_ON, the whole session is encrypted or the login fails; certificate
  not checked (libpq's "require");
- verify-ca, verify-full: refused before connecting (TLS_FAILED). Enforcing them needs a driver
  with per-connection certificate checks; claiming a check that is not made would be worse.

Login errors, honestly too: pymssql keeps the messages of a failed login in process-wide
variables that it never resets (its `clr_err(None)` assigns to locals), so after the first failed
login in a process every later one reports that first message number, and server messages of no
higher severity are dropped. A login failure is therefore classified from the DB-Lib messages
FreeTDS adds for that attempt (refused, timed out, "General SQL Server error" with the server
message's severity class), never from the reported number. Concurrent failing logins can still
mix their texts. Errors after login are per connection and reliable.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pymssql

from connhub.domain.reports import Column, ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget

T = TypeVar("T")

DEFAULT_SCHEMA = "dbo"
TDS_VERSION = "7.4"  # SQL Server 2012+; older servers answer with their own version in LOGINACK.
# Fixed rather than negotiated: FreeTDS's "auto" retries older versions, each with the full login
# timeout, which multiplies the time a silent server costs.

_ENCRYPTION = {"disable": "off", "allow": "request", "prefer": "request", "require": "require"}
_UNVERIFIABLE = {"verify-ca", "verify-full"}

# Threads for blocking FreeTDS calls. A thread the budget gave up on still runs until FreeTDS's
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
        raise _timeout(target, ctx)
    encryption = _encryption(target)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(ctx.timeout_s):
            return await loop.run_in_executor(_THREADS, _session, target, ctx, encryption, work)
    except TimeoutError:
        raise _timeout(target, ctx) from None
    except pymssql.Error as exc:
        raise classify(exc, target, ctx) from exc


def _encryption(target: ProbeTarget) -> str:
    mode = target.ssl.mode if target.ssl else "disable"
    if mode in _UNVERIFIABLE:
        raise ProbeFailure(
            ErrorCategory.TLS_FAILED,
            f"sslmode {mode} cannot be enforced for SQL Server: its driver (FreeTDS via pymssql) does "
            "not check server certificates per connection. Use require (encrypted, not verified).",
        )
    return _ENCRYPTION.get(mode, "off")


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
            port=str(target.port),
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
    where = _where(target, ctx)
    for os_error, category in _OS_ERRORS.items():
        if os_error in text:
            return ProbeFailure(category, f"{where}: {os_error.lower()}")
    if "20003" in text or "timed out" in text:  # SYBETIME: no answer within the login timeout
        return _timeout(target, ctx)
    if "Cannot open database" in text or _LOGIN_CLASS_11 in text:
        return ProbeFailure(
            ErrorCategory.DATABASE_NOT_FOUND,
            f"Cannot open database '{target.database}': it does not exist or the login cannot use it",
        )
    if "Login failed" in text or _LOGIN_CLASS_14 in text:
        return ProbeFailure(ErrorCategory.AUTH_FAILED, f"Login failed for user '{target.user}'")
    if "20017" in text or "Unexpected EOF" in text:  # SYBESEOF: the server hung up
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{where} closed the connection during login")
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"SQL Server login at {where} failed: {_first_line(text)}")


def classify(exc: BaseException, target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The category of an error on an open connection: ((number, b"message text"),)."""
    number, text = error_details(exc)
    category = _SERVER_CATEGORIES.get(number)
    if category is not None:
        return ProbeFailure(category, _first_line(text))
    if number == 20003 or "timed out" in text:
        return _timeout(target, ctx)
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"SQL Server error {number}: {_first_line(text)}")


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


def _where(target: ProbeTarget, ctx: ProbeContext) -> str:
    address = "" if ctx.address == target.host else f" ({ctx.address})"
    return f"{target.host}:{target.port}{address}"


def _timeout(target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    return ProbeFailure(ErrorCategory.TIMEOUT, f"No answer from {_where(target, ctx)} within {ctx.timeout_s:g} s")


# --- the schema ----------------------------------------------------------------------------------


def tables_from_rows(rows: Sequence[Sequence[Any]]) -> list[Table]:
    """Rows of SCHEMA_QUERY (ordered by table, then ordinal position) as tables."""
    tables: dict[str, list[Column]] = {}
    for table, column, data_type, length, precision, scale, nullable, primary_key in rows:
        tables.setdefault(str(table), []).append(
            Column(
                name=str(column),
                type=_type_name(str(data_type), length, precision, scale),
                nullable=str(nullable).upper() == "YES",
                primary_key=bool(primary_key),
            )
        )
    return [Table(name=name, columns=tuple(columns)) for name, columns in tables.items()]


def _type_name(data_type: str, length: Any, precision: Any, scale: Any) -> str:
    if length is not None and data_type in {"char", "nchar", "varchar", "nvarchar", "binary", "varbinary"}:
        return f"{data_type}(max)" if int(length) == -1 else f"{data_type}({int(length)})"
    if data_type in {"decimal", "numeric"} and precision is not None:
        return f"{data_type}({int(precision)},{int(scale or 0)})"
    return data_type
