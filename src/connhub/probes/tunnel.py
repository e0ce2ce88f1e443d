"""SSH tunnels: a probe reaches a database through a bastion (and the bastion's jump host).

One tunnel per live test or table discovery, opened inside the runner's time budget and closed before
the answer leaves: an SSH connection to the bastion (through the jump host, a two-hop chain, when
there is one), and a listener on 127.0.0.1 with a port the kernel picks. Every connection the
driver makes to that listener (pymongo opens a monitor beside its pool) becomes a `direct-tcpip`
channel from the bastion to `host:port` as the user typed them: the bastion resolves and dials the
database. The driver's TLS still verifies the typed host name: probes present `target.host` and
connect to `ctx.address:ctx.port` (the listener).

Rules:
- The SSH servers are dialled at the addresses the network guard checked (the runner resolves
  them); with a jump host, the bastion's checked address is what the jump host is asked to reach.
- Host keys: the key a server shows is compared (by SHA256 fingerprint) with the trusted one,
  during the key exchange, before authentication: on a mismatch the connection is dropped and no
  credential is sent. Without a trusted key every key is accepted, and the report says which one
  was seen (the service records it after a successful test: trust on first use). A pinned public key
  also restricts the host key algorithms to its own, so a server with several keys shows that one.
- Nothing of the machine's SSH setup is used: no ~/.ssh/config, known_hosts, default keys or agent.
- `TunnelProgress` tells the runner how far the tunnel got, so a timeout while connecting is the
  bastion's (SSH_UNREACHABLE), and a driver's "connection closed" after the bastion refused to
  forward is SSH_FORWARD_FAILED.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import asyncssh

from connhub.domain.reports import ErrorCategory, SeenHostKey, SshInfo
from connhub.domain.ssh import fingerprint_of
from connhub.probes.base import ProbeFailure, SshHop, SshRoute

log = logging.getLogger(__name__)
# asyncssh logs every connection, channel and login at INFO: per live test, that would be a dozen
# lines of noise in the service's log. Its warnings stay; a deployment can still set it lower.
if logging.getLogger("asyncssh").level == logging.NOTSET:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)

LOCAL_HOST = "127.0.0.1"
_CLOSE_WAIT_S = 1.0  # how long closing waits for a server to acknowledge; closing never waits longer
_CHUNK = 64 * 1024
_NO_TRUSTED_KEYS: tuple[list[str], list[str], list[str]] = ([], [], [])  # every key goes to our check


@dataclass
class TunnelProgress:
    """How far a tunnel got; read by the runner when the attempt fails."""

    route: SshRoute
    connecting: SshHop | None = None  # the hop being connected (None once the tunnel is open)
    opened: bool = False
    seen: SshInfo = field(default_factory=SshInfo)
    forward_failure: ProbeFailure | None = None

    def timed_out(self, budget_s: float) -> ProbeFailure | None:
        """The failure a timeout means while a hop was being connected, else None."""
        hop = self.connecting
        if hop is None:
            return None
        return ProbeFailure(
            ErrorCategory.SSH_UNREACHABLE,
            f"No SSH answer from {_name(hop)} within {budget_s:g} s (key exchange and login included)",
            hop.field_prefix + "host",
        )


@dataclass(frozen=True)
class LocalEnd:
    """Where the driver connects to reach the database through the tunnel."""

    address: str
    port: int
    via: str  # for messages: "SSH bastion.example.com:22"


@asynccontextmanager
async def open_tunnel(
    route: SshRoute,
    addresses: tuple[str, str | None],
    destination: tuple[str, int],
    progress: TunnelProgress,
) -> AsyncIterator[LocalEnd]:
    """A tunnel to `destination` through `route`; `addresses` are the checked addresses of the
    bastion and the jump host. Everything is closed on exit, however the block ends."""
    bastion_address, jump_address = addresses
    connections: list[asyncssh.SSHClientConnection] = []
    forwarder: _Forwarder | None = None
    try:
        through: asyncssh.SSHClientConnection | None = None
        if route.jump is not None and jump_address is not None:
            through = await _connect(route.jump, jump_address, None, progress)
            connections.append(through)
        connections.append(await _connect(route.bastion, bastion_address, through, progress))
        progress.connecting, progress.opened = None, True
        forwarder = _Forwarder(connections[-1], destination, progress)
        port = await forwarder.start()
        yield LocalEnd(LOCAL_HOST, port, f"SSH {_name(route.bastion)}")
    finally:
        if forwarder is not None:
            await forwarder.close()
        for connection in reversed(connections):  # the bastion first, then the hop it ran through
            await _close(connection)


# --- connecting ----------------------------------------------------------------------------------


class _HostKeyCheck(asyncssh.SSHClient):
    """Decides on the server's host key during the key exchange and remembers it for the report."""

    def __init__(self, hop: SshHop, progress: TunnelProgress, jump: bool) -> None:
        self._hop = hop
        self._progress = progress
        self._jump = jump
        self.mismatch: SeenHostKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        seen = SeenHostKey(key.export_public_key("openssh").decode().strip(), str(key.get_fingerprint("sha256")))
        if self._jump:
            self._progress.seen.jump_host_key = seen
        else:
            self._progress.seen.host_key = seen
        if self._hop.host_key is None or fingerprint_of(self._hop.host_key) == seen.fingerprint:
            return True
        self.mismatch = seen
        return False


