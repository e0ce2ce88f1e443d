"""The HTTP/1.1 protocol `connhub serve` runs: uvicorn's httptools protocol, with the two bounds on
request heads (request line and headers) that uvicorn leaves out.

- Size: a head over MAX_HEAD_BYTES is refused with 431. httptools buffers a header until it ends,
  whatever its size: a single 32 MiB header was read into memory, and answered.
- Time: a head not complete HEAD_TIMEOUT_S after its first byte (or after the connection opened)
  is refused with 408. uvicorn times out idle keep-alive connections only, so a client trickling a
  header a byte at a time (slowloris) held its socket, and a file descriptor, for ever.

Both answer in the JSON error shape and close the connection. Bodies have their own limit
(`BodyLimit`), once the head is read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from connhub.api.errors import HTTP_CODES

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0
_END_OF_HEAD = b"\r\n\r\n"
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class BoundedHeadProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between the end of one message and the end of the next one's headers
        self._head_bytes = 0
        self._tail = b""  # the last bytes seen, for an end of head split across two reads
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._arm_head_deadline()
            self._head_bytes += self._head_part(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"the request line and headers must be at most {MAX_HEAD_BYTES} bytes")
                return
        super().data_received(data)

    def _head_part(self, data: bytes) -> int:
        """How many bytes of `data` belong to the head being read (all of them if it does not end here)."""
        keep = len(_END_OF_HEAD) - 1
        tail, self._tail = self._tail, (self._tail + data[-keep:])[-keep:]
        across = (tail + data[:keep]).find(_END_OF_HEAD)  # an end split between two reads
        if across >= 0:
            return max(0, across + len(_END_OF_HEAD) - len(tail))
        within = data.find(_END_OF_HEAD)
        return len(data) if within < 0 else within + len(_END_OF_HEAD)

    # Parser callbacks (httptools looks them up on this object)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._tail = True, 0, b""

    # Bounds

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._in_head and (self.cycle is None or self.cycle.response_complete):
            self._refuse(408, f"the request line and headers must arrive within {HEAD_TIMEOUT_S:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm_head_deadline()
        if self.transport.is_closing():
            return
        code, title = HTTP_CODES[status]
        body = orjson.dumps({"code": code, "title": title, "message": message})
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(head % (status, _REASONS[status], len(body)) + body)
        self.transport.close()
