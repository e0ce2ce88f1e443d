"""Wire formats both dialects write the same way: pure functions, no framework."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connhub.domain.reports import Table


def rfc3339(moment: datetime) -> str:
    """UTC with a `Z`, millisecond precision."""
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def tables_json(tables: list[Table]) -> list[dict[str, Any]]:
    """Discovered tables as every answer lists them."""
    return [table.to_json() for table in tables]
