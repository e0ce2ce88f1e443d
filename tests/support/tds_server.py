"""A small in-process SQL Server stand-in that speaks enough TDS (MS-TDS) for the probe's tests.

SQL Server negotiates TLS inside TDS: the client's PRELOGIN says whether it wants encryption, the
server's PRELOGIN answer says what it will do, then the TLS handshake records travel as the payload
of further PRELOGIN packets. Once the handshake is done, TLS records go on the wire directly and
the TDS packets (LOGIN7, SQL batches, RPCs and their answers) travel inside them. `TdsServer` does
exactly that with the standard library's `ssl` (a server-side `SSLObject` over memory BIOs):

1. reads the client's PRELOGIN and records the encryption it asked for;
2. answers with `encryption` (ENCRYPT_ON by default; ENCRYPT_NOT_SUP: a server without a certificate;
   ENCRYPT_OFF: TLS for the LOGIN7 packet only when the client asked for encryption);
3. runs the TLS handshake inside PRELOGIN packets with `leaf`, recording the SNI name it was sent;
4. reads LOGIN7 inside TLS (user, password, database, server name recorded) and answers as told:
   accepted (LOGINACK with ENVCHANGEs for the database and collation), refused (ERROR tokens as
   SQL Server sends them), or accepted with a routing ENVCHANGE (Azure SQL redirect);
5. answers each SQL batch or RPC by keyword: a version query gets one row with `version`, the
   catalog query (INFORMATION_SCHEMA) gets `catalog_rows`, anything else an error.

It binds 127.0.0.1 only. It is a test double: it understands what pytds sends, not all of TDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.listeners import _Listener, server_ssl_context
from tests.support.pki import IssuedCert

# Packet types
SQL_BATCH, RPC, TABULAR_RESULT, LOGIN7, PRELOGIN = 0x01, 0x03, 0x04, 0x10, 0x12
# PRELOGIN ENCRYPTION values
ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 0, 1, 2, 3

_HEADER = struct.Struct(">BBHHBB")  # type, status, length, SPID, packet id, window
_END_OF_MESSAGE = 0x01
_MAX_PAYLOAD = 4088  # 4096-byte packets, as negotiated by default

# SQL_Latin1_General_CP1_CI_AS
COLLATION = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])

# Tokens
_COLMETADATA, _ROW, _ERROR, _LOGINACK, _ENVCHANGE, _DONE = 0x81, 0xD1, 0xAA, 0xAD, 0xE3, 0xFD
_RETURNSTATUS, _DONEPROC = 0x79, 0xFE
_NVARCHAR, _INTN = 0xE7, 0x26
_DONE_ERROR, _DONE_COUNT = 0x0002, 0x0010

# A server message: (number, text, severity class)
Message = tuple[int, str, int]
BAD_PASSWORD: Message = (18456, "Login failed for user 'sa'.", 14)
NO_DATABASE: Message = (4060, 'Cannot open database "shop" requested by the login. The login failed.', 11)

# Columns of the probe's catalog query, as (name, is integer)
CATALOG_COLUMNS = (
    ("TABLE_NAME", False),
    ("COLUMN_NAME", False),
    ("DATA_TYPE", False),
    ("CHARACTER_MAXIMUM_LENGTH", True),
    ("NUMERIC_PRECISION", True),
    ("NUMERIC_SCALE", True),
    ("IS_NULLABLE", False),
    ("PRIMARY_KEY", True),
)


@dataclass(frozen=True)
class Login:
    """What a LOGIN7 packet carried."""

    user: str
    password: str
    database: str
    server_name: str
    app_name: str
    encrypted: bool  # whether it arrived inside TLS


@dataclass
class Received:
    """What the server saw, for the tests' assertions."""

    prelogin_encryption: list[int] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    handshakes: int = 0  # TLS handshakes completed
    logins: list[Login] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