async def _connect(
    hop: SshHop, address: str, through: asyncssh.SSHClientConnection | None, progress: TunnelProgress
) -> asyncssh.SSHClientConnection:
    progress.connecting = hop
    if hop.password is None and hop.private_key is None:
        raise ProbeFailure(
            ErrorCategory.SSH_AUTH_FAILED,
            f"No SSH password or private key is stored for {_name(hop)}: add one (or upload the key file)",
            hop.credentials_prefix + "privateKey",
        )
    check = _HostKeyCheck(hop, progress, jump=hop is progress.route.jump)
    keys = None
    if hop.private_key is not None:
        # An encrypted key's KDF costs CPU time (bcrypt): off the event loop.
        keys = [await asyncio.to_thread(asyncssh.import_private_key, hop.private_key, hop.passphrase)]
    try:
        return await asyncssh.connect(
            address,
            hop.port,
            tunnel=through if through is not None else (),
            username=hop.user,
            password=hop.password,
            client_keys=keys,  # None: no public key authentication at all (not ~/.ssh's keys)
            client_factory=lambda: check,
            known_hosts=_NO_TRUSTED_KEYS,
            server_host_key_algs=_host_key_algorithms(hop.host_key),
            config=None,
            agent_path=None,
            gss_auth=False,
            gss_kex=False,
            host_based_auth=False,
            keepalive_interval=0,
        )
    except (OSError, asyncssh.Error) as exc:
        raise _connect_failure(exc, hop, check) from None


def _host_key_algorithms(host_key: str | None) -> list[str] | tuple[()]:
    """A pinned public key's own algorithms (so that key is the one shown); asyncssh's defaults otherwise."""
    if host_key is None or host_key.startswith("SHA256:"):
        return ()
    return [name.decode() for name in asyncssh.import_public_key(host_key).sig_algorithms]


def _connect_failure(exc: BaseException, hop: SshHop, check: _HostKeyCheck) -> ProbeFailure:
    where = _name(hop)
    if check.mismatch is not None and hop.host_key is not None:
        return ProbeFailure(
            ErrorCategory.SSH_HOST_KEY_MISMATCH,
            f"{where} showed host key {check.mismatch.fingerprint}, not the trusted {fingerprint_of(hop.host_key)}: "
            "nothing was sent. If the server's key really changed, set hostKey to the new one",
            hop.field_prefix + "hostKey",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        credential = "password" if _hop_has(hop, "password") else "privateKey"
        return ProbeFailure(
            ErrorCategory.SSH_AUTH_FAILED,
            f"{where} refused the login of user '{hop.user}'",
            hop.credentials_prefix + credential,
        )
    if isinstance(exc, ConnectionRefusedError):
        return ProbeFailure(ErrorCategory.SSH_UNREACHABLE, f"{where} refused the connection", hop.field_prefix + "port")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ProbeFailure(ErrorCategory.SSH_UNREACHABLE, f"{where} is unreachable", hop.field_prefix + "host")
    if isinstance(exc, asyncssh.ChannelOpenError):  # the jump host would not reach the bastion
        return ProbeFailure(
            ErrorCategory.SSH_UNREACHABLE,
            f"The jump host could not reach {where}: {exc.reason}",
            hop.field_prefix + "host",
        )
    if isinstance(exc, asyncssh.ProtocolError | asyncssh.ConnectionLost | asyncssh.ProtocolNotSupported):
        return ProbeFailure(
            ErrorCategory.SSH_UNREACHABLE,
            f"{where} did not complete an SSH handshake (is it an SSH server?): {_reason(exc)}",
            hop.field_prefix + "port",
        )
    return ProbeFailure(ErrorCategory.SSH_UNREACHABLE, f"SSH connection to {where} failed: {_reason(exc)}",
                        hop.field_prefix + "host")  # fmt: skip


def _hop_has(hop: SshHop, credential: str) -> bool:
    return (hop.password if credential == "password" else hop.private_key) is not None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc or type(exc).__name__)


