"""MongoDB probe: pymongo's async client, one direct connection to the checked address.

How the rules of `probes.base` apply here:

- The client connects to `ctx.address` (never `target.host`) with `directConnection=True`, so
  pymongo does not go on to the other replica-set members the server names in `hello`: those
  were never checked by the network guard.
- mongodb+srv (`options["srv"] == "true"`) is refused (HOST_FORBIDDEN). SRV and TXT lookups name other hosts (and
  options) that the guard never saw, and `ProbeContext` carries one checked address, not the
  guard itself, so the probe cannot check them. Supporting SRV needs the runner to resolve the
  SRV record and check every host it names (or to hand probes a `check(host, port)` callable).
- Only the options the probe reads reach pymongo (authSource, authMechanism), so none can turn
  discovery back on; the mechanisms are those that talk to the server alone (MONGODB-AWS and
  MONGODB-OIDC ask cloud metadata services for credentials, GSSAPI a KDC). Whatever pymongo would
  still open elsewhere is refused by the egress confinement (probes/egress.py).
- TLS: pymongo verifies the certificate against the name it connects to, which is the IP address.
  For `verify-full` the probe binds pymongo's TLS context to `target.host` (SNI and the OpenSSL
  host name check), so the certificate is checked against the name the user typed, on the same
  connection that carries the credentials. See `_bind_server_name`.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

from bson import Binary, Code, DBRef, Decimal128, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.int64 import Int64
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConfigurationError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.monitoring import (
    ServerHeartbeatFailedEvent,
    ServerHeartbeatListener,
    ServerHeartbeatStartedEvent,
    ServerHeartbeatSucceededEvent,
)

from connhub.domain.reports import Column, ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeFailure, ProbeTarget, SslMaterial
from connhub.probes.support import (
    ERRNO_CATEGORIES,
    TLS_REQUIRED_MODES,
    causes,
    first_line,
    private_files,
    record_tls,
    server_name,
    timed_out,
    where,
)

SAMPLE_SIZE = 100  # documents sampled per collection to find its fields
PARALLEL_SAMPLES = 4  # collections sampled at once (each on its own pooled connection)

_AUTH_FAILED_CODES = {18, 8000}  # 8000: Atlas's "bad auth : Authentication failed."
_UNAUTHORIZED_CODE = 13
# Mechanisms that need nothing but the server (see the module docstring).
AUTH_MECHANISMS = frozenset({"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN", "MONGODB-X509", "DEFAULT"})

Client = AsyncMongoClient[dict[str, Any]]


class MongoProbe:
    async def test(self, target: ProbeTarget, ctx: ProbeContext) -> None:
        async with _session(target, ctx) as client:
            with ctx.phase("query"):
                await _read_version(client, ctx)

    async def discover_tables(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        async with _session(target, ctx) as client:
            with ctx.phase("query"):
                await _read_version(client, ctx)
                return await _read_collections(client[target.database])


PROBE = MongoProbe()


# --- the connection ------------------------------------------------------------------------------


@asynccontextmanager
async def _session(target: ProbeTarget, ctx: ProbeContext) -> AsyncIterator[Client]:
    """A connected, authenticated client bounded by the budget; always closed."""
    if target.options.get("srv", "").lower() == "true":
        raise ProbeFailure(
            ErrorCategory.HOST_FORBIDDEN,
            "mongodb+srv is not supported: the hosts an SRV record names cannot be checked by the "
            "network guard. Connect to one host:port of the deployment instead.",
        )
    mechanism = target.options.get("authMechanism")
    if mechanism and mechanism.upper() not in AUTH_MECHANISMS:
        raise ProbeFailure(
            ErrorCategory.DRIVER_ERROR,
            f"authMechanism {mechanism} is not supported: use one of {', '.join(sorted(AUTH_MECHANISMS))}",
        )
    if ctx.timeout_s <= 0:
        raise timed_out(target, ctx)
    ssl_material = target.ssl if target.ssl and target.ssl.mode in TLS_REQUIRED_MODES else None
    with private_files(**_pem_files(ssl_material)) as stored:
        files = stored.paths
        heartbeat = _FirstHeartbeat()
        client: Client | None = None
        try:
            async with asyncio.timeout(ctx.timeout_s), _translated(target, ctx):
                # Inside the translation: the constructor rejects bad options and key material.
                client = AsyncMongoClient(**_client_options(target, ctx, files, heartbeat))
                tls_objects = _bind_tls(client, target, ssl_material)
                with ctx.phase("connect"):
                    await _connect(client, heartbeat)
                record_tls(ctx, tls_objects)
                yield client
        except TimeoutError:
            raise timed_out(target, ctx) from None
        finally:
            if client is not None:
                with suppress(PyMongoError, OSError):
                    await client.close()


def _client_options(
    target: ProbeTarget, ctx: ProbeContext, files: Mapping[str, str], heartbeat: _FirstHeartbeat
) -> dict[str, Any]:
    budget_ms = max(1, int(ctx.timeout_s * 1000))
    options: dict[str, Any] = {
        "host": f"[{ctx.address}]" if ":" in ctx.address else ctx.address,
        "port": ctx.dial_port(target),
        "directConnection": True,
        "appname": "connhub",
        # Every pymongo timeout is the whole budget: none of them may outlive the test.
        "serverSelectionTimeoutMS": budget_ms,
        "connectTimeoutMS": budget_ms,
        "socketTimeoutMS": budget_ms,
        "timeoutMS": budget_ms,
        "retryReads": False,
        "retryWrites": False,
        "maxPoolSize": PARALLEL_SAMPLES,
        "tz_aware": True,
        "event_listeners": [heartbeat],
    }
    if target.user:
        options["username"] = target.user
        options["password"] = target.password
        options["authSource"] = _auth_source(target)
        if target.options.get("authMechanism"):
            options["authMechanism"] = target.options["authMechanism"]
    options.update(_tls_options(target.ssl, files))
    return options


def _auth_source(target: ProbeTarget) -> str:
    # Connection-string semantics: authSource, else the database the connection names, else admin.
    return target.options.get("authSource") or target.database or "admin"


def _pem_files(material: SslMaterial | None) -> dict[str, str | None]:
    if material is None:
        return {}
    # pymongo takes the client certificate and its key as one PEM file.
    client_pem = f"{material.cert.rstrip()}\n{material.key.rstrip()}\n" if material.cert and material.key else None
    return {"ca": material.ca, "client": client_pem}


def _tls_options(material: SslMaterial | None, files: Mapping[str, str]) -> dict[str, Any]:
    """pymongo's TLS options for an sslmode.

    disable, allow and prefer connect without TLS: MongoDB has no in-protocol upgrade (TLS is on
    from the first byte or not at all), so "try TLS, then plain" would be two whole connection
    attempts inside one budget; a server that insists on TLS fails the test, and the user picks
    `require`. `require` encrypts without checking the certificate (libpq's meaning).
    """
    if material is None or material.mode not in TLS_REQUIRED_MODES:
        return {"tls": False}
    options: dict[str, Any] = {"tls": True}
    if "client" in files:
        options["tlsCertificateKeyFile"] = files["client"]
    if material.mode == "require":
        options["tlsAllowInvalidCertificates"] = True
        return options
    if "ca" in files:
        options["tlsCAFile"] = files["ca"]  # without one: the system's trust store
    # verify-ca checks the chain only; verify-full also the name (against target.host, see below).
    options["tlsAllowInvalidHostnames"] = material.mode == "verify-ca"
    return options


def _bind_tls(client: Client, target: ProbeTarget, material: SslMaterial | None) -> list[ssl.SSLObject]:
    """Make pymongo's TLS connections present `target.host` (SNI) and, in verify-full, verify the
    certificate against it; returns the list the TLS objects of the connections are collected in.

    pymongo passes the address it dials, our IP, as server_hostname. It builds its SSLContext from
    the URI options and exposes it only as `pool_options._ssl_context` (shared by the monitor and
    the pool). Wrapping that context's `wrap_bio` (which asyncio calls for every TLS connection)
    swaps in the real name while OpenSSL's own host name check stays on. If a pymongo release
    drops that attribute, verify-full refuses to run rather than silently checking less.
    """
    seen: list[ssl.SSLObject] = []
    if material is None:
        return seen
    context = getattr(client.options.pool_options, "_ssl_context", None)
    if not isinstance(context, ssl.SSLContext):
        if material.mode == "verify-full":
            raise ProbeFailure(
                ErrorCategory.TLS_FAILED,
                "verify-full cannot be enforced with this pymongo version (no access to its TLS context)",
            )
        return seen
    wrap_bio = context.wrap_bio
    name = server_name(target.host)

    def bound_wrap_bio(
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        tls_object = wrap_bio(incoming, outgoing, server_side, name, session)
        seen.append(tls_object)
        return tls_object

    context.wrap_bio = bound_wrap_bio  # type: ignore[method-assign]
    return seen


class _FirstHeartbeat(ServerHeartbeatListener):
    """Learns of the monitor's first failed `hello`, so a refused port or a rejected certificate
    fails the test at once instead of after the whole server selection timeout."""

    def __init__(self) -> None:
        self.failed_with: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    def started(self, event: ServerHeartbeatStartedEvent) -> None:
        pass

    def succeeded(self, event: ServerHeartbeatSucceededEvent) -> None:
        pass

    def failed(self, event: ServerHeartbeatFailedEvent) -> None:
        # The async client calls listeners on its event loop; a result, not an exception, so
        # nobody has to retrieve it when the ping wins.
        if not self.failed_with.done():
            self.failed_with.set_result(event.reply)


async def _connect(client: Client, heartbeat: _FirstHeartbeat) -> None:
    """Server selection, TCP, TLS, `hello` and authentication: all inside pymongo's first command."""
    ping = asyncio.ensure_future(client.admin.command("ping"))
    first: set[asyncio.Future[Any]] = {ping, heartbeat.failed_with}
    try:
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not ping.done():
            # Not awaited: pymongo's server selection can swallow a cancellation (asyncio.wait_for
            # on 3.11) and would wait out its timeout; once the client is closed it ends by itself
            # within half a second.
            ping.cancel()
            ping.add_done_callback(_retrieve)
    if ping.done() and not ping.cancelled():
        ping.result()
        return
    raise heartbeat.failed_with.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def _read_version(client: Client, ctx: ProbeContext) -> None:
    info = await client.admin.command("buildInfo")
    ctx.server_version = str(info.get("version")) if info.get("version") else None


# --- errors --------------------------------------------------------------------------------------


@asynccontextmanager
async def _translated(target: ProbeTarget, ctx: ProbeContext) -> AsyncIterator[None]:
    """pymongo's exceptions (and the socket errors inside them) as classified ProbeFailures."""
    try:
        yield
    except PyMongoError as exc:
        raise classify(exc, target, ctx) from exc


def classify(exc: BaseException, target: ProbeTarget, ctx: ProbeContext) -> ProbeFailure:
    """The category of a pymongo exception.

    Network failures are read from the message: pymongo strips the cause of the errors its monitor
    records (`_sanitize`), keeping only the text, e.g. "127.0.0.1:1: [Errno 111] Connect call
    failed" or "SSL handshake failed: ...: [SSL: CERTIFICATE_VERIFY_FAILED] ...".
    """
    if isinstance(exc, OperationFailure):
        return _command_failure(exc, target)
    if isinstance(exc, ConfigurationError):
        # e.g. "Private key doesn't match certificate": the ssl field is what to fix.
        tls = "certificate" in str(exc).lower() or "private key" in str(exc).lower()
        settings = ErrorCategory.TLS_FAILED if tls else ErrorCategory.DRIVER_ERROR
        return ProbeFailure(settings, f"Invalid MongoDB settings: {_first_line(exc)}")
    place = where(target, ctx)
    text = " ".join(str(cause) for cause in causes(exc))
    if isinstance(exc, ssl.SSLError | ssl.CertificateError) or "SSL handshake failed" in text or "[SSL" in text:
        return ProbeFailure(ErrorCategory.TLS_FAILED, f"TLS handshake with {place} failed: {_tls_reason(text)}")
    category = _errno_category(text)
    if category is ErrorCategory.PORT_CLOSED:
        return ProbeFailure(category, f"Connection refused by {place}")
    if category is ErrorCategory.DNS_FAILED:
        return ProbeFailure(category, f"Could not resolve host {ctx.address}")
    if category is ErrorCategory.HOST_UNREACHABLE:
        return ProbeFailure(category, f"{place} is unreachable")
    if category is ErrorCategory.TIMEOUT or isinstance(exc, ServerSelectionTimeoutError | NetworkTimeout):
        return timed_out(target, ctx)
    if "connection closed" in text or "connection is already closed" in text:
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{place} closed the connection{_closed_hint(target)}")
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"MongoDB connection to {place} failed: {_first_line(exc)}")


