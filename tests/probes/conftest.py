"""Fixtures for the probe tests: runners, loopback listeners, and throw-away servers.

Every byte these tests send goes to loopback: the machine's PostgreSQL and MariaDB, throw-away
servers on 127.0.0.1, or listeners on 127.0.0.1/127.0.0.2. That includes DNS: a test that resolves
a name other than `localhost` asks a `LoopbackDnsServer` (tests/support/dns_server.py) through the
runner's `dns_servers`, and `system_resolver` (autouse) fails any test that asks the system
resolver, whose DNS server is off this machine, for another name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connhub.probes.guard import DEFAULT_DENY_CIDRS, parse_cidrs
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.support.pg_instance import PG_BIN, PostgresInstance, start_postgres
from tests.support.pki import CertificateAuthority
from tests.support.reliability import require_binary
from tests.support.servers import free_port, port_open, require_server

CERT_USER = "connhub_cert_user"  # authenticates with a client certificate on the throw-away servers


# --- runners ---------------------------------------------------------------------------------


@pytest.fixture
def make_runner() -> Callable[..., ProbeRunner]:
    """A runner with the default policy but for what the test says (CIDRs as text)."""

    def make(
        timeout_s: float = 10.0,
        deny: str = DEFAULT_DENY_CIDRS,
        allow: str = "",
        max_concurrent: int = 64,
        dns_servers: tuple[tuple[str, int], ...] = (),
    ) -> ProbeRunner:
        return ProbeRunner(ProbePolicy(timeout_s, parse_cidrs(deny), parse_cidrs(allow), max_concurrent, dns_servers))

    return make


@pytest.fixture
def runner(make_runner: Callable[..., ProbeRunner]) -> ProbeRunner:
    return make_runner()


# --- listeners -------------------------------------------------------------------------------


@dataclass
class Listener:
    """Accepts TCP connections and never sends a byte; counts who came."""

    host: str
    port: int = 0
    accepted: int = 0
    held: list[asyncio.StreamWriter] = field(default_factory=list)

    async def on_connection(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.held.append(writer)  # kept open, silent, until the listener closes


@asynccontextmanager
async def silent_listener(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Listener]:
    listener = Listener(host)
    server = await asyncio.start_server(listener.on_connection, host, port)
    listener.port = int(server.sockets[0].getsockname()[1])
    try:
        yield listener
    finally:
        for writer in listener.held:
            writer.close()
        server.close()
        await server.wait_closed()


# --- the system resolver ---------------------------------------------------------------------


class SystemResolverTripwire:
    """Stands in for `socket.getaddrinfo` (what asyncio, pymongo and python-oracledb resolve with):
    IP literals and `localhost` (the hosts file) pass; any other name is refused here, as a resolver
    would refuse an unknown name (EAI_NONAME), instead of becoming a DNS query off this machine.
    The test fails unless it declared the name with `expect`."""

    LOCAL_NAMES = frozenset({"localhost", "localhost."})

    def __init__(self, original: Callable[..., Any]) -> None:
        self.refused: list[str] = []
        self.expected: set[str] = set()
        self._original = original

    def expect(self, name: str) -> None:
        self.expected.add(name)

    def unexpected(self) -> list[str]:
        return [name for name in self.refused if name not in self.expected]

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or _is_ip_literal(str(name)) or str(name).lower() in self.LOCAL_NAMES:
            return self._original(host, *args, **kwargs)
        self.refused.append(str(name))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (refused by the test tripwire)")


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def system_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[SystemResolverTripwire]:
    tripwire = SystemResolverTripwire(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", tripwire.getaddrinfo)
    yield tripwire
    unexpected = tripwire.unexpected()
    assert not unexpected, (
        f"the test asked the system resolver for {sorted(set(unexpected))}: a DNS query off this machine. "
        "Resolve names through a LoopbackDnsServer (ProbePolicy.dns_servers)."
    )


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_postgres() -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)


@pytest.fixture(scope="session")
def throwaway_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInstance]:
    """A PostgreSQL with TLS, scram-sha-256 passwords, and client-certificate login for CERT_USER."""
    require_binary(PG_BIN / "postgres")
    with start_postgres(tmp_path_factory.mktemp("pg"), ssl=True, cert_users=[CERT_USER]) as pg:
        pg.execute(f"CREATE ROLE {CERT_USER} LOGIN")
        yield pg


# --- MariaDB ---------------------------------------------------------------------------------

MARIADB_SERVER = Path(os.environ.get("CONNHUB_TEST_MARIADBD", "/usr/sbin/mariadbd"))
MARIADB_INSTALL = Path(os.environ.get("CONNHUB_TEST_MARIADB_INSTALL_DB", "/usr/bin/mariadb-install-db"))


class MariadbInstance:
    """A throw-away MariaDB with TLS (certificate for `localhost` only, issued by `ca`); `root`
    has no password over 127.0.0.1. Runs as the `mysql` OS user when the tests run as root."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="connhub-mariadb-"))
        self.ca = CertificateAuthority("Connhub Test MariaDB CA")
        self.port = free_port()
        self._os_user = pwd.getpwnam("mysql") if os.geteuid() == 0 else None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._write_tls_files()
        self._chown(self.base, *self.base.iterdir())
        user = [f"--user={self._os_user.pw_name}"] if self._os_user else []
        subprocess.run(
            [str(MARIADB_INSTALL), "--no-defaults", f"--datadir={self.base / 'data'}", *user,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self._process = subprocess.Popen(
            [str(MARIADB_SERVER), "--no-defaults", *user, f"--datadir={self.base / 'data'}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.base / 'mysqld.sock'}",
             f"--pid-file={self.base / 'mysqld.pid'}", f"--log-error={self.base / 'error.log'}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
             f"--ssl-ca={self.base / 'ca.pem'}", f"--ssl-cert={self.base / 'server.pem'}",
             f"--ssl-key={self.base / 'server.key'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_until_listening()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def _write_tls_files(self) -> None:
        server = self.ca.issue(["localhost"])
        for name, text in {
            "ca.pem": self.ca.cert_pem,
            "server.pem": server.cert_pem,
            "server.key": server.key_pem,
        }.items():
            path = self.base / name
            path.write_text(text)
            path.chmod(0o600)

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 30
        while not port_open(self.host, self.port, timeout=0.2):
            if time.monotonic() > deadline or (self._process and self._process.poll() is not None):
                log = (self.base / "error.log").read_text() if (self.base / "error.log").exists() else ""
                self.stop()
                raise RuntimeError(f"MariaDB did not start:\n{log}")
            time.sleep(0.1)

    def _chown(self, *paths: Path) -> None:
        if self._os_user is not None:
            for path in paths:
                os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)


@pytest.fixture(scope="session")
def shared_mariadb() -> None:
    require_server("MariaDB", "127.0.0.1", 3306)


@pytest.fixture(scope="session")
def throwaway_mariadb() -> Iterator[MariadbInstance]:
    require_binary(MARIADB_SERVER)
    require_binary(MARIADB_INSTALL)
    instance = MariadbInstance()
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
