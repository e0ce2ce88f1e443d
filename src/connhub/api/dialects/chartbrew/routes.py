"""The Chartbrew dialect's routes: /team/{team_id}/connections (SPEC.md section 5).

Thin: read the request, translate it (translate.py), call the service, answer. `{team_id}` is the
tenant (tenancy.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from connhub.api.deps import ServiceDep
from connhub.api.dialects.chartbrew.shapes import (
    CERTIFICATE_FILES_BODY,
    ChartbrewConnection,
    ChartbrewConnectionInput,
    ChartbrewTestResult,
    DuplicateInput,
    Removed,
)
from connhub.api.dialects.chartbrew.tenancy import ConnectionNumber, TeamReader, TeamWriter
from connhub.api.dialects.chartbrew.translate import (
    MAX_FILE_BYTES,
    PEM_FIELDS,
    SSH_KEY_FILE,
    UNSAVED_NAME,
    canonical_fields,
    duplicate_name,
    in_chartbrew_terms,
    render,
    test_answer,
    uploaded_files,
)
from connhub.api.http import json_object
from connhub.api.multipart import read_parts
from connhub.api.openapi import errors, json_body
from connhub.api.responses import Json
from connhub.domain.connection import Connection
from connhub.domain.errors import TestFailed
from connhub.domain.reports import Table
from connhub.service import ConnectionService

router = APIRouter(tags=["Connections (Chartbrew)"])
TEAM = "/team/{team_id}/connections"
ONE = TEAM + "/{connection_id}"


def one(connection: Connection, service: ConnectionService) -> Json:
    return Json(render(connection, service.cached_schema(connection)))


@router.post(
    TEAM,
    summary="Create a connection",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 409, 413, 415, 503)},
)
async def create(request: Request, principal: TeamWriter, service: ServiceDep) -> Json:
    fields = canonical_fields(await json_object(request))
    with in_chartbrew_terms():
        # Chartbrew's form uploads an SSH key file after the create (its passphrase comes first).
        created = await service.create(principal.tenant, fields, None, ssh_credentials_later=True)
    return one(created, service)


@router.get(
    TEAM,
    summary="List the team's connections, newest first",
    responses={200: {"model": list[ChartbrewConnection]}, **errors(400, 401, 403, 503)},
)
async def list_connections(principal: TeamReader, service: ServiceDep) -> Json:
    every = await service.list_every(principal.tenant, "createdAt", "desc")
    return Json([render(connection, service.cached_schema(connection)) for connection in every])


@router.get(
    ONE,
    summary="Get a connection",
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 503)},
)
async def get(principal: TeamReader, connection_id: ConnectionNumber, service: ServiceDep) -> Json:
    return one(await service.get_by_number(principal.tenant, connection_id), service)


@router.put(
    ONE,
    summary="Update a connection (partial, as Chartbrew: absent keeps, null clears)",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 409, 413, 415, 503)},
)
async def update(request: Request, principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep) -> Json:
    current = await service.get_by_number(principal.tenant, connection_id)
    patch = canonical_fields(await json_object(request), current)
    with in_chartbrew_terms():
        updated = await service.update(principal.tenant, current, patch, ssh_credentials_later=True)
    return one(updated, service)


@router.delete(
    ONE,
    summary="Delete a connection (soft: its secrets are wiped)",
    responses={200: {"model": Removed}, **errors(400, 401, 403, 404, 503)},
)
async def delete(principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep) -> Json:
    await service.delete(principal.tenant, await service.get_by_number(principal.tenant, connection_id))
    return Json({"removed": True})


@router.get(
    ONE + "/test",
    summary="Test a stored connection; on success also read its schema",
    responses={200: {"model": ChartbrewTestResult}, **errors(400, 401, 403, 404, 429, 503)},
)
async def test_saved(principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep) -> Json:
    connection = await service.get_by_number(principal.tenant, connection_id)
    report = await service.test_saved(principal.tenant, connection)
    tables = await _tables_or_none(service, principal.tenant, connection) if report.ok else None
    return Json(test_answer(report, tables))


async def _tables_or_none(service: ConnectionService, tenant: str, connection: Connection) -> list[Table] | None:
    """The schema after a successful test; None if reading it failed (the test still succeeded)."""
    try:
        return await service.schema(tenant, connection)
    except TestFailed:
        return None


@router.post(
    TEAM + "/{type}/test",
    summary="Test an unsaved connection of this type (nothing is stored)",
    openapi_extra=json_body(ChartbrewConnectionInput),
    responses={200: {"model": ChartbrewTestResult}, **errors(400, 401, 403, 413, 415)},
)
async def test_unsaved(request: Request, principal: TeamWriter, type: str, service: ServiceDep) -> Json:
    body = {**await json_object(request), "type": type}
    body["name"] = body.get("name") or UNSAVED_NAME
    fields = canonical_fields(body)
    with in_chartbrew_terms():
        report = await service.test_unsaved(fields)
    return Json(test_answer(report))


@router.post(
    ONE + "/files",
    summary="Upload files (multipart sslCa, sslCert, sslKey, sshPrivateKey; 1 MiB each), stored encrypted",
    openapi_extra=CERTIFICATE_FILES_BODY,
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 413, 415, 503)},
)
async def upload_files(
    request: Request, principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep
) -> Json:
    connection = await service.get_by_number(principal.tenant, connection_id)
    parts = await read_parts(request, (*PEM_FIELDS, SSH_KEY_FILE), MAX_FILE_BYTES)
    pems, ssh_key = uploaded_files(parts)
    with in_chartbrew_terms():
        updated = await service.attach_ssl_files(principal.tenant, connection, pems, ssh_key)
    return one(updated, service)


@router.post(
    ONE + "/duplicate",
    summary="Copy a connection, secrets and files included, under a new name",
    openapi_extra=json_body(DuplicateInput, required=False),
    responses={200: {"model": ChartbrewConnection}, **errors(400, 401, 403, 404, 409, 413, 415, 503)},
)
async def duplicate(
    request: Request, principal: TeamWriter, connection_id: ConnectionNumber, service: ServiceDep
) -> Json:
    source = await service.get_by_number(principal.tenant, connection_id)
    name = duplicate_name(await _optional_json(request), source)
    with in_chartbrew_terms():
        copy = await service.duplicate(principal.tenant, source, name)
    return one(copy, service)


async def _optional_json(request: Request) -> dict[str, Any]:
    """A JSON object body, or {} when none was sent (the name is optional)."""
    if not request.headers.get("content-type") and not await request.body():
        return {}
    return await json_object(request)