def _closed_hint(target: ProbeTarget) -> str:
    # What usually makes mongod hang up on a new connection.
    if target.ssl is None or target.ssl.mode not in TLS_REQUIRED_MODES:
        return " (does the server require TLS?)"
    return " (does the server require a client certificate?)"


def _errno_category(text: str) -> ErrorCategory | None:
    # errno values as OSError prints them ("[Errno 111]"); negative ones are getaddrinfo's EAI_* codes.
    match = re.search(r"\[Errno (-?\d+)\]", text)
    if match is None:
        return ErrorCategory.TIMEOUT if "timed out" in text else None
    number = int(match.group(1))
    return ErrorCategory.DNS_FAILED if number < 0 else ERRNO_CATEGORIES.get(number)


def _tls_reason(text: str) -> str:
    for pattern in (
        r"certificate verify failed: (.+?)\.?\s*(?:\(_ssl|\(configured|$)",
        r"\[SSL: \w+\] (.+?) \(_ssl",
    ):
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return "the handshake did not complete"


def _command_failure(exc: OperationFailure, target: ProbeTarget) -> ProbeFailure:
    details = exc.details or {}
    message = str(details.get("errmsg") or _first_line(exc))
    if exc.code in _AUTH_FAILED_CODES:
        source = _auth_source(target)
        hint = "" if "authSource" in target.options else " (set option authSource if the user is defined elsewhere)"
        return ProbeFailure(
            ErrorCategory.AUTH_FAILED,
            f"Authentication failed for user '{target.user}' against database '{source}'{hint}",
        )
    if exc.code == _UNAUTHORIZED_CODE:
        return ProbeFailure(ErrorCategory.PERMISSION_DENIED, f"Not authorized: {message}")
    if isinstance(exc, ExecutionTimeout):
        return ProbeFailure(ErrorCategory.TIMEOUT, f"The server gave up on the query: {message}")
    return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"MongoDB error {exc.code}: {message}")


