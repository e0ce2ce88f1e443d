"""Where a store keeps its data for one run.

SQLite is the default store in a temporary directory. PostgreSQL is a database this benchmark
creates on the machine's server, migrates with `connhub migrate`, and drops (WITH FORCE) on exit.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from bench.server import connhub_command

_databases: dict[str, str] = {}  # database name -> admin URL, while they exist


def sqlite_path(data_dir: Path) -> Path:
    """Where `connhub serve` keeps its default SQLite store when started in `data_dir`."""
    return data_dir / ".connhub" / "connhub.db"


# -- PostgreSQL database for one run ----------------------------------------------------------


@contextmanager
def postgres_database(admin_url: str, env: Mapping[str, str]) -> Iterator[str]:
    """A fresh, migrated database on the server at `admin_url`; dropped on exit. Yields its URL."""
    name = f"connhub_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _databases[name] = admin_url
    try:
        url = _as_url(admin_url, name)
        subprocess.run(
            [*connhub_command(), "migrate"],
            env=dict(env) | {"CONNHUB_DATABASE_URL": url},
            capture_output=True,
            timeout=120,
            check=True,
        )
        yield url
    finally:
        drop_database(name)


def _as_url(admin_url: str, name: str) -> str:
    """`admin_url` (a postgresql:// URL) pointing at database `name`."""
    base, _, query = admin_url.partition("?")
    root = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{root}/{name}" + (f"?{query}" if query else "")


def drop_database(name: str) -> None:
    admin_url = _databases.pop(name, None)
    if admin_url is None:
        return
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_all_databases() -> None:
    for name in list(_databases):
        drop_database(name)


def postmaster_pid(admin_url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (its CPU is the store's)."""
    with psycopg.connect(admin_url, connect_timeout=5) as admin:
        row = admin.execute("SELECT pg_backend_pid()").fetchone()
    try:
        stat = Path(f"/proc/{row[0] if row else 0}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def analyze(url: str) -> str:
    """ANALYZE the benchmark's database, as autovacuum would after a fill; its `autovacuum` setting."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        connection.execute("ANALYZE")
        row = connection.execute("SHOW autovacuum").fetchone()
    return str(row[0]) if row else "unknown"


def postgres_reachable(admin_url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        with psycopg.connect(admin_url, connect_timeout=3) as admin:
            admin.execute("SELECT 1")
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]
    return None
