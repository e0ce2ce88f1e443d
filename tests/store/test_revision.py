"""The schema revision the serving process expects is Alembic's head (one fact, checked here)."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from connhub.store.migrate import alembic_config, migrate
from connhub.store.revision import HEAD, store_revision


def test_head_is_the_newest_migration(tmp_path: Path) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(f"sqlite:///{tmp_path / 'x.db'}"))
    assert scripts.get_current_head() == HEAD, "a new migration must move connhub.store.revision.HEAD"


def test_the_revision_of_a_store_before_and_after_migrating(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert store_revision(url) is None
    migrate(url)
    assert store_revision(url) == HEAD
