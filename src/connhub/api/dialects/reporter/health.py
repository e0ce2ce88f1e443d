"""A connection's scheduled health (Reporter dialect): `GET` and `PUT .../{id}/health`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from connhub.api.deps import Reader, Writer
from connhub.api.dialects.formats import rfc3339
from connhub.api.dialects.reporter.routes import BASE
from connhub.api.dialects.reporter.translate import connection_id
from connhub.api.http import hub, json_object
from connhub.api.openapi import errors, json_body
from connhub.api.params import Parameter, documented
from connhub.api.responses import Json
from connhub.domain.errors import ValidationFailed
from connhub.health.model import CheckResult, HealthView
from connhub.health.monitor import MAX_RESULTS, render_window

router = APIRouter(tags=["Connections (Reporter)"])
RESULTS = Parameter(
    "results", "query", {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": 20}, "last N results"
)


RESULT_EXAMPLE: dict[str, Any] = {
    "checkedAt": "2026-12-03T09:14:00.000Z",
    "status": "down",
    "category": "AUTH_FAILED",
    "latencyMs": 3.2,
    "serverVersion": "15.4",
    "certificateExpiresAt": None,
}
HEALTH_EXAMPLE: dict[str, Any] = {
    "id": "01938f2e-8a4b-7c3d-9e1f-2a3b4c5d6e7f",
    "state": "down",
    "since": "2026-12-03T09:12:00.000Z",
    "lastCheckedAt": "2026-12-03T09:14:00.000Z",
    "nextCheckAt": "2026-12-03T09:16:07.000Z",
    "intervalS": 60,
    "ownIntervalS": None,
    "breaker": {"open": True, "consecutiveFailures": 3},
    "certificateExpiresAt": None,
    "windows": {
        "24h": {"checks": 1440, "uptime": 0.9979, "latencyP50Ms": 4.1, "latencyP95Ms": 9.8},
        "7d": {"checks": 10080, "uptime": 0.9997, "latencyP50Ms": 4.0, "latencyP95Ms": 9.1},
    },
    "results": [RESULT_EXAMPLE],
}


class WindowOut(BaseModel):
    checks: int
    uptime: float | None
    latencyP50Ms: float | None
    latencyP95Ms: float | None


class ResultOut(BaseModel):
    checkedAt: str
    status: Literal["up", "down"]
    category: str | None
    latencyMs: float
    serverVersion: str | None
    certificateExpiresAt: str | None


class BreakerOut(BaseModel):
    open: bool
    consecutiveFailures: int


class HealthOut(BaseModel):
    id: str
    state: Literal["up", "down", "unknown"]
    since: str | None
    lastCheckedAt: str | None
    nextCheckAt: str | None
    intervalS: float | None
    ownIntervalS: int | None
    breaker: BreakerOut
    certificateExpiresAt: str | None
    windows: dict[str, WindowOut]
    results: list[ResultOut]

    model_config = ConfigDict(json_schema_extra={"examples": [HEALTH_EXAMPLE]})


class HealthSettingsIn(BaseModel):
    """The connection's own interval: seconds, 0 (never checked) or null (CONNHUB_HEALTH_INTERVAL_S)."""

    intervalS: int | None

    model_config = ConfigDict(json_schema_extra={"examples": [{"intervalS": 600}]})


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None or moment.year == 9999 else rfc3339(moment)


def _result(result: CheckResult) -> dict[str, Any]:
    return {
        "checkedAt": rfc3339(result.checked_at),
        "status": result.state.value,
        "category": result.category,
        "latencyMs": round(result.latency_ms, 2),
        "serverVersion": result.server_version,
        "certificateExpiresAt": _instant(result.cert_expires_at),
    }


def render(view: HealthView) -> dict[str, Any]:
    return {
        "id": str(view.connection_id),
        "state": view.state.value,
        "since": _instant(view.since),
        "lastCheckedAt": _instant(view.last_checked_at),
        "nextCheckAt": _instant(view.next_check_at),
        "intervalS": view.interval_s,
        "ownIntervalS": view.own_interval_s,
        "breaker": {"open": view.breaker_open, "consecutiveFailures": view.consecutive_failures},
        "certificateExpiresAt": _instant(view.cert_expires_at),
        "windows": {"24h": render_window(view.last_day), "7d": render_window(view.last_week)},
        "results": [_result(result) for result in view.results],
    }


def _results_wanted(request: Request) -> int:
    raw = RESULTS.text(request)
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RESULTS:
        raise ValidationFailed({"results": f"must be an integer from 1 to {MAX_RESULTS}"})
    return int(raw)


@router.get(
    BASE + "/{id}/health",
    summary="A connection's scheduled health: state, since when, last results, uptime and latency",
    openapi_extra=documented(RESULTS),
    responses={200: {"model": HealthOut}, **errors(400, 401, 403, 404, 503)},
)
async def health(request: Request, id: str, principal: Reader) -> Json:
    wanted = _results_wanted(request)
    connection = await hub(request).service.get(principal.tenant, connection_id(id))
    return Json(render(await hub(request).health.view(connection, wanted)))


@router.put(
    BASE + "/{id}/health",
    summary="Set a connection's own check interval (seconds; 0 never; null the default)",
    openapi_extra=json_body(HealthSettingsIn),
    responses={200: {"model": HealthOut}, **errors(400, 401, 403, 404, 413, 415, 503)},
)
async def set_health(request: Request, id: str, principal: Writer) -> Json:
    monitor = hub(request).health
    # Another tenant's record is a 404 before anything about the body is said.
    connection = await hub(request).service.get(principal.tenant, connection_id(id))
    interval = monitor.parse_settings(await json_object(request))
    await monitor.set_interval(connection, interval)
    return Json(render(await monitor.view(connection)))