class TdsServer(_Listener):
    """Answers TDS as described in the module docstring. `leaf` is the certificate it presents."""

    def __init__(
        self,
        leaf: IssuedCert,
        *,
        encryption: int = ENCRYPT_ON,
        login_errors: Sequence[Message] = (),
        route_to: tuple[str, int] | None = None,
        version: str = "16.0.1000.6",
        catalog_rows: Iterable[Sequence[Any]] = (),
    ) -> None:
        context = server_ssl_context(leaf)
        context.sni_callback = self._on_sni
        super().__init__(None)  # plain TCP: TLS starts inside TDS, driven by `_serve`
        self._tls_context = context
        self._encryption = encryption
        self._login_errors = tuple(login_errors)
        self._route_to = route_to
        self._version = version
        self._catalog_rows = [tuple(row) for row in catalog_rows]
        self.received = Received()

    async def __aenter__(self) -> TdsServer:
        await super().__aenter__()
        return self

    def _on_sni(self, _tls: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        self.received.sni.append(name)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):  # the client hung up
            await self._converse(_Channel(reader, writer))

    async def _converse(self, channel: _Channel) -> None:
        kind, payload = await channel.read_message()
        if kind != PRELOGIN:
            return
        asked = prelogin_option(payload, 1)[0]
        self.received.prelogin_encryption.append(asked)
        channel.write_message(TABULAR_RESULT, prelogin_answer(self._encryption))
        await channel.drain()
        # ENCRYPT_OFF on both sides: TLS for the LOGIN7 packet only, then back to the clear.
        login_only = self._encryption == ENCRYPT_OFF and asked in (ENCRYPT_OFF, ENCRYPT_ON)
        if self._encryption in (ENCRYPT_ON, ENCRYPT_REQ) or login_only:
            if not await channel.start_tls(self._tls_context):
                return  # the client gave up on the handshake (e.g. it does not trust the certificate)
            self.received.handshakes += 1
        await channel.drain()

        kind, payload = await channel.read_message()
        if kind != LOGIN7:
            return
        self.received.logins.append(parse_login7(payload, encrypted=channel.encrypted))
        if login_only:
            channel.end_tls()
        channel.write_message(TABULAR_RESULT, self._login_answer(payload))
        await channel.drain()
        if self._login_errors or self._route_to:
            await asyncio.sleep(0.05)  # let the client read the answer before the hang-up
            return

        while True:
            kind, payload = await channel.read_message()
            if kind not in (SQL_BATCH, RPC):
                return
            text = query_text(payload)
            self.received.queries.append(text)
            channel.write_message(TABULAR_RESULT, self._query_answer(text, rpc=kind == RPC))
            await channel.drain()

    def _login_answer(self, login7: bytes) -> bytes:
        if self._login_errors:
            return b"".join(error_token(*error) for error in self._login_errors) + done(_DONE_ERROR)
        database = parse_login7(login7, encrypted=True).database or "master"
        tokens = envchange_text(1, database, "master") + envchange_collation() + loginack()
        if self._route_to is not None:
            tokens += envchange_routing(*self._route_to)
        return tokens + envchange_text(4, "4096", "4096") + done(0)

    def _query_answer(self, text: str, *, rpc: bool) -> bytes:
        if "ProductVersion" in text or "@@VERSION" in text.upper():
            tokens = result_set([("", False)], [(self._version,)])
        elif "INFORMATION_SCHEMA" in text:
            tokens = result_set(CATALOG_COLUMNS, self._catalog_rows)
        else:
            tokens = error_token(208, "Invalid object name.", 16) + done(_DONE_ERROR)
        if rpc:  # sp_executesql's return status, then the end of the procedure
            return tokens + bytes([_RETURNSTATUS, 0, 0, 0, 0, _DONEPROC]) + struct.pack("<HHQ", 0, 0xE0, 0)
        return tokens


