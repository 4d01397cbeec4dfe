"""A steady load of tagged pixel requests, to count what must come out the other end.

Each request carries `tag=<n>`, which lands in the event's params. A tag counts as answered
only when its 200 arrived in full: those are the events that must reach the stream. Requests
that fail (the tracker is being restarted) are simply not answered; the load goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=5)


class TaggedLoad:
    def __init__(self, base_url: str, rate: float, connections: int = 8) -> None:
        self.base_url = base_url
        self._interval = connections / rate
        self._connections = connections
        self._tags = itertools.count()
        self.answered: set[str] = set()
        self.failed = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> TaggedLoad:
        self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self._connections)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()

    async def _client(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            tag = str(next(self._tags))
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                await self._one(tag)
            next_at += self._interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def _one(self, tag: str) -> None:
        url = f"{self.base_url}/v1/pixel?program=live&tag={tag}"
        try:
            async with self._session.get(url) as response:
                await response.read()
                if response.status == 200:
                    self.answered.add(tag)
                    return
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass
        self.failed += 1
