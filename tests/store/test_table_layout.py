"""The migrated tables have their columns in the order `store/tables.py` declares them.

Some statements read `RETURNING stored.*` and map the columns by position (store/group_update.py):
a column a migration appends must be declared last in tables.py too.
"""

from __future__ import annotations

import psycopg

from connhub.store.tables import connections


def test_the_migrated_connections_table_has_the_declared_column_order(pg_store_url: str) -> None:
    with psycopg.connect(pg_store_url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'connections' "
            "ORDER BY ordinal_position"
        ).fetchall()
    assert [row[0] for row in rows] == [column.name for column in connections.c]
