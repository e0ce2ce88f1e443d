"""`connhub conn ...`: a command-line client of the Reporter dialect."""

from __future__ import annotations

from typing import Any


def add_client_commands(commands: Any) -> None:
    return None
