"""The bounds of a validate-schema request (Lerian Reporter's limits), checked before any lookup.

`mappedFields` is `{dataSource: {table: [field, ...]}}`. Reporter allows at most 10 data sources,
20 tables a source and 50 fields a table; each lookup of a source may read a live schema, so a
request past those bounds is refused whole (a 400 naming the limit) rather than served in part.
Names with control characters (a NUL above all, which PostgreSQL cannot even compare) cannot
name anything stored, and are refused the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from connhub.domain.errors import ValidationFailed
from connhub.domain.text import has_control_characters

MAX_SOURCES = 10
MAX_TABLES = 20
MAX_FIELDS = 50


def check_mapped_fields(mapped: Mapping[str, Mapping[str, list[str]]]) -> None:
    """ValidationFailed naming `mappedFields` when `mapped` is past a limit or names the impossible."""
    problem = _problem(mapped)
    if problem:
        raise ValidationFailed({"mappedFields": problem})


def _problem(mapped: Mapping[str, Mapping[str, list[str]]]) -> str | None:
    if len(mapped) > MAX_SOURCES:
        return f"at most {MAX_SOURCES} data sources (got {len(mapped)})"
    for source, tables in mapped.items():
        if len(tables) > MAX_TABLES:
            return f"at most {MAX_TABLES} tables a data source ({len(tables)} for one)"
        for fields in tables.values():
            if len(fields) > MAX_FIELDS:
                return f"at most {MAX_FIELDS} fields a table ({len(fields)} for one)"
        names = [source, *tables, *(field for fields in tables.values() for field in fields)]
        if any(has_control_characters(name) for name in names):
            return "names must not contain control characters"
    return None
