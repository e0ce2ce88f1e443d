"""What a live test and a table discovery tell the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal


class ErrorCategory(StrEnum):
    """Why a test failed, typed so a caller can act on it without parsing driver text."""

    DNS_FAILED = "DNS_FAILED"
    HOST_UNREACHABLE = "HOST_UNREACHABLE"
    PORT_CLOSED = "PORT_CLOSED"
    TIMEOUT = "TIMEOUT"
    TLS_FAILED = "TLS_FAILED"
    AUTH_FAILED = "AUTH_FAILED"
    DATABASE_NOT_FOUND = "DATABASE_NOT_FOUND"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    HOST_FORBIDDEN = "HOST_FORBIDDEN"
    DECRYPT_FAILED = "DECRYPT_FAILED"
    DRIVER_ERROR = "DRIVER_ERROR"
    # Through an SSH tunnel (issue 16): the bastion (or jump host) could not be reached, refused the
    # credentials, showed another host key than the trusted one, or would not forward to the database.
    SSH_UNREACHABLE = "SSH_UNREACHABLE"
    SSH_AUTH_FAILED = "SSH_AUTH_FAILED"
    SSH_HOST_KEY_MISMATCH = "SSH_HOST_KEY_MISMATCH"
    SSH_FORWARD_FAILED = "SSH_FORWARD_FAILED"


# The request field a user should fix for each category, where one field is to blame.
FIELD_TO_FIX: dict[ErrorCategory, str | None] = {
    ErrorCategory.DNS_FAILED: "host",
    ErrorCategory.HOST_UNREACHABLE: "host",
    ErrorCategory.PORT_CLOSED: "port",
    ErrorCategory.TIMEOUT: "host",
    ErrorCategory.TLS_FAILED: "ssl",
    ErrorCategory.AUTH_FAILED: "password",
    ErrorCategory.DATABASE_NOT_FOUND: "databaseName",
    ErrorCategory.PERMISSION_DENIED: "userName",
    ErrorCategory.HOST_FORBIDDEN: "host",
    ErrorCategory.DECRYPT_FAILED: "password",
    ErrorCategory.DRIVER_ERROR: None,
    # The tunnel's failures name their field themselves (ssh.password or ssh.privateKey, the jump
    # host's or the bastion's...); these are the defaults.
    ErrorCategory.SSH_UNREACHABLE: "ssh.host",
    ErrorCategory.SSH_AUTH_FAILED: "ssh.password",
    ErrorCategory.SSH_HOST_KEY_MISMATCH: "ssh.hostKey",
    ErrorCategory.SSH_FORWARD_FAILED: "host",
}


@dataclass
class Phases:
    """Milliseconds spent in each phase; None where the phase did not happen."""

    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    auth_ms: float | None = None
    query_ms: float | None = None
    ssh_ms: float | None = None  # opening the SSH tunnel: connect, key exchange, authentication (all hops)


@dataclass
class TlsInfo:
    enabled: bool = False
    version: str | None = None
    cipher: str | None = None
    # The server certificate's notAfter, where the driver shows the peer certificate.
    certificate_expires_at: datetime | None = None


@dataclass(frozen=True)
class SeenHostKey:
    """A host key an SSH server showed, so the user can compare and pin it."""

    host_key: str  # `type base64`, the form `ssh.hostKey` accepts
    fingerprint: str  # SHA256:..., as ssh-keygen -l shows it

    def to_json(self) -> dict[str, str]:
        return {"hostKey": self.host_key, "fingerprint": self.fingerprint}


@dataclass
class SshInfo:
    """What the tunnel learnt: the host keys seen, per hop (None: that hop was not reached)."""

    host_key: SeenHostKey | None = None
    jump_host_key: SeenHostKey | None = None

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"hostKey": None, "fingerprint": None}
        if self.host_key is not None:
            shown |= self.host_key.to_json()
        if self.jump_host_key is not None:
            shown["jumpHost"] = self.jump_host_key.to_json()
        return shown


@dataclass
class ProbeError:
    category: ErrorCategory
    message: str
    field: str | None = None


@dataclass
class TestReport:
    __test__ = False  # not a pytest test class

    status: Literal["success", "failure"]
    latency_ms: float
    message: str
    server_version: str | None = None
    tls: TlsInfo = field(default_factory=TlsInfo)
    phases: Phases = field(default_factory=Phases)
    error: ProbeError | None = None
    ssh: SshInfo | None = None  # only for a connection through an SSH tunnel

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_json(self) -> dict[str, Any]:
        """The report as the API shows it (camelCase)."""
        return {
            "status": self.status,
            # An integer: Lerian's ConnectionTestResponse.LatencyMs is an int64, and Go's decoder
            # refuses 3.7 there. The phases keep their decimals.
            "latencyMs": round(self.latency_ms),
            "message": self.message,
            "serverVersion": self.server_version,
            "tls": {
                "enabled": self.tls.enabled,
                "version": self.tls.version,
                "cipher": self.tls.cipher,
                "certificateExpiresAt": _instant(self.tls.certificate_expires_at),
            },
            "phases": {
                "dnsMs": _ms(self.phases.dns_ms),
                "connectMs": _ms(self.phases.connect_ms),
                "tlsMs": _ms(self.phases.tls_ms),
                "authMs": _ms(self.phases.auth_ms),
                "queryMs": _ms(self.phases.query_ms),
                "sshMs": _ms(self.phases.ssh_ms),
            },
            "error": None
            if self.error is None
            else {
                "category": str(self.error.category),
                "message": self.error.message,
                "field": self.error.field,
            },
            **({"ssh": self.ssh.to_json()} if self.ssh is not None else {}),
        }


def _instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def failure_report(
    category: ErrorCategory, message: str, latency_ms: float = 0.0, field: str | None = None, **extra: Any
) -> TestReport:
    """A failed report whose error names `field`, or else the field to fix for its category."""
    return TestReport(
        status="failure",
        latency_ms=latency_ms,
        message=message,
        error=ProbeError(category, message, field or FIELD_TO_FIX[category]),
        **extra,
    )


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    primary_key: bool


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]

    @property
    def fields(self) -> list[str]:
        return [column.name for column in self.columns]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": self.fields,
            "columns": [
                {"name": c.name, "type": c.type, "nullable": c.nullable, "primaryKey": c.primary_key}
                for c in self.columns
            ],
        }