# pymongo appends "(configured timeouts: ...)" and whole topology descriptions: keep the cause.
_NOISE = re.compile(r"\s*\((configured timeouts|Topology Description)[^)]*\).*$")


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc), _NOISE, type(exc).__name__)


# --- the tables ----------------------------------------------------------------------------------


async def _read_collections(database: AsyncDatabase[dict[str, Any]]) -> list[Table]:
    """Each collection (and view) with the fields of a sample of its documents.

    One listCollections, then one bounded `$sample` per collection, a few at a time: MongoDB has no
    catalog of fields, so sampling is the only way to learn them.
    """
    cursor = await database.list_collections(nameOnly=True, authorizedCollections=True)
    names = sorted([str(info["name"]) async for info in cursor if not str(info["name"]).startswith("system.")])
    limiter = asyncio.Semaphore(PARALLEL_SAMPLES)

    async def sample(name: str) -> list[dict[str, Any]]:
        async with limiter:
            documents = await database[name].aggregate([{"$sample": {"size": SAMPLE_SIZE}}])
            return await documents.to_list(SAMPLE_SIZE)

    samples = await asyncio.gather(*(sample(name) for name in names))
    return [_table(name, documents) for name, documents in zip(names, samples, strict=True)]


def _table(name: str, documents: Sequence[Mapping[str, Any]]) -> Table:
    types: dict[str, list[str]] = {"_id": []}  # first-seen order; _id is first in every document
    for document in documents:
        for field_name, value in document.items():
            seen = types.setdefault(field_name, [])
            type_name = bson_type(value)
            if type_name not in seen:
                seen.append(type_name)
    columns = tuple(
        Column(
            name=field_name,
            type=_type_label(field_name, seen),
            nullable=field_name != "_id",  # any field may be missing or null, but _id
            primary_key=field_name == "_id",
        )
        for field_name, seen in types.items()
    )
    return Table(name=name, columns=columns)


def _type_label(field_name: str, seen: list[str]) -> str:
    concrete = [type_name for type_name in seen if type_name != "null"]
    if concrete:
        return "|".join(concrete)
    if field_name == "_id" and not seen:
        return "objectId"  # an empty collection: what the server generates when clients do not set it
    return "null"


# BSON type aliases (the names `$type` accepts), most specific Python type first: bool before int,
# Int64 before int.
_BSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "bool"),
    (Int64, "long"),
    (int, "int"),
    (float, "double"),
    (str, "string"),
    (ObjectId, "objectId"),
    ((datetime.datetime, DatetimeMS), "date"),
    (Decimal128, "decimal"),
    ((Binary, bytes), "binData"),
    (Timestamp, "timestamp"),
    ((Regex, re.Pattern), "regex"),
    (MinKey, "minKey"),
    (MaxKey, "maxKey"),
    ((DBRef, Mapping), "object"),
    (list, "array"),
)


def bson_type(value: object) -> str:
    """The BSON type alias of a decoded value."""
    if isinstance(value, Code):  # a str subclass: before str
        return "javascriptWithScope" if value.scope else "javascript"
    for python_type, name in _BSON_TYPES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__
