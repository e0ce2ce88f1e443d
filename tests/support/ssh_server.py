"""A real SSH server (asyncssh's own) on 127.0.0.1, as a bastion for the tunnel tests.

It authenticates by password and by public key, forwards `direct-tcpip` channels (or refuses
them, as `AllowTcpForwarding no` does), and resolves the destination names it is asked for from
its own table (`hosts`), so no test ever asks the system resolver: a name it does not know fails
as a bastion's failed lookup does. It counts what a test asserts on: connections (open and
total), login attempts, and the forwards asked for.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncssh

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class SshKeyPair:
    """A client key: the private key text to configure (optionally encrypted) and its public key."""

    private_key: str
    public_key: asyncssh.SSHKey
    passphrase: str | None = None


def client_key(algorithm: str = "ssh-ed25519", passphrase: str | None = None, fmt: str = "openssh") -> SshKeyPair:
    key = asyncssh.generate_private_key(algorithm)
    # 16 bcrypt rounds, as ssh-keygen encrypts keys (asyncssh's default of 128 takes seconds here).
    text = key.export_private_key(fmt, passphrase=passphrase, rounds=16, ignore_few_rounds=True).decode()
    return SshKeyPair(text, key.convert_to_public(), passphrase)


def host_key(algorithm: str = "ssh-ed25519") -> asyncssh.SSHKey:
    return asyncssh.generate_private_key(algorithm)


def public_line(key: asyncssh.SSHKey) -> str:
    """The `type base64` line of a key's public half (what ssh.hostKey takes)."""
    return key.export_public_key("openssh").decode().strip()


def fingerprint(key: asyncssh.SSHKey) -> str:
    return str(key.get_fingerprint("sha256"))


@dataclass
class Bastion:
    """Settings and counters of one in-process SSH server."""

    passwords: Mapping[str, str] = field(default_factory=dict)
    authorized_keys: Mapping[str, list[asyncssh.SSHKey]] = field(default_factory=dict)
    hosts: Mapping[str, str] = field(default_factory=dict)  # names it resolves for forwards
    allow_forwarding: bool = True
    host_keys: list[asyncssh.SSHKey] = field(default_factory=lambda: [host_key()])
    port: int = 0
    connections_total: int = 0
    open_connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    login_attempts: list[str] = field(default_factory=list)
    forwards: list[tuple[str, int]] = field(default_factory=list)
    _server: asyncssh.SSHAcceptor | None = None

    @property
    def host_key(self) -> asyncssh.SSHKey:
        return self.host_keys[0]

    async def __aenter__(self) -> Bastion:
        self._server = await asyncssh.create_server(
            lambda: _BastionServer(self),
            LOOPBACK,
            self.port,  # 0: any free port; a given one to stand in for a bastion whose key changed
            server_host_keys=self.host_keys,
            # Only the methods a test configured, so a refusal is a refusal, not another method.
            kbdint_auth=False,
            gss_host=None,
            keepalive_interval=0,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for connection in list(self.open_connections):
            connection.close()
        await self._server.wait_closed()

    async def settled(self, bound_s: float = 5.0) -> int:
        """Open connections once the client's close has arrived (it may lag the answer by a packet)."""
        async with asyncio.timeout(bound_s):
            while self.open_connections:
                await asyncio.sleep(0.01)
        return len(self.open_connections)


class _BastionServer(asyncssh.SSHServer):
    def __init__(self, bastion: Bastion) -> None:
        self._bastion = bastion
        self._connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._bastion.connections_total += 1
        self._bastion.open_connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._bastion.open_connections.discard(self._connection)

    def begin_auth(self, username: str) -> bool:
        self._bastion.login_attempts.append(username)
        return True

    def password_auth_supported(self) -> bool:
        return bool(self._bastion.passwords)

    def validate_password(self, username: str, password: str) -> bool:
        return self._bastion.passwords.get(username) == password

    def public_key_auth_supported(self) -> bool:
        return bool(self._bastion.authorized_keys)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return key in self._bastion.authorized_keys.get(username, [])

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        self._bastion.forwards.append((dest_host, dest_port))
        if not self._bastion.allow_forwarding:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "TCP forwarding is disabled")
        address = self._bastion.hosts.get(dest_host, dest_host)
        try:
            ipaddress.ip_address(address)
        except ValueError:  # as the bastion's resolver would answer a name it does not know
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "Name or service not known") from None
        assert self._connection is not None
        return self._connection.forward_connection(address, dest_port)
