"""Shapes of the Reporter dialect's bodies, for the OpenAPI description.

The rules themselves live in `connhub.domain` (one place); these models document them so clients
and fuzzers know the contract. Responses are rendered by hand (translate.py) for speed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import SkipJsonSchema

from connhub.api.dialects.reporter.translate import SCHEMA_VALID
from connhub.api.openapi import EXAMPLE_REQUEST_ID
from connhub.api.shapes import TABLE, TableOut
from connhub.domain.engines import Engine

# Documented as the Literal it was: an inline enum of the Engine values (bodies are checked by the domain).
EngineName = Annotated[str, WithJsonSchema({"enum": [engine.value for engine in Engine], "type": "string"})]
SslModeName = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

# Examples for /docs (schemathesis sends the request ones too), from real answers of this version
# with made-up values; tests/api/test_docs.py validates each against its model.
CONNECTION_ID = "01a23b3e-0770-71aa-abaf-693aa4a1e10c"
WHEN = "2026-12-03T09:30:50.608Z"
CONNECTION_INPUT: dict[str, Any] = {
    "configName": "production-db",
    "type": "POSTGRESQL",
    "host": "db.example.com",
    "port": 5432,
    "databaseName": "mydatabase",
    "userName": "dbuser",
    "password": "secretpassword",
    "schema": "public",
    "ssl": {"mode": "require"},
    "metadata": {"team": "data-engineering"},
}
CONNECTION_UPDATE: dict[str, Any] = {"port": 6432, "metadata": {"team": "analytics"}, "schema": None}
CONNECTION: dict[str, Any] = {
    "id": CONNECTION_ID,
    "configName": "production-db",
    "productName": "my-product",
    "type": "POSTGRESQL",
    "host": "db.example.com",
    "port": 5432,
    "databaseName": "mydatabase",
    "userName": "dbuser",
    "schema": "public",
    "ssl": {"mode": "require", "hasCa": False, "hasCert": False, "hasKey": False},
    "metadata": {"team": "data-engineering"},
    "createdAt": WHEN,
    "updatedAt": WHEN,
}
CONNECTION_LIST: dict[str, Any] = {"items": [CONNECTION], "page": 1, "limit": 50, "total": 1, "nextCursor": None}
SCHEMA: dict[str, Any] = {
    "id": CONNECTION_ID,
    "configName": "production-db",
    "databaseName": "mydatabase",
    "type": "POSTGRESQL",
    "tables": [TABLE],
}
VALIDATE_SCHEMA_INPUT: dict[str, Any] = {"mappedFields": {"production-db": {"orders": ["id", "total"]}}}
VALID_SCHEMA: dict[str, Any] = dict(SCHEMA_VALID)
SCHEMA_INVALID: dict[str, Any] = {
    "code": "CONN-1011",
    "title": "Schema validation failed",
    "message": "Schema validation found inconsistencies.",
    "requestId": EXAMPLE_REQUEST_ID,
    "errors": [
        {"type": "FIELD_NOT_FOUND", "dataSourceId": "production-db", "table": "orders", "field": "color"},
        {"type": "TABLE_NOT_FOUND", "dataSourceId": "production-db", "table": "accounting.invoices"},
        {"type": "DATA_SOURCE_DOWN", "dataSourceId": "crm"},
    ],
}
DATA_SOURCE: dict[str, Any] = {"id": "production-db", "externalName": "mydatabase", "type": "postgresql"}
DATA_SOURCE_DETAIL: dict[str, Any] = {**DATA_SOURCE, "tables": [TABLE]}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SslInput(Strict):
    mode: SslModeName
    ca: str | None = Field(None, description="PEM CA certificate(s); encrypted at rest, never returned")
    cert: str | None = Field(None, description="PEM client certificate; goes with key")
    key: str | None = Field(None, description="PEM private key; goes with cert")


class JumpHostInput(Strict):
    host: str = Field(max_length=253, description="the jump host the bastion is reached through")
    port: int = Field(22, ge=1, le=65535)
    userName: str | None = Field(None, max_length=128, description="the bastion's when absent")
    password: str | None = Field(None, max_length=1024, description="write-only; the bastion's credentials when none")
    privateKey: str | None = Field(None, description="OpenSSH or PEM; write-only")
    passphrase: str | None = Field(None, max_length=1024, description="opens privateKey; write-only")
    hostKey: str | None = Field(None, description="a known_hosts line, a public key line or a SHA256: fingerprint")


class SshInput(Strict):
    host: str = Field(max_length=253, description="the SSH bastion; the database host is resolved by it")
    port: int = Field(22, ge=1, le=65535)
    userName: str = Field(min_length=1, max_length=128)
    password: str | None = Field(None, max_length=1024, description="write-only; password, privateKey or both")
    privateKey: str | None = Field(None, description="OpenSSH or PEM private key; write-only")
    passphrase: str | None = Field(None, max_length=1024, description="opens an encrypted privateKey; write-only")
    hostKey: str | None = Field(
        None, description="known_hosts line, public key line or SHA256: fingerprint; absent: trusted on first use"
    )
    jumpHost: JumpHostInput | None = None


# What a connection string can stand for (domain.connection.URI_FIELDS, plus `type`: its scheme
# names the engine). A body gives either these or a `connectionString`; the domain fills what the
# string lacks from the explicit fields and names any field still missing.
WITHOUT_URI = ("type", "host", "port", "databaseName", "userName", "password")


class ConnectionInput(Strict):
    """A connection to create or test. Either the explicit fields or a `connectionString`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": list(WITHOUT_URI)}, {"required": ["connectionString"]}],
            "examples": [CONNECTION_INPUT],
        },
    )

    configName: str = Field(min_length=3, max_length=100)
    # Not required (see anyOf), yet `null` is refused: SkipJsonSchema keeps None out of the schema.
    type: EngineName | SkipJsonSchema[None] = None
    host: str | SkipJsonSchema[None] = Field(None, max_length=253)
    port: int | SkipJsonSchema[None] = Field(None, ge=1, le=65535)
    databaseName: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=128)
    userName: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=128)
    password: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=1024, description="write-only")
    schema_: str | None = Field(None, alias="schema", min_length=1, max_length=128)
    ssl: SslInput | None = None
    metadata: dict[str, str] | None = Field(None, max_length=50)
    connectionString: str | None = Field(
        None, description="URI instead of host/port/databaseName/userName/password (and type: its scheme)"
    )
    ssh: SshInput | None = Field(None, description="reach the database through an SSH bastion")


