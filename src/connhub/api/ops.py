"""Operational endpoints: liveness, readiness, metrics, version. They need no token."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from connhub import __version__
from connhub.api.deps import RepositoryDep, ServiceDep
from connhub.api.responses import Json
from connhub.domain.errors import StoreUnavailable

router = APIRouter(tags=["Operations"])


@router.get("/health", summary="Liveness")
async def health() -> Json:
    return Json({"status": "ok"})


READINESS = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"enum": ["ready", "unready"]},
        "checks": {"type": "object"},
        "message": {"type": "string"},
    },
}


@router.get(
    "/readyz",
    summary="Readiness: the store answers and every key in use is loaded",
    responses={
        200: {"description": "Ready", "content": {"application/json": {"schema": READINESS}}},
        503: {"description": "Not ready (the body says why)", "content": {"application/json": {"schema": READINESS}}},
    },
)
async def readyz(service: ServiceDep, repository: RepositoryDep) -> Json:
    checks: dict[str, object] = {}
    try:
        await repository.ping()
        missing = await service.missing_key_ids()
        checks["store"] = "ok"
        checks["keys"] = "ok" if not missing else {"missing": missing}
    except StoreUnavailable:
        checks["store"] = "unavailable"
        missing = []
    ready = checks["store"] == "ok" and not missing
    body = {"status": "ready" if ready else "unready", "checks": checks}
    if missing:
        body["message"] = "stored secrets are sealed under key id(s) not loaded: " + ", ".join(missing)
    return Json(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/version", summary="Build version")
async def version() -> Json:
    return Json({"name": "connhub", "version": __version__})
