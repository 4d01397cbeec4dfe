"""Fixed answers serialized once and written in one call.

aiohttp spends more CPU building, checking and serializing a Response's headers than the
tracker spends on the rest of a pixel request (measured: ~30 us of ~80 per request on a slow
2-core machine). A pixel's answer never changes apart from its Date header, so for the common
case (GET over a keep-alive HTTP/1.1 connection) the whole answer is serialized once per second
and written to the transport as one buffer. Every other case (HEAD, HTTP/1.0, Connection: close)
gets a regular aiohttp Response with the same status, headers and body, so that aiohttp keeps
deciding the connection handling it knows best.

A TemplatedAnswer is the same with one per-request part inside one header value (a click's
redirect that carries its click id): the bytes before that part and after it are serialized
once (the latter once per second, with the Date), and a request costs their concatenation.
"""

from __future__ import annotations

import re
from email.utils import formatdate
from time import time

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from multidict import CIMultiDict

# What aiohttp refuses in a header (it checks each Response; this checks once, at construction).
_FORBIDDEN_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Where a TemplatedAnswer's per-request part goes: a private-use character, which no value
# checked by tracker.programs.model.is_redirect_url holds (it is not printable).
SLOT = "\ue000"
_SLOT_BYTES = SLOT.encode()
# The per-request part, from the handler to the shared answer's prepare().
_PART: web.RequestKey[str] = web.RequestKey("templated_answer_part", str)


class FixedAnswer:
    """One status, header set and body, answered to any number of requests."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.status = status
        self.headers = CIMultiDict(headers)
        self.body = body
        self._wire = _PreSerialized(status, headers, body)

    def respond(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.version == HttpVersion11 and request.method == "GET" and request.keep_alive:
            return self._wire
        return web.Response(status=self.status, headers=self.headers, body=self.body)


class TemplatedAnswer:
    """One status, header set and body, but for one header value that holds SLOT once: each
    request fills it in with its own part (ASCII letters and digits: the caller's own ids,
    written as they are)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        slots = [name for name, value in headers.items() if SLOT in value]
        if len(slots) != 1 or headers[slots[0]].count(SLOT) != 1:
            raise ValueError("exactly one header value must hold the slot, once")
        self.status = status
        self.headers = headers
        self.body = body
        self._slotted = slots[0]
        self._wire = _PreSerializedTemplate(status, headers, body)

    def filled(self, part: str) -> dict[str, str]:
        """The headers of the answer with `part` in its slot."""
        headers = dict(self.headers)
        headers[self._slotted] = headers[self._slotted].replace(SLOT, part)
        return headers

    def respond(self, request: web.BaseRequest, part: str) -> web.StreamResponse:
        if request.version == HttpVersion11 and request.method == "GET" and request.keep_alive:
            request[_PART] = part
            return self._wire
        return web.Response(status=self.status, headers=self.filled(part), body=self.body)


class _PreSerialized(web.StreamResponse):
    """The answer as bytes, shared by every request that can take it: it holds no per-request
    state, so aiohttp reads only `keep_alive` from it after `prepare` and `write_eof`."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(status=status)
        self._keep_alive = True
        for name, value in headers.items():
            if _FORBIDDEN_IN_HEADER.search(name + value):
                raise ValueError(f"header {name!r} holds a control character")
        head = [f"HTTP/1.1 {status} {self.reason}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"Content-Length: {len(body)}", "Date: "]
        # utf-8, as aiohttp encodes headers.
        self._before_date = "\r\n".join(head).encode()
        self._after_date = f"\r\nServer: {SERVER_SOFTWARE}\r\n\r\n".encode() + body
        self._second = -1
        self._bytes = b""

    def _serialized(self) -> bytes:
        second = int(time())
        if second != self._second:
            date = formatdate(second, usegmt=True).encode("latin-1")
            self._bytes = self._before_date + date + self._after_date
            self._second = second
        return self._bytes

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        transport = request.transport
        if transport is None or transport.is_closing():
            # aiohttp treats this as the client having gone away, as its own writer does.
            raise ConnectionResetError("the client closed the connection")
        transport.write(self._serialized())
        writer = request.writer
        await writer.drain()  # waits only when the client is not reading its answers
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        return None  # everything was written by prepare


class _PreSerializedTemplate(_PreSerialized):
    """The same, in two pieces around the slot: `_serialized` is what follows the slot, and the
    request's own part (set by TemplatedAnswer.respond) goes between."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(status, headers, body)
        self._before_slot, _, self._before_date = self._before_date.partition(_SLOT_BYTES)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(self._before_slot + request[_PART].encode() + self._serialized())
        writer = request.writer
        await writer.drain()
        return writer
