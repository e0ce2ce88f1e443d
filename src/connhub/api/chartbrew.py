"""The Chartbrew dialect: /team/{team_id}/connections (SPEC.md section 5).

Same store and rules as the Reporter dialect; only two translations differ. A Chartbrew body is
turned into canonical fields (`canonical_fields`), and a connection is rendered in Chartbrew's
shape (`render`): integer `id`, `port` as a string, `password: null` with `hasPassword`, the
connection string masked, never a secret. Validation errors name Chartbrew's fields.

`{team_id}` is the tenant. With auth disabled any team is its own tenant (`default` is the
Reporter dialect's); with JWT auth the token's tenant claim must equal it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException

from connhub.api.auth import READ, WRITE, Principal
from connhub.api.http import UPLOAD_BODY_BYTES, BodyTooLarge, authorize, hub, json_object
from connhub.api.openapi import errors, json_body
from connhub.api.responses import Json, rfc3339
from connhub.api.schemas import TableOut, TestReportOut
from connhub.domain.connection import Connection, SslMode, validate_spec
from connhub.domain.errors import Forbidden, TestFailed, ValidationFailed
from connhub.domain.listing import parse_list_query
from connhub.service import ConnectionService

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

router = APIRouter(tags=["Connections (Chartbrew)"])
TEAM = "/team/{team_id}/connections"
ONE = TEAM + "/{connection_id}"

# Chartbrew's database types and ours. Its other sources (api, firestore, realtimedb,
# googleAnalytics, customerio, clickhouse...) are not databases Connhub keeps.
ENGINE_OF_TYPE = {
    "postgres": "POSTGRESQL",
    "mysql": "MYSQL",
    "mongodb": "MONGODB",
    "mssql": "SQL_SERVER",
    "oracle": "ORACLE",
}
TYPE_OF_ENGINE = {engine: kind for kind, engine in ENGINE_OF_TYPE.items()}
SUPPORTED_TYPES = ", ".join(ENGINE_OF_TYPE)

# Chartbrew fields that map one to one onto canonical fields.
RENAMED = {
    "name": "configName",
    "host": "host",
    "dbName": "databaseName",
    "username": "userName",
    "password": "password",
    "subType": "subType",
    "connectionString": "connectionString",
}
PEM_FIELDS = {"sslCa": "ca", "sslCert": "cert", "sslKey": "key"}
TRANSLATED = frozenset({"type", "port", "srv", "options", "ssl", "sslMode", *PEM_FIELDS})
# Sent by Chartbrew clients (the seed's body, or our own responses echoed back on PUT) but
# meaningless here: accepted and ignored. `team_id` comes from the path; `schema` is read-only.
IGNORED = frozenset(
    {
        "team_id",
        "authentication",
        "firebaseServiceAccount",
        "schema",
        "id",
        "project_ids",
        "oauth_id",
        "active",
        "hasPassword",
        "hasSslCa",
        "hasSslCert",
        "hasSslKey",
        "createdAt",
        "updatedAt",
    }
)
KNOWN = frozenset({*RENAMED, *TRANSLATED, *IGNORED})
# Canonical field names (as the domain reports them) -> Chartbrew's.
CHARTBREW_NAMES = {
    "configName": "name",
    "databaseName": "dbName",
    "userName": "username",
    "ssl.mode": "sslMode",
    "ssl.ca": "sslCa",
    "ssl.cert": "sslCert",
    "ssl.key": "sslKey",
}
# Values of a stored connection that a PUT may echo back unchanged.
ECHOABLE = ("configName", "type", "host", "port", "databaseName", "userName", "subType")

MAX_FILE_BYTES = 1024 * 1024
MONGODB_PORT = 27017
UNSAVED_NAME = "unsaved connection"  # the domain wants a name; a test of an unsaved body has none

TeamId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00-\x1f\x7f]+$",
        description="the team (tenant); with JWT auth, the token's tenant claim",
    ),
]
ConnectionNumber = Annotated[int, Path(ge=1, le=2**63 - 1, description="the connection's integer id")]


# -- shapes, for the OpenAPI description (the rules live in the domain) ------------------------


class ChartbrewConnectionInput(BaseModel):
    """A Chartbrew connection body. Absent fields keep their value on PUT; `null` clears."""

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
    options: dict[str, Any] | list[dict[str, Any]] | None = Field(None, description="driver options")
    ssl: bool | None = Field(None, description="false: no TLS; true: sslMode, else require")
    sslMode: str | None = Field(None, description="disable, allow, prefer, require, verify-ca, verify-full")
    sslCa: str | None = Field(None, description="PEM text (or upload it via /files)")
    sslCert: str | None = None
    sslKey: str | None = None
    team_id: Any = Field(None, description="ignored: the path names the team")
    schema_: Any = Field(None, alias="schema", description="ignored: read-only")
    authentication: Any = Field(None, description="ignored")
    firebaseServiceAccount: Any = Field(None, description="ignored")


class ChartbrewConnection(BaseModel):
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
    options: dict[str, str]
    ssl: bool
    sslMode: str | None
    hasSslCa: bool
    hasSslCert: bool
    hasSslKey: bool
    schema_: dict[str, list[TableOut]] | None = Field(alias="schema", description="cached discovered schema")
    createdAt: str
    updatedAt: str


class Removed(BaseModel):
    removed: bool


class DuplicateInput(BaseModel):
    name: str | None = Field(None, description="the copy's name; default: '<name> (copy)'")


class ChartbrewTestResult(TestReportOut):
    success: bool
    schema_: dict[str, list[TableOut]] | None = Field(None, alias="schema")


CERTIFICATE_FILES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string", "format": "binary", "description": "PEM, at most 1 MiB"}
                        for name in PEM_FIELDS
                    },
                }
            }
        },
    }
}


# -- who is asking ------------------------------------------------------------------------------


def _team_principal(request: Request, team_id: str, scope: str) -> Principal:
    authenticator = hub(request).auth
    principal = authorize(request, scope)
    if authenticator.enabled and principal.tenant != team_id:
        raise Forbidden("the token's organization is not this team")
    return Principal(team_id, principal.scopes)


async def team_reader(request: Request, team_id: TeamId) -> Principal:
    return _team_principal(request, team_id, READ)


async def team_writer(request: Request, team_id: TeamId) -> Principal:
    return _team_principal(request, team_id, WRITE)


TeamReader = Annotated[Principal, Depends(team_reader)]
TeamWriter = Annotated[Principal, Depends(team_writer)]


@contextmanager
def in_chartbrew_terms() -> Iterator[None]:
    """Validation errors raised inside name Chartbrew's fields, not the canonical ones."""
    try:
        yield
    except ValidationFailed as error:
        raise error.renamed(CHARTBREW_NAMES) from None


