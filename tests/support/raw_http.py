"""HTTP/1.1 over a bare socket, for fuzzing the edge: requests are sent exactly as built (however
broken), and every answer is read back and parsed by hand, whatever state the connection is left in.

The reader is strict about what a server sends (a status line, header lines, a body framed by
Content-Length, chunked encoding or the end of the connection) and lenient about when: it stops at
the expected number of answers, when the server closes the connection, or when the server stays
silent for a while (a request that leaves it waiting for more bytes, as a broken one may).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from dataclasses import dataclass, field

_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?")
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # far above anything the tracker sends
MAX_LINE = 64 * 1024


class ProtocolError(AssertionError):
    """The server sent bytes that are not an HTTP/1.x response."""


@dataclass(frozen=True)
class RawResponse:
    version: tuple[int, int]
    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    # The answer to a HEAD carried a body anyway (aiohttp does so when its parser refuses the
    # request: the error text follows, and the connection closes).
    body_on_head: bool = False

    def header_values(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        return [value for key, value in self.headers if key.lower() == wanted]

    def describe(self) -> str:
        head = [f"HTTP/{self.version[0]}.{self.version[1]} {self.status} {self.reason!r}"]
        head += [f"{key.decode('latin-1')}: {value!r}" for key, value in self.headers]
        return "\n".join(head) + f"\n\n{self.body[:300]!r}"


@dataclass
class Exchange:
    """What came back on one connection."""

    responses: list[RawResponse] = field(default_factory=list)
    interim: list[RawResponse] = field(default_factory=list)  # 1xx answers
    closed: bool = False  # the server closed (or reset) the connection
    silent: bool = False  # the reader gave up waiting for more
    elapsed: float = 0.0


class _IncompleteError(Exception):
    """More bytes are needed to parse what has arrived so far."""


class _Reader:
    def __init__(self, sock: socket.socket, first_byte_timeout: float, idle_timeout: float) -> None:
        self._sock = sock
        self._first_byte_timeout = first_byte_timeout
        self._idle_timeout = idle_timeout
        self.buffer = b""
        self.closed = False
        self.silent = False

    def expect_little(self, timeout: float) -> None:
        """From now on, give up after `timeout` seconds of silence."""
        self._first_byte_timeout = self._idle_timeout = timeout

    def next_response(self, head: bool) -> RawResponse | None:
        """The next answer (1xx included); None when the connection ends or goes silent first."""
        for _ in range(MAX_ANSWER_BYTES):  # bounded: each pass receives bytes or returns
            try:
                response, self.buffer = _parse_response(self.buffer, head, eof=self.closed)
            except _IncompleteError:
                if self.closed or not self._receive():
                    return None
                continue
            return response
        raise ProtocolError("no answer after too many reads")

    def _receive(self) -> bool:
        """Read more; False when the server stayed silent (the connection may still be open)."""
        self._sock.settimeout(self._idle_timeout if self.buffer else self._first_byte_timeout)
        try:
            more = self._sock.recv(65536)
        except TimeoutError:
            self.silent = True
            return False
        except ConnectionResetError:
            more = b""
        if not more:
            self.closed = True
        self.buffer += more
        if len(self.buffer) > MAX_ANSWER_BYTES:
            raise ProtocolError(f"more than {MAX_ANSWER_BYTES} bytes of answers")
        return True


def exchange(
    port: int,
    payload: bytes,
    head_requests: list[bool],
    *,
    first_byte_timeout: float = 2.0,
    idle_timeout: float = 0.5,
    connect_timeout: float = 2.0,
    extra_wait: float = 0.0,
) -> Exchange:
    """Send `payload` on a new connection to 127.0.0.1:`port` and read the answers.

    `head_requests[i]` says whether the i-th request is a HEAD (its answer has no body whatever
    its Content-Length). Reading stops when the server closes the connection, after
    `idle_timeout` seconds of silence (`first_byte_timeout` before the first byte), or once
    every request is answered and `extra_wait` has passed without one more answer (to a
    request smuggled in a body: read as an answer to a GET).
    """
    started = time.monotonic()
    result = Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=connect_timeout) as sock:
        with contextlib.suppress(OSError):
            # The server may close early on a request it refuses, and read no further.
            sock.sendall(payload)
        reader = _Reader(sock, first_byte_timeout, idle_timeout)
        # One more than requested: an answer to a request smuggled inside another's body.
        for index in range(len(head_requests) + 1):
            head = index < len(head_requests) and head_requests[index]
            response = reader.next_response(head)
            while response is not None and 100 <= response.status < 200:
                result.interim.append(response)
                response = reader.next_response(head)
            if response is None:
                break
            result.responses.append(response)
            if index + 1 == len(head_requests):
                if not extra_wait:
                    break
                reader.expect_little(extra_wait)
        result.closed = reader.closed
        result.silent = reader.silent and len(result.responses) < len(head_requests)
    result.elapsed = time.monotonic() - started
    return result


def _parse_response(buffer: bytes, head: bool, *, eof: bool) -> tuple[RawResponse, bytes]:
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_LINE:
            raise ProtocolError(f"no end of the header section in {buffer[:200]!r}...")
        if eof and buffer:
            raise ProtocolError(f"connection closed in the middle of an answer: {buffer[:200]!r}")
        raise _IncompleteError
    lines = buffer[:end].split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise ProtocolError(f"not a status line: {lines[0][:200]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"not a header line: {line[:200]!r}")
        headers.append((name, value.strip(b" \t")))
    status = int(match.group(3))
    rest = buffer[end + 4 :]
    body_on_head = head and _body_follows(rest, headers)
    body, rest = _body(rest, headers, status, head and not body_on_head, eof)
    response = RawResponse(
        version=(int(match.group(1)), int(match.group(2))),
        status=status,
        reason=match.group(4) or b"",
        headers=tuple(headers),
        body=body,
        body_on_head=body_on_head,
    )
    return response, rest


def _body_follows(rest: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether an answer to a HEAD is followed by its body after all: what follows is not an
    answer's status line, and is exactly as long as its Content-Length."""
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) == 0:
        return False
    return len(rest) >= int(lengths[0]) and not rest.startswith(b"HTTP/")


def _body(
    rest: bytes, headers: list[tuple[bytes, bytes]], status: int, head: bool, eof: bool
) -> tuple[bytes, bytes]:
    if head or 100 <= status < 200 or status in (204, 304):
        return b"", rest
    fields = {name.lower(): value for name, value in headers}
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        return _chunked(rest, eof)
    length = fields.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise ProtocolError(f"Content-Length {length!r}")
        size = int(length)
        if len(rest) < size:
            if eof:
                raise ProtocolError(f"connection closed after {len(rest)} of {size} body bytes")
            raise _IncompleteError
        return rest[:size], rest[size:]
    if not eof:
        raise _IncompleteError  # the body ends with the connection
    return rest, b""


def _chunked(rest: bytes, eof: bool) -> tuple[bytes, bytes]:
    body = b""
    at = 0
    for _ in range(MAX_ANSWER_BYTES):  # bounded: each pass consumes at least a line
        line_end = rest.find(b"\r\n", at)
        if line_end < 0:
            break
        size_text = rest[at:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"chunk size {size_text[:50]!r}") from None
        start = line_end + 2
        if size == 0:
            trailer_end = rest.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                break
            return body, rest[trailer_end + 4 :]
        if len(rest) < start + size + 2:
            break
        body += rest[start : start + size]
        at = start + size + 2
    if eof:
        raise ProtocolError("connection closed in the middle of a chunked body")
    raise _IncompleteError
