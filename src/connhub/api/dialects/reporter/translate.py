"""The Reporter dialect's translations: pure functions of dicts and domain values.

A Reporter body uses canonical field names (the domain's vocabulary), but only those SPEC section 3
defines (`FIELDS`): the domain also keeps Chartbrew's `options` and `subType`, which a Reporter body
may not set (it would store what Reporter never shows). This module checks that, translates the
rest of a request (ids, filters, mapped fields) and renders every answer in Reporter's shape (never
a secret). No HTTP, no service, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from connhub.api.dialects.formats import rfc3339, tables_json
from connhub.domain.connection import Connection, validate_spec
from connhub.domain.errors import ValidationFailed
from connhub.domain.listing import Page
from connhub.domain.reports import Table

METADATA_PREFIX = "metadata."
PAGING = ("page", "limit", "sortOrder")  # what Lerian's /unassigned takes
# Lerian's SchemaValidationResponse when every mapped item exists (fetcher NewSuccessResponse).
SCHEMA_VALID = {
    "status": "success",
    "message": "Schema validated successfully. All datasources, tables, and fields exist.",
}
# The fields of a Reporter connection body (create, update, test), in canonical names. The OpenAPI
# shapes document exactly these (tests/api/test_openapi_fields.py holds the two together).
FIELDS = (
    "configName",
    "type",
    "host",
    "port",
    "databaseName",
    "userName",
    "password",
    "schema",
    "ssl",
    "metadata",
    "connectionString",
    "ssh",
)
UNKNOWN = "unknown field"


# -- request -> domain values -------------------------------------------------------------------


def canonical_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """A whole connection body (create, test) as canonical fields; refuses fields Reporter lacks.

    One 400 names every bad field: the unknown ones and what the domain says of the rest.
    """
    body = connection_body(dict(body))
    unknown = _unknown(body)
    if unknown:
        known = {name: value for name, value in body.items() if name in FIELDS}
        raise ValidationFailed({**_domain_problems(known), **unknown})
    return dict(body)


def canonical_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH body as a canonical patch (absent keeps, null clears); refuses fields Reporter lacks."""
    if unknown := _unknown(body):
        raise ValidationFailed(unknown)
    return connection_body(dict(body))


def _unknown(body: Mapping[str, Any]) -> dict[str, str]:
    return {name: UNKNOWN for name in sorted(set(body) - set(FIELDS))}


def _domain_problems(fields: Mapping[str, Any]) -> dict[str, str]:
    try:
        validate_spec(fields)
    except ValidationFailed as error:
        return error.fields
    return {}


def connection_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationFailed({"id": "must be a UUID"}) from None


def connection_body(body: dict[str, Any]) -> dict[str, Any]:
    """A connection body as Lerian's Go clients marshal it, in the domain's terms.

    Go's SSLInput has no `omitempty`: a client that sets only the mode sends `"ca": ""` with
    `"cert": null, "key": null`. An empty PEM means none, as null already does. (An ssl object
    without a mode stays a 400 naming `ssl.mode`, where Lerian would drop it: the SPEC wants the
    mode, and Go's model never sends one empty unless the caller made it so.)
    """
    ssl = body.get("ssl")
    if not isinstance(ssl, dict):
        return body
    return {**body, "ssl": {name: value for name, value in ssl.items() if name == "mode" or value != ""}}


def metadata_filters(params: Mapping[str, str]) -> dict[str, str]:
    """`metadata.<key>=<value>` query parameters as {key: value}."""
    return {
        key.removeprefix(METADATA_PREFIX): value for key, value in params.items() if key.startswith(METADATA_PREFIX)
    }


def paging(params: Mapping[str, str]) -> dict[str, str]:
    """Only the page, limit and order of a query (the unassigned list takes no filters)."""
    return {name: value for name in PAGING if (value := params.get(name)) is not None}


def mapped_fields(body: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """The `mappedFields` of a validate-schema body: {dataSource: {table: [field, ...]}}."""
    mapped = body.get("mappedFields")
    problems = {name: "unknown field" for name in sorted(set(body) - {"mappedFields"})}
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


# -- domain -> answers --------------------------------------------------------------------------


def render(connection: Connection) -> dict[str, Any]:
    # Not domain.connection.stored_fields on purpose: an answer is its own shape (id, productName,
    # ssl and ssh as has* summaries, timestamps; no options or subType) in a fixed key order.
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
    if connection.schema_name is not None:
        body["schema"] = connection.schema_name
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
    if connection.ssh is not None:
        body["ssh"] = connection.ssh.to_json()  # host, port, user, trusted key and has* flags: no secret
    body["createdAt"] = rfc3339(connection.created_at)
    body["updatedAt"] = rfc3339(connection.updated_at)
    return body


def page_fields(found: Page[Any]) -> dict[str, Any]:
    """A list answer's fields beside `items` (the items are rendered one by one: `render`)."""
    return {"page": found.page, "limit": found.limit, "total": found.total, "nextCursor": found.next_cursor}


def render_tables(connection: Connection, tables: list[Table]) -> dict[str, Any]:
    return {
        "id": str(connection.id),
        "configName": connection.config_name,
        "databaseName": connection.database_name,
        "type": connection.engine.value,
        "tables": tables_json(tables),
    }


def data_source(connection: Connection) -> dict[str, Any]:
    return {
        "id": connection.config_name,
        "externalName": connection.database_name,
        "type": connection.engine.data_source_type,
    }


def data_source_detail(connection: Connection, tables: list[Table]) -> dict[str, Any]:
    return {**data_source(connection), "tables": tables_json(tables)}