# -- Chartbrew body -> canonical fields ---------------------------------------------------------


def canonical_fields(body: Mapping[str, Any], current: Connection | None = None) -> dict[str, Any]:
    """The canonical fields of a Chartbrew body: a whole connection, or with `current` a patch.

    An empty string counts as absent (Chartbrew's forms send them for fields they do not use).
    Raises ValidationFailed in Chartbrew's field names.
    """
    problems = {name: "unknown field" for name in sorted(set(body) - KNOWN)}
    given = {name: None if value == "" else value for name, value in body.items() if name in KNOWN}
    fields = {ours: given[theirs] for theirs, ours in RENAMED.items() if theirs in given}
    if given.get("type") is not None:
        fields["type"] = _engine(given["type"], problems)
    if "port" in given:
        fields["port"] = _port(given["port"], problems)
    if current is None and given.get("srv") is True and fields.get("port") is None:
        fields["port"] = MONGODB_PORT  # SRV records name the ports; the domain still wants one
    if (options := _options(given, current, problems)) is not _UNCHANGED:
        fields["options"] = options
    if (ssl := _ssl(given, current, problems)) is not None:
        fields["ssl"] = ssl
    if current is None and fields.get("type") is None and fields.get("connectionString") is None:
        problems.setdefault("type", f"required: one of {SUPPORTED_TYPES}")
    if problems and current is None:
        raise ValidationFailed({**_domain_problems(_whole(fields)), **problems})
    if problems:
        raise ValidationFailed(problems)
    return _whole(fields) if current is None else _patch(fields, current)


