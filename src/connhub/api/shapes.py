"""Answer shapes both dialects share, for the OpenAPI description: the JSON error shape and the
domain's reports as their `to_json` renders them (reports.py). A dialect's own shapes live in its
folder (`dialects/<name>/shapes.py`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class Problem(BaseModel):
    code: str
    title: str
    message: str
    fields: dict[str, str] | None = None
    report: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None


class TlsOut(BaseModel):
    enabled: bool
    version: str | None
    cipher: str | None


class PhasesOut(BaseModel):
    dnsMs: float | None
    connectMs: float | None
    tlsMs: float | None
    authMs: float | None
    queryMs: float | None


class ProbeErrorOut(BaseModel):
    category: str
    message: str
    field: str | None


class TestReportOut(BaseModel):
    status: Literal["success", "failure"]
    latencyMs: float
    message: str
    serverVersion: str | None
    tls: TlsOut
    phases: PhasesOut
    error: ProbeErrorOut | None


class ColumnOut(BaseModel):
    name: str
    type: str
    nullable: bool
    primaryKey: bool


class TableOut(BaseModel):
    name: str
    fields: list[str]
    columns: list[ColumnOut]
