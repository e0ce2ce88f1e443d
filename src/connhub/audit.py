"""Who did what to which connection: the audit port the service calls, and the acting context.

The service says what happened (`AuditLog.record`): the action, the tenant, the connection, the
names of the fields written. Who asked, through which dialect, from where and under which request
id is the acting context (`Acting`), set once per request by the API (or by the CLI), so the
service needs no HTTP to say it. An entry never holds a field's value: names, a fixed vocabulary
(actions, test statuses and error categories) and counts only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from connhub.domain.errors import ValidationFailed


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    TEST = "test"
    SCHEMA_READ = "schema_read"
    ASSIGN = "assign"
    FILE_UPLOAD = "file_upload"
    KEY_ROTATION = "key_rotation"


Detail = str | int | None


@dataclass
class Acting:
    """The circumstances of the current request (mutable: auth learns the subject after routing)."""

    subject: str | None = None  # the token's `sub`; None with auth disabled
    request_id: str | None = None
    dialect: str | None = None  # reporter, chartbrew, cli
    source: str | None = None  # the client's address as the server saw it


_ACTING: ContextVar[Acting | None] = ContextVar("connhub_acting", default=None)


def acting() -> Acting:
    """The current request's context; an empty one outside any request."""
    return _ACTING.get() or Acting()


@contextmanager
def acting_as(context: Acting) -> Iterator[Acting]:
    token = _ACTING.set(context)
    try:
        yield context
    finally:
        _ACTING.reset(token)


@dataclass(frozen=True)
class AuditEntry:
    tenant: str
    action: Action
    at: datetime
    connection_id: UUID | None = None
    actor: str | None = None
    request_id: str | None = None
    dialect: str | None = None
    source: str | None = None
    fields: tuple[str, ...] = ()
    details: Mapping[str, Detail] = field(default_factory=dict)
    id: int | None = None  # the store's number, once written


class AuditLog(Protocol):
    """Where the service reports what it did. `record` must not wait on the store."""

    def record(
        self,
        tenant: str,
        action: Action,
        connection_id: UUID | None = None,
        *,
        fields: Collection[str] = (),
        details: Mapping[str, Detail] | None = None,
    ) -> None: ...


class NoAudit:
    """An audit log that keeps nothing (a service built without a store, as in unit tests)."""

    def record(
        self,
        tenant: str,
        action: Action,
        connection_id: UUID | None = None,
        *,
        fields: Collection[str] = (),
        details: Mapping[str, Detail] | None = None,
    ) -> None:
        return None


# -- reading the trail ----------------------------------------------------------------------

MAX_AUDIT_LIMIT = 1000


@dataclass(frozen=True)
class AuditQuery:
    """A page of one tenant's trail, newest first, after `before_id` (keyset paging)."""

    limit: int = 50
    before_id: int | None = None
    connection_id: UUID | None = None
    actor: str | None = None
    action: Action | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEntry]
    next_cursor: str | None


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{entry_id}".encode()).decode().rstrip("=")


def parse_audit_query(params: Mapping[str, str]) -> AuditQuery:
    """An AuditQuery from query parameters, or ValidationFailed naming each bad one."""
    errors: dict[str, str] = {}
    limit = 50
    if (raw := params.get("limit")) is not None:
        limit = int(raw) if raw.isdigit() else 0
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            errors["limit"] = f"must be an integer from 1 to {MAX_AUDIT_LIMIT}"
    before_id = _cursor(params.get("cursor"), errors)
    connection_id = None
    if (raw := params.get("connectionId")) is not None:
        try:
            connection_id = UUID(raw)
        except ValueError:
            errors["connectionId"] = "must be a UUID"
    action = None
    if (raw := params.get("action")) is not None:
        try:
            action = Action(raw)
        except ValueError:
            errors["action"] = "must be one of " + ", ".join(a.value for a in Action)
    since, until = _instant(params, "from", errors), _instant(params, "to", errors)
    if since and until and since >= until:
        errors["from"] = "must be before to"
    if errors:
        raise ValidationFailed(errors)
    return AuditQuery(limit, before_id, connection_id, params.get("actor"), action, since, until)


def _cursor(raw: str | None, errors: dict[str, str]) -> int | None:
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "audit" or not number.isdigit():
            raise ValueError
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        errors["cursor"] = "is not a cursor this service returned"
        return None


def _instant(params: Mapping[str, str], name: str, errors: dict[str, str]) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if value.tzinfo is None:
            raise ValueError
        return value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved out of range by its zone
        errors[name] = "must be an RFC 3339 date-time with a zone, e.g. 2026-12-03T10:00:00Z"
        return None
