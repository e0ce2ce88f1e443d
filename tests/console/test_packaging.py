"""A non-editable install ships every console file: each one is matched by pyproject's package-data."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

from connhub.api.console import STATIC

ROOT = Path(__file__).resolve().parents[2]


def test_every_console_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["connhub"]
    package = STATIC.parents[1]  # src/connhub
    files = [path.relative_to(package).as_posix() for path in STATIC.rglob("*") if path.is_file()]
    assert "console/static/index.html" in files
    # fnmatch's * also crosses "/", setuptools' does not: compare directory depth too.
    missed = [
        name
        for name in files
        if not any(fnmatch(name, pattern) and name.count("/") == pattern.count("/") for pattern in patterns)
    ]
    assert missed == []
