"""Rules for single field values that every part of a connection shares (the database's fields and
its SSH tunnel's alike): bounded texts and host names."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from connhub.domain.text import CONTROL

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def is_valid_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    return 0 < len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split("."))


def bounded_text(
    name: str, value: Any, limit: int, errors: dict[str, str], *, required: bool, secret: bool = False
) -> str | None:
    if value is None:
        if required:
            errors[name] = f"required: 1-{limit} characters"
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        errors[name] = f"must be a string of 1-{limit} characters"
        return None
    # Control characters break drivers' connection parameters; a secret's reason never quotes it.
    if not secret and CONTROL.search(value):
        errors[name] = "must not contain control characters"
    return value