class _Channel:
    """TDS messages over the TCP stream, or over TLS once `start_tls` has run."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._plain = b""  # decrypted bytes not yet consumed

    @property
    def encrypted(self) -> bool:
        return self._tls is not None

    def end_tls(self) -> None:
        """Back to the clear TCP stream (after a login-only TLS session; no close_notify)."""
        self._tls = None

    async def start_tls(self, context: ssl.SSLContext) -> bool:
        """The TLS handshake, its records carried in PRELOGIN packets. False if the client quit."""
        tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        while True:
            try:
                kind, payload = await self.read_message()
            except asyncio.IncompleteReadError:
                return False
            if kind != PRELOGIN:
                return False
            self._incoming.write(payload)
            try:
                tls.do_handshake()
                finished = True
            except ssl.SSLWantReadError:
                finished = False
            except ssl.SSLError:
                return False
            flight = self._outgoing.read()
            if flight:
                self._write_packets(PRELOGIN, flight)
                await self._writer.drain()
            if finished:
                self._tls = tls
                return True

    async def read_message(self) -> tuple[int, bytes]:
        """One TDS message (one or more packets up to end-of-message): (packet type, payload)."""
        kind, payload, status = 0, b"", 0
        while not status & _END_OF_MESSAGE:
            kind, status, length, _, _, _ = _HEADER.unpack(await self._read(_HEADER.size))
            payload += await self._read(length - _HEADER.size)
        return kind, payload

    async def _read(self, size: int) -> bytes:
        if self._tls is None:
            return await self._reader.readexactly(size)
        while len(self._plain) < size:
            try:
                self._plain += self._tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                raise asyncio.IncompleteReadError(self._plain, size) from None
            chunk = await self._reader.read(65536)
            if not chunk:
                raise asyncio.IncompleteReadError(self._plain, size)
            self._incoming.write(chunk)
        data, self._plain = self._plain[:size], self._plain[size:]
        return data

    def write_message(self, kind: int, payload: bytes) -> None:
        if self._tls is None:
            self._write_packets(kind, payload)
            return
        self._tls.write(_packets(kind, payload))
        self._writer.write(self._outgoing.read())

    def _write_packets(self, kind: int, payload: bytes) -> None:
        self._writer.write(_packets(kind, payload))

    async def drain(self) -> None:
        await self._writer.drain()


# --- TDS encoding --------------------------------------------------------------------------------


def _packets(kind: int, payload: bytes) -> bytes:
    chunks = [payload[i : i + _MAX_PAYLOAD] for i in range(0, len(payload), _MAX_PAYLOAD)] or [b""]
    out = b""
    for number, chunk in enumerate(chunks, start=1):
        status = _END_OF_MESSAGE if number == len(chunks) else 0
        out += _HEADER.pack(kind, status, _HEADER.size + len(chunk), 0, number % 256, 0) + chunk
    return out


def prelogin_answer(encryption: int) -> bytes:
    """A server's PRELOGIN answer: VERSION, ENCRYPTION, INSTOPT, THREADID, MARS."""
    options = [(0, bytes([16, 0, 3, 232, 0, 0])), (1, bytes([encryption])), (2, b"\x00"), (3, b""), (4, b"\x00")]
    header_size = 5 * len(options) + 1
    header, data = b"", b""
    for token, value in options:
        header += struct.pack(">BHH", token, header_size + len(data), len(value))
        data += value
    return header + b"\xff" + data


def prelogin_option(payload: bytes, wanted: int) -> bytes:
    """The value of option `wanted` in a PRELOGIN payload."""
    position = 0
    while payload[position] != 0xFF:
        token, offset, length = struct.unpack(">BHH", payload[position : position + 5])
        if token == wanted:
            return payload[offset : offset + length]
        position += 5
    raise ValueError(f"no PRELOGIN option {wanted}")


def _b_varchar(text: str) -> bytes:
    return bytes([len(text)]) + text.encode("utf-16-le")


def _us_varchar(text: str) -> bytes:
    return struct.pack("<H", len(text)) + text.encode("utf-16-le")


def error_token(number: int, message: str, severity: int) -> bytes:
    body = struct.pack("<iBB", number, 1, severity) + _us_varchar(message) + _b_varchar("sql1") + _b_varchar("")
    body += struct.pack("<i", 1)  # line number
    return bytes([_ERROR]) + struct.pack("<H", len(body)) + body


def done(status: int, rows: int = 0) -> bytes:
    return bytes([_DONE]) + struct.pack("<HHQ", status, 0xC1, rows)


