"""N `connhub serve` replicas on one PostgreSQL database and one Redis, behind HAProxy.

    with Cluster.started(tmp_path, replicas=3) as cluster:
        cluster.url                  # HAProxy's base URL (round-robin over the replicas)
        cluster.replicas[0].base_url # one replica directly
        cluster.restart(0, CONNHUB_ENCRYPTION_KEYS=...)   # a rolling restart step

The database is fresh and migrated by three `connhub migrate` at once (as replicas that all migrate
on start would); the Redis keys live under a prefix of this cluster's own, deleted at the end.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from connhub.secrets import new_key_entry
from tests.support.haproxy import haproxy
from tests.support.reliability import PG_ADMIN_URL, ConnhubProcess

REDIS_URL = os.environ.get("CONNHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Cluster:
    workdir: Path
    database_url: str
    env: dict[str, str]
    replicas: list[ConnhubProcess] = field(default_factory=list)
    url: str = ""
    migrate_exit_codes: list[int] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def started(cls, workdir: Path, replicas: int = 3, **settings: str) -> Iterator[Cluster]:
        prefix = f"connhub-cluster-{uuid.uuid4().hex[:12]}:"
        with _fresh_database() as database_url:
            env = {
                "CONNHUB_DATABASE_URL": database_url,
                "CONNHUB_ENCRYPTION_KEYS": new_key_entry("k1"),
                "CONNHUB_IDEMPOTENCY_KEY": base64.b64encode(os.urandom(32)).decode(),
                "CONNHUB_REDIS_URL": REDIS_URL,
                "CONNHUB_REDIS_PREFIX": prefix,
                "CONNHUB_FORWARDED_ALLOW_IPS": "127.0.0.1",
                "CONNHUB_STORE_POOL_SIZE": "5",
                **settings,
            }
            cluster = cls(workdir, database_url, env)
            cluster.migrate_exit_codes = cluster._migrate_three_at_once()
            cluster.replicas = [ConnhubProcess(workdir / f"replica-{n}", env) for n in range(replicas)]
            try:
                for replica in cluster.replicas:
                    replica.launch()  # from this thread, which outlives them
                with ThreadPoolExecutor(replicas) as waiting:
                    list(waiting.map(ConnhubProcess.wait_healthy, cluster.replicas))
                with haproxy(workdir / "haproxy", [replica.port for replica in cluster.replicas]) as url:
                    cluster.url = url
                    yield cluster
            finally:
                for replica in cluster.replicas:
                    replica.stop()
                _delete_keys(prefix)

    def _migrate_three_at_once(self) -> list[int]:
        command = [sys.executable, "-m", "connhub.cli", "migrate"]
        env = {**_without_connhub(os.environ), "CONNHUB_DATABASE_URL": self.database_url}
        racers = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(3)
        ]
        return [racer.wait(timeout=120) for racer in racers]

    def restart(self, index: int, **settings: str) -> None:
        """Stop replica `index` gracefully and start it again with `settings` changed (same port).

        From a thread that outlives the cluster (the event loop's default executor does)."""
        replica = self.replicas[index]
        replica.stop()
        replica.env.update(settings)
        replica.start()

    def set_everywhere(self, **settings: str) -> None:
        """A rolling restart: one replica after the other, the others serving meanwhile."""
        self.env.update(settings)
        for index in range(len(self.replicas)):
            self.restart(index, **settings)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "connhub.cli", *args],
            env={**_without_connhub(os.environ), **self.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@contextlib.contextmanager
def _fresh_database() -> Iterator[str]:
    name = f"connhub_cluster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def _delete_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    with contextlib.suppress(redis.RedisError):
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()


def _without_connhub(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if not name.startswith("CONNHUB_")}
