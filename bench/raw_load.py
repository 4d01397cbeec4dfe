"""A bounded load of hand-built HTTP/1.1 requests, for heads that wrk cannot send (it refuses a
request head past ~64 KiB: "too many header bytes seen").

    statuses = run_raw_load(port, make_request, seconds=3.0, connections=32)

`make_request(n)` gives the n-th request's bytes (so that each can be new); every connection
sends a request, reads its whole answer, and sends the next, keep-alive, until `seconds` have
passed or MAX_REQUESTS were sent. Only the statuses are kept. On 127.0.0.1 only.
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
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            writer.write(request)
            await writer.drain()
            statuses[await asyncio.wait_for(_answer(reader), READ_TIMEOUT_SECONDS)] += 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        statuses[0] += 1
    finally:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> int:
    """One whole answer's status (the tracker's answers carry Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split(b" ", 2)[1])
