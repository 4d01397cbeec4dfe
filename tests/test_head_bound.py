"""HeadBound's count, against the heads of a whole stream however its reads are cut.

Pure logic: the protocol behind it records what it is given, the transport what is written. The
real server's answers to heads past the bound are in test_edge_fuzz."""

from __future__ import annotations

import asyncio

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tracker.head_bound import MAX_HEAD_BYTES, REFUSAL, HeadBound

END = b"\r\n\r\n"
LIMIT = 64
# The bound is exact to within the bytes of an end of a head (which of two overlapping ends
# counts): streams with a head within this of the bound are not judged.
SLACK = len(END)


class Recorded(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def feed(reads: list[bytes], limit: int = LIMIT) -> tuple[HeadBound, Recorded, Transport]:
    inner, transport = Recorded(), Transport()
    bound = HeadBound(inner, limit)
    bound.connection_made(transport)
    for data in reads:
        bound.data_received(data)
    return bound, inner, transport


def cut(stream: bytes, sizes: list[int]) -> list[bytes]:
    reads, at = [], 0
    for size in sizes:
        if at >= len(stream):
            break
        reads.append(stream[at : at + size])
        at += size
    if at < len(stream):
        reads.append(stream[at:])
    return reads


# Runs of one character, so that ends of heads (and near misses) are common.
runs = st.lists(
    st.tuples(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", END]), st.integers(1, 40)),
    max_size=40,
)


@settings(max_examples=500, database=None)
@given(runs, st.lists(st.integers(1, 24), min_size=1, max_size=120))
@example([(b"a", 40), (b"\r", 1), (b"\n", 2), (b"a", 40)], [10] * 10)  # one head, small reads
@example([(b"a", 40), (END, 1), (b"a", 40)], [41, 2, 38])  # an end split between reads
def test_the_count_follows_the_heads_however_the_reads_are_cut(
    parts: list[tuple[bytes, int]], sizes: list[int]
) -> None:
    stream = b"".join(unit * count for unit, count in parts)
    heads = [len(head) for head in stream.split(END)]
    bound, inner, transport = feed(cut(stream, sizes))
    if max(heads) <= LIMIT - SLACK:
        assert not bound.refused
        assert bytes(inner.received) == stream
        assert transport.written == b""
    elif max(heads) > LIMIT + SLACK:
        assert bound.refused
        assert transport.written == REFUSAL
        assert transport.closed
        # What aiohttp was given is a part of the stream in which no head is past the bound.
        assert stream.startswith(inner.received)
        assert max(len(head) for head in bytes(inner.received).split(END)) <= LIMIT + SLACK


def test_a_whole_head_in_one_read_is_judged_too() -> None:
    big = b"GET / HTTP/1.1\r\nX: " + b"a" * LIMIT + END
    bound, inner, transport = feed([b"GET / HTTP/1.1\r\n\r\n" + big])
    assert bound.refused
    assert inner.received == b""
    assert transport.written.startswith(b"HTTP/1.1 431 ")


def test_after_a_refusal_nothing_more_reaches_aiohttp() -> None:
    bound, inner, _ = feed([b"a" * (LIMIT + 1), b"GET / HTTP/1.1" + END])
    assert bound.refused
    assert inner.received == b""
    bound.connection_lost(None)
    assert inner.lost


def test_after_a_refusal_inside_a_read_nothing_more_reaches_aiohttp() -> None:
    """The head past the bound ends inside the read, and the next head began there."""
    bound, inner, _ = feed([b"a" * (LIMIT + 10) + END + b"GET", b" / HTTP/1.1" + END])
    assert bound.refused
    assert inner.received == b""


def test_many_small_requests_on_one_connection_never_add_up() -> None:
    request = b"GET /v1/pixel?program=p HTTP/1.1\r\nHost: h" + END
    bound, inner, _ = feed([request] * 10_000 + [request * 100] * 10, limit=len(request) + 1)
    assert not bound.refused
    assert len(inner.received) == len(request) * 11_000


def test_the_bound_fits_the_longest_request_line_and_three_long_headers() -> None:
    line = b"GET /" + b"q" * 8_100 + b" HTTP/1.1\r\n"
    headers = b"".join(b"X-%d: " % n + b"v" * 4_096 + b"\r\n" for n in range(3))
    head = line + b"Host: tracker.example\r\n" + headers + b"\r\n"
    assert len(head) <= MAX_HEAD_BYTES
    bound, inner, _ = feed([head[n : n + 1000] for n in range(0, len(head), 1000)], MAX_HEAD_BYTES)
    assert not bound.refused
    assert inner.received == head
