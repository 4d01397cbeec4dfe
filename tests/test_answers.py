"""Pre-serialized answers against aiohttp's own: byte for byte where aiohttp would send the same,
over real sockets, for every kind of connection a client can ask for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tracker import answers
from tracker.answers import FixedAnswer

GIF = b"GIF89a-not-really"
PIXEL = FixedAnswer(200, {"Content-Type": "image/gif", "Cache-Control": "no-store"}, GIF)
REDIRECT = FixedAnswer(302, {"Location": "https://shop.example/é?a=1", "Cache-Control": "no-store"})


async def _fixed(request: web.Request) -> web.StreamResponse:
    return PIXEL.respond(request)


async def _plain(request: web.Request) -> web.StreamResponse:
    return web.Response(status=PIXEL.status, headers=PIXEL.headers, body=PIXEL.body)


async def _redirect(request: web.Request) -> web.StreamResponse:
    return REDIRECT.respond(request)


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/fixed", _fixed)
    app.router.add_get("/plain", _plain)
    app.router.add_get("/redirect", _redirect)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


async def _exchange(server: TestServer, raw: bytes) -> bytes:
    assert server.port is not None
    return await raw_exchange(server.port, raw)


async def raw_exchange(port: int, raw: bytes) -> bytes:
    """Send raw request bytes on one connection; everything the server sends until it closes
    or idles (keep-alive connections stay open: read until idle)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    received = b""
    try:
        async with asyncio.timeout(0.5):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        pass
    writer.close()
    await writer.wait_closed()
    return received


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    headers.pop("Date")  # the second may differ between the two answers
    return status, headers, body


def _get(path: str, version: str = "1.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


async def test_keep_alive_get_is_what_aiohttp_would_have_sent(server: TestServer) -> None:
    fixed = await _exchange(server, _get("/fixed"))
    plain = await _exchange(server, _get("/plain"))
    assert _split(fixed) == _split(plain)
    assert fixed.endswith(GIF)


async def test_pipelined_requests_get_whole_answers_in_order(server: TestServer) -> None:
    received = await _exchange(server, _get("/fixed") * 3 + _get("/redirect"))
    answers_seen = received.split(b"HTTP/1.1 ")[1:]
    assert [a.split(b" ", 1)[0] for a in answers_seen] == [b"200", b"200", b"200", b"302"]
    assert all(a.endswith(GIF) for a in answers_seen[:3])


@pytest.mark.parametrize(
    "request_bytes",
    [
        _get("/fixed", "1.0"),
        _get("/fixed", "1.1", "Connection: close\r\n"),
        _get("/fixed", "1.0", "Connection: keep-alive\r\n"),
        b"HEAD /fixed HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["http/1.0", "connection-close", "http/1.0-keep-alive", "head"],
)
async def test_other_requests_get_aiohttps_own_answer(
    server: TestServer, request_bytes: bytes
) -> None:
    fixed = await _exchange(server, request_bytes)
    plain = await _exchange(server, request_bytes.replace(b"/fixed", b"/plain"))
    assert _split(fixed) == _split(plain)


async def test_redirect_location_is_utf8_like_aiohttps(server: TestServer) -> None:
    received = await _exchange(server, _get("/redirect"))
    assert "Location: https://shop.example/é?a=1\r\n".encode() in received
    assert b"Content-Length: 0\r\n" in received


async def test_date_header_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = FixedAnswer(204, {})
    clock = [1_700_000_000.2]
    monkeypatch.setattr(answers, "time", lambda: clock[0])
    wire = answer._wire
    first = wire._serialized()
    assert b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n" in first
    clock[0] += 0.5
    assert wire._serialized() is first  # same second: the same bytes, not rebuilt
    clock[0] += 1
    assert b"Date: Tue, 14 Nov 2023 22:13:21 GMT\r\n" in wire._serialized()


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "tab\tis fine but not\x00", "\x7f"])
def test_header_values_that_could_split_the_answer_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        FixedAnswer(302, {"Location": value})
