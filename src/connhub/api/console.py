"""The web console: a static single-page app under /console, and GET /v1/session that it signs in with.

The console holds no logic of its own on the server: it calls the Reporter dialect's API with the
user's bearer token, like any other client. Its files are package data (connhub/console/static).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connhub.api.deps import Reader
from connhub.api.http import hub
from connhub.api.openapi import errors
from connhub.api.responses import Json

PATH = "/console"
STATIC = Path(str(resources.files("connhub.console") / "static"))

# Scripts and styles only from the console's own files: no inline script, no inline handler, no
# eval; nothing may frame it (clickjacking); it talks to its own origin only.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # Revalidate every time: a new release's files are picked up at once (ETag keeps it cheap).
    (b"cache-control", b"no-cache"),
)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(name, value) for name, value in message.get("headers", []) if name not in names]
                message["headers"] = kept + list(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


class Session(BaseModel):
    tenant: str
    scopes: list[str]
    authEnabled: bool

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"tenant": "acme", "scopes": ["connections:read", "connections:write"], "authEnabled": True}]
        }
    )


router = APIRouter(tags=["Console"])


@router.get(
    "/v1/session",
    summary="Who the token is: its organization and scopes (the console signs in with this; needs connections:read)",
    responses={200: {"model": Session}, **errors(401, 403)},
)
async def session(request: Request, principal: Reader) -> Json:
    # connections:read, like every other route: a token that may read nothing has no use here.
    scopes = sorted(principal.scopes)
    return Json({"tenant": principal.tenant, "scopes": scopes, "authEnabled": hub(request).auth.enabled})


def install(app: FastAPI) -> None:
    """Serve the console at /console/ (and redirect /console there)."""
    app.include_router(router)

    @app.get(PATH, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(PATH + "/", status_code=308)

    app.mount(PATH, SecurityHeaders(StaticFiles(directory=STATIC, html=True)), name="console")