def _domain_problems(fields: dict[str, Any]) -> dict[str, str]:
    """What the domain says of the rest of a body, so one 400 names every bad field."""
    try:
        validate_spec(fields)
    except ValidationFailed as error:
        return error.renamed(CHARTBREW_NAMES).fields
    return {}


def _whole(fields: dict[str, Any]) -> dict[str, Any]:
    """On create, `null` is the same as absent."""
    return {name: value for name, value in fields.items() if value is not None}


def _patch(fields: dict[str, Any], current: Connection) -> dict[str, Any]:
    """A PUT as a canonical patch: absent keeps, `null` clears, as Reporter's PATCH.

    Three Chartbrew habits are not changes: `password: null` (what every read answers), the
    masked connection string echoed back, and any other value echoed unchanged. Dropping the
    echoes matters: a changed host or port would otherwise drop the stored connection string.
    """
    stored = _echoable_values(current)
    patch = dict(fields)
    if patch.get("password") is None:
        patch.pop("password", None)
    if "connectionString" in patch and patch["connectionString"] == current.masked_connection_string:
        patch.pop("connectionString")
    for name in ECHOABLE:
        if name in patch and patch[name] == stored[name]:
            patch.pop(name)
    return patch


def _echoable_values(current: Connection) -> dict[str, Any]:
    return {
        "configName": current.config_name,
        "type": current.engine.value,
        "host": current.host,
        "port": current.port,
        "databaseName": current.database_name,
        "userName": current.user_name,
        "subType": current.sub_type,
    }


def _engine(value: Any, problems: dict[str, str]) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ENGINE_OF_TYPE:
        return ENGINE_OF_TYPE[value.strip().lower()]
    problems["type"] = (
        f"must be one of: {SUPPORTED_TYPES} (Chartbrew's other sources, such as api or firestore, "
        "are not databases Connhub keeps)"
    )
    return None


def _port(value: Any, problems: dict[str, str]) -> Any:
    """Chartbrew sends the port as a string; digits become an integer, the domain checks the range."""
    if not isinstance(value, str):
        return value  # an integer, null, or a wrong type the domain names
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 5:
        return int(text)
    problems["port"] = "must be a number from 1 to 65535 (an integer or a string of digits)"
    return None


class _Unchanged:
    """Marks a field the body leaves alone (distinct from `None`, which clears it)."""


_UNCHANGED = _Unchanged()


def _options(given: Mapping[str, Any], current: Connection | None, problems: dict[str, str]) -> Any:
    """`options` (an object or Chartbrew's list of single-key objects) with `srv` folded in.

    `srv` is kept among the options (the MongoDB probe reads it there). On PUT, options sent
    without `srv` keep the stored `srv`, and `srv` sent alone keeps the stored options.
    """
    srv = given.get("srv")
    if "options" not in given and srv is None:
        return _UNCHANGED
    if srv is not None and not isinstance(srv, bool):
        problems["srv"] = "must be true or false"
        return _UNCHANGED
    raw = given.get("options", current.options if current else None)
    options = _one_object(raw if raw is not None else {})
    if not isinstance(options, Mapping):
        return options  # a shape the domain refuses, naming `options`
    if srv is None and current is not None and "srv" not in options:
        srv = current.options.get("srv") == "true"
    merged = {key: value for key, value in options.items() if key != "srv" or srv is None}
    if srv:
        merged["srv"] = "true"
    return merged or None


