"""Operational endpoints: liveness, readiness, metrics, version. They need no token."""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from starlette.responses import Response

from connhub import __version__
from connhub.api.deps import CoordinationDep, RepositoryDep, ServiceDep
from connhub.api.openapi import PUBLIC_TAG
from connhub.api.responses import Json
from connhub.domain.errors import StoreUnavailable
from connhub.store.revision import behind_message

router = APIRouter(tags=[PUBLIC_TAG])  # openapi.py: no bearer token on these


def _json(example: Mapping[str, object], schema: Mapping[str, object] | None = None) -> dict[str, object]:
    return {"content": {"application/json": {"schema": schema or {"type": "object"}, "example": example}}}


@router.get("/health", summary="Liveness", responses={200: {"description": "Alive", **_json({"status": "ok"})}})
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


READY = {"status": "ready", "checks": {"store": "ok", "schema": "ok", "keys": "ok"}}
BEHIND = {
    "status": "unready",
    "checks": {"store": "ok", "schema": "behind", "keys": "ok"},
    "message": f"schema behind: {behind_message('0004')}",  # names this version's revision (HEAD)
}


@router.get(
    "/readyz",
    summary="Readiness: the store answers at this version's schema and every key in use is loaded",
    responses={
        200: {"description": "Ready", **_json(READY, READINESS)},
        503: {"description": "Not ready (the body says why)", **_json(BEHIND, READINESS)},
    },
)
async def readyz(service: ServiceDep, repository: RepositoryDep, shared: CoordinationDep) -> Json:
    checks: dict[str, object] = {}
    problems: list[str] = []
    try:
        await repository.ping()
        checks["store"] = "ok"
        behind = await repository.revision.behind()
        checks["schema"] = "behind" if behind else "ok"
        problems += [f"schema behind: {behind}"] if behind else []
        # An older schema cannot answer the key queries (nor any other): only ask at the current one.
        missing = [] if behind else await service.missing_key_ids()
        differing = [] if behind else await service.key_mismatches()
        unready_keys = {name: ids for name, ids in (("missing", missing), ("differing", differing)) if ids}
        checks["keys"] = unready_keys or "ok"
        if missing:
            problems.append("stored secrets are sealed under key id(s) not loaded: " + ", ".join(missing))
        if differing:
            problems.append(
                "CONNHUB_ENCRYPTION_KEYS holds other bytes than the store knows for key id(s): "
                + ", ".join(differing)
                + " (every replica must hold the same key under an id)"
            )
    except StoreUnavailable:
        checks["store"] = "unavailable"
    answers = await shared.shared_state_answers() if shared is not None else None
    if answers is not None:  # informational: without Redis tests answer 503, all else works: still ready
        checks["sharedState"] = "ok" if answers else "unavailable"
    ready = checks["store"] == "ok" and not problems
    body = {"status": "ready" if ready else "unready", "checks": checks}
    if problems:
        body["message"] = "; ".join(problems)
    return Json(body, status_code=200 if ready else 503)


METRICS_EXAMPLE = 'connhub_http_requests_total{method="GET",route="/health",status="200"} 42.0\n'


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": METRICS_EXAMPLE}},
        }
    },
)
async def metrics() -> Response:
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    """This process's metrics, or every worker's summed (`connhub serve --workers N`, see cli)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@router.get(
    "/version",
    summary="Build version",
    responses={200: {"description": "Version", **_json({"name": "connhub", "version": __version__})}},
)
async def version() -> Json:
    return Json({"name": "connhub", "version": __version__})
