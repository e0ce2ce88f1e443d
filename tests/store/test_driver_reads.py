"""On PostgreSQL the hottest reads go through `store/driver_reads.py` (psycopg's own pool), not
SQLAlchemy's engine: this pins that both ways read the same connection and the same list page,
field for field (the copy of SQLAlchemy's row mapping kept on purpose: `_stored_connection`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connhub.domain.listing import ListQuery, parse_list_query
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, new_key_entry
from connhub.service import ConnectionService
from connhub.store.repository import ConnectionRepository, create_store_engine
from tests.store.test_stored_fields import BODY


@pytest.fixture
async def both(pg_store_url: str) -> AsyncIterator[tuple[ConnectionRepository, ConnectionRepository]]:
    through_driver = ConnectionRepository.open(pg_store_url)
    through_engine = ConnectionRepository(create_store_engine(pg_store_url))
    yield through_driver, through_engine
    await through_driver.close()
    await through_engine.close()


async def test_a_connection_reads_the_same_both_ways(
    both: tuple[ConnectionRepository, ConnectionRepository],
) -> None:
    through_driver, through_engine = both
    service = ConnectionService(through_driver, KeyRing.parse(new_key_entry("d1")), ProbeRunner(ProbePolicy()))
    created = await service.create("t-driver", {**BODY, "configName": "both-ways"}, "reports")
    by_driver = await through_driver.get("t-driver", created.id)
    assert by_driver == await through_engine.get("t-driver", created.id) == created
    assert await through_driver.get_by_number("t-driver", created.number) == by_driver
    assert await through_driver.get_many("t-driver", [created.number]) == [by_driver]
    assert by_driver.created_at.tzinfo is not None and by_driver.metadata == {"team": "data"}


async def test_a_list_page_reads_the_same_both_ways(
    both: tuple[ConnectionRepository, ConnectionRepository],
) -> None:
    through_driver, through_engine = both
    service = ConnectionService(through_driver, KeyRing.parse(new_key_entry("d2")), ProbeRunner(ProbePolicy()))
    for n in range(5):
        await service.create("t-pages", {**BODY, "configName": f"page-{n}", "metadata": {"n": str(n % 2)}}, None)
    queries = [
        ListQuery(limit=2),
        ListQuery(limit=2, sort_by="configName", sort_order="asc"),
        parse_list_query({"limit": "10", "configName": "PAGE-"}, {"n": "1"}, None),
    ]
    for query in queries:
        first = await through_driver.list_stamps("t-pages", query)
        assert first == await through_engine.list_stamps("t-pages", query)
        if first.next_cursor:
            params = {"limit": "2", "sortBy": query.sort_by, "sortOrder": query.sort_order, "cursor": first.next_cursor}
            after = parse_list_query(params, {}, None)
            next_page = await through_driver.list_stamps("t-pages", after)
            assert next_page.items and next_page == await through_engine.list_stamps("t-pages", after)
