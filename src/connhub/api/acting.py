"""The acting context of every request (request id, dialect, source address) for the audit trail.

The request id is the one `access.RequestLog` took from `X-Request-Id` or made (the header's own
value, if sane, when that middleware is not in front); the subject is added by `http.authorize`
once the token is verified.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from connhub import logs
from connhub.audit import Acting, acting_as

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
_DIALECTS = (("/team/", "chartbrew"), ("/v1/", "reporter"))


class ActingContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with acting_as(context_of(scope)):
            await self.app(scope, receive, send)


def context_of(scope: Scope) -> Acting:
    request_id = logs.request_id.get()  # taken or made by RequestLog (api/access.py), outside this
    if request_id is None:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = value.decode("latin-1").strip()
                request_id = text if _REQUEST_ID.match(text) else None
    path: str = scope["path"]
    dialect = next((name for prefix, name in _DIALECTS if path.startswith(prefix)), None)
    client = scope.get("client")
    return Acting(request_id=request_id, dialect=dialect, source=client[0] if client else None)
