"""Shapes of the Chartbrew dialect's bodies and answers, for the OpenAPI description.

The rules live in the domain and in translate.py; these models only document them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connhub.api.dialects.chartbrew.translate import PEM_FIELDS, SSH_KEY_FILE, SUPPORTED_TYPES
from connhub.api.openapi import EXAMPLE_REQUEST_ID
from connhub.api.shapes import (
    FAILED_REPORT,
    TABLE,
    TEST_REPORT,
    PhasesOut,
    ProbeErrorOut,
    Problem,
    TestReportOut,
    TlsOut,
)

# Examples for /docs (schemathesis sends the request ones too), from real answers of this version
# with made-up values; tests/api/test_docs.py validates each against its model.
CHARTBREW_INPUT: dict[str, Any] = {
    "name": "production-db",
    "type": "postgres",
    "host": "db.example.com",
    "port": "5432",
    "dbName": "mydatabase",
    "username": "dbuser",
    "password": "secretpassword",
    "ssl": True,
    "sslMode": "require",
}
# Chartbrew's schema shape of the shared TABLE example.
CHARTBREW_SCHEMA: dict[str, Any] = {
    "tables": [TABLE["name"]],
    "description": {
        TABLE["name"]: {
            column["name"]: {
                "type": column["type"],
                "allowNull": column["nullable"],
                "primaryKey": column["primaryKey"],
            }
            for column in TABLE["columns"]
        }
    },
}
CHARTBREW_CONNECTION: dict[str, Any] = {
    "id": 1,
    "team_id": "default",
    "name": "production-db",
    "type": "postgres",
    "subType": None,
    "host": "db.example.com",
    "port": "5432",
    "dbName": "mydatabase",
    "username": "dbuser",
    "password": None,
    "hasPassword": True,
    "connectionString": None,
    "srv": False,
    "options": [],
    "ssl": True,
    "sslMode": "require",
    "hasSslCa": False,
    "hasSslCert": False,
    "hasSslKey": False,
    "useSsh": True,
    "sshHost": "bastion.example.com",
    "sshPort": "22",
    "sshUsername": "tunnel",
    "sshHostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqUe3q1M75yWIZ0KY7wAQkrVQwitk1BsMSHFwkkxhAB",
    "hasSshPassword": False,
    "hasSshPrivateKey": True,
    "hasSshPassphrase": False,
    "sshJumpHost": None,
    "sshJumpPort": None,
    "schema": CHARTBREW_SCHEMA,
    "createdAt": "2026-12-03T09:30:50.608Z",
    "updatedAt": "2026-12-03T09:30:50.608Z",
    "health": "up",
}
REMOVED: dict[str, Any] = {"removed": True}
DUPLICATE_INPUT: dict[str, Any] = {"name": "production-db (copy)"}
CHARTBREW_TEST_RESULT: dict[str, Any] = {"success": True, **TEST_REPORT, "schema": CHARTBREW_SCHEMA}
CHARTBREW_TEST_FAILURE: dict[str, Any] = {
    "code": "CONN-1010",
    "title": "Connection test failed",
    "success": False,
    **FAILED_REPORT,
    "schema": None,
    "requestId": EXAMPLE_REQUEST_ID,
}


class ChartbrewConnectionInput(BaseModel):
    """A Chartbrew connection body. Absent fields keep their value on PUT; `null` clears.

    Closed: translate.KNOWN is exactly these fields (tests/api/test_openapi_fields.py).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CHARTBREW_INPUT]})

    name: str | None = Field(None, description="= configName; 3-100 characters, unique in the team")
    type: str | None = Field(None, description=f"one of {SUPPORTED_TYPES}")
    subType: str | None = Field(None, description="e.g. timescaledb, supabasedb, rdsPostgres, rdsMysql")
    host: str | None = None
    port: int | str | None = Field(None, description="an integer or a string of digits")
    dbName: str | None = Field(None, description="required unless the connectionString carries it")
    username: str | None = None
    password: str | None = Field(None, description="write-only; on PUT, null keeps the stored one")
    connectionString: str | None = Field(None, description="a URI in place of host, port, dbName...")
    srv: bool | None = Field(None, description="MongoDB SRV lookup (mongodb+srv)")
    options: dict[str, Any] | list[dict[str, Any]] | None = Field(
        None, description="driver options: a list of single-key objects (as Chartbrew stores them) or an object"
    )
    optionsArray: Any = Field(None, description="ignored: the MongoDB form's own rows, also sent as `options`")
    ssl: bool | None = Field(None, description="false: no TLS; true: sslMode, else require")
    sslMode: str | None = Field(None, description="disable, allow, prefer, require, verify-ca, verify-full")
    sslCa: str | None = Field(None, description="PEM text (or upload it via /files)")
    sslCert: str | None = None
    sslKey: str | None = None
    useSsh: bool | None = Field(None, description="true: reach the database through an SSH bastion; false: directly")
    sshHost: str | None = Field(None, description="the bastion; the database host is resolved by it")
    sshPort: int | str | None = Field(None, description="22 when absent")
    sshUsername: str | None = None
    sshPassword: str | None = Field(None, description="write-only; on PUT, null or empty keeps the stored one")
    sshPrivateKey: str | None = Field(None, description="OpenSSH or PEM text (or upload it via /files); write-only")
    sshPassphrase: str | None = Field(None, description="opens an encrypted sshPrivateKey; write-only")
    sshHostKey: str | None = Field(
        None, description="(added) known_hosts line, public key or SHA256: fingerprint; absent: trust on first use"
    )
    sshJumpHost: str | None = Field(
        None, description="a jump host before the bastion (with the bastion's credentials); empty removes it"
    )
    sshJumpPort: int | str | None = None
    team_id: Any = Field(None, description="ignored: the path names the team")
    schema_: Any = Field(None, alias="schema", description="ignored: read-only")
    authentication: Any = Field(None, description="ignored")
    firebaseServiceAccount: Any = Field(None, description="ignored")
    # What a read answers, so a client may send a read back: ignored.
    id: Any = Field(None, description="ignored: the path names the connection")
    project_ids: Any = Field(None, description="ignored")
    oauth_id: Any = Field(None, description="ignored")
    active: Any = Field(None, description="ignored")
    hasPassword: Any = Field(None, description="ignored: read-only")
    hasSslCa: Any = Field(None, description="ignored: read-only")
    hasSshPassword: Any = Field(None, description="ignored: read-only")
    hasSshPrivateKey: Any = Field(None, description="ignored: read-only")
    hasSshPassphrase: Any = Field(None, description="ignored: read-only")
    health: Any = Field(None, description="ignored: read-only (the scheduled health state)")
    hasSslCert: Any = Field(None, description="ignored: read-only")
    hasSslKey: Any = Field(None, description="ignored: read-only")
    createdAt: Any = Field(None, description="ignored: read-only")
    updatedAt: Any = Field(None, description="ignored: read-only")


