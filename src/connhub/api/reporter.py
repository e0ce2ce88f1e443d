"""The Lerian Reporter dialect: /v1/management/connections and /v1/data-sources.

Routes only translate: the body is already in canonical field names, so it goes to the service as
it is; the answer is rendered in Reporter's shape (never a secret).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from connhub.api import schemas
from connhub.api.auth import Principal
from connhub.api.http import hub, json_object, reader, writer
from connhub.api.openapi import errors, json_body
from connhub.api.responses import Json, rfc3339
from connhub.domain.connection import Connection, validate_product_name
from connhub.domain.errors import ValidationFailed
from connhub.domain.listing import ListQuery, Page, parse_list_query
from connhub.domain.reports import Table

router = APIRouter(tags=["Connections (Reporter)"])
BASE = "/v1/management/connections"

# The deepest page an offset can reach without overflowing the store's 64-bit OFFSET (page * limit).
MAX_PAGE = 10**9
Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
ProductHeader = Annotated[str | None, Header(alias="X-Product-Name")]
IfMatch = Annotated[str | None, Header(alias="If-Match")]


# -- rendering --------------------------------------------------------------------------------


def render(connection: Connection) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(connection.id),
        "configName": connection.config_name,
        "productName": connection.product_name or "",
        "type": connection.engine.value,
        "host": connection.host,
        "port": connection.port,
        "databaseName": connection.database_name,
        "userName": connection.user_name,
    }
    if connection.schema is not None:
        body["schema"] = connection.schema
    if connection.ssl is not None:
        ssl = connection.ssl
        body["ssl"] = {
            "mode": ssl.mode.value,
            "hasCa": ssl.has_ca,
            "hasCert": ssl.has_cert,
            "hasKey": ssl.has_key,
        }
    if connection.metadata is not None:
        body["metadata"] = connection.metadata
    body["createdAt"] = rfc3339(connection.created_at)
    body["updatedAt"] = rfc3339(connection.updated_at)
    return body


def one(connection: Connection, status: int = 200) -> Json:
    return Json(render(connection), status_code=status, headers={"ETag": connection.etag})


def render_page(found: Page[Connection]) -> Json:
    return Json(
        {
            "items": [render(item) for item in found.items],
            "page": found.page,
            "limit": found.limit,
            "total": found.total,
            "nextCursor": found.next_cursor,
        }
    )


def connection_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationFailed({"id": "must be a UUID"}) from None


def render_schema(connection: Connection, tables: list[Table]) -> dict[str, Any]:
    return {
        "id": str(connection.id),
        "configName": connection.config_name,
        "databaseName": connection.database_name,
        "type": connection.engine.value,
        "tables": [table.to_json() for table in tables],
    }


# -- connections ------------------------------------------------------------------------------


@router.post(
    BASE,
    status_code=201,
    summary="Create a connection",
    openapi_extra=json_body(schemas.ConnectionInput),
    responses={201: {"model": schemas.ConnectionOut}, **errors(400, 401, 403, 409, 413, 415, 422, 503)},
)
async def create(
    request: Request,
    principal: Writer,
    product: ProductHeader = None,
    idempotency_key: Annotated[str | None, Header(alias="X-Idempotency", max_length=200)] = None,
    validate: Annotated[
        bool, Query(description="test the connection first; store nothing if it fails")
    ] = False,
) -> Json:
    body = await json_object(request)
    product_name = validate_product_name(product)
    created = await hub(request).service.create(
        principal.tenant, body, product_name, idempotency_key=idempotency_key, validate=validate
    )
    return one(created, 201)


@router.get(
    BASE,
    summary="List connections",
    responses={200: {"model": schemas.ConnectionList}, **errors(400, 401, 403, 503)},
)
async def list_connections(
    request: Request,
    principal: Reader,
    product: ProductHeader = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
    sortBy: Annotated[str, Query(pattern="^(createdAt|configName)$")] = "createdAt",
    sortOrder: Annotated[str, Query(pattern="^(?i:asc|desc)$")] = "desc",
    type: Annotated[str | None, Query(pattern="^(?i:ORACLE|SQL_SERVER|POSTGRESQL|MONGODB|MYSQL)$")] = None,
    host: str | None = None,
    databaseName: str | None = None,
    configName: str | None = None,
    startDate: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
    endDate: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
) -> Json:
    params = dict(request.query_params)
    metadata = {
        key.removeprefix("metadata."): value for key, value in params.items() if key.startswith("metadata.")
    }
    product_name = validate_product_name(product) if product is not None else None
    query = parse_list_query(params, metadata, product_name)
    return render_page(await hub(request).service.list_connections(principal.tenant, query))


@router.get(
    f"{BASE}/unassigned",
    summary="Connections with no product",
    responses={200: {"model": schemas.ConnectionList}, **errors(400, 401, 403, 503)},
)
async def unassigned(
    request: Request,
    principal: Reader,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Json:
    query = ListQuery(page=page, limit=limit, unassigned=True)
    return render_page(await hub(request).service.list_connections(principal.tenant, query))


@router.post(
    f"{BASE}/test",
    summary="Test an unsaved connection (nothing is stored)",
    openapi_extra=json_body(schemas.ConnectionInput),
    responses={200: {"model": schemas.TestReportOut}, **errors(400, 401, 403, 413, 415)},
)
async def test_unsaved(request: Request, principal: Writer) -> Json:
    report = await hub(request).service.test_unsaved(await json_object(request))
    return Json(report.to_json())


@router.post(
    f"{BASE}/validate-schema",
    summary="Check that mapped tables and fields exist",
    openapi_extra=json_body(schemas.ValidateSchemaInput),
    responses={200: {"model": schemas.ValidSchema}, **errors(400, 401, 403, 413, 415, 422, 503)},
)
async def validate_schema(request: Request, principal: Reader) -> Json:
    mapped = _mapped_fields(await json_object(request))
    await hub(request).service.validate_schema(principal.tenant, mapped)
    return Json({"status": "valid"})


def _mapped_fields(body: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    mapped = body.get("mappedFields")
    extra = sorted(set(body) - {"mappedFields"})
    problems = {name: "unknown field" for name in extra}
    valid = isinstance(mapped, dict) and all(
        isinstance(tables, dict)
        and all(
            isinstance(fields, list) and all(isinstance(f, str) for f in fields) for fields in tables.values()
        )
        for tables in mapped.values()
    )
    if not valid:
        problems["mappedFields"] = "required: {dataSource: {table: [field, ...]}}"
    if problems:
        raise ValidationFailed(problems)
    assert isinstance(mapped, dict)
    return mapped


@router.get(
    BASE + "/{id}",
    summary="Get a connection",
    responses={200: {"model": schemas.ConnectionOut}, **errors(400, 401, 403, 404, 503)},
)
async def get(request: Request, id: str, principal: Reader) -> Json:
    return one(await hub(request).service.get(principal.tenant, connection_id(id)))


@router.patch(
    BASE + "/{id}",
    summary="Update a connection (absent keeps, null clears)",
    openapi_extra=json_body(schemas.ConnectionUpdate),
    responses={
        200: {"model": schemas.ConnectionOut},
        **errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 503),
    },
)
async def patch(request: Request, id: str, principal: Writer, if_match: IfMatch = None) -> Json:
    service = hub(request).service
    current = await service.get(principal.tenant, connection_id(id))
    body = await json_object(request)
    return one(await service.update(principal.tenant, current, body, if_match))


@router.delete(
    BASE + "/{id}",
    status_code=204,
    summary="Delete a connection (soft: its secrets are wiped, its name is free again)",
    responses={204: {"description": "Deleted"}, **errors(400, 401, 403, 404, 412, 503)},
)
async def delete(request: Request, id: str, principal: Writer, if_match: IfMatch = None) -> Response:
    service = hub(request).service
    await service.delete(principal.tenant, await service.get(principal.tenant, connection_id(id)), if_match)
    return Response(status_code=204)


@router.post(
    BASE + "/{id}/test",
    summary="Test a stored connection",
    responses={200: {"model": schemas.TestReportOut}, **errors(400, 401, 403, 404, 429, 503)},
)
async def test_saved(request: Request, id: str, principal: Writer) -> Json:
    service = hub(request).service
    report = await service.test_saved(
        principal.tenant, await service.get(principal.tenant, connection_id(id))
    )
    return Json(report.to_json())


@router.get(
    BASE + "/{id}/schema",
    summary="Discover a connection's tables and columns",
    responses={200: {"model": schemas.SchemaOut}, **errors(400, 401, 403, 404, 422, 503)},
)
async def schema(request: Request, id: str, principal: Reader, refresh: bool = False) -> Json:
    service = hub(request).service
    connection = await service.get(principal.tenant, connection_id(id))
    tables = await service.schema(principal.tenant, connection, refresh)
    return Json(render_schema(connection, tables))


@router.post(
    BASE + "/{id}/assign",
    summary="Assign an unassigned connection to the product in X-Product-Name",
    responses={200: {"model": schemas.ConnectionOut}, **errors(400, 401, 403, 404, 409, 503)},
)
async def assign(request: Request, id: str, principal: Writer, product: ProductHeader = None) -> Json:
    service = hub(request).service
    product_name = validate_product_name(product)
    current = await service.get(principal.tenant, connection_id(id))
    return one(await service.assign(principal.tenant, current, product_name))


# -- data sources -----------------------------------------------------------------------------


def _data_source(connection: Connection) -> dict[str, Any]:
    return {
        "id": connection.config_name,
        "externalName": connection.database_name,
        "type": connection.engine.lower(),
    }


@router.get(
    "/v1/data-sources",
    tags=["Data sources (Reporter)"],
    summary="List data sources",
    responses={200: {"model": list[schemas.DataSource]}, **errors(401, 403, 503)},
)
async def data_sources(request: Request, principal: Reader) -> Json:
    service = hub(request).service
    items: list[dict[str, Any]] = []
    query = parse_list_query({"limit": "1000", "sortBy": "configName", "sortOrder": "asc"}, {}, None)
    while True:
        page = await service.list_connections(principal.tenant, query)
        items.extend(_data_source(item) for item in page.items)
        if page.next_cursor is None:
            return Json(items)
        query = parse_list_query(
            {"limit": "1000", "sortBy": "configName", "sortOrder": "asc", "cursor": page.next_cursor},
            {},
            None,
        )


@router.get(
    "/v1/data-sources/{id}",
    tags=["Data sources (Reporter)"],
    summary="A data source with its tables (id: configName or UUID)",
    responses={200: {"model": schemas.DataSourceDetail}, **errors(401, 403, 404, 422, 503)},
)
async def data_source(request: Request, id: str, principal: Reader) -> Json:
    service = hub(request).service
    connection = await service.get_by_name_or_id(principal.tenant, id)
    tables = await service.schema(principal.tenant, connection)
    return Json({**_data_source(connection), "tables": [table.to_json() for table in tables]})
