"""Shapes of the Reporter dialect's bodies, for the OpenAPI description.

The rules themselves live in `connhub.domain` (one place); these models document them so clients
and fuzzers know the contract. Responses are rendered by hand (translate.py) for speed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from connhub.api.shapes import TableOut
from connhub.domain.engines import Engine

# Documented as the Literal it was: an inline enum of the Engine values (bodies are checked by the domain).
EngineName = Annotated[str, WithJsonSchema({"enum": [engine.value for engine in Engine], "type": "string"})]
SslModeName = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SslInput(Strict):
    mode: SslModeName
    ca: str | None = Field(None, description="PEM CA certificate(s); encrypted at rest, never returned")
    cert: str | None = Field(None, description="PEM client certificate; goes with key")
    key: str | None = Field(None, description="PEM private key; goes with cert")


class ConnectionInput(Strict):
    configName: str = Field(min_length=3, max_length=100)
    type: EngineName
    host: str = Field(max_length=253)
    port: int = Field(ge=1, le=65535)
    databaseName: str = Field(min_length=1, max_length=128)
    userName: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024, description="write-only")
    schema_: str | None = Field(None, alias="schema", min_length=1, max_length=128)
    ssl: SslInput | None = None
    metadata: dict[str, str] | None = Field(None, max_length=50)
    connectionString: str | None = Field(
        None, description="URI instead of host/port/databaseName/userName/password"
    )


class ConnectionUpdate(Strict):
    configName: str | None = Field(None, min_length=3, max_length=100)
    type: EngineName | None = None
    host: str | None = Field(None, max_length=253)
    port: int | None = Field(None, ge=1, le=65535)
    databaseName: str | None = Field(None, min_length=1, max_length=128)
    userName: str | None = Field(None, min_length=1, max_length=128)
    password: str | None = Field(None, min_length=1, max_length=1024)
    schema_: str | None = Field(None, alias="schema", min_length=1, max_length=128)
    ssl: SslInput | None = None
    metadata: dict[str, str] | None = Field(None, max_length=50)
    connectionString: str | None = None


class SslOut(BaseModel):
    mode: SslModeName
    hasCa: bool
    hasCert: bool
    hasKey: bool


class ConnectionOut(BaseModel):
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
    createdAt: str
    updatedAt: str


class ConnectionList(BaseModel):
    items: list[ConnectionOut]
    page: int
    limit: int
    total: int
    nextCursor: str | None


class SchemaOut(BaseModel):
    id: str
    configName: str
    databaseName: str
    type: EngineName
    tables: list[TableOut]


class ValidateSchemaInput(Strict):
    mappedFields: dict[str, dict[str, list[str]]]


class ValidSchema(BaseModel):
    status: Literal["valid"]


class DataSource(BaseModel):
    id: str
    externalName: str
    type: str


class DataSourceDetail(DataSource):
    tables: list[TableOut]
