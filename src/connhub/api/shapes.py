"""Answer shapes both dialects share, for the OpenAPI description: the JSON error shape and the
domain's reports as their `to_json` renders them (reports.py). A dialect's own shapes live in its
folder (`dialects/<name>/shapes.py`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Examples for /docs, from real answers of this version (made-up values); tests/api/test_docs.py
# validates each against its model.
TEST_REPORT: dict[str, Any] = {
    "status": "success",
    "latencyMs": 21,
    "message": "Connected to PostgreSQL 15.20",
    "serverVersion": "15.20 (Debian 15.20-0+deb12u1)",
    "tls": {"enabled": True, "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384",
            "certificateExpiresAt": "2027-03-01T12:00:00.000Z"},
    "phases": {"dnsMs": 0.04, "connectMs": 11.92, "tlsMs": 3.1, "authMs": 2.2, "queryMs": 4.64},
    "error": None,
}
FAILED_REPORT: dict[str, Any] = {
    "status": "failure",
    "latencyMs": 42,
    "message": 'password authentication failed for user "dbuser"',
    "serverVersion": None,
    "tls": {"enabled": True, "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"},
    "phases": {"dnsMs": 0.05, "connectMs": 9.8, "tlsMs": 3.0, "authMs": None, "queryMs": None},
    "error": {"category": "AUTH_FAILED", "message": 'password authentication failed for user "dbuser"',
              "field": "password"},
}  # fmt: skip
TABLE: dict[str, Any] = {
    "name": "orders",
    "fields": ["id", "customer_id", "total"],
    "columns": [
        {"name": "id", "type": "bigint", "nullable": False, "primaryKey": True},
        {"name": "customer_id", "type": "bigint", "nullable": False, "primaryKey": False},
        {"name": "total", "type": "numeric(12,2)", "nullable": True, "primaryKey": False},
    ],
}
PROBLEM: dict[str, Any] = {
    "code": "CONN-1001",
    "title": "Invalid request",
    "message": "Invalid value for: port",
    "fields": {"port": "must be an integer from 1 to 65535"},
    "requestId": "4f6c0a1e9b2d4e7f8a3c5b6d7e8f9a0b",
}


class Problem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [PROBLEM]})

    code: str
    title: str
    message: str
    requestId: str | None = Field(None, description="the answer's X-Request-Id, to find its log line")
    fields: dict[str, str] | None = None
    report: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None


class TlsOut(BaseModel):
    enabled: bool
    version: str | None
    cipher: str | None
    certificateExpiresAt: str | None = Field(None, description="the server certificate's notAfter, when sent")


class PhasesOut(BaseModel):
    dnsMs: float | None
    connectMs: float | None
    tlsMs: float | None
    authMs: float | None
    queryMs: float | None
    sshMs: float | None = None


class ProbeErrorOut(BaseModel):
    category: str
    message: str
    field: str | None


class SeenHostKeyOut(BaseModel):
    hostKey: str | None
    fingerprint: str | None


class SshReportOut(SeenHostKeyOut):
    """The host keys an SSH tunnel's servers showed (only in reports of tunnelled tests)."""

    jumpHost: SeenHostKeyOut | None = None


class TestReportOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [TEST_REPORT, FAILED_REPORT]})

    status: Literal["success", "failure"]
    latencyMs: int = Field(description="whole milliseconds (Lerian decodes it into an int64)")
    message: str
    serverVersion: str | None
    tls: TlsOut
    phases: PhasesOut
    error: ProbeErrorOut | None
    ssh: SshReportOut | None = None


class ColumnOut(BaseModel):
    name: str
    type: str
    nullable: bool
    primaryKey: bool


class TableOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [TABLE]})

    name: str
    fields: list[str]
    columns: list[ColumnOut]
