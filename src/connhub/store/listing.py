"""The list statements, built once per shape: which filters a list has, not their values.

A list's SELECT used to be built anew for each request (its filters, its page, its total): a
tenth of a first page's CPU, and as much again for SQLAlchemy to find the compiled form of a
statement it had never seen. Here every value is a bound parameter, so a statement depends only
on its `ListShape`, and the shapes a service meets are few (cached, least recently used dropped).
Timestamps are bound as the stores keep them (naive UTC, `tables.as_stored`), so the parameters
need no conversion on any path that executes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, BigInteger, ColumnElement, DateTime, Integer, Select, bindparam, func, or_, select, tuple_

from connhub.domain.connection import normalized_text
from connhub.domain.listing import HealthFilter, ListQuery, SortBy, SortOrder
from connhub.store.tables import as_stored, connection_health, connections, stored_as_is

LIKE_ESCAPE = "/"
SHAPES_KEPT = 256
# The columns a list filters by equality, by ListQuery field.
_EQUAL = {
    "engine": connections.c.engine,
    "host": connections.c.host,
    "database_name": connections.c.database_name,
    "product_name": connections.c.product_name,
}


@dataclass(frozen=True)
class ListShape:
    """What a list's statement depends on: its filters' presence, order and paging, not their values."""

    equal: tuple[str, ...]  # ListQuery fields compared for equality (`_EQUAL`)
    unassigned: bool
    name_part: bool
    start: bool
    end: bool
    metadata_filters: int
    health: HealthFilter | None
    sort_by: SortBy
    sort_order: SortOrder
    after_cursor: bool


def list_binds(tenant: str, query: ListQuery) -> tuple[ListShape, dict[str, Any]]:
    """`query`'s shape, and the values of its statement's parameters."""
    params: dict[str, Any] = {"tenant": tenant, "row_limit": query.limit + 1}
    equal = tuple(name for name in _EQUAL if getattr(query, name) is not None)
    params.update((f"equal_{name}", getattr(query, name)) for name in equal)
    if query.config_name:
        params["name_pattern"] = f"%{_like_escaped(normalized_text(query.config_name))}%"
    if query.start_date:
        params["created_from"] = _midnight(query.start_date)
    if query.end_date:
        params["created_before"] = _midnight(query.end_date + timedelta(days=1))
    for n, (key, value) in enumerate(query.metadata.items()):
        params[f"metadata_key_{n}"], params[f"metadata_{n}"] = key, value
    if query.cursor:
        value = query.cursor.value
        params["after_value"] = as_stored(datetime.fromisoformat(value)) if query.sort_by == "createdAt" else value
        params["after_number"] = query.cursor.number
    else:
        params["row_offset"] = (query.page - 1) * query.limit
    shape = ListShape(
        equal=equal,
        unassigned=query.unassigned,
        name_part=bool(query.config_name),
        start=bool(query.start_date),
        end=bool(query.end_date),
        metadata_filters=len(query.metadata),
        health=query.health,
        sort_by=query.sort_by,
        sort_order=query.sort_order,
        after_cursor=query.cursor is not None,
    )
    return shape, params


@lru_cache(maxsize=SHAPES_KEPT)
def stamps_statement(shape: ListShape, counting: bool) -> Select[Any]:
    """One page of the shape's rows: number, version and sort key (read as stored: only the last
    row's is used, for the next cursor), one row more than the page (is there a next?), and with
    `counting` the total of every page in a last column (one statement, one snapshot)."""
    sort_column = _sort_column(shape.sort_by)
    columns = [connections.c.number, connections.c.version, stored_as_is(sort_column)]
    if counting:
        columns.append(count_statement(shape).scalar_subquery().label("total_rows"))
    page = _filtered(shape).with_only_columns(*columns).order_by(*_order(shape))
    page = page.limit(bindparam("row_limit", type_=Integer))
    if shape.after_cursor:
        return page.where(_after(shape))
    return page.offset(bindparam("row_offset", type_=BigInteger))  # up to MAX_PAGE x MAX_LIMIT


@lru_cache(maxsize=SHAPES_KEPT)
def count_statement(shape: ListShape) -> Select[Any]:
    """How many rows the shape's filters match (the page, cursor and order do not count)."""
    return select(func.count()).select_from(_filtered(shape).subquery())


def _filtered(shape: ListShape) -> Select[Any]:
    statement = select(connections).where(
        connections.c.tenant == bindparam("tenant"), connections.c.deleted_at.is_(None)
    )
    for name in shape.equal:
        statement = statement.where(_EQUAL[name] == bindparam(f"equal_{name}"))
    if shape.unassigned:
        statement = statement.where(connections.c.product_name.is_(None))
    if shape.name_part:
        statement = statement.where(connections.c.name_key.like(bindparam("name_pattern"), escape=LIKE_ESCAPE))
    if shape.start:
        statement = statement.where(connections.c.created_at >= _stored_time("created_from"))
    if shape.end:
        statement = statement.where(connections.c.created_at < _stored_time("created_before"))
    for n in range(shape.metadata_filters):
        value = connections.c.metadata[bindparam(f"metadata_key_{n}", type_=JSON.JSONIndexType())]
        statement = statement.where(value.as_string() == bindparam(f"metadata_{n}"))
    if shape.health is not None:
        statement = statement.where(_in_health_state(shape.health))
    return statement


def _in_health_state(state: HealthFilter) -> ColumnElement[bool]:
    """Connections in that scheduled health state; one never checked (no row yet) is unknown."""
    checked = select(connection_health.c.connection_number)
    if state == "unknown":
        # `or_`, not `in_`: a literal IN list is expanded per execution, which `DriverReads` can't.
        checked_state = or_(connection_health.c.state == "up", connection_health.c.state == "down")
        return connections.c.number.not_in(checked.where(checked_state))
    return connections.c.number.in_(checked.where(connection_health.c.state == state))


def _sort_column(sort_by: SortBy) -> Any:
    return connections.c.created_at if sort_by == "createdAt" else connections.c.name_key


def _order(shape: ListShape) -> list[Any]:
    column = _sort_column(shape.sort_by)
    if shape.sort_order == "asc":
        return [column.asc(), connections.c.number.asc()]
    return [column.desc(), connections.c.number.desc()]


def _after(shape: ListShape) -> ColumnElement[bool]:
    """Rows strictly after the cursor in the page order: keyset paging, constant cost at any depth."""
    value: Any = _stored_time("after_value") if shape.sort_by == "createdAt" else bindparam("after_value")
    # A row-value comparison, not `a < v OR (a = v AND n < k)`: PostgreSQL turns only the row form
    # into an index range; the OR form walks the index from the first row (O(depth) per page).
    position = tuple_(stored_as_is(_sort_column(shape.sort_by)), connections.c.number)
    bound = tuple_(value, bindparam("after_number", type_=BigInteger))
    return position > bound if shape.sort_order == "asc" else position < bound


def _stored_time(name: str) -> Any:
    """A timestamp parameter bound as stored (naive UTC, already converted by `list_binds`)."""
    return bindparam(name, type_=DateTime())


def _midnight(day: date) -> datetime:
    return as_stored(datetime.combine(day, time(), UTC))


def _like_escaped(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (as SQLAlchemy's `autoescape` does)."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, LIKE_ESCAPE + special)
    return text
