"""Store URLs: the one place that knows which driver serves which URL (and makes a SQLite file private).

Apart from `store/migrate.py` so that the serving path (the repository, the revision check) imports
what it needs of a URL and nothing of migrations.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

_POSTGRESQL = ("postgresql", "postgres")  # the backend names a PostgreSQL URL may have


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() in _POSTGRESQL


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a user's URL: a plain postgresql:// means psycopg 3."""
    return _with_driver(url, sqlite="sqlite+aiosqlite", postgresql="postgresql+psycopg")


def sync_url(url: str) -> str:
    return _with_driver(url, sqlite="sqlite", postgresql="postgresql+psycopg")


def _with_driver(url: str, *, sqlite: str, postgresql: str) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _ensure_sqlite_dir(parsed.database)
        return parsed.set(drivername=sqlite).render_as_string(hide_password=False)
    if backend in _POSTGRESQL:
        return parsed.set(drivername=postgresql).render_as_string(hide_password=False)
    raise ValueError("the store must be sqlite:/// or postgresql://")


def _ensure_sqlite_dir(database: str | None) -> None:
    """The SQLite file, created private as the development key file is: a directory made for it is
    0700, a new database file 0600 (SQLite gives its -wal and -shm files the database's mode).
    Existing directories and files keep their modes: the directory may be the user's own."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
