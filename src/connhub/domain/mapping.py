"""What a report maps (Lerian's validate-schema): data sources, their tables and fields.

Lerian's clients name tables as they write SQL: bare (`invoices`) or schema-qualified
(`accounting.invoices`, `db.accounting.invoices`). Discovery names a table of the connection's own
schema bare and a table of any other schema `schema.table`; `table_key` turns a mapped name into
that form, by each engine's rules, so the lookup is a plain comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from connhub.domain.connection import Connection
from connhub.domain.engines import Engine
from connhub.domain.errors import ValidationFailed
from connhub.domain.reports import Table
from connhub.domain.text import has_control_characters

# Lerian's limits on one validate-schema request (fetcher pkg/model/schema.go).
MAX_SOURCES = 10
MAX_TABLES = 20
MAX_FIELDS = 50

MappedFields = Mapping[str, Mapping[str, Sequence[str]]]


class FindingType(StrEnum):
    DATA_SOURCE_NOT_FOUND = "DATA_SOURCE_NOT_FOUND"
    TABLE_NOT_FOUND = "TABLE_NOT_FOUND"
    FIELD_NOT_FOUND = "FIELD_NOT_FOUND"
    DATA_SOURCE_DOWN = "DATA_SOURCE_DOWN"


@dataclass(frozen=True)
class Finding:
    """One mapped item that does not exist (or a source that could not be read)."""

    type: FindingType
    data_source: str
    table: str | None = None
    field: str | None = None

    def to_json(self) -> dict[str, str]:
        """Lerian's SchemaValidationError: `table` and `field` only where they apply."""
        body = {"type": str(self.type), "dataSourceId": self.data_source}
        if self.table is not None:
            body["table"] = self.table
        if self.field is not None:
            body["field"] = self.field
        return body


def check_limits(mapped: MappedFields) -> None:
    """Lerian's bounds on one request, checked before any lookup (each source may cost a live read):
    a 400 naming the limit passed, at the path that passed it (`mappedFields.<source>.<table>`). A
    name with a control character (a NUL above all, which PostgreSQL cannot even compare) names
    nothing stored and is refused the same way, under `mappedFields`."""
    if not mapped:
        raise ValidationFailed({"mappedFields": "must name at least one data source"})
    if len(mapped) > MAX_SOURCES:
        raise ValidationFailed({"mappedFields": f"at most {MAX_SOURCES} data sources a request (got {len(mapped)})"})
    names = [name for source, tables in mapped.items() for name in (source, *tables, *_fields_of(tables))]
    if any(has_control_characters(name) for name in names):
        raise ValidationFailed({"mappedFields": "names must not contain control characters"})
    problems: dict[str, str] = {}
    for source, tables in mapped.items():
        if not source.strip():
            problems["mappedFields"] = "a data source name must not be empty"
        elif len(tables) > MAX_TABLES:
            problems[f"mappedFields.{source}"] = f"at most {MAX_TABLES} tables a data source (got {len(tables)})"
        for table, fields in tables.items():
            if not table.strip():
                problems[f"mappedFields.{source}"] = "a table name must not be empty"
            elif len(fields) > MAX_FIELDS:
                problems[f"mappedFields.{source}.{table}"] = f"at most {MAX_FIELDS} fields a table (got {len(fields)})"
    if problems:
        raise ValidationFailed(problems)


def _fields_of(tables: Mapping[str, Sequence[str]]) -> list[str]:
    return [field for fields in tables.values() for field in fields]


def own_schema(connection: Connection) -> str:
    """The schema an unqualified table name is looked up in, as discovery names it: the
    connection's, else the engine's default; Oracle's the user's; MySQL's and MongoDB's the database."""
    if connection.engine is Engine.ORACLE:
        return _folded(connection.schema_name or connection.user_name, Engine.ORACLE)
    return connection.schema_name or connection.engine.facts.default_schema or connection.database_name


def table_key(connection: Connection, name: str) -> tuple[str | None, str]:
    """(the schema, or None for the connection's own, and the table) that `name` means."""
    engine = connection.engine
    own = own_schema(connection)
    if engine is Engine.MONGODB:  # collection names may hold dots: only `database.` is a qualifier
        return None, name.removeprefix(f"{own}.")
    parts = name.strip().split(".")
    if len(parts) == 1 or len(parts) > 3:
        return None, _folded(name.strip(), engine)
    schema, table = (_folded(part, engine) for part in parts[-2:])
    same = schema.casefold() == own.casefold() if engine is not Engine.ORACLE else schema == own
    return (None if same else schema), table


def discovered_name(schema: str | None, table: str) -> str:
    """How discovery names a table: bare in the connection's schema, else `schema.table`."""
    return table if schema is None else f"{schema}.{table}"


def schemas_named(connection: Connection, tables: Iterable[str]) -> tuple[str, ...]:
    """The schemas besides the connection's own that the mapped `tables` name, to discover too."""
    if connection.engine in (Engine.MYSQL, Engine.MONGODB):
        return ()  # a MySQL schema is a database; a MongoDB qualifier is the database
    named = {schema for schema, _ in (table_key(connection, table) for table in tables) if schema}
    return tuple(sorted(named))


def findings(
    connection: Connection, source: str, wanted: Mapping[str, Sequence[str]], tables: list[Table]
) -> list[Finding]:
    """Every mapped table and field of one source that the discovered `tables` do not hold."""
    known = {table.name: table.fields for table in tables}
    missing: list[Finding] = []
    for name, fields in wanted.items():
        columns = known.get(discovered_name(*table_key(connection, name)))
        if columns is None:
            missing.append(Finding(FindingType.TABLE_NOT_FOUND, source, table=name))
            continue
        missing.extend(
            Finding(FindingType.FIELD_NOT_FOUND, source, table=name, field=field)
            for field in fields
            if not _has_field(columns, _folded(field, connection.engine), connection.engine is Engine.MONGODB)
        )
    return missing


def _has_field(columns: Sequence[str], field: str, documents: bool) -> bool:
    """A column of that name or, in documents, a path into a field discovery saw (`address.city`
    under `address`), as Lerian looks fields up."""
    if field in columns:
        return True
    prefix = field + "."
    if any(column.startswith(prefix) for column in columns):
        return True
    return documents and field.split(".", 1)[0] in columns


def _folded(name: str, engine: Engine) -> str:
    """Oracle stores unquoted identifiers in upper case; a quoted one keeps its case."""
    if len(name) > 1 and name.startswith('"') and name.endswith('"'):
        return name[1:-1]
    return name.upper() if engine is Engine.ORACLE else name
