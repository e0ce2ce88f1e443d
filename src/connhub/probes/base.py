"""The one small interface every engine's probe implements, and what it is given.

A probe receives a `ProbeTarget` (the connection with its secrets opened, for the duration of one
call only) and the IP address the network guard already resolved and checked. It must connect to
that address, never resolve `target.host` again (the host name is still used for TLS verification).
Through an SSH tunnel that address is the tunnel's local end (127.0.0.1 and `ctx.port`): probes
connect to `ctx.address`:`ctx.dial_port(target)` and never assume the port is `target.port`.

Probes raise `ProbeFailure` for failures they can classify; anything else is reported as
DRIVER_ERROR by the runner. They fill `ProbeContext` as they go, so a report shows how far a
failed attempt got.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from connhub.domain.reports import ErrorCategory, Phases, Table, TlsInfo


@dataclass(frozen=True)
class SslMaterial:
    """The ssl settings with the PEMs opened (libpq `sslmode` vocabulary for every engine)."""

    mode: str  # disable, allow, prefer, require, verify-ca, verify-full
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class SshHop:
    """One SSH server to pass through, its credentials opened (jump host inheritance resolved)."""

    host: str
    port: int
    user: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    host_key: str | None = None  # the trusted key or SHA256 fingerprint; None: trust on first use
    field_prefix: str = "ssh."  # how the report names this hop's fields (ssh. or ssh.jumpHost.)
    credentials_prefix: str = "ssh."  # where its credentials came from (a jump host may use the bastion's)


@dataclass(frozen=True)
class SshRoute:
    """The bastion, and the jump host it is reached through (if any)."""

    bastion: SshHop
    jump: SshHop | None = None

    def secrets(self) -> list[str]:
        hops = [self.bastion] if self.jump is None else [self.bastion, self.jump]
        return [value for hop in hops for value in (hop.password, hop.private_key, hop.passphrase) if value]


@dataclass(frozen=True)
class ProbeTarget:
    engine: str  # an Engine value: POSTGRESQL, MYSQL, MONGODB, SQL_SERVER, ORACLE
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    schema_name: str | None = None  # the schema discovery reads (None: the engine's default)
    ssl: SslMaterial | None = field(default=None, repr=False)
    # Driver options (e.g. MongoDB authSource, replicaSet; `srv`="true" for mongodb+srv).
    options: Mapping[str, str] = field(default_factory=dict)
    # Schemas to discover besides the target's own (a mapped `accounting.invoices`); their tables
    # are named `schema.table`, the own schema's bare. Engines without schemas ignore it.
    schemas: tuple[str, ...] = ()
    ssh: SshRoute | None = field(default=None, repr=False)  # reach the database through these


class ProbeFailure(Exception):
    """A failure the probe could classify. `message` must hold no secret. `field` overrides the
    category's default field to fix (the tunnel names ssh.password or ssh.jumpHost.privateKey...)."""

    def __init__(self, category: ErrorCategory, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.category = category
        self.message = message
        self.field = field


@dataclass
class ProbeContext:
    """Filled by the probe while it works: timings, TLS facts and the server's version."""

    address: str  # the checked IP address to connect to
    timeout_s: float  # what is left of the whole test's budget when the probe starts
    phases: Phases = field(default_factory=Phases)
    tls: TlsInfo = field(default_factory=TlsInfo)
    server_version: str | None = None
    port: int | None = None  # where to connect when it is not target.port: an SSH tunnel's local end
    via: str | None = None  # how the address is reached, for messages ("SSH bastion.example.com:22")

    def dial_port(self, target: ProbeTarget) -> int:
        """The port to connect to: the tunnel's local one, or the target's."""
        return target.port if self.port is None else self.port

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase (`connect`, `tls`, `auth`, `query`) into `phases.<name>_ms`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self.phases, f"{name}_ms", (time.perf_counter() - started) * 1000)


class Probe(Protocol):
    """Live access to one engine."""

    async def test(self, target: ProbeTarget, ctx: ProbeContext) -> None:
        """Connect, authenticate and run a trivial query; fill `ctx`; raise on failure."""

    async def discover_tables(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        """Tables (or collections) of the target's schema with their columns in ordinal order.

        One catalog query per engine (or a bounded few), never one per table.
        """
