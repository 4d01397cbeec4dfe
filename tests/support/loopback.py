"""Serving a test's aiohttp application on a free loopback port."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve_on_loopback(app: web.Application, **runner_options: Any) -> web.AppRunner:
    """Start `app` on 127.0.0.1 at a port the kernel picks (see `port_of`); clean up the runner."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def port_of(runner: web.AppRunner) -> int:
    port: int = runner.addresses[0][1]
    return port
