"""The Lerian Reporter dialect's routes: /v1/management/connections and /v1/data-sources.

Thin: read the request, translate it (translate.py), call the service, answer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from connhub.api.auth import WRITE
from connhub.api.deps import Reader, ServiceDep, Writer
from connhub.api.dialects.reporter import shapes, translate
from connhub.api.dialects.reporter.translate import connection_id
from connhub.api.http import json_object
from connhub.api.openapi import errors, json_body
from connhub.api.params import Parameter, documented
from connhub.api.rendered import RawJson, Rendered, RenderedRows, json_array_with_fields, json_object_with, rows_of
from connhub.api.responses import Json
from connhub.api.shapes import TestReportOut
from connhub.domain.connection import PRODUCT_NAME, Connection, validate_idempotency_key, validate_product_name
from connhub.domain.engines import Engine
from connhub.domain.listing import MAX_LIMIT, MAX_PAGE, Page, parse_list_query
from connhub.service import DECODED

router = APIRouter(tags=["Connections (Reporter)"])
ListedRows = Annotated[RenderedRows, Depends(rows_of(translate.render))]
BASE = "/v1/management/connections"

PRODUCT = Parameter(
    "X-Product-Name",
    "header",
    {"type": "string", "pattern": PRODUCT_NAME.pattern},
    "1-100 of [a-zA-Z0-9_-], trimmed and lower-cased",
    example="my-product",
)
# Create and assign refuse a request without it (validate_product_name); the list takes it as a filter.
REQUIRED_PRODUCT = replace(PRODUCT, required=True)
IDEMPOTENCY = Parameter("X-Idempotency", "header", {"type": "string", "maxLength": 200}, "a repeat answers the first")
IF_MATCH = Parameter("If-Match", "header", description="the ETag read: a stale one is a 412")
VALIDATE = Parameter(
    "validate", "query", {"type": "boolean", "default": False}, "test the connection first; store nothing if it fails"
)
REFRESH = Parameter(
    "refresh",
    "query",
    {"type": "boolean", "default": False},
    "read again, past the cache: a live connection, so it needs connections:write and counts against the "
    "connection's tests a minute (429 past them)",
)
PAGE = Parameter("page", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1})
LIMIT = Parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50})
SORT_ORDER = Parameter("sortOrder", "query", {"type": "string", "pattern": "^(?i:asc|desc)$", "default": "desc"})
LIST_FILTERS = (
    PAGE,
    LIMIT,
    Parameter("cursor", "query", description="nextCursor of the previous page (keyset paging)"),
    Parameter("sortBy", "query", {"type": "string", "enum": ["createdAt", "configName"], "default": "createdAt"}),
    SORT_ORDER,
    Parameter("type", "query", {"type": "string", "pattern": f"^(?i:{'|'.join(Engine)})$"}),
    Parameter("host", "query"),
    Parameter("databaseName", "query"),
    Parameter("configName", "query", description="substring, case-insensitive"),
    Parameter("startDate", "query", description="YYYY-MM-DD, inclusive"),
    Parameter("endDate", "query", description="YYYY-MM-DD, inclusive"),
    Parameter(
        "health", "query", {"type": "string", "enum": ["up", "down", "unknown"]}, "scheduled health state"
    ),
    PRODUCT,
)


def one(connection: Connection, status: int = 200) -> Json:
    return Json(translate.render(connection), status_code=status, headers={"ETag": connection.etag})


# -- connections ------------------------------------------------------------------------------


@router.post(
    BASE,
    status_code=201,
    summary="Create a connection",
    openapi_extra=documented(VALIDATE, REQUIRED_PRODUCT, IDEMPOTENCY, **json_body(shapes.ConnectionInput)),
    responses={201: {"model": shapes.ConnectionOut}, **errors(400, 401, 403, 409, 413, 415, 422, 503)},
)
async def create(request: Request, principal: Writer, service: ServiceDep) -> Json:
    validate = VALIDATE.flag(request)
    product_name = validate_product_name(REQUIRED_PRODUCT.text(request))
    idempotency_key = validate_idempotency_key(IDEMPOTENCY.text(request))
    body = translate.canonical_fields(await json_object(request))
    created = await service.create(
        principal.tenant, body, product_name, idempotency_key=idempotency_key, validate=validate
    )
    return one(created, 201)


@router.get(
    BASE,
    summary="List connections",
    openapi_extra=documented(*LIST_FILTERS),
    responses={200: {"model": shapes.ConnectionList}, **errors(400, 401, 403, 503)},
)
async def list_connections(request: Request, principal: Reader, service: ServiceDep, rows: ListedRows) -> RawJson:
    params = dict(request.query_params)
    metadata = translate.metadata_filters(params)
    product = PRODUCT.text(request)
    product_name = validate_product_name(product) if product is not None else None
    query = parse_list_query(params, metadata, product_name)
    return _page(await service.list_connections(principal.tenant, query, rows))


@router.get(
    f"{BASE}/unassigned",
    summary="Connections with no product",
    openapi_extra=documented(PAGE, LIMIT, SORT_ORDER),
    responses={200: {"model": shapes.ConnectionList}, **errors(400, 401, 403, 503)},
)
async def unassigned(request: Request, principal: Reader, service: ServiceDep, rows: ListedRows) -> RawJson:
    query = replace(parse_list_query(translate.paging(request.query_params), {}, None), unassigned=True)
    return _page(await service.list_connections(principal.tenant, query, rows))


def _page(found: Page[Rendered]) -> RawJson:
    items = json_array_with_fields((rendered, b"") for rendered in found.items)
    return RawJson(json_object_with("items", items, translate.page_fields(found)))


@router.post(
    f"{BASE}/test",
    summary="Test an unsaved connection (nothing is stored)",
    openapi_extra=json_body(shapes.ConnectionInput),
    responses={200: {"model": TestReportOut}, **errors(400, 401, 403, 413, 415)},
)
async def test_unsaved(request: Request, principal: Writer, service: ServiceDep) -> Json:
    report = await service.test_unsaved(translate.canonical_fields(await json_object(request)))
    return Json(report.to_json())


@router.post(
    f"{BASE}/validate-schema",
    summary="Check that mapped tables and fields exist",
    openapi_extra=json_body(shapes.ValidateSchemaInput),
    responses={
        200: {"model": shapes.ValidSchema},
        **errors(400, 401, 403, 413, 415, 503),
        422: {
            "model": shapes.SchemaInvalid,
            "description": "Mapped items that do not exist",
            "content": {"application/json": {"example": shapes.SCHEMA_INVALID}},
        },
    },
)
async def validate_schema(request: Request, principal: Reader, service: ServiceDep) -> Json:
    mapped = translate.mapped_fields(await json_object(request))
    await service.validate_schema(principal.tenant, mapped)
    return Json(translate.SCHEMA_VALID)


@router.get(
    BASE + "/{id}",
    summary="Get a connection",
    responses={200: {"model": shapes.ConnectionOut}, **errors(400, 401, 403, 404, 503)},
)
async def get(id: str, principal: Reader, service: ServiceDep) -> Json:
    return one(await service.get(principal.tenant, connection_id(id)))


@router.patch(
    BASE + "/{id}",
    summary="Update a connection (absent keeps, null clears)",
    openapi_extra=documented(IF_MATCH, **json_body(shapes.ConnectionUpdate)),
    responses={
        200: {"model": shapes.ConnectionOut},
        **errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 503),
    },
)
async def patch(request: Request, id: str, principal: Writer, service: ServiceDep) -> Json:
    current = await service.get(principal.tenant, connection_id(id))
    body = translate.canonical_patch(await json_object(request))
    return one(await service.update(principal.tenant, current, body, IF_MATCH.text(request)))


@router.delete(
    BASE + "/{id}",
    status_code=204,
    summary="Delete a connection (soft: its secrets are wiped, its name is free again)",
    openapi_extra=documented(IF_MATCH),
    responses={204: {"description": "Deleted"}, **errors(400, 401, 403, 404, 412, 503)},
)
async def delete(request: Request, id: str, principal: Writer, service: ServiceDep) -> Response:
    current = await service.get(principal.tenant, connection_id(id))
    await service.delete(principal.tenant, current, IF_MATCH.text(request))
    return Response(status_code=204)


@router.post(
    BASE + "/{id}/test",
    summary="Test a stored connection",
    responses={200: {"model": TestReportOut}, **errors(400, 401, 403, 404, 429, 503)},
)
async def test_saved(id: str, principal: Writer, service: ServiceDep) -> Json:
    report = await service.test_saved(
        principal.tenant, await service.get(principal.tenant, connection_id(id))
    )
    return Json(report.to_json())


@router.get(
    BASE + "/{id}/schema",
    summary="Discover a connection's tables and columns",
    openapi_extra=documented(REFRESH),
    responses={200: {"model": shapes.SchemaOut}, **errors(400, 401, 403, 404, 422, 429, 503)},
)
async def schema(request: Request, id: str, principal: Reader, service: ServiceDep) -> Json:
    refresh = REFRESH.flag(request)
    if refresh:  # a live read on demand is a test in all but name
        principal.require(WRITE)
    connection = await service.get(principal.tenant, connection_id(id))
    tables = await service.discover_tables(principal.tenant, connection, refresh)
    return Json(translate.render_tables(connection, tables))


@router.post(
    BASE + "/{id}/assign",
    summary="Assign an unassigned connection to the product in X-Product-Name",
    openapi_extra=documented(REQUIRED_PRODUCT),
    responses={200: {"model": shapes.ConnectionOut}, **errors(400, 401, 403, 404, 409, 503)},
)
async def assign(request: Request, id: str, principal: Writer, service: ServiceDep) -> Json:
    product_name = validate_product_name(REQUIRED_PRODUCT.text(request))
    current = await service.get(principal.tenant, connection_id(id))
    return one(await service.assign(principal.tenant, current, product_name))


# -- data sources -----------------------------------------------------------------------------


@router.get(
    "/v1/data-sources",
    tags=["Data sources (Reporter)"],
    summary="List data sources",
    responses={200: {"model": list[shapes.DataSource]}, **errors(401, 403, 503)},
)
async def data_sources(principal: Reader, service: ServiceDep) -> Json:
    every = await service.list_every(principal.tenant, "configName", "asc", DECODED)
    return Json([translate.data_source(connection) for connection in every])


@router.get(
    "/v1/data-sources/{id}",
    tags=["Data sources (Reporter)"],
    summary="A data source with its tables (id: configName or UUID)",
    responses={200: {"model": shapes.DataSourceDetail}, **errors(400, 401, 403, 404, 422, 503)},
)
async def data_source(id: str, principal: Reader, service: ServiceDep) -> Json:
    connection = await service.get_by_name_or_id(principal.tenant, id)
    tables = await service.discover_tables(principal.tenant, connection)
    return Json(translate.data_source_detail(connection, tables))
