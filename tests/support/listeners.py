"""Loopback listeners that misbehave on purpose, and test certificates, for the probes' failure paths.

- `SilentListener`: accepts TCP connections and never sends a byte (a firewall that swallows
  traffic, a hung server): a probe must give up within its budget.
- `TlsListener`: completes (or fails) TLS handshakes with a given certificate, then stays silent
  or hangs up: a client that does not trust the certificate must fail with a TLS error.
- `TestCa` / `make_ca`: a throwaway CA issuing server and client certificates, so a test can build
  a chain the client trusts, or one it does not.

Everything binds 127.0.0.1 on a free port and is an async context manager that closes every
connection it accepted on exit.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class CertKey:
    """A PEM certificate and its unencrypted PEM private key."""

    cert: str
    key: str


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class TestCa:
    """A self-signed CA that issues leaf certificates for test servers and clients."""

    __test__ = False  # not a pytest test class

    def __init__(self, common_name: str = "Connhub Test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> str:
        return self._cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, names: Iterable[str], *, client: bool = False) -> CertKey:
        """A leaf certificate for `names` (DNS names or IP addresses, the first is the CN)."""
        names = list(names)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(_san(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return CertKey(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def make_ca(common_name: str = "Connhub Test CA") -> TestCa:
    return TestCa(common_name)


def server_ssl_context(leaf: CertKey, *, client_ca: str | None = None) -> ssl.SSLContext:
    """A server-side context presenting `leaf`; with `client_ca`, client certificates are required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain only reads files: a private temporary directory, gone when loaded.
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_text(leaf.cert)
        key_path.write_text(leaf.key)
        context.load_cert_chain(cert_path, key_path)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca)
    return context


class _Listener:
    """Accepts on 127.0.0.1 and hands every connection to `_serve`; closes them all on exit."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.port = 0

    async def __aenter__(self) -> _Listener:
        self._server = await asyncio.start_server(
            self._on_connection, LOOPBACK, 0, ssl=self._ssl, ssl_handshake_timeout=10 if self._ssl else None
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
    """Accepts TCP connections and never answers."""

    def __init__(self) -> None:
        super().__init__(None)

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
        self, leaf: CertKey | None = None, *, names: Iterable[str] = ("localhost",), hang_up: bool = False
    ) -> None:
        if leaf is None:
            # An untrusted certificate: issued by a CA nobody is given.
            leaf = make_ca("Untrusted Test CA").issue(names)
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
