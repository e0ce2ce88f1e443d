"""The one small interface every engine's probe implements, and what it is given.

A probe receives a `ProbeTarget` (the connection with its secrets opened, for the duration of one
call only) and the IP address the network guard already resolved and checked. It must connect to
that address, never resolve `target.host` again (the host name is still used for TLS verification).

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
class ProbeTarget:
    engine: str  # an Engine value: POSTGRESQL, MYSQL, MONGODB, SQL_SERVER, ORACLE
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    schema: str | None = None
    ssl: SslMaterial | None = field(default=None, repr=False)
    # Driver options (e.g. MongoDB authSource, replicaSet; `srv`="true" for mongodb+srv).
    options: Mapping[str, str] = field(default_factory=dict)
    # Schemas to discover besides the target's own (a mapped `accounting.invoices`); their tables
    # are named `schema.table`, the own schema's bare. Engines without schemas ignore it.
    schemas: tuple[str, ...] = ()


class ProbeFailure(Exception):
    """A failure the probe could classify. `message` must hold no secret."""

    def __init__(self, category: ErrorCategory, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message


@dataclass
class ProbeContext:
    """Filled by the probe while it works: timings, TLS facts and the server's version."""

    address: str  # the checked IP address to connect to
    timeout_s: float  # what is left of the whole test's budget when the probe starts
    phases: Phases = field(default_factory=Phases)
    tls: TlsInfo = field(default_factory=TlsInfo)
    server_version: str | None = None

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

    async def read_schema(self, target: ProbeTarget, ctx: ProbeContext) -> list[Table]:
        """Tables (or collections) of the target's schema with their columns in ordinal order.

        One catalog query per engine (or a bounded few), never one per table.
        """
