"""Fixtures of the scale-out tests: the machine's real Redis under a key prefix of each test's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from tests.conftest import PG_ADMIN_URL
from tests.support.servers import require_server

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = os.environ.get("CONNHUB_TEST_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/0")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test (or parallel run) uses; its keys are deleted afterwards."""
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    prefix = f"connhub-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def target_database() -> Iterator[str]:
    """A database on the machine's PostgreSQL with one table, `before`; dropped afterwards."""
    name = f"connhub_target_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    execute_in(name, "CREATE TABLE before (id int)")
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def execute_in(database: str, sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}", autocommit=True) as conn:
        conn.execute(sql.encode())