class ChartbrewColumn(BaseModel):
    type: str
    allowNull: bool
    primaryKey: bool


class ChartbrewSchema(BaseModel):
    """Chartbrew's schema, as its visual SQL builder reads it."""

    tables: list[str]
    description: dict[str, dict[str, ChartbrewColumn]] = Field(description="table -> column (in order) -> facts")


class ChartbrewConnection(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CHARTBREW_CONNECTION]})

    id: int
    team_id: int | str
    name: str
    type: str
    subType: str | None
    host: str
    port: str
    dbName: str
    username: str
    password: None = Field(None, description="never returned")
    hasPassword: bool
    connectionString: str | None = Field(description="with its password masked")
    srv: bool
    options: list[dict[str, str]] = Field(description="single-key objects, as Chartbrew stores them")
    ssl: bool
    sslMode: str | None
    hasSslCa: bool
    hasSslCert: bool
    hasSslKey: bool
    useSsh: bool
    sshHost: str | None
    sshPort: str | None
    sshUsername: str | None
    sshHostKey: str | None = Field(description="the trusted host key: as given, or recorded by the first test")
    hasSshPassword: bool
    hasSshPrivateKey: bool
    hasSshPassphrase: bool
    sshJumpHost: str | None
    sshJumpPort: str | None
    schema_: ChartbrewSchema | None = Field(alias="schema", description="cached discovered schema")
    createdAt: str
    updatedAt: str
    health: Literal["up", "down", "unknown"] = Field(
        description="scheduled health (CONNHUB_HEALTH_INTERVAL_S): the last check's outcome, or unknown"
    )


class Removed(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [REMOVED]})

    removed: bool


class DuplicateInput(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DUPLICATE_INPUT]})

    name: str | None = Field(None, description="the copy's name; default: '<name> (copy)'")


class ChartbrewTestResult(TestReportOut):
    """200 when the database answered."""

    model_config = ConfigDict(json_schema_extra={"examples": [CHARTBREW_TEST_RESULT]})

    success: bool
    schema_: ChartbrewSchema | None = Field(None, alias="schema")


class ChartbrewTestFailure(Problem):
    """400: a failed test, as Chartbrew answers it (the error shape with code CONN-1010, the report's
    fields and `success: false`), or a bad request (the error shape with `fields`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [CHARTBREW_TEST_FAILURE]})

    success: bool | None = None
    status: str | None = None
    latencyMs: int | None = None
    serverVersion: str | None = None
    tls: TlsOut | None = None
    phases: PhasesOut | None = None
    error: ProbeErrorOut | None = None
    schema_: None = Field(None, alias="schema")


TEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ChartbrewTestResult},
    400: {
        "model": ChartbrewTestFailure,
        "description": "The test failed (the report says why), or a bad request",
        "content": {"application/json": {"example": CHARTBREW_TEST_FAILURE}},
    },
}


def _files_body(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": properties}}},
        }
    }


PEM_PARTS = {
    name: {"type": "string", "format": "binary", "description": "PEM, at most 1 MiB; the text `null` is an empty slot"}
    for name in PEM_FIELDS
}
PEM_PARTS[SSH_KEY_FILE] = {
    "type": "string",
    "format": "binary",
    "description": "the SSH tunnel's private key (OpenSSH or PEM); the text `null` is an empty slot",
}
TEST_FILES_BODY = _files_body({"connection": {"type": "string", "description": "the connection, as JSON"}, **PEM_PARTS})
CERTIFICATE_FILES_BODY = _files_body(PEM_PARTS)