def _name(hop: SshHop) -> str:
    host = f"[{hop.host}]" if ":" in hop.host else hop.host
    return f"{host}:{hop.port}"


async def _close(connection: asyncssh.SSHClientConnection) -> None:
    connection.close()
    with suppress(TimeoutError, asyncssh.Error, OSError):
        async with asyncio.timeout(_CLOSE_WAIT_S):
            await connection.wait_closed()


# --- forwarding ----------------------------------------------------------------------------------


class _Forwarder:
    """A listener on 127.0.0.1 whose every connection is piped to a direct-tcpip channel."""

    def __init__(
        self, connection: asyncssh.SSHClientConnection, destination: tuple[str, int], progress: TunnelProgress
    ) -> None:
        self._connection = connection
        self._destination = destination
        self._progress = progress
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter | asyncssh.SSHWriter[bytes]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, LOCAL_HOST, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            await self._pipe_through_channel(reader, writer)
        except (OSError, asyncssh.Error, asyncio.CancelledError):
            # Either side went away, or the tunnel is closing (only `close` cancels): the handler
            # ends normally, so asyncio's stream machinery has no cancelled task to complain about.
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(handler)

    async def _pipe_through_channel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self._destination
        try:
            remote_reader, remote_writer = await self._connection.open_connection(host, port)
        except asyncssh.ChannelOpenError as exc:
            self._progress.forward_failure = forward_failure(exc, host, port)
            log.debug("ssh forward to %s:%s refused: %s", host, port, exc.reason)
            return
        self._writers.add(remote_writer)
        try:
            await asyncio.gather(_copy(reader, remote_writer), _copy(remote_reader, writer))
        finally:
            remote_writer.close()
            self._writers.discard(remote_writer)


async def _copy(
    source: asyncio.StreamReader | asyncssh.SSHReader[bytes], sink: asyncio.StreamWriter | asyncssh.SSHWriter[bytes]
) -> None:
    """Bytes from `source` to `sink` until end of stream, then end `sink`'s stream too (half close)."""
    while data := await source.read(_CHUNK):
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof():
        sink.write_eof()


def forward_failure(exc: asyncssh.ChannelOpenError, host: str, port: int) -> ProbeFailure:
    """SSH_FORWARD_FAILED, naming the field to fix: the bastion's settings when it refuses to
    forward at all, the database's host when it cannot reach it."""
    reason = exc.reason or "refused"
    if exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
        return ProbeFailure(
            ErrorCategory.SSH_FORWARD_FAILED,
            f"The SSH server does not allow port forwarding to {host}:{port} for this user ({reason}): "
            "AllowTcpForwarding or PermitOpen on the bastion",
            "ssh.userName",
        )
    # A refusal means the host answered (its port is wrong or closed); anything else (a name the
    # bastion cannot resolve, no route) points at the host. The reason is the bastion's free text:
    # OpenSSH says "Connection refused", asyncssh servers the errno of their failed connect.
    refused = "refused" in reason.lower() or f"[Errno {errno.ECONNREFUSED}]" in reason
    return ProbeFailure(
        ErrorCategory.SSH_FORWARD_FAILED,
        f"The SSH server could not connect to {host}:{port} ({reason}): check host and port as the bastion sees them",
        "port" if refused else "host",
    )
