"""How a list of connections is asked for and paged (pure: the store executes it)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Generic, Literal, TypeVar

from connhub.domain.engines import ENGINE_NAMES, Engine
from connhub.domain.errors import ValidationFailed
from connhub.domain.text import has_nul

T = TypeVar("T")
SortBy = Literal["createdAt", "configName"]
SortOrder = Literal["asc", "desc"]
HealthFilter = Literal["up", "down", "unknown"]
# The deepest page an offset can reach without overflowing the store's 64-bit OFFSET (page * limit).
MAX_PAGE = 10**9
MAX_LIMIT = 1000  # rows in one page
# The dates a filter may name: an inclusive end date is compared with the next day's midnight, so
# the last day of the calendar cannot be one.
FIRST_DATE, LAST_DATE = date(1, 1, 2), date(9999, 12, 30)
MAX_NUMBER = 2**63 - 1  # the store's BIGINT
_TEXT_FILTERS = ("host", "databaseName", "configName")


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    limit: int = 50
    cursor: Cursor | None = None
    sort_by: SortBy = "createdAt"
    sort_order: SortOrder = "desc"
    engine: str | None = None
    host: str | None = None
    database_name: str | None = None
    config_name: str | None = None  # substring, case-insensitive
    product_name: str | None = None
    start_date: date | None = None
    end_date: date | None = None  # inclusive
    metadata: dict[str, str] = field(default_factory=dict)
    unassigned: bool = False
    health: HealthFilter | None = None  # the scheduled health state (issue 18)


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the last row's sort value and its number (the tie-breaker)."""

    sort_by: SortBy
    sort_order: SortOrder
    value: str
    number: int

    def encode(self) -> str:
        raw = json.dumps([self.sort_by, self.sort_order, self.value, self.number]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            sort_by, sort_order, value, number = json.loads(raw)
            if sort_by not in ("createdAt", "configName") or sort_order not in ("asc", "desc"):
                raise ValueError
            if not isinstance(value, str) or not isinstance(number, int) or not 0 <= number <= MAX_NUMBER:
                raise ValueError
            if sort_by == "createdAt":
                # A timestamp the store can compare: aware, and within the calendar once in UTC.
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise ValueError
                moment.astimezone(UTC)
            elif has_nul(value) or len(value) > 200:
                raise ValueError
            return cls(sort_by, sort_order, value, number)
        except (ValueError, TypeError, OverflowError, binascii.Error, json.JSONDecodeError):
            raise ValidationFailed({"cursor": "is not a cursor this service returned"}) from None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    limit: int
    total: int
    next_cursor: str | None


def parse_list_query(params: dict[str, Any], metadata: dict[str, str], product_name: str | None) -> ListQuery:
    """A ListQuery from raw query parameters, or ValidationFailed naming each bad one."""
    errors: dict[str, str] = {}
    page = _int_param(params, "page", 1, 1, MAX_PAGE, errors)
    limit = _int_param(params, "limit", 50, 1, MAX_LIMIT, errors)
    sort_by: SortBy = "createdAt"
    if params.get("sortBy") in ("createdAt", "configName"):
        sort_by = params["sortBy"]
    elif params.get("sortBy") is not None:
        errors["sortBy"] = "must be createdAt or configName"
    order = str(params.get("sortOrder", "desc")).lower()
    sort_order: SortOrder = "asc" if order == "asc" else "desc"
    if order not in ("asc", "desc"):
        errors["sortOrder"] = "must be asc or desc"
    engine = params.get("type")
    if engine is not None:
        engine = engine.upper()
        if engine not in Engine.__members__:
            errors["type"] = f"must be one of {ENGINE_NAMES}"
    for name in _TEXT_FILTERS:
        if has_nul(str(params.get(name) or "")):
            errors[name] = "must not contain a NUL character"
    for key, value in metadata.items():
        if has_nul(key) or has_nul(value):
            errors[f"metadata.{key}"] = "must not contain a NUL character"
    start, end = _date_param(params, "startDate", errors), _date_param(params, "endDate", errors)
    if start and end and start > end:
        errors["startDate"] = "must not be after endDate"
    health = params.get("health")
    if health is not None and health not in ("up", "down", "unknown"):
        errors["health"] = "must be up, down or unknown"
    cursor = Cursor.decode(params["cursor"]) if params.get("cursor") else None
    if errors:
        raise ValidationFailed(errors)
    if cursor and (cursor.sort_by, cursor.sort_order) != (sort_by, sort_order):
        raise ValidationFailed({"cursor": "was made for another sortBy/sortOrder"})
    return ListQuery(
        page=page,
        limit=limit,
        cursor=cursor,
        sort_by=sort_by,
        sort_order=sort_order,
        engine=engine,
        host=params.get("host"),
        database_name=params.get("databaseName"),
        config_name=params.get("configName"),
        product_name=product_name,
        start_date=start,
        end_date=end,
        metadata=metadata,
        health=health,
    )


def _int_param(
    params: dict[str, Any], name: str, default: int, low: int, high: int, errors: dict[str, str]
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        errors[name] = f"must be an integer from {low} to {high}"
        return default
    if not low <= value <= high:
        errors[name] = f"must be an integer from {low} to {high}"
    return value


def _date_param(params: dict[str, Any], name: str, errors: dict[str, str]) -> date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        value = None
    if value is None or not FIRST_DATE <= value <= LAST_DATE:
        errors[name] = f"must be a date YYYY-MM-DD from {FIRST_DATE} to {LAST_DATE}"
    return value if name not in errors else None
