"""Lerian's Go clients against Connhub, flow by flow, replayed from their source.

Lerian's services (fetcher v2.0.2, reporter v1.1.0) talk to the connection API through the Go
models of `pkg/model`: a client marshals the request model with encoding/json and decodes the
answer into the response model. Each test sends what that marshalling produces and decodes the
answer with `lerian_decode` (a Go program of our own with the same field types), so an answer Go
would refuse fails here. Sources read: fetcher `pkg/model/connection.go`, `pkg/model/schema.go`,
`pkg/model/pagination.go`, `components/manager/internal/adapters/http/in/{connection,migration}.go`,
`pkg/schemautil/schemautil.go`, `pkg/enginecompat/tablenorm`; reporter
`pkg/model/data-source-information.go`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.clients.conftest import GoDecoder, PgSchemas
from tests.support.listeners import SilentListener
from tests.support.servers import free_port, require_server

BASE = "/v1/management/connections"
PRODUCT = {"X-Product-Name": "reporter"}


def go_connection_input(
    config_name: str,
    *,
    schema: str = "",
    port: int = 5432,
    ssl_mode: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """ConnectionInput as encoding/json marshals it: struct order, `omitempty` fields left out when
    empty, and SSLInput's `ca` (a string) and `cert`/`key` (pointers without omitempty) always sent."""
    body: dict[str, Any] = {
        "configName": config_name,
        "type": "POSTGRESQL",
        "host": "127.0.0.1",
        "port": port,
        "databaseName": "test",
    }
    if schema:
        body["schema"] = schema
    body.update({"userName": "postgres", "password": "unused-with-trust-auth"})
    if ssl_mode is not None:
        body["ssl"] = {"mode": ssl_mode, "ca": "", "cert": None, "key": None}
    if metadata is not None:
        body["metadata"] = metadata
    return json.dumps(body, separators=(",", ":")).encode()


