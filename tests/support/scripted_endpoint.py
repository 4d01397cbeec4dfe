"""An HTTP endpoint on a free loopback port that answers every POST with one scripted answer.

For the answers no emulator gives on demand (a load balancer's HTML page, an oversized body,
a wrong checksum, no answer at all): a botocore client and the lean BatchWriteItem
(consumers/dynamodb_batch.py) are pointed at it in turn, to see that both make the same of it.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple, Self

from aiohttp import web

from tests.support.loopback import port_of, serve_on_loopback


class Scripted(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


class ScriptedEndpoint:
    def __init__(self) -> None:
        self.answer = Scripted(200, b"{}", {})
        self.stall = False  # hold every call without answering, until close()
        self.calls = 0
        self._closing = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._answer)
        self._runner = await serve_on_loopback(app)
        self.url = f"http://127.0.0.1:{port_of(self._runner)}"
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        await request.read()
        self.calls += 1
        if self.stall:
            await self._closing.wait()
        status, body, headers = self.answer
        return web.Response(status=status, body=body, headers=headers)