def loginack(program: str = "Microsoft SQL Server") -> bytes:
    # interface, TDS version (7.4, big-endian), program name, program version (16.0.1000)
    body = b"\x01" + struct.pack(">I", 0x74000004) + _b_varchar(program) + bytes([16, 0, 0x03, 0xE8])
    return bytes([_LOGINACK]) + struct.pack("<H", len(body)) + body


def envchange_text(kind: int, new: str, old: str) -> bytes:
    body = bytes([kind]) + _b_varchar(new) + _b_varchar(old)
    return bytes([_ENVCHANGE]) + struct.pack("<H", len(body)) + body


def envchange_collation() -> bytes:
    body = bytes([7, len(COLLATION)]) + COLLATION + b"\x00"
    return bytes([_ENVCHANGE]) + struct.pack("<H", len(body)) + body


def envchange_routing(server: str, port: int) -> bytes:
    """ENVCHANGE type 20: go to `server`:`port` instead (Azure SQL's redirect)."""
    value = b"\x00" + struct.pack("<H", port) + _us_varchar(server)  # protocol 0 = TCP
    body = bytes([20]) + struct.pack("<H", len(value)) + value + b"\x00\x00"
    return bytes([_ENVCHANGE]) + struct.pack("<H", len(body)) + body


def result_set(columns: Sequence[tuple[str, bool]], rows: Iterable[Sequence[Any]]) -> bytes:
    """COLMETADATA, ROWs, DONE: integer columns as INTN(4), the others as NVARCHAR(4000)."""
    meta = bytes([_COLMETADATA]) + struct.pack("<H", len(columns))
    for name, integer in columns:
        meta += struct.pack("<IH", 0, 0x0001)  # user type, flags (nullable)
        meta += bytes([_INTN, 4]) if integer else bytes([_NVARCHAR]) + struct.pack("<H", 8000) + COLLATION
        meta += _b_varchar(name)
    body, count = b"", 0
    for row in rows:
        count += 1
        body += bytes([_ROW])
        for (_, integer), value in zip(columns, row, strict=True):
            if value is None:
                body += b"\x00" if integer else b"\xff\xff"
            elif integer:
                body += b"\x04" + struct.pack("<i", int(value))
            else:
                encoded = str(value).encode("utf-16-le")
                body += struct.pack("<H", len(encoded)) + encoded
    return meta + body + done(_DONE_COUNT, count)


# --- what clients send ---------------------------------------------------------------------------


def _decode_password(data: bytes) -> str:
    # LOGIN7 obfuscation: each byte had its nibbles swapped, then was XORed with 0xA5.
    plain = bytes((((byte ^ 0xA5) << 4) & 0xF0) | ((byte ^ 0xA5) >> 4) for byte in data)
    return plain.decode("utf-16-le")


def parse_login7(payload: bytes, *, encrypted: bool) -> Login:
    def field_at(position: int) -> bytes:
        offset, length = struct.unpack_from("<HH", payload, position)
        return payload[offset : offset + 2 * length]

    return Login(
        user=field_at(40).decode("utf-16-le"),
        password=_decode_password(field_at(44)),
        app_name=field_at(48).decode("utf-16-le"),
        server_name=field_at(52).decode("utf-16-le"),
        database=field_at(68).decode("utf-16-le"),
        encrypted=encrypted,
    )


def query_text(payload: bytes) -> str:
    """The SQL text of a batch or of an RPC (sp_executesql's statement), loosely: the payload
    after ALL_HEADERS decoded as UTF-16, unprintable characters dropped."""
    headers_length = struct.unpack_from("<I", payload, 0)[0] if len(payload) >= 4 else 0
    body = payload[headers_length:]
    texts = [body[start:].decode("utf-16-le", "ignore") for start in (0, 1)]
    printable = ["".join(ch for ch in text if ch.isascii() and (ch.isprintable() or ch.isspace())) for text in texts]
    return max(printable, key=lambda text: sum(ch.isascii() and ch.isalpha() for ch in text))