def _one_object(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(entry, Mapping) for entry in value):
        return {key: item for entry in value for key, item in entry.items()}
    return value


def _ssl(given: Mapping[str, Any], current: Connection | None, problems: dict[str, str]) -> dict[str, Any] | None:
    """Canonical `ssl` from Chartbrew's `ssl` (bool), `sslMode` and PEM fields; None: unchanged.

    `ssl: false` is mode `disable` (Chartbrew then connects without TLS) and keeps any uploaded
    files; `ssl: true` without `sslMode` keeps a stored secure mode, else means `require`.
    """
    flag, mode = given.get("ssl"), given.get("sslMode")
    pems = {ours: given[theirs] for theirs, ours in PEM_FIELDS.items() if theirs in given}
    if flag is not None and not isinstance(flag, bool):
        problems["ssl"] = "must be true or false"
        return None
    if flag is None and mode is None and not pems:
        return None
    if flag is False:
        if not pems and current is not None and not _ssl_on(current):
            return None  # already off: an echo of what a read answered
        return {"mode": SslMode.DISABLE.value, **pems}
    if flag is True and mode == SslMode.DISABLE.value:
        problems["sslMode"] = "must not be disable when ssl is true"
        return None
    stored = current.ssl.mode.value if current is not None and current.ssl is not None else None
    if flag is True and stored == SslMode.DISABLE.value:
        stored = None
    return {"mode": mode or stored or SslMode.REQUIRE.value, **pems}


def _ssl_on(connection: Connection) -> bool:
    return connection.ssl is not None and connection.ssl.mode != SslMode.DISABLE


# -- connection -> Chartbrew's shape ------------------------------------------------------------


def render(connection: Connection, service: ConnectionService) -> dict[str, Any]:
    ssl = connection.ssl
    return {
        "id": connection.number,
        "team_id": _team_id(connection.tenant),
        "name": connection.config_name,
        "type": TYPE_OF_ENGINE[connection.engine.value],
        "subType": connection.sub_type,
        "host": connection.host,
        "port": str(connection.port),
        "dbName": connection.database_name,
        "username": connection.user_name,
        "password": None,
        "hasPassword": connection.has_password,
        "connectionString": connection.masked_connection_string,
        "srv": connection.options.get("srv") == "true",
        "options": {key: value for key, value in connection.options.items() if key != "srv"},
        "ssl": _ssl_on(connection),
        "sslMode": ssl.mode.value if ssl else None,
        "hasSslCa": bool(ssl and ssl.has_ca),
        "hasSslCert": bool(ssl and ssl.has_cert),
        "hasSslKey": bool(ssl and ssl.has_key),
        "schema": _cached_schema(connection, service),
        "createdAt": rfc3339(connection.created_at),
        "updatedAt": rfc3339(connection.updated_at),
    }


def _team_id(tenant: str) -> int | str:
    """Chartbrew's team ids are integers; a tenant that is one is answered as one."""
    return int(tenant) if tenant.isascii() and tenant.isdigit() and len(tenant) < 19 else tenant


def _cached_schema(connection: Connection, service: ConnectionService) -> dict[str, Any] | None:
    """The schema discovered by the last test or schema read, while cached; never a live read."""
    tables = service.schema_cache.get(connection)
    return None if tables is None else {"tables": [table.to_json() for table in tables]}


def one(connection: Connection, request: Request) -> Json:
    return Json(render(connection, hub(request).service))


# -- routes -------------------------------------------------------------------------------------


@router.post(
    TEAM,
    summary="Create a connection",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 409, 413, 415, 503)},
)
async def create(request: Request, principal: TeamWriter) -> Json:
    fields = canonical_fields(await json_object(request))
    with in_chartbrew_terms():
        created = await hub(request).service.create(principal.tenant, fields, None)
    return one(created, request)


