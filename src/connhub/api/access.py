"""Every request's id, access line and metrics, in one outermost middleware (one pass, one clock).

The id is the caller's `X-Request-Id` when it is short and made of safe characters (it is written
into logs and answers), else one of ours. It is echoed in every answer's headers and in every error
body (`requestId`). The access line names the route template, never the raw path: a path holds ids
and, for a mistyped URL, whatever the caller sent.
"""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connhub.api.metrics import LATENCY, REQUESTS, route_template
from connhub.logs import request_id

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:=+/-]{1,128}")
TENANT_KEY = "connhub.tenant"  # the scope entry authorization fills in, read for the access line
ACCESS = logging.getLogger("connhub.access")


def new_request_id() -> str:
    return os.urandom(16).hex()


def taken_request_id(scope: Scope) -> str:
    """The caller's X-Request-Id when it is safe to repeat, else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            return value.decode() if REQUEST_ID_PATTERN.fullmatch(value) else new_request_id()
    return new_request_id()


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = taken_request_id(scope)
        # Not reset afterwards: each request runs in a task (and context) of its own, and a 500 is
        # rendered after the exception has left this middleware, still needing the id.
        request_id.set(rid)
        header = (REQUEST_ID_HEADER, rid.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name == REQUEST_ID_HEADER for name, _ in headers):
                    headers.append(header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method, route = scope["method"], route_template(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            if ACCESS.isEnabledFor(logging.INFO):
                _access_line(method, route, status, elapsed * 1000, scope.get(TENANT_KEY, "-"), rid)


ACCESS_FORMAT = "%s %s %d %.2f ms tenant=%s requestId=%s"


def _access_line(method: str, route: str, status: int, duration_ms: float, tenant: str, rid: str) -> None:
    """The record made and handed over directly: Logger.info would also walk the stack for the
    caller's file and line (a quarter of the line's cost), which an access line does not need."""
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "durationMs": round(duration_ms, 2),
        "tenant": tenant,
        "requestId": rid,
    }
    args = (method, route, status, duration_ms, tenant, rid)
    ACCESS.handle(ACCESS.makeRecord(ACCESS.name, logging.INFO, __file__, 0, ACCESS_FORMAT, args, None, extra=fields))
