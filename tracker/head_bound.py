"""A request's whole head bounded, not only each of its lines.

aiohttp bounds the request line (8,190 bytes), each header (max_field_size) and how many there
are (max_headers), but not their sum: within those bounds a head may still be 8 KiB of request
line and 32 headers of 4 KiB, 136 KiB, and reading and parsing a head costs ~1 us a KiB here
(docs/benchmarks.md, "Hostile requests"). Such a head alone cost four typical pixels, and with a
new TC string, user agent and referer in it nine.

HeadBound stands between a connection and the aiohttp protocol that serves it, and counts the
bytes received since the last end of a head (the blank line, CRLF CRLF, found in C). Once more
than MAX_HEAD_BYTES arrive without one, it answers 431 and closes the connection, before aiohttp
has parsed any of it. The count never falls short of the head being received: every byte after
the last end of a head is counted, whether it belongs to that head, to a body or to a request
pipelined behind it. The tracker's routes take no body, so a body counts against the bound too.

20 KiB is what CloudFront takes for a request's URL and headers together (Node.js takes 16 KiB):
a browser's image request with its cookies, a TC string of several KiB and a 4 KiB referer fit
with room to spare; the longest request line (8 KiB) and three 4 KiB headers fit as well.
"""

from __future__ import annotations

import asyncio
from typing import cast

MAX_HEAD_BYTES = 20 * 1024
_END_OF_HEAD = b"\r\n\r\n"
_CARRIED = len(_END_OF_HEAD) - 1  # an end of a head split between two reads
_REFUSAL_TEXT = b"request head too large\n"
REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n\r\n%s" % (len(_REFUSAL_TEXT), _REFUSAL_TEXT)
)


class HeadBound(asyncio.Protocol):
    """`inner` (aiohttp's protocol for one connection) behind a bound on every head's size."""

    __slots__ = ("_carry", "_inner", "_limit", "_transport", "_unended", "refused")

    def __init__(self, inner: asyncio.Protocol, limit: int = MAX_HEAD_BYTES) -> None:
        self._inner = inner
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._unended = 0  # bytes received since the last end of a head
        self._carry = b""  # the last read's last bytes, when it did not end a head
        self.refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but write like one.
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._unended + len(data) > self._limit:  # a head in this read may be too long
            if self.refused:
                return
            if not self._within_bound(data):
                self._refuse()
                return
        elif data.endswith(_END_OF_HEAD):  # most reads: one whole request
            self._unended = 0
            self._carry = b""
        else:
            self._advance(data)
        self._inner.data_received(data)

    def _advance(self, data: bytes) -> None:
        """The count after `data`, a read that does not end a head."""
        end = data.rfind(_END_OF_HEAD)
        if end >= 0:
            self._unended = len(data) - end - len(_END_OF_HEAD)
        else:
            # An end of a head may start in the last read and end in this one.
            joined = self._carry + data[:_CARRIED]
            end = joined.find(_END_OF_HEAD)
            if end >= 0:
                self._unended = len(data) - (end + len(_END_OF_HEAD) - len(self._carry))
            else:
                self._unended += len(data)
        self._carry = _last_bytes(self._carry, data)

    def _within_bound(self, data: bytes) -> bool:
        """Whether every head in `data` (the first one begun in earlier reads) is within the
        bound; the count after it as _advance keeps it. Only for a read that may hold a head too
        long: the first end of a head is found in C, and the read is split at the others only
        when the head before them was within the bound."""
        carry = self._carry
        joined = carry + data if carry else data
        end = joined.find(_END_OF_HEAD)
        self._carry = _last_bytes(carry, data)
        if end < 0:
            self._unended += len(data)
            return self._unended <= self._limit
        # The carried bytes were counted already, unless they end the head before.
        if self._unended - len(carry) + end > self._limit:
            return False
        heads = joined[end + len(_END_OF_HEAD) :].split(_END_OF_HEAD)
        self._unended = len(heads[-1])
        return max(map(len, heads)) <= self._limit

    def _refuse(self) -> None:
        self.refused = True
        self._unended = self._limit + 1  # every later read comes to the refused test
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(REFUSAL)
            transport.close()  # aiohttp's protocol hears of it in connection_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _last_bytes(carry: bytes, data: bytes) -> bytes:
    """The stream's last _CARRIED bytes after `data` (a read may be shorter than that)."""
    return data[-_CARRIED:] if len(data) >= _CARRIED else (carry + data)[-_CARRIED:]
