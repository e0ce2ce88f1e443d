"""The Chartbrew dialect's routes: /team/{team_id}/connections (SPEC.md section 5).

Thin: read the request, translate it (translate.py), call the service, answer. `{team_id}` is the
tenant (tenancy.py).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request

from connhub.api.deps import HealthDep, ServiceDep
from connhub.api.dialects.chartbrew.shapes import (
    CERTIFICATE_FILES_BODY,
    TEST_FILES_BODY,
    TEST_RESPONSES,
    ChartbrewConnection,
    ChartbrewConnectionInput,
    DuplicateInput,
    Removed,
)
from connhub.api.dialects.chartbrew.tenancy import ConnectionNumber, TeamReader, TeamWriter
from connhub.api.dialects.chartbrew.translate import (
    FAILED_TEST_STATUS,
    MAX_FILE_BYTES,
    PEM_FIELDS,
    SSH_KEY_FILE,
    TEST_FILE_PARTS,
    canonical_fields,
    duplicate_name,
    in_chartbrew_terms,
    live_fields,
    render,
    render_stored,
    test_answer,
    test_with_files_body,
    unsaved_test_body,
    uploaded_files,
)
from connhub.api.errors import problem_answer
from connhub.api.http import json_object
from connhub.api.multipart import read_parts
from connhub.api.openapi import errors, json_body
from connhub.api.rendered import RawJson, Rendered, RenderedRows, json_array_with_fields, rows_of
from connhub.api.responses import Json
from connhub.domain.connection import Connection
from connhub.domain.errors import TestFailed
from connhub.domain.reports import Table, TestReport
from connhub.health.model import HealthState
from connhub.health.monitor import HealthMonitor
from connhub.service import ConnectionService

UNKNOWN = HealthState.UNKNOWN

router = APIRouter(tags=["Connections (Chartbrew)"])
TEAM = "/team/{team_id}/connections"
ONE = TEAM + "/{connection_id}"
ListedRows = Annotated[RenderedRows, Depends(rows_of(render_stored))]


async def one(connection: Connection, service: ConnectionService, health: HealthMonitor) -> Json:
    states = await health.states(connection.tenant)
    state = states.get(connection.number, UNKNOWN).value
    return Json(render(connection, service.cached_tables(connection), state))


@router.post(
    TEAM,
    summary="Create a connection",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 409, 413, 415, 503)},
)
async def create(request: Request, principal: TeamWriter, service: ServiceDep, health: HealthDep) -> Json:
    fields = canonical_fields(await json_object(request))
    with in_chartbrew_terms():
        # Chartbrew's form uploads an SSH key file after the create (its passphrase comes first).
        created = await service.create(principal.tenant, fields, None, ssh_credentials_later=True)
    return await one(created, service, health)


@router.get(
    TEAM,
    summary="List the team's connections, newest first",
    responses={200: {"model": list[ChartbrewConnection]}, **errors(400, 401, 403, 503)},
)
async def list_connections(principal: TeamReader, service: ServiceDep, health: HealthDep, rows: ListedRows) -> RawJson:
    every = await service.list_every(principal.tenant, "createdAt", "desc", rows)
    states = await health.states(principal.tenant)
    cached_tables = service.cached_tables

    def live(tables: list[Table] | None, state: HealthState) -> bytes:
        return b"," + orjson.dumps(live_fields(tables, state.value))[1:-1]

    no_schema = {state: live(None, state) for state in HealthState}  # the live fields of most rows

    def tail(row: Rendered) -> bytes:
        state = states.get(row.number, UNKNOWN)
        tables = cached_tables(row)
        return no_schema[state] if tables is None else live(tables, state)

    return RawJson(json_array_with_fields((row, tail(row)) for row in every))


@router.get(
    ONE,
    summary="Get a connection",
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 503)},
)
async def get(principal: TeamReader, connection_id: ConnectionNumber, service: ServiceDep, health: HealthDep) -> Json:
    return await one(await service.get_by_number(principal.tenant, connection_id), service, health)


@router.put(
    ONE,
    summary="Update a connection (partial, as Chartbrew: absent keeps, null clears)",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 409, 413, 415, 503)},
)
async def update(
    request: Request, principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep, health: HealthDep
) -> Json:
    current = await service.get_by_number(principal.tenant, connection_id)
    patch = canonical_fields(await json_object(request), current)
    with in_chartbrew_terms():
        updated = await service.update(principal.tenant, current, patch, ssh_credentials_later=True)
    return await one(updated, service, health)


@router.delete(
    ONE,
    summary="Delete a connection (soft: its secrets are wiped; `removeDatasets` is accepted, Connhub keeps none)",
    responses={200: {"model": Removed}, **errors(400, 401, 403, 404, 503)},
)
async def delete(principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep) -> Json:
    await service.delete(principal.tenant, await service.get_by_number(principal.tenant, connection_id))
    return Json({"removed": True})


@router.get(
    ONE + "/test",
    summary="Test a stored connection; on success also read its schema (a failed test is a 400, as Chartbrew's)",
    responses={**TEST_RESPONSES, **errors(401, 403, 404, 429, 503)},
)
async def test_saved(principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep) -> Json:
    connection = await service.get_by_number(principal.tenant, connection_id)
    report = await service.test_saved(principal.tenant, connection)
    tables = await _tables_or_none(service, principal.tenant, connection) if report.ok else None
    return _test_answer(report, tables)


def _test_answer(report: TestReport, tables: list[Table] | None) -> Json:
    answer = test_answer(report, tables)
    return Json(answer) if report.ok else problem_answer(FAILED_TEST_STATUS, answer)


async def _tables_or_none(service: ConnectionService, tenant: str, connection: Connection) -> list[Table] | None:
    """The tables discovered after a successful test; None if that failed (the test still succeeded)."""
    try:
        return await service.discover_tables(tenant, connection)
    except TestFailed:
        return None


@router.post(
    TEAM + "/{type}/test",
    summary="Test an unsaved connection of this type (nothing is stored; a failed test is a 400)",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={**TEST_RESPONSES, **errors(401, 403, 413, 415)},
)
async def test_unsaved(request: Request, principal: TeamWriter, type: str, service: ServiceDep) -> Json:
    return await _test_unsaved(service, unsaved_test_body(await json_object(request), type))


@router.post(
    TEAM + "/{type}/test/files",
    summary="Test an unsaved connection with certificate files (multipart `connection` JSON, sslCa, sslCert, sslKey)",
    openapi_extra=TEST_FILES_BODY,
    responses={**TEST_RESPONSES, **errors(401, 403, 413, 415)},
)
async def test_unsaved_with_files(request: Request, principal: TeamWriter, type: str, service: ServiceDep) -> Json:
    parts = await read_parts(request, TEST_FILE_PARTS, MAX_FILE_BYTES)
    return await _test_unsaved(service, test_with_files_body(parts, type))


async def _test_unsaved(service: ConnectionService, body: dict[str, Any]) -> Json:
    fields = canonical_fields(body)
    with in_chartbrew_terms():
        report = await service.test_unsaved(fields)
    tables = await service.discover_unsaved_tables(fields) if report.ok else None
    return _test_answer(report, tables)


@router.post(
    ONE + "/update-schema",
    summary="Read the connection's schema again; answers the connection with it",
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 422, 503)},
)
async def update_schema(principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep) -> Json:
    connection = await service.get_by_number(principal.tenant, connection_id)
    tables = await service.discover_tables(principal.tenant, connection, refresh=True)
    return Json(render(connection, tables))


@router.post(
    ONE + "/files",
    summary="Upload files (multipart sslCa, sslCert, sslKey, sshPrivateKey; 1 MiB each), stored encrypted",
    openapi_extra=CERTIFICATE_FILES_BODY,
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 413, 415, 503)},
)
async def upload_files(
    request: Request, principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep, health: HealthDep
) -> Json:
    connection = await service.get_by_number(principal.tenant, connection_id)
    parts = await read_parts(request, (*PEM_FIELDS, SSH_KEY_FILE), MAX_FILE_BYTES)
    pems, ssh_key = uploaded_files(parts)
    with in_chartbrew_terms():
        updated = await service.attach_ssl_files(principal.tenant, connection, pems, ssh_key)
    return await one(updated, service, health)


@router.post(
    ONE + "/duplicate",
    summary="Copy a connection, secrets and files included, under a new name",
    openapi_extra=json_body(DuplicateInput, required=False),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 409, 413, 415, 503)},
)
async def duplicate(
    request: Request, principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep, health: HealthDep
) -> Json:
    source = await service.get_by_number(principal.tenant, connection_id)
    name = duplicate_name(await _optional_json(request), source)
    with in_chartbrew_terms():
        copy = await service.duplicate(principal.tenant, source, name)
    return await one(copy, service, health)


async def _optional_json(request: Request) -> dict[str, Any]:
    """A JSON object body, or {} when none was sent (the name is optional)."""
    if not request.headers.get("content-type") and not await request.body():
        return {}
    return await json_object(request)