def _all_optional(model: type[BaseModel], name: str, doc: str) -> type[BaseModel]:
    """`model` with every field optional and nullable (same constraints, aliases, descriptions)."""
    fields: dict[str, Any] = {
        field: (Optional[info.annotation], FieldInfo.merge_field_infos(info, default=None))  # noqa: UP045
        for field, info in model.model_fields.items()
    }
    config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CONNECTION_UPDATE]})
    return create_model(name, __config__=config, __doc__=doc, **fields)


# One field list for both bodies: a PATCH takes the same fields, each optional (`null` clears).
ConnectionUpdate = _all_optional(
    ConnectionInput, "ConnectionUpdate", "A patch: an absent field keeps its value, `null` clears it."
)


class SslOut(BaseModel):
    mode: SslModeName
    hasCa: bool
    hasCert: bool
    hasKey: bool


class JumpHostOut(BaseModel):
    host: str
    port: int
    userName: str | None = None
    hostKey: str | None = None
    hasPassword: bool
    hasPrivateKey: bool
    hasPassphrase: bool


class SshOut(BaseModel):
    host: str
    port: int
    userName: str
    hostKey: str | None = Field(None, description="the trusted host key: as given, or recorded by the first test")
    hasPassword: bool
    hasPrivateKey: bool
    hasPassphrase: bool
    jumpHost: JumpHostOut | None = None


class ConnectionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CONNECTION]})

    id: str
    configName: str
    productName: str | None = None
    type: EngineName
    host: str
    port: int
    databaseName: str
    userName: str
    schema_: str | None = Field(None, alias="schema")
    ssl: SslOut | None = None
    metadata: dict[str, str] | None = None
    ssh: SshOut | None = None
    createdAt: str
    updatedAt: str


class ConnectionList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CONNECTION_LIST]})

    items: list[ConnectionOut]
    page: int
    limit: int
    total: int
    nextCursor: str | None


class SchemaOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SCHEMA]})

    id: str
    configName: str
    databaseName: str
    type: EngineName
    tables: list[TableOut]


class ValidateSchemaInput(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [VALIDATE_SCHEMA_INPUT]})

    mappedFields: dict[str, dict[str, list[str]]]


class ValidSchema(BaseModel):
    """Lerian's SchemaValidationResponse of a request whose every mapped item exists."""

    model_config = ConfigDict(json_schema_extra={"examples": [VALID_SCHEMA]})

    status: Literal["success"]
    message: str


class SchemaFinding(BaseModel):
    """Lerian's SchemaValidationError: `table` and `field` only where they apply."""

    type: Literal["DATA_SOURCE_NOT_FOUND", "TABLE_NOT_FOUND", "FIELD_NOT_FOUND", "DATA_SOURCE_DOWN"]
    dataSourceId: str
    table: str | None = None
    field: str | None = None


class SchemaInvalid(BaseModel):
    """Lerian's SchemaValidationErrorResponse (422): every mapped item that does not exist."""

    model_config = ConfigDict(json_schema_extra={"examples": [SCHEMA_INVALID]})

    code: str
    title: str
    message: str
    errors: list[SchemaFinding]


class DataSource(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DATA_SOURCE]})

    id: str
    externalName: str
    type: str


class DataSourceDetail(DataSource):
    model_config = ConfigDict(json_schema_extra={"examples": [DATA_SOURCE_DETAIL]})

    tables: list[TableOut]
