"""Serving an aiohttp application as web.run_app does, with every connection behind a HeadBound.

aiohttp has no setting for a head's total size, and web.run_app makes its own sites, whose
connections go straight to aiohttp's protocol. This is the part of web.run_app the tracker uses
(one TCP address), with a site that puts a HeadBound (tracker.head_bound) in front of each
connection's protocol. Shutdown is web.run_app's: SIGTERM or SIGINT ends the serving task, whose
runner cleanup closes the connections within the shutdown timeout and runs the application's
cleanup (the tracker's drain); then every task left is cancelled and the loop closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tracker.head_bound import MAX_HEAD_BYTES, HeadBound


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int
    reuse_port: bool  # several worker processes on one port (SO_REUSEPORT)


class BoundedHeadSite(web.BaseSite):
    """A TCP site whose connections each have their heads bounded to `limit` bytes."""

    __slots__ = ("_address", "_limit")

    def __init__(self, runner: web.BaseRunner, address: Address, limit: int) -> None:
        super().__init__(runner)
        self._address = address
        self._limit = limit

    @property
    def name(self) -> str:
        return f"http://{self._address.host}:{self._address.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up before its sites are made
        limit = self._limit
        address = self._address
        self._server = await asyncio.get_running_loop().create_server(
            lambda: HeadBound(server(), limit),
            address.host,
            address.port,
            reuse_port=address.reuse_port,
        )


def run_app(
    app: Awaitable[web.Application],
    address: Address,
    loop: asyncio.AbstractEventLoop,
    **runner_args: Any,
) -> None:
    """web.run_app(app, host=..., port=..., reuse_port=..., loop=loop, **runner_args), with heads
    bounded to MAX_HEAD_BYTES. Returns once the application has shut down."""
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, address, runner_args))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass  # SIGTERM or SIGINT (the runner's signal handlers raise GracefulExit)
    finally:
        try:
            if not main.done():
                main.cancel()  # its runner cleanup: the graceful shutdown
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


async def _serve(
    app: Awaitable[web.Application], address: Address, runner_args: dict[str, Any]
) -> None:
    runner = web.AppRunner(await app, **runner_args)
    await runner.setup()
    try:
        await BoundedHeadSite(runner, address, MAX_HEAD_BYTES).start()
        await asyncio.Event().wait()  # until cancelled
    finally:
        await runner.cleanup()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still running after the shutdown, and report any that failed."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
