"""The app factory: settings in, a ready ASGI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from connhub import __version__, bootstrap
from connhub.api import audit, console, errors, ops
from connhub.api.access import RequestLog
from connhub.api.acting import ActingContext
from connhub.api.auth import Authenticator
from connhub.api.dialects.chartbrew import routes as chartbrew
from connhub.api.dialects.reporter import health
from connhub.api.dialects.reporter import routes as reporter
from connhub.api.docs import install_docs
from connhub.api.http import BodyLimit, BodyTooLarge, Hub, UnsupportedMediaType
from connhub.api.openapi import install_openapi
from connhub.api.rendered import RenderedRowCaches
from connhub.api.responses import Json
from connhub.config import Settings
from connhub.health.scheduler import Clock

log = logging.getLogger("connhub")


def build_hub(settings: Settings, clock: Clock | None = None) -> Hub:
    """What the routers need; `clock` drives the health scheduler (tests pass their own)."""
    core = bootstrap.build(settings, clock)
    return Hub(settings, core, Authenticator(settings))


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    hub = build_hub(settings, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if hub.scheduler is not None:
            hub.scheduler.start()
        yield
        await hub.close()

    app = FastAPI(
        title="Connhub",
        version=__version__,
        description="An organization's database connections: stored safely, tested live, described.",
        lifespan=lifespan,
        default_response_class=Json,
        docs_url=None,  # api/docs.py serves /docs and /redoc from local assets
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.rendered_rows = RenderedRowCaches()
    errors.install(app)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(UnsupportedMediaType, _not_json)
    for router in (ops.router, reporter.router, chartbrew.router, audit.router, health.router):
        _include(app, router)
    console.install(app)
    install_openapi(app, bearer=settings.auth == "jwt")
    install_docs(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(ActingContext)
    app.add_middleware(RequestLog)  # outermost: its id and access line cover the body limit's 413 too
    return app


def _include(app: FastAPI, router: APIRouter) -> None:
    """`router`'s routes, added to the app's own list. FastAPI 0.165 keeps an included router as a
    nested router that is matched twice per request (its `matches`, then `_handle_selected`): in a
    profile of gets, route matching cost more than the route's own work (`python -m bench.profile
    get --concurrency 16`). Our routers carry no prefix and no router-level dependency, so their
    routes serve the same from the app's list, and the OpenAPI document is the same
    (tests/api/test_openapi_fields.py, tests/api/test_docs.py)."""
    app.router.routes.extend(router.routes)


async def _too_large(_request: Request, _error: Exception) -> Response:
    return errors.http_problem(413, "the request body is over this route's size limit")


async def _not_json(_request: Request, _error: Exception) -> Response:
    return errors.http_problem(415, "the request body must be JSON (Content-Type: application/json)")
