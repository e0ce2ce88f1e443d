"""Loopback listeners that misbehave on purpose, for the probes' failure paths.

- `SilentListener`: accepts TCP connections and never sends a byte (a firewall that swallows
  traffic, a hung server): a probe must give up within its budget.
- `TlsListener`: completes (or fails) TLS handshakes with a given certificate, then stays silent
  or hangs up: a client that does not trust the certificate must fail with a TLS error.
- `server_ssl_context`: a server-side TLS context presenting a leaf from `tests.support.pki`.

Everything binds 127.0.0.1 (or another loopback address given) on a free port and is an async
context manager that closes every connection it accepted on exit.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from tests.support.pki import CertificateAuthority, IssuedCert

LOOPBACK = "127.0.0.1"


def server_ssl_context(leaf: IssuedCert, *, client_ca: str | None = None) -> ssl.SSLContext:
    """A server-side context presenting `leaf`; with `client_ca`, client certificates are required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain only reads files: a private temporary directory, gone when loaded.
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_text(leaf.cert_pem)
        key_path.write_text(leaf.key_pem)
        context.load_cert_chain(cert_path, key_path)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca)
    return context


class _Listener:
    """Accepts on 127.0.0.1 and hands every connection to `_serve`; closes them all on exit."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, *, host: str = LOOPBACK) -> None:
        self._ssl = ssl_context
        self.host = host
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.port = 0

    async def __aenter__(self) -> _Listener:
        self._server = await asyncio.start_server(
            self._on_connection, self.host, 0, ssl=self._ssl, ssl_handshake_timeout=10 if self._ssl else None
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        # Handlers still running (a silent one, a settling one) end now, not at loop shutdown.
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # the client went away, or the listener is closing
        finally:
            self._writers.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read and discard until the client gives up: never answer.
        while await reader.read(65536):
            pass


class SilentListener(_Listener):
    """Accepts TCP connections and never answers. On another loopback address (`host`, e.g.
    127.0.0.2) it stands for a place a probe must never reach: `accepted` stays 0."""

    def __init__(self, host: str = LOOPBACK) -> None:
        super().__init__(None, host=host)

    async def __aenter__(self) -> SilentListener:
        await super().__aenter__()
        return self


class TlsListener(_Listener):
    """Speaks TLS from the first byte with `leaf` (a fresh self-signed certificate by default).

    After a handshake it stays silent, or hangs up when `hang_up` is set. A client that does not
    trust the certificate fails the handshake; `ca` is the CA that issued `leaf`, for clients that
    should trust it.
    """

    def __init__(
        self, leaf: IssuedCert | None = None, *, names: Iterable[str] = ("localhost",), hang_up: bool = False
    ) -> None:
        if leaf is None:
            # An untrusted certificate: issued by a CA nobody is given.
            leaf = CertificateAuthority("Untrusted Test CA").issue(names)
        self.leaf = leaf
        self._hang_up = hang_up
        super().__init__(server_ssl_context(leaf))

    async def __aenter__(self) -> TlsListener:
        await super().__aenter__()
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._hang_up:
            return
        await super()._serve(reader, writer)


class ScriptedListener(_Listener):
    """Answers each message a client sends with the next of `replies`, then hangs up.

    A message is whatever arrives before the client pauses for `settle_s`: enough for protocols
    where the client speaks first and waits (a TNS CONNECT, a TDS PRELOGIN and LOGIN7), so a test
    can play a server's real answer, e.g. a listener's refusal or a failed login, byte for byte.
    """

    def __init__(self, replies: Iterable[bytes], *, settle_s: float = 0.05) -> None:
        super().__init__(None)
        self._replies = list(replies)
        self._settle_s = settle_s
        self.received: list[bytes] = []

    async def __aenter__(self) -> ScriptedListener:
        await super().__aenter__()
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in self._replies:
            message = await self._message(reader)
            if not message:
                return
            self.received.append(message)
            writer.write(reply)
            await writer.drain()
        await asyncio.sleep(self._settle_s)  # let the client read the last reply before the hang-up

    async def _message(self, reader: asyncio.StreamReader) -> bytes:
        message = await reader.read(65536)
        while message:
            try:
                async with asyncio.timeout(self._settle_s):
                    more = await reader.read(65536)
            except TimeoutError:
                break
            if not more:
                break
            message += more
        return message
