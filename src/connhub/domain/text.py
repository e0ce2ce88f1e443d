"""Rules for text that every part of the domain applies the same way."""

from __future__ import annotations

import re

# C0 and C1 control characters: no name, host or filter holds one, and PostgreSQL refuses a NUL
# in any text or JSON value (a query with one fails instead of matching nothing).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_characters(text: str) -> bool:
    return CONTROL.search(text) is not None


def has_nul(text: str) -> bool:
    return "\x00" in text
