"""`connhub serve` and `connhub migrate` as processes, in the ways several of them meet."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from connhub.secrets import new_key_entry
from connhub.store.migrate import migrate
from connhub.store.revision import HEAD
from tests.conftest import PG_ADMIN_URL
from tests.scaleout.conftest import REDIS_URL
from tests.support.reliability import connhub_serve, run_cli
from tests.support.servers import require_server


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database on the machine's PostgreSQL (not migrated), dropped afterwards."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"connhub_fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def test_three_migrates_at_once_all_succeed(fresh_database: str, tmp_path: Path) -> None:
    env = {"CONNHUB_DATABASE_URL": fresh_database}
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "connhub.cli", "migrate"],
            env={**_clean_env(), **env},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [(racer.wait(timeout=120), racer.stderr.read() if racer.stderr else "") for racer in racers]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_several_workers_need_redis(tmp_path: Path) -> None:
    done = run_cli("serve", "--workers", "2", env={}, cwd=tmp_path)
    assert done.returncode == 2
    assert "CONNHUB_REDIS_URL" in done.stderr


def test_a_postgresql_store_never_gets_a_generated_key(fresh_database: str, tmp_path: Path) -> None:
    migrate(fresh_database)
    done = run_cli("serve", env={"CONNHUB_DATABASE_URL": fresh_database}, cwd=tmp_path)
    assert done.returncode == 2
    assert "CONNHUB_ENCRYPTION_KEYS" in done.stderr
    assert not (tmp_path / ".connhub" / "keys").exists()


def test_metrics_sum_every_worker_and_never_go_back(tmp_path: Path, redis_prefix: str) -> None:
    env = {
        "CONNHUB_ENCRYPTION_KEYS": new_key_entry("m1"),
        "CONNHUB_REDIS_URL": REDIS_URL,
        "CONNHUB_REDIS_PREFIX": redis_prefix,
    }
    with connhub_serve(tmp_path, env, args=["--workers", "2"]) as server:
        seen = []
        for _ in range(12):
            for _ in range(5):  # a new connection each: the kernel spreads them over the workers
                assert httpx.get(f"{server.base_url}/health").status_code == 200
            seen.append(_health_count(httpx.get(f"{server.base_url}/metrics").text))
    assert seen == sorted(seen), seen
    assert seen[-1] >= 60


def test_forwarded_headers_are_trusted_only_from_the_named_proxies(tmp_path: Path) -> None:
    base = {"CONNHUB_ENCRYPTION_KEYS": new_key_entry("f1")}
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with connhub_serve(tmp_path / "trusting", {**base, "CONNHUB_FORWARDED_ALLOW_IPS": "127.0.0.1"}) as server:
        behind_tls = httpx.post(f"{server.base_url}/v1/management/connections/", json={}, headers=forwarded)
    with connhub_serve(tmp_path / "plain", base) as server:
        untrusted = httpx.post(f"{server.base_url}/v1/management/connections/", json={}, headers=forwarded)
    assert behind_tls.status_code == 307
    assert behind_tls.headers["location"].startswith("https://")
    assert untrusted.status_code == 307
    assert untrusted.headers["location"].startswith("http://")


def _health_count(text: str) -> float:
    pattern = r'^connhub_http_requests_total\{[^}]*route="/health"[^}]*status="200"[^}]*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def _clean_env() -> dict[str, str]:
    import os

    return {name: value for name, value in os.environ.items() if not name.startswith("CONNHUB_")}