@router.get(
    TEAM,
    summary="List the team's connections, newest first",
    responses={200: {"model": list[ChartbrewConnection]}, **errors(400, 401, 403, 503)},
)
async def list_connections(request: Request, principal: TeamReader) -> Json:
    service = hub(request).service
    params = {"limit": "1000", "sortBy": "createdAt", "sortOrder": "desc"}
    items: list[dict[str, Any]] = []
    while True:
        page = await service.list_connections(principal.tenant, parse_list_query(params, {}, None))
        items.extend(render(connection, service) for connection in page.items)
        if page.next_cursor is None:
            return Json(items)
        params["cursor"] = page.next_cursor


@router.get(
    ONE,
    summary="Get a connection",
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 503)},
)
async def get(request: Request, principal: TeamReader, connection_id: ConnectionNumber) -> Json:
    return one(await hub(request).service.get_by_number(principal.tenant, connection_id), request)


@router.put(
    ONE,
    summary="Update a connection (partial, as Chartbrew: absent keeps, null clears)",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 409, 413, 415, 503)},
)
async def update(request: Request, principal: TeamWriter, connection_id: ConnectionNumber) -> Json:
    service = hub(request).service
    current = await service.get_by_number(principal.tenant, connection_id)
    patch = canonical_fields(await json_object(request), current)
    with in_chartbrew_terms():
        updated = await service.update(principal.tenant, current, patch)
    return one(updated, request)


@router.delete(
    ONE,
    summary="Delete a connection (soft: its secrets are wiped)",
    responses={200: {"model": Removed}, **errors(400, 401, 403, 404, 503)},
)
async def delete(request: Request, principal: TeamWriter, connection_id: ConnectionNumber) -> Json:
    service = hub(request).service
    await service.delete(principal.tenant, await service.get_by_number(principal.tenant, connection_id))
    return Json({"removed": True})


@router.get(
    ONE + "/test",
    summary="Test a stored connection; on success also read its schema",
    responses={200: {"model": ChartbrewTestResult}, **errors(400, 401, 403, 404, 429, 503)},
)
async def test_saved(request: Request, principal: TeamWriter, connection_id: ConnectionNumber) -> Json:
    service = hub(request).service
    connection = await service.get_by_number(principal.tenant, connection_id)
    report = await service.test_saved(principal.tenant, connection)
    schema = await _schema_or_none(service, principal.tenant, connection) if report.ok else None
    return Json({"success": report.ok, **report.to_json(), "schema": schema})


async def _schema_or_none(service: ConnectionService, tenant: str, connection: Connection) -> dict[str, Any] | None:
    """The schema after a successful test; None if reading it failed (the test still succeeded)."""
    try:
        tables = await service.schema(tenant, connection)
    except TestFailed:
        return None
    return {"tables": [table.to_json() for table in tables]}


@router.post(
    TEAM + "/{type}/test",
    summary="Test an unsaved connection of this type (nothing is stored)",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewTestResult}, **errors(400, 401, 403, 413, 415)},
)
async def test_unsaved(request: Request, principal: TeamWriter, type: str) -> Json:
    body = {**await json_object(request), "type": type}
    body["name"] = body.get("name") or UNSAVED_NAME
    fields = canonical_fields(body)
    with in_chartbrew_terms():
        report = await hub(request).service.test_unsaved(fields)
    return Json({"success": report.ok, **report.to_json(), "schema": None})


@router.post(
    ONE + "/files",
    summary="Upload PEM files (multipart sslCa, sslCert, sslKey; 1 MiB each), stored encrypted",
    openapi_extra=CERTIFICATE_FILES_BODY,
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 413, 415, 503)},
)
async def upload_files(request: Request, principal: TeamWriter, connection_id: ConnectionNumber) -> Json:
    service = hub(request).service
    connection = await service.get_by_number(principal.tenant, connection_id)
    pems = {PEM_FIELDS[name]: text for name, text in (await read_certificate_files(request)).items()}
    with in_chartbrew_terms():
        updated = await service.attach_ssl_files(principal.tenant, connection, pems)
    return one(updated, request)


