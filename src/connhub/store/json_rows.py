"""Rows sent to PostgreSQL as one JSON document, read back with `json_populate_recordset`.

A multi-row VALUES list is a different, long SQL text for every batch size: psycopg parses it anew
each time (its statement cache stops at 4 KiB) and nothing can be prepared; an executemany binds
row by row in Python. One JSON document (orjson writes it) through one constant statement, prepared
once per session, costs the same for any number of rows. The group commit, the group update and the
audit trail's batches are written this way.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from connhub.store.tables import UtcDateTime

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


class JsonRows:
    """How rows of `table` go into the document: timestamps as UtcDateTime stores them (naive UTC;
    the columns are `timestamp without time zone`)."""

    def __init__(self, table: Table) -> None:
        # str(): a column's name is a str subclass, which orjson refuses as a key
        self._utc = [(str(column.name), column.type) for column in table.c if isinstance(column.type, UtcDateTime)]

    def as_stored(self, row: dict[str, Any]) -> dict[str, Any]:
        return row | {name: utc.process_bind_param(row[name], _PG) for name, utc in self._utc if name in row}

    def document(self, rows: list[dict[str, Any]]) -> str:
        return json_document([self.as_stored(row) for row in rows])


def json_document(rows: list[dict[str, Any]]) -> str:
    # default=str: uuid7() answers a subclass of UUID, which orjson leaves to `default`.
    return orjson.dumps(rows, default=str).decode()


def read_back(value: Any) -> Any:
    """A UtcDateTime column's value as a statement of this module returns it (aware UTC)."""
    return UtcDateTime().process_result_value(value, _PG)
