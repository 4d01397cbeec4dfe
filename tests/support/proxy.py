"""The common part of the fault-injecting proxies: an aiohttp server on a free loopback port that
passes calls on to an emulator; subclasses decide which calls to rewrite in `handle`."""

from __future__ import annotations

from typing import Self

import aiohttp
from aiohttp import web

from tests.support.loopback import port_of, serve_on_loopback

MAX_BODY = 32 * 1024 * 1024


class EmulatorProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> Self:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("POST", "/{tail:.*}", self._dispatch)
        self._runner = await serve_on_loopback(app)
        self.url = f"http://127.0.0.1:{port_of(self._runner)}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _dispatch(self, request: web.Request) -> web.Response:
        body = await request.read()
        return await self.handle(request, request.headers.get("X-Amz-Target", ""), body)

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        """Answer one call; by default pass it on unchanged."""
        return await self.forward(request, body)

    async def forward(self, request: web.Request, body: bytes | str) -> web.Response:
        """Pass the call to the emulator. Only Content-Type comes back: a copied checksum header
        (x-amz-crc32) would not match a body the proxy rewrites."""
        assert self._session is not None
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self._session.post(
            self.upstream + request.path, data=body, headers=headers
        ) as upstream:
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                headers={"Content-Type": upstream.headers.get("Content-Type", "")},
            )