@router.post(
    ONE + "/duplicate",
    summary="Copy a connection, secrets and files included, under a new name",
    openapi_extra=json_body(DuplicateInput, required=False),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 409, 413, 415, 503)},
)
async def duplicate(request: Request, principal: TeamWriter, connection_id: ConnectionNumber) -> Json:
    service = hub(request).service
    source = await service.get_by_number(principal.tenant, connection_id)
    name = _duplicate_name(await _optional_json(request), source)
    with in_chartbrew_terms():
        copy = await service.duplicate(principal.tenant, source, name)
    return one(copy, request)


async def _optional_json(request: Request) -> dict[str, Any]:
    """A JSON object body, or {} when none was sent (the name is optional)."""
    if not request.headers.get("content-type") and not await request.body():
        return {}
    return await json_object(request)


def _duplicate_name(body: Mapping[str, Any], source: Connection) -> str:
    problems = {name: "unknown field" for name in sorted(set(body) - {"name", "team_id"})}
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        problems["name"] = "must be a string of 3-100 characters"
    if problems:
        raise ValidationFailed(problems)
    return name or f"{source.config_name} (copy)"


# -- certificate files --------------------------------------------------------------------------


async def read_certificate_files(request: Request) -> dict[str, str]:
    """The PEM texts of a multipart body by Chartbrew field name, parsed in memory.

    Starlette's form parser spools large files to a temporary file; certificate material must
    never touch the local disk, so the (bounded) body is parsed here instead.
    """
    boundary = _multipart_boundary(request.headers.get("content-type", ""))
    try:
        raw = await request.body()
    except BodyTooLarge:
        raise HTTPException(413, f"the request body must be at most {UPLOAD_BODY_BYTES} bytes") from None
    parts = _multipart_parts(raw, boundary)
    return _pem_texts(parts)


def _multipart_boundary(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(415, "the request body must be multipart/form-data with sslCa, sslCert, sslKey")
    return boundary


class _PartCollector:
    """python-multipart callbacks that keep each part's name and bytes in memory."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, bytearray]] = []
        self.ended = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._name = ""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._name = ""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_field.extend(data[start:end])

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value.extend(data[start:end])

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            _, params = parse_options_header(bytes(self._header_value))
            self._name = params.get(b"name", b"").decode("utf-8", "replace")
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        self.parts.append((self._name, bytearray()))

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1][1].extend(data[start:end])

    def _end(self) -> None:
        self.ended = True


def _multipart_parts(raw: bytes, boundary: bytes) -> list[tuple[str, bytearray]]:
    collector = _PartCollector()
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        parser.write(raw)
        parser.finalize()
    except (MultipartParseError, ValueError):
        raise ValidationFailed({"body": "is not a well-formed multipart/form-data body"}) from None
    if not collector.ended:
        raise ValidationFailed({"body": "is not a well-formed multipart/form-data body"})
    return collector.parts


def _pem_texts(parts: list[tuple[str, bytearray]]) -> dict[str, str]:
    texts: dict[str, str] = {}
    problems: dict[str, str] = {}
    for name, content in parts:
        if name not in PEM_FIELDS:
            problems[name[:100] or "body"] = "unknown field: send sslCa, sslCert or sslKey"
        elif name in texts:
            problems[name] = "sent more than once"
        elif len(content) > MAX_FILE_BYTES:
            raise HTTPException(413, f"{name} must be at most {MAX_FILE_BYTES} bytes")
        else:
            texts[name] = _pem_text(name, bytes(content), problems)
    if not parts:
        problems["body"] = "send at least one of sslCa, sslCert, sslKey"
    if problems:
        raise ValidationFailed(problems)
    return texts


def _pem_text(name: str, content: bytes, problems: dict[str, str]) -> str:
    """The file as text; whether it is the right kind of PEM is the domain's call."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems[name] = "must be a PEM text file (a DER or other binary file is not accepted)"
        return ""
    if not text.strip():
        problems[name] = "is empty"
    return text
