"""OpenAPI wiring: request bodies read as raw JSON (the domain validates them) still get documented."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from connhub.api.shapes import Problem

_BODIES: dict[str, type[BaseModel]] = {}
REF = "#/components/schemas/{model}"


def json_body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON request body of `model`."""
    _BODIES[model.__name__] = model
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses` documenting error statuses in the JSON error shape, each with an example body."""
    return {
        status: {
            "model": Problem,
            "description": str(example_error(status)["title"]),
            "content": {"application/json": {"example": example_error(status)}},
        }
        for status in statuses
    }


EXAMPLE_REQUEST_ID = "4f6c0a1e9b2d4e7f8a3c5b6d7e8f9a0b"


@cache
def example_error(status: int) -> dict[str, Any]:
    """The body Connhub answers with for `status`, rendered by the one error mapping (api/errors.py)."""
    from connhub.api import errors as mapping
    from connhub.domain import errors as domain
    from connhub.domain.reports import ErrorCategory, failure_report

    report = failure_report(ErrorCategory.AUTH_FAILED, 'password authentication failed for user "dbuser"', 41.7)
    raised: dict[int, domain.ConnhubError] = {
        400: domain.ValidationFailed({"port": "must be an integer from 1 to 65535"}),
        401: domain.Unauthorized("a bearer token is required (Authorization: Bearer <token>)"),
        403: domain.Forbidden("the token lacks the connections:write scope"),
        404: domain.NotFound("connection not found"),
        409: domain.NameTaken("a connection named 'production-db' already exists"),
        412: domain.PreconditionFailed("the connection changed since it was read (ETag mismatch)"),
        422: domain.TestFailed("the connection test failed; nothing was stored", report),
        429: domain.RateLimited("at most 10 tests a minute per connection", 42),
        503: domain.StoreUnavailable(domain.STORE_NOT_ANSWERING),
    }
    framework = {
        405: "Method Not Allowed",
        413: "the request body must be at most 1048576 bytes",
        415: "the request body must be JSON (Content-Type: application/json)",
    }
    error = raised.get(status)
    answer = mapping.render(error) if error else mapping.http_problem(status, framework.get(status, "request failed"))
    body: dict[str, Any] = orjson.loads(answer.body)
    return {**body, "requestId": EXAMPLE_REQUEST_ID}


BEARER = "bearerAuth"
PUBLIC_TAG = "Operations"  # /health, /readyz, /metrics, /version: no token needed (api/ops.py)


def install_openapi(app: FastAPI, bearer: bool = False) -> None:
    """`bearer`: auth is on (CONNHUB_AUTH=jwt), so every operation but the public ones needs a token."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        _drop_framework_422(document, components)
        if bearer:
            _require_bearer(document)
        for name, model in _BODIES.items():
            schema = model.model_json_schema(ref_template=REF, by_alias=True)
            components.update(schema.pop("$defs", {}))
            components[name] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _require_bearer(document: dict[str, Any]) -> None:
    """A bearer JWT on every operation that checks one, so /docs offers a place to paste it. Only
    declared when auth is on: with it off no operation needs a token, and saying so would be false."""
    document["components"]["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT whose tenant claim (CONNHUB_JWT_TENANT_CLAIM) names the organization, "
            "with the connections:read and/or connections:write scope",
        }
    }
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if PUBLIC_TAG not in operation.get("tags", ()):
                operation["security"] = [{BEARER: []}]


def _drop_framework_422(document: dict[str, Any], components: dict[str, Any]) -> None:
    """FastAPI documents a 422 `HTTPValidationError` for every route with parameters; Connhub answers
    those errors with 400 in the JSON error shape (errors.py), so that 422 never happens."""
    framework = REF.format(model="HTTPValidationError")
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            schema = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == framework:
                del responses["422"]
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
