"""Runs a probe under the service's rules and turns whatever happens into a `TestReport`.

The rules: a global bound on concurrent probes; the network guard before any connection; one
time budget (CONNHUB_PROBE_TIMEOUT_S) for the whole call, waiting for a slot and opening and
closing an SSH tunnel included; and no secret in anything that leaves this module. Every string
of every report passes through `Redactor.clean` on its way out, whatever produced it (our
messages, driver errors, the server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, quote_plus

from connhub.coordination import ProbeSlots
from connhub.coordination.local import LocalProbeSlots
from connhub.domain.engines import Engine
from connhub.domain.reports import ErrorCategory, Phases, SshInfo, Table, TestReport, TlsInfo, failure_report
from connhub.probes import egress
from connhub.probes.base import Probe, ProbeContext, ProbeFailure, ProbeTarget, SshHop, SshRoute
from connhub.probes.guard import (
    DEFAULT_DENY_CIDRS,
    DnsServer,
    Network,
    ip_literal,
    is_allowed,
    parse_cidrs,
    resolve_checked,
)
from connhub.probes.registry import probe_for
from connhub.probes.tunnel import TunnelProgress, open_tunnel

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_MESSAGE = 500
REDACTED = "***"


@dataclass(frozen=True)
class ProbePolicy:
    timeout_s: float = 10.0
    deny: tuple[Network, ...] = parse_cidrs(DEFAULT_DENY_CIDRS)
    allow: tuple[Network, ...] = ()
    max_concurrent: int = 64
    # The DNS servers customer host names are resolved with (CONNHUB_PROBE_DNS_SERVERS); empty:
    # the system resolver.
    dns_servers: tuple[DnsServer, ...] = ()


class ProbeRunner:
    """Tests connections and discovers their tables; one instance serves the whole process."""

    def __init__(self, policy: ProbePolicy, slots: ProbeSlots | None = None) -> None:
        self._policy = policy
        # The global bound: this process's, or every replica's through Redis (connhub.coordination).
        self._slots = slots or LocalProbeSlots(policy.max_concurrent)

    async def test(self, target: ProbeTarget) -> TestReport:
        """Connect, authenticate, run a trivial query. Never raises (but for cancellation)."""
        _, report = await self._run(target, lambda probe, ctx: probe.test(target, ctx))
        return report

    async def discover_tables(self, target: ProbeTarget) -> tuple[list[Table] | None, TestReport]:
        """The target's tables with a report of the attempt; tables are None when it failed."""
        return await self._run(target, lambda probe, ctx: probe.discover_tables(target, ctx))

    async def _run(
        self, target: ProbeTarget, action: Callable[[Probe, ProbeContext], Awaitable[T]]
    ) -> tuple[T | None, TestReport]:
        redactor = Redactor.for_target(target)
        attempt = _Attempt(started=time.perf_counter())
        try:
            async with asyncio.timeout(self._policy.timeout_s):
                result = await self._attempt(target, attempt, action)
        except Exception as exc:  # a driver's surprise must become a report, not a 500
            return None, self._failed(target, attempt, self._failure(target, exc, attempt), redactor)
        return result, self._succeeded(target, attempt, result, redactor)

    def _failure(self, target: ProbeTarget, exc: Exception, attempt: _Attempt) -> ProbeFailure:
        tunnel = attempt.tunnel
        if tunnel is not None and tunnel.forward_failure is not None:
            return tunnel.forward_failure  # the driver only saw its connection closed: this is why
        if attempt.hops is not None and attempt.hops.refused:
            # Whatever the driver made of the refusal (a closed connection, a timeout), the
            # reason is that the server sent it elsewhere.
            return ProbeFailure(
                ErrorCategory.HOST_FORBIDDEN,
                f"{_product(target.engine, None)} at {target.host}:{target.port} sent the "
                f"connection on to {attempt.hops.refused[0]} (a redirect or a discovered member); only the "
                "address the network guard checked is used: test the server it names directly",
            )
        if isinstance(exc, ProbeFailure):
            return exc
        if isinstance(exc, TimeoutError):  # the budget ran out (or a driver gave up first)
            if tunnel is not None and (in_ssh := tunnel.timed_out(self._policy.timeout_s)) is not None:
                return in_ssh
            budget = f"{self._policy.timeout_s:g} s"
            return ProbeFailure(ErrorCategory.TIMEOUT, f"No answer from {target.host}:{target.port} within {budget}")
        return ProbeFailure(ErrorCategory.DRIVER_ERROR, f"{type(exc).__name__}: {exc}")

    async def _attempt(
        self, target: ProbeTarget, attempt: _Attempt, action: Callable[[Probe, ProbeContext], Awaitable[T]]
    ) -> T:
        async with self._slots.slot():
            probe = probe_for(target.engine)
            if target.ssh is not None:
                return await self._through_tunnel(target, target.ssh, attempt, probe, action)
            dns_started = time.perf_counter()
            address = await self._checked(target.host, target.port, attempt)
            attempt.phases.dns_ms = (time.perf_counter() - dns_started) * 1000
            attempt.ctx = ProbeContext(address, self._remaining(attempt), phases=attempt.phases)
            with egress.confined(address) as attempt.hops:  # every hop of the driver: see probes/egress.py
                return await action(probe, attempt.ctx)

    async def _through_tunnel(
        self,
        target: ProbeTarget,
        route: SshRoute,
        attempt: _Attempt,
        probe: Probe,
        action: Callable[[Probe, ProbeContext], Awaitable[T]],
    ) -> T:
        """The probe through an SSH tunnel: the guard checks the SSH hosts. The bastion resolves and
        dials the database's host, out of our sight, in its own network: only an IP literal can be
        checked here, and only against the deny list (a metadata address is never a database)."""
        literal = ip_literal(target.host)
        if literal is not None and not is_allowed(literal, self._policy.deny, ()):
            raise ProbeFailure(ErrorCategory.HOST_FORBIDDEN, f"Connections to {target.host} are not allowed")
        dns_started = time.perf_counter()
        bastion = await self._checked_hop(route.bastion, attempt)
        jump = await self._checked_hop(route.jump, attempt) if route.jump is not None else None
        attempt.phases.dns_ms = (time.perf_counter() - dns_started) * 1000
        attempt.tunnel = TunnelProgress(route)
        ssh_started = time.perf_counter()
        async with open_tunnel(route, (bastion, jump), (target.host, target.port), attempt.tunnel) as local:
            attempt.phases.ssh_ms = (time.perf_counter() - ssh_started) * 1000
            attempt.ctx = ProbeContext(
                local.address, self._remaining(attempt), phases=attempt.phases, port=local.port, via=local.via
            )
            # Through the tunnel the driver may reach its local end only: not another port of loopback.
            with egress.confined(local.address, local.port) as attempt.hops:
                return await action(probe, attempt.ctx)

    async def _checked_hop(self, hop: SshHop, attempt: _Attempt) -> str:
        try:
            return await self._checked(hop.host, hop.port, attempt)
        except ProbeFailure as failure:  # the same guard, naming the SSH field to fix
            raise ProbeFailure(failure.category, failure.message, hop.field_prefix + "host") from None

    async def _checked(self, host: str, port: int, attempt: _Attempt) -> str:
        return await resolve_checked(
            host,
            port,
            self._policy.deny,
            self._policy.allow,
            self._remaining(attempt),
            dns_servers=self._policy.dns_servers,
        )

    def _remaining(self, attempt: _Attempt) -> float:
        return max(0.0, self._policy.timeout_s - (time.perf_counter() - attempt.started))

    def _succeeded(self, target: ProbeTarget, attempt: _Attempt, result: object, redactor: Redactor) -> TestReport:
        version = attempt.ctx.server_version if attempt.ctx else None
        message = f"Connected to {_product(target.engine, version)}"
        if isinstance(result, list):
            message += f"; read {len(result)} tables"
        report = TestReport(
            status="success",
            latency_ms=attempt.elapsed_ms(),
            message=message,
            server_version=version,
            tls=attempt.tls(),
            phases=dataclasses.replace(attempt.phases),
            ssh=attempt.ssh(),
        )
        log.info("probe %s %s:%s succeeded", target.engine, target.host, target.port)
        return redactor.report(report)

    def _failed(self, target: ProbeTarget, attempt: _Attempt, failure: ProbeFailure, redactor: Redactor) -> TestReport:
        report = failure_report(
            failure.category,
            failure.message,
            attempt.elapsed_ms(),
            failure.field,
            server_version=attempt.ctx.server_version if attempt.ctx else None,
            tls=attempt.tls(),
            # A copy: a driver thread that outlives the budget may still write into the original.
            phases=dataclasses.replace(attempt.phases),
            ssh=attempt.ssh(),
        )
        report = redactor.report(report)
        log.info(
            "probe %s %s:%s failed: %s: %s",
            target.engine,
            target.host,
            target.port,
            failure.category,
            report.message,
        )
        return report


