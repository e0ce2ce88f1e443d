"""The one place that turns errors into HTTP: every error is JSON `{code, title, message, fields?}`."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from connhub.api.responses import Json
from connhub.domain import errors as domain
from connhub.logs import request_id

log = logging.getLogger("connhub.api")

STATUS: dict[type[domain.ConnhubError], int] = {
    domain.ValidationFailed: 400,
    domain.Unauthorized: 401,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.PreconditionFailed: 412,
    domain.TestFailed: 422,
    domain.SchemaMismatch: 422,
    domain.SecretsUnavailable: 422,
    domain.RateLimited: 429,
    domain.StoreUnavailable: 503,
}

# Framework-level statuses, with the code each gets in our catalogue: a status a domain error also
# answers takes that error's code and title (domain/errors.py holds them).
SAME_AS_DOMAIN = (
    domain.ValidationFailed,
    domain.Unauthorized,
    domain.Forbidden,
    domain.NotFound,
    domain.StoreUnavailable,
)
HTTP_CODES = {
    **{STATUS[kind]: (kind.code, kind.title) for kind in SAME_AS_DOMAIN},
    405: ("CONN-1015", "Method not allowed"),
    408: ("CONN-1019", "Request timeout"),
    413: ("CONN-1016", "Request body too large"),
    415: ("CONN-1017", "Unsupported media type"),
    431: ("CONN-1020", "Request headers too large"),
    499: ("CONN-1018", "Client closed request"),  # nginx's code; nobody reads it, metrics count it
    500: ("CONN-1099", "Internal error"),
}


def status_of(error: domain.ConnhubError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def problem(status: int, code: str, title: str, message: str, **extra: Any) -> Json:
    body: dict[str, Any] = {"code": code, "title": title, "message": message}
    body.update({name: value for name, value in extra.items() if value is not None})
    current = request_id.get()
    if current is None:
        return Json(body, status_code=status)
    body["requestId"] = current
    # Also set here, not only by the access middleware: a 500 is sent from outside it.
    return Json(body, status_code=status, headers={"X-Request-Id": current})


def http_problem(status: int, message: str, headers: dict[str, str] | None = None) -> Json:
    code, title = HTTP_CODES.get(status, ("CONN-1000", "Error"))
    response = problem(status, code, title, message)
    if headers:
        response.headers.update(headers)
    return response


def render(error: domain.ConnhubError) -> Json:
    status = status_of(error)
    extra: dict[str, Any] = {}
    if isinstance(error, domain.ValidationFailed):
        extra["fields"] = error.fields
    if isinstance(error, domain.TestFailed):
        extra["report"] = error.report.to_json()
    if isinstance(error, domain.SchemaMismatch):
        extra["errors"] = error.errors
    response = problem(status, error.code, error.title, error.message, **extra)
    if isinstance(error, domain.RateLimited):
        response.headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, domain.StoreUnavailable):
        response.headers["Retry-After"] = "1"
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(domain.ConnhubError, _connhub)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)


async def _connhub(_request: Request, error: domain.ConnhubError) -> Response:
    return render(error)


async def _request_validation(_request: Request, error: RequestValidationError) -> Response:
    """Path, query and header parameters FastAPI checks (bodies are checked by the domain)."""
    fields = {}
    for item in error.errors():
        location = [
            str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path", "header")
        ]
        # Never echo the input: it may be a secret.
        fields[".".join(location) or "body"] = str(item.get("msg", "is invalid"))
    return render(domain.ValidationFailed(fields))


async def _http(request: Request, error: HTTPException) -> Response:
    message = error.detail if isinstance(error.detail, str) else "request failed"
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return http_problem(error.status_code, message, headers)


def allowed_methods(request: Request) -> str:
    """Every method served at this URL, from the OpenAPI paths (Starlette's 405 names only the
    first matching route's, e.g. GET alone for /connections/{id}, which also takes PATCH and DELETE).

    Where a template with fewer parameters matches (`/connections/unassigned` against
    `/connections/{id}`), it alone describes the resource.
    """
    path = request.url.path
    matching = [
        (template.count("{"), methods)
        for template, methods in _path_methods(request.app).items()
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path)
    ]
    if not matching:
        return ""
    fewest = min(count for count, _ in matching)
    methods = {method for count, found in matching if count == fewest for method in found}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _path_methods(app: FastAPI) -> dict[str, set[str]]:
    return {
        template: {method.upper() for method in operations}
        for template, operations in app.openapi().get("paths", {}).items()
    }


async def _client_gone(request: Request, _error: Exception) -> Response:
    """The client hung up before its whole request arrived: not a bug, so neither a 500 nor an error log."""
    log.debug("client closed the connection during %s %s", request.method, request.url.path)
    return http_problem(499, "the client closed the connection before sending the whole request")


async def _unexpected(request: Request, error: Exception) -> Response:
    # A 500 is a bug. Log the type and route only: exception text can quote a driver's DSN.
    log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.url.path)
    return http_problem(500, "internal error; it has been logged")
