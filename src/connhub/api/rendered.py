"""Each connection's list answer, rendered once per version: what makes a long list cheap.

A list reads its rows' stamps first (`ConnectionService.list_connections`); a row whose current
version was rendered before is answered from the bytes kept here, without being read or decoded
again (a 2,000-row Chartbrew list cost ~70 µs a row that way: the store's row processing,
`_to_connection` and the render, a third each). Every change of a connection bumps its version,
so a copy is never stale; each replica keeps its own. Knows no dialect: each passes its render.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from fastapi import Request
from starlette.responses import Response

from connhub.domain.connection import Connection, Stamp

# Rows kept per render (least recently listed dropped first): ~1 KB each, so ~10 MB at most.
MAX_ROWS = 10_000

Render = Callable[[Connection], Mapping[str, Any]]


class Rendered(NamedTuple):
    """One version of one connection as a dialect answers it in lists (and a `Versioned`)."""

    id: UUID
    number: int
    version: int
    open: bytes  # the rendered object as JSON without its closing brace: fields are spliced in there

    @property
    def json(self) -> bytes:
        return self.open + b"}"


class RenderedRows:
    """The rendered rows of one render function (a `service.RowCache`)."""

    keeps_copies = True

    def __init__(self, render: Render, max_rows: int = MAX_ROWS) -> None:
        self._render = render
        self._max_rows = max_rows
        # By (number, version): a store's numbers are unique, and ints hash faster than UUIDs.
        self._rows: OrderedDict[tuple[int, int], Rendered] = OrderedDict()

    def held_all(self, stamps: Sequence[Stamp]) -> list[Rendered | None]:
        rows, touch = self._rows, self._rows.move_to_end
        found: list[Rendered | None] = []
        for stamp in stamps:  # once per row of every list: kept lean
            key = (stamp.number, stamp.version)
            row = rows.get(key)
            if row is not None:
                touch(key)
            found.append(row)
        return found

    def keep(self, connection: Connection) -> Rendered:
        rendered = Rendered(
            connection.id, connection.number, connection.version, orjson.dumps(self._render(connection))[:-1]
        )
        self._rows[(connection.number, connection.version)] = rendered
        if len(self._rows) > self._max_rows:
            self._rows.popitem(last=False)
        return rendered

    def __len__(self) -> int:
        return len(self._rows)


class RenderedRowCaches:
    """One `RenderedRows` per render function, for one app (so two apps in a process share none)."""

    def __init__(self) -> None:
        self._by_render: dict[Render, RenderedRows] = {}

    def of(self, render: Render) -> RenderedRows:
        found = self._by_render.get(render)
        if found is None:
            found = self._by_render[render] = RenderedRows(render)
        return found


def rows_of(render: Render) -> Callable[[Request], Any]:
    """A route dependency: this app's rendered rows of `render`."""

    async def dependency(request: Request) -> RenderedRows:
        caches: RenderedRowCaches = request.app.state.rendered_rows
        return caches.of(render)

    return dependency


def json_array_with_fields(rows: Iterable[tuple[Rendered, bytes]]) -> bytes:
    """`[row + its tail, ...]`: each rendered object with its `tail` added before its `}`, in one
    join (a 2,000-row list copied each row twice when spliced row by row)."""
    parts = [b"["]
    for rendered, tail in rows:
        parts += (rendered.open, tail, b"},")
    if len(parts) > 1:
        parts[-1] = b"}"
    parts.append(b"]")
    return b"".join(parts)


def json_object_with(name: str, array: bytes, fields: Mapping[str, Any]) -> bytes:
    """`{"<name>": <array>, **fields}` as JSON (`array` already is)."""
    rest = orjson.dumps(fields)
    head = orjson.dumps(name) + b":" + array
    return b"{" + head + (b"," + rest[1:] if len(rest) > 2 else b"}")


class RawJson(Response):
    """An answer whose body is already JSON bytes."""

    media_type = "application/json"
