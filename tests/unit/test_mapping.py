"""Lerian's validate-schema rules, without HTTP or a database: limits, table keys, findings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from connhub.domain.connection import Connection
from connhub.domain.engines import Engine
from connhub.domain.errors import ValidationFailed
from connhub.domain.mapping import (
    Finding,
    FindingType,
    check_limits,
    findings,
    schemas_named,
    table_key,
)
from connhub.domain.reports import Column, Table

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def connection(engine: Engine, schema_name: str | None = None, **overrides: Any) -> Connection:
    base = Connection(
        id=uuid4(), number=1, tenant="t", product_name=None, config_name="ledger", engine=engine,
        host="db", port=1, database_name="app", user_name="reporter", schema_name=schema_name, ssl=None,
        metadata=None, options={}, sub_type=None, masked_connection_string=None,
        created_at=NOW, updated_at=NOW, version=1, ssh=None,
    )  # fmt: skip
    return replace(base, **overrides)


def table(name: str, *fields: str) -> Table:
    return Table(name, tuple(Column(field, "text", True, False) for field in fields))


@pytest.mark.parametrize(
    ("mapped", "named"),
    [
        ({}, "mappedFields"),
        ({f"s{i}": {"t": ["f"]} for i in range(11)}, "mappedFields"),
        ({"s": {f"t{i}": ["f"] for i in range(21)}}, "mappedFields.s"),
        ({"s": {"t": [f"f{i}" for i in range(51)]}}, "mappedFields.s.t"),
    ],
)
def test_each_lerian_limit_is_a_400_naming_it(mapped: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_limits(mapped)
    assert named in raised.value.fields


def test_the_limits_themselves_pass() -> None:
    check_limits({f"s{i}": {f"t{j}": [f"f{k}" for k in range(50)] for j in range(20)} for i in range(10)})


@pytest.mark.parametrize(
    ("engine", "schema", "name", "key"),
    [
        (Engine.POSTGRESQL, None, "invoices", (None, "invoices")),
        (Engine.POSTGRESQL, None, "public.invoices", (None, "invoices")),
        (Engine.POSTGRESQL, "public", "accounting.invoices", ("accounting", "invoices")),
        (Engine.POSTGRESQL, "accounting", "accounting.invoices", (None, "invoices")),
        (Engine.POSTGRESQL, None, "app.accounting.invoices", ("accounting", "invoices")),
        (Engine.SQL_SERVER, None, "dbo.invoices", (None, "invoices")),
        (Engine.SQL_SERVER, None, "sales.invoices", ("sales", "invoices")),
        (Engine.ORACLE, None, "invoices", (None, "INVOICES")),
        (Engine.ORACLE, None, "reporter.invoices", (None, "INVOICES")),
        (Engine.ORACLE, None, "gl.invoices", ("GL", "INVOICES")),
        (Engine.ORACLE, None, '"Mixed"', (None, "Mixed")),
        (Engine.MYSQL, None, "app.orders", (None, "orders")),
        (Engine.MONGODB, None, "app.events.2026", (None, "events.2026")),
    ],
)
def test_table_keys_as_each_engine_reads_them(
    engine: Engine, schema: str | None, name: str, key: tuple[str | None, str]
) -> None:
    assert table_key(connection(engine, schema), name) == key


def test_only_other_schemas_are_read_besides_the_own() -> None:
    pg = connection(Engine.POSTGRESQL)
    assert schemas_named(pg, ["orders", "public.x", "accounting.invoices", "b.t", "accounting.lines"]) == (
        "accounting",
        "b",
    )
    assert schemas_named(connection(Engine.MYSQL), ["other.t"]) == ()


def test_findings_name_each_missing_table_and_field() -> None:
    pg = connection(Engine.POSTGRESQL)
    discovered = [table("orders", "id", "total"), table("accounting.invoices", "id")]
    wanted = {"public.orders": ["id", "color"], "accounting.invoices": ["id"], "ghosts": ["id"]}
    assert findings(pg, "ledger", wanted, discovered) == [
        Finding(FindingType.FIELD_NOT_FOUND, "ledger", "public.orders", "color"),
        Finding(FindingType.TABLE_NOT_FOUND, "ledger", "ghosts"),
    ]


def test_oracle_folds_unquoted_fields_and_documents_allow_paths() -> None:
    oracle = connection(Engine.ORACLE)
    assert findings(oracle, "o", {"orders": ["id", '"id"']}, [table("ORDERS", "ID")]) == [
        Finding(FindingType.FIELD_NOT_FOUND, "o", "orders", '"id"')
    ]
    mongo = connection(Engine.MONGODB)
    assert findings(mongo, "m", {"events": ["address.city", "ghost.x"]}, [table("events", "_id", "address")]) == [
        Finding(FindingType.FIELD_NOT_FOUND, "m", "events", "ghost.x")
    ]


def test_a_finding_is_lerians_schema_validation_error() -> None:
    assert Finding(FindingType.DATA_SOURCE_DOWN, "s").to_json() == {"type": "DATA_SOURCE_DOWN", "dataSourceId": "s"}
    assert Finding(FindingType.FIELD_NOT_FOUND, "s", "t", "f").to_json() == {
        "type": "FIELD_NOT_FOUND",
        "dataSourceId": "s",
        "table": "t",
        "field": "f",
    }