async def create(client: httpx.AsyncClient, config_name: str, **options: Any) -> dict[str, Any]:
    response = await client.post(
        BASE,
        content=go_connection_input(config_name, **options),
        headers={**PRODUCT, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_the_decoder_refuses_what_go_refuses(go_decoder: GoDecoder) -> None:
    """Not a flow: proves `lerian_decode` fails where Lerian's models fail (ConnectionTestResponse.LatencyMs
    is an int64; a missing field would silently read as zero)."""
    fractional = b'{"status":"success","message":"ok","latencyMs":3.7}'
    assert "cannot unmarshal number 3.7" in go_decoder.refuses("ConnectionTestResponse", fractional)
    assert "missing" in go_decoder.refuses("ConnectionTestResponse", b'{"status":"success","message":"ok"}')
    assert "invalid UUID" in go_decoder.refuses("ConnectionResponse", b'{"id":"42"}')


async def test_create(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher connection.go CreateConnection: POST ConnectionInput (with X-Product-Name, an SSLInput
    whose empty `ca` and null `cert`/`key` Go always sends) -> 201 ConnectionResponse."""
    response = await sqlite_client.post(
        BASE,
        content=go_connection_input("ledger", schema="public", ssl_mode="disable", metadata={"team": "data"}),
        headers={**PRODUCT, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    created = go_decoder.decode("ConnectionResponse", response)
    assert (created["configName"], created["productName"], created["port"]) == ("ledger", "reporter", 5432)
    assert created["ssl"] == {"mode": "disable"} and created["schema"] == "public"


async def test_create_requires_the_product_header(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher connection.go CreateConnection: X-Product-Name is required (openapi: required: true);
    without it a 400 that Go decodes as pkg.HTTPError."""
    response = await sqlite_client.post(BASE, content=go_connection_input("ledger"))
    assert response.status_code == 400
    error = go_decoder.decode("HTTPError", response)
    assert "X-Product-Name" in json.dumps(response.json()["fields"]) and error["code"]


async def test_list(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher connection.go ListConnections: GET with page, limit, sortOrder and X-Product-Name ->
    Pagination{items: []ConnectionResponse, page, limit, total}."""
    for name in ("ledger-a", "ledger-b"):
        await create(sqlite_client, name)
    response = await sqlite_client.get(BASE, params={"page": 1, "limit": 10, "sortOrder": "asc"}, headers=PRODUCT)
    page = go_decoder.decode("ConnectionPage", response)
    assert [item["configName"] for item in page["items"]] == ["ledger-a", "ledger-b"]
    assert (page["page"], page["limit"], page["total"]) == (1, 10, 2)


async def test_get(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher connection.go GetConnection: GET /{id} -> ConnectionResponse (id a uuid.UUID, times
    time.Time)."""
    created = await create(sqlite_client, "ledger")
    got = go_decoder.decode("ConnectionResponse", await sqlite_client.get(f"{BASE}/{created['id']}"))
    assert got["id"] == created["id"] and got["createdAt"].startswith(created["createdAt"][:19])


async def test_update(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher connection.go UpdateConnection: PATCH ConnectionUpdateInput (pointers with omitempty:
    only what changes, SSLUpdateInput likewise) -> 200 ConnectionResponse."""
    created = await create(sqlite_client, "ledger")
    patch = {"configName": "ledger-2", "ssl": {"mode": "require"}}
    response = await sqlite_client.patch(f"{BASE}/{created['id']}", json=patch)
    updated = go_decoder.decode("ConnectionResponse", response)
    assert (updated["configName"], updated["ssl"]) == ("ledger-2", {"mode": "require"})


async def test_delete(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher connection.go DeleteConnection: DELETE /{id} -> 204 with no body; then GET is a 404
    pkg.HTTPError."""
    created = await create(sqlite_client, "ledger")
    deleted = await sqlite_client.delete(f"{BASE}/{created['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await sqlite_client.get(f"{BASE}/{created['id']}")
    assert gone.status_code == 404 and go_decoder.decode("HTTPError", gone)["code"]


async def test_test_saved(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder, pg_schemas: PgSchemas) -> None:
    """fetcher connection.go TestConnection: POST /{id}/test -> 200 ConnectionTestResponse
    {status, message, latencyMs int64}."""
    created = await create(sqlite_client, "ledger", schema=pg_schemas.own)
    report = go_decoder.decode("ConnectionTestResponse", await sqlite_client.post(f"{BASE}/{created['id']}/test"))
    assert report["status"] == "success" and report["message"].startswith("Connected to PostgreSQL")
    assert isinstance(report["latencyMs"], int)


async def test_test_saved_failure(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher connection.go TestConnection, failing: Lerian answers 500; Connhub answers 200 with
    status "failure" (the test itself worked), which the same model decodes."""
    created = await create(sqlite_client, "ledger", port=free_port())
    response = await sqlite_client.post(f"{BASE}/{created['id']}/test")
    assert response.status_code == 200
    report = go_decoder.decode("ConnectionTestResponse", response)
    assert report["status"] == "failure" and isinstance(report["latencyMs"], int)


async def test_schema(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder, pg_schemas: PgSchemas) -> None:
    """fetcher connection.go GetConnectionSchema: GET /{id}/schema -> ConnectionSchemaResponse
    {id, configName, databaseName, type, tables: [TableDetails{name, fields}]}, fields in the
    table's column order."""
    created = await create(sqlite_client, "ledger", schema=pg_schemas.own)
    schema = go_decoder.decode("ConnectionSchemaResponse", await sqlite_client.get(f"{BASE}/{created['id']}/schema"))
    tables = {table["name"]: table["fields"] for table in schema["tables"]}
    assert tables == {"customers": ["id", "email"], "orders": ["total", "id", "note"]}


async def test_validate_schema(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder, pg_schemas: PgSchemas) -> None:
    """fetcher connection.go ValidateSchema: POST SchemaValidationRequest{mappedFields} with the
    table keys Lerian's clients write (bare, `public.x`, `other_schema.x`) -> 200
    SchemaValidationResponse{status: "success", message}."""
    await create(sqlite_client, "own", schema=pg_schemas.own)
    await create(sqlite_client, "default")  # no schema: PostgreSQL's public
    mapped = {
        "own": {"orders": ["id", "total"], f"{pg_schemas.other}.invoices": ["number", "amount"]},
        "default": {pg_schemas.public_table: ["id"], f"public.{pg_schemas.public_table}": ["id"]},
    }
    response = await sqlite_client.post(f"{BASE}/validate-schema", json={"mappedFields": mapped})
    assert response.status_code == 200, response.text
    answer = go_decoder.decode("SchemaValidationResponse", response)
    assert answer["status"] == "success" and answer["message"]


async def test_validate_schema_findings(
    sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder, pg_schemas: PgSchemas
) -> None:
    """fetcher connection.go ValidateSchema, failing: 422 SchemaValidationErrorResponse{code, title,
    message, errors: [{type, dataSourceId, table?, field?}]}."""
    await create(sqlite_client, "own", schema=pg_schemas.own)
    mapped = {
        "own": {"orders": ["id", "color"], "ghosts": ["id"], f"{pg_schemas.other}.invoices": ["vat"]},
        "nowhere": {"t": ["f"]},
    }
    response = await sqlite_client.post(f"{BASE}/validate-schema", json={"mappedFields": mapped})
    assert response.status_code == 422
    answer = go_decoder.decode("SchemaValidationErrorResponse", response)
    assert answer["code"] and answer["title"] and answer["message"]
    assert sorted(answer["errors"], key=json.dumps) == sorted(
        [
            {"type": "FIELD_NOT_FOUND", "dataSourceId": "own", "table": "orders", "field": "color"},
            {"type": "TABLE_NOT_FOUND", "dataSourceId": "own", "table": "ghosts"},
            {"type": "FIELD_NOT_FOUND", "dataSourceId": "own", "table": f"{pg_schemas.other}.invoices", "field": "vat"},
            {"type": "DATA_SOURCE_NOT_FOUND", "dataSourceId": "nowhere"},
        ],
        key=json.dumps,
    )


async def test_validate_schema_source_down(
    sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder, pg_schemas: PgSchemas
) -> None:
    """fetcher validate_schema.go validateConfigs: a source whose schema cannot be read is one
    DATA_SOURCE_DOWN finding and the others are still checked. Sources are read concurrently: the
    silent listener holds all three hung probes at once."""
    await create(sqlite_client, "own", schema=pg_schemas.own)
    async with SilentListener() as silent:
        mapped: dict[str, dict[str, list[str]]] = {"own": {"ghosts": ["id"]}}
        for index in range(3):
            await create(sqlite_client, f"hung-{index}", port=silent.port)
            mapped[f"hung-{index}"] = {"t": ["f"]}
        response = await sqlite_client.post(f"{BASE}/validate-schema", json={"mappedFields": mapped})
        assert silent.peak_open == 3
    answer = go_decoder.decode("SchemaValidationErrorResponse", response)
    assert sorted((e["type"], e["dataSourceId"]) for e in answer["errors"]) == [
        ("DATA_SOURCE_DOWN", "hung-0"),
        ("DATA_SOURCE_DOWN", "hung-1"),
        ("DATA_SOURCE_DOWN", "hung-2"),
        ("TABLE_NOT_FOUND", "own"),
    ]


@pytest.mark.parametrize(
    ("mapped", "limit"),
    [
        ({f"s{i}": {"t": ["f"]} for i in range(11)}, "at most 10 data sources"),
        ({"s": {f"t{i}": ["f"] for i in range(21)}}, "at most 20 tables"),
        ({"s": {"t": [f"f{i}" for i in range(51)]}}, "at most 50 fields"),
    ],
)
async def test_validate_schema_limits(
    sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder, mapped: dict[str, Any], limit: str
) -> None:
    """fetcher pkg/model/schema.go SchemaValidationSpec.Validate: MaxDataSourcesPerRequest 10,
    MaxTablesPerDataSource 20, MaxFieldsPerTable 50 -> 400 pkg.HTTPError naming the limit."""
    response = await sqlite_client.post(f"{BASE}/validate-schema", json={"mappedFields": mapped})
    assert response.status_code == 400
    go_decoder.decode("HTTPError", response)
    assert limit in json.dumps(response.json()["fields"])


async def test_unassigned(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher migration.go ListUnassignedConnections: GET /unassigned?page&limit&sortOrder ->
    Pagination of the connections without a product, in the order asked for."""
    for name in ("first", "second"):
        response = await sqlite_client.post("/team/default/connections", json=chartbrew_body(name))
        assert response.status_code == 200, response.text
    await create(sqlite_client, "assigned")
    for order, names in (("asc", ["first", "second"]), ("desc", ["second", "first"])):
        response = await sqlite_client.get(f"{BASE}/unassigned", params={"page": 1, "limit": 10, "sortOrder": order})
        page = go_decoder.decode("ConnectionPage", response)
        assert [item["configName"] for item in page["items"]] == names and page["total"] == 2


async def test_assign(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder) -> None:
    """fetcher migration.go AssignConnectionToProduct: POST /{id}/assign with X-Product-Name
    (required) -> 200 ConnectionResponse; without the header a 400; a second assign a 409."""
    made = (await sqlite_client.post("/team/default/connections", json=chartbrew_body("orphan"))).json()
    orphan = (await sqlite_client.get(f"{BASE}/unassigned")).json()["items"][0]
    assert orphan["configName"] == made["name"]
    missing = await sqlite_client.post(f"{BASE}/{orphan['id']}/assign")
    assert missing.status_code == 400 and go_decoder.decode("HTTPError", missing)
    response = await sqlite_client.post(f"{BASE}/{orphan['id']}/assign", headers=PRODUCT)
    assigned = go_decoder.decode("ConnectionResponse", response)
    assert assigned["productName"] == "reporter"
    again = await sqlite_client.post(f"{BASE}/{orphan['id']}/assign", headers=PRODUCT)
    assert again.status_code == 409 and go_decoder.decode("HTTPError", again)


async def test_data_sources(sqlite_client: httpx.AsyncClient, go_decoder: GoDecoder, pg_schemas: PgSchemas) -> None:
    """reporter data-source.go (model data-source-information.go): GET /v1/data-sources ->
    []DataSourceInformation{id, externalName, type}; GET /v1/data-sources/{id} ->
    DataSourceDetails with tables [TableDetails{name, fields}]."""
    created = await create(sqlite_client, "ledger", schema=pg_schemas.own)
    listed = go_decoder.decode("DataSourceList", await sqlite_client.get("/v1/data-sources"))
    assert listed == [{"id": "ledger", "externalName": "test", "type": "postgresql"}]
    for key in ("ledger", created["id"]):
        details = go_decoder.decode("DataSourceDetails", await sqlite_client.get(f"/v1/data-sources/{key}"))
        assert {t["name"]: t["fields"] for t in details["tables"]}["orders"] == ["total", "id", "note"]


async def test_openapi_marks_what_lerian_requires(sqlite_client: httpx.AsyncClient) -> None:
    """fetcher api/openapi.yaml: X-Product-Name is `required: true` on create and on assign."""
    paths = (await sqlite_client.get("/openapi.json")).json()["paths"]
    for path, method in ((BASE, "post"), (BASE + "/{id}/assign", "post")):
        header = next(p for p in paths[path][method]["parameters"] if p["name"] == "X-Product-Name")
        assert header["required"] is True, (path, header)


def chartbrew_body(name: str) -> dict[str, Any]:
    """A connection made by the other dialect, so that it has no product (an unassigned one)."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    return {"name": name, "type": "postgres", "host": "127.0.0.1", "port": "5432", "dbName": "test",
            "username": "postgres", "password": "unused"}  # fmt: skip
