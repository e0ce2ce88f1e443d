"""Small HTTP helpers shared by both dialects: JSON bodies, the body limit, request context."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connhub.api.access import TENANT_KEY
from connhub.api.auth import AUDIT_READ, READ, WRITE, Authenticator, Principal
from connhub.api.errors import http_problem
from connhub.audit import acting
from connhub.bootstrap import Core
from connhub.config import Settings
from connhub.coordination import Coordination
from connhub.domain.errors import ValidationFailed
from connhub.health.monitor import HealthMonitor
from connhub.health.scheduler import HealthScheduler
from connhub.secrets import KeyRing
from connhub.service import ConnectionService
from connhub.store.audit import AuditStore
from connhub.store.repository import ConnectionRepository

MAX_BODY_BYTES = 1024 * 1024
# The routes allowed more: Chartbrew's certificate uploads (to a connection, or with a test) carry up
# to three files of 1 MiB each (the route checks each file) plus the multipart framing.
UPLOAD_BODY_BYTES = 3 * MAX_BODY_BYTES + 64 * 1024
LARGER_BODIES = ((re.compile(r"^/team/[^/]+/connections/[^/]+/(test/)?files/?$"), UPLOAD_BODY_BYTES),)
MAX_JSON_DEPTH = 32


@dataclass
class Hub:
    """What the routers need, built once per process by the app's lifespan."""

    settings: Settings
    core: Core
    auth: Authenticator

    @property
    def service(self) -> ConnectionService:
        return self.core.service

    @property
    def repository(self) -> ConnectionRepository:
        return self.core.repository

    @property
    def key_ring(self) -> KeyRing:
        return self.core.key_ring

    @property
    def coordination(self) -> Coordination:
        """The rate limit, probe bound and tables cache: this process's, or every replica's (Redis)."""
        return self.core.coordination

    @property
    def audit(self) -> AuditStore:
        return self.core.audit

    @property
    def health(self) -> HealthMonitor:
        return self.core.health

    @property
    def scheduler(self) -> HealthScheduler | None:
        return self.core.scheduler

    async def close(self) -> None:
        """Stop the scheduler, write what is queued, then close the store's pools."""
        await self.core.close()


def hub(request: Request) -> Hub:
    found: Hub = request.app.state.hub
    return found


def authorize(request: Request, scope: str) -> Principal:
    """The request's principal, if it holds `scope` (else Unauthorized / Forbidden)."""
    principal = hub(request).auth.principal(request)
    request.scope[TENANT_KEY] = principal.tenant  # for the access line
    principal.require(scope)
    acting().subject = principal.subject
    return principal


# Dependencies are async so FastAPI runs them on the event loop, not through a thread hop.
async def reader(request: Request) -> Principal:
    return authorize(request, READ)


async def writer(request: Request) -> Principal:
    return authorize(request, WRITE)


async def auditor(request: Request) -> Principal:
    return authorize(request, AUDIT_READ)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; 415 when not JSON, 400 naming `body` when malformed."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType()
    raw = await request.body()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationFailed({"body": "is not valid JSON (UTF-8)"}) from None
    if not isinstance(value, dict):
        raise ValidationFailed({"body": "must be a JSON object"})
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValidationFailed({"body": f"is nested deeper than {MAX_JSON_DEPTH} levels"})
    return value


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level


class UnsupportedMediaType(Exception):
    pass


class BodyLimit:
    """Refuse bodies over MAX_BODY_BYTES with 413, declared or streamed, before anyone reads them.

    Paths in LARGER_BODIES get their own limit instead.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(limit, scope, receive, send)
            return
        received = 0
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._refuse(limit, scope, receive, send)

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in LARGER_BODIES if pattern.match(path)), self.limit)

    async def _refuse(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        # No `Connection: close`: closing with the rest of the body unread resets the connection, and
        # a client still sending (most send the whole body before reading) never sees this 413. Kept
        # open, the server discards the rest as it arrives, without buffering it.
        response = http_problem(413, f"the request body must be at most {limit} bytes")
        await response(scope, receive, send)


class BodyTooLarge(Exception):
    pass
