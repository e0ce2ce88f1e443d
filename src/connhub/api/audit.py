"""`GET /v1/audit`: one organization's audit trail, newest first, in keyset pages (scope audit:read)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from connhub.api.auth import Principal
from connhub.api.dialects.formats import rfc3339
from connhub.api.http import auditor, hub
from connhub.api.openapi import errors
from connhub.api.params import Parameter, documented
from connhub.api.responses import Json
from connhub.audit import MAX_AUDIT_LIMIT, Action, AuditEntry, parse_audit_query

router = APIRouter(tags=["Audit"])
Auditor = Annotated[Principal, Depends(auditor)]

FILTERS = (
    Parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_LIMIT, "default": 50}),
    Parameter("cursor", "query", description="nextCursor of the previous page (keyset paging)"),
    Parameter("connectionId", "query", {"type": "string", "format": "uuid"}),
    Parameter("actor", "query", description="the token subject (`sub`) that acted"),
    Parameter("action", "query", {"type": "string", "enum": [action.value for action in Action]}),
    Parameter("from", "query", {"type": "string", "format": "date-time"}, "inclusive, RFC 3339 with a zone"),
    Parameter("to", "query", {"type": "string", "format": "date-time"}, "exclusive, RFC 3339 with a zone"),
)


class AuditEntryOut(BaseModel):
    id: int
    at: str
    tenant: str
    action: Literal["create", "update", "delete", "test", "schema_read", "assign", "file_upload", "key_rotation"]
    connectionId: str | None
    actor: str | None
    requestId: str | None
    dialect: str | None
    source: str | None
    fields: list[str]
    details: dict[str, str | int | None]


AUDIT_EXAMPLE: dict[str, Any] = {
    "items": [
        {
            "id": 42,
            "at": "2026-12-03T09:30:50.608Z",
            "tenant": "acme",
            "action": "update",
            "connectionId": "01938f2e-8a4b-7c3d-9e1f-2a3b4c5d6e7f",
            "actor": "alice@acme",
            "requestId": "4bf92f3577b34da6",
            "dialect": "reporter",
            "source": "10.0.0.7",
            "fields": ["metadata", "password"],
            "details": {},
        }
    ],
    "nextCursor": "YXVkaXQ6NDI",
}


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    nextCursor: str | None

    model_config = ConfigDict(json_schema_extra={"examples": [AUDIT_EXAMPLE]})


def render(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": rfc3339(entry.at),
        "tenant": entry.tenant,
        "action": entry.action.value,
        "connectionId": None if entry.connection_id is None else str(entry.connection_id),
        "actor": entry.actor,
        "requestId": entry.request_id,
        "dialect": entry.dialect,
        "source": entry.source,
        "fields": list(entry.fields),
        "details": dict(entry.details),
    }


@router.get(
    "/v1/audit",
    summary="The organization's audit trail, newest first",
    openapi_extra=documented(*FILTERS),
    responses={200: {"model": AuditPageOut}, **errors(400, 401, 403, 503)},
)
async def audit_trail(request: Request, principal: Auditor) -> Json:
    query = parse_audit_query(request.query_params)
    page = await hub(request).audit.page(principal.tenant, query)
    return Json({"items": [render(entry) for entry in page.items], "nextCursor": page.next_cursor})
