"""OpenAPI wiring: request bodies read as raw JSON (the domain validates them) still get documented."""

from __future__ import annotations

from typing import Any

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
    """`responses` documenting error statuses in the JSON error shape."""
    return {status: {"model": Problem, "description": "Error"} for status in statuses}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        _drop_framework_422(document, components)
        for name, model in _BODIES.items():
            schema = model.model_json_schema(ref_template=REF, by_alias=True)
            components.update(schema.pop("$defs", {}))
            components[name] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


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