@dataclass
class _Attempt:
    started: float
    phases: Phases = dataclasses.field(default_factory=Phases)
    ctx: ProbeContext | None = None
    hops: egress.Egress | None = None
    tunnel: TunnelProgress | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def tls(self) -> TlsInfo:
        return dataclasses.replace(self.ctx.tls) if self.ctx else TlsInfo()

    def ssh(self) -> SshInfo | None:
        return dataclasses.replace(self.tunnel.seen) if self.tunnel else None


def _product(engine: str, version: str | None) -> str:
    name = Engine(engine).facts.product_name if engine in Engine.__members__ else engine
    if version and "mariadb" in version.lower():
        name = "MariaDB"
    number = re.match(r"\d+(?:\.\d+)*", version or "")
    return f"{name} {number.group(0)}" if number else name


class Redactor:
    """Removes a target's secrets from text: the one gate every outgoing string passes."""

    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @classmethod
    def for_target(cls, target: ProbeTarget) -> Redactor:
        secrets = [target.password, quote(target.password, safe=""), quote_plus(target.password)]
        keys = [target.ssl.key] if target.ssl and target.ssl.key else []
        if target.ssh is not None:
            ssh_secrets = target.ssh.secrets()
            secrets.extend(ssh_secrets)
            keys.extend(secret for secret in ssh_secrets if "\n" in secret)
        for key in keys:
            # The whole PEM and each base64 line of it, should a driver quote a fragment.
            secrets.append(key)
            secrets.extend(line.strip() for line in key.splitlines() if len(line.strip()) >= 16)
        return cls(secrets)

    def clean(self, text: str) -> str:
        """One line, bounded length, no secret."""
        text = self._replace(text)
        # Collapsing whitespace could join a secret that spans whitespace back together: replace again.
        text = self._replace(" ".join(text.split()))
        return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"

    def _replace(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self.clean(text)

    def report(self, report: TestReport) -> TestReport:
        tls = dataclasses.replace(
            report.tls, version=self.optional(report.tls.version), cipher=self.optional(report.tls.cipher)
        )
        error = report.error
        if error is not None:
            error = dataclasses.replace(error, message=self.clean(error.message))
        return dataclasses.replace(
            report,
            message=self.clean(report.message),
            server_version=self.optional(report.server_version),
            tls=tls,
            error=error,
        )
