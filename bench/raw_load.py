"""A bounded load of hand-built HTTP/1.1 requests, for heads that wrk cannot send (it refuses a
request head past ~64 KiB: "too many header bytes seen").

    statuses = run_raw_load(port, make_request, seconds=3.0, connections=32)

`make_request(n)` gives the n-th request's bytes (so that each can be new); every connection
sends a request, reads its whole answer, and sends the next, keep-alive (or on a new connection
when the answer closes it), until `seconds` have passed or MAX_REQUESTS were sent. Only the
statuses are kept. On 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator

MAX_REQUESTS = 200_000
READ_TIMEOUT_SECONDS = 10.0


def run_raw_load(
    port: int, make_request: Callable[[int], bytes], seconds: float, connections: int
) -> Counter[int]:
    """Statuses of the answers (0: no answer, the connection failed or timed out)."""
    return asyncio.run(_load(port, make_request, seconds, connections))


async def _load(
    port: int, make_request: Callable[[int], bytes], seconds: float, connections: int
) -> Counter[int]:
    numbers = itertools.count()
    deadline = time.monotonic() + seconds
    statuses: Counter[int] = Counter()
    await asyncio.gather(
        *(
            _connection(port, _requests(numbers, make_request, deadline), statuses)
            for _ in range(connections)
        )
    )
    return statuses


def _requests(
    numbers: Iterator[int], make_request: Callable[[int], bytes], deadline: float
) -> Iterator[bytes]:
    for number in numbers:
        if number >= MAX_REQUESTS or time.monotonic() >= deadline:
            return
        yield make_request(number)


async def _connection(port: int, requests: Iterator[bytes], statuses: Counter[int]) -> None:
    """Each request in turn on one keep-alive connection, a new one after an answer that closes
    it (a refused head)."""
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        for request in requests:
            if stream is None:
                stream = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = stream
            writer.write(request)
            await writer.drain()
            status, closes = await asyncio.wait_for(_answer(reader), READ_TIMEOUT_SECONDS)
            statuses[status] += 1
            if closes:
                writer.close()
                stream = None
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        statuses[0] += 1
    finally:
        if stream is not None:
            stream[1].close()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """One whole answer's status, and whether the server closes the connection after it (the
    tracker's answers carry Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length, closes = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            closes = value.strip().lower() == b"close"
    await reader.readexactly(length)
    return int(lines[0].split(b" ", 2)[1]), closes
