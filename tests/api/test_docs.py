"""/docs and /redoc work offline (every asset from Connhub itself); the OpenAPI says where a token goes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from connhub.api import shapes as shared
from connhub.api.dialects.chartbrew import shapes as chartbrew
from connhub.api.dialects.reporter import shapes as reporter
from connhub.config import Settings
from tests.conftest import client_for

PUBLIC = {"/health", "/readyz", "/metrics", "/version"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_reference_only_local_assets_that_answer(
    sqlite_client: httpx.AsyncClient, page: str
) -> None:
    html = (await sqlite_client.get(page)).text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(asset.startswith("/docs/assets/") for asset in assets), assets
    for asset in assets:
        answer = await sqlite_client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 1000, asset
    assert "/openapi.json" in html


async def test_a_bearer_token_is_asked_for_where_one_is_checked(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(sqlite_url, auth="jwt", jwt_secret="s" * 40)
    async with client_for(settings) as http:
        document = (await http.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer" and scheme["bearerFormat"] == "JWT"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            wanted = None if path in PUBLIC else [{"bearerAuth": []}]
            assert operation.get("security") == wanted, (method, path)


async def test_without_auth_no_operation_claims_to_need_a_token(sqlite_client: httpx.AsyncClient) -> None:
    document = (await sqlite_client.get("/openapi.json")).json()
    assert "securitySchemes" not in document.get("components", {})
    assert not any("security" in op for operations in document["paths"].values() for op in operations.values())


async def test_every_error_answer_of_every_operation_has_an_example_body(sqlite_client: httpx.AsyncClient) -> None:
    document = (await sqlite_client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {status: answer for status, answer in operation["responses"].items() if status >= "400"}
            if path not in PUBLIC:
                assert "400" in errors or "401" in errors, (method, path)  # a request can always be refused
            for status, answer in errors.items():
                example = answer.get("content", {}).get("application/json", {}).get("example")
                if path == "/readyz":  # its 503 is the readiness body, not an error
                    continue
                assert example and {"code", "title", "message", "requestId"} <= set(example), (method, path, status)


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return dict(document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    return schema


def _has_example(document: dict[str, Any], media: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = _resolved(document, media.get("schema", {}))
    if schema.get("type") == "array":
        schema = _resolved(document, schema.get("items", {}))
    return bool(schema.get("examples"))


async def test_every_request_and_answer_body_has_an_example(sqlite_client: httpx.AsyncClient) -> None:
    document = (await sqlite_client.get("/openapi.json")).json()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            bodies = {"request": operation.get("requestBody", {}).get("content", {})}
            bodies.update({status: answer.get("content", {}) for status, answer in operation["responses"].items()})
            for which, content in bodies.items():
                media = content.get("application/json")
                if media is not None and not _has_example(document, media):
                    missing.append(f"{method.upper()} {path} {which}")
    assert not missing, missing


@pytest.mark.parametrize("model", [m for module in (shared, reporter, chartbrew) for m in vars(module).values()
                                   if isinstance(m, type) and issubclass(m, BaseModel)
                                   and m.__module__ == module.__name__])  # fmt: skip
def test_every_example_is_valid_for_its_model(model: type[BaseModel]) -> None:
    for example in (model.model_config.get("json_schema_extra") or {}).get("examples", []):  # type: ignore[union-attr]
        model.model_validate(example)


@pytest.mark.parametrize(("method", "path"), [("post", "/v1/management/connections"),
                                              ("post", "/v1/management/connections/{id}/assign")])  # fmt: skip
async def test_x_product_name_is_marked_required_where_it_is(
    sqlite_client: httpx.AsyncClient, method: str, path: str
) -> None:
    operation = (await sqlite_client.get("/openapi.json")).json()["paths"][path][method]
    (product,) = [p for p in operation["parameters"] if p["name"] == "X-Product-Name"]
    assert product["required"] is True and product["in"] == "header"
