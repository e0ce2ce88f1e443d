"""The HTTP/1.1 protocol `connhub serve` runs: uvicorn's httptools protocol, with the bounds on
requests that uvicorn leaves out.

- Head size: a head (request line and headers) over MAX_HEAD_BYTES is refused with 431. httptools
  buffers a header until it ends, whatever its size: a single 32 MiB header was read into memory,
  and answered.
- Head time: a head not complete HEAD_TIMEOUT_S after its first byte (or after the connection
  opened) is refused with 408. uvicorn times out idle keep-alive connections only, so a client
  trickling a header a byte at a time (slowloris) held its socket, and a file descriptor, for ever.
- Request time: a whole request, head and body, must arrive within CONNHUB_REQUEST_TIMEOUT_S of
  its first byte; past it, 408 (or, if the app has begun answering, just the close). A body sent a
  byte every few seconds kept 100 connections open for minutes.
- A request answered before its body has all arrived (401 without a token, 413, any early
  refusal) is not waited for: once the answer is written the server ends its side (FIN), reads
  and drops what still comes for at most LINGER_S (closing at once would reset the connection
  and could destroy the answer before the client read it), then closes.

Refusals answer in the JSON error shape and end the connection the same way. Bodies also have a size limit
(`BodyLimit`), once the head is read.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from connhub.api.errors import HTTP_CODES

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0
LINGER_S = 2.0
_END_OF_HEAD = b"\r\n\r\n"
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@functools.cache
def request_timeout_s() -> float:
    """CONNHUB_REQUEST_TIMEOUT_S, read once per process (workers get it from the environment)."""
    from connhub.config import Settings

    return Settings().request_timeout_s


class BoundedHeadProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between the end of one message and the end of the next one's headers
        self._in_body = False  # between the end of the headers and the end of the message
        self._head_bytes = 0
        self._tail = b""  # the last bytes seen, for an end of head split across two reads
        self._head_deadline: asyncio.TimerHandle | None = None
        self._request_deadline: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None  # answered early: dropping the rest

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self._disarm_request_deadline()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return  # the rest of a body already answered: dropped unread
        if self._request_deadline is None and data:  # the first byte of a request
            self._request_deadline = self.loop.call_later(request_timeout_s(), self._request_too_slow)
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
        self._in_head, self._in_body = False, True
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._in_body, self._head_bytes, self._tail = True, False, 0, b""
        self._disarm_request_deadline()

    # The app's answer is complete (uvicorn's callback)

    def on_response_complete(self) -> None:
        answered_early = self._in_body and not self.transport.is_closing()
        super().on_response_complete()
        if answered_early:
            # Answered before the body arrived (a 401, a 413): do not wait for the rest of it.
            self._disarm_request_deadline()
            self._end_after_answer()

    def _end_after_answer(self) -> None:
        """End our side now (FIN after the answer), drop whatever still arrives, close after
        LINGER_S: closing at once, with the client's bytes still coming, would reset the
        connection, and a reset can destroy the answer before the client reads it."""
        if self._lingering is not None or self.transport.is_closing():
            return
        self._lingering = self.loop.call_later(LINGER_S, self.transport.close)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()

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

    def _disarm_request_deadline(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _request_too_slow(self) -> None:
        self._request_deadline = None
        if not (self._in_body or (self._in_head and self._head_bytes)):
            return  # between requests: the keep-alive and head timeouts apply
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # the app has begun its answer: a 408 cannot be put in front of it
            return
        self._refuse(408, f"the whole request must arrive within {request_timeout_s():g} s (CONNHUB_REQUEST_TIMEOUT_S)")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm_head_deadline()
        self._disarm_request_deadline()
        if self.transport.is_closing():
            return
        code, title = HTTP_CODES[status]
        body = orjson.dumps({"code": code, "title": title, "message": message})
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(head % (status, _REASONS[status], len(body)) + body)
        self._end_after_answer()
