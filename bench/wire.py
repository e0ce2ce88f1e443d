"""A trivial PostgreSQL wire server for the health benchmark: every login succeeds, `SELECT 1` answers 1.

    python -m bench.wire PORT

It speaks just enough of the protocol (v3) for a live test: SSL/GSS requests refused ('N'), startup
answered with AuthenticationOk, a few ParameterStatus, BackendKeyData and ReadyForQuery, a simple
query answered with one int4 row. It runs in a process of its own, so serving thousands of checks a
minute costs neither the server measured nor the load generator. Loopback only.
"""

from __future__ import annotations

import asyncio
import struct
import sys

SSL_REQUEST, GSS_REQUEST = 80877103, 80877104
PARAMETERS = {
    "server_version": "15.0 (bench wire)",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "TimeZone": "UTC",
}


def message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _login() -> bytes:
    parts = [message(b"R", struct.pack("!I", 0))]
    parts += [message(b"S", name.encode() + b"\0" + value.encode() + b"\0") for name, value in PARAMETERS.items()]
    parts.append(message(b"K", struct.pack("!II", 4242, 1)))
    parts.append(message(b"Z", b"I"))
    return b"".join(parts)


def _one_row() -> bytes:
    field = b"?column?\0" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)
    return b"".join(
        [
            message(b"T", struct.pack("!h", 1) + field),
            message(b"D", struct.pack("!hI", 1, 1) + b"1"),
            message(b"C", b"SELECT 1\0"),
            message(b"Z", b"I"),
        ]
    )


LOGIN, ONE_ROW = _login(), _one_row()


async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:  # the startup phase: length-prefixed packets without a type byte
            length, code = struct.unpack("!II", await reader.readexactly(8))
            await reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSS_REQUEST):
                writer.write(b"N")
                continue
            break
        writer.write(LOGIN)
        while True:
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            await reader.readexactly(length - 4)
            if kind == b"X":
                break
            if kind == b"Q":
                writer.write(ONE_ROW)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve_client, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
