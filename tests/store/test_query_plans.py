"""The hot queries use their index on PostgreSQL whether or not the planner has statistics.

This machine's PostgreSQL runs with autovacuum off, as a fresh restore or a bulk load would look:
the rows below are written after `migrate` analyzed the empty tables, so the planner only knows
the table's size, not its contents. EXPLAIN shows the plan it picks then.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.dialects import postgresql

from connhub.domain.listing import ListQuery
from connhub.store import listing, repository
from connhub.store.migrate import migrate
from connhub.store.tables import connections
from tests.conftest import PG_ADMIN_URL
from tests.support.servers import require_server

ROWS_PER_TENANT = 4000


@pytest.fixture(scope="module")
def unanalyzed_store() -> Iterator[psycopg.Connection[Any]]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"connhub_plans_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            for tenant in ("acme", "globex"):
                conn.execute(
                    """
                    INSERT INTO connections (id, tenant, config_name, name_key, engine, host, port,
                        database_name, user_name, created_at, updated_at, version)
                    SELECT gen_random_uuid(), %(tenant)s, 'conn-' || n, 'conn-' || n, 'POSTGRESQL',
                        'db.example.com', 5432, 'app', 'u', now() - n * interval '1 second', now(), 1
                    FROM generate_series(1, %(rows)s) AS n
                    """,
                    {"tenant": tenant, "rows": ROWS_PER_TENANT},
                )
            yield conn
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def plan(conn: psycopg.Connection[Any], statement: Any) -> str:
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}"))


def generic_plan(conn: psycopg.Connection[Any], statement: Any, literals: dict[str, str]) -> str:
    """The plan of `statement` as `DriverReads` runs it: prepared, here forced to its generic plan
    (the one PostgreSQL settles on once a statement has run a few times), which knows no value."""
    sql = str(statement.compile(dialect=postgresql.psycopg.dialect()))  # type: ignore[no-untyped-call]
    for position, name in enumerate(literals, start=1):
        sql = sql.replace(f"%({name})s", f"${position}")
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute(f"PREPARE hot_read AS {sql}")
    try:
        return "\n".join(row[0] for row in conn.execute(f"EXPLAIN EXECUTE hot_read({', '.join(literals.values())})"))
    finally:
        conn.execute("DEALLOCATE hot_read")
        conn.execute("RESET plan_cache_mode")


def some_row(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, int]:
    found = conn.execute("SELECT id, number FROM connections WHERE tenant = 'acme' LIMIT 1").fetchone()
    assert found is not None
    return found[0], found[1]


def test_the_store_has_no_statistics_of_its_rows(unanalyzed_store: psycopg.Connection[Any]) -> None:
    stats = unanalyzed_store.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'connections'").fetchone()
    assert stats is not None and stats[0] == 0


def test_get_by_id_uses_the_id_index(unanalyzed_store: psycopg.Connection[Any]) -> None:
    connection_id, _ = some_row(unanalyzed_store)
    statement = repository._BY_IDS.params(keys=[connection_id])
    found = plan(unanalyzed_store, statement)
    assert "connections_id_key" in found and "Seq Scan" not in found, found


@pytest.mark.parametrize(("key", "index"), [("id", "connections_id_key"), ("number", "connections_pkey")])
def test_a_batch_of_gets_by_an_array_uses_the_key_index(
    unanalyzed_store: psycopg.Connection[Any], key: str, index: str
) -> None:
    connection_id, number = some_row(unanalyzed_store)
    keys = f"ARRAY['{connection_id}']::uuid[]" if key == "id" else f"ARRAY[{number}]::bigint[]"
    found = generic_plan(unanalyzed_store, repository._BY_KEY_ARRAY[key], {"keys": keys})
    assert index in found and "Seq Scan" not in found, found


def test_get_by_number_uses_the_primary_key(unanalyzed_store: psycopg.Connection[Any]) -> None:
    _, number = some_row(unanalyzed_store)
    found = plan(unanalyzed_store, repository._BY_NUMBERS.params(keys=[number]))
    assert "connections_pkey" in found and "Seq Scan" not in found, found


def test_get_by_name_uses_the_unique_name_index(unanalyzed_store: psycopg.Connection[Any]) -> None:
    found = plan(unanalyzed_store, repository._live("acme").where(connections.c.name_key == "conn-17"))
    assert "uq_connections_live_name" in found and "Seq Scan" not in found, found


@pytest.mark.parametrize("sort_by", ["createdAt", "configName"])
def test_a_first_page_reads_an_index_in_order(unanalyzed_store: psycopg.Connection[Any], sort_by: str) -> None:
    query = ListQuery(sort_by=sort_by)  # type: ignore[arg-type]
    shape, params = listing.list_binds("acme", query)
    found = plan(unanalyzed_store, listing.stamps_statement(shape, counting=False).params(**params))
    assert "Seq Scan" not in found and "Sort" not in found.split("->")[0], found


@pytest.mark.parametrize("sort_by", ["createdAt", "configName"])
def test_a_first_page_as_prepared_reads_an_index_in_order(
    unanalyzed_store: psycopg.Connection[Any], sort_by: str
) -> None:
    query = ListQuery(sort_by=sort_by)  # type: ignore[arg-type]
    shape, _ = listing.list_binds("acme", query)
    statement = listing.stamps_statement(shape, counting=False)
    found = generic_plan(unanalyzed_store, statement, {"tenant": "'acme'", "row_limit": "51", "row_offset": "0"})
    assert "Seq Scan" not in found and "Sort" not in found.split("->")[0], found
